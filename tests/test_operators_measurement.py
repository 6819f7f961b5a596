"""The Measurement owns its batching, A†y, operator norms and loss (issue 15 item 3)."""

from __future__ import annotations

import numpy as np
import torch

from conftest import matrix_operator, measurement_of
from napari_d3ip.operators.base import power_iteration
from napari_d3ip.solvers import data_loss


def _m(n=5):
    g = torch.Generator().manual_seed(0)
    return measurement_of(torch.rand(n, 8, 8, generator=g), matrix_operator(30, seed=1))


def test_batches_cover_the_slices_in_order_with_their_data():
    m = _m()
    got = list(m.batches(2))
    assert [idx for idx, _ in got] == [[0, 1], [2, 3], [4]]
    for idx, sub in got:
        assert torch.equal(sub.y, m.y[idx]) and sub.n_slices == len(idx)
        assert np.array_equal(sub.reference, m.reference[idx])


def test_norms_are_cached_and_kept_by_subsets():
    m = _m()
    norms = m.norms()
    assert norms.norm2 == power_iteration(m.operator.normal, (1, 1, 8, 8))
    assert 0 < norms.mean_eig <= norms.norm2
    assert m.norms() is norms and m.subset([3, 4]).norms() == norms


def test_loss_and_pinv_by_batches_equal_the_whole_volume_ones():
    m = _m()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert abs(m.loss(x, batch=2) - float(data_loss(m.operator, x, m.y))) < 1e-6
    whole = m.operator.pinv(m.y)
    assert torch.allclose(m.pinv_tensor(batch=2), whole, atol=1e-6)
    assert np.allclose(m.pinv(batch=3), whole[:, 0].numpy(), atol=1e-6)
