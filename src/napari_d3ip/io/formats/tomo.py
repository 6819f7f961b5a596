"""Parallel-beam CT from synchrotron files: the steps the Data Exchange and NXtomo readers share.

    raw frames (angles, rows, cols) + flats + darks
      -> transmission (p - dark) / (flat - dark)   (median of >= 3 flats/darks, else their mean)
      -> line integrals -log(transmission)
      -> the rotation centre (estimated, or the user's `--center`)
      -> views picked (`--views N`, evenly spread over the file's angles), detector binned
         (`--bin b`: b x b pixel blocks averaged), rows = slices (`--slices a:b`)
      -> a `Measurement` for `ParallelBeamCT` with the file's angles, the detector's width and
         the centre offset, data scaled to the prior's [0, 1] range.

Orientation convention (the one tomopy's reconstructions have; tomopy's `project`/`recon`
put detector position t = col cos(theta) - row sin(theta) from the axis, as our projector and
skimage's `radon` do): detector row r of the file is slice r of the volume (same order);
within a slice, image column j lies along the detector's columns (at theta = 0 the image
column j projects onto detector column c + (j - W//2), c the rotation centre), image row i is
the other in-plane axis, and theta increases as the file's angles do. A volume projected with
`skimage.transform.radon(slice, theta)` and written column-for-column into a file comes back
unmirrored and unrotated (tests/test_formats_ct.py). The rotation axis is at image pixel
(W//2, W//2), W = the (binned) detector width.

Rotation centre: the detector position of the axis in pixel-centre coordinates of the file's
unbinned detector (first pixel's centre = 0, the middle of an n-pixel row = (n - 1)/2).
tomopy's `center` argument for the same axis reads 0.5 more (its ray d passes d - center + 1/2
from the axis, source/libtomo/recon/utils.c `preprocessing`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..measurements import MeasurementError

#: transmission floor before -log: a pixel at or below its dark reads as this (no log of 0)
MIN_TRANSMISSION = 1e-6
#: pixels whose flat is not above their dark: at most this fraction is repaired, more refused
MAX_DEAD_FRACTION = 0.01
#: the 99.9th percentile of the FBP (inside the detector's circle) maps to this in [0, 1]
UNIT_TARGET = 0.95
#: two angles whose difference is 180 degrees within this tolerance form a 0/180 pair
PAIR_TOLERANCE_DEG = 0.1

_ANGLE_TO_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0,
                 "rad": 180.0 / math.pi, "radian": 180.0 / math.pi, "radians": 180.0 / math.pi,
                 "mrad": 0.18 / math.pi}
_LENGTH_TO_MM = {"m": 1e3, "metre": 1e3, "meter": 1e3, "cm": 10.0, "mm": 1.0, "um": 1e-3,
                 "µm": 1e-3, "μm": 1e-3, "micron": 1e-3, "microns": 1e-3,
                 "micrometre": 1e-3, "micrometer": 1e-3, "nm": 1e-6}


# -- units -------------------------------------------------------------------------------------
def angle_factor(units: str | None, where: str) -> float:
    """Degrees per unit of an angle dataset's `units` attribute (None: degrees, as both formats'
    specs say); an unknown unit is refused naming the dataset."""
    if units is None or not units.strip():
        return 1.0
    key = units.strip().lower()
    if key not in _ANGLE_TO_DEG:
        raise MeasurementError(f"{where}: angle units {units!r} not understood; use one of "
                               f"{', '.join(sorted(_ANGLE_TO_DEG))}")
    return _ANGLE_TO_DEG[key]


def length_mm(value: float, units: str | None) -> tuple[float | None, str]:
    """(mm, note) of a pixel size with its `units` attribute. Missing units: values below 1e-3
    are taken as metres, others as micrometres (detector pixels lie between 0.1 um and 1 mm),
    and the note says so. (None, why) when it is unusable."""
    if not (math.isfinite(value) and value > 0):
        return None, f"pixel size {value!r} is not a positive number: ignored"
    if units is None or not units.strip():
        unit = "m" if value < 1e-3 else "um"
        return value * _LENGTH_TO_MM[unit], f"no units attribute: read as {unit}"
    key = units.strip().lower()
    if key not in _LENGTH_TO_MM:
        return None, f"pixel size units {units!r} not understood: ignored"
    return value * _LENGTH_TO_MM[key], units.strip()


# -- views -------------------------------------------------------------------------------------
def pick_views(angles_deg: np.ndarray, n: int | None) -> np.ndarray:
    """Indices (ascending) of `n` of the angles, spread evenly over the scanned range: target k
    is first + k * (span + step) / n (span + step = 180 for a 0..179-by-1 scan), each taken by
    its nearest unused angle. All of them for None."""
    a = np.asarray(angles_deg, np.float64)
    if n is None or n >= a.size:
        if n is not None and n > a.size:
            raise MeasurementError(f"--views {n}: the file has only {a.size} projection angles")
        return np.arange(a.size)
    order = np.argsort(a, kind="stable")
    s = a[order]
    step = float(np.median(np.diff(s))) if s.size > 1 else 0.0
    targets = s[0] + np.arange(n) * (s[-1] - s[0] + step) / n
    free = np.ones(s.size, bool)
    picked = []
    for t in targets:
        cand = np.flatnonzero(free)
        k = cand[np.argmin(np.abs(s[cand] - t))]
        free[k] = False
        picked.append(order[k])
    return np.sort(np.asarray(picked, np.int64))


# -- flats, darks, line integrals --------------------------------------------------------------
def reference_frame(frames: np.ndarray) -> np.ndarray:
    """One (rows, cols) frame from a stack: the median of >= 3 (robust to zingers), else the
    mean; float64."""
    f = np.asarray(frames, np.float64)
    return np.median(f, axis=0) if f.shape[0] >= 3 else f.mean(axis=0)


def dead_pixels(flat: np.ndarray, dark: np.ndarray, where: str) -> np.ndarray:
    """Boolean (rows, cols) mask of pixels whose flat is not above their dark. A few (at most
    MAX_DEAD_FRACTION) are dead pixels and are repaired from their row neighbours; more means
    the flats and darks are swapped or wrong, refused naming the datasets."""
    bad = ~(flat > dark)
    frac = float(bad.mean()) if bad.size else 0.0
    if frac > MAX_DEAD_FRACTION:
        raise MeasurementError(f"{where}: the flat field is not above the dark field at "
                               f"{frac:.1%} of the pixels (median flat {np.median(flat):.4g}, "
                               f"median dark {np.median(dark):.4g}); are the flats and darks "
                               "swapped, or the wrong datasets?")
    return bad


def _repair_columns(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace dead pixels (bad: (rows, cols)) of every frame by linear interpolation along
    the row; a row with no good pixel is left at zero line integral."""
    cols = np.arange(x.shape[-1])
    for r in np.flatnonzero(bad.any(axis=1)):
        good = ~bad[r]
        if not good.any():
            x[:, r, :] = 0.0
            continue
        for v in range(x.shape[0]):
            x[v, r, bad[r]] = np.interp(cols[bad[r]], cols[good], x[v, r, good])
    return x


def line_integrals(proj: np.ndarray, flat: np.ndarray, dark: np.ndarray,
                   bad: np.ndarray | None = None) -> np.ndarray:
    """-log((p - dark) / (flat - dark)) of frames (views, rows, cols), float32; transmission
    floored at MIN_TRANSMISSION, dead pixels (`bad`) interpolated from their row."""
    denom = np.asarray(flat, np.float64) - dark
    if bad is None:
        bad = ~(denom > 0)
    denom = np.where(bad, 1.0, denom)
    t = (np.asarray(proj, np.float64) - dark) / denom
    out = -np.log(np.maximum(t, MIN_TRANSMISSION))
    if bad.any():
        out = _repair_columns(out, bad)
    return out.astype(np.float32)


def bin_frames(x: np.ndarray, b: int) -> np.ndarray:
    """Mean over b x b blocks of the last two axes (rows, cols); the remainders at the bottom
    and right are dropped. Averaging line integrals is exactly the projector's bin model."""
    if b == 1:
        return x
    v, r, c = x.shape
    r2, c2 = r // b, c // b
    return x[:, : r2 * b, : c2 * b].reshape(v, r2, b, c2, b).mean(axis=(2, 4), dtype=np.float64
                                                                   ).astype(np.float32)


# -- the rotation centre -------------------------------------------------------------------------
def find_pair(angles_deg: np.ndarray, tol: float = PAIR_TOLERANCE_DEG) -> tuple[int, int] | None:
    """Indices (i, j) of two angles 180 degrees apart (mod 360) within `tol`, the closest such
    pair; None if the scan has none."""
    a = np.asarray(angles_deg, np.float64)
    d = np.abs(((a[None, :] - a[:, None]) % 360.0) - 180.0)
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return (int(i), int(j)) if d[i, j] <= tol else None


def center_from_pair(p0: np.ndarray, p180: np.ndarray, upsample: int = 32) -> float:
    """Rotation centre from two projections 180 degrees apart ((rows, cols) line integrals).

    p180(k) = p0(2c - k), so p180 mirrored is p0 shifted by 2c - (n - 1): the shift is the peak
    of their cross-correlation (summed over rows), found on a grid `upsample` times finer by
    zero-padding the cross-spectrum (sinc interpolation), then refined by a parabola."""
    p = np.atleast_2d(np.asarray(p0, np.float64))
    q = np.atleast_2d(np.asarray(p180, np.float64))[:, ::-1]
    n = p.shape[-1]
    pad = 2 * n
    spec = (np.conj(np.fft.rfft(q, pad, axis=-1)) * np.fft.rfft(p, pad, axis=-1)).sum(axis=0)
    corr = np.fft.irfft(spec, pad * upsample)
    k = int(np.argmax(corr))
    y0, y1, y2 = corr[k - 1], corr[k], corr[(k + 1) % corr.size]
    den = y0 - 2 * y1 + y2
    frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    shift = (k + frac) / upsample
    if shift > pad / 2:
        shift -= pad
    return (shift + n - 1) / 2.0


def center_from_mass(frames: np.ndarray, angles_deg: np.ndarray) -> float:
    """Rotation centre from the projections' centres of mass, which follow
    com(theta) = c + u cos(theta) - v sin(theta) for a slice whose mass centre is (u, v):
    a linear least-squares fit over all views (object inside the field of view needed)."""
    x = np.asarray(frames, np.float64).sum(axis=1)  # (views, cols)
    x = np.maximum(x, 0.0)
    mass = x.sum(axis=1)
    keep = mass > 0
    if keep.sum() < 3:
        raise MeasurementError("cannot estimate the rotation centre: fewer than 3 projections "
                               "carry signal; give it with --center")
    com = (x[keep] * np.arange(x.shape[1])).sum(axis=1) / mass[keep]
    th = np.deg2rad(np.asarray(angles_deg, np.float64)[keep])
    design = np.stack([np.ones_like(th), np.cos(th), np.sin(th)], axis=1)
    coef, *_ = np.linalg.lstsq(design, com, rcond=None)
    return float(coef[0])


def check_center(center: float, n_cols: int, where: str) -> float:
    """The centre, if it lies on the detector; else an error naming the fix."""
    c = float(center)
    if not (math.isfinite(c) and -0.5 <= c <= n_cols - 0.5):
        raise MeasurementError(f"{where}: rotation centre {center!r} is off the detector "
                               f"(columns 0..{n_cols - 1}); give --center in detector pixels")
    return c


# -- the measurement -----------------------------------------------------------------------------
@dataclass
class Geometry:
    """Where the read slices sit: pixel size (mm, or None = unknown) and the file rows read."""

    pixel_mm: tuple[float, float] | None  # (row, col) pixel size of the file's detector
    first_row: int  # file row of the first slice's first detector row
    row_step: int  # file rows between consecutive slices (binning x slice step)
    binning: int
    notes: list[str] = field(default_factory=list)


def affine_and_spacing(geo: Geometry, width: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Voxel (slice, row, col) -> world (mm, or file pixels when the size is unknown): diagonal,
    the rotation axis at world x = y = 0, slice k at the height of the file rows it averages
    (so a --slices range overlays its full volume). No reorientation: axes = array axes."""
    pr, pc = geo.pixel_mm if geo.pixel_mm is not None else (1.0, 1.0)
    d = pc * geo.binning
    dz = pr * geo.row_step
    z0 = pr * (geo.first_row + (geo.binning - 1) / 2.0)
    aff = np.diag([dz, d, d, 1.0])
    aff[:3, 3] = [z0, -(width // 2) * d, -(width // 2) * d]
    return aff, (dz, d, d)


def unit_scale(op: Any, y: Any, max_slices: int = 8) -> float:
    """The factor that puts the scan in the prior's range: the 99.9th percentile of the FBP of
    up to `max_slices` evenly spread slices, inside the detector's circle, maps to UNIT_TARGET."""
    import torch

    n = int(y.shape[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int))
    with torch.no_grad():
        fbp = op.pinv(y[idx]).float().cpu().numpy()[:, 0]
    h, w = fbp.shape[-2:]
    ii, jj = np.mgrid[:h, :w]
    inside = (ii - h // 2) ** 2 + (jj - w // 2) ** 2 <= (min(h, w) / 2.0) ** 2
    vals = fbp[:, inside]
    top = float(np.percentile(vals, 99.9)) if vals.size else 0.0
    if not (math.isfinite(top) and top > 0):
        top = float(np.abs(vals).max()) if vals.size else 0.0
    return top / UNIT_TARGET if math.isfinite(top) and top > 0 else 1.0


def ct_measurement(sino: np.ndarray, angles_deg: np.ndarray, center_binned: float,
                   geo: Geometry, source: str, info: dict[str, Any]) -> Any:
    """A `Measurement` of sinograms (slices, views, cols) with the rotation axis at detector
    coordinate `center_binned` (pixel centres of the binned detector), in [0, 1] scale."""
    import torch

    from ...operators.base import Measurement
    from ...operators.ct import ParallelBeamCT

    n, _, w = sino.shape
    op = ParallelBeamCT((w, w), angles=np.asarray(angles_deg, np.float64), n_det=w,
                        center_offset=float(center_binned) - w // 2)
    y = torch.from_numpy(np.ascontiguousarray(sino, dtype=np.float32))
    scale = unit_scale(op, y)
    y = y / scale
    affine, spacing = affine_and_spacing(geo, w)
    # x * hi is the attenuation coefficient: per mm when the pixel size is known, else per pixel
    hi = scale / spacing[2] if geo.pixel_mm is not None else scale / geo.binning
    info = {**info, "unit_scale": scale,
            "attenuation_unit": "1/mm" if geo.pixel_mm is not None else "1/file pixel"}
    return Measurement(op, y, None, affine, spacing, (0.0, float(hi)), {"acquired": info}, source)


def selected_rows(n_rows: int, binning: int, slices: str | None) -> tuple[Sequence[int], range]:
    """(file rows to read, in order; the output slices as a range over binned rows) for
    `--slices` given in output slices (binned rows)."""
    from . import slice_range

    n_out = n_rows // binning
    if n_out < 1:
        raise MeasurementError(f"--bin {binning} is larger than the detector's {n_rows} rows")
    picked = slice_range(slices, n_out, "detector rows (slices)")
    rows = [r for k in picked for r in range(k * binning, (k + 1) * binning)]
    return rows, picked


def read_frames(ds: Any, frames: Sequence[int], rows: Sequence[int]) -> np.ndarray:
    """ds[frames][:, rows, :] as float32, reading only those frames and rows (one read when
    both are contiguous runs, else frame by frame)."""
    frames = [int(i) for i in frames]
    rows = [int(r) for r in rows]
    rsel: Any = slice(rows[0], rows[-1] + 1) if rows == list(range(rows[0], rows[-1] + 1)) \
        else rows
    out = np.empty((len(frames), len(rows), ds.shape[2]), np.float32)
    if frames and frames == list(range(frames[0], frames[-1] + 1)) and isinstance(rsel, slice):
        out[...] = ds[frames[0]:frames[-1] + 1, rsel, :]
        return out
    for k, i in enumerate(frames):
        out[k] = ds[i, rsel, :]
    return out


def check_finite(x: np.ndarray, what: str, frames: Sequence[int]) -> None:
    """Refuse NaN/inf in read frames, naming the dataset and the first bad frames."""
    bad = ~np.isfinite(x)
    if bad.any():
        which = [int(frames[i]) for i in np.flatnonzero(bad.reshape(bad.shape[0], -1).any(1))]
        shown = ", ".join(map(str, which[:8])) + (" ..." if len(which) > 8 else "")
        raise MeasurementError(f"{what} holds {int(bad.sum())} NaN or infinite value(s) in "
                               f"frame(s) {shown}; the scan is damaged there: re-export it")
