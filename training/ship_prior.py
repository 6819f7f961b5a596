"""Ship a training run's EMA weights as a packaged prior, with its card and measured quality.

    python training/ship_prior.py --run training/runs/ellipses-64-p140 --name ellipses-64 \
        [--ablation training/runs/ellipses-64-p40] [--real heldout-epi]

Writes src/napari_d3ip/priors/<name>.safetensors + .json (the card: how it was made, training
curves, denoising quality vs the best Gaussian blur, DDS vs least squares on a held-out real
volume, the phantom-distribution ablation) and docs/<name>_samples.png, docs/<name>_curves.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def real_volume_check(prior, sample: str, views: int = 15, nfe: int = 50) -> dict:
    """15-view CT of a held-out real volume: FBP, least squares (20 CG from 0), DDS."""
    from napari_d3ip.config import RunConfig
    from napari_d3ip.io.volumes import to_unit_range
    from napari_d3ip.metrics import evaluate
    from napari_d3ip.operators import simulate
    from napari_d3ip.pipeline import run
    from napari_d3ip.sample_data import load_sample
    from napari_d3ip.solvers.cg import cg

    data01, _ = to_unit_range(load_sample(sample))
    m = simulate(data01, "ct", noise=0.01, seed=0, n_views=views)
    op, y = m.operator, m.y
    with torch.no_grad():
        ls = cg(op.normal, op.adjoint(y), None, 20)[:, 0].clamp(0, 1).numpy()
    dds = run(m, RunConfig(nfe=nfe, device="cpu", seed=0), prior).volume
    return {"volume": sample, "views": views, "noise": 0.01, "nfe": nfe,
            "fbp_psnr": evaluate(np.clip(m.pinv(), 0, 1), data01)["psnr"],
            "least_squares_psnr": evaluate(ls, data01)["psnr"],
            "dds_psnr": evaluate(dds, data01)["psnr"]}


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
        for t in (50, 200, 500):
            ax[1].plot([r["step"] for r in val], [r[f"tweedie_psnr_t{t}"] - r[f"blur_psnr_t{t}"]
                                                  for r in val], label=f"{label} t={t}")
    ax[0].set(xlabel="step", ylabel="ε-MSE (mean over 50 steps)", yscale="log",
              title="training loss")
    ax[1].set(xlabel="step", ylabel="dB", title="Tweedie PSNR − best blur PSNR (validation)")
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
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from napari_d3ip.core.prior import load_prior
    from napari_d3ip.core.training import denoising_quality

    state = json.loads((args.run / "state.json").read_text())
    exported = args.run / f"{state['config']['name']}.safetensors"
    prior = load_prior(exported)
    card = dict(prior.card)
    card["name"] = args.name
    n_mean = state["config"]["n_mean"]
    q = denoising_quality(prior, n=64, n_mean=n_mean)
    card["quality"] = {
        "denoising": {t: {k: round(v, 3) for k, v in d.items()} for t, d in q.items()},
        "denoising_margin_db": {t: round(d["tweedie_psnr"] - d["blur_psnr"], 3)
                                for t, d in q.items()},
        "denoising_note": "64 fresh phantoms (validation seed 123456) of the training "
                          "distribution; blur = best Gaussian blur of the same noisy input",
    }
    if args.real:
        check = real_volume_check(prior, args.real)
        card["quality"]["real_volume_ct15"] = {
            k: (round(v, 3) if isinstance(v, float) else v) for k, v in check.items()}
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
    prior.save(out, card)
    print(json.dumps(card["quality"], indent=2))
    print(f"shipped {out} ({card['training']['steps']} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
