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


# -- "organic" phantoms: generated, yet less foreign to anatomy than ellipses ------------------
#
# Why (quality issue, item 2): the Ellipses prior denoises real anatomy at low noise barely
# better than TV, because nothing it saw had smooth intensity gradients, texture, soft edges or
# the nested, non-convex shapes of tissue. These phantoms keep the paper's premise (no
# gold-standard images: every pixel is drawn from a seeded random recipe) and add exactly those
# four things to a nested ellipse layout. Each image is, in order:
#   body      one large rotated ellipse (value U(0.3, 0.8)), with probability 1/2 a bright shell
#             (a thinner concentric ellipse ring, value U(0.6, 1)) around it;
#   regions   level sets of a smooth Gaussian random field inside the body (non-convex, nested
#             blobs, value U(-0.35, 0.35) each, 2-4 levels), and Poisson(8) small ellipses;
#   gradient  a smooth multiplicative bias field 1 + quadratic(x, y) of amplitude U(0, 0.3);
#   soft      a Gaussian blur of U(0, 1.5) pixels (edges from sharp to partial-volume soft);
#   texture   band-limited noise (low-pass Gaussian field) of amplitude U(0, 0.06) in the body;
# then clipped at 0 and divided by the maximum, as the Ellipses recipe. A fraction
# `ellipse_fraction` of each batch are plain Ellipses phantoms, so the family contains the old one.


def _smooth_field(batch: int, size: int, cutoff: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Unit-variance Gaussian random fields low-passed at `cutoff` (cycles per image, per image)."""
    white = torch.randn(batch, size, size, generator=g)
    f = torch.fft.fftfreq(size) * size
    r2 = f[:, None] ** 2 + f[None, :] ** 2
    filt = torch.exp(-r2[None] / (2 * cutoff[:, None, None] ** 2))
    field = torch.fft.ifft2(torch.fft.fft2(white) * filt).real
    return field / field.flatten(1).std(dim=1).clamp_min(1e-8)[:, None, None]


def _gaussian_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (sigma in pixels, 0 = none) in the Fourier domain (periodic; the
    background is 0 at the border, so wrap-around is harmless)."""
    size = img.shape[-1]
    f = torch.fft.fftfreq(size)
    r2 = f[:, None] ** 2 + f[None, :] ** 2
    filt = torch.exp(-2 * math.pi**2 * r2[None] * sigma[:, None, None] ** 2)
    return torch.fft.ifft2(torch.fft.fft2(img) * filt).real


def _inside_ellipse(xx, yy, cx, cy, a, b, rot):
    """Boolean masks (batch, H, W) of rotated ellipses given per-image parameters (batch,)."""
    cos, sin = torch.cos(rot)[:, None, None], torch.sin(rot)[:, None, None]
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    return (u / a[:, None, None]) ** 2 + (v / b[:, None, None]) ** 2 <= 1.0


def organic(
    batch: int,
    size: int = 64,
    seed: int | torch.Generator | None = 0,
    device: torch.device | str = "cpu",
    ellipse_fraction: float = 0.25,
) -> torch.Tensor:
    """A batch of organic phantoms, shape (batch, 1, size, size), float32 in [0, 1].

    Everything is drawn on the CPU from the seeded generator (the same images on every device)
    and moved to `device` at the end."""
    g = _generator(seed)
    u = lambda lo, hi, n=batch: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    coords = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    # body and shell
    a, b = u(0.55, 0.92), u(0.45, 0.85)
    cx, cy, rot = u(-0.08, 0.08), u(-0.08, 0.08), u(0, 2 * math.pi)
    body = _inside_ellipse(xx, yy, cx, cy, a, b, rot).float()
    img = body * u(0.3, 0.8)[:, None, None]
    thick = u(0.04, 0.12)
    shell_on = (torch.rand(batch, generator=g) < 0.5).float()[:, None, None]
    outer = _inside_ellipse(xx, yy, cx, cy, a + thick, b + thick, rot).float()
    img = img + shell_on * (outer - body) * u(0.6, 1.0)[:, None, None]
    # nested non-convex regions: level sets of a smooth field, inside the body
    field = _smooth_field(batch, size, u(1.5, 4.0), g)
    levels = torch.randint(2, 5, (batch,), generator=g)
    for k in range(4):
        on = (k < levels).float()[:, None, None]
        thr = u(-0.6, 1.2)[:, None, None]
        img = img + on * body * (field > thr + 0.35 * k).float() * u(-0.35, 0.35)[:, None, None]
    # small ellipses (lesions, vessels, ventricles)
    n_small = torch.poisson(torch.full((batch,), 8.0), generator=g).long().clamp(max=16)
    for k in range(16):
        on = (k < n_small).float()[:, None, None]
        r, ang = a * u(0, 0.8), u(0, 2 * math.pi)
        m = _inside_ellipse(xx, yy, cx + r * torch.cos(ang), cy + r * torch.sin(ang),
                            u(0.02, 0.18), u(0.02, 0.12), u(0, 2 * math.pi)).float()
        img = img + on * body * m * u(-0.4, 0.4)[:, None, None]
    # smooth multiplicative gradient (bias field)
    amp = u(0.0, 0.3)[:, None, None]
    c = torch.randn(batch, 5, generator=g)
    bias = (c[:, 0, None, None] * xx + c[:, 1, None, None] * yy + c[:, 2, None, None] * xx * yy
            + c[:, 3, None, None] * xx**2 + c[:, 4, None, None] * yy**2) / 2.5
    img = img * (1 + amp * bias.clamp(-1, 1))
    # soft edges, then texture inside the body
    img = _gaussian_blur(img, u(0.0, 1.5))
    tex = _smooth_field(batch, size, u(4.0, 16.0), g) * u(0.0, 0.06)[:, None, None]
    img = img + tex * _gaussian_blur(body, torch.full((batch,), 1.0))
    img = img.clamp_min(0)
    img = img / img.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    # a fraction of plain Ellipses phantoms: the family contains the old one
    plain = torch.rand(batch, generator=g) < ellipse_fraction
    if plain.any():
        img[plain] = ellipses(int(plain.sum()), size, seed=g)[:, 0]
    return img[:, None].contiguous().to(device)


# phantom families a prior can be trained on: name -> fn(batch, size, seed=, device=)
FAMILIES = {
    "ellipses": lambda batch, size, n_mean=140.0, n_max=140, seed=0, device="cpu":
        ellipses(batch, size, n_mean, n_max, seed=seed, device=device),
    "organic": lambda batch, size, n_mean=140.0, n_max=140, seed=0, device="cpu":
        organic(batch, size, seed=seed, device=device),
}
