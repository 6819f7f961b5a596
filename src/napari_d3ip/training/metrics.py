"""Validation of a prior while (and after) it trains: Tweedie denoising PSNR on fixed phantoms
against the best linear baseline (Gaussian blur + oracle affine fit) of the same noisy inputs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.prior import Prior
from ..core.schedule import q_sample
from .phantoms import ellipses

VAL_TIMES = (50, 200, 500, 800, 980)


def validation_set(size: int, n: int = 64, n_mean: float = 140.0, seed: int = 123_456,
                   render: int | None = None):
    """Fixed phantoms and noise for the Tweedie-denoising validation (the central size x size
    patch of phantoms drawn at `render` pixels for a patch prior)."""
    g = torch.Generator().manual_seed(seed)
    x0 = ellipses(n, max(size, render or size), n_mean, 140, seed=g)
    if x0.shape[-1] > size:
        o = (x0.shape[-1] - size) // 2
        x0 = x0[..., o:o + size, o:o + size].contiguous()
    noise = torch.randn(x0.shape, generator=g)
    return x0, noise


def psnr_batch(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean PSNR over images, data range 1 (phantoms live in [0, 1])."""
    mse = ((x - ref) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1.0 / mse)).mean())


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def best_blur_psnr(noisy_x0: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """The best linear baseline: Gaussian blur of the rescaled noisy image followed by the
    oracle affine intensity fit a*blur + b (fitted against `ref`), best over sigma; (psnr, sigma).

    The affine fit matters at high t, where a blur alone leaves noise of std ~ sqrt((1-ab)/ab)
    (25 at t = 800) and would make any network look good; with it the baseline tends to the
    mean image as t -> T.
    """
    best = (-1e9, 0.0)
    for sigma in [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0]:
        if math.ceil(3 * sigma) >= min(noisy_x0.shape[-2:]):
            break
        b = gaussian_blur(noisy_x0, sigma).flatten()
        r = ref.flatten()
        bc, rc = b - b.mean(), r - r.mean()
        a = float((bc * rc).sum() / (bc * bc).sum().clamp_min(1e-12))
        fit = (a * bc + r.mean()).view_as(ref)
        best = max(best, (psnr_batch(fit, ref), sigma))
    return best


@torch.no_grad()
def denoising_quality(prior: Prior, n: int = 64, n_mean: float = 140.0, times=VAL_TIMES,
                      batch: int = 16) -> dict[str, dict[str, float]]:
    """Tweedie PSNR vs the best Gaussian blur of the same noisy inputs at each t."""
    x0, noise = validation_set(prior.image_size, n, n_mean, render=prior.render_size)
    dev = prior.device
    out = {}
    for t in times:
        ab = prior.schedule.alpha_bar(t)
        xt = q_sample(x0, noise, ab)
        est = torch.cat([prior.tweedie(xt[i:i + batch].to(dev), t).cpu()
                         for i in range(0, n, batch)])
        blur_psnr, sigma = best_blur_psnr(xt / ab**0.5, x0)
        out[str(t)] = {"tweedie_psnr": psnr_batch(est.clamp(0, 1), x0),
                       "blur_psnr": blur_psnr, "blur_sigma": sigma}
    return out
