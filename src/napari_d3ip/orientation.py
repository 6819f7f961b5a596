"""How to show a (slice, row, col) volume the way radiology does, from its affine alone.

Display only: nothing here changes the data, the affine or a file. Given the voxel (slice, row,
col) -> world RAS+ affine every layer of the plugin carries, `axis_map` finds which array axis
runs nearest to which anatomical direction (R, A, S) and how far the volume is tilted from
them, and `view_geometry` says, for one plane (Axial, Coronal, Sagittal), which array axes the
canvas must show (a dims order) and whether each screen direction must be flipped (napari's
camera orientation) so that:

- Axial: anterior up, the patient's right on the screen's left (seen from the feet);
- Coronal: superior up, the patient's right on the screen's left (seen from the front);
- Sagittal: superior up, anterior on the screen's left;

the radiological convention of 3D Slicer and ITK-SNAP. Neurological display puts the patient's
right on the screen's right in the axial and coronal views. An oblique volume is shown in the
planes of its own voxel grid nearest to the anatomical ones; `obliquity` says by how much
they differ. No Qt, no napari: unit-tested on RAS, LPS and oblique affines.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np

#: world axes of RAS+: +x toward the patient's Right, +y Anterior, +z Superior
POSITIVE = ("R", "A", "S")
NEGATIVE = ("L", "P", "I")
PLANES = ("Axial", "Coronal", "Sagittal")
#: degrees of tilt below which a volume counts as aligned (rounding in file headers)
OBLIQUE_DEGREES = 1.0


def letter(world_axis: int, sign: int) -> str:
    """'R' for (0, +1), 'L' for (0, -1), ... (the direction a vector points toward)."""
    return POSITIVE[world_axis] if sign > 0 else NEGATIVE[world_axis]


@dataclass(frozen=True)
class AxisMap:
    """For each array axis (slice, row, col): the nearest world axis (0 R, 1 A, 2 S), whether
    the index increases toward its positive end (+1) or away (-1), and the largest angle in
    degrees between an array axis and its world axis (0 for an aligned volume)."""

    world: tuple[int, int, int]
    sign: tuple[int, int, int]
    obliquity: float

    def array_axis(self, world_axis: int) -> int:
        """The array axis that runs nearest to `world_axis`."""
        return self.world.index(world_axis)

    def toward(self, array_axis: int) -> str:
        """The direction the index of `array_axis` increases toward, e.g. 'S'."""
        return letter(self.world[array_axis], self.sign[array_axis])

    @property
    def oblique(self) -> bool:
        return self.obliquity >= OBLIQUE_DEGREES

    def axis_labels(self) -> tuple[str, str, str]:
        """Short slider labels: 'I→S' for an axis whose index runs from inferior to superior."""
        out = []
        for a in range(3):
            to = self.toward(a)
            frm = letter(self.world[a], -self.sign[a])
            out.append(f"{frm}→{to}")
        return tuple(out)  # type: ignore[return-value]


def axis_map(affine: Any) -> AxisMap:
    """The array axis ↔ anatomical direction map of a voxel (slice, row, col) -> RAS affine.

    Each array axis gets a different world axis: of the six one-to-one assignments the one
    with the largest summed |cosine| (so a 45°-ambiguous axis never steals a plain one)."""
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise ValueError(f"need a finite 4x4 affine, got shape {a.shape}")
    m = a[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms <= 0):
        raise ValueError("the affine has a zero-length axis (zero spacing)")
    cos = m / norms  # column i: the unit direction of array axis i in RAS
    best = max(permutations(range(3)), key=lambda p: sum(abs(cos[p[i], i]) for i in range(3)))
    sign = tuple(1 if cos[best[i], i] > 0 else -1 for i in range(3))
    angles = [np.degrees(np.arccos(min(1.0, abs(cos[best[i], i])))) for i in range(3)]
    return AxisMap(tuple(best), sign, float(max(angles)))  # type: ignore[arg-type]


def screen_frame(plane: str, radiological: bool = True) -> tuple[tuple[int, int], tuple[int, int]]:
    """(world axis, sign) the screen's up and the screen's right point toward in `plane`."""
    lr = -1 if radiological else 1  # radiological: screen right = the patient's left
    frames = {"Axial": ((1, 1), (0, lr)), "Coronal": ((2, 1), (0, lr)),
              "Sagittal": ((2, 1), (1, -1))}
    if plane not in frames:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}, got {plane!r}")
    return frames[plane]


@dataclass(frozen=True)
class ViewGeometry:
    """How one view shows its plane: dims `order` (slice, vertical, horizontal array axes),
    napari camera directions of increasing index (`vertical` 'up'/'down', `horizontal`
    'left'/'right'), the letters at the canvas edges and the view's title."""

    plane: str
    order: tuple[int, int, int]
    vertical: str
    horizontal: str
    top: str
    bottom: str
    left: str
    right: str
    title: str


def view_geometry(affine: Any, plane: str, radiological: bool = True) -> ViewGeometry:
    """The display of `plane` for a volume with this affine (see the module docstring)."""
    amap = axis_map(affine)
    (up_w, up_s), (right_w, right_s) = screen_frame(plane, radiological)
    normal = ({0, 1, 2} - {up_w, right_w}).pop()
    v, h = amap.array_axis(up_w), amap.array_axis(right_w)
    order = (amap.array_axis(normal), v, h)
    vertical = "up" if amap.sign[v] == up_s else "down"
    horizontal = "right" if amap.sign[h] == right_s else "left"
    title = plane
    if amap.oblique:
        title += f" (nearest plane: volume {amap.obliquity:.0f}° oblique)"
    return ViewGeometry(plane, order, vertical, horizontal,
                        top=letter(up_w, up_s), bottom=letter(up_w, -up_s),
                        left=letter(right_w, -right_s), right=letter(right_w, right_s),
                        title=title)


def screen_position(geometry: ViewGeometry, index: Any, shape: Any) -> tuple[float, float]:
    """Where voxel `index` appears on the screen in this view, as (x, y) fractions of the
    volume's extent: x from the left edge, y from the top (0.5, 0.5 is the centre). The
    reference the display is tested against."""
    _, v, h = geometry.order
    fy = index[v] / max(shape[v] - 1, 1)
    fx = index[h] / max(shape[h] - 1, 1)
    y = 1.0 - fy if geometry.vertical == "up" else fy
    x = 1.0 - fx if geometry.horizontal == "left" else fx
    return float(x), float(y)
