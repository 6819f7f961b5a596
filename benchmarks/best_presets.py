"""The recommended D3IP presets against ADMM-TV on real anatomy, all slices, with ablations
(quality issue #23: "show what the prior and its adaptation add by switching each off").

    python -m benchmarks.best_presets [--prior organic-64] [--slices 0]

For `brain-64` and `heldout-epi` (all slices unless --slices), 15-view CT with 1 % noise and
3D MRI at R = 8 (simulated alike, seed 0), four rows per task:

* ``admm-tv``: the task's ADMM-TV preset (the line to beat);
* ``best``: `sv-ct-best` / `mri3d-best` with the given prior;
* ``prior off``: the same run with the anchor w = 0, so the prior's estimate weighs nothing and
  the estimator is ADMM-TV's (what the prior adds is `best` minus this row);
* ``+ adaptation``: `best` with D3IP's adaptation switched on (d3ip-mbir: LoRA, lr 3e-3, K 4,
  I 5; what the adaptation adds is this row minus `best`).

Per-slice-mean PSNR (dB) / SSIM; writes benchmarks/best_presets.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .measure import machine_info, set_threads
from .store import command_line, write_report
from .tasks import TASKS, load_volume, simulate_task

HERE = Path(__file__).resolve().parent
VOLUMES = ("brain-64", "heldout-epi")
TASK_PRESETS = {"ct15": ("sv-ct-admm-tv", "sv-ct-best"), "mri-r8": ("mri3d-admm-tv", "mri3d-best")}
ADAPTATION = {"adapter": "d3ip-mbir", "lr": 3e-3, "k_slices": 4, "adapt_iters": 5}
ROWS = ("admm-tv", "best", "prior off", "+ adaptation")


def configs(task: str, prior: str) -> dict:
    """The four rows' RunConfigs for `task`."""
    from napari_d3ip.config import from_preset

    tv, best = TASK_PRESETS[task]
    kw = {"device": "cpu", "seed": 0, "prior": prior}
    return {"admm-tv": from_preset(tv, device="cpu", seed=0),
            "best": from_preset(best, **kw),
            "prior off": from_preset(best, anchor=0.0, **kw),
            "+ adaptation": from_preset(best, **ADAPTATION, **kw)}


def evaluate(prior: str, slices: int | None, volumes: tuple[str, ...] = VOLUMES) -> list[dict]:
    from napari_d3ip.core.prior import load_prior
    from napari_d3ip.pipeline import run

    net = load_prior(prior, "cpu")
    rows = []
    for vol_name in volumes:
        vol = load_volume(vol_name, slices or None)
        for task_name in TASK_PRESETS:
            m = simulate_task(vol, TASKS[task_name], seed=0)
            for row, cfg in configs(task_name, prior).items():
                cfg = cfg.replace(batch_slices=vol.shape[0])
                t0 = time.perf_counter()
                r = run(m, cfg, None if cfg.solver == "admm-tv" else net)
                rows.append({"volume": vol_name, "slices": int(vol.shape[0]), "task": task_name,
                             "row": row, "preset": cfg.preset, "prior": prior,
                             "psnr": round(r.metrics["psnr"], 2), "ssim": round(r.metrics["ssim"], 3),
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict], info: dict, command: str) -> str:
    out = ["# Recommended presets against ADMM-TV, all slices, with ablations", "",
           f"`{command}`", "",
           f"Machine: {info['cpu']}, torch {info['torch']}, {info['torch_threads']} thread(s). "
           "Per-slice-mean PSNR (dB) / SSIM, seed 0; seconds in brackets. `prior off` = the "
           "same run with anchor w = 0; `+ adaptation` = d3ip-mbir (LoRA, lr 3e-3, K 4, I 5).", "",
           "| volume | task | " + " | ".join(ROWS) + " | prior adds | adaptation adds |",
           "|---|---|" + "---|" * (len(ROWS) + 2)]
    for vol in VOLUMES:
        for task in TASK_PRESETS:
            sel = {r["row"]: r for r in rows if r["volume"] == vol and r["task"] == task}
            if not sel:
                continue
            cells = [f"{sel[k]['psnr']:.2f} / {sel[k]['ssim']:.3f} ({sel[k]['seconds']:.0f} s)"
                     if k in sel else "" for k in ROWS]
            gain = (f"{sel['best']['psnr'] - sel['prior off']['psnr']:+.2f}"
                    if {"best", "prior off"} <= set(sel) else "")
            adapt = (f"{sel['+ adaptation']['psnr'] - sel['best']['psnr']:+.2f}"
                     if {"best", "+ adaptation"} <= set(sel) else "")
            n = next(iter(sel.values()))["slices"]
            out.append(f"| {vol} ({n}) | {task} | " + " | ".join(cells) + f" | {gain} | {adapt} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="organic-64", help="prior of the diffusion rows")
    ap.add_argument("--slices", type=int, default=0, help="central slices (0 = all)")
    ap.add_argument("--volumes", default=",".join(VOLUMES), help="comma-separated sample volumes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "best_presets"), help="path stem of .json/.md")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    rows = evaluate(args.prior, args.slices, tuple(args.volumes.split(",")))
    info = machine_info()
    command = command_line("best_presets", argv)
    write_report(Path(args.out), {"machine": info, "command": command, "rows": rows},
                 markdown(rows, info, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
