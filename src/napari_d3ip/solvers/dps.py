"""DPS: a gradient step on the data misfit taken through the network.

The DDIM update becomes x_t' = DDIM(x̂0) − ζ_t ∇_{x_t} ½‖y − A x̂0(x_t)‖². Written as an
estimator: x̂0|y = x̂0 − ζ_t/√ᾱ_{t'} ∇ (the same x_t' then follows from the DDS-form step).

The step size. DPS's own choice (ζ/‖r‖ on ∇‖r‖²) is scale-dependent: with our operators it
either did nothing late or, early, moved x̂0 by ~10² (∂x̂0/∂x_t ≈ I/√ᾱ_t is huge at t ≈ T) and
sampling collapsed to ~10 dB. We take ζ_t = ζ √(ᾱ_t ᾱ_{t'}) / L (L = ‖AᴴA‖): then each step is
ζ Landweber steps of size 1/L on x̂0 pulled back through the network, stable for ζ < 2 at
every t and for every operator. ζ = 1.9 by default (on 8 slices of the sample brain, 15-view
CT, 250 DDPM steps: ζ = 1.0 gives 16.3 dB, 1.9 gives 18.8 dB).

The paper runs DPS with 1000 DDPM steps (`nfe=1000, eta=1`). Every step needs a backward pass
through the UNet: measured here a DPS step costs 1.3x a DDS step, so 1000 steps cost ~26x a
50-step DDS run (benchmarks/solvers.py).
"""

from __future__ import annotations

import torch

from ..core.schedule import tweedie
from ..operators.base import Measurement, Operator
from .base import DCContext, Denoise, Estimator


class DPS(Estimator):
    """DPS behind the estimator interface: `predict` differentiates through the network and
    returns the guided x̂0|y; `correct` leaves it as it is."""

    def __init__(self, norm2: float = 1.0, zeta: float = 1.9):
        super().__init__(norm2)
        self.zeta = zeta

    def guided(self, x0: torch.Tensor, xt: torch.Tensor, y: torch.Tensor, op: Operator,
               alpha_bar: float) -> torch.Tensor:
        """x0 computed from xt with a graph; returns the guided x̂0|y (detached).

        The x_t-space step is ζ_t ∇_{x_t} ½‖y − A x̂0(x_t)‖² with ζ_t = ζ √(ᾱ_t ᾱ_{t'}) / L;
        on x̂0 the √ᾱ_{t'} cancels, leaving ζ √ᾱ_t / L ∇. Since ∂x̂0/∂x_t ≈ I/√ᾱ_t, this is ζ
        Landweber steps of size 1/L on x̂0 (pulled back through the network), stable for ζ < 2
        at every t and every operator scale.
        """
        r = op.forward(x0) - y
        loss = 0.5 * (r.abs() ** 2).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(loss.sum(), xt)
        step = self.zeta * alpha_bar**0.5 / self.norm2 * grad
        return (x0 - step).detach()

    def predict(self, denoise: Denoise, x_t: torch.Tensor, alpha_bar: float,
                m: Measurement) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            xs = x_t.detach().requires_grad_(True)
            eps = denoise(xs)
            x0y = self.guided(tweedie(xs, eps, alpha_bar), xs, m.y, m.operator, alpha_bar)
        return eps.detach(), x0y

    def correct(self, x0: torch.Tensor, m: Measurement, ctx: DCContext) -> torch.Tensor:
        return x0  # already guided in `predict`

    def __call__(self, x0: torch.Tensor, y: torch.Tensor, op: Operator,
                 ctx: DCContext) -> torch.Tensor:
        raise RuntimeError("DPS needs x_t: it guides inside predict(), not on a given x̂0")
