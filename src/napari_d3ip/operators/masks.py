"""Cartesian k-space sampling masks (ALGORITHM.md section 6), as numpy bool arrays (H, W).

- `poisson_disc_mask`: 2D variable-density Poisson-disc pattern on the phase-encode plane with
  a fully sampled calibration centre (the paper's single-coil "3D" MRI).
- `uniform_lines_mask`: uniform random phase-encode lines (columns) with ACS centre lines (the
  paper's multi-coil 2D MRI).

Both hit the requested acceleration (to one sampled point, resp. one line) and are
reproducible from their seed. DC sits at (H//2, W//2), as in `mri.fft2c`.
"""

from __future__ import annotations

import math

import numpy as np

from .base import OperatorError


def acceleration(mask: np.ndarray) -> float:
    """Achieved acceleration: all k-space points / sampled points."""
    m = np.asarray(mask, dtype=bool)
    n = int(m.sum())
    return float("inf") if n == 0 else float(m.size / n)


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or min(shape) < 1:
        raise OperatorError(f"mask shape must be (H, W) with H, W >= 1, got {shape}")
    return int(shape[0]), int(shape[1])


def _check_accel(accel: float) -> float:
    if not np.isfinite(accel) or accel <= 1:
        raise OperatorError(f"acceleration must be > 1 (1 = fully sampled), got {accel}")
    return float(accel)


def _calib_box(shape: tuple[int, int], calib: tuple[int, int]) -> tuple[slice, slice]:
    ch, cw = (min(int(c), s) for c, s in zip(calib, shape, strict=True))
    h, w = shape
    return (slice(h // 2 - ch // 2, h // 2 - ch // 2 + ch),
            slice(w // 2 - cw // 2, w // 2 - cw // 2 + cw))


def _poisson_disc(shape: tuple[int, int], r0: float, slope: float, order: np.ndarray
                  ) -> np.ndarray:
    """Greedy dart throwing on the grid in a fixed random `order`: a point is kept unless a
    kept point q lies closer than r(q) = r0 (1 + slope d(q)), d the normalised k-space radius.
    Blocking discs are stamped when a point is kept, so each candidate costs O(1)."""
    h, w = shape
    ky = (np.arange(h) - h // 2) / max(h / 2, 1)
    kx = (np.arange(w) - w // 2) / max(w / 2, 1)
    d = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    radius = r0 * (1.0 + slope * d)
    rmax = int(math.ceil(radius.max()))
    oy, ox = np.mgrid[-rmax:rmax + 1, -rmax:rmax + 1]
    dist2 = (oy ** 2 + ox ** 2).astype(np.float64)
    blocked = np.zeros((h + 2 * rmax, w + 2 * rmax), dtype=bool)  # padded: no edge clipping
    keep = np.zeros(h * w, dtype=bool)
    flat_r = radius.ravel()
    for p in order:
        i, j = divmod(int(p), w)
        if blocked[i + rmax, j + rmax]:
            continue
        keep[p] = True
        r = flat_r[p]
        if r > 1.0:  # r <= 1 blocks no other grid point
            blocked[i:i + 2 * rmax + 1, j:j + 2 * rmax + 1] |= dist2 < r * r
    return keep.reshape(h, w)


def poisson_disc_mask(shape: tuple[int, int], accel: float,
                      calib: tuple[int, int] | int | None = None, seed: int = 0,
                      slope: float = 2.0, tol: float = 0.02, max_iter: int = 40) -> np.ndarray:
    """Variable-density Poisson-disc mask with a fully sampled `calib` centre.

    The disc radius grows linearly with the k-space radius (factor 1 + slope * d, d = 1 at the
    edge midpoints), which concentrates samples near DC. The base radius is found by bisection
    on log r0 with the candidate order fixed by `seed` until the achieved acceleration
    (counting the calibration box) is within `tol` of `accel`; then a few random points are
    added or dropped so that exactly round(H W / accel) points are sampled. `calib` defaults
    to about 1/16 of each dimension (at least 2). Same arguments, same mask.
    """
    h, w = _check_shape(shape)
    accel = _check_accel(accel)
    if calib is None:
        calib = (max(2, round(h / 16)), max(2, round(w / 16)))
    elif isinstance(calib, int | np.integer):
        calib = (int(calib), int(calib))
    if len(calib) != 2 or min(calib) < 0:
        raise OperatorError(f"calib must be (ch, cw) with non-negative sizes, got {calib}")
    box = _calib_box((h, w), calib)
    n_calib = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
    target = h * w / accel
    if n_calib > round(target):
        raise OperatorError(
            f"the {calib} calibration region alone ({n_calib} points) exceeds the budget of "
            f"{target:.0f} points for acceleration {accel}: use a smaller calib or a lower accel")
    order = np.random.default_rng(seed).permutation(h * w)

    def make(r0: float) -> np.ndarray:
        m = _poisson_disc((h, w), r0, slope, order)
        m[box] = True
        return m

    # bracket generously, bisect on log r0 (more discs = fewer samples) ...
    lo, hi = math.log(0.05), math.log(8 * max(2.0, math.sqrt(accel)))
    best, best_err = make(math.exp(lo)), float("inf")
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        m = make(math.exp(mid))
        achieved = acceleration(m)
        err = abs(achieved / accel - 1)
        if err < best_err:
            best, best_err = m, err
        if err <= tol:
            break
        if achieved < accel:
            lo = mid
        else:
            hi = mid
    # ... then add or drop a few random non-calibration points to hit the exact count (the
    # greedy count jumps in steps on small grids; the few changed points barely matter)
    want = max(n_calib, round(target))
    rng = np.random.default_rng([seed, 1])
    free = np.ones((h, w), dtype=bool)
    free[box] = False
    diff = int(best.sum()) - want
    if diff > 0:
        drop = rng.choice(np.flatnonzero(best & free), size=diff, replace=False)
        best.ravel()[drop] = False
    elif diff < 0:
        add = rng.choice(np.flatnonzero(~best & free), size=-diff, replace=False)
        best.ravel()[add] = True
    return best


def uniform_lines_mask(shape: tuple[int, int], accel: float, acs_fraction: float = 0.08,
                       seed: int = 0) -> np.ndarray:
    """Random phase-encode lines (columns, full readout) with centred ACS lines.

    round(W / accel) lines in total: round(acs_fraction * W) contiguous ACS lines around DC,
    the rest drawn uniformly at random WITHOUT replacement from the other columns, so the
    achieved acceleration is W / round(W / accel) (within one line of the request).
    """
    h, w = _check_shape(shape)
    accel = _check_accel(accel)
    if not 0 <= acs_fraction <= 1:
        raise OperatorError(f"acs_fraction must be in [0, 1], got {acs_fraction}")
    n_lines = max(1, round(w / accel))
    n_acs = round(acs_fraction * w)
    if n_acs > n_lines:
        raise OperatorError(
            f"{n_acs} ACS lines (acs_fraction={acs_fraction}) exceed the {n_lines} lines that "
            f"acceleration {accel} allows for width {w}: lower acs_fraction or accel")
    cols = np.zeros(w, dtype=bool)
    start = w // 2 - n_acs // 2
    cols[start:start + n_acs] = True
    rest = np.flatnonzero(~cols)
    pick = np.random.default_rng(seed).choice(rest, size=n_lines - n_acs, replace=False)
    cols[pick] = True
    return np.broadcast_to(cols[None, :], (h, w)).copy()


def acs_columns(mask: np.ndarray) -> slice:
    """The contiguous run of fully sampled columns around DC (the ACS block of a lines mask)."""
    m = np.asarray(mask, dtype=bool)
    full = m.all(axis=0)
    c = m.shape[1] // 2
    if not full[c]:
        raise OperatorError("the mask has no fully sampled column at DC (no ACS region)")
    lo, hi = c, c + 1
    while lo > 0 and full[lo - 1]:
        lo -= 1
    while hi < m.shape[1] and full[hi]:
        hi += 1
    return slice(lo, hi)
