"""Data Exchange HDF5 (APS and other synchrotrons' tomography files), read in numpy + h5py.

Layout read (Data Exchange's public spec, as dxchange writes it):
    /exchange/data        (angles, rows, cols)  projections, any real dtype
    /exchange/data_white  (n, rows, cols)       flat fields (required: no normalisation without)
    /exchange/data_dark   (n, rows, cols)       dark fields (optional: zero when absent)
    /exchange/theta       (angles,)             projection angles, degrees (or its @units)
    /measurement/instrument/detector/x_pixel_size, y_pixel_size   optional, with @units
Recognised by content: an `exchange` group holding a 3-D `data` dataset. Every step after
finding the datasets is `_tomo_scan.read_scan` (see `tomo` for the orientation convention).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import tomo
from ._hdf5 import attr_text, sniffer
from ._tomo_scan import (
    Scan,
    check_angles,
    fail,
    link_problems,
    numeric_problem,
    open_file,
    scan_format,
)

NAME = "Data Exchange"
DATA, WHITE, DARK, THETA = "/exchange/data", "/exchange/data_white", "/exchange/data_dark", \
    "/exchange/theta"
DETECTOR = "/measurement/instrument/detector"


def _is_dxchange(f: Any) -> bool:
    import h5py

    g = f.get("exchange")
    return isinstance(g, h5py.Group) and isinstance(g.get("data"), h5py.Dataset) \
        and g["data"].ndim == 3


def _frames(f: Any, name: str, rows_cols: tuple[int, ...] | None, problems: list[str],
            required: bool, why: str) -> Any:
    """The dataset `name` if it is a usable (frames, rows, cols) stack, else None + problem."""
    import h5py

    ds = f.get(name)
    if ds is None:
        if required:
            problems.append(f"dataset {name!r} is missing ({why})")
        return None
    if not isinstance(ds, h5py.Dataset):
        problems.append(f"{name!r} must be a dataset, found a group")
        return None
    bad = numeric_problem(ds, name)
    if bad:
        problems.append(bad)
        return None
    if ds.ndim != 3 or ds.shape[0] < 1:
        problems.append(f"{name!r} has shape {ds.shape}; expected (frames, rows, cols) with at "
                        "least one frame")
        return None
    if rows_cols is not None and tuple(ds.shape[1:]) != rows_cols:
        problems.append(f"{name!r} frames are {tuple(ds.shape[1:])} but the projections are "
                        f"{rows_cols} (rows, cols)")
        return None
    return ds


def _pixel_size(f: Any, notes: list[str]) -> tuple[float, float] | None:
    """(row, col) pixel size in mm from the detector group's x/y_pixel_size, if present."""
    sizes = {}
    for axis in ("x", "y"):
        ds = f.get(f"{DETECTOR}/{axis}_pixel_size")
        if ds is None or getattr(ds, "dtype", np.dtype("O")).kind not in "uif":
            continue
        vals = np.asarray(ds[()], np.float64).ravel()
        if vals.size < 1:
            continue
        mm, note = tomo.length_mm(float(vals[0]), attr_text(ds, "units"))
        if mm is not None:
            sizes[axis] = mm
        notes.append(f"{axis}_pixel_size {vals[0]:g}: {note}")
    if "x" not in sizes:
        return None
    return sizes.get("y", sizes["x"]), sizes["x"]


def layout(path: Path) -> Scan:
    """Find and check the scan's datasets (shapes, dtypes, angles, links); reads only angles."""
    with open_file(path, NAME) as f:
        problems = link_problems(f, [DATA, WHITE, DARK, THETA])
        fail(path, NAME, problems)
        data = _frames(f, DATA, None, problems, True, "the projections")
        rc = tuple(data.shape[1:]) if data is not None else None
        white = _frames(f, WHITE, rc, problems, True, "flat fields: needed to normalise")
        dark = _frames(f, DARK, rc, problems, False, "")
        theta = f.get(THETA)
        angles = None
        if theta is None:
            problems.append(f"dataset {THETA!r} is missing (the projection angles in degrees)")
        elif getattr(theta, "dtype", np.dtype("O")).kind not in "uif":
            problems.append(f"{THETA!r} must be a real-valued dataset of angles")
        elif data is not None:
            factor = tomo.angle_factor(attr_text(theta, "units"), f"{path}: {THETA!r}")
            angles = np.asarray(theta[()], np.float64).ravel() * factor
            check_angles(angles, THETA, int(data.shape[0]), problems)
        fail(path, NAME, problems)
        notes: list[str] = [] if dark is not None else ["no dark fields: dark = 0"]
        pixel = _pixel_size(f, notes)
        return Scan(path, NAME, DATA, np.arange(data.shape[0]), angles,
                    (WHITE, np.arange(white.shape[0])),
                    (DARK, np.arange(dark.shape[0])) if dark is not None else None,
                    (int(rc[0]), int(rc[1])), pixel, notes)


FORMAT = scan_format(
    name="dxchange",
    description="Data Exchange HDF5 parallel-beam CT (/exchange/data, data_white, data_dark, "
                "theta)",
    sniff=sniffer(_is_dxchange),
    layout=layout,
)
