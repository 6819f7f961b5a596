"""Adaptation study (issue #13): what limits D3IP here, the prior or the adaptation?

    python -m benchmarks.adaptation_study --groups prior --prior ellipses-64 --prior random
    python -m benchmarks.adaptation_study --groups lr,iters,k,rank,place,keep,window,full

Fixed protocol (cheap enough to run many times): the 16 central slices of `brain-64` (and of
`heldout-epi` with `--volumes brain-64,heldout-epi`), SV-CT 15 views (1 % noise) and 3D MRI
R = 8 (Poisson mask, no noise), NFE 25 (`--nfe 50` for final rows), seed 0 (`--seeds 0,1,2`).
Methods start from the task's preset (paper Table 5) and change one setting per row.

`--prior random` is a randomly initialised network of the shipped architecture with PyTorch's
default initialisation everywhere (the output convolution is not zeroed, so the adapted LoRA
receives gradients): the deep-image-prior limit. Results accumulate in
benchmarks/adaptation_study.json (one entry per prior/volume/task/nfe/seed/row; rows already
measured are skipped, so the study resumes) and benchmarks/adaptation_study.md is rebuilt
from all of them. PSNR/SSIM: per-slice mean over the scored slices, data range per slice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from .measure import run_method, set_threads
from .store import command_line
from .tasks import TASKS, load_volume, method_config, simulate_task

HERE = Path(__file__).resolve().parent
STORE = HERE / "adaptation_study.json"

# group -> [(row label, method, {RunConfig overrides})]; per-task lr values where they differ
BASE_ROWS = [("DDS", "dds", {}), ("D3IP-base (preset)", "d3ip-base", {}),
             ("DiffusionMBIR", "mbir", {}), ("D3IP-mbir (preset)", "d3ip-mbir", {})]
GROUPS: dict[str, list[tuple[str, str, dict]]] = {
    "prior": BASE_ROWS + [("ADMM-TV", "admm-tv", {})],
    "lr": [(f"D3IP-base lr {lr:g}", "d3ip-base", {"lr": lr}) for lr in (1e-5, 1e-4, 1e-3, 3e-3, 1e-2)],
    "iters": [(f"D3IP-base I={i}", "d3ip-base", {"adapt_iters": i}) for i in (5, 20)],
    "k": [(f"D3IP-base K={k}", "d3ip-base", {"k_slices": k}) for k in (3, 12)],
    "rank": [(f"D3IP-base rank {r}", "d3ip-base", {"lora_rank": r}) for r in (16, 64)],
    "place": [("D3IP-base LoRA on all layers", "d3ip-base", {"lora_targets": "all"})],
    "keep": [("D3IP-base AdamW kept across steps", "d3ip-base", {"keep_optimizer": True})],
    "window": [("D3IP-base window t<=500", "d3ip-base", {"window_hi": 500}),
               ("D3IP-base window t>=500", "d3ip-base", {"window_lo": 500})],
    "full": [(f"D3IP-base full fine-tune lr {lr:g}", "d3ip-base", {"adapt_params": "full", "lr": lr})
             for lr in (1e-5, 1e-4)],
    # the best single changes together (CT: lr 3e-3 +0.80 dB, rank 16 +0.26 dB at the preset lr;
    # adapting only at t <= 500 kept the quality at half the adaptation passes)
    "best": [("D3IP-base lr 0.003 rank 16", "d3ip-base", {"lr": 3e-3, "lora_rank": 16}),
             ("D3IP-base lr 0.003 window t<=500", "d3ip-base", {"lr": 3e-3, "window_hi": 500})],
}


def random_prior(name: str = "ellipses-64"):
    """The shipped architecture, PyTorch's default init everywhere (conv_out not zeroed)."""
    from napari_d3ip import load_prior
    from napari_d3ip.core.prior import Prior
    from napari_d3ip.core.unet import UNet

    shipped = load_prior(name)
    torch.manual_seed(0)
    net = UNet(shipped.net.config)
    net.conv_out.reset_parameters()
    net.eval().requires_grad_(False)
    return Prior(net, shipped.schedule, {"name": f"random-{name}"})


def load_store() -> list[dict]:
    return json.loads(STORE.read_text(encoding="utf-8"))["rows"] if STORE.exists() else []


def save_store(rows: list[dict], machine: str) -> list[dict]:
    """Write `rows` merged with what is on disk now (another study process may have added rows
    since this one started: they are kept); returns the merged rows."""
    merged = {key(r): r for r in load_store()}
    merged.update({key(r): r for r in rows})
    rows = list(merged.values())
    tmp = STORE.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    tmp.replace(STORE)
    return rows


def key(r: dict) -> tuple:
    return (r["prior"], r["volume"], r["task"], r["nfe"], r["seed"], r["row"])


def render(rows: list[dict]) -> str:
    """One table per (prior, volume, nfe): rows x tasks, PSNR/SSIM (mean over seeds)."""
    from collections import defaultdict

    lines = ["# Adaptation study (issue #13)", "", "Rebuilt by `benchmarks/adaptation_study.py` from "
             "`adaptation_study.json`. PSNR (dB) / SSIM, per-slice mean over the 16 central slices; "
             "Δ = row − DDS on the same prior, task and seeds; s = wall seconds (1 thread; "
             "rows ran beside other jobs on a 2-core machine, some while paused for GUI timings "
             "(rank 16: 1419 s), so compare costs by counted passes, not by these seconds).", ""]
    tables = defaultdict(list)
    for r in rows:
        tables[(r["prior"], r["volume"], r["nfe"])].append(r)
    for (prior, volume, nfe), rs in sorted(tables.items()):
        tasks = sorted({r["task"] for r in rs})
        cells = defaultdict(list)
        for r in rs:
            if r.get("psnr") is not None:
                cells[(r["row"], r["task"])].append(r)
        labels = list(dict.fromkeys(r["row"] for r in rs))
        lines += [f"## prior `{prior}`, `{volume}` (16 slices), NFE {nfe}", "",
                  "| row | " + " | ".join(f"{TASKS[t].label}" for t in tasks) + " |",
                  "|---|" + "---|" * len(tasks)]
        for lab in labels:
            out = []
            for t in tasks:
                c = cells.get((lab, t))
                if not c:
                    out.append("")
                    continue
                p = sum(x["psnr"] for x in c) / len(c)
                s = sum(x["ssim"] for x in c) / len(c)
                d = cells.get(("DDS", t))
                delta = f", Δ {p - sum(x['psnr'] for x in d) / len(d):+.2f}" if d and lab != "DDS" else ""
                sec = sum(x["wall_seconds"] for x in c) / len(c)
                out.append(f"{p:.2f} / {s:.3f}{delta} ({sec:.0f} s, {len(c)} seed{'s' * (len(c) > 1)})")
            lines.append(f"| {lab} | " + " | ".join(out) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", default="prior", help=f"comma list of {', '.join(GROUPS)}")
    ap.add_argument("--prior", action="append", default=None,
                    help="shipped name, .safetensors path or 'random' (repeatable; default ellipses-64)")
    ap.add_argument("--volumes", default="brain-64")
    ap.add_argument("--tasks", default="ct15,mri-r8")
    ap.add_argument("--nfe", type=int, default=25)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", default=None, help="only rows whose label contains one of these "
                    "comma-separated strings (DDS always runs)")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args(argv)
    set_threads(args.threads)

    from napari_d3ip import load_prior
    from napari_d3ip.core.precision import describe_machine

    machine = describe_machine()
    rows = load_store()
    if args.render_only:
        (HERE / "adaptation_study.md").write_text(render(rows), encoding="utf-8")
        return 0
    done = {key(r) for r in rows}
    command = command_line("adaptation_study", argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise SystemExit(f"unknown group(s) {bad}; choose from {', '.join(GROUPS)}")
    for prior_name in args.prior or ["ellipses-64"]:
        prior = random_prior() if prior_name == "random" else load_prior(prior_name)
        label = prior_name if prior_name == "random" else prior.name
        for volume in args.volumes.split(","):
            vol = load_volume(volume, args.slices)
            for task_name in args.tasks.split(","):
                task = TASKS[task_name]

                for seed in (int(s) for s in args.seeds.split(",")):
                    m = simulate_task(vol, task, seed)
                    wanted = [("DDS", "dds", {})] + [r for g in groups for r in GROUPS[g]
                                                     if not args.rows or any(
                                                         f in r[0] for f in args.rows.split(","))]
                    for row, method, over in dict((r[0], r) for r in wanted).values():
                        k = (label, volume, task_name, args.nfe, seed, row)
                        if k in done:
                            continue
                        cfg = method_config(method, task, nfe=args.nfe, seed=seed, **over)
                        r = run_method(m, cfg, None if method == "admm-tv" else prior)
                        r.pop("per_slice_psnr", None)
                        entry = {"prior": label, "volume": volume, "task": task_name, "nfe": args.nfe,
                                 "seed": seed, "row": row, "method": method, "overrides": over,
                                 "machine": machine, "command": command, **r}
                        print(f"{label} {volume} {task_name} nfe{args.nfe} s{seed} {row}: "
                              f"{r.get('psnr')} dB, {r['wall_seconds']:.0f} s [{r['status']}]", flush=True)
                        rows.append(entry)
                        done.add(k)
                        rows = save_store(rows, machine)
                        (HERE / "adaptation_study.md").write_text(render(rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
