"""The loop refactor (issue 15 item 3) changed no result: every solver and adapter gives the
volumes and per-step losses recorded before it (tests/data/pipeline_equivalence.npz, made by
tests/_equivalence_cases.py on the tiny prior, on an Intel Xeon).

Seeded float32 results are not bit-identical across CPUs: another vector unit (AVX2, AVX-512),
thread count or network batch sums the convolutions in another order. The tolerance of each
case is derived from the spread measured by `python tests/tools/equivalence_spread.py`
(tests/data/pipeline_equivalence_spread.json: every ATen CPU capability x 1 and 2 threads x
another batch, against the recorded reference; the file names the machine), with a 4x margin
and a floor of 1e-4 on [0, 1] volumes. A real change is far larger: a 1 % change of eta (or one
more TV iteration) moves every case by 3e-2 to 5e-2, which the last test checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _equivalence_cases import CASES, SPREAD, loss_rtol, run_case, volume_tol

RECORDED = Path(__file__).parent / "data" / "pipeline_equivalence.npz"


def test_every_case_has_a_measured_spread():
    assert set(SPREAD) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_result_is_the_one_recorded_before_the_refactor(name):
    ref = np.load(RECORDED)
    volume, losses = run_case(name)
    np.testing.assert_allclose(volume, ref[name], rtol=0, atol=volume_tol(name))
    np.testing.assert_allclose(losses, ref[name + ":loss"], rtol=loss_rtol(name), atol=1e-8)


@pytest.mark.parametrize("name", ["dds", "ddnm", "d3ip-base", "admm-tv"])
def test_a_small_real_change_is_far_outside_the_tolerance(name):
    """The tolerance still catches a change of the method: 1 % of eta, or one TV iteration."""
    ref = np.load(RECORDED)
    change = dict(tv_iters=4) if name == "admm-tv" else dict(eta=CASES[name].get("eta", 0.85) * 0.99)
    volume, _ = run_case(name, **change)
    assert np.abs(volume - ref[name]).max() > 20 * volume_tol(name)
