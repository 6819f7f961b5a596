"""Our own layout (io/measurements.py), behind the door: recognised by its `format` attribute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...operators import get_kind
from ...operators.base import Measurement
from .. import measurements
from . import MeasurementFormat, OpenOptions, check_options, slice_range
from ._hdf5 import attr_text, sniffer


def _open(path: Path, options: OpenOptions) -> Measurement:
    """read_measurement (which validates) once; --slices then keeps that range."""
    check_options(options, ("slices",), "d3ip")
    m = measurements.read_measurement(path)
    if options.slices is None:
        return m
    return m.subset(list(slice_range(options.slices, m.n_slices)))


def _inspect(path: Path, options: OpenOptions) -> dict[str, Any]:
    check_options(options, ("slices",), "d3ip")
    info = measurements.validate(path)
    params = info["operator_params"]
    shape = info["shape"]
    kind = info["kind"]
    picked = slice_range(options.slices, int(shape[0]))
    out: dict[str, Any] = {"kind": kind, "data_shape": list(shape), "slices": len(picked),
                           "image_shape": params.get("image_shape")}
    out.update(get_kind(kind).inspect(params))
    out["reference"] = bool(info["has_reference"])
    if out["image_shape"]:
        h, w = params["image_shape"]
        out["memory_bytes"] = measurements.claimed_bytes(
            kind, len(picked), (h, w), tuple(shape[1:]), int(params.get("n_views") or 0))
    return out


FORMAT = MeasurementFormat(
    name="d3ip",
    description="napari-d3ip measurement (`d3ip simulate`, write_measurement)",
    sniff=sniffer(lambda f: attr_text(f, "format") == measurements.FORMAT),
    open=_open,
    inspect=_inspect,
)
