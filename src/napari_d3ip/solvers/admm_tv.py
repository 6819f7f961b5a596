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


def steps(m, cfg, t0: float):
    """ADMM-TV as a reconstruction method (methods.py): yields a `Step` per iteration and
    returns (volume (N, H, W) in [0, 1], run-card entries). No prior; in a distributed run
    every rank computes the whole volume."""
    import time

    import numpy as np

    from ..events import Step
    from ..metrics import mean_psnr

    norm2, mean_eig = m.norms()
    x = m.pinv_tensor(cfg.batch_slices)
    ref = m.reference
    with torch.no_grad():
        iterates = admm_tv(m.operator, m.y, x, cfg.tv_lambda, cfg.admm_rho, cfg.tv_iters,
                           cfg.cg_steps, mean_eig)
        for i, x in enumerate(iterates):  # noqa: B020 (x is the running iterate)
            est = x[:, 0].float().cpu().numpy()
            elapsed = time.perf_counter() - t0
            yield Step(index=i, t=0, total=cfg.tv_iters, phase="iterating", estimate=est,
                       loss=m.loss(x, cfg.batch_slices), elapsed=elapsed,
                       eta=elapsed / (i + 1) * (cfg.tv_iters - i - 1),
                       psnr=mean_psnr(np.clip(est, 0, 1), ref) if ref is not None else None)
    volume = x[:, 0].clamp(0, 1).float().cpu().numpy()
    return volume, {"timings": {"total_seconds": round(time.perf_counter() - t0, 3)},
                    "adaptation": {"adapter": "none"}, "operator_norm2": norm2,
                    "operator_mean_eigenvalue": mean_eig}


def cpu_seconds(n: int, h: int, w: int, cfg) -> float:
    """The cost model's time of ADMM-TV on a 2-core CPU (cost.estimate_cost): ~2 ms per
    iteration and 64x64 slice."""
    return 0.002 * (h * w / 4096.0) * n * cfg.tv_iters
