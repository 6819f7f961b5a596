"""Coil sensitivity maps: simulated birdcage coils and ESPIRiT estimation (in torch).

ESPIRiT (Uecker et al., MRM 2014), as implemented here from the method:
1. the calibration matrix: every kh x kw patch of the fully sampled centre of k-space, all
   coils stacked, one patch per row;
2. its SVD (via the Gram matrix); the right singular vectors with singular value > thresh *
   the largest span the signal subspace (the "k-space kernels");
3. projecting every patch onto that subspace and averaging the overlapping patches back is a
   convolution in k-space, i.e. a C x C matrix G(r) at every pixel r in image space; with P the
   projector on the kernel span (index (coil, offset)) the convolution kernel is
   K_cc'(d) = 1/(kh kw) sum_{o' - o = d} P[(c, o), (c', o')] and
   G(r) = sum_d K(d) exp(-2 pi i d.r / N) (one FFT per coil pair);
4. the coil maps are the top eigenvectors of G(r) (eigenvalue ~ 1, found by repeated
   squaring, see `_top_eigenpairs`), kept where that eigenvalue exceeds `crop` (zero
   elsewhere), with their phase made relative to a reference coil (whose map is then real and
   non-negative).

Both functions return torch complex tensors (coils on dim -3).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import OperatorError


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    out = (int(v), int(v)) if isinstance(v, int | np.integer) else tuple(int(a) for a in v)
    if len(out) != 2 or min(out) < 1:
        raise OperatorError(f"{name} must be a positive int or a pair (h, w), got {v!r}")
    return out


def _phase_to_reference(maps: torch.Tensor, ref_coil: int) -> torch.Tensor:
    """Remove, per pixel, the phase of coil `ref_coil` from all coils (coils on dim -3)."""
    ref = maps.select(-3, ref_coil).unsqueeze(-3)
    phase = torch.where(ref.abs() > 0, ref / ref.abs().clamp_min(1e-30), torch.ones_like(ref))
    return maps * phase.conj()


def birdcage_maps(n_coils: int, shape: tuple[int, int], radius: float = 1.8,
                  ref_coil: int | None = 0, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """Smooth simulated sensitivities (C, H, W) of `n_coils` loops on a circle around the FOV.

    Coil c sits at angle 2 pi c / C and distance `radius` (in units of the FOV half-width) from
    the centre; its sensitivity decays as 1 / distance and its phase turns with the direction
    from the coil (plus the coil's angle), as for the field of a small loop. The maps are then
    normalised so that sum_c |S_c|^2 = 1 at every pixel, and (with `ref_coil`) their phase is
    made relative to that coil, the same convention as `espirit_maps`, so a real image stays
    consistent with ESPIRiT estimates in simulations.
    """
    if int(n_coils) < 1:
        raise OperatorError(f"n_coils must be >= 1, got {n_coils}")
    if radius <= math.sqrt(2):
        raise OperatorError(f"radius must exceed sqrt(2) (coils outside the FOV), got {radius}")
    h, w = (int(s) for s in shape)
    y = (torch.arange(h, dtype=torch.float64) - h // 2) / (h / 2)
    x = (torch.arange(w, dtype=torch.float64) - w // 2) / (w / 2)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    maps = []
    for c in range(int(n_coils)):
        ang = 2 * math.pi * c / n_coils
        dy, dx = yy - radius * math.sin(ang), xx - radius * math.cos(ang)
        dist = torch.sqrt(dx**2 + dy**2)
        phase = torch.atan2(dy, dx) + ang
        maps.append(torch.polar(1.0 / dist, phase))
    s = torch.stack(maps)
    s = s / (s.abs() ** 2).sum(0, keepdim=True).sqrt()
    if ref_coil is not None:
        s = _phase_to_reference(s, int(ref_coil))
    return s.to(device=device, dtype=dtype)


def _calib_region(kspace: torch.Tensor, calib: tuple[int, int]) -> torch.Tensor:
    h, w = kspace.shape[-2:]
    ch, cw = min(calib[0], h), min(calib[1], w)
    r0, c0 = h // 2 - ch // 2, w // 2 - cw // 2
    return kspace[..., r0:r0 + ch, c0:c0 + cw]


def _top_eigenpairs(g: torch.Tensor, squarings: int = 6, refine: int = 2
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest eigenvalue and its unit eigenvector of many small Hermitian PSD matrices
    (..., C, C). Repeated squaring (G^64, rescaled by its trace each time) makes every column
    parallel to the top eigenvector wherever lambda_2 / lambda_1 < ~0.9; two power steps and the
    Rayleigh quotient then refine it. A few batched C x C matmuls instead of a batched eigh,
    which is ~20x slower (and erratic on a busy multi-threaded CPU)."""
    m = g
    for _ in range(squarings):
        tr = torch.diagonal(m, dim1=-2, dim2=-1).sum(-1).real.clamp_min(1e-30)
        m = m / tr[..., None, None]
        m = m @ m
    best = (m.abs() ** 2).sum(-2).argmax(-1)  # the column of largest norm
    v = torch.gather(m, -1, best[..., None, None].expand(*m.shape[:-1], 1))
    for _ in range(refine):
        v = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True).clamp_min(1e-30)
        v = g @ v
    v = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True).clamp_min(1e-30)
    lam = (v.conj() * (g @ v)).sum(-2).real[..., 0]
    return lam, v[..., 0]


def _espirit_one(calib: torch.Tensor, shape: tuple[int, int], kernel: tuple[int, int],
                 thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT for one slice: calib (C, ch, cw) -> (top eigenvalue (H, W), maps (C, H, W))."""
    c = calib.shape[0]
    h, w = shape
    kh, kw = kernel
    # 1-2. calibration matrix (patches, C*kh*kw) and its right singular vectors V, sv^2, via
    # the Gram matrix A^H A = V diag(sv^2) V^H in float64 (faster than a complex SVD)
    patches = calib.unfold(1, kh, 1).unfold(2, kw, 1)  # (C, ph, pw, kh, kw)
    amat = patches.permute(1, 2, 0, 3, 4).reshape(-1, c * kh * kw).to(torch.complex128)
    sv2, v = torch.linalg.eigh(amat.mH @ amat)  # ascending
    keep = sv2 > thresh**2 * sv2[-1]
    # patches (rows of A) lie in the span of the rows of V^H: projector P = sum_n b_n b_n^H
    b = v.mH[keep]
    proj = (b.transpose(-1, -2) @ b.conj()).to(torch.complex64)  # (C*kh*kw, C*kh*kw)

    # 3. k-space convolution kernel K(d), d = o' - o, then G(r) by one FFT per coil pair
    proj = proj.reshape(c, kh * kw, c, kh * kw).permute(1, 3, 0, 2)  # (o, o', C, C)
    oy, ox = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
    oy, ox = oy.reshape(-1), ox.reshape(-1)
    dy = (oy[None, :] - oy[:, None]).reshape(-1)  # o' - o for every (o, o') pair
    dx = (ox[None, :] - ox[:, None]).reshape(-1)
    grid = torch.zeros(h * w, c, c, dtype=proj.dtype, device=proj.device)
    flat = ((dy % h) * w + (dx % w)).to(proj.device)  # d placed at index d mod N
    grid.index_add_(0, flat, proj.reshape(-1, c, c) / (kh * kw))
    grid = grid.reshape(h, w, c, c).permute(2, 3, 0, 1)
    gmat = torch.fft.fftshift(torch.fft.fft2(grid), dim=(-2, -1))  # G at centred pixel r
    gmat = gmat.permute(2, 3, 0, 1)  # (H, W, C, C), Hermitian
    gmat = 0.5 * (gmat + gmat.mH)

    # 4. top eigenpair per pixel
    lam, vec = _top_eigenpairs(gmat)
    return lam, vec.permute(2, 0, 1)


def espirit_maps(kspace: torch.Tensor | np.ndarray, calib_size: int | tuple[int, int] = 24,
                 kernel: int | tuple[int, int] = 6, thresh: float = 0.02, crop: float = 0.95,
                 ref_coil: int = 0, return_eigenvalues: bool = False
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT coil maps from centred k-space (C, H, W) or (N, C, H, W), one set per slice.

    Only the centred `calib_size` block is read (it must be fully sampled: the ACS region, e.g.
    (H, n_acs) for ACS lines); the kernel is clamped to it. Keep it well inside the region (for
    n_acs ACS lines, a kernel width ~ n_acs / 3): a kernel nearly as wide as the region leaves
    too few shifts, the eigenvalues drop and `crop` zeroes the maps on the object.

    Returns maps of the input's shape (complex64, on the input's device; zero where the top
    eigenvalue <= `crop`, unit norm over coils elsewhere); with `return_eigenvalues` also that
    eigenvalue per pixel, (N, H, W) or (H, W), which is ~1 where the data fit the coil model.
    """
    k = torch.as_tensor(kspace)
    single = k.dim() == 3
    if single:
        k = k[None]
    if k.dim() != 4:
        raise OperatorError(f"k-space must be (C, H, W) or (N, C, H, W), got {tuple(k.shape)}")
    if not 0 < thresh < 1 or not 0 <= crop < 1:
        raise OperatorError(f"need 0 < thresh < 1 and 0 <= crop < 1, got {thresh}, {crop}")
    n, c, h, w = k.shape
    if not 0 <= ref_coil < c:
        raise OperatorError(f"ref_coil {ref_coil} out of range for {c} coils")
    calib = _calib_region(k.to(torch.complex64), _pair(calib_size, "calib_size"))
    ch, cw = calib.shape[-2:]
    kh, kw = (min(a, b) for a, b in zip(_pair(kernel, "kernel"), (ch, cw), strict=True))
    lams, maps = [], []
    for i in range(n):  # per slice: bounded memory, and no slow batched LAPACK calls
        lam, vec = _espirit_one(calib[i], (h, w), (kh, kw), thresh)
        vec = _phase_to_reference(vec, ref_coil) * (lam > crop)
        lams.append(lam)
        maps.append(vec)
    maps_t, lam_t = torch.stack(maps), torch.stack(lams)
    if single:
        maps_t, lam_t = maps_t[0], lam_t[0]
    return (maps_t, lam_t) if return_eigenvalues else maps_t
