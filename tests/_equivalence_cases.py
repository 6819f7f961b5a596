"""Seeded tiny runs whose outputs were recorded before the loop refactor (issue 15 item 3):
tests/test_pipeline_equivalence.py asserts that the loop still gives them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conftest import make_tiny_prior, matrix_operator, measurement_of

CASES = {
    "dds": dict(solver="dds"),
    "dds-gamma": dict(solver="dds", gamma=5.0),
    "ddnm": dict(solver="ddnm", ddnm_cg_steps=10),
    "dps": dict(solver="dps", eta=1.0),
    "mbir": dict(solver="mbir"),
    "d3ip-base": dict(solver="dds", adapter="d3ip-base"),
    "d3ip-mbir": dict(solver="mbir", adapter="d3ip-mbir"),
    "d3ip-meta": dict(solver="dds", adapter="d3ip-meta", meta_finetune_iters=1),
    "ddip": dict(solver="dds", adapter="ddip"),
    "scd": dict(solver="dds", adapter="scd"),
    "admm-tv": dict(solver="admm-tv", tv_iters=3),
}


def volume(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.zeros(n, size, size)
    v[:, 2:6, 1:7] = 0.3 + 0.6 * torch.rand(n, 1, 1, generator=g)
    v[:, 3:5, 3:5] += 0.2 * torch.rand(n, 1, 1, generator=g)
    return v.clamp(0, 1)


def measurement(n=6):
    return measurement_of(volume(n), matrix_operator(36, (8, 8), seed=3), noise=0.01)


def config(name, **kw):
    from napari_d3ip.config import RunConfig

    base = dict(nfe=4, device="cpu", batch_slices=4, adapt_iters=2, lr=1e-2, k_slices=3,
                window_lo=0, window_hi=999, seed=11)
    base.update(CASES[name])
    base.update(kw)
    return RunConfig(**base)


def run_case(name, **kw):
    """(volume, per-step losses) of one case."""
    from napari_d3ip.pipeline import reconstruct

    gen = reconstruct(measurement(), config(name, **kw), make_tiny_prior(0, 8))
    losses = []
    while True:
        try:
            losses.append(next(gen).loss)
        except StopIteration as stop:
            return stop.value.volume, losses


# cross-CPU spread measured by tests/tools/equivalence_spread.py (every ATen CPU capability x
# threads x another batch, against the reference recorded on an Intel Xeon); a 4x margin
SPREAD = json.loads((Path(__file__).parent / "data" / "pipeline_equivalence_spread.json").read_text())["cases"]
MARGIN, VOLUME_FLOOR, LOSS_FLOOR = 4.0, 1e-4, 1e-4


def volume_tol(name: str) -> float:
    """Max abs difference on a [0, 1] volume that rounding alone can make for this case."""
    return max(MARGIN * SPREAD[name]["volume_max_abs"], VOLUME_FLOOR)


def loss_rtol(name: str) -> float:
    """Relative difference of a per-step loss that rounding alone can make for this case."""
    return max(MARGIN * SPREAD[name]["loss_max_rel"], LOSS_FLOOR)
