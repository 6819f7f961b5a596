"""Speed and memory as the number of slices grows: DDS, SCD, DDIP, D3IP-base.

The volume is brain-128 average-pooled to 64² in plane (128 real slices at 64²); N slices are
its N central ones. Every method runs the same task (CT 15 views by default), the same NFE
and its preset's K; I (adaptation iterations per step) is the same for every adaptive method,
so the work per adapted step is K·I slice-iterations for D3IP-base against N·I for SCD/DDIP,
as in the presets (the ratio D3IP/DDIP does not depend on I; the default I = 2 keeps the
per-slice methods affordable at 128 slices on a CPU).

Reported per run: wall time, the run card's sampling/adaptation split, time inside the UNet
(forward hooks on the network + the backward from the UNet's output on; UNetTimer),
peak memory (PeakRSS) and the adapted-parameter bytes; then the ratios
DDIP/D3IP-base (goal >= 12x at 64 slices), D3IP-base/DDS (goal <= 1.5x) and T(2N)/T(N)
per method (wall, and adaptation only: D3IP's should stay flat).

    python -m benchmarks.speed --quick           # 16, 32 slices, NFE 3, I = 1
    python -m benchmarks.speed                   # 16, 32, 64, 128 slices, NFE 10, I = 2

Writes its section (`speed/<label>`) to benchmarks/results.json and re-renders RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .measure import UNetTimer, command_line, machine_info, run_method, set_threads, warm_up
from .report import HERE, f2, mb, render_results
from .store import Section, now, save
from .tasks import (
    METHODS,
    TASKS,
    VOLUMES,
    central,
    load_prior_arg,
    load_volume,
    method_config,
    parse_list,
    prior_info,
    simulate_task,
)

SPEED_METHODS = ("dds", "scd", "ddip", "d3ip-base")
QUICK = {"sizes": [16, 32], "nfe": 3, "iters": 1}
FULL = {"sizes": [16, 32, 64, 128], "nfe": 10, "iters": 2}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"slices {QUICK['sizes']}, NFE {QUICK['nfe']}, I {QUICK['iters']}")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help=f"numbers of slices (default {FULL['sizes']})")
    ap.add_argument("--methods", default=",".join(SPEED_METHODS))
    ap.add_argument("--task", default="ct15", choices=list(TASKS))
    ap.add_argument("--volume", default="brain-128-64", choices=VOLUMES)
    ap.add_argument("--nfe", type=int, default=None, help=f"default {FULL['nfe']}")
    ap.add_argument("--iters", type=int, default=None, help=f"default {FULL['iters']}")
    ap.add_argument("--k", type=int, default=None, help="D3IP slices per iteration (preset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prior", default="ellipses-64")
    ap.add_argument("--time-limit", type=float, default=1500.0)
    ap.add_argument("--label", default=None, help="section name (default quick or full)")
    ap.add_argument("--note", default="")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    return ap


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y against x."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0
    return slope, my - slope * mx


def ratios(rows: list[dict]) -> dict[str, str]:
    by = {(r["method"], r["n_slices"]): r for r in rows if r.get("status") == "ok"}
    ns = sorted({r["n_slices"] for r in rows})
    out: dict[str, str] = {}

    def w(m, n):
        r = by.get((m, n))
        return r["wall_seconds"] if r else None

    def a(m, n):
        r = by.get((m, n))
        return r.get("adapt_seconds") if r else None

    for n in ns:
        d3, ddip, dds, scd = w("d3ip-base", n), w("ddip", n), w("dds", n), w("scd", n)
        parts = []
        if d3 and ddip:
            ad3, addip = a("d3ip-base", n), a("ddip", n)
            extra = f" [{addip / ad3:.1f}x]" if ad3 and addip else ""
            goal = " (goal >= 12x at 64)" if n == 64 else ""
            parts.append(f"DDIP / D3IP-base {ddip / d3:.2f}x{extra}{goal}")
        if d3 and scd:
            parts.append(f"SCD / D3IP-base {scd / d3:.2f}x")
        if d3 and dds:
            parts.append(f"D3IP-base / DDS {d3 / dds:.2f}x (goal <= 1.5x)")
        if parts:
            out[f"{n} slices"] = "; ".join(parts)
    fits = {}
    for m in [m for m in METHODS if any(r["method"] == m for r in rows)]:
        pts = [(n, a(m, n)) for n in ns if a(m, n) is not None]
        if len(pts) >= 2 and m != "dds":
            slope, icpt = fit_line(pts)
            fits[m] = (slope, icpt)
            out[f"{METHODS[m][0]} adaptation fit"] = (
                f"{icpt:.2f} s + {slope:.3f} s/slice × N (N = {[p[0] for p in pts]}); "
                f"projected at N = 256: {icpt + 256 * slope:.0f} s")
    if "ddip" in fits and "d3ip-base" in fits:
        proj = {m: fits[m][1] + 256 * fits[m][0] for m in ("ddip", "d3ip-base")}
        n_max = max(ns)
        if a("ddip", n_max) and a("d3ip-base", n_max):
            out["DDIP / D3IP-base adaptation"] = (
                f"{a('ddip', n_max) / a('d3ip-base', n_max):.1f}x measured at N = {n_max}; "
                f"{proj['ddip'] / proj['d3ip-base']:.1f}x projected at N = 256")
    for m in [m for m in METHODS if any(r["method"] == m for r in rows)]:
        pairs = []
        for n in ns:
            if 2 * n in ns and w(m, n) and w(m, 2 * n):
                txt = f"T({2 * n})/T({n}) = {w(m, 2 * n) / w(m, n):.2f}"
                if a(m, n) and a(m, 2 * n):
                    txt += f" [{a(m, 2 * n) / a(m, n):.2f}]"
                pairs.append(txt)
        if pairs:
            out[METHODS[m][0]] = ", ".join(pairs)
    return out


def run_speed(argv: list[str] | None = None, prior=None) -> dict:
    args = parser().parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = args.sizes or base["sizes"]
    nfe = args.nfe or base["nfe"]
    iters = args.iters or base["iters"]
    label = args.label or ("quick" if args.quick else "full")
    methods = parse_list(args.methods, SPEED_METHODS, "method(s)")
    set_threads(args.threads)
    out_dir = Path(args.out_dir)
    task = TASKS[args.task]
    full = load_volume(args.volume)
    if max(sizes) > full.shape[0]:
        raise SystemExit(f"{args.volume} has {full.shape[0]} slices; --sizes asks for "
                         f"{max(sizes)}")
    prior = prior if prior is not None else load_prior_arg(args.prior)
    warm_up(prior)
    section = Section(
        label=label, title=f"{label}: {task.label}, {args.volume}, slices {sizes}, NFE {nfe}, "
                           f"I {iters}, K {args.k or 'preset'}",
        command=command_line(), machine=machine_info(),
        settings={"task": args.task, "volume": args.volume, "slices": sizes, "NFE": nfe,
                  "I": iters, "K": args.k or "preset", "seed": args.seed,
                  "threads": args.threads, "device": args.device},
        prior=prior_info(prior), note=args.note)
    with UNetTimer(prior.net) as timer:
        for n in sizes:
            meas = simulate_task(central(full, n), task, args.seed)
            for m in methods:
                cfg = method_config(m, task, nfe=nfe, iters=iters, k=args.k,
                                           seed=args.seed, device=args.device)
                row = run_method(meas, cfg, prior, time_limit=args.time_limit,
                                        unet_timer=timer)
                row.update(method=m, task=args.task)
                row.pop("per_slice_psnr", None)
                section.rows.append(row)
                share = row.get("unet_share")
                print(f"[{n:3d} slices] {METHODS[m][0]:10s} {row['wall_seconds']:8.1f} s "
                      f"(adapt {f2(row.get('adapt_seconds'), 1)} s, UNet "
                      f"{100 * share if share else float('nan'):.0f} %) peak "
                      f"{mb(row['peak_rss_bytes'])} MB  {row['status'][:60]}",
                      flush=True)
                d = section.to_dict()
                d["ratios"] = ratios(section.rows)
                save(out_dir, "speed", label, d)
                render_results(out_dir)
    section.finished = now()
    d = section.to_dict()
    d["ratios"] = ratios(section.rows)
    store = save(out_dir, "speed", label, d)
    path = render_results(out_dir)
    for k, v in d["ratios"].items():
        print(f"{k}: {v}")
    print(f"wrote {store} and {path}")
    return d


def main(argv: list[str] | None = None) -> None:
    run_speed(argv)


if __name__ == "__main__":
    main()
