"""DiffusionMBIR: a 3D-aware estimator with a total-variation prior along the slice axis.

x̂0|y ≈ argmin_x ½‖Ax - y‖² + λ‖D_z x‖₁, solved by ADMM with the split z = D_z x, started
(warm) at the Tweedie estimate x̂0 so the 2D diffusion prior enters through the starting point:
  x ← CG_M on (AᴴA + ρ D_zᵀD_z) x = Aᴴy + ρ D_zᵀ(z - u)   (from x̂0)
  z ← soft(D_z x + u, λ/ρ);  u ← u + D_z x - z
The duals (z, u) persist across diffusion steps. λ and ρ are relative to the mean eigenvalue
of AᴴA (`mean_eig`), the typical weight of the data term.
Two extensions (quality issue, both off by default = the paper's method):
  axes "zyx": TV on all three axes, not only z (the in-plane differences need no neighbours);
  anchor w > 0: the data step becomes argmin ½‖Ax - y‖² + (w/2)‖x - x̂0‖² + λ TV(x), so the
  prior's estimate is weighed against TV inside the estimator instead of only starting ADMM:
  with axes "zyx" and w → 0 its answer is ADMM-TV's, and the prior can only move it by w.
  w is relative to `mean_eig` like λ and ρ.
Needs neighbouring slices together: called on the whole volume (or a contiguous block); in a
distributed run on a slab, whose `ZCoupling` trades the boundary slices with the neighbouring
ranks and sums the CG inner products over the volume.
"""

from __future__ import annotations

import torch

from ..operators.base import Operator
from .base import LOCAL, DCContext, Estimator, ZCoupling
from .cg import cg
from .finite_diff import diff, diff_t, soft_threshold


class DiffusionMBIR(Estimator):
    whole_volume = True

    def __init__(self, norm2: float = 1.0, rho: float = 0.5, lam: float = 0.01,
                 mean_eig: float | None = None, axes: str = "z", anchor: float = 0.0):
        super().__init__(norm2)
        if axes not in ("z", "zyx"):
            raise ValueError(f"DiffusionMBIR axes must be 'z' or 'zyx', got {axes!r}")
        scale = self.norm2 if mean_eig is None else float(mean_eig)
        self.rho = rho * scale
        self.lam = lam * scale
        self.anchor = anchor * scale
        self.axes = axes
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
            d0 = _differences(zc, self.axes)[0]
            if self.z is None or self.z.shape != d0(x0.detach()).shape:
                self.z = d0(x0.detach())
                self.u = torch.zeros_like(self.z)
            z, u = self.z, self.u
        elif self.z is not None and self.z.shape[-3:] == x0.shape[1:] and len(slices) == x0.shape[0]:
            # a block (adaptation): start from the stored duals, never update them
            z, u = self._block_duals(slices)
        else:
            z = _differences(zc, self.axes)[0](x0.detach())
            u = torch.zeros_like(z)
        aty = op.adjoint(y)
        rho, w = self.rho, self.anchor
        d, d_t = _differences(zc, self.axes)
        rhs0 = aty + w * x0 if w > 0 else aty

        def normal(v: torch.Tensor) -> torch.Tensor:
            out = op.normal(v) + rho * d_t(d(v))
            return out + w * v if w > 0 else out

        total = None if zc is LOCAL else zc.total
        x = x0
        for _ in range(ctx.admm_iters):
            x = cg(normal, rhs0 + rho * d_t(z - u), x, ctx.cg_steps, coupled=True, total=total)
            dx = d(x)
            z = soft_threshold(dx + u, self.lam / rho)
            u = u + dx - z
        if not ctx.adapting:
            self.z, self.u = z.detach(), u.detach()
        return x

    def _block_duals(self, slices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored duals of a block of slices (adaptation): read, never updated; no z
        difference past the block's last slice."""
        if self.axes == "z":
            z = self.coupling.rows(self.z, slices).detach()
            u = self.coupling.rows(self.u, slices).detach()
            return torch.cat([z[:-1], torch.zeros_like(z[-1:])]), u
        z = torch.stack([self.coupling.rows(c, slices) for c in self.z]).detach()
        u = torch.stack([self.coupling.rows(c, slices) for c in self.u]).detach()
        z[0, -1:] = 0
        return z, u


def _differences(zc: ZCoupling, axes: str):
    """(D, Dᵀ) of the TV: along z through the coupling (slabs trade their boundary slices), and
    for 'zyx' also along rows and columns (within each slice: no neighbours needed)."""
    if axes == "z":
        return zc.dz, zc.dz_t

    def d(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([zc.dz(x), diff(x, 2), diff(x, 3)])

    def d_t(g: torch.Tensor) -> torch.Tensor:
        return zc.dz_t(g[0]) + diff_t(g[1], 2) + diff_t(g[2], 3)

    return d, d_t
