"""From measured Cartesian k-space to a `Measurement`: masks, oversampling, coil maps, phase.

Shared by the fastMRI and ISMRMRD readers; everything here works on numpy / torch arrays, the
readers own the files. Conventions (the same as `operators/mri.py`): centred orthonormal FFT,
DC at index (H//2, W//2), rows = readout (or ky for 3-D), columns = phase encoding.

Phase: a scanner's image is complex, x e^{i phi} with phi smooth, while our operators (and the
prior) see a real image. The phase is estimated from the fully sampled centre (the ACS block)
as the phase of the coil-combined low-resolution image and folded into the coil maps
(S_c <- S_c e^{i theta}); the real-valued prior then acts on the phase-free magnitude.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...operators import espirit_maps
from ...operators.base import Measurement
from ...operators.mri import MulticoilMRI
from ..measurements import MeasurementError

ESPIRIT = {"kernel": 6, "thresh": 0.02, "crop": 0.95}


# -- masks (fastMRI's conventions) ----------------------------------------------------------
def fastmri_center(n: int, center_fraction: float) -> slice:
    """fastMRI's ACS block: round(n * cf) columns starting at (n - n_low + 1) // 2."""
    n_low = max(1, int(round(n * center_fraction)))
    start = (n - n_low + 1) // 2
    return slice(start, start + n_low)


def fastmri_mask(n: int, pattern: str, accel: float, center_fraction: float,
                 seed: int) -> np.ndarray:
    """A 1-D column mask as fastMRI's RandomMaskFunc / EquispacedMaskFunc make it."""
    centre = fastmri_center(n, center_fraction)
    n_low = centre.stop - centre.start
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    if pattern == "random":
        prob = (n / accel - n_low) / max(n - n_low, 1)
        mask = rng.uniform(size=n) < prob
    elif pattern == "equispaced":
        adjusted = accel * (n_low - n) / (n_low * accel - n) if n_low * accel != n else accel
        offset = int(rng.integers(0, max(1, round(adjusted))))
        mask[np.round(np.arange(offset, n - 1, adjusted)).astype(int)] = True
    else:
        raise MeasurementError(f"mask {pattern!r} is not a 1-D column pattern (equispaced, random)")
    mask[centre] = True
    return mask


def default_center_fraction(accel: float) -> float:
    """fastMRI's pairing: 0.08 with 4x, 0.04 with 8x (0.32 / R)."""
    return min(0.5, 0.32 / accel)


def acs_box(mask: np.ndarray) -> tuple[int, int]:
    """(rows, cols) of the largest fully sampled block centred on DC; (0, 0) if DC is missing."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    cy, cx = h // 2, w // 2
    if not m[cy, cx]:
        return 0, 0
    best = (1, 1)
    for half_w in range(0, w // 2 + 1):  # widen in columns, then grow rows as far as full
        lo, hi = cx - half_w, cx + half_w + 1
        if lo < 0 or hi > w or not m[cy, lo:hi].all():
            break
        top, bot = cy, cy + 1
        while top > 0 and m[top - 1, lo:hi].all():
            top -= 1
        while bot < h and m[bot, lo:hi].all():
            bot += 1
        rows = 2 * min(cy - top, bot - 1 - cy) + 1
        if rows * (hi - lo) > best[0] * best[1]:
            best = (rows, hi - lo)
    return best


# -- oversampling -----------------------------------------------------------------------------
def crop_readout(k: np.ndarray, rows: int, axis: int = -2) -> np.ndarray:
    """Remove readout oversampling: inverse FFT along `axis`, keep the centred `rows`, FFT back
    (centred, orthonormal), so the kept k-space is that of the recon field of view."""
    n = k.shape[axis]
    if rows >= n:
        return k
    t = torch.from_numpy(np.ascontiguousarray(k))
    img = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(t, dim=axis), dim=axis,
                                            norm="ortho"), dim=axis)
    start = n // 2 - rows // 2
    img = img.narrow(axis if axis >= 0 else img.dim() + axis, start, rows)
    out = torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(img, dim=axis), dim=axis,
                                           norm="ortho"), dim=axis)
    return out.numpy().astype(np.complex64)


# -- coil maps and phase ----------------------------------------------------------------------
def espirit_bytes(rows: int, cols: int, coils: int) -> float:
    """ESPIRiT's working memory for one slice: its per-pixel C x C matrices (complex64) live
    in about three copies at once (the kernel grid, its FFT, the Hermitian eigenproblem);
    measured 0.53 GiB over the imports for 15 coils x 320 x 368 (benchmarks/read_fastmri.md)."""
    return 0.0 if coils < 2 else 3.0 * 8.0 * rows * cols * coils * coils


def _espirit_kernel(n_acs: int, kernel: int) -> tuple[int, int]:
    """As operators.simulate: narrow along the few ACS columns (see its docstring)."""
    return (kernel, max(1, min(kernel, n_acs, max(2, n_acs // 3))))


def _low_res(y: torch.Tensor, box: tuple[int, int]) -> torch.Tensor:
    """Coil images (N, C, H, W) from the centred ACS block only, Hann-windowed (no ringing)."""
    h, w = y.shape[-2:]
    bh, bw = box
    win = torch.zeros(h, w, dtype=torch.float32)
    r0, c0 = h // 2 - bh // 2, w // 2 - bw // 2
    hann = torch.outer(torch.hann_window(bh + 2, periodic=False)[1:-1],
                       torch.hann_window(bw + 2, periodic=False)[1:-1])
    win[r0:r0 + bh, c0:c0 + bw] = hann
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(y * win, dim=dims),
                                              norm="ortho"), dim=dims)


def coil_maps_with_phase(y: torch.Tensor, mask: np.ndarray, progress=None) -> tuple[torch.Tensor, dict]:
    """Per-slice maps (N, C, H, W): ESPIRiT from the ACS (C > 1, unit-norm, as in
    `operators.simulate`) or ones (C = 1), times e^{i theta}, theta the phase of the coil-
    combined low-resolution image; and what was done (for the run card)."""
    n, c, h, w = y.shape
    box = acs_box(mask)
    if min(box) < 2:
        raise MeasurementError(f"the sampling mask has no fully sampled centre (ACS block {box}); "
                               "coil maps and the image phase are estimated from it")
    info: dict[str, Any] = {"acs_block": list(box), "phase": "estimated from the ACS block, "
                            "folded into the coil maps (real-valued image = magnitude)"}
    if c > 1:
        kernel = _espirit_kernel(box[1], ESPIRIT["kernel"])
        kernel = (min(kernel[0], box[0]), kernel[1])
        maps = []
        for i in range(n):  # per slice: bounded memory, and a progress report per slice
            maps.append(espirit_maps(y[i], calib_size=box, kernel=kernel,
                                     thresh=ESPIRIT["thresh"], crop=ESPIRIT["crop"]))
            if progress is not None:
                progress(i + 1, n)
        s = torch.stack(maps)
        info.update({"coil_maps": "espirit", "espirit_kernel": list(kernel)})
    else:
        s = torch.ones(n, 1, h, w, dtype=torch.complex64)
        info["coil_maps"] = "single coil"
    lr = (s.conj() * _low_res(y, box)).sum(1, keepdim=True)
    lr = _refine_phase(y, s, torch.from_numpy(np.asarray(mask, bool)), lr)
    theta = torch.where(lr.abs() > 0, lr / lr.abs().clamp_min(1e-30), torch.ones_like(lr))
    return (s * theta).to(torch.complex64), info


def _fft2c(x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    d = (-2, -1)
    f = torch.fft.ifft2 if inverse else torch.fft.fft2
    return torch.fft.fftshift(f(torch.fft.ifftshift(x, dim=d), norm="ortho"), dim=d)


def _refine_phase(y: torch.Tensor, s: torch.Tensor, mask: torch.Tensor, x0: torch.Tensor,
                  iters: int = 8, lam: float = 0.05, sigma: float = 1.5) -> torch.Tensor:
    """A complex CG-SENSE estimate (Tikhonov lam, `iters` steps from the low-resolution x0),
    smoothed (Gaussian, `sigma` px): the phase at the acquisition's resolution, not only the
    ACS block's (measured: +1.8 dB ADMM-TV on a 32x32 R 3.2 test file with a 1-rad phase)."""
    m = mask.to(torch.float32)

    def normal(x):
        return (s.conj() * _fft2c(m * _fft2c(s * x), inverse=True)).sum(1, keepdim=True) + lam * x

    b = (s.conj() * _fft2c(y * m, inverse=True)).sum(1, keepdim=True)
    x = x0.clone()
    r = b - normal(x)
    p = r.clone()
    rs = (r.abs() ** 2).sum()
    for _ in range(iters):
        ap = normal(p)
        alpha = rs / (p.conj() * ap).sum().real.clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r.abs() ** 2).sum()
        p = r + (rs_new / rs.clamp_min(1e-30)) * p
        rs = rs_new
    h, w = x.shape[-2:]
    ky = torch.fft.fftshift(torch.fft.fftfreq(h))[:, None]
    kx = torch.fft.fftshift(torch.fft.fftfreq(w))[None, :]
    gauss = torch.exp(-2 * (math.pi * sigma) ** 2 * (ky ** 2 + kx ** 2))
    return _fft2c(_fft2c(x) * gauss, inverse=True)


def assemble(y: np.ndarray, mask: np.ndarray, reference: np.ndarray | None,
             spacing: tuple[float, float, float], source: str, info: dict[str, Any],
             progress=None, affine: np.ndarray | None = None) -> Measurement:
    """The Measurement of k-space y (N, C, H, W) sampled on `mask` (H, W): coil maps with the
    phase folded in, data scaled so the image lies in [0, 1] (intensity maps back), the
    reference (N, H, W) scaled alike; `affine` voxel -> RAS (`_mrgeometry`; default: the
    voxel size on the diagonal, orientation unknown)."""
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.complex64)) * torch.from_numpy(mask)
    if progress is None:
        from . import report_progress

        def progress(done: int, total: int) -> None:
            report_progress("coil maps (ESPIRiT)", done, total)
    maps, done = coil_maps_with_phase(yt, mask, progress)
    op = MulticoilMRI(mask, maps)
    with torch.no_grad():
        zf = op.pinv(yt)
    scale = float(zf.abs().max())
    if reference is not None:
        scale = max(scale, float(np.max(reference)))
    if not scale > 0:
        raise MeasurementError(f"{source}: the k-space holds no signal (all zero where sampled)")
    ref = None if reference is None else np.clip(reference / scale, 0, 1).astype(np.float32)
    affine = np.diag([*spacing, 1.0]) if affine is None else affine
    simulation = {"acquired": True, **info, **done, "scale": scale,
                  "achieved_acceleration": float(mask.size / mask.sum())}
    return Measurement(op, yt / scale, ref, affine, spacing, (0.0, scale), simulation, source)
