"""Quality gates of a prior (issue #12): is it worth shipping, and worth adapting?

(a) in-distribution reconstruction: 16 fresh Ellipses phantoms at the prior's pixel scale,
    15-view CT, 1 % noise,
    DDS (50 NFE) >= ADMM-TV + 1 dB;
(b) denoising: Tweedie PSNR at t = 800 >= the best linear baseline (Gaussian blur with an
    oracle affine fit, training/metrics.best_blur_psnr) + 3 dB;
(c) samples: no saturated unconditional sample among 16, and their mean intensity within 20 %
    of the phantoms' mean (for a patch prior: of random crops of phantoms at its scale).
    A sample is *saturated* if more than 5 % of its pixels are white
    (>= 0.98; no phantom of the training distribution has more than 0.2 %) or if it is empty
    (max < 0.1; every phantom has max 1);
(d) held-out real volume (`heldout-epi`), 15-view CT, 1 % noise: DDS >= least squares + 1.5 dB.

Each gate returns its measured values, its threshold and whether it passed, so the card and
the README can print them. The gates compose the pipeline; nothing here is trained.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..config import RunConfig
from ..core.prior import Prior
from ..core.sampling import draw_samples
from ..io.volumes import to_unit_range
from ..metrics import mean_psnr
from ..operators import simulate
from ..pipeline import run
from ..sample_data import load_sample
from ..solvers.cg import cg
from .data import random_patches
from .metrics import denoising_quality
from .phantoms import ellipses

GATE_PHANTOM_SEED = 777_001  # fresh: not the training seeds (seed, step) nor validation 123456
WHITE, WHITE_FRACTION, EMPTY_MAX = 0.98, 0.05, 0.1


def fresh_phantoms(n: int = 16, size: int = 64, n_mean: float = 140.0,
                   seed: int = GATE_PHANTOM_SEED) -> np.ndarray:
    """(n, size, size) Ellipses phantoms in [0, 1] drawn from a seed training never uses."""
    g = torch.Generator().manual_seed(seed)
    return ellipses(n, size, n_mean, 140, seed=g)[:, 0].numpy()


def saturated(samples: np.ndarray) -> np.ndarray:
    """Per-sample flag (see the module docstring): white-saturated or empty."""
    flat = samples.reshape(len(samples), -1)
    return ((flat >= WHITE).mean(1) > WHITE_FRACTION) | (flat.max(1) < EMPTY_MAX)


def _ct_dds_vs(prior: Prior, volume01: np.ndarray, baseline: str, nfe: int, seed: int,
               device: str) -> dict[str, float]:
    m = simulate(volume01, "ct", noise=0.01, seed=seed, n_views=15)
    dds = run(m, RunConfig(nfe=nfe, device=device, seed=seed), prior).volume
    out = {"dds_psnr": mean_psnr(dds, volume01)}
    if baseline == "admm-tv":
        tv = run(m, RunConfig(solver="admm-tv", device=device, seed=seed), None).volume
        out["admm_tv_psnr"] = mean_psnr(tv, volume01)
    else:
        op = m.operator
        with torch.no_grad():
            ls = cg(op.normal, op.adjoint(m.y), None, 20)[:, 0].clamp(0, 1).numpy()
        out["least_squares_psnr"] = mean_psnr(ls, volume01)
    return {k: round(float(v), 3) for k, v in out.items()}


def gate_reconstruction(prior: Prior, n: int = 16, nfe: int = 50, n_mean: float = 140.0,
                        device: str = "cpu") -> dict:
    """(a) DDS vs ADMM-TV on fresh phantoms, CT 15 views, 1 % noise; the phantoms are drawn at
    the prior's pixel scale (a patch prior trained for 128-pixel slices meets 128² phantoms)."""
    vol = fresh_phantoms(n, prior.render_size, n_mean)
    r = _ct_dds_vs(prior, vol, "admm-tv", nfe, 0, device)
    margin = r["dds_psnr"] - r["admm_tv_psnr"]
    return {**r, "margin_db": round(margin, 3), "threshold_db": 1.0, "passed": margin >= 1.0}


def gate_denoising(prior: Prior, t: int = 800, n_mean: float = 140.0) -> dict:
    """(b) Tweedie PSNR at t vs the best linear (blur + affine) baseline."""
    q = denoising_quality(prior, n=64, n_mean=n_mean, times=(t,))[str(t)]
    margin = q["tweedie_psnr"] - q["blur_psnr"]
    return {"t": t, "tweedie_psnr": round(q["tweedie_psnr"], 3), "blur_psnr": round(q["blur_psnr"], 3),
            "margin_db": round(margin, 3), "threshold_db": 3.0, "passed": margin >= 3.0}


def gate_samples(prior: Prior, n: int = 16, nfe: int = 50, n_mean: float = 140.0,
                 samples: np.ndarray | None = None) -> dict:
    """(c) saturation count and mean intensity of n unconditional samples."""
    if samples is None:
        samples = draw_samples(prior, n=n, nfe=nfe, seed=0)[:, 0].clamp(0, 1).numpy()
    flags = saturated(samples)
    size = samples.shape[-1]
    scale = prior.render_size if prior is not None else size
    ref = torch.from_numpy(fresh_phantoms(256, max(size, scale), n_mean))[:, None]
    if ref.shape[-1] > size:  # a patch prior draws crops of larger phantoms: compare with crops
        ref = random_patches(ref, size, torch.Generator().manual_seed(GATE_PHANTOM_SEED))
    ref_mean = float(ref.mean())
    ratio = float(samples.mean()) / ref_mean
    return {"saturated": int(flags.sum()), "of": len(samples),
            "sample_mean": round(float(samples.mean()), 4), "phantom_mean": round(ref_mean, 4),
            "mean_ratio": round(ratio, 3),
            "passed": bool(flags.sum() == 0 and abs(ratio - 1) <= 0.2)}


def gate_real_volume(prior: Prior, sample: str = "heldout-epi", nfe: int = 50,
                     device: str = "cpu") -> dict:
    """(d) DDS vs least squares (20 CG from 0) on a held-out real volume, CT 15 views."""
    data01, _ = to_unit_range(load_sample(sample))
    r = _ct_dds_vs(prior, data01, "least-squares", nfe, 0, device)
    margin = r["dds_psnr"] - r["least_squares_psnr"]
    return {"volume": sample, **r, "margin_db": round(margin, 3), "threshold_db": 1.5,
            "passed": margin >= 1.5}


GATES: dict[str, Callable[..., dict]] = {
    "a_reconstruction_ct15": gate_reconstruction,
    "b_denoising_t800": gate_denoising,
    "c_samples": gate_samples,
    "d_real_volume_ct15": gate_real_volume,
}


def all_gates(prior: Prior, n_mean: float = 140.0, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """Run every gate (PSNR: per-slice mean, data range 1)."""
    out = {}
    for name, fn in GATES.items():
        if name in skip:
            continue
        out[name] = fn(prior) if name == "d_real_volume_ct15" else fn(prior, n_mean=n_mean)
    return out
