"""What changes over a run: the learning rate (warm-up, constant, final linear decay) and the EMA
decay (the power-function EMA of EDM2, whose averaging length is a fixed fraction of the run,
whatever its length)."""

from __future__ import annotations

from .recipes import TrainConfig


def power_ema_decay(updates: int, gamma: float) -> float:
    """EDM2 power-function EMA: beta_t = (1 - 1/t)^(gamma+1) after t updates (t >= 1)."""
    return (1.0 - 1.0 / max(1, updates)) ** (gamma + 1.0)


def ema_sigma_rel(gamma: float) -> float:
    """Relative standard deviation of the power-function EMA's averaging profile (EDM2 eq. 3)."""
    return ((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))) ** 0.5


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over `warmup` steps, constant, then linear decay to 0 over the last
    `decay_fraction` of the run (progress in [0, 1]: steps done or budget spent)."""
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.decay_fraction > 0:
        start = 1.0 - cfg.decay_fraction
        if progress > start:
            lr *= max(0.0, (1.0 - progress) / cfg.decay_fraction)
    return lr
