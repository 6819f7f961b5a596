"""Unconditional sampling from a prior (DDIM / DDS-form steps without data consistency)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .prior import Prior
from .schedule import dds_step, tweedie


@torch.no_grad()
def sample_prior(
    prior: Prior, n: int = 16, nfe: int = 50, eta: float = 0.85, seed: int = 0,
    size: int | None = None, batch: int = 16,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (step index, total steps, current x0 estimate (n, 1, H, W) on CPU).

    Starts from pure noise at the first grid time; the last yield is the sample. Seeded:
    the same seed gives the same samples on the same device.
    """
    size = size or prior.image_size
    dev = prior.device
    g = torch.Generator().manual_seed(int(seed))
    sched = prior.schedule
    grid = sched.time_grid(nfe)
    x = torch.randn(n, 1, size, size, generator=g).to(dev)
    for i, t in enumerate(grid):
        ab = sched.alpha_bar(t)
        ab_next = sched.alpha_bar(grid[i + 1]) if i + 1 < len(grid) else 1.0
        x0s, xs = [], []
        for s in range(0, n, batch):
            xb = x[s:s + batch]
            eps = prior.eps(xb, t)
            x0 = tweedie(xb, eps, ab).clamp(-1.0, 2.0)
            z = torch.randn(xb.shape, generator=g).to(dev)
            xs.append(dds_step(x0, eps, ab_next, eta, z))
            x0s.append(x0)
        x = torch.cat(xs)
        yield i, len(grid), torch.cat(x0s).cpu()


def montage(images, ncols: int | None = None, pad: int = 2):
    """(n, 1, H, W) tensor or (n, H, W) array -> one 2D float32 numpy array in [0, 1], tiled
    ceil(sqrt(n)) a row with `pad` pixels of zeros between images."""
    import math

    import numpy as np

    imgs = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    imgs = np.clip(imgs[:, 0] if imgs.ndim == 4 else imgs, 0, 1).astype(np.float32)
    n, h, w = imgs.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    out = np.zeros((nrows * (h + pad) - pad, ncols * (w + pad) - pad), np.float32)
    for k in range(n):
        r, c = divmod(k, ncols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = imgs[k]
    return out


def draw_samples(prior: Prior, n: int = 16, nfe: int = 50, eta: float = 0.85,
                 seed: int = 0) -> torch.Tensor:
    """Run `sample_prior` to the end and return the samples (n, 1, H, W) on CPU."""
    *_, (_, _, last) = sample_prior(prior, n, nfe, eta, seed)
    return last
