"""The v-minsnr recipe: v <-> eps <-> x0 identities, loss weights, EMA and lr schedule."""

from __future__ import annotations

import math

import pytest
import torch

from napari_d3ip.core.schedule import VPSchedule, q_sample, tweedie
from napari_d3ip.core.unet import UNet, UNetConfig
from napari_d3ip.training.losses import loss_weight, v_target
from napari_d3ip.training.metrics import best_blur_psnr
from napari_d3ip.training.recipes import TrainConfig
from napari_d3ip.training.schedules import ema_sigma_rel, lr_at, power_ema_decay
from napari_d3ip.training.trainer import Trainer


def _tiny_v_unet() -> UNet:
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                          attn_resolutions=(), image_size=16, prediction="v"))
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)  # not the zero init: a real output
    return net


def test_v_network_returns_eps_that_round_trips_to_x0_at_every_t():
    """eps = sqrt(ab) v + sqrt(1-ab) x_t and x0 = sqrt(ab) x_t - sqrt(1-ab) v, all t."""
    net = _tiny_v_unet().double()
    net.set_schedule(VPSchedule().alpha_bars())
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    abs_ = VPSchedule().alpha_bars()
    for t in range(0, 1000, 37):
        ab = float(abs_[t])
        v = net(x, t, raw=True).double()
        eps = net(x, t).double()
        assert torch.allclose(eps, ab**0.5 * v + (1 - ab) ** 0.5 * x, atol=1e-5)
        x0 = tweedie(x, eps, ab)
        assert torch.allclose(x0, ab**0.5 * x - (1 - ab) ** 0.5 * v, atol=1e-4 / ab**0.5)


def test_v_target_is_consistent_with_q_sample():
    """A perfect v prediction gives back the exact eps and x0 through the eps interface."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    for t in (0, 50, 500, 980, 999):
        ab = VPSchedule().alpha_bars()[t]
        xt = q_sample(x0, noise, float(ab))
        v = v_target(x0, noise, ab.repeat(4))
        eps = ab.sqrt() * v + (1 - ab).sqrt() * xt
        assert torch.allclose(eps, noise, atol=1e-10)
        assert torch.allclose(tweedie(xt, eps, float(ab)), x0, atol=1e-8)


def test_min_snr_weights_known_values():
    ab = torch.tensor([0.5, 0.9, 0.01], dtype=torch.float64)  # SNR 1, 9, 1/99
    assert torch.allclose(loss_weight(ab, "v", 5.0), torch.tensor([0.5, 0.5, 1 / 100], dtype=torch.float64))
    assert torch.allclose(loss_weight(ab, "eps", 5.0), torch.tensor([1.0, 5 / 9, 1.0], dtype=torch.float64))
    assert torch.equal(loss_weight(ab, "v", 0.0), torch.ones(3, dtype=torch.float64))


def test_min_snr_v_weight_equals_weighted_x0_error():
    """w_v |e_v|^2 = min(SNR, gamma) |e_x0|^2 for any error."""
    ab = torch.tensor([0.3, 0.97], dtype=torch.float64)
    e_v = torch.randn(2, 5, dtype=torch.float64)
    e_x0 = (1 - ab).sqrt()[:, None] * e_v
    s = ab / (1 - ab)
    lhs = loss_weight(ab, "v", 5.0)[:, None] * e_v**2
    rhs = torch.minimum(s, torch.tensor(5.0, dtype=torch.float64))[:, None] * e_x0**2
    assert torch.allclose(lhs, rhs)


def test_power_ema_is_the_uniform_average_when_gamma_is_zero():
    """gamma = 0: beta_t = 1 - 1/t, so the EMA of 1..n is their mean."""
    ema = 0.0
    for t, value in enumerate(range(1, 11), start=1):
        b = power_ema_decay(t, 0.0)
        ema = b * ema + (1 - b) * value
    assert ema == pytest.approx(5.5)
    assert power_ema_decay(1, 6.94) == 0.0
    assert ema_sigma_rel(6.94) == pytest.approx(0.10, abs=0.005)


def test_lr_schedule_warms_up_holds_and_decays_to_zero():
    cfg = TrainConfig(lr=1e-3, warmup=10, decay_fraction=0.2)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(1e-4)
    assert lr_at(cfg, 50, 0.5) == pytest.approx(1e-3)
    assert lr_at(cfg, 90, 0.9) == pytest.approx(0.5e-3)
    assert lr_at(cfg, 100, 1.0) == 0.0
    assert lr_at(TrainConfig(lr=1e-3, warmup=10), 100, 1.0) == pytest.approx(1e-3)


def test_best_blur_baseline_tends_to_the_mean_at_high_noise():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(8, 1, 32, 32, generator=g)
    noisy = ref + 50 * torch.randn(ref.shape, generator=g)
    psnr, _ = best_blur_psnr(noisy, ref)
    mse_mean = float(((ref - ref.mean()) ** 2).flatten(1).mean(1).mean())
    assert psnr == pytest.approx(10 * math.log10(1 / mse_mean), abs=1.0)


def test_recipe_defaults_and_unknown_recipe():
    cfg = TrainConfig.from_recipe("v-minsnr", lr=None, channels=48)
    assert (cfg.prediction, cfg.beta2, cfg.ema, cfg.channels) == ("v", 0.99, "power", 48)
    assert cfg.unet_config().prediction == "v"
    assert TrainConfig.from_recipe("classic").prediction == "eps"
    with pytest.raises(ValueError, match="unknown recipe"):
        TrainConfig.from_recipe("fancy")


def test_v_recipe_trains_resumes_and_exports_a_v_prior(tmp_path):
    from napari_d3ip.core.prior import load_prior

    kw = dict(out=str(tmp_path / "run"), size=16, channels=8, channel_mults=(1, 2), num_res_blocks=1,
              attn_resolutions=(), batch=4, device="cpu", bf16="off", val_every=0,
              checkpoint_minutes=1e9, name="tiny-v", n_mean=10.0)
    Trainer(TrainConfig.from_recipe("v-minsnr", steps=3, **kw)).run(progress=False)
    # resuming with the classic recipe keeps the run's own recipe (fixed at its start)
    resumed = Trainer(TrainConfig.from_recipe("classic", steps=5, **kw), resume=True)
    assert (resumed.cfg.prediction, resumed.cfg.beta2) == ("v", 0.99)
    assert resumed.opt.param_groups[0]["betas"][1] == 0.99
    path = resumed.run(progress=False)
    prior = load_prior(path)
    assert prior.net.config.prediction == "v"
    assert prior.card["training"]["recipe"]["min_snr_gamma"] == 5.0
    assert prior.card["training"]["steps"] == 5


def test_budget_stops_the_run(tmp_path):
    cfg = TrainConfig.from_recipe(
        "v-minsnr", out=str(tmp_path / "run"), size=16, channels=8, channel_mults=(1, 2),
        num_res_blocks=1, attn_resolutions=(), batch=2, device="cpu", bf16="off", val_every=0,
        checkpoint_minutes=1e9, steps=10_000, budget_minutes=1e-6, n_mean=10.0)
    tr = Trainer(cfg)
    tr.run(progress=False)
    assert tr.state.step == 1 and tr.progress() == 1.0


def test_gpu_training_script_runs_on_cpu_with_a_tiny_step_count(tmp_path):
    import importlib.util
    from pathlib import Path

    from napari_d3ip.core.prior import load_prior

    path = Path(__file__).resolve().parents[1] / "training" / "train_gpu.py"
    spec = importlib.util.spec_from_file_location("train_gpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu"
    assert mod.main(["--out", str(out), "--device", "cpu", "--steps", "2", "--channels", "8",
                     "--batch", "2", "--size", "32", "--bf16", "off", "--min-snr-gamma", "0"]) == 0
    prior = load_prior(out / "organic-64-gpu.safetensors")
    assert prior.net.config.prediction == "v" and prior.card["training"]["steps"] == 2
    assert prior.card["training"]["phantoms"]["family"] == "organic"
    assert prior.card["training"]["recipe"]["beta2"] == 0.99
    assert prior.card["training"]["recipe"]["min_snr_gamma"] == 0.0


def test_compact_checkpoint_resumes_the_run(tmp_path):
    from napari_d3ip.training.checkpoints import compact_checkpoint, restore_compact

    kw = dict(size=16, channels=8, channel_mults=(1, 2), num_res_blocks=1, attn_resolutions=(),
              batch=2, device="cpu", bf16="off", val_every=0, checkpoint_minutes=1e9, n_mean=10.0)
    a = Trainer(TrainConfig.from_recipe("v-minsnr", out=str(tmp_path / "a"), steps=3, **kw))
    a.run(progress=False)
    packed = compact_checkpoint(tmp_path / "a", tmp_path / "c.safetensors")
    full = sum(f.stat().st_size for f in (tmp_path / "a").glob("checkpoint_*.safetensors"))
    assert packed.stat().st_size < 0.3 * full  # fp16 weights, no moments
    restore_compact(packed, tmp_path / "b")
    b = Trainer(TrainConfig.from_recipe("v-minsnr", out=str(tmp_path / "b"), steps=5, **kw), resume=True)
    assert b.state.step == 3 and b.cfg.prediction == "v"
    for pa, pb in zip(a.ema.parameters(), b.ema.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-3, atol=1e-4)
    b.run(progress=False)
    assert b.state.step == 5
    with pytest.raises(FileExistsError):
        restore_compact(packed, tmp_path / "b")


def test_patch_prior_trains_on_crops_of_large_phantoms_and_records_its_scale(tmp_path):
    from napari_d3ip.core.prior import load_prior
    from napari_d3ip.training.data import random_patches, training_batch

    g = torch.Generator().manual_seed(0)
    big = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    crops = random_patches(big, 4, g)
    assert crops.shape == (2, 1, 4, 4)
    for i in range(2):  # each crop is a contiguous window of its own image
        v = crops[i, 0, 0, 0].item() - 64 * i
        r, c = divmod(int(v), 8)
        assert torch.equal(crops[i, 0], big[i, 0, r:r + 4, c:c + 4])
    cfg = TrainConfig(out=str(tmp_path / "p"), size=16, render_size=64, channels=8, channel_mults=(1, 2),
                      num_res_blocks=1, attn_resolutions=(), batch=2, steps=2, device="cpu",
                      bf16="off", val_every=0, checkpoint_minutes=1e9, n_mean=40.0, name="patch")
    x0, _, _ = training_batch(cfg, 0, torch.device("cpu"))
    assert x0.shape == (2, 1, 16, 16)
    path = Trainer(cfg).run(progress=False)
    prior = load_prior(path)
    assert prior.render_size == 64 and prior.image_size == 16
    assert prior.card["pixel_scale"]["patch"] == 16


def test_a_patch_prior_is_validated_at_its_own_pixel_scale(tmp_path, monkeypatch):
    """The training curve of a patch prior is measured on patches of render_size phantoms."""
    import napari_d3ip.training.trainer as tr

    seen = []
    monkeypatch.setattr(tr, "denoising_quality", lambda prior, **kw: seen.append(prior.render_size)
                        or {str(t): {"tweedie_psnr": 0.0, "blur_psnr": 0.0} for t in tr.VAL_TIMES})
    cfg = TrainConfig(out=str(tmp_path / "p"), size=16, render_size=64, channels=8, channel_mults=(1, 2),
                      num_res_blocks=1, attn_resolutions=(), batch=2, steps=1, device="cpu",
                      bf16="off", val_every=0, checkpoint_minutes=1e9, n_mean=40.0, name="patch")
    Trainer(cfg).validate()
    assert seen == [64]


def test_init_from_starts_from_the_prior_and_refuses_another_architecture(tmp_path, tiny_prior_path):
    from napari_d3ip.core.prior import load_prior

    src = load_prior(tiny_prior_path)
    arch = src.net.config
    cfg = TrainConfig(out=str(tmp_path / "f"), size=32, render_size=64, channels=arch.base_channels,
                      channel_mults=tuple(arch.channel_mults), num_res_blocks=arch.num_res_blocks,
                      attn_resolutions=tuple(arch.attn_resolutions), batch=2, steps=1, device="cpu",
                      bf16="off", val_every=0, checkpoint_minutes=1e9, init_from=str(tiny_prior_path))
    t = Trainer(cfg)
    for k, v in src.net.state_dict().items():
        assert torch.equal(t.model.state_dict()[k], v) and torch.equal(t.ema.state_dict()[k], v)
    with pytest.raises(ValueError, match="differs from this run"):
        Trainer(TrainConfig(out=str(tmp_path / "g"), size=32, channels=16, device="cpu", bf16="off",
                            init_from=str(tiny_prior_path)))


def test_a_prior_at_the_wrong_scale_warns_and_the_card_records_it(tiny_prior):
    import numpy as np

    from conftest import matrix_operator, measurement_of
    from napari_d3ip.config import RunConfig
    from napari_d3ip.pipeline import PriorScaleWarning, run

    v = torch.zeros(2, 8, 8)
    v[:, 2:6, 2:6] = 0.5
    m = measurement_of(v, matrix_operator(20, (8, 8), seed=1))
    with pytest.warns(PriorScaleWarning, match="trained for 32-pixel slices"):
        res = run(m, RunConfig(nfe=2, device="cpu"), tiny_prior)
    assert res.card["prior_scale"]["prior_render_size"] == 32
    assert "warning" in res.card["prior_scale"] and np.isfinite(res.volume).all()
