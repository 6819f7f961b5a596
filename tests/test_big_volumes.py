"""Real-size volumes through the pipeline: tiles, the prior chosen by scale, memory refused early."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_d3ip.config import RunConfig
from napari_d3ip.io.files import ResourceError
from napari_d3ip.operators import simulate
from napari_d3ip.pipeline import reconstruct, run
from napari_d3ip.training.phantoms import ellipses


def ct(size: int, n: int = 2):
    vol = ellipses(n, size, 20.0, 40, seed=0)[:, 0].numpy().astype(np.float32)
    return simulate(vol, "ct", 0.01, 0, n_views=15)


def test_tiled_run_is_close_to_the_whole_slice_run_and_recorded(tiny_prior):
    m = ct(128)
    whole = run(m, RunConfig(nfe=3, device="cpu"), prior=tiny_prior)
    tiled = run(m, RunConfig(nfe=3, device="cpu", tile=64), prior=tiny_prior)
    assert tiled.card["tile"] == 64 and whole.card["tile"] == 0
    diff = np.abs(tiled.volume - whole.volume).mean() / np.abs(whole.volume).mean()
    assert 0 < diff < 0.1
    # blended seams: no jump along the tile borders (rows/cols 48 and 64 for 128 = 0, 48, 64)
    d = np.abs(np.diff(tiled.volume - whole.volume, axis=-1)).mean(axis=(0, 1))
    assert d[[47, 63]].max() < 3 * np.median(d)


def test_auto_prior_is_chosen_by_the_slices_scale_and_recorded():
    m = ct(64, 1)
    res = run(m, RunConfig(nfe=1, device="cpu", prior="auto"))
    assert res.card["prior_choice"] == {"asked": "auto", "used": "organic-64"}


def test_a_run_that_cannot_fit_is_refused_before_the_first_step(tiny_prior, monkeypatch):
    m = ct(64, 2)
    monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(50e6))
    gen = reconstruct(m, RunConfig(nfe=2, device="cpu"), prior=tiny_prior)
    with pytest.raises(ResourceError, match="needs about .* available"):
        next(gen)
    assert torch.is_tensor(m.y)  # the measurement is untouched


def test_cli_says_the_estimate_and_refuses_what_does_not_fit(tmp_path, monkeypatch, capsys):
    from napari_d3ip.cli import main

    out = tmp_path / "r.nii.gz"
    monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(3e8))
    code = main(["reconstruct", "--sample", "brain-64", "--operator", "ct", "--views", "15",
                 "--nfe", "1", "--device", "cpu", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "needs about" in err and "--batch-slices" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.delenv("NAPARI_D3IP_MEMORY_LIMIT")
    code = main(["reconstruct", "--sample", "brain-64", "--operator", "ct", "--views", "15",
                 "--solver", "admm-tv", "--tv-iters", "2", "--device", "cpu", "--out", str(out)])
    text = capsys.readouterr()
    assert code == 0 and "estimate ≈" in text.out + text.err and "of memory" in text.out + text.err
