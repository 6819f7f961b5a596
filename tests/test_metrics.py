"""Metrics: known answers for PSNR (per-slice data range), SSIM, empty slices, the table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_d3ip.metrics import evaluate, mean_psnr, per_slice, psnr, ssim


def test_psnr_known_answer_and_data_range():
    ref = np.array([[0.0, 0.5], [0.5, 0.5]])
    x = ref + 0.1  # mse 0.01, range 0.5
    assert psnr(x, ref) == pytest.approx(10 * math.log10(0.25 / 0.01))
    assert psnr(x, ref, data_range=1.0) == pytest.approx(20.0)
    assert psnr(ref, ref) == math.inf
    assert math.isnan(psnr(x, np.zeros((2, 2))))  # constant reference: undefined


def test_ssim_is_one_for_identity_and_drops_with_noise():
    rng = np.random.default_rng(0)
    ref = rng.random((16, 16))
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(ref + 0.2 * rng.standard_normal((16, 16)), ref) < 0.9


def test_evaluate_uses_each_slice_range_and_skips_empty_slices():
    ref = np.zeros((3, 16, 16))
    ref[0, 4:12, 4:12] = 1.0
    ref[1, 4:12, 4:12] = 0.5  # half the range: the same error costs 6 dB more
    x = ref.copy()
    x[:2] += 0.05
    out = evaluate(x, ref)
    rows = out["per_slice"]
    assert rows[0]["psnr"] == pytest.approx(20 * math.log10(1 / 0.05))
    assert rows[1]["psnr"] == pytest.approx(rows[0]["psnr"] - 20 * math.log10(2))
    assert math.isnan(rows[2]["psnr"]) and out["slices_scored"] == 2
    assert out["psnr"] == pytest.approx((rows[0]["psnr"] + rows[1]["psnr"]) / 2)
    assert mean_psnr(x, ref) == pytest.approx(out["psnr"])
    assert out["volume_psnr"] == pytest.approx(psnr(x, ref))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="differ in shape"):
        per_slice(np.zeros((2, 4, 4)), np.zeros((3, 4, 4)))
