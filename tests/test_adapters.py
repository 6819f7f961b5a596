"""Adaptation: LoRA identity at start, loss decrease, equivalences, windows, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import matrix_operator, measurement_of
from napari_d3ip.adapters import AdapterError
from napari_d3ip.adapters.lora import (
    add_lora,
    load_lora,
    load_lora_state,
    lora_state,
    lora_target_names,
    save_lora,
)
from napari_d3ip.config import RunConfig
from napari_d3ip.pipeline import run
from napari_d3ip.solvers import DDS, DCContext, data_loss


def _meas(n=3, rows=30, size=8):
    g = torch.Generator().manual_seed(0)
    v = torch.zeros(n, size, size)
    v[:, 2:6, 1:7] = 0.4 + 0.5 * torch.rand(n, 1, 1, generator=g)
    return measurement_of(v, matrix_operator(rows, (size, size), seed=2))


def _cfg(**kw):
    base = dict(nfe=3, device="cpu", adapt_iters=2, lr=1e-2, k_slices=2, window_lo=0,
                window_hi=999, seed=5)
    base.update(kw)
    return RunConfig(**base)


def test_lora_targets_and_identity_at_start(tiny_prior):
    names = lora_target_names(tiny_prior.net)
    leaves = {n.rsplit(".", 1)[-1] for n in names}
    assert leaves == {"conv1", "conv2", "skip", "emb_proj", "qkv", "proj_out"}
    assert not any(n.startswith(("conv_in", "time_mlp", "conv_out")) for n in names)
    model = add_lora(tiny_prior.net, rank=4)
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(model(x, 500), tiny_prior.net(x, 500))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # the prior itself is untouched by wrapping
    assert not any("lora_" in n for n, _ in tiny_prior.net.named_parameters())


def test_lora_state_save_load_round_trip(tiny_prior, tmp_path):
    model = add_lora(tiny_prior.net)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    state = lora_state(model)
    path = save_lora(tmp_path / "a.safetensors", state)
    loaded = load_lora(path)
    fresh = add_lora(tiny_prior.net)
    load_lora_state(fresh, loaded)
    x = torch.randn(1, 1, 16, 16)
    assert torch.allclose(fresh(x, 100), model(x, 100))
    assert not torch.allclose(fresh(x, 100), tiny_prior.net(x, 100))


def test_one_adaptation_step_lowers_the_measurement_loss(tiny_prior):
    m = _meas(n=1)
    model = add_lora(tiny_prior.net)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x_t = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ab = tiny_prior.schedule.alpha_bar(500)

    def loss_now():
        x0 = (x_t - (1 - ab) ** 0.5 * model(x_t, 500)) / ab**0.5
        return data_loss(m.operator, DDS()(x0, m.y, m.operator, DCContext(cg_steps=1)), m.y)

    before = loss_now()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_now()
    assert float(after) < float(before)


def test_d3ip_base_with_one_slice_equals_ddip(tiny_prior):
    m = _meas(n=1)
    a = run(m, _cfg(adapter="d3ip-base", k_slices=1), tiny_prior)
    b = run(m, _cfg(adapter="ddip"), tiny_prior)
    assert np.array_equal(a.volume, b.volume)
    # and adaptation really changed the result
    c = run(m, _cfg(adapter="none"), tiny_prior)
    assert not np.array_equal(a.volume, c.volume)


def test_reptile_with_epsilon_one_equals_d3ip_base(tiny_prior):
    from napari_d3ip.adapters import d3ip

    m = _meas(n=3)
    base = run(m, _cfg(adapter="d3ip-base"), tiny_prior)
    orig = d3ip.D3IPMeta.epsilon
    d3ip.D3IPMeta.epsilon = lambda self, index: 1.0
    try:
        meta = run(m, _cfg(adapter="d3ip-meta", meta_finetune_iters=0), tiny_prior)
    finally:
        d3ip.D3IPMeta.epsilon = orig
    assert np.array_equal(base.volume, meta.volume)


def test_meta_epsilon_decays_linearly_from_one(tiny_prior):
    from napari_d3ip.adapters.d3ip import D3IPMeta

    m = _meas(n=2)
    cfg = _cfg(adapter="d3ip-meta", nfe=5)
    adapter = D3IPMeta(tiny_prior, cfg, DDS(), m, [800, 600, 400, 200, 0])
    eps = [adapter.epsilon(i) for i in range(5)]
    assert eps[0] == 1.0 and all(a > b for a, b in zip(eps, eps[1:]))
    assert np.allclose(np.diff(eps), -0.2)


def test_no_adaptation_outside_the_window(tiny_prior):
    m = _meas(n=2)
    res = run(m, _cfg(adapter="d3ip-base", window_lo=0, window_hi=10), tiny_prior)
    none = run(m, _cfg(adapter="none"), tiny_prior)
    assert res.card["adaptation"]["steps_adapted"] == 1  # only t = 0 is inside [0, 10]
    res2 = run(m, _cfg(adapter="d3ip-base", window_lo=900, window_hi=950), tiny_prior)
    assert res2.card["adaptation"]["steps_adapted"] == 0
    assert np.array_equal(res2.volume, none.volume)


def test_adapted_bytes_are_flat_for_d3ip_and_linear_for_ddip(tiny_prior):
    sizes = {}
    for n in (2, 4):
        m = _meas(n=n)
        for adapter in ("d3ip-base", "ddip", "scd"):
            card = run(m, _cfg(adapter=adapter, nfe=2, adapt_iters=1), tiny_prior).card
            sizes[(adapter, n)] = card["adaptation"]["adapted_parameter_bytes"]
    assert sizes[("d3ip-base", 2)] == sizes[("d3ip-base", 4)] > 0
    assert sizes[("ddip", 4)] == 2 * sizes[("ddip", 2)] == 4 * sizes[("d3ip-base", 2)]
    assert sizes[("scd", 4)] == sizes[("ddip", 4)]


@pytest.mark.parametrize("adapter,solver", [("scd", "dds"), ("ddip", "dds"),
                                            ("d3ip-base", "dds"), ("d3ip-base", "ddnm"),
                                            ("d3ip-mbir", "mbir"), ("d3ip-meta", "dds")])
def test_every_adapter_runs_and_is_seeded(tiny_prior, adapter, solver):
    m = _meas(n=3)
    a = run(m, _cfg(adapter=adapter, solver=solver), tiny_prior)
    b = run(m, _cfg(adapter=adapter, solver=solver), tiny_prior)
    assert np.array_equal(a.volume, b.volume)
    card = a.card["adaptation"]
    assert card["adapter"] == adapter and card["steps_adapted"] == 3 and card["adapt_seconds"] > 0
    assert a.card["timings"]["adapt_seconds"] > 0


def test_bad_pairings_give_clear_errors(tiny_prior):
    with pytest.raises(AdapterError, match="at least 2 slices"):
        run(_meas(n=1), _cfg(adapter="d3ip-mbir", solver="mbir"), tiny_prior)
    with pytest.raises(ValueError, match="d3ip-mbir runs with solver 'mbir'"):
        _cfg(adapter="d3ip-mbir", solver="dds").validate()
    with pytest.raises(ValueError, match="admm-tv has no prior"):
        _cfg(adapter="ddip", solver="admm-tv").validate()


def _adapter(tiny_prior, m, **kw):
    from napari_d3ip.adapters.d3ip import build_adapter

    cfg = _cfg(**kw)
    return build_adapter(cfg, tiny_prior, DDS(), m, [500, 0])


def test_measurement_loss_falls_during_the_iterations_of_one_step(tiny_prior):
    """Within one diffusion step the I AdamW iterations lower the loss that is optimised."""
    m = _meas(n=4)
    x_t = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for kw in (dict(), dict(adapt_params="full", lr=1e-3), dict(lora_targets="all")):
        ad = _adapter(tiny_prior, m, adapter="d3ip-base", k_slices=4, adapt_iters=8, **kw)
        ad.adapt(x_t, 500, 0)
        trace = ad.loss_trace
        assert len(trace) == 8 and trace[-1] < 0.9 * trace[0], (kw, trace)


def test_lora_placement_all_adds_the_io_layers(tiny_prior):
    names = set(lora_target_names(tiny_prior.net, "all"))
    assert {"conv_in", "conv_out", "time_mlp.0", "time_mlp.2"} <= names
    assert set(lora_target_names(tiny_prior.net)) < names
    model = add_lora(tiny_prior.net, placement="all")
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(model(x, 300), tiny_prior.net(x, 300))  # still the identity at start


def test_full_finetuning_trains_a_copy_and_leaves_the_prior(tiny_prior):
    m = _meas(n=3)
    before = {n: p.clone() for n, p in tiny_prior.net.named_parameters()}
    res = run(m, _cfg(adapter="d3ip-base", adapt_params="full", lr=1e-3), tiny_prior)
    assert res.card["adaptation"]["adapt_params"] == "full"
    assert res.card["adaptation"]["lora_parameters"] == sum(p.numel() for p in tiny_prior.net.parameters())
    assert all(torch.equal(p, before[n]) for n, p in tiny_prior.net.named_parameters())
    with pytest.raises(Exception, match="d3ip-base/d3ip-mbir"):
        run(m, _cfg(adapter="ddip", adapt_params="full"), tiny_prior)


def test_kept_optimizer_state_changes_the_result_and_is_reused(tiny_prior):
    m = _meas(n=3)
    fresh = run(m, _cfg(adapter="d3ip-base", nfe=4), tiny_prior)
    kept = run(m, _cfg(adapter="d3ip-base", nfe=4, keep_optimizer=True), tiny_prior)
    assert kept.card["adaptation"]["keep_optimizer"] is True
    assert not np.array_equal(fresh.volume, kept.volume)
    ad = _adapter(tiny_prior, m, adapter="d3ip-base", keep_optimizer=True)
    x_t = torch.randn(3, 1, 8, 8)
    ad.adapt(x_t, 500, 0)
    opt = ad._opt
    ad.adapt(x_t, 0, 1)
    assert ad._opt is opt and opt.state  # the same AdamW, with its moments, across steps


def _count_unet_images(tiny_prior, m, **kw) -> int:
    """Images passed through the UNet's forward during adaptation (a hook, not a timer)."""
    ad = _adapter(tiny_prior, m, **kw)
    seen = []
    handle = ad.model.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    try:
        ad.adapt(torch.randn(m.y.shape[0], 1, 8, 8), 500, 0)
    finally:
        handle.remove()
    return sum(seen)


def test_adaptation_cost_is_flat_in_n_for_d3ip_and_linear_for_ddip(tiny_prior):
    counts = {(a, n): _count_unet_images(tiny_prior, _meas(n=n), adapter=a, k_slices=2, adapt_iters=3)
              for a in ("d3ip-base", "ddip") for n in (2, 4, 8)}
    assert counts[("d3ip-base", 2)] == counts[("d3ip-base", 8)] == 2 * 3  # K x I
    assert [counts[("ddip", n)] for n in (2, 4, 8)] == [n * 3 for n in (2, 4, 8)]
