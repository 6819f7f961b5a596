"""npe2 writer: an image layer as NIfTI with its affine, and its run card JSON beside it.

A reconstruction layer (it carries a run card) is written through `io.results.save_result`, so
the file is in the input's intensity units and the card says how it was made; any other image
layer is written as it is, with the affine from its metadata (or its `scale`).

Only the file the user named may be replaced (napari's save dialog asks first), and it is
replaced atomically. The run card goes beside it as `<stem>.json` only where that name is free
or already holds a napari-d3ip run card: a same-name `.json` written by anything else (a BIDS
sidecar such as `sub-01_T1w.json`) is never replaced; the save is refused before any file is
touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _layers as napari_layers


def layer_affine(meta: dict[str, Any], ndim: int = 3) -> np.ndarray:
    """The (slice, row, col) → world affine of a layer: metadata, else diag(scale)."""
    md = meta.get("metadata") or {}
    if md.get(napari_layers.AFFINE) is not None:
        return np.asarray(md[napari_layers.AFFINE], dtype=float)
    scale = list(meta.get("scale") or [1.0] * ndim)[-3:]
    return np.diag([*map(float, scale), 1.0])


def write_nifti(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer; returns the paths written (NIfTI, then the card if any)."""
    from .events import Result
    from .io.results import save_result
    from .io.volumes import write_volume

    md = meta.get("metadata") or {}
    arr = np.asarray(data, dtype=np.float32)
    affine = layer_affine(meta, arr.ndim)
    card = md.get(napari_layers.RUN_CARD)
    if card is not None:
        lo, hi = md.get(napari_layers.INTENSITY) or (0.0, 1.0)
        nii, card_path = save_result(Result(volume=arr, card=dict(card)), path, affine,
                                     intensity=(float(lo), float(hi)), overwrite=True)
        return [str(nii), str(card_path)]
    axis = md.get(napari_layers.AXIS)
    out = write_volume(path, arr, affine=affine, overwrite=True,
                       axis=int(axis) if axis is not None else None)
    return [str(out)]
