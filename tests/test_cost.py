"""The cost model: the figures it was calibrated on, tiling, memory, and the refusal."""

from __future__ import annotations

import types

import pytest
import torch

from napari_d3ip.config import RunConfig
from napari_d3ip.core.prior import SCALE_DEFAULTS, card_scale, choose_prior, read_card, shipped_priors
from napari_d3ip.core.tiling import tile_count
from napari_d3ip.cost import GRAD_BYTES_PER_PX, NOGRAD_BYTES_PER_PX, check_fits, estimate_cost
from napari_d3ip.io.files import ResourceError
from napari_d3ip.operators.base import Measurement


def volume(n: int, size: int, meas_numel: int = 15 * 96) -> Measurement:
    """A measurement of `n` slices of size² pixels (only its sizes matter to the cost model)."""
    op = types.SimpleNamespace(image_shape=(size, size))
    return Measurement(operator=op, y=torch.zeros(n, meas_numel))


def test_network_cost_grows_as_measured_at_128():
    """A forward at 128² costs 5.8x one at 64² (attention; ../shared/MEASURED.md)."""
    r = estimate_cost(volume(4, 128), RunConfig())["seconds"] / estimate_cost(
        volume(4, 64), RunConfig())["seconds"]
    assert r == pytest.approx(5.8, rel=0.02)


def test_tiling_makes_a_large_slice_cost_its_tiles():
    one = estimate_cost(volume(2, 64), RunConfig())["seconds"]
    tiled = estimate_cost(volume(2, 512), RunConfig(tile=64))["seconds"]
    assert tiled == pytest.approx(tile_count(512, 64) ** 2 * one)
    assert tiled < estimate_cost(volume(2, 512), RunConfig())["seconds"] / 4


def test_memory_counts_the_measured_activations():
    m = volume(32, 128)
    c = estimate_cost(m, RunConfig(batch_slices=8))  # the shipped prior: 32 channels
    assert c["memory_parts"]["activations"] == pytest.approx(8 * NOGRAD_BYTES_PER_PX * 128 ** 2)
    a = estimate_cost(m, RunConfig(batch_slices=8, adapter="d3ip-base", k_slices=6))
    assert a["memory_parts"]["activations_of"] == "adaptation"
    assert a["memory_parts"]["activations"] == pytest.approx(6 * GRAD_BYTES_PER_PX * 128 ** 2)
    assert a["memory_bytes"] == sum(v for v in a["memory_parts"].values() if not isinstance(v, str))
    tv = estimate_cost(m, RunConfig(solver="admm-tv"))
    assert "activations" not in tv["memory_parts"] and tv["memory_bytes"] < c["memory_bytes"]


def test_a_run_that_does_not_fit_is_refused_with_a_setting_that_fits():
    m = volume(64, 512)
    cfg = RunConfig(adapter="d3ip-base", k_slices=6)
    need = estimate_cost(m, cfg)["memory_bytes"]
    assert check_fits(m, cfg, available=int(need * 2))["memory_bytes"] == need
    with pytest.raises(ResourceError, match=r"--k-slices (\d+)") as e:
        check_fits(m, cfg, available=int(need * 0.6))
    assert "GiB" in str(e.value) and "512x512" in str(e.value)
    k = int(__import__("re").search(r"--k-slices (\d+)", str(e.value)).group(1))
    check_fits(m, cfg.replace(k_slices=k), available=int(need * 0.6))  # the hint fits
    with pytest.raises(ResourceError, match="--batch-slices"):
        check_fits(m, RunConfig(batch_slices=64), available=int(8e9))
    with pytest.raises(ResourceError, match="--tile 64"):  # not even one whole slice fits
        check_fits(m, RunConfig(batch_slices=64), available=int(1.5e9))


def test_auto_picks_the_shipped_prior_nearest_in_scale():
    shipped = [n for n in SCALE_DEFAULTS if n in shipped_priors()]
    assert "organic-64" in shipped
    for n in shipped:
        scale = card_scale(read_card(n))
        name, why = choose_prior((scale, scale))
        assert name == n and f"{scale}-pixel" in why
    assert choose_prior((40, 40))[0] == "organic-64"


def test_every_library_error_shares_one_base():
    """`except D3IPError` catches every error the library raises on purpose (and stays a
    ValueError for older callers)."""
    import inspect
    import pkgutil

    import napari_d3ip
    from napari_d3ip.errors import D3IPError

    found = {}
    for mod in pkgutil.walk_packages(napari_d3ip.__path__, "napari_d3ip."):
        if ".widgets" in mod.name or mod.name.endswith(("napari_d3ip._reader", "._writer",
                                                        "._sample_data", "._layers",
                                                        ".run_controller")):
            continue  # the GUI's (and its run controller's) state errors are bugs, not the library's
        m = __import__(mod.name, fromlist=["_"])
        for name, obj in inspect.getmembers(m, inspect.isclass):
            if name.endswith("Error") and obj.__module__ == mod.name:
                found[f"{mod.name}.{name}"] = obj
    assert len(found) >= 10
    outside = [k for k, v in found.items() if not issubclass(v, D3IPError)]
    assert outside == []
    assert issubclass(D3IPError, ValueError)
