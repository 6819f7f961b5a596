"""Where an MRI volume lies in the patient: the voxel -> RAS affine of the NIfTI written from
raw data (the `Measurement.affine`, voxel index (slice, row, col) -> RAS+ millimetres).

ISMRMRD acquisition headers carry `position` (the centre of the excited volume / slice) and the
unit vectors `read_dir`, `phase_dir`, `slice_dir`, all in the patient coordinate system LPS
(x to the patient's left, y posterior, z superior; mm from isocentre), as DICOM. The image of a
centred inverse FFT has its index increasing along those directions and the voxel at index
N//2 at `position` (the centred-FFT convention: DC and the FOV centre at N//2). NIfTI's world
is RAS, so x and y change sign: a missed sign here mirrors the patient left-right.

fastMRI files (and ISMRMRD files whose directions are all zero) carry no patient position:
their affine is the voxel size on the diagonal and the run card says the orientation is
unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..measurements import MeasurementError

#: LPS <-> RAS (its own inverse)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
GEOMETRY_FIELDS = ("position", "read_dir", "phase_dir", "slice_dir")
UNKNOWN = "unknown (the file carries no patient position/orientation): voxel size only, axes = array axes"


def diagonal_affine(spacing: Sequence[float], first: int = 0, step: int = 1) -> np.ndarray:
    """Voxel size on the diagonal; a --slices range starting at `first` (every `step`-th slice)
    keeps its place in the whole volume."""
    a = np.diag([spacing[0] * step, spacing[1], spacing[2], 1.0])
    a[0, 3] = spacing[0] * first
    return a


def lps_affine(columns: Sequence[np.ndarray], origin: np.ndarray) -> np.ndarray:
    """The voxel -> RAS affine whose axis j steps by `columns[j]` (LPS mm) from the LPS
    `origin` (the centre of voxel (0, 0, 0))."""
    a = np.eye(4)
    a[:3, :3] = LPS_TO_RAS @ np.stack([np.asarray(c, float) for c in columns], axis=1)
    a[:3, 3] = LPS_TO_RAS @ np.asarray(origin, float)
    return a


def directions(heads: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(read, phase, slice) unit vectors (LPS) shared by the acquisitions `heads`; None when the
    file carries none (fields absent or all zero); a MeasurementError when they are not unit
    vectors, not orthogonal, or differ between acquisitions."""
    names = heads.dtype.names or ()
    if any(f not in names for f in GEOMETRY_FIELDS):
        return None
    vecs = [np.asarray(heads[f], float).reshape(-1, 3) for f in GEOMETRY_FIELDS[1:]]
    if all(np.abs(v).max() < 1e-6 for v in vecs):
        return None
    out = []
    for name, v in zip(GEOMETRY_FIELDS[1:], vecs, strict=True):
        if np.abs(v - v[0]).max() > 1e-3:
            raise MeasurementError(f"{where}: the acquisitions' {name} differ (more than one "
                                   "orientation in one scan); only a single-orientation stack is read")
        if abs(np.linalg.norm(v[0]) - 1) > 1e-2:
            raise MeasurementError(f"{where}: {name} {v[0].tolist()} is not a unit vector; the "
                                   "acquisition headers' directions are damaged")
        out.append(v[0] / np.linalg.norm(v[0]))
    gram = np.abs(np.stack(out) @ np.stack(out).T - np.eye(3)).max()
    if gram > 1e-2:
        raise MeasurementError(f"{where}: read_dir, phase_dir and slice_dir are not orthogonal "
                               f"(off by {gram:.3f}); the acquisition headers' directions are damaged")
    return out[0], out[1], out[2]


def affine_3d(dirs, position: np.ndarray, shape: tuple[int, int, int],
              spacing: tuple[float, float, float], first: int = 0, step: int = 1) -> np.ndarray:
    """A 3-D acquisition read as (x, y, z) = (readout, phase 1, phase 2) of `shape` (the whole
    readout, before --slices); voxels `first`, `first + step`, ... of the readout are kept."""
    read, phase, sl = dirs
    (nx, ny, nz), (dx, dy, dz) = shape, spacing
    origin = (np.asarray(position, float) + (first - nx // 2) * dx * read
              - (ny // 2) * dy * phase - (nz // 2) * dz * sl)
    return lps_affine([read * dx * step, phase * dy, sl * dz], origin)


def affine_2d(dirs, centres: np.ndarray, rows: int, cols: int, spacing: tuple[float, float, float],
              thickness: float) -> tuple[np.ndarray, str | None]:
    """A 2-D multi-slice stack read as (slice, readout row, phase column): slice k centred at
    `centres[k]` (LPS, in the volume's slice order). The slice axis steps by the mean spacing
    of the centres (one slice: `thickness` along slice_dir); the note says when the centres are
    not evenly spaced along one line (the affine then only approximates them)."""
    read, phase, sl = dirs
    _, dx, dy = spacing
    c = np.asarray(centres, float).reshape(-1, 3)
    origin = c[0] - (rows // 2) * dx * read - (cols // 2) * dy * phase
    if len(c) == 1:
        return lps_affine([sl * thickness, read * dx, phase * dy], origin), None
    step = (c[-1] - c[0]) / (len(c) - 1)
    ideal = c[0] + np.arange(len(c))[:, None] * step
    off = float(np.abs(c - ideal).max())
    note = None
    if off > 0.01 * max(float(np.linalg.norm(step)), 1e-6):
        note = (f"slice centres deviate up to {off:.2f} mm from even spacing along one line; "
                "the affine uses the mean step")
    return lps_affine([step, read * dx, phase * dy], origin), note


def describe(affine: np.ndarray) -> str:
    """The RAS direction each array axis points to most (e.g. 'S, P, L'): for the run card."""
    names = (("L", "R"), ("P", "A"), ("I", "S"))
    out = []
    for j in range(3):
        v = affine[:3, j]
        k = int(np.argmax(np.abs(v)))
        out.append(names[k][int(v[k] > 0)])
    return ", ".join(out)
