"""The data-consistency estimator interface: x̂0 (Tweedie) -> x̂0|y.

Estimators are batched over slices and differentiable (adaptation back-propagates through
them). Weights that depend on the operator's scale (γ, ρ, λ) are relative to L = ‖AᴴA‖,
estimated once per run, so the same numbers work for CT (large L) and MRI (L = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..operators.base import Operator


@dataclass
class DCContext:
    """Where an estimator call happens: which global slices, how many CG steps, what for."""

    slices: list[int] = field(default_factory=list)
    cg_steps: int = 5
    admm_iters: int = 5
    adapting: bool = False


class Estimator:
    """x̂0|y = estimate(x̂0, y, A): subclasses implement `__call__`."""

    name = "base"
    #: needs the whole volume (contiguous slices) in one call (3D-aware estimators)
    whole_volume = False
    #: needs the gradient of the data term w.r.t. x_t (through the network)
    needs_xt_grad = False

    def __init__(self, op_norm2: float = 1.0):
        self.op_norm2 = float(op_norm2)

    def __call__(self, x0: torch.Tensor, y: torch.Tensor, op: Operator,
                 ctx: DCContext) -> torch.Tensor:
        raise NotImplementedError

    def reset(self, n_slices: int) -> None:
        """Forget state kept across diffusion steps (dual variables)."""


def data_loss(op: Operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared measurement residual mean |A x - y|^2 over all entries."""
    r = op.forward(x) - y
    return (r.abs() ** 2).mean() if r.is_complex() else (r**2).mean()
