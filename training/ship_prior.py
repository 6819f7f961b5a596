"""Ship a training run's EMA weights as a packaged prior, with its card and measured quality.

    python training/ship_prior.py --run training/runs/ellipses-64-p140 --name ellipses-64 \
        [--ablation training/runs/ellipses-64-p40] [--real heldout-epi]

Writes src/napari_d3ip/priors/<name>.safetensors (float16 weights) + .json (the card: how it
was made, training curves, denoising quality vs the best linear baseline, the four gates of
napari_d3ip.training.gates, the ablation run) and docs/<name>_samples.png, docs/<name>_curves.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def figures(prior, run_dir: Path, name: str, ablation: Path | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_d3ip.core.sampling import draw_samples, montage

    x = draw_samples(prior, n=16, nfe=50, seed=0)
    samples = ROOT / "docs" / f"{name}_samples.png"
    samples.parent.mkdir(exist_ok=True)
    plt.imsave(samples, montage(x), cmap="gray", vmin=0, vmax=1)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for d, label in [(run_dir, run_dir.name)] + ([(ablation, ablation.name)] if ablation else []):
        loss = read_csv(d / "loss.csv")
        ax[0].plot([r["step"] for r in loss], [r["loss"] for r in loss], label=label)
        val = read_csv(d / "validation.csv")
        for t in (50, 200, 500, 800, 980):
            if f"tweedie_psnr_t{t}" not in (val[0] if val else {}):
                continue
            ax[1].plot([r["step"] for r in val], [r[f"tweedie_psnr_t{t}"] - r[f"blur_psnr_t{t}"]
                                                  for r in val], label=f"{label} t={t}")
    ax[0].set(xlabel="step", ylabel="training loss (mean over 50 steps)", yscale="log",
              title="training loss")
    ax[1].set(xlabel="step", ylabel="dB", title="Tweedie PSNR − best linear baseline (validation)")
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    curves = ROOT / "docs" / f"{name}_curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)
    return [str(samples.relative_to(ROOT)), str(curves.relative_to(ROOT))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--name", default="ellipses-64")
    ap.add_argument("--ablation", type=Path, default=None, help="another run to compare with")
    ap.add_argument("--real", default="heldout-epi", help="held-out real sample volume ('' = skip)")
    ap.add_argument("--lineage", type=Path, default=None,
                    help="the card of the prior the run started from (its --init-from), kept as "
                         "training.init_from_training so the card says how the whole prior was made")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from napari_d3ip.core.prior import load_prior
    from napari_d3ip.training.metrics import denoising_quality

    state = json.loads((args.run / "state.json").read_text())
    exported = args.run / f"{state['config']['name']}.safetensors"
    prior = load_prior(exported)
    card = dict(prior.card)
    card["name"] = args.name
    if args.lineage:
        before = json.loads(args.lineage.read_text())["training"]
        card["training"] = {**card["training"], "init_from_training": before,
                            "total_steps": before["steps"] + card["training"]["steps"],
                            "total_cpu_seconds": round(before["cpu_seconds"]
                                                       + card["training"]["cpu_seconds"], 1)}
    n_mean = state["config"]["n_mean"]
    q = denoising_quality(prior, n=64, n_mean=n_mean, times=(50, 200, 500, 800, 980))
    card["quality"] = {
        "denoising": {t: {k: round(v, 3) for k, v in d.items()} for t, d in q.items()},
        "denoising_margin_db": {t: round(d["tweedie_psnr"] - d["blur_psnr"], 3)
                                for t, d in q.items()},
        "denoising_note": "64 fresh phantoms (validation seed 123456) of the training "
                          "distribution; blur = best Gaussian blur of the same noisy input "
                          "followed by the oracle affine intensity fit",
    }
    from napari_d3ip.training.gates import all_gates

    card["gates"] = all_gates(prior, n_mean=n_mean, skip=() if args.real else ("d_real_volume_ct15",))
    card["gates_note"] = ("issue #12 gates, napari_d3ip/training/gates.py; PSNR = per-slice mean; "
                          "tests/test_prior.py re-measures them (slow tests)")
    card["validation_curve"] = read_csv(args.run / "validation.csv")
    card.pop("validation_csv", None)
    if args.ablation:
        ab_state = json.loads((args.ablation / "state.json").read_text())
        card["ablation"] = {
            "other_run": args.ablation.name,
            "other_phantoms": {"n_mean": ab_state["config"]["n_mean"]},
            "other_steps": ab_state["step"],
            "other_validation_curve": read_csv(args.ablation / "validation.csv"),
        }
    card["figures"] = figures(prior, args.run, args.name, args.ablation)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    card["shipped_by"] = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                          "git_commit": commit}
    out = ROOT / "src" / "napari_d3ip" / "priors" / f"{args.name}.safetensors"
    prior.save(out, card, dtype=torch.float16)
    print(json.dumps({"quality": card["quality"], "gates": card["gates"]}, indent=2))
    print(f"shipped {out} ({card['training']['steps']} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
