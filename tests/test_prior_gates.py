"""The shipped prior's quality gates (issue #12): definitions (fast) and values (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_d3ip.training.gates import GATES, fresh_phantoms, gate_samples, saturated
from napari_d3ip.training.metrics import validation_set


def test_saturation_measure_known_cases():
    phantoms = fresh_phantoms(8)
    assert not saturated(phantoms).any()  # the training distribution is never "saturated"
    white = phantoms.copy()
    white[0, :20] = 1.0  # 20 of 64 rows white: 31 % of the pixels
    empty = np.zeros_like(phantoms[:1])
    flags = saturated(np.concatenate([white[:2], empty]))
    assert flags.tolist() == [True, False, True]


def test_gate_phantoms_are_fresh_and_seeded():
    a, b = fresh_phantoms(4), fresh_phantoms(4)
    assert np.array_equal(a, b) and a.shape == (4, 64, 64)
    val, _ = validation_set(64, n=4)
    assert not np.allclose(a, val[:, 0].numpy())


def test_sample_gate_on_phantoms_passes_and_on_white_images_fails():
    ok = gate_samples(None, samples=fresh_phantoms(16, seed=5))
    assert ok["saturated"] == 0 and ok["passed"] and abs(ok["mean_ratio"] - 1) < 0.2
    bad = gate_samples(None, samples=np.ones((16, 64, 64), np.float32))
    assert bad["saturated"] == 16 and not bad["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("prior_name", ["ellipses-64", "ellipses-64-v"])
@pytest.mark.parametrize("name", list(GATES))
def test_shipped_prior_gate(prior_name, name):
    """Re-measure each gate; it must agree with the card, and pass (or be recorded as missed)."""
    from napari_d3ip.core.prior import load_prior

    shipped = load_prior(prior_name)
    recorded = shipped.card.get("gates", {}).get(name)
    assert recorded is not None, f"the card of {shipped.name} records no gate {name}"
    fn = GATES[name]
    got = fn(shipped) if name == "d_real_volume_ct15" else fn(
        shipped, n_mean=shipped.card["training"]["phantoms"]["n_mean"])
    key = "saturated" if name == "c_samples" else "margin_db"
    assert got[key] == pytest.approx(recorded[key], abs=0.3), (got, recorded)
    if not recorded["passed"]:
        pytest.xfail(f"gate {name} missed on this CPU-trained prior: {recorded}")
    assert got["passed"], got
