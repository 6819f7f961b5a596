"""Training recipes: the options of a run (`TrainConfig`), the named recipes, and the check of every
option against what training accepts, before a folder or a network exists.

Two recipes (training/README.md): `classic` (the first shipped prior: epsilon prediction, plain
MSE, AdamW beta2 0.999, constant lr after warm-up, EMA decay 0.999) and `v-minsnr` (v prediction,
min-SNR-gamma weighting, beta2 0.99, warm-up + a final linear decay, power-function EMA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.unet import UNetConfig
from ..errors import D3IPError, OptionError
from .phantoms import FAMILIES

RECIPES = ("classic", "v-minsnr")


@dataclass
class TrainConfig:
    out: str = "runs/ellipses-64"
    size: int = 64
    channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    steps: int = 20000
    batch: int = 16
    lr: float = 4e-4
    warmup: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    n_mean: float = 140.0
    n_max: int = 140
    phantoms: str = "ellipses"  # a key of phantoms.FAMILIES
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    bf16: str = "auto"
    prediction: str = "eps"
    min_snr_gamma: float = 0.0
    beta2: float = 0.999
    decay_fraction: float = 0.0
    ema: str = "exp"
    ema_gamma: float = 6.94
    budget_minutes: float = 0.0
    render_size: int = 0  # > size: phantoms drawn at render_size, random size x size patches
    init_from: str = ""  # a prior (name or path) of the same architecture to start from
    checkpoint_minutes: float = 5.0
    val_every: int = 1000
    name: str = "ellipses-64"

    def unet_config(self) -> UNetConfig:
        return UNetConfig(
            base_channels=self.channels,
            channel_mults=tuple(self.channel_mults),
            num_res_blocks=self.num_res_blocks,
            attn_resolutions=tuple(self.attn_resolutions),
            image_size=self.size,
            prediction=self.prediction,
        )

    @classmethod
    def from_recipe(cls, recipe: str, **overrides) -> TrainConfig:
        """A config for a named recipe; `overrides` (not None) win."""
        if recipe not in RECIPES:
            raise OptionError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
        base = {} if recipe == "classic" else dict(
            prediction="v", min_snr_gamma=5.0, beta2=0.99, decay_fraction=0.2, ema="power",
            lr=8e-4, warmup=200)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def validate(self) -> TrainConfig:
        """Every field against what training accepts, before a folder or a network exists:
        a TrainConfigError naming the option (CLI flag) and the fix."""
        problems = [p for p in (_field_problem(self, f) for f in _TRAIN_RULES) if p]
        if self.render_size and self.render_size < self.size:
            problems.append(f"--render-size {self.render_size} must be 0 or >= --size {self.size}")
        div = 2 ** (len(self.channel_mults) - 1) if isinstance(self.channel_mults, tuple | list) else 1
        if isinstance(self.size, int) and self.size >= 1 and self.size % div:
            problems.append(f"--size {self.size} must be a multiple of {div} (the UNet halves it "
                            f"{len(self.channel_mults) - 1} times)")
        if self.phantoms not in FAMILIES:
            problems.append(f"--phantoms {self.phantoms!r}: one of {', '.join(FAMILIES)}")
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            problems.append(f"--name {self.name!r} must be a non-empty file name (no '/')")
        if problems:
            raise TrainConfigError("train-prior: " + "; ".join(problems))
        return self

    def recipe_card(self) -> dict:
        """What the card records of the recipe."""
        return {k: getattr(self, k) for k in (
            "prediction", "min_snr_gamma", "lr", "beta2", "warmup", "decay_fraction", "ema",
            "ema_decay", "ema_gamma", "grad_clip", "batch", "weight_decay")}


class TrainConfigError(D3IPError):
    """A training option out of range: names the option and what it accepts."""


def _int_ok(lo: int, hi: int = 2**63 - 1):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _float_ok(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False):
    def ok(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return False
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    return ok


def _ints_ok(allow_empty: bool):
    return lambda v: isinstance(v, tuple | list) and (allow_empty or len(v) > 0) and all(
        isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 64 for x in v)


# field -> (CLI flag, check, what it accepts)
_TRAIN_RULES = {
    "size": ("--size", _int_ok(8, 4096), "an integer in 8..4096"),
    "render_size": ("--render-size", _int_ok(0, 8192), "0 or an integer up to 8192"),
    "channels": ("--channels", _int_ok(1, 4096), "an integer in 1..4096"),
    "channel_mults": ("--mults", _ints_ok(False), "comma-separated integers in 1..64"),
    "num_res_blocks": ("--res-blocks", _int_ok(0, 64), "an integer in 0..64"),
    "attn_resolutions": ("--attn", _ints_ok(True), "comma-separated integers (or empty)"),
    "steps": ("--steps", _int_ok(1), "an integer >= 1"),
    "batch": ("--batch", _int_ok(1, 65536), "an integer in 1..65536"),
    "lr": ("--lr", _float_ok(0.0, 1.0, lo_open=True), "a finite number in (0, 1]"),
    "warmup": ("warmup", _int_ok(0), "an integer >= 0"),
    "weight_decay": ("weight_decay", _float_ok(0.0, 1.0), "a number in [0, 1]"),
    "ema_decay": ("ema_decay", _float_ok(0.0, 1.0, hi_open=True), "a number in [0, 1)"),
    "grad_clip": ("grad_clip", _float_ok(0.0), "a finite number >= 0"),
    "n_mean": ("--ellipses", _float_ok(0.0, 1e4, lo_open=True), "a number in (0, 10000]"),
    "n_max": ("n_max", _int_ok(1, 10000), "an integer in 1..10000"),
    "seed": ("--seed", _int_ok(0), "an integer in 0..2**63-1 (what torch's generators take)"),
    "threads": ("--threads", _int_ok(0, 4096), "an integer in 0..4096"),
    "min_snr_gamma": ("--min-snr-gamma", _float_ok(0.0, 1e6), "a finite number >= 0"),
    "beta2": ("--beta2", _float_ok(0.0, 1.0, lo_open=True, hi_open=True), "a number in (0, 1)"),
    "decay_fraction": ("--decay-fraction", _float_ok(0.0, 1.0), "a number in [0, 1]"),
    "ema_gamma": ("ema_gamma", _float_ok(0.0, 1e6, lo_open=True), "a finite number > 0"),
    "budget_minutes": ("--budget-minutes", _float_ok(0.0), "a finite number >= 0"),
    "checkpoint_minutes": ("--checkpoint-minutes", _float_ok(0.0, lo_open=True),
                           "a finite number > 0"),
    "val_every": ("--val-every", _int_ok(0), "an integer >= 0"),
}


def _field_problem(cfg: TrainConfig, name: str) -> str | None:
    flag, ok, accepts = _TRAIN_RULES[name]
    v = getattr(cfg, name)
    return None if ok(v) else f"{flag} must be {accepts}, got {v!r}"


# fields that belong to a run (fixed at its start); the rest may change on resume
RUN_FIELDS = ("size", "render_size", "channels", "channel_mults", "num_res_blocks", "attn_resolutions",
              "n_mean", "n_max", "phantoms", "seed", "batch", "name", "prediction", "min_snr_gamma",
              "beta2", "ema", "ema_gamma", "ema_decay", "decay_fraction", "warmup", "init_from")


def render_size(cfg: TrainConfig) -> int:
    """The pixel scale the prior is trained for: slices of this many pixels per field of view."""
    return max(cfg.size, cfg.render_size or 0)
