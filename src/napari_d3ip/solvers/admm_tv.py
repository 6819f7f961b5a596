"""ADMM-TV: the classical baseline, 3D anisotropic total variation without any diffusion prior.

argmin_x ½‖Ax - y‖² + λ Σ_d ‖D_d x‖₁ over the slice, row and column directions, by ADMM with
z = ∇x: x ← CG on (AᴴA + ρ∇ᵀ∇) x = Aᴴy + ρ∇ᵀ(z - u), z ← soft(∇x + u, λ/ρ), u ← u + ∇x - z.
λ and ρ are relative to `mean_eig`, the mean eigenvalue of AᴴA. Yields after each outer iteration so callers can watch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..operators.base import Operator
from .cg import cg
from .finite_diff import grad3, grad3_t, soft_threshold


def admm_tv(op: Operator, y: torch.Tensor, x_init: torch.Tensor, lam: float = 0.01,
            rho: float = 0.5, iters: int = 100, cg_steps: int = 5,
            mean_eig: float = 1.0) -> Iterator[torch.Tensor]:
    """Yield the estimate (N, 1, H, W) after each ADMM iteration."""
    lam, rho = lam * mean_eig, rho * mean_eig
    x = x_init
    aty = op.adjoint(y)
    z = grad3(x)
    u = torch.zeros_like(z)

    def normal(v: torch.Tensor) -> torch.Tensor:
        return op.normal(v) + rho * grad3_t(grad3(v))

    for _ in range(iters):
        x = cg(normal, aty + rho * grad3_t(z - u), x, cg_steps, coupled=True)
        gx = grad3(x)
        z = soft_threshold(gx + u, lam / rho)
        u = u + gx - z
        yield x
