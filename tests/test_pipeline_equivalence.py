"""The loop refactor (issue 15 item 3) changed no result: every solver and adapter gives the
volumes and per-step losses recorded before it (tests/data/pipeline_equivalence.npz, made by
tests/_equivalence_cases.py on the tiny prior)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _equivalence_cases import CASES, run_case

RECORDED = Path(__file__).parent / "data" / "pipeline_equivalence.npz"


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_result_is_the_one_recorded_before_the_refactor(name):
    ref = np.load(RECORDED)
    volume, losses = run_case(name)
    np.testing.assert_allclose(volume, ref[name], rtol=0, atol=2e-5)
    np.testing.assert_allclose(losses, ref[name + ":loss"], rtol=1e-4, atol=1e-8)
