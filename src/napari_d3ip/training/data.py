"""The training data stream: each step's phantoms, times and noise come from a generator seeded by
(seed, step), so a resumed run sees exactly the data it would have seen."""

from __future__ import annotations

import torch

from .phantoms import FAMILIES
from .recipes import TrainConfig, render_size


def _step_generator(seed: int, step: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


def random_patches(images: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """One size x size crop per image at a position drawn from g (the identity if it fits)."""
    n, _, h, w = images.shape
    if h == size and w == size:
        return images
    top = torch.randint(0, h - size + 1, (n,), generator=g).tolist()
    left = torch.randint(0, w - size + 1, (n,), generator=g).tolist()
    return torch.stack([images[i, :, a:a + size, b:b + size] for i, (a, b) in enumerate(zip(top, left))])


def training_batch(cfg: TrainConfig, step: int, device: torch.device):
    """Phantoms, integer times and noise for one step, fully determined by (seed, step).

    A patch prior (render_size > size) draws each phantom at render_size, so its pixels have
    the scale of a render_size slice, and trains on a random size x size crop of it: a step
    costs what a size-pixel step costs, and the UNet (convolutional) is applied to whole
    render_size slices at reconstruction."""
    g = _step_generator(cfg.seed, step)
    x0 = FAMILIES[cfg.phantoms](cfg.batch, render_size(cfg), cfg.n_mean, cfg.n_max, seed=g, device=device)
    x0 = random_patches(x0, cfg.size, g)
    t = torch.randint(0, 1000, (cfg.batch,), generator=g)
    noise = torch.randn(x0.shape, generator=g).to(device)
    return x0, t.to(device), noise
