"""VP (DDPM) noise schedule, the sampling time grid, Tweedie and the DDS-form step.

Conventions (ALGORITHM.md 2): linear beta 1e-4 -> 0.02 over T = 1000 steps,
alpha_bar_t = prod_{s<=t} (1 - beta_s), alpha_bar_{-1} = 1; the network sees the integer t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VPSchedule:
    """Linear-beta variance-preserving schedule."""

    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta_start, self.beta_end, self.T, dtype=torch.float64)

    def alpha_bars(self) -> torch.Tensor:
        """alpha_bar_t for t = 0..T-1 (float64)."""
        return torch.cumprod(1.0 - self.betas(), dim=0)

    def alpha_bar(self, t: int) -> float:
        """alpha_bar at integer t; t = -1 gives 1 (the clean end of the trajectory)."""
        if t < 0:
            return 1.0
        if t >= self.T:
            raise ValueError(f"t={t} is outside the schedule (0..{self.T - 1})")
        return float(self.alpha_bars()[t])

    def time_grid(self, nfe: int = 50, t_start: int | None = None) -> list[int]:
        """Descending integer times with `nfe` entries ending at 0.

        nfe = 50, T = 1000 gives 980, 960, ..., 20, 0 (the reference grid). `t_start`
        caps the first time (used by initialisation at t* < T).
        """
        if nfe < 1:
            raise ValueError(f"nfe must be >= 1, got {nfe}")
        if nfe > self.T:
            raise ValueError(f"nfe={nfe} exceeds the {self.T} schedule steps")
        stride = self.T // nfe
        grid = [i * stride for i in range(nfe)][::-1]
        if t_start is not None:
            grid = [t for t in grid if t <= t_start]
            if not grid:
                raise ValueError(f"t_start={t_start} leaves no time in the grid")
        return grid

    def warm_grid(self, nfe: int, t_start: int) -> list[int]:
        """`nfe` descending integer times from `t_start` exactly down to 0, evenly spaced: the
        grid of a warm start (CCDF: a good estimate noised to a small t* and walked back in
        `nfe` steps). The reference grid cut at t* (`time_grid`) would keep only the times
        below t* of a grid made for the whole schedule: for t* = 20 and nfe = 2 that is [0]
        alone, one step at t = 0 where the network returns its input and the prior does
        nothing, while the start is noised to the grid's first time (so not at all)."""
        if nfe < 1:
            raise ValueError(f"nfe must be >= 1, got {nfe}")
        if not 1 <= t_start < self.T:
            raise ValueError(f"t_start={t_start} is outside 1 .. {self.T - 1}")
        if nfe == 1:
            return [int(t_start)]
        times = [round(t_start * (nfe - 1 - i) / (nfe - 1)) for i in range(nfe)]
        if len(set(times)) != nfe:
            raise ValueError(f"nfe={nfe} steps do not fit between t_start={t_start} and 0: "
                             f"use nfe <= {t_start + 1}")
        return times


def tweedie(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """Posterior mean x0_hat = (x_t - sqrt(1 - ab) eps) / sqrt(ab)."""
    return (x_t - (1.0 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def noise_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """The noise direction consistent with x_t and x0: (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
    return (x_t - alpha_bar**0.5 * x0) / max(1.0 - alpha_bar, 1e-12) ** 0.5


def q_sample(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    """Forward diffusion x_t = sqrt(ab) x0 + sqrt(1 - ab) noise (ab scalar or per-sample)."""
    if isinstance(alpha_bar, torch.Tensor):
        alpha_bar = alpha_bar.view(-1, *([1] * (x0.dim() - 1))).to(x0)
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise
    return alpha_bar**0.5 * x0 + (1.0 - alpha_bar) ** 0.5 * noise


def dds_step(
    x0_y: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_next: float,
    eta: float,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_{t'} = sqrt(ab') x0|y + sqrt(1 - ab') (eta z + sqrt(1 - eta^2) eps).

    `eps` is the network's noise estimate at t; `z` fresh Gaussian noise (drawn by the caller
    from its seeded generator, so results do not depend on the device). At the end of the
    trajectory (ab' = 1) this returns x0|y itself.
    """
    if alpha_bar_next >= 1.0:
        return x0_y
    if eta > 0:
        if z is None:
            raise ValueError("dds_step with eta > 0 needs the noise z")
        direction = eta * z + (1.0 - eta**2) ** 0.5 * eps
    else:
        direction = eps
    return alpha_bar_next**0.5 * x0_y + (1.0 - alpha_bar_next) ** 0.5 * direction
