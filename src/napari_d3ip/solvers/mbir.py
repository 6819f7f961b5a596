"""DiffusionMBIR: a 3D-aware estimator with a total-variation prior along the slice axis.

x̂0|y ≈ argmin_x ½‖Ax - y‖² + λ‖D_z x‖₁, solved by ADMM with the split z = D_z x, started
(warm) at the Tweedie estimate x̂0 so the 2D diffusion prior enters through the starting point:
  x ← CG_M on (AᴴA + ρ D_zᵀD_z) x = Aᴴy + ρ D_zᵀ(z - u)   (from x̂0)
  z ← soft(D_z x + u, λ/ρ);  u ← u + D_z x - z
The duals (z, u) persist across diffusion steps. λ and ρ are relative to the mean eigenvalue
of AᴴA (`mean_eig`), the typical weight of the data term.
Needs neighbouring slices together: called on the whole volume (or a contiguous block); in a
distributed run on a slab, whose `ZCoupling` trades the boundary slices with the neighbouring
ranks and sums the CG inner products over the volume.
"""

from __future__ import annotations

import torch

from ..operators.base import Operator
from .base import LOCAL, DCContext, Estimator, ZCoupling
from .cg import cg
from .finite_diff import soft_threshold


class DiffusionMBIR(Estimator):
    whole_volume = True

    def __init__(self, norm2: float = 1.0, rho: float = 0.5, lam: float = 0.01,
                 mean_eig: float | None = None):
        super().__init__(norm2)
        scale = self.norm2 if mean_eig is None else float(mean_eig)
        self.rho = rho * scale
        self.lam = lam * scale
        self.z: torch.Tensor | None = None
        self.u: torch.Tensor | None = None

    def reset(self, n_slices: int, coupling: ZCoupling | None = None) -> None:
        super().reset(n_slices, coupling)
        self.z = None
        self.u = None

    def __call__(self, x0: torch.Tensor, y: torch.Tensor, op: Operator,
                 ctx: DCContext) -> torch.Tensor:
        slices = ctx.slices or list(range(x0.shape[0]))
        if len(slices) > 1 and any(b - a != 1 for a, b in zip(slices, slices[1:])):
            raise ValueError("DiffusionMBIR needs contiguous slices (it differences along z)")
        zc = ctx.coupling if not ctx.adapting else LOCAL  # a block of adaptation is held whole
        if not ctx.adapting:  # the whole volume: use and update the persistent duals
            if self.z is None or self.z.shape != x0.shape:
                self.z, self.u = zc.dz(x0.detach()), torch.zeros_like(x0.detach())
            z, u = self.z, self.u
        elif self.z is not None and self.z.shape[1:] == x0.shape[1:] and len(slices) == x0.shape[0]:
            # a block (adaptation): start from the stored duals, never update them
            z = self.coupling.rows(self.z, slices).detach()
            u = self.coupling.rows(self.u, slices).detach()
            z = torch.cat([z[:-1], torch.zeros_like(z[-1:])])  # no difference past the block
        else:
            z, u = zc.dz(x0.detach()), torch.zeros_like(x0.detach())
        aty = op.adjoint(y)
        rho = self.rho

        def normal(v: torch.Tensor) -> torch.Tensor:
            return op.normal(v) + rho * zc.dz_t(zc.dz(v))

        total = None if zc is LOCAL else zc.total
        x = x0
        for _ in range(ctx.admm_iters):
            x = cg(normal, aty + rho * zc.dz_t(z - u), x, ctx.cg_steps, coupled=True, total=total)
            dx = zc.dz(x)
            z = soft_threshold(dx + u, self.lam / rho)
            u = u + dx - z
        if not ctx.adapting:
            self.z, self.u = z.detach(), u.detach()
        return x
