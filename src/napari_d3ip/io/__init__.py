"""Files in and out. `open_measurement` (io.formats) is the one door for measurement files.

The names below are loaded on first use (PEP 562), so importing `napari_d3ip.io.files` stays
light (the npe2 reader is asked about every file napari opens)."""

from __future__ import annotations

from typing import Any

__all__ = ["OpenOptions", "detect", "inspect_file", "open_measurement"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import formats

        return getattr(formats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
