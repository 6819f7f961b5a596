"""Is the prior's denoiser better than TV's? (issues #12 and #13: what caps DDS and D3IP here)

DDS ends on the prior's low-noise denoiser (its last steps run at t <= 200), and ADMM-TV is,
in effect, a TV denoiser inside the same data-consistency loop. If the network denoises
Ellipses phantoms *worse* than a TV denoiser does, DDS cannot beat ADMM-TV on them, however
the sampler is tuned, and an adaptation that starts from this network inherits the gap.

For each prior and each t: the same noisy validation phantoms x_t = √ᾱ x0 + √(1−ᾱ) ε
(`training.metrics.validation_set`), and three estimates of x0:

* the prior's Tweedie estimate x̂0(x_t, t) (what the samplers use);
* the best Gaussian blur of x_t/√ᾱ with an oracle affine fit (the gates' linear baseline);
* TV denoising (Chambolle) of x_t/√ᾱ, with the weight chosen per t by an oracle on a grid
  (the best the TV prior can do on these images: an upper bound for TV, in TV's favour).

    python -m benchmarks.denoiser_vs_tv --prior ellipses-64 --prior ellipses-64-v [--prior PATH]
        [--on phantoms --on brain-64 --on heldout-epi]

``--on`` picks the clean images: the validation phantoms (default), or the central slices of a
shipped real volume (anatomy no prior was trained on: the question the quality issue asks).

Writes benchmarks/denoiser_vs_tv.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TIMES = (20, 50, 100, 200)  # DDS's last steps; above 200 no TV weight of the grid is best inside it
TV_WEIGHTS = tuple(float(w) for w in np.geomspace(0.005, 8.0, 17))  # ratio ~1.6; none won at an end


def best_tv_psnr(noisy: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """Mean per-image PSNR (data range 1) of the best Chambolle TV weight on the grid."""
    import torch
    from skimage.restoration import denoise_tv_chambolle

    from napari_d3ip.training.metrics import psnr_batch

    best = (-np.inf, 0.0)
    for w in TV_WEIGHTS:
        est = np.stack([denoise_tv_chambolle(im, weight=w) for im in noisy]).clip(0, 1)
        p = psnr_batch(torch.from_numpy(est).float(), torch.from_numpy(clean).float())
        best = max(best, (p, w))
    return best


def anatomy_set(sample: str, size: int, n: int, seed: int = 0):
    """(x0, noise): the `n` central slices of shipped volume `sample` in [0, 1], resized to
    `size`² when needed, (n, 1, size, size) each; the noise seeded."""
    import torch
    from skimage.transform import resize

    from napari_d3ip.io.volumes import to_unit_range
    from napari_d3ip.sample_data import load_sample

    data, _ = to_unit_range(load_sample(sample))
    n = min(n, data.shape[0])
    start = data.shape[0] // 2 - n // 2
    sl = np.asarray(data[start:start + n], np.float32)
    if sl.shape[1:] != (size, size):
        sl = np.stack([resize(im, (size, size), order=1, anti_aliasing=True) for im in sl])
    x0 = torch.from_numpy(np.ascontiguousarray(sl, np.float32)).clamp(0, 1)[:, None]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    return x0, noise


def measure(prior, n: int, on: str = "phantoms") -> dict[str, dict[str, float]]:
    import torch

    from napari_d3ip.core.schedule import q_sample
    from napari_d3ip.training.metrics import best_blur_psnr, psnr_batch, validation_set

    if on == "phantoms":
        x0, noise = validation_set(prior.image_size, n, 140.0, render=prior.render_size)
    else:
        x0, noise = anatomy_set(on, prior.image_size, n)
    n = x0.shape[0]
    out = {}
    for t in TIMES:
        ab = prior.schedule.alpha_bar(t)
        xt = q_sample(x0, noise, ab)
        with torch.no_grad():
            est = torch.cat([prior.tweedie(xt[i:i + 16], t) for i in range(0, n, 16)])
        clean = x0[:, 0].numpy()
        tweedie = psnr_batch(est.clamp(0, 1), x0)
        blur, _ = best_blur_psnr(xt / ab**0.5, x0)
        tv, w = best_tv_psnr((xt / ab**0.5)[:, 0].numpy(), clean)
        out[str(t)] = {"tweedie_psnr": round(tweedie, 3), "blur_psnr": round(float(blur), 3),
                       "tv_psnr": round(tv, 3), "tv_weight": w}
    return out


def render(results: dict, machine: str, command: str) -> str:
    lines = ["# Denoiser vs TV (issues #12, #13, #23)", "",
             "Made by `" + command + "` (" + machine + "). Per-image PSNR (dB, data range 1) of "
             "x0 estimated from the same noisy images (validation phantoms, or the central "
             "slices of a real volume); TV = Chambolle with the best weight of a grid (an "
             "oracle, in TV's favour). Δ = network − TV.", "",
             "| prior | images | t | network (Tweedie) | best blur | best TV | Δ network − TV |",
             "|---|---|---|---|---|---|---|"]
    for key, res in results.items():
        name, _, on = key.partition(" on ")
        for t, r in res.items():
            lines.append(f"| {name} | {on or 'phantoms'} | {t} | {r['tweedie_psnr']:.2f} | "
                         f"{r['blur_psnr']:.2f} | "
                         f"{r['tv_psnr']:.2f} (w {r['tv_weight']:.3g}) | "
                         f"{r['tweedie_psnr'] - r['tv_psnr']:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", action="append", default=None, help="shipped name or path (repeatable)")
    ap.add_argument("--n", type=int, default=32, help="validation phantoms")
    ap.add_argument("--on", action="append", default=None,
                    help="clean images: 'phantoms' (default) or a shipped volume, e.g. brain-64 "
                         "(its central --n slices); repeatable")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "denoiser_vs_tv"), help="path stem of .json/.md")
    args = ap.parse_args(argv)
    import torch

    from benchmarks.store import command_line, write_report
    from napari_d3ip import load_prior
    from napari_d3ip.core.precision import describe_machine

    torch.set_num_threads(args.threads)
    machine = describe_machine()
    results = {}
    for name in args.prior or ["ellipses-64"]:
        prior = load_prior(name, device="cpu")
        for on in args.on or ["phantoms"]:
            key = prior.name if on == "phantoms" else f"{prior.name} on {on}"
            results[key] = measure(prior, args.n, on)
            print(key, json.dumps(results[key]), flush=True)
    command = command_line("denoiser_vs_tv", argv)
    write_report(Path(args.out), {"machine": machine, "command": command, "results": results},
                 render(results, machine, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
