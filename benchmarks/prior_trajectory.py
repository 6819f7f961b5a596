"""Where along the diffusion does one prior lose to another? (issue #12)

DDS on the study protocol (the 16 central slices of `brain-64`, NFE 25, seed 0) with each
prior, recording the PSNR of the estimate after every step, and once more started late
(`--t-start`, from A†y + noise as usual): if two priors still differ by the same amount when
both start at t = 400, the difference is made in the last, low-noise steps.

    python -m benchmarks.prior_trajectory --prior ellipses-64 --prior ellipses-64-v \
        --tasks ct15,mri-r8 --t-start 980,400

Writes benchmarks/prior_trajectory.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def trajectory(m, cfg, prior, reference) -> dict:
    from napari_d3ip.metrics import mean_psnr
    from napari_d3ip.pipeline import run

    steps: list[tuple[int, float]] = []
    r = run(m, cfg, prior, on_step=lambda s: steps.append((int(s.t), round(float(s.psnr), 3))))
    return {"final_psnr": round(float(mean_psnr(r.volume, reference)), 3), "steps": steps}


def render(rows: list[dict], machine: str, command: str) -> str:
    out = ["# DDS trajectories per prior (issue #12)", "",
           f"Made by `{command}` ({machine}). PSNR (dB, per-slice mean over the 16 central "
           "slices of brain-64) of the estimate after the step at diffusion time t; NFE 25, "
           "seed 0, each task's DDS preset.", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        out += [f"## {task}", "", "| prior | start | final | PSNR at t ≈ 960 / 720 / 480 / 240 / 120 |",
                "|---|---|---|---|"]
        for r in (r for r in rows if r["task"] == task):
            marks = []
            for want in (960, 720, 480, 240, 120):
                near = [p for t, p in r["steps"] if t <= want]
                marks.append(f"{near[0]:.2f}" if near and r["t_start"] >= want else "—")
            name = (f"{r['prior']} ({r['training_steps']} steps)" if r.get("training_steps")
                    else r["prior"])
            out.append(f"| {name} | {r['t_start']} | **{r['final_psnr']:.2f}** | "
                       + " / ".join(marks) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", action="append", default=None)
    ap.add_argument("--tasks", default="ct15,mri-r8")
    ap.add_argument("--t-start", default="980,400")
    ap.add_argument("--nfe", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "prior_trajectory"))
    args = ap.parse_args(argv)
    import torch

    from benchmarks.store import command_line, write_report
    from benchmarks.tasks import TASKS, load_volume, method_config, simulate_task
    from napari_d3ip import load_prior
    from napari_d3ip.core.precision import describe_machine

    torch.set_num_threads(args.threads)
    vol = load_volume("brain-64", 16)
    rows = []
    for task_name in args.tasks.split(","):
        m = simulate_task(vol, TASKS[task_name], 0)
        for name in args.prior or ["ellipses-64"]:
            prior = load_prior(name, device="cpu")
            for ts in (int(s) for s in args.t_start.split(",")):
                cfg = method_config("dds", TASKS[task_name], nfe=args.nfe, seed=0, t_start=ts)
                r = {"task": task_name, "prior": prior.name, "t_start": ts,
                     "training_steps": (prior.card.get("training") or {}).get("steps"),
                     **trajectory(m, cfg, prior, vol)}
                print(task_name, prior.name, ts, r["final_psnr"], flush=True)
                rows.append(r)
    machine = describe_machine()
    command = command_line("prior_trajectory", argv)
    write_report(Path(args.out), {"machine": machine, "command": command, "rows": rows},
                 render(rows, machine, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
