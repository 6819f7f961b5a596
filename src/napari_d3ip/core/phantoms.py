"""Ellipses phantoms (2D) and ellipsoid phantom volumes (3D), generated on the fly in torch.

The distribution follows ALGORITHM.md 2b (the SCD/DDIP training data, ODL conventions on
[-1, 1]^d): n = min(Poisson(n_mean), n_max) additive shapes with value U(-0.4, 1), semi-axes
0.2 * d * Exp(1) with d = 0.4745, centres at radius Triangular(0, d, d) (mode d) and a uniform
angle, uniform rotation; then foreground shifted to start at 0 and the whole image divided by
its maximum, so values lie in [0, 1] and the background is exactly 0.

Parameters are drawn on the CPU from a seeded generator, so a seed gives the same phantoms on
every device; only the rasterisation runs on `device`.
"""

from __future__ import annotations

import math

import torch

D = 0.4745
VALUE_RANGE = (-0.4, 1.0)


def _generator(seed: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else torch.seed())
    return g


def _counts(batch: int, n_mean: float, n_max: int, g: torch.Generator) -> torch.Tensor:
    n = torch.poisson(torch.full((batch,), float(n_mean)), generator=g).long()
    return n.clamp(max=n_max)


def _triangular_mode_at_max(shape, d: float, g: torch.Generator) -> torch.Tensor:
    """Triangular(0, d, d): density 2r/d^2, sampled by inversion r = d sqrt(u)."""
    return d * torch.rand(shape, generator=g).sqrt()


def _normalise(img: torch.Tensor) -> torch.Tensor:
    """Per image: shift the foreground so its minimum is 0, divide by the maximum."""
    flat = img.reshape(img.shape[0], -1)
    fg = flat != 0
    big = torch.finfo(flat.dtype).max
    mins = torch.where(fg, flat, torch.full_like(flat, big)).min(dim=1).values
    mins = torch.where(fg.any(dim=1), mins, torch.zeros_like(mins))
    flat = torch.where(fg, flat - mins[:, None], flat)
    maxs = flat.max(dim=1).values.clamp_min(1e-12)
    flat = torch.where(fg.any(dim=1, keepdim=True), flat / maxs[:, None], flat)
    return flat.reshape(img.shape)


def ellipse_parameters(
    batch: int, n_mean: float = 140.0, n_max: int = 140, seed: int | torch.Generator | None = 0
) -> dict[str, torch.Tensor]:
    """Draw ellipse parameters, padded to n_max per image with `active` marking real ones."""
    g = _generator(seed)
    counts = _counts(batch, n_mean, n_max, g)
    shape = (batch, n_max)
    value = VALUE_RANGE[0] + (VALUE_RANGE[1] - VALUE_RANGE[0]) * torch.rand(shape, generator=g)
    exp = torch.empty(batch, n_max, 2).exponential_(1.0, generator=g)
    axes = 0.2 * D * exp
    radius = _triangular_mode_at_max(shape, D, g)
    angle = 2 * math.pi * torch.rand(shape, generator=g)
    rotation = 2 * math.pi * torch.rand(shape, generator=g)
    active = torch.arange(n_max)[None, :] < counts[:, None]
    return {
        "count": counts,
        "active": active,
        "value": value,
        "axes": axes,
        "center": torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1),
        "rotation": rotation,
    }


def ellipses(
    batch: int,
    size: int = 64,
    n_mean: float = 140.0,
    n_max: int = 140,
    seed: int | torch.Generator | None = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A batch of Ellipses phantoms, shape (batch, 1, size, size), float32 in [0, 1]."""
    p = {k: v.to(device) for k, v in ellipse_parameters(batch, n_mean, n_max, seed).items()}
    coords = torch.linspace(-1.0, 1.0, size, device=device)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    img = torch.zeros(batch, size * size, device=device)
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)  # (P, 2)
    chunk = 16  # ellipses per pass keeps memory ~ batch*chunk*P
    for s in range(0, n_max, chunk):
        sl = slice(s, s + chunk)
        c, r = p["center"][:, sl], p["rotation"][:, sl]
        d = pts[None, None] - c[:, :, None]  # (B, k, P, 2)
        cos, sin = torch.cos(r)[..., None], torch.sin(r)[..., None]
        u = cos * d[..., 0] + sin * d[..., 1]
        v = -sin * d[..., 0] + cos * d[..., 1]
        a, b = p["axes"][:, sl, 0:1], p["axes"][:, sl, 1:2]
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        w = (p["value"][:, sl] * p["active"][:, sl])[..., None]
        img = img + (inside * w).sum(1)
    return _normalise(img).reshape(batch, 1, size, size)


def _rotation_matrices(n: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Uniformly random 3D rotations via normalised Gaussian quaternions, shape (*n, 3, 3)."""
    q = torch.randn(*n, 4, generator=g)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*n, 3, 3)


def ellipsoid_volume(
    size: int | tuple[int, int, int] = 64,
    n_mean: float = 40.0,
    n_max: int = 140,
    seed: int | torch.Generator | None = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """One 3D ellipsoid phantom (slices, H, W) in [0, 1] with background 0.

    The 3D analogue of the Ellipses recipe; coherent across slices, used for tests and as a
    phantom sample volume.
    """
    g = _generator(seed)
    dims = (size,) * 3 if isinstance(size, int) else tuple(size)
    n = int(_counts(1, n_mean, n_max, g)[0])
    value = VALUE_RANGE[0] + (VALUE_RANGE[1] - VALUE_RANGE[0]) * torch.rand(n, generator=g)
    axes = 0.2 * D * torch.empty(n, 3).exponential_(1.0, generator=g) * 1.5
    radius = D * torch.rand(n, generator=g) ** (1.0 / 3.0)
    direction = torch.randn(n, 3, generator=g)
    center = radius[:, None] * direction / direction.norm(dim=-1, keepdim=True)
    rot = _rotation_matrices((n,), g)
    axes, value, center, rot = (t.to(device) for t in (axes, value, center, rot))
    grids = torch.meshgrid(*[torch.linspace(-1, 1, s, device=device) for s in dims], indexing="ij")
    pts = torch.stack([gr.reshape(-1) for gr in grids], -1)
    vol = torch.zeros(pts.shape[0], device=device)
    for i in range(n):
        local = (pts - center[i]) @ rot[i]
        inside = ((local / axes[i]) ** 2).sum(-1) <= 1.0
        vol = vol + inside * value[i]
    return _normalise(vol[None]).reshape(dims)
