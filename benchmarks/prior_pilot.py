"""Prior pilot at equal compute (issue #12): which training recipe wins on this machine?

    python -m benchmarks.prior_pilot --runs training/runs/pilot/classic32 \
        training/runs/pilot/vmin32 training/runs/pilot/vmin48 [--shipped ellipses-64]

For each run (its exported EMA prior): steps and CPU time spent, Tweedie PSNR at
t in {50, 200, 500, 800, 980} against the best linear baseline (blur + oracle affine fit),
16 unconditional samples (how many saturate, their mean intensity vs the phantoms'), and DDS
against ADMM-TV on 16 fresh in-distribution phantoms with 15-view CT and 1 % noise (gates a-c of
napari_d3ip.training.gates). Writes benchmarks/prior_pilot.{md,json} and docs/prior_pilot_curves.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from .measure import command_line

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMES = (50, 200, 500, 800, 980)


def evaluate_prior(prior, n_mean: float = 140.0) -> dict:
    from napari_d3ip.core.sampling import draw_samples
    from napari_d3ip.training.gates import gate_reconstruction, gate_samples
    from napari_d3ip.training.metrics import denoising_quality

    q = denoising_quality(prior, n=64, n_mean=n_mean, times=TIMES)
    samples = draw_samples(prior, n=16, nfe=50, seed=0)[:, 0].clamp(0, 1).numpy()
    return {"denoising": {t: {k: round(v, 3) for k, v in d.items()} for t, d in q.items()},
            "samples": gate_samples(prior, samples=samples, n_mean=n_mean),
            "reconstruction_ct15": gate_reconstruction(prior, n_mean=n_mean),
            "_samples": samples}


def read_csv(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", type=Path, default=[])
    ap.add_argument("--shipped", default=None, help="also evaluate a shipped prior by name")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label", default="prior_pilot", help="output names benchmarks/<label>.{md,json}")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_d3ip.core.precision import describe_machine
    from napari_d3ip.core.prior import load_prior
    from napari_d3ip.core.sampling import montage

    rows, curves, montages = [], {}, {}
    entries = [(d.name, d) for d in args.runs] + ([(args.shipped, None)] if args.shipped else [])
    for label, run in entries:
        if run is None:
            prior = load_prior(label)
            info = {"steps": prior.card.get("training", {}).get("steps"), "cpu_minutes": None}
        else:
            state = json.loads((run / "state.json").read_text(encoding="utf-8"))
            prior = load_prior(run / f"{state['config']['name']}.safetensors")
            info = {"steps": state["step"], "cpu_minutes": round(state.get("cpu_seconds", 0) / 60, 1),
                    "wall_minutes": round(state["wall_seconds"] / 60, 1),
                    "recipe": prior.card["training"].get("recipe"),
                    "channels": prior.net.config.base_channels,
                    "parameters": prior.card.get("parameters")}
            curves[label] = read_csv(run / "validation.csv")
        print(f"evaluating {label} ...", flush=True)
        ev = evaluate_prior(prior)
        montages[label] = ev.pop("_samples")
        rows.append({"run": label, **info, **ev})

    fig, axes = plt.subplots(1, len(TIMES), figsize=(3.2 * len(TIMES), 3))
    for ax, t in zip(axes, TIMES):
        for label, c in curves.items():
            key = f"tweedie_psnr_t{t}"
            if c and key in c[0]:
                ax.plot([r["cpu_seconds"] / 60 for r in c], [r[key] - r[f"blur_psnr_t{t}"] for r in c],
                        label=label)
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=f"t = {t}", xlabel="CPU minutes", ylabel="Tweedie − best linear (dB)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    (ROOT / "docs").mkdir(exist_ok=True)
    fig.savefig(ROOT / "docs" / f"{args.label}_curves.png", dpi=90)
    fig, axes = plt.subplots(1, len(montages), figsize=(3.2 * len(montages), 3.4))
    for ax, (label, s) in zip(axes if len(montages) > 1 else [axes], montages.items()):
        ax.imshow(montage(torch.from_numpy(s)[:, None]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / f"{args.label}_samples.png", dpi=90)

    command = command_line()
    machine = describe_machine()
    (HERE / f"{args.label}.json").write_text(json.dumps(
        {"command": command, "machine": machine, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    head = "| run | ch | steps | CPU min | " + " | ".join(f"t={t}" for t in TIMES) + \
           " | saturated /16 | mean ratio | DDS | ADMM-TV | DDS − TV |"
    lines = [f"# Prior pilot: {args.label}", "", f"`{command}`", "", f"Machine: {machine}.", "",
             "Denoising columns: Tweedie PSNR − best linear baseline (Gaussian blur + oracle affine "
             "fit) in dB, 64 validation phantoms. Samples: 16 unconditional 50-step samples; "
             "saturated = >5 % white pixels or empty (napari_d3ip.training.gates). DDS/ADMM-TV: 16 fresh "
             "phantoms, 15-view CT, 1 % noise, 50 NFE, per-slice-mean PSNR (dB).", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        d, s, rc = r["denoising"], r["samples"], r["reconstruction_ct15"]
        lines.append(
            f"| {r['run']} | {r.get('channels', '')} | {r['steps']} | {r.get('cpu_minutes') or ''} | "
            + " | ".join(f"{d[str(t)]['tweedie_psnr'] - d[str(t)]['blur_psnr']:+.2f}" for t in TIMES)
            + f" | {s['saturated']} | {s['mean_ratio']:.2f} | {rc['dds_psnr']:.2f} | "
            f"{rc['admm_tv_psnr']:.2f} | {rc['margin_db']:+.2f} |")
    lines += ["", f"![curves](../docs/{args.label}_curves.png)", "",
              f"![samples](../docs/{args.label}_samples.png)", ""]
    (HERE / f"{args.label}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
