"""fp32 vs bf16 autocast for the UNet on this machine (issue #12): forward and train step.

    python -m benchmarks.precision [--threads 1] [--channels 32] [--batch 4] [--repeats 5]

Prints (and writes benchmarks/precision.md) the median time of a forward pass and of a
training step (forward + backward + AdamW) at 64², in fp32 and under bf16 autocast, with the
CPU model, whether it has bf16 instructions, and what `--bf16 auto` picks here. Run it on
each kind of machine: on AVX2-only CPUs bf16 is emulated and many times slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="write benchmarks/precision.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from napari_d3ip.core.precision import cpu_flags, describe_machine, resolve_bf16
    from napari_d3ip.core.unet import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=args.channels, image_size=args.size))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 1, args.size, args.size)
    t = torch.randint(0, 1000, (args.batch,))
    rows = {}
    for label, bf16 in (("fp32", False), ("bf16", True)):
        def fwd(bf16=bf16):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(x, t)

        def step(bf16=bf16):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x, t, raw=True)
            loss = (out.float() - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        rows[label] = (_time(fwd, args.repeats), _time(step, args.repeats))
    flags = sorted(f for f in cpu_flags() if "bf16" in f or f in ("avx2", "avx512f", "amx_tile"))
    lines = [
        "# UNet precision on this machine", "",
        f"`python -m benchmarks.precision --threads {args.threads} --channels {args.channels} "
        f"--batch {args.batch} --repeats {args.repeats}`", "",
        f"Machine: {describe_machine()}; relevant flags: {', '.join(flags) or 'none'}; "
        f"`--bf16 auto` picks **{'bf16' if resolve_bf16('auto', 'cpu', warn=False) else 'fp32'}** here.", "",
        f"| precision | forward, batch {args.batch} @ {args.size}² (s) | train step (s) |", "|---|---|---|",
    ]
    for label, (f, s) in rows.items():
        lines.append(f"| {label} | {f:.3f} | {s:.3f} |")
    f32, b16 = rows["fp32"], rows["bf16"]
    lines += ["", f"bf16 / fp32 time: forward {b16[0] / f32[0]:.2f}×, train step {b16[1] / f32[1]:.2f}× "
              "(median of the repeats, measured side by side in one process).", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        (HERE / "precision.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
