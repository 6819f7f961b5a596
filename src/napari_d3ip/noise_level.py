"""The noise level of a measurement, estimated from the data alone (no reference needed).

A run without a reference cannot report PSNR; it reports the data residual ‖Ax − y‖ / ‖y‖,
and that number means little without the noise it should be compared with: a fit at the
noise level leaves ‖n‖ / ‖y‖ = σ / rms(y), a smaller residual fits the noise (over-fitting),
a much larger one misses signal. So the run card and the CLI give σ estimated here.

Estimators (robust: the median ignores the few entries that still carry signal):
- complex (Cartesian k-space, grid = the last two axes, DC at the centre): the signal of an
  image decays fast away from DC, so the k-space corners hold mostly noise. The sampled
  entries outside the ellipse inscribed in the grid (normalised radius > 1; if fewer than 256
  are sampled there, the outer 10 % of the sampled entries by radius) give σ² = median |y|² /
  ln 2 (for circular complex Gaussian noise |n|² is exponential with mean σ²).
- real (sinograms, detector = the last axis): the second difference along the detector,
  y[j-1] − 2 y[j] + y[j+1], removes the smooth projection of the object and multiplies white
  noise variance by 6; σ = 1.4826 · MAD / √6 (the median absolute deviation's Gaussian scale).
σ is in the measurement's units; `relative_to_mean` = σ / mean |y| is the convention of
`Operator.simulate`'s `noise` (0.01 = 1 %), `relative_to_rms` = σ / rms(y) the residual of a
fit at the noise level.
"""

from __future__ import annotations

import math
from typing import Any

import torch

MIN_CORNER = 256
OUTER_FRACTION = 0.10


def _kspace_sigma(y: torch.Tensor, support: torch.Tensor) -> tuple[float, str]:
    h, w = y.shape[-2:]
    ky = (torch.arange(h, dtype=torch.float32) - h // 2) / max(h / 2, 1)
    kx = (torch.arange(w, dtype=torch.float32) - w // 2) / max(w / 2, 1)
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2).expand(y.shape)
    r = radius[support]
    power = y[support].abs().pow(2)
    corner = r > 1.0
    if int(corner.sum()) >= MIN_CORNER:
        picked, where = power[corner], "the sampled k-space corners (radius > 1)"
    else:
        k = max(1, int(math.ceil(OUTER_FRACTION * r.numel())))
        picked, where = power[torch.topk(r, k).indices], "the outer 10 % of sampled k-space"
    sigma = math.sqrt(float(picked.median()) / math.log(2.0))
    return sigma, f"median |y|^2 / ln 2 over {where}, {picked.numel()} samples"


def _sinogram_sigma(y: torch.Tensor) -> tuple[float, str]:
    d = y[..., :-2] - 2.0 * y[..., 1:-1] + y[..., 2:]
    d = d.reshape(-1).to(torch.float64)
    mad = float((d - d.median()).abs().median())
    sigma = 1.4826 * mad / math.sqrt(6.0)
    return sigma, f"1.4826 MAD / sqrt(6) of the second difference along the detector, {d.numel()} samples"


def estimate_noise(y: torch.Tensor, support: torch.Tensor | None = None) -> dict[str, Any]:
    """σ of the measurement `y` (complex k-space or a real sinogram) from the data alone, with
    the two relative levels and the estimator used (see the module docstring)."""
    y = y.detach().cpu()
    sup = torch.ones_like(y, dtype=torch.bool) if support is None else support.detach().cpu().bool()
    if y.shape[-1] < 3 or int(sup.sum()) < 8:
        return {"sigma": None, "relative_to_mean": None, "relative_to_rms": None,
                "estimator": "too few samples to estimate the noise"}  # None: strict JSON
    sigma, how = _kspace_sigma(y, sup) if y.is_complex() else _sinogram_sigma(y)
    vals = y[sup].abs().to(torch.float64)
    mean, rms = float(vals.mean()), float(vals.pow(2).mean().sqrt())
    return {"sigma": sigma, "relative_to_mean": sigma / mean if mean > 0 else None,
            "relative_to_rms": sigma / rms if rms > 0 else None, "estimator": how}


def measurement_noise(m: Any) -> dict[str, Any]:
    """`estimate_noise` of a Measurement, over the entries its operator measures."""
    with torch.no_grad():
        support = m.operator.measured_support(m.y)
    return estimate_noise(m.y, support)
