"""Compact training checkpoints: the one training binary a working period may commit.

    python training/compact.py pack --run training/runs/pilot/vmin48 --out training/compact/vmin48.safetensors
    python training/compact.py restore training/compact/vmin48.safetensors --run training/runs/vmin48
    d3ip train-prior --out training/runs/vmin48 --resume ...   # continues the run

`pack` keeps model + EMA in float16 and the run's state, loss and validation curves (as
metadata); it drops AdamW's moments (AdamW restarts them on resume; the step count, lr
schedule, EMA and the (seed, step) data stream continue exactly).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("restore")
    r.add_argument("file", type=Path)
    r.add_argument("--run", type=Path, required=True)
    args = ap.parse_args(argv)
    from napari_d3ip.training.checkpoints import compact_checkpoint, restore_compact

    if args.cmd == "pack":
        out = compact_checkpoint(args.run, args.out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    else:
        print(f"restored into {restore_compact(args.file, args.run)}; continue with "
              f"`d3ip train-prior --out {args.run} --resume`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
