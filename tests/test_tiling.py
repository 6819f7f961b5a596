"""Tiles with blended seams: exact for pixelwise functions, close to the whole slice for the UNet."""

from __future__ import annotations

import pytest
import torch

from napari_d3ip.core.tiling import tile_count, tile_starts, tiled


@pytest.mark.parametrize("length,tile,overlap,expected", [
    (64, 64, 16, [0]), (50, 64, 16, [0]), (100, 64, 16, [0, 36]),
    (128, 64, 16, [0, 48, 64]), (200, 64, 16, [0, 48, 96, 136]),
])
def test_tile_starts_cover_the_axis_and_end_at_its_edge(length, tile, overlap, expected):
    starts = tile_starts(length, tile, overlap)
    assert starts == expected
    assert starts[-1] + min(tile, length) == length
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    assert tile_count(length, tile) == len(starts)


@pytest.mark.parametrize("shape", [(2, 1, 100, 70), (1, 3, 128, 128), (1, 1, 64, 200)])
def test_a_pixelwise_function_is_reproduced_exactly(shape):
    """The blend weights are a partition of unity: seams leave no trace."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    out = tiled(lambda z: 2 * z.exp() + 1, x, 64)
    torch.testing.assert_close(out, 2 * x.exp() + 1, rtol=1e-6, atol=1e-6)


def test_a_slice_that_fits_in_one_tile_is_the_plain_call():
    x = torch.randn(2, 1, 64, 64)
    calls = []
    out = tiled(lambda z: calls.append(z.shape) or z * 3, x, 64)
    assert calls == [(2, 1, 64, 64)] and torch.equal(out, x * 3)


def test_gradients_flow_through_the_tiles():
    x = torch.randn(1, 1, 100, 100, requires_grad=True)
    tiled(lambda z: 3 * z, x, 64).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 3.0))


def test_tile_must_fit_the_network_downsampling():
    with pytest.raises(ValueError, match="multiple of 8"):
        tiled(lambda z: z, torch.zeros(1, 1, 100, 100), 60)


def test_unet_tiling_is_close_to_the_whole_slice_and_restored(tiny_prior):
    """GroupNorm statistics and attention are per tile, so tiles differ a little from the whole
    slice (measured ~6 % relative on noise input for this net); the prior's setting returns."""
    x = torch.rand(2, 1, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        whole = tiny_prior.net(x, 500)
        with tiny_prior.tiling(64):
            assert tiny_prior.net.tile == 64
            tiles = tiny_prior.net(x, 500)
    assert tiny_prior.net.tile == 0
    rel = float((tiles - whole).norm() / whole.norm())
    assert 0 < rel < 0.1
    with torch.no_grad(), tiny_prior.tiling(128):  # the slice fits: identical
        assert torch.equal(tiny_prior.net(x, 500), whole)
