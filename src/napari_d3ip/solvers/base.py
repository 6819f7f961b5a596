"""The data-consistency estimator interface: x̂0 (Tweedie) -> x̂0|y.

Estimators are batched over slices and differentiable (adaptation back-propagates through
them). Weights that depend on the operator's scale (γ, ρ, λ) are relative to L = ‖AᴴA‖,
estimated once per run, so the same numbers work for CT (large L) and MRI (L = 1).

The loop talks to every estimator, DPS included, through two calls:
- `predict(denoise, x_t, ab, m)`: the network's noise estimate ε and x̂0 of a batch of slices
  (`denoise(x_t) -> ε` applies the network); DPS takes its guided step through the network here;
- `correct(x0, m, ctx)` / `correct_volume(...)`: x̂0 -> x̂0|y (DDS, DDNM, DiffusionMBIR; the
  identity for DPS, whose x̂0 is already guided).
`ZCoupling` is the slice axis a 3D-aware estimator (DiffusionMBIR) differences along: the
whole volume here, a slab that trades boundary slices with its neighbours in a distributed run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..core.schedule import tweedie
from ..operators.base import Measurement, Operator, mean_squared_residual
from .finite_diff import dz, dz_t


class ZCoupling:
    """The slice axis of the volume an estimator sees whole: D_z, D_zᵀ and volume sums."""

    def dz(self, x: torch.Tensor) -> torch.Tensor:
        return dz(x)

    def dz_t(self, d: torch.Tensor) -> torch.Tensor:
        return dz_t(d)

    def total(self, partial: torch.Tensor) -> torch.Tensor:
        """The volume's sum of a sum over the slices held here."""
        return partial

    def rows(self, held: torch.Tensor, slices: list[int]) -> torch.Tensor:
        """Rows `slices` (volume indices) of a tensor stored for the slices held here."""
        return held[slices]


LOCAL = ZCoupling()


@dataclass
class DCContext:
    """Where an estimator call happens: which global slices, how many CG steps, what for."""

    slices: list[int] = field(default_factory=list)
    cg_steps: int = 5
    admm_iters: int = 5
    adapting: bool = False
    coupling: ZCoupling = LOCAL


Denoise = Callable[[torch.Tensor], torch.Tensor]


class Estimator:
    """x̂0|y = estimate(x̂0, y, A): subclasses implement `__call__` (or `predict`)."""

    #: needs the whole volume (contiguous slices) in one call (3D-aware estimators)
    whole_volume = False

    def __init__(self, norm2: float = 1.0):
        self.norm2 = float(norm2)
        self.coupling: ZCoupling = LOCAL

    def __call__(self, x0: torch.Tensor, y: torch.Tensor, op: Operator,
                 ctx: DCContext) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, denoise: Denoise, x_t: torch.Tensor, alpha_bar: float,
                m: Measurement) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε, x̂0) of a batch of slices, without a graph."""
        with torch.no_grad():
            eps = denoise(x_t)
            return eps, tweedie(x_t, eps, alpha_bar)

    def correct(self, x0: torch.Tensor, m: Measurement, ctx: DCContext) -> torch.Tensor:
        """x̂0|y of the slices of `m`."""
        return self(x0, m.y, m.operator, ctx)

    def correct_volume(self, x0: torch.Tensor, m: Measurement, slices: list[int], batch: int,
                       cg_steps: int, admm_iters: int) -> torch.Tensor:
        """x̂0|y of all slices of `m` (volume indices `slices`): by batches of `batch`, or in
        one call along the coupling for a whole-volume estimator. Fills `x0` in place."""
        with torch.no_grad():
            if self.whole_volume:
                return self.correct(x0, m, DCContext(list(slices), cg_steps, admm_iters,
                                                     coupling=self.coupling))
            for idx, sub in m.batches(batch):
                ctx = DCContext([slices[i] for i in idx], cg_steps, admm_iters)
                x0[idx] = self.correct(x0[idx], sub, ctx)
            return x0

    def reset(self, n_slices: int, coupling: ZCoupling | None = None) -> None:
        """Forget state kept across diffusion steps (dual variables); `coupling`: the slice
        axis of the run (a slab of a distributed volume)."""
        self.coupling = LOCAL if coupling is None else coupling


def data_loss(op: Operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared measurement residual mean |A x - y|^2 over all entries."""
    return mean_squared_residual(op, x, y)
