"""Schedule, UNet, phantoms: known values and contracts."""

from __future__ import annotations

import math

import pytest
import torch

from napari_d3ip.core.schedule import VPSchedule, dds_step, noise_from_x0, q_sample, tweedie
from napari_d3ip.core.unet import UNet, UNetConfig, count_parameters
from napari_d3ip.training.phantoms import ellipse_parameters, ellipses, ellipsoid_volume


def test_schedule_known_values():
    s = VPSchedule()
    ab = s.alpha_bars()
    assert ab.shape == (1000,)
    assert abs(float(ab[0]) - (1 - 1e-4)) < 1e-12
    assert abs(s.alpha_bar(980) - 5.9e-5) < 0.3e-5
    assert s.alpha_bar(-1) == 1.0
    assert torch.all(ab[1:] < ab[:-1])
    with pytest.raises(ValueError, match="outside"):
        s.alpha_bar(1000)


def test_time_grid_is_the_reference_grid():
    g = VPSchedule().time_grid(50)
    assert g[:3] == [980, 960, 940] and g[-1] == 0 and len(g) == 50
    assert VPSchedule().time_grid(10) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert VPSchedule().time_grid(50, t_start=500)[0] == 500
    with pytest.raises(ValueError):
        VPSchedule().time_grid(0)


def test_tweedie_inverts_forward_diffusion_with_true_noise():
    x0 = torch.rand(2, 1, 8, 8)
    n = torch.randn(2, 1, 8, 8)
    ab = VPSchedule().alpha_bar(300)
    xt = q_sample(x0, n, ab)
    assert torch.allclose(tweedie(xt, n, ab), x0, atol=1e-5)
    assert torch.allclose(noise_from_x0(xt, x0, ab), n, atol=1e-4)


def test_dds_step_formula_and_end():
    x0, eps, z = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    ab = 0.64
    out = dds_step(x0, eps, ab, eta=1.0, z=z)
    assert torch.allclose(out, torch.full_like(out, 0.8 + 0.6))
    assert torch.equal(dds_step(x0, eps, 1.0, 0.85, z), x0)
    det = dds_step(x0, torch.ones_like(x0), ab, eta=0.0)
    assert torch.allclose(det, torch.full_like(det, 0.8 + 0.6))


def test_unet_shapes_parameter_count_and_errors():
    net = UNet(UNetConfig())
    assert 2_000_000 < count_parameters(net) < 3_000_000
    x = torch.randn(2, 1, 64, 64)
    assert net(x, torch.tensor([10, 500])).shape == x.shape
    assert net(torch.randn(1, 1, 32, 48), 3).shape == (1, 1, 32, 48)  # fully convolutional
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 1, 30, 30), 1)
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(1, 2, 32, 32), 1)


def test_unet_time_conditioning_matters():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, image_size=16))
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    x = torch.randn(1, 1, 16, 16)
    assert not torch.allclose(net(x, 10), net(x, 900))


def test_unet_config_round_trip():
    cfg = UNetConfig(base_channels=16, channel_mults=(1, 2), attn_resolutions=(8,))
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({"bogus": 1})


def test_ellipses_range_background_and_seed():
    x = ellipses(32, 64, seed=3)
    assert x.shape == (32, 1, 64, 64)
    assert float(x.min()) == 0.0 and abs(float(x.amax(dim=(1, 2, 3)).min()) - 1.0) < 1e-6
    corners = x[:, 0, :4, :4]
    assert float(corners.abs().max()) == 0.0  # background exactly 0 (shapes stay inside r < 1)
    assert torch.equal(x, ellipses(32, 64, seed=3))
    assert not torch.equal(x, ellipses(32, 64, seed=4))


def test_ellipse_count_distribution():
    p = ellipse_parameters(2000, n_mean=40.0, n_max=140, seed=0)
    counts = p["count"].float()
    assert abs(float(counts.mean()) - 40.0) < 0.6
    assert abs(float(counts.var()) - 40.0) < 6.0  # Poisson: variance = mean
    capped = ellipse_parameters(500, n_mean=140.0, n_max=140, seed=0)["count"]
    assert int(capped.max()) == 140 and float(capped.float().mean()) < 140
    axes = p["axes"][p["active"]]
    assert abs(float(axes.mean()) - 0.2 * 0.4745) < 0.005  # 0.2 d Exp(1)
    r = p["center"][p["active"]].norm(dim=-1)
    assert float(r.max()) <= 0.4745 + 1e-6
    assert abs(float(r.mean()) - 2 / 3 * 0.4745) < 0.01  # Triangular(0, d, d): mean 2d/3
    v = p["value"][p["active"]]
    assert -0.4 <= float(v.min()) and float(v.max()) <= 1.0


def test_ellipsoid_volume_is_3d_coherent():
    v = ellipsoid_volume(32, seed=0)
    assert v.shape == (32, 32, 32) and float(v.min()) == 0.0 and math.isclose(float(v.max()), 1.0)
    mid = v[12:20]
    assert float((mid[1:] - mid[:-1]).abs().mean()) < float(mid.abs().mean())


def test_warm_grid_walks_nfe_steps_from_t_start_to_zero():
    s = VPSchedule()
    assert s.warm_grid(2, 20) == [20, 0]
    assert s.warm_grid(3, 20) == [20, 10, 0]
    assert s.warm_grid(4, 50) == [50, 33, 17, 0]
    assert s.warm_grid(1, 20) == [20]
    assert s.warm_grid(21, 20) == list(range(20, -1, -1))
    # the reference grid cut at t* = 20 keeps only t = 0 for 2 steps: what the warm start fixes
    assert s.time_grid(2, t_start=20) == [0]
    with pytest.raises(ValueError, match="nfe <= 21"):
        s.warm_grid(22, 20)
    with pytest.raises(ValueError, match="t_start"):
        s.warm_grid(2, 1000)


def test_a_warm_start_samples_from_t_start_and_an_impossible_nfe_is_refused_before_compute():
    from napari_d3ip.config import ConfigError, RunConfig, from_preset
    from napari_d3ip.pipeline import sampling_grid

    s = VPSchedule()
    best = from_preset("sv-ct-best")
    assert sampling_grid(best, s)[0] == best.t_start and len(sampling_grid(best, s)) == best.nfe
    # an A†y start keeps the paper's grid, cut at t_start
    assert sampling_grid(RunConfig(nfe=50, t_start=500, init="noise"), s) == s.time_grid(50, 500)
    with pytest.raises(ConfigError, match="nfe <= 21"):
        RunConfig.from_dict({"solver": "mbir", "init": "admm-tv", "t_start": 20, "nfe": 25})
