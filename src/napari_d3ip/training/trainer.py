"""The trainer: one run of a diffusion prior on phantoms drawn on the fly (the recipes in
recipes.py, the losses in losses.py, the schedules in schedules.py, the data in data.py).

Resumable by construction: each step's phantoms, times and noise come from a generator seeded
by (seed, step), so a resumed run sees exactly the data it would have seen; checkpoints hold
the model, its EMA and the AdamW state (safetensors) plus a JSON state (checkpoints.py). The loss
curve and the validation curve are kept as CSV beside the checkpoint.
"""

from __future__ import annotations

import csv
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..core.precision import describe_machine, resolve_bf16
from ..core.prior import Prior, load_prior, resolve_device
from ..core.schedule import VPSchedule, q_sample
from ..core.unet import UNet
from .checkpoints import drop_rows_after, load_optimizer, load_weights, read_state, write_checkpoint
from .data import training_batch
from .losses import loss_weight, v_target
from .metrics import VAL_TIMES, denoising_quality
from .preflight import check_run_folder, check_training_resources
from .recipes import RUN_FIELDS, TrainConfig, TrainConfigError, render_size
from .schedules import lr_at, power_ema_decay


@dataclass
class TrainState:
    step: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    commands: list[str] = field(default_factory=list)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except Exception:
        return "unknown"


def machine_description() -> str:
    return describe_machine()


class Trainer:
    """Owns the model, EMA, optimiser and checkpoint directory of one training run."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, command: str | None = None):
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
        src = load_prior(name_or_path)
        want = self.cfg.unet_config()
        have = src.net.config
        if (have.base_channels, tuple(have.channel_mults), have.num_res_blocks,
                tuple(have.attn_resolutions), have.prediction) != (
                want.base_channels, tuple(want.channel_mults), want.num_res_blocks,
                tuple(want.attn_resolutions), want.prediction):
            raise TrainConfigError(  # a D3IPError: the CLI prints it as the user's error, no traceback
                f"--init-from {name_or_path}: its UNet ({have.base_channels} channels, mults "
                f"{tuple(have.channel_mults)}, {have.prediction}-prediction) differs from this "
                f"run's ({want.base_channels}, {tuple(want.channel_mults)}, {want.prediction}); "
                "pass matching --channels/--mults/--recipe")
        self.model.load_state_dict(src.net.state_dict())

    # -- checkpoints -------------------------------------------------------------------
    def _load(self) -> None:
        meta = read_state(self.out)
        saved = meta["config"]
        # the run's architecture, data and seed come from the checkpoint; steps, lr, device,
        # threads and checkpoint cadence may be changed on resume
        self.cfg = TrainConfig(**{**asdict(self.cfg), **{k: saved[k] for k in RUN_FIELDS
                                                          if k in saved}})
        self.cfg.channel_mults = tuple(self.cfg.channel_mults)
        self.cfg.attn_resolutions = tuple(self.cfg.attn_resolutions)
        self.model = UNet(self.cfg.unet_config()).to(self.device)
        self.ema = UNet(self.cfg.unet_config()).to(self.device)
        load_weights(self.out, self.model, self.ema)
        self.ema.requires_grad_(False)
        self.opt = self._optimizer()
        load_optimizer(self.out, self.opt, meta)  # False from a compact checkpoint: fresh moments
        self.state = TrainState(step=meta["step"], wall_seconds=meta["wall_seconds"],
                                cpu_seconds=meta.get("cpu_seconds", 0.0),
                                commands=meta.get("commands", []))

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, betas=(0.9, self.cfg.beta2),
                                 weight_decay=self.cfg.weight_decay)

    def save_checkpoint(self) -> None:
        state = {"step": self.state.step, "wall_seconds": self.state.wall_seconds,
                 "cpu_seconds": self.state.cpu_seconds, "commands": self.state.commands,
                 "config": asdict(self.cfg)}
        write_checkpoint(self.out, self.model, self.ema, self.opt, state)

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
            drop_rows_after(curve, self.state.step)
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


def train_prior(cfg: TrainConfig, resume: bool = False, progress: bool = True,
                command: str | None = None) -> Path:
    """Train (or resume) and export the EMA prior; returns the exported .safetensors path."""
    trainer = Trainer(cfg, resume=resume, command=command)
    return trainer.run(progress=progress)
