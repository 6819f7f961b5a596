"""Train a diffusion prior on Ellipses phantoms drawn on the fly.

Two recipes share this code (ALGORITHM.md 2; training/README.md):
- `classic` (the first shipped prior): epsilon prediction, plain MSE, AdamW beta2 0.999,
  constant lr after warm-up, EMA decay 0.999.
- `v-minsnr`: v prediction (accurate x0 at high t, where eps-prediction multiplies the
  network's error by sqrt((1-ab)/ab): 130x at t = 980), min-SNR-gamma weighting of the
  x0-equivalent loss, AdamW beta2 0.99, warm-up + a final linear decay, and a power-function
  EMA (EDM2) whose averaging length is a fixed fraction of the run, whatever its length.

Loss weights (derived, known-answer tested): with SNR = ab/(1-ab), the x0 error of an eps
network is |e_eps|^2 / SNR and of a v network (1-ab)|e_v|^2 = |e_v|^2 / (SNR+1); min-SNR-gamma
weights the x0 error by min(SNR, gamma), so w_eps = min(SNR, gamma)/SNR and
w_v = min(SNR, gamma)/(SNR+1).

Resumable by construction: each step's phantoms, times and noise come from a generator seeded
by (seed, step), so a resumed run sees exactly the data it would have seen; checkpoints hold
the model, its EMA and the AdamW state (safetensors) plus a JSON state. The loss curve and the
validation curve are kept as CSV beside the checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..errors import D3IPError, OptionError
from .phantoms import FAMILIES, ellipses
from .prior import Prior
from .schedule import VPSchedule, q_sample
from .unet import UNet, UNetConfig

VAL_TIMES = (50, 200, 500, 800, 980)
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
    phantoms: str = "ellipses"  # a key of core.phantoms.FAMILIES
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


def check_training_resources(cfg: TrainConfig) -> None:
    """The network, its EMA copy, gradients and AdamW moments (5 copies of the parameters,
    counted on the meta device: no memory) and one batch's activations (forward + backward,
    cost.GRAD_BYTES_PER_PX scaled by the width) bounded by the available memory."""
    from ..cost import GRAD_BYTES_PER_PX, REF_CHANNELS
    from ..io.files import check_memory
    from .prior import _MetaParameters

    try:
        with _MetaParameters():
            params = sum(p.numel() for p in UNet(cfg.unet_config()).parameters())
    except Exception as e:  # an architecture torch cannot build
        raise TrainConfigError(f"train-prior: the UNet (--channels {cfg.channels}, --mults "
                               f"{','.join(map(str, cfg.channel_mults))}) cannot be built: {e}") from None
    acts = GRAD_BYTES_PER_PX * cfg.channels / REF_CHANNELS * cfg.size ** 2 * cfg.batch
    phantoms = 4.0 * cfg.batch * render_size(cfg) ** 2 * 3
    check_memory(5 * 4.0 * params + acts + phantoms,
                 f"train-prior (a {params:,}-parameter UNet, --channels {cfg.channels}; "
                 f"--batch {cfg.batch} of {cfg.size}x{cfg.size})")


# fields that belong to a run (fixed at its start); the rest may change on resume
RUN_FIELDS = ("size", "render_size", "channels", "channel_mults", "num_res_blocks", "attn_resolutions",
              "n_mean", "n_max", "phantoms", "seed", "batch", "name", "prediction", "min_snr_gamma",
              "beta2", "ema", "ema_gamma", "ema_decay", "decay_fraction", "warmup", "init_from")


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    return alpha_bar / (1 - alpha_bar)


def loss_weight(alpha_bar: torch.Tensor, prediction: str, gamma: float) -> torch.Tensor:
    """Per-sample weight of the target MSE (module docstring); 1 where gamma <= 0."""
    if gamma <= 0:
        return torch.ones_like(alpha_bar)
    s = snr(alpha_bar)
    clipped = torch.minimum(s, torch.full_like(s, gamma))
    return clipped / (s + 1) if prediction == "v" else clipped / s


def v_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """v = sqrt(ab) eps - sqrt(1-ab) x0 (per-sample ab)."""
    ab = alpha_bar.view(-1, *([1] * (x0.dim() - 1))).to(x0)
    return ab.sqrt() * noise - (1 - ab).sqrt() * x0


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


@dataclass
class TrainState:
    step: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    commands: list[str] = field(default_factory=list)


def _step_generator(seed: int, step: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


def render_size(cfg: TrainConfig) -> int:
    """The pixel scale the prior is trained for: slices of this many pixels per field of view."""
    return max(cfg.size, cfg.render_size or 0)


def random_patches(images: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """One size x size crop per image at a position drawn from g (the identity if it fits)."""
    n, _, h, w = images.shape
    if h == size and w == size:
        return images
    top = torch.randint(0, h - size + 1, (n,), generator=g).tolist()
    left = torch.randint(0, w - size + 1, (n,), generator=g).tolist()
    return torch.stack([images[i, :, a:a + size, b:b + size] for i, (a, b) in enumerate(zip(top, left))])


def training_batch(cfg: TrainConfig, step: int, device: torch.device):
    """Phantoms, integer times and noise for one step, fully determined by (seed, step).

    A patch prior (render_size > size) draws each phantom at render_size, so its pixels have
    the scale of a render_size slice, and trains on a random size x size crop of it: a step
    costs what a size-pixel step costs, and the UNet (convolutional) is applied to whole
    render_size slices at reconstruction."""
    g = _step_generator(cfg.seed, step)
    x0 = FAMILIES[cfg.phantoms](cfg.batch, render_size(cfg), cfg.n_mean, cfg.n_max, seed=g, device=device)
    x0 = random_patches(x0, cfg.size, g)
    t = torch.randint(0, 1000, (cfg.batch,), generator=g)
    noise = torch.randn(x0.shape, generator=g).to(device)
    return x0, t.to(device), noise


def _optim_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{pid}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def _optim_from_tensors(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except Exception:
        return "unknown"


def machine_description() -> str:
    from .precision import describe_machine

    return describe_machine()


def validation_set(size: int, n: int = 64, n_mean: float = 140.0, seed: int = 123_456,
                   render: int | None = None):
    """Fixed phantoms and noise for the Tweedie-denoising validation (the central size x size
    patch of phantoms drawn at `render` pixels for a patch prior)."""
    g = torch.Generator().manual_seed(seed)
    x0 = ellipses(n, max(size, render or size), n_mean, 140, seed=g)
    if x0.shape[-1] > size:
        o = (x0.shape[-1] - size) // 2
        x0 = x0[..., o:o + size, o:o + size].contiguous()
    noise = torch.randn(x0.shape, generator=g)
    return x0, noise


def psnr_batch(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean PSNR over images, data range 1 (phantoms live in [0, 1])."""
    mse = ((x - ref) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1.0 / mse)).mean())


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def best_blur_psnr(noisy_x0: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """The best linear baseline: Gaussian blur of the rescaled noisy image followed by the
    oracle affine intensity fit a*blur + b (fitted against `ref`), best over sigma; (psnr, sigma).

    The affine fit matters at high t, where a blur alone leaves noise of std ~ sqrt((1-ab)/ab)
    (25 at t = 800) and would make any network look good; with it the baseline tends to the
    mean image as t -> T.
    """
    best = (-1e9, 0.0)
    for sigma in [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0]:
        if math.ceil(3 * sigma) >= min(noisy_x0.shape[-2:]):
            break
        b = gaussian_blur(noisy_x0, sigma).flatten()
        r = ref.flatten()
        bc, rc = b - b.mean(), r - r.mean()
        a = float((bc * rc).sum() / (bc * bc).sum().clamp_min(1e-12))
        fit = (a * bc + r.mean()).view_as(ref)
        best = max(best, (psnr_batch(fit, ref), sigma))
    return best


@torch.no_grad()
def denoising_quality(prior: Prior, n: int = 64, n_mean: float = 140.0, times=VAL_TIMES,
                      batch: int = 16) -> dict[str, dict[str, float]]:
    """Tweedie PSNR vs the best Gaussian blur of the same noisy inputs at each t."""
    x0, noise = validation_set(prior.image_size, n, n_mean, render=prior.render_size)
    dev = prior.device
    out = {}
    for t in times:
        ab = prior.schedule.alpha_bar(t)
        xt = q_sample(x0, noise, ab)
        est = torch.cat([prior.tweedie(xt[i:i + batch].to(dev), t).cpu()
                         for i in range(0, n, batch)])
        blur_psnr, sigma = best_blur_psnr(xt / ab**0.5, x0)
        out[str(t)] = {"tweedie_psnr": psnr_batch(est.clamp(0, 1), x0),
                       "blur_psnr": blur_psnr, "blur_sigma": sigma}
    return out


class Trainer:
    """Owns the model, EMA, optimiser and checkpoint directory of one training run."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, command: str | None = None):
        from .prior import resolve_device

        cfg.validate()  # every option, then memory and the folder: before any network exists
        check_training_resources(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        check_run_folder(self.out)
        self.device = resolve_device(cfg.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if self.out.exists() and (self.out / "state.json").exists() and not resume:
            raise FileExistsError(
                f"{self.out} already holds a training run; pass --resume to continue it "
                "or choose another --out"
            )
        from .precision import resolve_bf16

        self.bf16 = resolve_bf16(cfg.bf16, self.device)
        self._alpha_bars = VPSchedule().alpha_bars().float().to(self.device)  # once, not per step
        torch.manual_seed(cfg.seed)
        self.model = UNet(cfg.unet_config()).to(self.device)
        self.ema = UNet(cfg.unet_config()).to(self.device)
        if cfg.init_from and not (resume and (self.out / "state.json").exists()):
            self._init_from_prior(cfg.init_from)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        self.opt = self._optimizer()
        self.state = TrainState()
        if resume and (self.out / "state.json").exists():
            self._load()
        self.state.commands.append(command or " ".join(shlex.quote(a) for a in sys.argv))
        self.out.mkdir(parents=True, exist_ok=True)

    def _init_from_prior(self, name_or_path: str) -> None:
        """Start from a trained prior's weights (e.g. a 64-pixel-scale prior fine-tuned into a
        128-pixel-scale patch prior): the architecture and the target must be the same."""
        from .prior import load_prior

        src = load_prior(name_or_path)
        want = self.cfg.unet_config()
        have = src.net.config
        if (have.base_channels, tuple(have.channel_mults), have.num_res_blocks,
                tuple(have.attn_resolutions), have.prediction) != (
                want.base_channels, tuple(want.channel_mults), want.num_res_blocks,
                tuple(want.attn_resolutions), want.prediction):
            raise ValueError(
                f"--init-from {name_or_path}: its UNet ({have.base_channels} channels, mults "
                f"{tuple(have.channel_mults)}, {have.prediction}-prediction) differs from this "
                f"run's ({want.base_channels}, {tuple(want.channel_mults)}, {want.prediction}); "
                "pass matching --channels/--mults/--recipe")
        self.model.load_state_dict(src.net.state_dict())

    # -- checkpoints -------------------------------------------------------------------
    def _load(self) -> None:
        meta = json.loads((self.out / "state.json").read_text())
        saved = meta["config"]
        # the run's architecture, data and seed come from the checkpoint; steps, lr, device,
        # threads and checkpoint cadence may be changed on resume
        self.cfg = TrainConfig(**{**asdict(self.cfg), **{k: saved[k] for k in RUN_FIELDS
                                                          if k in saved}})
        self.cfg.channel_mults = tuple(self.cfg.channel_mults)
        self.cfg.attn_resolutions = tuple(self.cfg.attn_resolutions)
        self.model = UNet(self.cfg.unet_config()).to(self.device)
        self.ema = UNet(self.cfg.unet_config()).to(self.device)
        weights = load_file(str(self.out / "checkpoint_model.safetensors"))
        self.model.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("model.")})
        self.ema.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("ema.")})
        self.ema.requires_grad_(False)
        self.opt = self._optimizer()
        optim_file = self.out / "checkpoint_optim.safetensors"
        if optim_file.exists():
            _optim_from_tensors(self.opt, load_file(str(optim_file)), meta["optim"])
        # else: restored from a compact checkpoint (weights only): AdamW restarts its moments
        self.state = TrainState(step=meta["step"], wall_seconds=meta["wall_seconds"],
                                cpu_seconds=meta.get("cpu_seconds", 0.0),
                                commands=meta.get("commands", []))

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, betas=(0.9, self.cfg.beta2),
                                 weight_decay=self.cfg.weight_decay)

    def save_checkpoint(self) -> None:
        from ..io.files import atomic_path

        self.out.mkdir(parents=True, exist_ok=True)
        weights = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        weights.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in self.ema.state_dict().items()})
        tensors, meta = _optim_to_tensors(self.opt)
        cfg = asdict(self.cfg)
        state = {"step": self.state.step, "wall_seconds": self.state.wall_seconds,
                 "cpu_seconds": self.state.cpu_seconds, "commands": self.state.commands, "config": cfg, "optim": meta}
        # the one writer (temporary names, nothing left on failure); renamed weights, optimiser,
        # then state.json last: a state never names weights that are not there yet
        with atomic_path(self.out / "state.json") as tmp3, \
                atomic_path(self.out / "checkpoint_model.safetensors") as tmp, \
                atomic_path(self.out / "checkpoint_optim.safetensors") as tmp2:
            save_file(weights, str(tmp))
            save_file(tensors, str(tmp2))
            tmp3.write_text(json.dumps(state, indent=2))

    def export_prior(self, path: str | Path | None = None, extra_card: dict | None = None) -> Path:
        """Write the EMA weights as a loadable prior (safetensors + card)."""
        path = Path(path) if path else self.out / f"{self.cfg.name}.safetensors"
        card = {
            "name": self.cfg.name,
            "description": f"{self.cfg.prediction}-prediction UNet trained only on {self.cfg.phantoms} "
                           "phantoms drawn on the fly",
            "training": {
                "commands": self.state.commands,
                "steps": self.state.step,
                "recipe": self.cfg.recipe_card(),
                "phantoms": {"family": self.cfg.phantoms, "n_mean": self.cfg.n_mean, "n_max": self.cfg.n_max,
                             "render_size": render_size(self.cfg), "patch": self.cfg.size},
                "seed": self.cfg.seed,
                "init_from": self.cfg.init_from or None,
                "bf16": self.cfg.bf16,
                "bf16_used": self.bf16,
                "wall_seconds": round(self.state.wall_seconds, 1),
                "cpu_seconds": round(self.state.cpu_seconds, 1),
                "machine": machine_description(),
                "git_commit": _git_commit(),
            },
        }
        if (self.out / "validation.csv").exists():
            card["validation_csv"] = (self.out / "validation.csv").read_text().splitlines()
        card["pixel_scale"] = {"render_size": render_size(self.cfg), "patch": self.cfg.size,
                               "note": "trained for slices of render_size pixels across the "
                                       "field of view"}
        card.update(extra_card or {})
        return Prior(self.ema, VPSchedule(), card).save(path)

    # -- training ------------------------------------------------------------------------
    def budget_seconds_spent(self) -> float:
        """What the budget counts: process CPU time on a CPU (fair between runs that share
        cores), wall time on an accelerator (the host's CPU time says nothing there)."""
        return self.state.cpu_seconds if self.device.type == "cpu" else self.state.wall_seconds

    def progress(self) -> float:
        """Fraction of the run done: steps, or the time budget where one is set."""
        p = self.state.step / max(1, self.cfg.steps)
        if self.cfg.budget_minutes > 0:
            p = max(p, self.budget_seconds_spent() / (60 * self.cfg.budget_minutes))
        return min(1.0, p)

    def ema_decay(self, step: int) -> float:
        if self.cfg.ema == "power":
            return power_ema_decay(step + 1, self.cfg.ema_gamma)
        return min(self.cfg.ema_decay, (1 + step) / (10 + step))

    def train_step(self, step: int) -> float:
        cfg = self.cfg
        x0, t, noise = training_batch(cfg, step, self.device)
        ab = self._alpha_bars[t]
        xt = q_sample(x0, noise, ab)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(cfg, step, self.progress())
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(xt, t, raw=True)
        target = v_target(x0, noise, ab) if cfg.prediction == "v" else noise
        per_sample = ((pred.float() - target) ** 2).flatten(1).mean(1)
        loss = (loss_weight(ab, cfg.prediction, cfg.min_snr_gamma) * per_sample).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        decay = self.ema_decay(step)
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(pm, 1 - decay)
        return float(loss.detach())

    def validate(self) -> dict:
        # at the run's pixel scale: a patch prior is validated on patches of render_size phantoms
        prior = Prior(self.ema, VPSchedule(), {"pixel_scale": {"render_size": render_size(self.cfg)}})
        q = denoising_quality(prior, n=64, n_mean=self.cfg.n_mean)
        path = self.out / "validation.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "cpu_seconds"] + [f"{k}_t{t}" for t in VAL_TIMES
                                       for k in ("tweedie_psnr", "blur_psnr")])
            w.writerow([self.state.step, round(self.state.cpu_seconds, 1)] + [round(q[str(t)][k], 3) for t in VAL_TIMES
                                            for k in ("tweedie_psnr", "blur_psnr")])
        return q

    def run(self, progress: bool = True) -> Path:
        import signal

        from tqdm import tqdm

        def _stop(signum, frame):  # `kill` of a background run still writes a checkpoint
            raise KeyboardInterrupt

        if hasattr(signal, "SIGTERM"):
            try:
                signal.signal(signal.SIGTERM, _stop)
            except ValueError:  # not the main thread (e.g. inside a GUI worker)
                pass

        cfg = self.cfg
        loss_path = self.out / "loss.csv"
        for curve in (loss_path, self.out / "validation.csv"):
            _drop_rows_after(curve, self.state.step)
        new = not loss_path.exists()
        f = open(loss_path, "a", newline="")
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "loss", "wall_seconds", "cpu_seconds"])
        last_ckpt = time.time()
        bar = tqdm(total=cfg.steps, initial=self.state.step, disable=not progress,
                   desc=f"train {cfg.name}", dynamic_ncols=True)
        window: list[float] = []
        try:
            while self.state.step < cfg.steps and self.progress() < 1.0:
                t0, c0 = time.time(), time.process_time()
                loss = self.train_step(self.state.step)
                self.state.step += 1
                self.state.wall_seconds += time.time() - t0
                self.state.cpu_seconds += time.process_time() - c0
                window.append(loss)
                if self.state.step % 50 == 0:
                    writer.writerow([self.state.step, round(sum(window) / len(window), 5),
                                     round(self.state.wall_seconds, 1),
                                     round(self.state.cpu_seconds, 1)])
                    f.flush()
                    window.clear()
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if cfg.val_every and self.state.step % cfg.val_every == 0:
                    q = self.validate()
                    bar.write(f"step {self.state.step}: " + ", ".join(
                        f"t={t} tweedie {v['tweedie_psnr']:.2f} dB vs blur {v['blur_psnr']:.2f} dB"
                        for t, v in q.items()))
                if time.time() - last_ckpt > 60 * cfg.checkpoint_minutes:
                    self.save_checkpoint()
                    self.export_prior()
                    last_ckpt = time.time()
        finally:
            f.close()
            bar.close()
            self.save_checkpoint()
        return self.export_prior()


COMPACT_DTYPE = torch.float16


def compact_checkpoint(run_dir: str | Path, out: str | Path) -> Path:
    """One file that resumes a run: model + EMA in float16, no AdamW moments, the run's state
    (step, config, curves' length, commands) as JSON metadata. About a quarter of a full
    checkpoint; the only training binary a working period commits."""
    run_dir, out = Path(run_dir), Path(out)
    weights = load_file(str(run_dir / "checkpoint_model.safetensors"))
    state = json.loads((run_dir / "state.json").read_text())
    state.pop("optim", None)
    half = {k: v.to(COMPACT_DTYPE).contiguous() for k, v in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(half, str(tmp), metadata={"state": json.dumps(state),
                                        "loss_csv": (run_dir / "loss.csv").read_text(),
                                        "validation_csv": (run_dir / "validation.csv").read_text()
                                        if (run_dir / "validation.csv").exists() else ""})
    os.replace(tmp, out)
    return out


def restore_compact(path: str | Path, run_dir: str | Path) -> Path:
    """Unpack a compact checkpoint into a run directory that `--resume` continues (AdamW
    restarts with zero moments; the lr schedule, EMA and data stream continue exactly)."""
    from safetensors import safe_open

    run_dir = Path(run_dir)
    if (run_dir / "state.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; restore into a new directory")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k).float() for k in f.keys()}
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(run_dir / "checkpoint_model.safetensors"))
    state = json.loads(meta["state"])
    state["optim"] = {"param_groups": []}
    state.setdefault("commands", []).append(f"restored from compact checkpoint {Path(path).name}")
    (run_dir / "loss.csv").write_text(meta.get("loss_csv", ""))
    if meta.get("validation_csv"):
        (run_dir / "validation.csv").write_text(meta["validation_csv"])
    (run_dir / "state.json").write_text(json.dumps(state, indent=2))
    return run_dir


def train_prior(cfg: TrainConfig, resume: bool = False, progress: bool = True,
                command: str | None = None) -> Path:
    """Train (or resume) and export the EMA prior; returns the exported .safetensors path."""
    trainer = Trainer(cfg, resume=resume, command=command)
    return trainer.run(progress=progress)


def check_run_folder(out: Path) -> None:
    """The run folder as every file of the run will meet it: not a file, on a real writable
    filesystem with room for the checkpoints (io.files.check_destination)."""
    from ..io.files import OutputError, check_destination

    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; a training run needs a folder")
    check_destination(out / "checkpoint_model.safetensors", what="training run", option="--out")


def _drop_rows_after(path: Path, step: int) -> None:
    """Forget curve rows past the checkpoint being resumed: those steps will be redone."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
    if len(keep) != len(lines):
        path.write_text("".join(keep))
