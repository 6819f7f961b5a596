"""Quality of every method on a real volume: the paper's Table 2, reproduced at 64².

Methods: ADMM-TV, DDS, DDNM, DPS, DiffusionMBIR, SCD, DDIP, D3IP-base, D3IP-mbir, D3IP-meta.
Tasks: sparse-view CT 15 and 60 views (1 % noise), 3D MRI with a Poisson-disc mask R = 8 (no
noise, as the shipped sample), multi-coil MRI x4 with 8 % ACS, 8 simulated coils, ESPIRiT
maps (1 % noise). Every method starts from the same measurement and seed. Each method's
settings are its task's preset (paper Table 5: `d3ip presets`), with the overrides given here.

Writes its section (`quality/<label>`; other sections are kept) to benchmarks/results.json
and re-renders benchmarks/RESULTS.md from it.

    python -m benchmarks.quality --quick                    # smoke: 8 slices, NFE 5, I = 1
    python -m benchmarks.quality --tasks ct15 --methods admm-tv,dds,d3ip-base \\
        --nfe 25 --k 4 --iters 5 --label partial-ct15       # a partial run
    python -m benchmarks.quality --estimate --nfe 25 --iters 5   # projected time, no run
    python -m benchmarks.quality --volume heldout-epi ...   # the second (held-out) volume
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .measure import command_line, machine_info, run_method, set_threads, warm_up
from .projection import project_seconds
from .report import HERE, f2, mb, render_results
from .store import Section, now, save, sections
from .tasks import (
    METHODS,
    TASKS,
    VOLUMES,
    load_prior_arg,
    load_volume,
    method_config,
    parse_list,
    prior_info,
    simulate_task,
)

QUICK = {"slices": 8, "nfe": 5, "iters": 1}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK['slices']} central slices, NFE {QUICK['nfe']}, "
                         f"I = {QUICK['iters']} (explicit options still win)")
    ap.add_argument("--methods", default="all", help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--tasks", default="all", help=f"comma list of {', '.join(TASKS)}")
    ap.add_argument("--volume", default="brain-64", choices=VOLUMES,
                    help="sample volume (heldout-epi: the second, held-out anatomy)")
    ap.add_argument("--slices", type=int, default=None, help="central slices kept (all)")
    ap.add_argument("--nfe", type=int, default=None, help="diffusion steps (preset: 50)")
    ap.add_argument("--iters", type=int, default=None,
                    help="adaptation iterations I per step (preset, Table 5)")
    ap.add_argument("--k", type=int, default=None, help="slices K per D3IP iteration (preset)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the simulation and of runs")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: the cores are shared; oversubscription is 10x slower)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-slices", type=int, default=None)
    ap.add_argument("--prior", default="ellipses-64", help="shipped prior name or .safetensors")
    ap.add_argument("--time-limit", type=float, default=1500.0,
                    help="seconds after which one run stops at the end of its step (timeout)")
    ap.add_argument("--label", default=None,
                    help="section name in results.json / RESULTS.md (default quick or full, "
                         "with the volume when not brain-64)")
    ap.add_argument("--note", default="", help="a sentence printed under the section title")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--estimate", action="store_true",
                    help="print the projected time of this plan from the measured unit costs "
                         "of section --from-label and exit (no run)")
    ap.add_argument("--from-label", default="quick", help="section used by --estimate")
    return ap


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        for k, v in QUICK.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
    if args.label is None:
        args.label = ("quick" if args.quick else "full") + (
            "" if args.volume == "brain-64" else f"-{args.volume}")
    args.method_list = parse_list(args.methods, METHODS, "method(s)")
    args.task_list = parse_list(args.tasks, TASKS, "task(s)")
    return args


def settings(args, n_slices: int) -> dict:
    return {"volume": args.volume, "slices": n_slices, "NFE": args.nfe or "preset (50)",
            "I": args.iters or "preset", "K": args.k or "preset", "seed": args.seed,
            "threads": args.threads, "device": args.device}


def title(args, n_slices: int) -> str:
    kind = ("quick smoke run — NOT comparable to the paper" if args.quick
            else "partial run" if args.label.startswith("partial") else "run")
    return (f"{args.label} ({kind}): {args.volume}, {n_slices} slices of 64², NFE "
            f"{args.nfe or 50}, I {args.iters or 'preset'}, K {args.k or 'preset'}")


def run_quality(argv: list[str] | None = None, prior=None) -> dict:
    """Run the benchmark; `prior` (a napari_d3ip Prior) replaces --prior (tests)."""
    args = resolve(parser().parse_args(argv))
    set_threads(args.threads)
    if args.estimate:
        return estimate(args, Path(args.out_dir))
    return run_grid(args, "quality", prior)


def run_grid(args: argparse.Namespace, kind: str, prior=None,
             method_overrides: dict[str, dict] | None = None, after_each=None) -> dict:
    """Every method of args.method_list on every task of args.task_list; the section is saved
    (results.json `kind/label`) and RESULTS.md re-rendered after every run."""
    out_dir = Path(args.out_dir)
    vol = load_volume(args.volume, args.slices)
    n = vol.shape[0]
    if prior is None and any(METHODS[m][1] != "admm-tv" for m in args.method_list):
        prior = load_prior_arg(args.prior)
    warm_up(prior)
    section = Section(label=args.label, title=title(args, n),
                             command=command_line(), machine=machine_info(),
                             settings=settings(args, n),
                             prior=prior_info(prior) if prior is not None else None,
                             note=args.note)
    for task_name in args.task_list:
        task = TASKS[task_name]
        t0 = time.perf_counter()
        meas = simulate_task(vol, task, args.seed)
        print(f"[{task_name}] simulated {n} slices in {time.perf_counter() - t0:.1f} s",
              flush=True)
        for method in args.method_list:
            over = {"nfe": args.nfe, "iters": args.iters, "k": args.k,
                    **(method_overrides or {}).get(method, {})}
            cfg = method_config(method, task, seed=args.seed, device=args.device,
                                       batch_slices=args.batch_slices, **over)
            row = run_method(meas, cfg, prior, time_limit=args.time_limit)
            row.update(task=task_name, method=method)
            section.rows.append(row)
            print(f"[{task_name}] {METHODS[method][0]:13s} PSNR {f2(row.get('psnr'))} "
                  f"SSIM {f2(row.get('ssim'), 3)} vol {f2(row.get('volume_psnr'))}"
                  f"  {row['wall_seconds']:.1f} s  peak {mb(row['peak_rss_bytes'])} MB"
                  f"  {row['status'][:70]}", flush=True)
            save(out_dir, kind, args.label, section.to_dict())  # survives a kill
            render_results(out_dir)
            if after_each is not None:
                after_each()
    section.finished = now()
    store = save(out_dir, kind, args.label, section.to_dict())
    path = render_results(out_dir)
    print(f"wrote {store} and {path}")
    return section.to_dict()


def estimate(args, out_dir: Path) -> dict:
    """Projected seconds of the planned runs from a measured section's unit costs."""
    src = sections(out_dir, "quality").get(args.from_label)
    if src is None:
        raise SystemExit(f"no section {args.from_label!r} in {out_dir / 'results.json'}; run "
                         "--quick first (or name another with --from-label)")
    n = load_volume(args.volume, args.slices).shape[0]
    by = {(r["task"], r["method"]): r for r in src["rows"]}
    lines, total = [], 0.0
    for t in args.task_list:
        for m in args.method_list:
            cfg = method_config(m, TASKS[t], nfe=args.nfe, iters=args.iters, k=args.k)
            row = by.get((t, m))
            sec = project_seconds(row, cfg, n)
            total += sec or 0.0
            lines.append(f"{t:7s} {m:10s} NFE {cfg.nfe:3d} I {cfg.adapt_iters:2d} "
                         f"K {cfg.k_slices}: " + (f"{sec / 60:7.1f} min" if sec else "unknown"))
    lines.append(f"total {total / 3600:.2f} h for {n} slices (from section "
                 f"{args.from_label!r}, measured on {src['machine']['cpu']} with "
                 f"{src['machine']['torch_threads']} thread(s))")
    print("\n".join(lines))
    return {"lines": lines, "total_seconds": total}


def main(argv: list[str] | None = None) -> None:
    run_quality(argv)


if __name__ == "__main__":
    main()
