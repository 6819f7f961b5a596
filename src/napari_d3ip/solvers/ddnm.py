"""DDNM: null-space projection x̂0 + A†(y - A x̂0), A† approximated by CG from zero.

CG on AᴴA d = Aᴴ r started at 0 stays in range(Aᴴ) and converges to the minimum-norm
solution, i.e. A† r, so the range-space part of x̂0 is replaced by the measurement's.
"""

from __future__ import annotations

import torch

from ..operators.base import Operator
from .base import DCContext, Estimator
from .cg import cg

PINV_RTOL = 1e-6


class DDNM(Estimator):

    def __init__(self, norm2: float = 1.0, pinv_steps: int = 30):
        super().__init__(norm2)
        self.pinv_steps = pinv_steps

    def __call__(self, x0: torch.Tensor, y: torch.Tensor, op: Operator,
                 ctx: DCContext) -> torch.Tensor:
        residual = op.adjoint(y - op.forward(x0))
        # the pseudo-inverse is solved to convergence (1e-6, not cg's 1e-4 default): DDNM's
        # point is exact consistency with y; the null-space guard still stops noise steps
        return x0 + cg(op.normal, residual, None, self.pinv_steps, rtol=PINV_RTOL)
