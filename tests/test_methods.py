"""Methods behind one protocol (issue 24 item 2): ADMM-TV and the diffusion solvers declare
their step count, prior use and cost; the adapter owns its K for the cost model."""

from __future__ import annotations

import pytest

from napari_d3ip.config import SOLVERS, RunConfig
from napari_d3ip.methods import get_method, method_names


def test_every_solver_is_a_method_and_n_steps_is_what_it_runs():
    assert set(method_names()) == set(SOLVERS)
    assert RunConfig(solver="dds", nfe=12).n_steps == 12
    assert RunConfig(solver="admm-tv", tv_iters=33, nfe=12).n_steps == 33
    tv = get_method("admm-tv")
    assert not tv.uses_prior and tv.describe(RunConfig(solver="admm-tv", tv_iters=7)) == \
        "admm-tv (7 iterations)"
    assert all(get_method(s).uses_prior for s in ("dds", "ddnm", "dps", "mbir"))
    with pytest.raises(KeyError, match="unknown solver 'fbp'; choose one of dds"):
        get_method("fbp")


def test_admm_tv_cost_is_its_own_and_counts_no_network():
    import numpy as np

    from napari_d3ip.cost import estimate_cost
    from napari_d3ip.operators import simulate

    m = simulate(np.zeros((4, 32, 32), np.float32), "ct", n_views=8)
    c = estimate_cost(m, RunConfig(solver="admm-tv", tv_iters=100))
    assert c["seconds_parts"]["tv"] == pytest.approx(0.002 * 0.25 * 4 * 100)
    assert c["seconds_parts"]["sampling"] == 0 and "network" not in c["memory_parts"]


@pytest.mark.parametrize("adapter,k_slices,n,want", [
    ("none", 4, 10, 0), ("scd", 4, 10, 1), ("ddip", 4, 10, 1), ("d3ip-base", 4, 10, 4),
    ("d3ip-base", 4, 3, 3), ("d3ip-meta", 4, 10, 4), ("d3ip-mbir", 1, 10, 2),
    ("d3ip-mbir", 4, 3, 3)])
def test_the_cost_model_reads_the_adapters_own_k(adapter, k_slices, n, want):
    from napari_d3ip.adapters.d3ip import ADAPTERS
    from napari_d3ip.cost import adapted_slices

    solver = "mbir" if adapter == "d3ip-mbir" else "dds"
    cfg = RunConfig(solver=solver, adapter=adapter, k_slices=k_slices)
    assert adapted_slices(cfg, n) == want
    if adapter != "none":
        assert ADAPTERS[adapter].slices_per_iteration(cfg, n) == want
