"""Speed of the forward operators: forward + adjoint of a batch of 16 slices.

Run: `python -m benchmarks.operators [--sizes 64 128 256] [--repeats 7] [--out FILE]`.
Writes a markdown table (default benchmarks/operators.md) with the machine description.
Times are medians over `repeats` runs after two warm-up runs; the CT system-matrix build (a
one-off per geometry, then cached) and the ESPIRiT estimate (a one-off per slice, at
simulation time) are reported separately.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from napari_d3ip.operators import (
    CartesianMRI,
    MulticoilMRI,
    ParallelBeamCT,
    birdcage_maps,
    espirit_maps,
    fft2c,
    poisson_disc_mask,
    uniform_lines_mask,
)
from napari_d3ip.operators.ct import clear_cache

from .measure import cpu_model

BATCH = 16


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of fn() in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fwd_adj(op, x: torch.Tensor):
    def run():
        with torch.no_grad():
            return op.adjoint(op.forward(x))
    return run


def bench_size(n: int, repeats: int, device: str) -> list[dict]:
    rows = []
    x = torch.rand(BATCH, 1, n, n, device=device)

    clear_cache()
    ct = ParallelBeamCT((n, n), 60, device=device)
    t = time.perf_counter()
    a, _ = ct.matrices()
    build = time.perf_counter() - t
    sec = timed(fwd_adj(ct, x), repeats)
    fbp = timed(lambda: ct.pinv(ct.forward(x)), repeats)
    rows.append({"op": "ct (60 views, sparse CSR)", "n": n, "total": sec,
                 "extra": f"build {build:.2f} s, nnz {a.values().numel() / 1e6:.2f} M; "
                          f"fwd+FBP {fbp / BATCH * 1e3:.2f} ms/slice"})

    mask = poisson_disc_mask((n, n), 8, seed=0)
    mri = CartesianMRI(mask, device=device)
    rows.append({"op": "mri (single coil, x8 Poisson disc)", "n": n,
                 "total": timed(fwd_adj(mri, x), repeats), "extra": ""})

    lines = uniform_lines_mask((n, n), 4, seed=0)
    maps = birdcage_maps(8, (n, n))
    mc = MulticoilMRI(lines, maps[None].expand(BATCH, -1, -1, -1), device=device)
    ksp = fft2c(maps * x[0, 0].cpu()) * torch.from_numpy(lines)
    n_acs = round(0.08 * n)
    kw = max(2, n_acs // 3)
    esp = timed(lambda: espirit_maps(ksp, calib_size=(n, n_acs), kernel=(6, kw)),
                max(1, repeats // 3), warmup=1)
    rows.append({"op": "mri-multicoil (8 coils, per-slice maps)", "n": n,
                 "total": timed(fwd_adj(mc, x), repeats),
                 "extra": f"ESPIRiT {esp:.2f} s/slice ({n_acs} ACS lines, kernel (6, {kw}))"})
    return rows


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__} "
            f"(default {torch.get_num_threads()} threads); Python "
            f"{platform.python_version()}\n- load average at start: "
            f"{', '.join(f'{v:.2f}' for v in load)} (other jobs shared the cores)\n")


def table(rows: list[dict]) -> list[str]:
    out = ["| operator | size | fwd+adj, 16 slices (ms) | per slice (ms) | notes |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['op']} | {r['n']}² | {r['total'] * 1e3:.2f} | "
                   f"{r['total'] / BATCH * 1e3:.3f} | {r['extra']} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                    help="torch thread counts to run with (0 = torch's default)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("operators.md"))
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    lines = [
        "# Operator speed: forward + adjoint, batch of 16 slices",
        "",
        f"Made by `python -m benchmarks.operators` on {time.strftime('%Y-%m-%d')}, device "
        f"`{args.device}`; median of {args.repeats} runs after 2 warm-ups, no autograd.",
        "",
        machine(),
    ]
    for threads in args.threads:
        torch.set_num_threads(threads if threads > 0 else default_threads)
        rows = []
        for n in args.sizes:
            rows += bench_size(n, args.repeats, args.device)
            print(f"{torch.get_num_threads()} threads, {n}^2 done", flush=True)
        lines += [f"## {torch.get_num_threads()} torch thread(s)", "", *table(rows), ""]
    lines += [
        "CT build = the one-off construction of the sparse system matrix and its transpose "
        "(cached per geometry, device and dtype). ESPIRiT = coil-map estimation for one slice "
        "from its ACS lines (done once, at simulation time).",
        "",
        "On a machine whose cores are busy with other jobs, torch's multi-threaded kernels can "
        "be 10-20x slower than one thread (a parallel region waits for a descheduled worker "
        "thread): compare the two tables. Library code never sets the thread count; callers "
        "decide (`torch.set_num_threads`).",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
