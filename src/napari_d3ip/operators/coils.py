"""Coil sensitivity maps: simulated birdcage coils and ESPIRiT estimation (in torch).

ESPIRiT (Uecker et al., MRM 2014), as implemented here from the method:
1. the calibration matrix: every kh x kw patch of the fully sampled centre of k-space, all
   coils stacked, one patch per row;
2. its SVD; the right singular vectors with singular value > thresh * the largest span the
   signal subspace (the "k-space kernels");
3. projecting every patch onto that subspace and averaging the overlapping patches back is a
   convolution in k-space, i.e. a C x C matrix G(r) at every pixel r in image space; with P the
   projector on the kernel span (index (coil, offset)) the convolution kernel is
   K_cc'(d) = 1/(kh kw) sum_{o' - o = d} P[(c, o), (c', o')] and G(r) = sum_d K(d) e^{-2 pi i d.r/N};
4. the coil maps are the eigenvectors of G(r) with eigenvalue ~ 1 (kept where the largest
   eigenvalue exceeds `crop`, zero elsewhere), with their phase made relative to a reference
   coil (so that coil's map is real and non-negative).

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


def espirit_maps(kspace: torch.Tensor | np.ndarray, calib_size: int | tuple[int, int] = 24,
                 kernel: int | tuple[int, int] = 6, thresh: float = 0.02, crop: float = 0.95,
                 ref_coil: int = 0, return_eigenvalues: bool = False
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT coil maps from centred k-space (C, H, W) or (N, C, H, W), one set per slice.

    Only the centred `calib_size` block is read (it must be fully sampled: the ACS region, e.g.
    (H, n_acs) for ACS lines); the kernel is clamped to it. Returns maps of the input's shape
    (complex64, on the input's device); with `return_eigenvalues` also the largest eigenvalue
    of G per pixel, (N, H, W) or (H, W), which is ~1 where the data fit the coil model.
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
    k = k.to(torch.complex64)
    calib = _calib_region(k, _pair(calib_size, "calib_size"))
    ch, cw = calib.shape[-2:]
    kh, kw = (min(a, b) for a, b in zip(_pair(kernel, "kernel"), (ch, cw), strict=True))

    # 1-2. calibration matrix (N, patches, C*kh*kw) and its right singular vectors
    patches = calib.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C, ph, pw, kh, kw)
    amat = patches.permute(0, 2, 3, 1, 4, 5).reshape(n, -1, c * kh * kw)
    _, sv, vh = torch.linalg.svd(amat, full_matrices=False)
    keep = (sv > thresh * sv[:, :1]).to(vh.dtype)  # (N, r)
    # the patch rows lie in the span of the rows of vh: projector P = sum_n b_n b_n^H
    b = vh * keep[..., None]
    proj = b.transpose(-1, -2) @ b.conj()  # (N, C*kh*kw, C*kh*kw)

    # 3. k-space convolution kernel K(d), d = o' - o, then G(r) by one FFT per coil pair
    proj = proj.reshape(n, c, kh * kw, c, kh * kw).permute(0, 2, 4, 1, 3)  # (N, o, o', C, C)
    oy, ox = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
    oy, ox = oy.reshape(-1), ox.reshape(-1)
    dy = (oy[None, :] - oy[:, None]).reshape(-1)  # o' - o for every (o, o') pair
    dx = (ox[None, :] - ox[:, None]).reshape(-1)
    grid = torch.zeros(n, h * w, c, c, dtype=proj.dtype, device=proj.device)
    flat = ((dy % h) * w + (dx % w)).to(proj.device)  # d placed at index d mod N
    grid.index_add_(1, flat, proj.reshape(n, -1, c, c) / (kh * kw))
    grid = grid.reshape(n, h, w, c, c).permute(0, 3, 4, 1, 2)
    gmat = torch.fft.fftshift(torch.fft.fft2(grid), dim=(-2, -1))  # G at centred pixel r
    gmat = gmat.permute(0, 3, 4, 1, 2)  # (N, H, W, C, C), Hermitian
    gmat = 0.5 * (gmat + gmat.conj().transpose(-1, -2))

    # 4. top eigenvector per pixel, phase relative to the reference coil, crop
    evals, evecs = torch.linalg.eigh(gmat)
    lam = evals[..., -1]
    maps = evecs[..., -1].permute(0, 3, 1, 2)  # (N, C, H, W)
    maps = _phase_to_reference(maps, ref_coil)
    maps = maps * (lam > crop)[:, None]
    if single:
        maps, lam = maps[0], lam[0]
    return (maps, lam) if return_eigenvalues else maps
