"""DDS: a few CG steps on the normal equations started at the Tweedie estimate.

Early-stopped CG from x̂0 is the proximal regulariser (Chung et al., DDS). Two forms:
AᴴA x = Aᴴy (default, CT), and (I + γ/L AᴴA) x = x̂0 + γ/L Aᴴy (the reference's MRI form).
"""

from __future__ import annotations

import torch

from ..operators.base import Operator
from .base import DCContext, Estimator
from .cg import cg


class DDS(Estimator):

    def __init__(self, norm2: float = 1.0, gamma: float | None = None):
        super().__init__(norm2)
        self.gamma = gamma

    def __call__(self, x0: torch.Tensor, y: torch.Tensor, op: Operator,
                 ctx: DCContext) -> torch.Tensor:
        aty = op.adjoint(y)
        if self.gamma is None:
            return cg(op.normal, aty, x0, ctx.cg_steps)
        g = self.gamma / self.norm2
        return cg(lambda v: v + g * op.normal(v), x0 + g * aty, x0, ctx.cg_steps)
