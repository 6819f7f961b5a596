"""Train the pilot's winning recipe on a CUDA GPU in one short run (issue #12, the GPU route).

    python training/train_gpu.py --out training/runs/gpu-v64 --minutes 7

Sized for one run of at most 8 minutes on a single modern GPU: 64 base channels, batch 64,
the v-minsnr recipe (v prediction, min-SNR-5, AdamW beta2 0.99, warm-up + final decay over the
last 20 % of the time budget, power EMA), bf16 autocast (auto: on CUDA), a checkpoint every
2 minutes, and one validation at the end. Writes the run directory (checkpoint, curves,
state.json) and the exported prior with its card (`<out>/<name>.safetensors` + `.json`), which
`training/ship_prior.py` ships once it passes the gates. On a CPU it runs too (for the tests,
with a tiny `--steps`), but that is not its job: use `d3ip train-prior` there.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("training/runs/gpu-v64"))
    ap.add_argument("--name", default="organic-64-gpu")
    ap.add_argument("--minutes", type=float, default=7.0, help="time budget (wall time on the GPU)")
    ap.add_argument("--steps", type=int, default=1_000_000, help="step cap (tests use a handful)")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-snr-gamma", type=float, default=5.0,
                    help="min-SNR cap of the loss weight, 0 = plain v-MSE (training/README.md: the "
                         "uncapped pilot was ahead on brain CT at equal CPU compute)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--bf16", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--phantoms", default="organic", choices=["organic", "ellipses"],
                    help="phantom family (organic: the family that won the CPU pilot on real anatomy)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from napari_d3ip.training.recipes import TrainConfig
    from napari_d3ip.training.trainer import Trainer

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: pass --device cpu (tests) or run this on a GPU machine", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    cfg = TrainConfig.from_recipe(
        "v-minsnr", out=str(args.out), name=args.name, size=args.size, channels=args.channels,
        batch=args.batch, lr=args.lr, min_snr_gamma=args.min_snr_gamma, steps=args.steps, budget_minutes=args.minutes,
        device=args.device, bf16=args.bf16, checkpoint_minutes=2.0, val_every=0, warmup=500,
        phantoms=args.phantoms)
    command = "python training/train_gpu.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    trainer = Trainer(cfg, resume=args.resume, command=command)
    trainer.run(progress=sys.stderr.isatty())
    q = trainer.validate()
    path = trainer.export_prior()
    print(f"{trainer.state.step} steps in {trainer.state.wall_seconds / 60:.1f} min on {trainer.device}; "
          + ", ".join(f"t={t}: {v['tweedie_psnr'] - v['blur_psnr']:+.2f} dB" for t, v in q.items()))
    print(f"prior written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
