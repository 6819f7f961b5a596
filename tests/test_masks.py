"""k-space sampling masks: acceleration, calibration/ACS regions, density, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from napari_d3ip.operators import OperatorError
from napari_d3ip.operators.masks import (
    acceleration,
    acs_columns,
    poisson_disc_mask,
    uniform_lines_mask,
)


def test_acceleration():
    m = np.zeros((8, 8), bool)
    assert acceleration(m) == float("inf")
    m[:, :2] = True
    assert acceleration(m) == 4.0


@pytest.mark.parametrize("shape,accel", [((16, 16), 3), ((32, 32), 4), ((64, 64), 8),
                                         ((64, 64), 15), ((48, 64), 6), ((64, 64), 1.5)])
def test_poisson_hits_acceleration(shape, accel):
    for seed in range(3):
        m = poisson_disc_mask(shape, accel, calib=(4, 4), seed=seed)
        assert m.dtype == bool and m.shape == shape
        assert acceleration(m) == pytest.approx(accel, rel=0.05)
        assert abs(int(m.sum()) - round(m.size / accel)) <= 1  # exact to one point


def test_poisson_calibration_density_and_seed():
    m = poisson_disc_mask((64, 64), 8, calib=(10, 10), seed=7)
    assert m[27:37, 27:37].all()  # centred fully sampled calibration box
    yy, xx = np.mgrid[:64, :64] - 32
    r = np.hypot(yy, xx)
    inner, outer = m[(r > 6) & (r < 16)].mean(), m[r > 24].mean()
    assert inner > 2 * outer  # variable density: denser near DC
    assert np.array_equal(m, poisson_disc_mask((64, 64), 8, calib=(10, 10), seed=7))
    assert not np.array_equal(m, poisson_disc_mask((64, 64), 8, calib=(10, 10), seed=8))
    # Poisson-disc: outside the calibration box no two samples are neighbours near the edge
    edge = m & (r > 28)
    assert not (edge[:, 1:] & edge[:, :-1]).any()
    # default calib is ~1/16 of each side and fully sampled
    d = poisson_disc_mask((64, 64), 8)
    assert d[30:34, 30:34].all()


def test_poisson_errors():
    with pytest.raises(OperatorError, match="> 1"):
        poisson_disc_mask((32, 32), 1.0)
    with pytest.raises(OperatorError, match="calibration region"):
        poisson_disc_mask((32, 32), 16, calib=(16, 16))
    with pytest.raises(OperatorError, match="shape"):
        poisson_disc_mask((32,), 4)


@pytest.mark.parametrize("width,accel", [(64, 4), (256, 4), (100, 6), (37, 2.5)])
def test_uniform_lines(width, accel):
    m = uniform_lines_mask((20, width), accel, acs_fraction=0.08, seed=1)
    cols = m[0]
    assert (m == cols[None]).all()  # whole phase-encode lines: full readout
    assert cols.sum() == round(width / accel)  # drawn without replacement
    assert abs(width / accel - cols.sum()) <= 1  # within one line of the request
    n_acs = round(0.08 * width)
    acs = acs_columns(m)
    assert acs.stop - acs.start >= n_acs and acs.start <= width // 2 < acs.stop
    assert np.array_equal(m, uniform_lines_mask((20, width), accel, seed=1))
    assert not np.array_equal(m, uniform_lines_mask((20, width), accel, seed=2))


def test_uniform_lines_errors():
    with pytest.raises(OperatorError, match="ACS"):
        uniform_lines_mask((32, 64), 16, acs_fraction=0.2)
    with pytest.raises(OperatorError, match="> 1"):
        uniform_lines_mask((32, 64), 0.5)
    with pytest.raises(OperatorError, match="acs_fraction"):
        uniform_lines_mask((32, 64), 4, acs_fraction=1.5)
    with pytest.raises(OperatorError, match="no fully sampled column"):
        acs_columns(np.zeros((4, 8), bool))
