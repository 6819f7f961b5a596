"""napari-d3ip: 3D reconstruction with an adaptive diffusion prior (D3IP, Chung & Ye, ECCV 2024).

Public API (imported lazily so `import napari_d3ip` stays fast and Qt-free):
`load_prior`, `reconstruct`, `simulate`, `RunConfig`, `presets`.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_prior": ("napari_d3ip.core.prior", "load_prior"),
    "Prior": ("napari_d3ip.core.prior", "Prior"),
    "reconstruct": ("napari_d3ip.pipeline", "reconstruct"),
    "run": ("napari_d3ip.pipeline", "run"),
    "simulate": ("napari_d3ip.operators", "simulate"),
    "RunConfig": ("napari_d3ip.config", "RunConfig"),
    "presets": ("napari_d3ip.config", "presets"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'napari_d3ip' has no attribute {name!r}")
