"""Known-answer tests for CG and the data-consistency estimators."""

from __future__ import annotations

import torch

from conftest import matrix_operator
from napari_d3ip.solvers import DDNM, DDS, DCContext, DiffusionMBIR
from napari_d3ip.solvers.admm_tv import admm_tv
from napari_d3ip.solvers.cg import batched_dot, cg, power_iteration
from napari_d3ip.solvers.finite_diff import dz, dz_t, grad3, grad3_t


def test_cg_solves_spd_system_per_slice():
    g = torch.Generator().manual_seed(0)
    mats = []
    for _ in range(3):
        a = torch.randn(6, 6, generator=g, dtype=torch.float64)
        mats.append(a @ a.T + 6 * torch.eye(6, dtype=torch.float64))
    a = torch.stack(mats)
    b = torch.randn(3, 6, generator=g, dtype=torch.float64)
    x = cg(lambda v: torch.einsum("nij,nj->ni", a, v), b, n_iter=6)
    assert torch.allclose(torch.linalg.solve(a, b), x, atol=1e-8)


def test_cg_slices_do_not_couple():
    """A converged slice is untouched by another slice in the same batch."""
    scale = torch.tensor([1.0, 1000.0], dtype=torch.float64).view(2, 1)
    b = torch.ones(2, 4, dtype=torch.float64)
    both = cg(lambda v: scale * v, b, n_iter=3)
    alone = cg(lambda v: v, b[:1], n_iter=3)
    assert torch.allclose(both[:1], alone)
    assert torch.allclose(both[1], b[1] / 1000.0)


def test_cg_is_differentiable():
    b = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    x = cg(lambda v: 2.0 * v, b, n_iter=2)
    x.sum().backward()
    assert torch.allclose(b.grad, torch.full_like(b, 0.5))


def test_batched_dot_is_per_slice():
    a = torch.arange(8.0).view(2, 4)
    d = batched_dot(a, a)
    assert d.shape == (2, 1) and float(d[0]) == 14.0 and float(d[1]) == 126.0


def test_power_iteration_finds_largest_eigenvalue():
    lam = power_iteration(lambda v: v * torch.tensor([1.0, 3.0, 2.0]), (3,), n_iter=200)
    assert abs(lam - 3.0) < 1e-3


def test_finite_difference_adjoints():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 1, 4, 6, generator=g, dtype=torch.float64)
    d = torch.randn(5, 1, 4, 6, generator=g, dtype=torch.float64)
    assert abs(float((dz(x) * d).sum() - (x * dz_t(d)).sum())) < 1e-10
    d3 = torch.randn(3, 5, 1, 4, 6, generator=g, dtype=torch.float64)
    assert abs(float((grad3(x) * d3).sum() - (x * grad3_t(d3)).sum())) < 1e-10


def test_dds_with_identity_returns_measurement():
    op = matrix_operator(64, identity=True)
    x = torch.rand(3, 1, 8, 8)
    y = op.forward(x)
    out = DDS()(torch.zeros_like(x), y, op, DCContext(cg_steps=5))
    assert torch.allclose(out.flatten(1), y, atol=1e-5)


def test_dds_gamma_form_interpolates_prior_and_data():
    op = matrix_operator(64, identity=True)
    x0, y = torch.zeros(1, 1, 8, 8), torch.ones(1, 64)
    out = DDS(gamma=1.0)(x0, y, op, DCContext(cg_steps=5))
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=1e-5)  # (I + I) x = 0 + 1


def test_ddnm_output_is_data_consistent_and_keeps_null_space():
    op = matrix_operator(30, seed=3)
    x0 = torch.rand(2, 1, 8, 8)
    y = op.forward(torch.rand(2, 1, 8, 8))
    out = DDNM(pinv_steps=60)(x0, y, op, DCContext())
    assert torch.allclose(op.forward(out), y, atol=1e-4)
    # the null-space component of x0 is kept: out - x0 lies in range(Aᴴ)
    m = op.m
    proj = torch.linalg.pinv(m) @ m
    diff = (out - x0).flatten(1).T
    assert torch.allclose(proj @ diff, diff, atol=1e-4)


def test_mbir_with_zero_lambda_equals_least_squares():
    op = matrix_operator(256, seed=2)  # well-conditioned: unique least-squares solution
    xt = torch.rand(4, 1, 8, 8, dtype=torch.float32)
    y = op.forward(xt)
    x0 = torch.zeros_like(xt)
    est = DiffusionMBIR(rho=0.5, lam=0.0)
    out = est(x0, y, op, DCContext(list(range(4)), cg_steps=30, admm_iters=40))
    plain = cg(op.normal, op.adjoint(y), x0, 80)
    assert torch.allclose(out, plain, atol=1e-3)
    assert torch.allclose(out, xt, atol=1e-3)


def test_mbir_rejects_non_contiguous_slices():
    op = matrix_operator(64, identity=True)
    x = torch.rand(2, 1, 8, 8)
    import pytest

    with pytest.raises(ValueError, match="contiguous"):
        DiffusionMBIR()(x, op.forward(x), op, DCContext([0, 2], adapting=True))


def test_mbir_smooths_along_z_with_positive_lambda():
    op = matrix_operator(20, seed=4)  # underdetermined: TV along z decides the rest
    base = torch.rand(1, 1, 8, 8)
    xt = base.repeat(4, 1, 1, 1)
    y = op.forward(xt)
    noisy = xt + 0.3 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    est = DiffusionMBIR(rho=0.5, lam=0.05)
    out = est(noisy, y, op, DCContext(list(range(4)), cg_steps=5, admm_iters=20))
    assert float(dz(out).abs().sum()) < float(dz(noisy).abs().sum())


def test_admm_tv_reduces_error_from_pinv():
    op = matrix_operator(40, seed=5)
    xt = torch.zeros(4, 1, 8, 8)
    xt[:, :, 2:6, 2:6] = 1.0
    y = op.forward(xt)
    init = op.pinv(y)
    out = list(admm_tv(op, y, init, lam=0.01, rho=0.5, iters=50, cg_steps=5))[-1]
    assert float(((out - xt) ** 2).mean()) < 0.5 * float(((init - xt) ** 2).mean())


def test_dps_is_a_landweber_step_through_the_network():
    """With x̂0 = x_t/√ᾱ_t the DPS update is exactly x̂0 − ζ/L Aᴴ(A x̂0 − y)."""
    from napari_d3ip.solvers import DPS

    op = matrix_operator(20, seed=3)
    lip = power_iteration(op.normal, (2, 1, 8, 8), n_iter=100)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 20, generator=g)
    ab = 0.3
    xt = torch.randn(2, 1, 8, 8, generator=g).requires_grad_(True)
    x0 = xt / ab**0.5
    dps = DPS(lip, zeta=0.7)
    out = dps.guided(x0, xt, y, op, ab)
    x0d = x0.detach()
    expect = x0d - 0.7 / lip * op.adjoint(op.forward(x0d) - y)
    assert torch.allclose(out, expect, atol=1e-5)
    # repeated with ζ = 1 it is a contraction on the data misfit (stable at any operator scale)
    x = x0d.clone()
    losses = []
    for _ in range(20):
        xt = (x * ab**0.5).requires_grad_(True)
        x = DPS(lip, zeta=1.0).guided(xt / ab**0.5, xt, y, op, ab)
        losses.append(float((op.forward(x) - y).pow(2).sum()))
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])) and losses[-1] < 0.5 * losses[0]


def test_cg_does_not_blow_up_on_a_singular_noise_free_system():
    """Masked Fourier (MRI), data exactly consistent: extra CG steps must not amplify rounding."""
    from napari_d3ip.operators.masks import poisson_disc_mask
    from napari_d3ip.operators.mri import CartesianMRI

    g = torch.Generator().manual_seed(0)
    mask = poisson_disc_mask((32, 32), accel=8.0, seed=0)
    op = CartesianMRI(mask)
    x = torch.rand(3, 1, 32, 32, generator=g)
    y = op.forward(x)
    start = torch.rand(3, 1, 32, 32, generator=g) * 10  # a wild x̂0, as early in sampling
    misfit0 = float((op.forward(start) - y).abs().norm())
    for n in (1, 5, 30):
        out = cg(op.normal, op.adjoint(y), start, n)
        misfit = float((op.forward(out) - y).abs().norm())
        assert float(out.abs().max()) < 20, n
        assert misfit < (0.9 * misfit0 if n == 1 else 1e-3 * float(y.abs().norm())), (n, misfit)


def test_cg_regression_null_space_blow_up():
    """A real case (tests/data, see its metadata): the 5th CG step used to jump to 1e8."""
    from pathlib import Path

    from safetensors.torch import load_file

    from napari_d3ip.sample_data import load_sample

    case = load_file(Path(__file__).parent / "data" / "cg_null_space_case.safetensors")
    op = load_sample("mri-r8").operator.subset([30, 31, 32, 33])
    for n in range(1, 9):
        out = cg(op.normal, case["b"], case["x0"], n)
        assert float(out.abs().max()) < 2.0, n
