"""One CT scan read the same way from any layout: the Data Exchange and NXtomo readers each
find their datasets (`Scan`), this module checks the request, reads only what it needs and
builds the `Measurement` with the numpy steps of `tomo`.

Order (nothing big is read before every check has passed): options -> selected rows and views
-> memory needed (refused with the numbers) -> flats/darks of those rows (finite, flat > dark)
-> the projections of those rows and views (finite) -> -log -> centre -> binning -> operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..measurements import MeasurementError, claimed_bytes
from . import MeasurementFormat, OpenOptions, check_options, slice_range, tomo
from ._hdf5 import open_h5

CT_OPTIONS = ("slices", "views", "center", "binning")


@dataclass
class Scan:
    """Where a layout keeps a scan's frames (dataset paths and frame indices) and its angles."""

    path: Path
    fmt: str  # "Data Exchange" | "NXtomo"
    data: str  # dataset of the projection frames (frames, rows, cols)
    proj: np.ndarray  # frame indices of the projections in `data`
    angles: np.ndarray  # degrees, one per projection
    flats: tuple[str, np.ndarray]  # (dataset, frame indices)
    darks: tuple[str, np.ndarray] | None  # None: no dark frames (dark = 0)
    shape: tuple[int, int]  # detector (rows, cols)
    pixel_mm: tuple[float, float] | None = None  # (row, col) pixel size
    notes: list[str] = field(default_factory=list)


# -- files -------------------------------------------------------------------------------------
def link_problems(f: Any, paths: list[str]) -> list[str]:
    """External links on the way to `paths`, virtual datasets and external raw storage: refused
    (the data would come from other files). Soft links inside the file are allowed (NXtomo's
    NXdata group links the detector's data so)."""
    import h5py

    out = []
    for p in paths:
        parts = [q for q in p.split("/") if q]
        group = f
        for k, name in enumerate(parts):
            link = group.get(name, getlink=True)
            here = "/" + "/".join(parts[: k + 1])
            if isinstance(link, h5py.ExternalLink):
                out.append(f"{here!r} is an external link to {link.filename}:{link.path}; "
                           "external links are refused (copy the data into the file)")
                break
            group = group.get(name)
            if group is None:
                break
        else:
            if isinstance(group, h5py.Dataset) and group.is_virtual:
                out.append(f"{p!r} is a virtual dataset (data from other files); refused")
            elif isinstance(group, h5py.Dataset) and group.external:
                out.append(f"{p!r} keeps its data in external files; refused")
    return out


def open_file(path: Path, fmt: str):
    """The file opened read-only; errors name the file. Its links are checked by the format
    (`link_problems`: the datasets it reads, soft links allowed)."""
    return open_h5(path, fmt, check_links=False)


def scan_format(name: str, description: str, sniff, layout) -> MeasurementFormat:
    """A parallel-beam CT format from its `layout(path) -> Scan`: reading and describing are
    the same for every such format."""
    return MeasurementFormat(name=name, description=description, sniff=sniff,
                             open=lambda path, options: read_scan(layout(Path(path)), options),
                             inspect=lambda path, options: describe_scan(layout(Path(path)), options))


def fail(scan_path: Path, fmt: str, problems: list[str]) -> None:
    """One MeasurementError listing every problem (no-op when there is none)."""
    if problems:
        raise MeasurementError(f"{scan_path}: invalid {fmt} file:\n  - " + "\n  - ".join(problems))


def numeric_problem(ds: Any, name: str) -> str | None:
    """Why dataset `name` cannot hold detector counts or angles (None when it can)."""
    if ds.dtype.kind not in "uif":
        return f"{name!r} has dtype {ds.dtype}; detector frames and angles must be real numbers"
    return None


def check_angles(a: np.ndarray, name: str, n_frames: int, problems: list[str]) -> None:
    """The projection angles: one finite value per projection, not all equal."""
    if a.ndim != 1 or a.size != n_frames:
        problems.append(f"{name!r} has {a.size} angle(s) (shape {a.shape}) but the data has "
                        f"{n_frames} projection(s); they must match one to one")
    elif not np.all(np.isfinite(a)):
        problems.append(f"{name!r} holds {int((~np.isfinite(a)).sum())} NaN or infinite angle(s)")
    elif a.size < 2 or np.ptp(a) == 0:
        problems.append(f"{name!r}: the {a.size} projection angle(s) are all equal; a "
                        "tomographic scan needs projections at different angles")


# -- reading -----------------------------------------------------------------------------------
def _plan(scan: Scan, options: OpenOptions) -> dict[str, Any]:
    """What `options` select, checked, before anything is read."""
    check_options(options, CT_OPTIONS, scan.fmt)
    b = int(options.binning or 1)
    rows, picked = tomo.selected_rows(scan.shape[0], b, options.slices)
    views = tomo.pick_views(scan.angles, options.views)
    w = scan.shape[1] // b
    if w < 2:
        raise MeasurementError(f"--bin {b} leaves {w} detector column(s) of {scan.shape[1]}")
    need = 3.0 * 4 * len(views) * len(rows) * scan.shape[1] + claimed_bytes(
        "ct", len(picked), (w, w), (len(views), w), len(views))
    return {"binning": b, "rows": rows, "picked": picked, "views": views, "width": w,
            "bytes": need}


def _references(f: Any, scan: Scan, rows: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat, dark, dead-pixel mask) of the selected rows."""
    name, idx = scan.flats
    flats = tomo.read_frames(f[name], idx, rows)
    tomo.check_finite(flats, f"{scan.path}: {name!r} (flat fields)", idx)
    flat = tomo.reference_frame(flats)
    dark = np.zeros_like(flat)
    if scan.darks is not None:
        dname, didx = scan.darks
        darks = tomo.read_frames(f[dname], didx, rows)
        tomo.check_finite(darks, f"{scan.path}: {dname!r} (dark fields)", didx)
        dark = tomo.reference_frame(darks)
    where = f"{scan.path}: {name!r}" + (f" / {scan.darks[0]!r}" if scan.darks else "")
    return flat, dark, tomo.dead_pixels(flat, dark, where)


def _center(f: Any, scan: Scan, options: OpenOptions, li: np.ndarray, views: np.ndarray,
            rows: list[int], refs: tuple) -> tuple[float, str]:
    """(centre in unbinned detector pixels, how it was found)."""
    where = f"{scan.path}"
    if options.center is not None:
        return tomo.check_center(options.center, scan.shape[1], where), "given (--center)"
    pair = tomo.find_pair(scan.angles)
    if pair is not None:
        i, j = pair
        frames = tomo.read_frames(f[scan.data], [scan.proj[i], scan.proj[j]], rows)
        tomo.check_finite(frames, f"{scan.path}: {scan.data!r}", [scan.proj[i], scan.proj[j]])
        pl = tomo.line_integrals(frames, *refs)
        c = tomo.center_from_pair(pl[0], pl[1])
        how = f"0/180 pair ({scan.angles[i]:g} and {scan.angles[j]:g} degrees)"
    else:
        c = tomo.center_from_mass(li, scan.angles[views])
        how = "projections' centres of mass (no 0/180 pair in the scan)"
    return tomo.check_center(c, scan.shape[1], f"{where}: the estimated centre"), how


def read_scan(scan: Scan, options: OpenOptions) -> Any:
    """The `Measurement` of `scan` as `options` select (see the module docstring for the order)."""
    from ..files import check_memory

    plan = _plan(scan, options)
    b, rows, views = plan["binning"], plan["rows"], plan["views"]
    check_memory(plan["bytes"], f"{scan.path}: {len(plan['picked'])} slices of "
                 f"{plan['width']}x{plan['width']} from {len(views)} projections")
    with open_file(scan.path, scan.fmt) as f:
        refs = _references(f, scan, rows)
        frames = scan.proj[views]
        raw = tomo.read_frames(f[scan.data], frames, rows)
        tomo.check_finite(raw, f"{scan.path}: {scan.data!r} (projections)", frames)
        li = tomo.line_integrals(raw, *refs)
        del raw
        center, how = _center(f, scan, options, li, views, rows, refs)
    sino = np.ascontiguousarray(tomo.bin_frames(li, b).transpose(1, 0, 2))  # (slices, views, cols)
    picked = plan["picked"]
    geo = tomo.Geometry(scan.pixel_mm, picked[0] * b, picked.step * b, b, list(scan.notes))
    info = {"format": scan.fmt, "file": str(scan.path), "center": center, "center_method": how,
            "binning": b, "views": len(views), "file_views": int(scan.angles.size),
            "slices": [picked.start, picked.stop, picked.step], "notes": list(scan.notes)}
    return tomo.ct_measurement(sino, scan.angles[views], (center + 0.5) / b - 0.5, geo,
                               f"{scan.fmt} {scan.path.name}", info)


def describe_scan(scan: Scan, options: OpenOptions) -> dict[str, Any]:
    """What `d3ip inspect` prints: shapes, angles, selection, centre (given, or the 0/180
    estimate from at most 16 middle rows), pixel size, memory. Reconstructs nothing."""
    plan = _plan(scan, options)
    a = scan.angles
    out: dict[str, Any] = {
        "kind": "ct", "detector": list(scan.shape), "projections": int(a.size),
        "flats": int(len(scan.flats[1])), "darks": int(len(scan.darks[1])) if scan.darks else 0,
        "angles": f"{a.size} from {a.min():g} to {a.max():g} degrees",
        "views": len(plan["views"]), "slices": len(plan["picked"]), "binning": plan["binning"],
        "image_shape": [plan["width"], plan["width"]], "reference": False,
        "pixel_size_mm": list(scan.pixel_mm) if scan.pixel_mm else None,
        "memory_bytes": plan["bytes"]}
    if options.center is not None:
        out["rotation_center"] = f"{tomo.check_center(options.center, scan.shape[1], str(scan.path)):g} (given)"
    elif tomo.find_pair(a) is not None:
        mid = scan.shape[0] // 2
        rows = list(slice_range(f"{max(mid - 8, 0)}:{mid + 8}", scan.shape[0]))
        with open_file(scan.path, scan.fmt) as f:
            i, j = tomo.find_pair(a)
            refs = _references(f, scan, rows)
            pl = tomo.line_integrals(tomo.read_frames(f[scan.data], [scan.proj[i], scan.proj[j]],
                                                      rows), *refs)
        out["rotation_center"] = f"{tomo.center_from_pair(pl[0], pl[1]):.2f} (0/180 pair, " \
                                 f"detector pixels; --center overrides)"
    else:
        out["rotation_center"] = "estimated when read (centres of mass; --center overrides)"
    if scan.notes:
        out["notes"] = list(scan.notes)
    return out
