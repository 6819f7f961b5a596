"""NeXus NXtomo (ESRF, Diamond, PSI, ... tomography raw data), read in numpy + h5py.

The NXtomo entry is found by its NeXus classes, not by fixed paths: an NXentry (or
NXsubentry) whose `definition` is "NXtomo", its NXinstrument's NXdetector with `data`
(frames, rows, cols) and `image_key` (0 projection, 1 flat, 2 dark, 3 invalid: skipped), and
its NXsample's `rotation_angle` (one per frame, @units degree or rad; degrees when absent). All
flats and all darks of the stack are used (median of >= 3, else mean); the detector's
`x_pixel_size`/`y_pixel_size` (@units) give the voxel size. Soft links inside the file
(NXdata's links to the detector data) are followed; external links and virtual datasets are
refused. Every step after finding the datasets is `_tomo_scan.read_scan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import tomo
from ._hdf5 import attr_text, dataset_text, sniffer
from ._tomo_scan import (
    Scan,
    check_angles,
    fail,
    link_problems,
    numeric_problem,
    open_file,
    scan_format,
)

NAME = "NXtomo"


def _children(group: Any, nx_class: str) -> list[tuple[str, Any]]:
    """(name, group) of `group`'s subgroups whose NX_class is `nx_class` (soft links followed,
    external links not opened)."""
    import h5py

    out = []
    for name in group:
        if isinstance(group.get(name, getlink=True), h5py.ExternalLink):
            continue
        obj = group.get(name)
        if isinstance(obj, h5py.Group) and attr_text(obj, "NX_class") == nx_class:
            out.append((name, obj))
    return out


def _is_nxtomo_entry(g: Any) -> bool:
    import h5py

    d = g.get("definition")
    return isinstance(d, h5py.Dataset) and dataset_text(d).strip() == "NXtomo"


def find_entry(f: Any) -> str | None:
    """Path of the first NXentry (or its NXsubentry) defined as NXtomo, None if there is none."""
    for name, entry in _children(f, "NXentry"):
        if _is_nxtomo_entry(entry):
            return "/" + name
        for sub, g in _children(entry, "NXsubentry"):
            if _is_nxtomo_entry(g):
                return f"/{name}/{sub}"
    return None


def _parts(f: Any, entry: str, problems: list[str]) -> tuple[str | None, str | None]:
    """(detector path, sample path) of the entry, found by NX_class."""
    instruments = _children(f[entry], "NXinstrument")
    detector = None
    for iname, inst in instruments:
        for dname, det in _children(inst, "NXdetector"):
            if "data" in det:
                detector = f"{entry}/{iname}/{dname}"
                break
        if detector:
            break
    if detector is None:
        problems.append(f"{entry}: no NXinstrument/NXdetector group with a 'data' stack")
    samples = _children(f[entry], "NXsample")
    sample = f"{entry}/{samples[0][0]}" if samples else None
    if sample is None:
        problems.append(f"{entry}: no NXsample group (it holds 'rotation_angle')")
    return detector, sample


def _pixel_size(det: Any, notes: list[str]) -> tuple[float, float] | None:
    sizes = {}
    for axis in ("x", "y"):
        ds = det.get(f"{axis}_pixel_size")
        if ds is None or getattr(ds, "dtype", np.dtype("O")).kind not in "uif":
            continue
        v = np.asarray(ds[()], np.float64).ravel()
        if v.size:
            mm, note = tomo.length_mm(float(v[0]), attr_text(ds, "units"))
            if mm is not None:
                sizes[axis] = mm
            notes.append(f"{axis}_pixel_size {v[0]:g}: {note}")
    return (sizes.get("y", sizes["x"]), sizes["x"]) if "x" in sizes else None


def _keys(det: Any, data_path: str, n: int, problems: list[str]) -> np.ndarray | None:
    """image_key per frame (checked), None when unusable."""
    key = det.get("image_key")
    where = f"{det.name}/image_key"
    if key is None:
        problems.append(f"dataset {where!r} is missing (0 projection / 1 flat / 2 dark per frame)")
        return None
    if key.dtype.kind not in "ui" or key.ndim != 1 or key.shape[0] != n:
        problems.append(f"{where!r} must be integers, one per frame of {data_path!r} ({n}); got "
                        f"dtype {key.dtype}, shape {key.shape}")
        return None
    k = np.asarray(key[()])
    unknown = sorted(set(np.unique(k).tolist()) - {0, 1, 2, 3})
    if unknown:
        problems.append(f"{where!r} holds values {unknown}; NXtomo keys are 0 projection, "
                        "1 flat, 2 dark, 3 invalid")
    if not (k == 0).any():
        problems.append(f"{where!r} marks no frame as a projection (key 0)")
    if not (k == 1).any():
        problems.append(f"{where!r} marks no flat field (key 1): the scan cannot be normalised")
    return k


def _stack(f: Any, det_path: str, problems: list[str]) -> Any:
    import h5py

    ds = f.get(f"{det_path}/data")
    if not isinstance(ds, h5py.Dataset):
        problems.append(f"{det_path}/data must be a dataset")
        return None
    bad = numeric_problem(ds, ds.name)
    if bad or ds.ndim != 3 or ds.shape[0] < 1:
        problems.append(bad or f"{ds.name!r} has shape {ds.shape}; expected (frames, rows, cols)")
        return None
    return ds


def layout(path: Path) -> Scan:
    """Find and check the scan's datasets (classes, shapes, dtypes, keys, angles, links)."""
    with open_file(path, NAME) as f:
        entry = find_entry(f)
        problems: list[str] = []
        if entry is None:
            fail(path, NAME, ["no NXentry with definition 'NXtomo'"])
        det_path, sample = _parts(f, entry, problems)
        fail(path, NAME, problems)
        data_path, angle_path = f"{det_path}/data", f"{sample}/rotation_angle"
        fail(path, NAME, link_problems(f, [data_path, f"{det_path}/image_key", angle_path]))
        data = _stack(f, det_path, problems)
        keys = _keys(f[det_path], data_path, data.shape[0], problems) if data is not None else None
        rot = f.get(angle_path)
        if rot is None or getattr(rot, "dtype", np.dtype("O")).kind not in "uif":
            problems.append(f"{angle_path!r} is missing or not real-valued (one angle per frame)")
        elif data is not None and keys is not None:
            factor = tomo.angle_factor(attr_text(rot, "units"), f"{path}: {angle_path!r}")
            angles = np.asarray(rot[()], np.float64).ravel() * factor
            if angles.size != data.shape[0]:
                problems.append(f"{angle_path!r} has {angles.size} angles but {data_path!r} has "
                                f"{data.shape[0]} frames; they must match one to one")
            elif (keys == 0).any():
                check_angles(angles[keys == 0], angle_path, int((keys == 0).sum()), problems)
        fail(path, NAME, problems)
        notes: list[str] = [] if (keys == 2).any() else ["no dark fields (key 2): dark = 0"]
        pixel = _pixel_size(f[det_path], notes)
        proj = np.flatnonzero(keys == 0)
        darks = np.flatnonzero(keys == 2)
        return Scan(path, NAME, data_path, proj, angles[proj], (data_path, np.flatnonzero(keys == 1)),
                    (data_path, darks) if darks.size else None,
                    (int(data.shape[1]), int(data.shape[2])), pixel, notes)


FORMAT = scan_format(
    name="nxtomo",
    description="NeXus NXtomo parallel-beam CT (detector data + image_key, sample "
                "rotation_angle)",
    sniff=sniffer(lambda f: find_entry(f) is not None),
    layout=layout,
)
