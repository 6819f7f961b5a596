"""Forward differences and their adjoints on (N, 1, H, W) volumes (N = slice axis)."""

from __future__ import annotations

import torch


def dz(x: torch.Tensor) -> torch.Tensor:
    """Forward difference along the slice axis; the last slice's difference is 0 (Neumann)."""
    return torch.cat([x[1:] - x[:-1], torch.zeros_like(x[:1])], dim=0)


def dz_t(d: torch.Tensor) -> torch.Tensor:
    """Adjoint of `dz`."""
    first = -d[:1]
    middle = d[:-2] - d[1:-1]
    last = d[-2:-1]
    if d.shape[0] == 1:
        return torch.zeros_like(d)
    return torch.cat([first, middle, last], dim=0)


def _d(x: torch.Tensor, dim: int) -> torch.Tensor:
    if dim == 0:
        return dz(x)
    pad = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.cat([x.narrow(dim, 1, x.shape[dim] - 1) - x.narrow(dim, 0, x.shape[dim] - 1), pad], dim)


def _d_t(d: torch.Tensor, dim: int) -> torch.Tensor:
    if dim == 0:
        return dz_t(d)
    n = d.shape[dim]
    if n == 1:
        return torch.zeros_like(d)
    first = -d.narrow(dim, 0, 1)
    middle = d.narrow(dim, 0, n - 2) - d.narrow(dim, 1, n - 2)
    last = d.narrow(dim, n - 2, 1)
    return torch.cat([first, middle, last], dim)


def diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Forward difference along `dim` (0 at the far end, Neumann)."""
    return _d(x, dim)


def diff_t(d: torch.Tensor, dim: int) -> torch.Tensor:
    """Adjoint of `diff` along `dim`."""
    return _d_t(d, dim)


def grad3(x: torch.Tensor) -> torch.Tensor:
    """3D forward-difference gradient (3, N, 1, H, W) along slice, row and column."""
    return torch.stack([_d(x, 0), _d(x, 2), _d(x, 3)])


def grad3_t(g: torch.Tensor) -> torch.Tensor:
    """Adjoint of `grad3` (negative divergence)."""
    return _d_t(g[0], 0) + _d_t(g[1], 2) + _d_t(g[2], 3)


def soft_threshold(x: torch.Tensor, tau: float) -> torch.Tensor:
    return torch.sign(x) * torch.clamp(x.abs() - tau, min=0.0)
