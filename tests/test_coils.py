"""Coil maps: simulated birdcage sensitivities and the torch ESPIRiT estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_d3ip.operators import OperatorError, birdcage_maps, espirit_maps, fft2c
from napari_d3ip.operators.masks import acs_columns, uniform_lines_mask


def ellipse(n: int, shift: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    inside = ((yy - n / 2) / (0.4 * n)) ** 2 + ((xx - n / 2 - shift) / (0.3 * n)) ** 2 < 1
    return (inside * (0.6 + 0.4 * np.cos(xx / 7.0))).astype(np.float32)


def map_error(est: torch.Tensor, true: torch.Tensor, support: np.ndarray,
              align: bool = True) -> float:
    """Relative error of coil maps inside `support`, after removing the per-pixel phase
    ambiguity of an eigenvector (align est to true pixel by pixel)."""
    if align:
        ph = (est.conj() * true).sum(0)
        est = est * ph / ph.abs().clamp_min(1e-12)
    s = torch.from_numpy(support)
    num = (est - true).abs().pow(2).sum(0)[s].sum()
    return float((num / true.abs().pow(2).sum(0)[s].sum()).sqrt())


def test_birdcage_maps_properties():
    s = birdcage_maps(8, (32, 40))
    assert s.shape == (8, 32, 40) and s.dtype == torch.complex64
    assert torch.allclose(s.abs().pow(2).sum(0), torch.ones(32, 40), atol=1e-5)
    assert (s[0].imag.abs() < 1e-6).all() and (s[0].real >= 0).all()  # reference coil
    # smooth: neighbouring pixels differ little; and the coils really differ in phase
    assert float((s[:, 1:] - s[:, :-1]).abs().max()) < 0.15
    phase = s[1].angle()
    assert float(phase.max() - phase.min()) > 0.5
    # coil 0 (at angle 0, on the +x side) is strongest on the right of the image
    assert s[0, 16, -1].abs() > 2 * s[0, 16, 0].abs()
    with pytest.raises(OperatorError):
        birdcage_maps(0, (8, 8))
    with pytest.raises(OperatorError, match="radius"):
        birdcage_maps(4, (8, 8), radius=1.0)


def test_espirit_recovers_birdcage_maps_full_kspace():
    n = 48
    obj = ellipse(n)
    true = birdcage_maps(8, (n, n))
    ksp = fft2c(true * torch.from_numpy(obj))
    est, lam = espirit_maps(ksp, calib_size=24, kernel=6, return_eigenvalues=True)
    support = obj > 0
    assert est.shape == (8, n, n) and lam.shape == (n, n)
    # measured: 0.69% after per-pixel phase alignment, 0.83% without (the reference-coil
    # convention already fixes the phase), eigenvalue >= 0.985 inside the object
    assert map_error(est, true, support) < 0.02
    assert map_error(est, true, support, align=False) < 0.03
    assert float(lam[torch.from_numpy(support)].min()) > 0.95
    kept = est.abs().pow(2).sum(0) > 0
    assert torch.allclose(est.abs().pow(2).sum(0)[kept], torch.ones(int(kept.sum())),
                          atol=1e-4)  # unit norm over coils where kept
    assert (est[0].imag.abs() < 1e-5).all()


def test_espirit_from_acs_lines_batched_per_slice():
    """The multi-coil simulation's setting: only ACS lines (full readout) are calibrated."""
    n = 64
    mask = uniform_lines_mask((n, n), 4, acs_fraction=0.08, seed=0)
    acs = acs_columns(mask)
    n_acs = acs.stop - acs.start
    true = birdcage_maps(8, (n, n))
    objs = np.stack([ellipse(n), ellipse(n, 4)])
    ksp = fft2c(true[None] * torch.from_numpy(objs)[:, None]) * torch.from_numpy(mask)
    est = espirit_maps(ksp, calib_size=(n, n_acs), kernel=(6, 2))
    assert n_acs == 5 and est.shape == (2, 8, n, n)
    for i in range(2):
        # measured 2.2% / 2.3% with 5 ACS lines and a (6, 2) kernel (no object pixel cropped)
        assert map_error(est[i], true, objs[i] > 0) < 0.04
        assert torch.allclose(est[i], espirit_maps(ksp[i], (n, n_acs), (6, 2)), atol=1e-5)
    # a kernel as wide as the ACS block fails (rank-deficient) and is cropped away
    assert map_error(espirit_maps(ksp[0], (n, n_acs), 6), true, objs[0] > 0) > 0.5


def test_espirit_errors():
    with pytest.raises(OperatorError, match="k-space"):
        espirit_maps(torch.zeros(16, 16, dtype=torch.complex64))
    with pytest.raises(OperatorError, match="thresh"):
        espirit_maps(torch.zeros(2, 16, 16, dtype=torch.complex64), 8, thresh=2.0)
    with pytest.raises(OperatorError, match="ref_coil"):
        espirit_maps(torch.zeros(2, 16, 16, dtype=torch.complex64), 8, ref_coil=3)


@pytest.mark.slow
def test_espirit_matches_sigpy():
    app = pytest.importorskip("sigpy.mri.app")
    n = 32
    obj = ellipse(n)
    true = birdcage_maps(6, (n, n))
    ksp = fft2c(true * torch.from_numpy(obj))
    ref = app.EspiritCalib(ksp.numpy(), calib_width=16, thresh=0.02, kernel_width=6,
                           crop=0.95, show_pbar=False).run()
    ours = espirit_maps(ksp, calib_size=16, kernel=6)
    support = obj > 0
    # measured at 48^2 / calib 24: 1.3e-7 relative difference (same maps, same crop)
    assert map_error(ours, torch.from_numpy(np.asarray(ref)), support) < 1e-3
    assert torch.equal(ours.abs().sum(0) > 0, torch.from_numpy(np.abs(ref).sum(0) > 0))
