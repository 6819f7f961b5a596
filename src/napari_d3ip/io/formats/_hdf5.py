"""HDF5 helpers every format reader shares: open safely, sniff cheaply, refuse links.

Readers never follow external/soft links or virtual datasets (what would be reconstructed
would not be what the file holds): `refuse_links` is the same check as our own layout's."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..measurements import MeasurementError, _links_problems

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    """The HDF5 signature at byte 0 (files with a user block are not supported)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == HDF5_MAGIC
    except OSError:
        return False


def sniffer(test: Callable[[Any], bool]) -> Callable[[Path], bool]:
    """A `sniff` that opens the file read-only and applies `test(h5file)`; never raises."""
    def sniff(path: Path) -> bool:
        if not is_hdf5(Path(path)):
            return False
        import h5py

        try:
            with h5py.File(path, "r") as f:
                return bool(test(f))
        except Exception:  # noqa: BLE001 (a sniffer must never raise: the door asks everyone)
            return False
    return sniff


@contextlib.contextmanager
def open_h5(path: Path, fmt: str, check_links: bool = True) -> Iterator[Any]:
    """The file opened read-only, its links refused (unless the format checks its own: NXtomo
    soft-links its data by design); errors name the file."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise MeasurementError(f"{path}: cannot open as HDF5 ({e})") from e
    with f:
        links = _links_problems(f) if check_links else []
        if links:
            raise MeasurementError(f"{path}: invalid {fmt} file:\n  - " + "\n  - ".join(links))
        yield f


def attr_text(obj: Any, name: str) -> str | None:
    """An attribute as str (bytes decoded), None when absent."""
    v = obj.attrs.get(name)
    if v is None:
        return None
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(-1)[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def dataset_text(obj: Any) -> str:
    """A scalar or 1-element string dataset as str (the XML headers are stored so)."""
    v = obj[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def fail(path: Path, fmt: str, problems: list[str]) -> None:
    """Raise one MeasurementError listing every problem (no-op when there are none)."""
    if problems:
        raise MeasurementError(f"{path}: invalid {fmt} file:\n  - " + "\n  - ".join(problems))
