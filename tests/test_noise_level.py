"""Noise level estimated from the data alone (noise_level.py): known answers on pure noise,
on simulated measurements of known noise (`Operator.simulate`'s convention: std = noise x
mean |y| over the measured entries), and in the run card and CLI line of a run without a
reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_d3ip.noise_level import estimate_noise, measurement_noise
from napari_d3ip.operators import birdcage_maps, simulate


@pytest.fixture(scope="module")
def smooth() -> np.ndarray:
    """Smooth anatomy-like slices: outer k-space (and detector high frequencies) hold little
    signal, as in scanner data with an oversampled readout."""
    from scipy.ndimage import gaussian_filter

    from napari_d3ip.training.phantoms import ellipsoid_volume

    v = ellipsoid_volume(64, seed=0)[24:30].numpy().astype(np.float32)
    return gaussian_filter(v, (0, 2, 2)).astype(np.float32)


def test_pure_noise_known_sigma():
    g = torch.Generator().manual_seed(0)
    n = torch.complex(torch.randn(4, 64, 64, generator=g), torch.randn(4, 64, 64, generator=g))
    e = estimate_noise(0.3 * n / 2**0.5)  # E|n|^2 = 0.09
    assert e["sigma"] == pytest.approx(0.3, rel=0.06) and "corners" in e["estimator"]
    r = estimate_noise(2.0 * torch.randn(3, 20, 50, generator=g) + 5.0)  # an offset is no noise
    assert r["sigma"] == pytest.approx(2.0, rel=0.06) and "second difference" in r["estimator"]
    assert estimate_noise(torch.zeros(1, 2, 2))["sigma"] is None


def _mc_mask():
    from napari_d3ip.io.formats._mri import fastmri_mask

    return np.broadcast_to(fastmri_mask(64, "random", 4, 0.16, 0), (64, 64)).copy()


CASES = [("mri", {"accel": 4.0}, 0.01, 0.15), ("mri", {"accel": 4.0}, 0.03, 0.15),
         ("mri-multicoil", {}, 0.01, 0.15), ("mri-multicoil", {}, 0.03, 0.15),
         ("ct", {"n_views": 15}, 0.03, 0.25), ("ct", {"n_views": 15}, 0.1, 0.25)]


@pytest.mark.parametrize("kind, kw, noise, tol", CASES)
def test_simulated_measurement_of_known_noise(smooth, kind, kw, noise, tol):
    if kind == "mri-multicoil":
        kw = {"mask": _mc_mask(), "maps": birdcage_maps(4, (64, 64))}
    e = measurement_noise(simulate(smooth, kind, noise=noise, seed=1, **kw))
    assert e["relative_to_mean"] == pytest.approx(noise, rel=tol), e
    clean = measurement_noise(simulate(smooth, kind, noise=0.0, seed=1, **kw))
    assert clean["relative_to_mean"] < noise / 2  # it measures the noise, not the object


def test_run_card_and_cli_report_it_without_reference(tmp_path, smooth, capsys):
    from napari_d3ip.cli import main
    from napari_d3ip.io.measurements import write_measurement

    m = simulate(smooth, "mri-multicoil", noise=0.02, seed=1, mask=_mc_mask(),
                 maps=birdcage_maps(4, (64, 64)))
    m.reference = None  # as a scanner's file: no reference, no PSNR
    p = write_measurement(tmp_path / "m.h5", m)
    out = tmp_path / "x.nii.gz"
    assert main(["reconstruct", "--measurement", str(p), "--solver", "admm-tv", "--out", str(out),
                 "--quiet"]) == 0
    line = capsys.readouterr().out
    card = json.loads((tmp_path / "x.json").read_text())
    est = card["noise_estimate"]
    assert est["relative_to_mean"] == pytest.approx(0.02, rel=0.15)
    assert f"estimated noise sigma/rms(y) = {est['relative_to_rms']:.4f}" in line
    assert "data residual" in line and "metrics" not in card
