"""Apply the network to overlapping tiles of a slice and blend the seams.

Why: a 512² slice through the UNet costs 10x per pixel what a 64² one does (global
self-attention) and a patch prior was trained on tiles of its patch size anyway. Each tile's
output is weighted by a window that ramps up over the overlap on the sides that border another
tile (and stays 1 at the image's own border); the weighted sum is divided by the summed weights,
so the weights form a partition of unity: a pixelwise function is reproduced exactly, and a
network's small disagreements between neighbouring tiles are blended, never cut.
The result is differentiable (the adaptation's backward goes through it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_overlap(tile: int) -> int:
    """Overlap between neighbouring tiles: a quarter of the tile (the seams are blended)."""
    return tile // 4


def tile_count(length: int, tile: int) -> int:
    """Tiles along one axis of `length` pixels (1 when the axis fits in one tile)."""
    if tile <= 0 or length <= tile:
        return 1
    return len(tile_starts(length, tile, tile_overlap(tile)))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """First pixel of each tile along an axis; the last tile ends exactly at `length`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the tile {tile}")
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _ramp(n: int, first: bool, last: bool, overlap: int, device, dtype) -> torch.Tensor:
    """1 inside, rising over `overlap` pixels on a side shared with a neighbour (never 0)."""
    w = torch.ones(n, device=device, dtype=dtype)
    if overlap > 0:
        r = torch.arange(1, overlap + 1, device=device, dtype=dtype) / (overlap + 1)
        if not first:
            w[:overlap] = r
        if not last:
            w[n - overlap:] = torch.minimum(w[n - overlap:], r.flip(0))
    return w


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
          overlap: int | None = None, multiple: int = 8) -> torch.Tensor:
    """`fn` applied to (B, C, H, W) `x` tile by tile (tile x tile, blended); `fn(x)` itself when
    the slice fits in one tile. `multiple`: the network's size divisor (its downsampling)."""
    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    if tile % multiple:
        raise ValueError(f"tile {tile} must be a multiple of {multiple} (the network's downsampling)")
    overlap = tile_overlap(tile) if overlap is None else overlap
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(h, tile), min(w, tile)
    out = None
    weight = torch.zeros(h, w, device=x.device, dtype=x.dtype)
    for i, r in enumerate(rows):
        wr = _ramp(th, i == 0, i == len(rows) - 1, overlap, x.device, x.dtype)
        for j, c in enumerate(cols):
            wc = _ramp(tw, j == 0, j == len(cols) - 1, overlap, x.device, x.dtype)
            win = wr[:, None] * wc[None, :]
            piece = fn(x[..., r:r + th, c:c + tw])
            if out is None:
                out = torch.zeros(*piece.shape[:-2], h, w, device=piece.device, dtype=piece.dtype)
            out[..., r:r + th, c:c + tw] += piece * win
            weight[r:r + th, c:c + tw] += win
    return out / weight
