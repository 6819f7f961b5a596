"""`d3ip train-prior`: train an Ellipses diffusion prior (resumable)."""

from __future__ import annotations

import shlex
import sys

from ..core.precision import BF16_MODES
from ..training.phantoms import FAMILIES
from ..training.recipes import RECIPES, TrainConfig, TrainConfigError
from ..training.trainer import train_prior
from ._common import HelpFormatter, add_device_option


def _recipe_default(field: str) -> str:
    """'(default: the recipe's: 0.0004 classic, 0.0008 v-minsnr)', read from TrainConfig."""
    def fmt(v) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    vals = ", ".join(f"{fmt(getattr(TrainConfig.from_recipe(r), field))} {r}" for r in RECIPES)
    return f" (default: the recipe's: {vals})"


def register(sub) -> None:
    p = sub.add_parser("train-prior", help="train an Ellipses diffusion prior (resumable)",
                       formatter_class=HelpFormatter,
                       description="Train a diffusion UNet (eps or v prediction, see --recipe) on "
                       "Ellipses phantoms drawn on the fly. Checkpoints every few minutes; "
                       "--resume continues exactly.")
    p.add_argument("--out", default="runs/ellipses-64", help="run directory (checkpoints, curves, exported prior)")
    p.add_argument("--name", default=None, help="prior name (default: ellipses-<size>)")
    p.add_argument("--size", type=int, default=64, help="training image (patch) size, square")
    p.add_argument("--render-size", type=int, default=0,
                   help="draw phantoms at this size and train on random --size patches: a prior for "
                   "slices of this many pixels at the cost of --size steps (0 = --size)")
    p.add_argument("--channels", type=int, default=32, help="UNet base channels")
    p.add_argument("--mults", default="1,2,2,2", help="channel multipliers per level")
    p.add_argument("--res-blocks", type=int, default=2, help="residual blocks per level")
    p.add_argument("--attn", default="16", help="resolutions with self-attention, comma-separated")
    p.add_argument("--steps", type=int, default=20000, help="total optimiser steps")
    p.add_argument("--batch", type=int, default=16, help="phantoms per optimiser step")
    p.add_argument("--recipe", default="classic", choices=list(RECIPES),
                   help="classic: eps, MSE, beta2 0.999, EMA 0.999 (the first prior); v-minsnr: "
                   "v prediction, min-SNR-5 weighting, beta2 0.99, warm-up + final decay, power EMA "
                   "(default: %(default)s)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate" + _recipe_default("lr"))
    p.add_argument("--prediction", default=None, choices=["eps", "v"],
                   help="override the recipe's target" + _recipe_default("prediction"))
    p.add_argument("--min-snr-gamma", type=float, default=None,
                   help="override min-SNR gamma, 0 = off" + _recipe_default("min_snr_gamma"))
    p.add_argument("--beta2", type=float, default=None, help="override AdamW beta2" + _recipe_default("beta2"))
    p.add_argument("--ema", default=None, choices=["exp", "power"],
                   help="override the EMA kind" + _recipe_default("ema"))
    p.add_argument("--decay-fraction", type=float, default=None,
                   help="override the final lr decay, a fraction of the run; 0 = none"
                   + _recipe_default("decay_fraction"))
    p.add_argument("--budget-minutes", type=float, default=0.0,
                   help="stop after this much process CPU time (equal-compute pilots); 0 = steps only")
    p.add_argument("--ellipses", type=float, default=140.0,
                   help="mean ellipse count per phantom (Poisson); 140 = the paper's recipe")
    p.add_argument("--init-from", default="",
                   help="start from this prior's weights (name or .safetensors path; same "
                        "architecture and target), e.g. to fine-tune a 64-pixel prior into a "
                        "--render-size 128 patch prior; '' = random initialisation")
    p.add_argument("--phantoms", default="ellipses", choices=list(FAMILIES),
                   help="phantom family: ellipses (the paper's) or organic (nested smooth regions, "
                   "gradients, soft edges and texture; see training/phantoms.py)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantoms, noise and initialisation")
    add_device_option(p)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--bf16", default="auto", choices=list(BF16_MODES),
                   help="bf16 autocast: auto = only on CUDA or a CPU with bf16 instructions "
                   "(avx512_bf16/amx_bf16; on AVX2-only CPUs bf16 is ~55x slower than fp32) "
                   "(default: %(default)s)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0,
                   help="minutes of wall time between checkpoints")
    p.add_argument("--val-every", type=int, default=1000, help="validation every N steps (0 = never)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=_cmd_train)


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    """'1,2,2' -> (1, 2, 2); anything else is an error naming the option."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise TrainConfigError(f"train-prior: {flag} must be comma-separated integers, e.g. "
                               f"1,2,2,2; got {text!r}") from None


def _cmd_train(args) -> int:
    cfg = TrainConfig.from_recipe(
        args.recipe,
        out=args.out, size=args.size, channels=args.channels,
        channel_mults=_int_list(args.mults, "--mults"),
        num_res_blocks=args.res_blocks,
        attn_resolutions=_int_list(args.attn, "--attn"),
        render_size=args.render_size, steps=args.steps, batch=args.batch, lr=args.lr,
        n_mean=args.ellipses, phantoms=args.phantoms, seed=args.seed, init_from=args.init_from,
        device=args.device, threads=args.threads, bf16=args.bf16,
        prediction=args.prediction, min_snr_gamma=args.min_snr_gamma, beta2=args.beta2,
        ema=args.ema, decay_fraction=args.decay_fraction, budget_minutes=args.budget_minutes,
        checkpoint_minutes=args.checkpoint_minutes, val_every=args.val_every,
        name=args.name or f"ellipses-{max(args.size, args.render_size)}",
    )
    command = "d3ip " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = train_prior(cfg, resume=args.resume, command=command)
    print(f"prior written to {path} (card: {path.with_suffix('.json')})")
    return 0


