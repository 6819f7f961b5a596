"""Measurement files: undersampled CT/MRI data with everything needed to reconstruct them.

One HDF5 file (h5py) holds one `Measurement` (operators/base.py). Layout, version 1:

Root attributes
    format            "napari-d3ip-measurement"   (files with any other value are refused)
    version           1                           (newer versions are refused: upgrade)
    kind              "ct" | "mri" | "mri-multicoil"
    operator_params   JSON string of Operator.params() (includes "kind"; CT: n_views, n_det,
                      filter, image_shape; MRI: image_shape, acceleration, n_coils, ...)
    simulation        JSON string: how the data were simulated ({} for acquired data)
    source            where the volume came from (file name, sample name), may be ""
    software          "napari-d3ip <version>" that wrote the file (informative)

Datasets (N slices, images H x W; every slice uses the same operator geometry)
    sinogram          float32   [N, views, detectors]   CT only: the measured data y
    angles            float64   [views]                 CT only: projection angles in degrees
    kspace            complex64 [N, H, W]               mri: centred k-space, zero where the
                      complex64 [N, coils, H, W]        mask is 0 (mri-multicoil)
    mask              bool      [H, W]                  MRI only: sampled k-space locations
    sensitivity_maps  complex64 [N, coils, H, W]        mri-multicoil only: coil maps per slice
                      (or [coils, H, W] when one set of maps is shared by all slices)
    reference         float32   [N, H, W]   optional: fully sampled volume in [0, 1]
    affine            float64   [4, 4]      voxel (slice, row, col) -> world RAS mm
    spacing           float64   [3]         voxel size (slice, row, col) in mm
    intensity         float64   [2]         (lo, hi): [0, 1] maps back to lo..hi file units
    operator/<name>   any       array-valued operator parameters with no name above
                                (forward compatibility; none for the current operators)

Large datasets are gzip-compressed with the shuffle filter. `read_measurement` validates the
file first (`validate`) and raises `MeasurementError` naming every missing or inconsistent
field; the operator is rebuilt with `operators.operator_from_params(params, arrays, device)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import D3IPError
from ..operators import KINDS
from ..operators.base import Measurement, OperatorError
from .files import ResourceError, atomic_path, check_output

FORMAT = "napari-d3ip-measurement"
VERSION = 1
MEASUREMENT_SUFFIXES = (".h5", ".hdf5")
DATA_NAME = {"ct": "sinogram", "mri": "kspace", "mri-multicoil": "kspace"}
# operator array name (Operator.arrays()) -> dataset name in the file
ARRAY_NAME = {"angles": "angles", "mask": "mask", "maps": "sensitivity_maps"}
REQUIRED_ARRAYS = {"ct": ("angles",), "mri": ("mask",), "mri-multicoil": ("mask", "maps")}
_COMPRESS = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class MeasurementError(D3IPError):
    """A measurement file or object that is missing data or inconsistent; says what to fix."""


# -- writing -------------------------------------------------------------------------------
def check_measurement(m: Measurement) -> None:
    """Refuse to write a Measurement whose parts disagree (before any file is touched)."""
    from ..validation import check_measurement_object

    check_measurement_object(m)
    problems: list[str] = []
    op = m.operator
    kind = getattr(op, "kind", None)
    if kind not in KINDS:
        problems.append(f"operator kind {kind!r} is not one of {', '.join(KINDS)}")
    y = m.y
    expect = tuple(op.meas_shape)
    if y.dim() != 1 + len(expect) or tuple(y.shape[1:]) != expect:
        problems.append(f"y has shape {tuple(y.shape)} but the operator measures "
                        f"(N, {', '.join(map(str, expect))})")
    if op.n_slices is not None and y.shape[0] != op.n_slices:
        problems.append(f"y has {y.shape[0]} slices but the operator holds {op.n_slices}")
    if kind in KINDS and bool(y.is_complex()) != (kind != "ct"):
        problems.append(f"y dtype {y.dtype} does not suit a {kind} operator "
                        f"({'real' if kind == 'ct' else 'complex'} expected)")
    if not bool(torch.isfinite(y).all()):
        problems.append("y contains NaN or infinite values")
    if m.reference is not None:
        ref = np.asarray(m.reference)
        want = (int(y.shape[0]), *op.image_shape)
        if ref.shape != want:
            problems.append(f"reference has shape {ref.shape}, expected {want}")
    problems += _geometry_problems(np.asarray(m.affine), np.asarray(m.spacing),
                                   np.asarray(m.intensity))
    for name in REQUIRED_ARRAYS.get(kind, ()):
        if name not in op.arrays():
            problems.append(f"the operator provides no {name!r} array")
    for name, arr in op.arrays().items():
        a = np.asarray(arr)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            problems.append(f"operator array {name!r} contains NaN or infinite values")
    try:
        json.dumps(op.params())
        json.dumps(m.simulation)
    except TypeError as e:
        problems.append(f"operator params / simulation are not JSON-serialisable ({e})")
    if problems:
        raise MeasurementError("cannot write this measurement:\n  - " + "\n  - ".join(problems))


def write_measurement(path: str | Path, m: Measurement, overwrite: bool = False) -> Path:
    """Write `m` in the layout above; refuses to replace a file unless `overwrite=True`."""
    import h5py

    from .. import __version__

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it, "
                              "or choose another name")
    check_measurement(m)
    op = m.operator
    kind = op.kind
    need = m.y.numel() * m.y.element_size() + 4096
    if m.reference is not None:
        need += np.asarray(m.reference).nbytes
    need += sum(np.asarray(a).nbytes for a in op.arrays().values())
    # h5py crashes on a full disk or past `ulimit -f`: the destination is checked first
    check_output(path, force=overwrite, what="measurement", option="output", nbytes=need)
    import io

    # HDF5 is built in memory (the compressed file: smaller than the data already held) and
    # written by Python: a full disk or `ulimit -f` then fails in one plain write (an OSError,
    # WriteError) instead of inside HDF5, whose cleanup crashed the process (exit 139)
    buf = io.BytesIO()
    with atomic_path(path) as tmp:
        with h5py.File(buf, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["kind"] = kind
            f.attrs["operator_params"] = json.dumps(op.params())
            f.attrs["simulation"] = json.dumps(m.simulation)
            f.attrs["source"] = str(m.source)
            f.attrs["software"] = f"napari-d3ip {__version__}"
            y = m.y.detach().cpu()
            y = y.to(torch.complex64) if y.is_complex() else y.to(torch.float32)
            f.create_dataset(DATA_NAME[kind], data=y.numpy(), **_COMPRESS)
            for name, arr in op.arrays().items():
                arr = np.asarray(arr)
                if name == "mask":
                    arr = arr.astype(bool)
                elif np.iscomplexobj(arr):
                    arr = arr.astype(np.complex64)
                target = ARRAY_NAME.get(name, f"operator/{name}")
                opts = _COMPRESS if arr.size > 1024 else {}
                f.create_dataset(target, data=arr, **opts)
            if m.reference is not None:
                f.create_dataset("reference", data=np.asarray(m.reference, np.float32),
                                 **_COMPRESS)
            f.create_dataset("affine", data=np.asarray(m.affine, np.float64))
            f.create_dataset("spacing", data=np.asarray(m.spacing, np.float64))
            f.create_dataset("intensity", data=np.asarray(m.intensity, np.float64))
        with open(tmp, "wb") as out:
            out.write(buf.getbuffer())
    return path


# -- validation ----------------------------------------------------------------------------
def _geometry_problems(affine: np.ndarray, spacing: np.ndarray, intensity: np.ndarray
                       ) -> list[str]:
    out = []
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        out.append(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    elif abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        out.append("affine is singular (zero spacing or degenerate direction)")
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        out.append(f"spacing must be 3 positive numbers (slice, row, col), got {spacing.tolist()}")
    if intensity.shape != (2,) or not np.all(np.isfinite(intensity)):
        out.append(f"intensity must be 2 finite numbers (lo, hi), got {intensity.tolist()}")
    elif abs(float(intensity[1]) - float(intensity[0])) > np.finfo(np.float32).max or np.any(
            np.abs(intensity) > np.finfo(np.float32).max):
        out.append(f"intensity {intensity.tolist()} lies beyond float32's range "
                   f"(±{np.finfo(np.float32).max:.3g}): results in file units would overflow")
    return out


def _attr_str(f, name: str) -> str | None:
    v = f.attrs.get(name)
    if v is None:
        return None
    if isinstance(v, np.ndarray):  # an array where one string belongs: not this value
        v = v.reshape(-1)[0] if v.size == 1 else repr(v.tolist())[:80]
    try:
        return v.decode() if isinstance(v, bytes) else str(v)
    except UnicodeDecodeError:
        return repr(v)[:80]


def _json_attr(f, name: str, problems: list[str]) -> dict[str, Any] | None:
    raw = _attr_str(f, name)
    if raw is None:
        problems.append(f"root attribute {name!r} is missing")
        return None
    from ..validation import InputError, loads_strict

    try:
        val = loads_strict(raw, f"root attribute {name!r}")
    except json.JSONDecodeError as e:
        problems.append(f"root attribute {name!r} is not valid JSON ({e})")
        return None
    except InputError as e:  # duplicate keys, absurd nesting
        problems.append(str(e))
        return None
    if not isinstance(val, dict):
        problems.append(f"root attribute {name!r} must be a JSON object, got {type(val).__name__}")
        return None
    return val


def _dataset(f, name: str, problems: list[str], why: str) -> Any:
    import h5py

    obj = f.get(name)
    if obj is None:
        problems.append(f"dataset {name!r} is missing ({why})")
        return None
    if not isinstance(obj, h5py.Dataset):
        problems.append(f"{name!r} must be a dataset, found a group")
        return None
    return obj


def _dtype_problem(ds, name: str, problems: list[str], *, complex_ok: bool = False,
                   bool_ok: bool = False) -> bool:
    """False (and a problem) for a dataset whose dtype is not numbers of the right kind."""
    from ..validation import InputError, check_real_dtype

    try:
        check_real_dtype(ds.dtype, repr(name), complex_ok=complex_ok, bool_ok=bool_ok)
    except InputError as e:
        problems.append(str(e))
        return False
    return True


def _read(ds, name: str) -> np.ndarray:
    """Read a whole dataset, its size first bounded by memory; an HDF5 filter or I/O failure
    (a corrupt gzip chunk: "filter returned failure") is named with the dataset."""
    from .files import check_memory

    check_memory(float(ds.size) * ds.dtype.itemsize * 2, f"the file: dataset {name!r} "
                 f"(shape {tuple(ds.shape)}, {ds.dtype})")
    try:
        return np.asarray(ds[()])
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MeasurementError(f"dataset {name!r} cannot be read ({first}): the file is "
                               "damaged (a corrupt compressed chunk?); copy or export it "
                               "again") from None


def _scalar_attr(f, name: str, problems: list[str]):
    """A root attribute that must be one value (not an array): None when missing or wrong."""
    v = f.attrs.get(name)
    if v is None:
        return None
    if isinstance(v, np.ndarray) and v.shape != ():
        problems.append(f"root attribute {name!r} is an array of shape {v.shape}; it must be a "
                        "single value")
        return None
    return v


def _angle_problems(a: np.ndarray) -> list[str]:
    """Degenerate CT angles: non-finite, all equal (every view the same projection)."""
    if a.ndim != 1:
        return [f"'angles' must be a 1D array [views], got shape {a.shape}"]
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        return [f"'angles' holds {bad} NaN or infinite value(s); the geometry is damaged"]
    if a.size > 1 and float(np.ptp(np.mod(a, 360.0))) == 0.0:
        return [f"all {a.size} 'angles' are equal ({a[0]:g} degrees): every view is the same "
                "projection; store the angle of each view"]
    return []


def _links_problems(f) -> list[str]:
    """HDF5 external / soft links, virtual datasets and external raw storage: refused.

    They make the file read data from other files (an external link is followed by h5py
    silently), so what is reconstructed would not be what the file holds."""
    import h5py

    out: list[str] = []

    def walk(group, prefix: str) -> None:
        for name in group:
            full = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                out.append(f"{full!r} is an external link to {link.filename}:{link.path}; "
                           "external links are refused (copy the data into the file)")
                continue
            if isinstance(link, h5py.SoftLink):
                out.append(f"{full!r} is a soft link to {link.path}; links are refused "
                           "(store the data itself)")
                continue
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                walk(obj, full + "/")
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    out.append(f"{full!r} is a virtual dataset (data from other files); refused")
                elif obj.external:
                    out.append(f"{full!r} keeps its data in external files; refused")

    walk(f, "")
    return out


def _zero_maps_problems(maps: np.ndarray) -> list[str]:
    """Coil maps that are zero for a whole slice (or everywhere): A y would be 0 whatever the
    image, and the "result" would be the prior alone."""
    m = maps.reshape(-1, *maps.shape[-3:]) if maps.ndim == 4 else maps[None]
    zero = np.flatnonzero(~np.any(m.reshape(m.shape[0], -1) != 0, axis=1))
    if zero.size == 0:
        return []
    where = "all slices" if zero.size == m.shape[0] else \
        f"slice(s) {', '.join(map(str, zero[:8].tolist()))}"
    return [f"'sensitivity_maps' are all zero for {where}: the data would constrain nothing "
            "there; the coil maps are missing or damaged"]


def _operator_group(f, arrays: dict[str, np.ndarray]) -> list[str]:
    """`operator/<name>` arrays: a group of numeric datasets, each bounded and finite."""
    import h5py

    grp = f.get("operator")
    if grp is None:
        return []
    if not isinstance(grp, h5py.Group):
        return ["'operator' must be a group of datasets (operator/<name>), found a dataset"]
    out: list[str] = []
    for name, ds in grp.items():
        full = f"operator/{name}"
        if not isinstance(ds, h5py.Dataset):
            out.append(f"{full!r} must be a dataset, found a group")
            continue
        if not _dtype_problem(ds, full, out, complex_ok=True, bool_ok=True):
            continue
        arrays[name] = _read(ds, full)
        if arrays[name].dtype.kind in "fc" and not np.all(np.isfinite(arrays[name])):
            out.append(f"{full!r} contains NaN or infinite values")
    return out


def claimed_bytes(kind: str, n_slices: int, image_shape: tuple[int, int],
                  meas_shape: tuple[int, ...], n_views: int = 0,
                  maps_shape: tuple[int, ...] | None = None) -> float:
    """Memory (bytes) reading and reconstructing a measurement of this size needs, roughly.

    Counts the data y (read, then copied to a tensor), the CT system matrix (about 150 bytes per
    view and pixel while it is built: three bins per footprint and scipy's CSR conversion),
    coil maps, and the run's volumes (ten float32 copies of (N, H, W), cost.estimate_cost).
    """
    n = float(max(n_slices, 0))
    h, w = (float(max(int(v), 0)) for v in image_shape)
    y_items = n * float(np.prod([max(int(v), 0) for v in meas_shape], dtype=np.float64))
    total = y_items * (8 if kind != "ct" else 4) * 2
    if kind == "ct":
        total += 150.0 * max(n_views, 1) * h * w
    if maps_shape is not None:
        total += 8.0 * float(np.prod([max(int(v), 0) for v in maps_shape], dtype=np.float64))
    total += 10 * 4.0 * n * h * w
    return total


def _size_problem(path_or_what: str, kind: str, n: int, image_shape, meas_shape,
                  n_views: int = 0, maps_shape=None) -> None:
    from .files import check_memory

    need = claimed_bytes(kind, n, image_shape, meas_shape, n_views, maps_shape)
    check_memory(need, f"{path_or_what}: {n} slices of {image_shape[0]}x{image_shape[1]}"
                 + (f" with {n_views} views" if kind == "ct" else ""))


def _validate_open(f) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """Check an open file; return (kind, operator params, operator arrays) or raise."""
    links = _links_problems(f)
    if links:
        raise MeasurementError("invalid measurement file:\n  - " + "\n  - ".join(links))
    fmt = _attr_str(f, "format")
    if fmt != FORMAT:
        raise MeasurementError(
            f"not a napari-d3ip measurement file (root attribute format={fmt!r}, expected "
            f"{FORMAT!r}); write it with napari_d3ip.io.measurements.write_measurement or "
            "`d3ip simulate`")
    problems: list[str] = []
    version = _scalar_attr(f, "version", problems)
    if version is not None:
        try:
            version = int(version)
        except (TypeError, ValueError):
            problems.append(f"root attribute 'version' must be an integer, got {version!r}")
            version = 1
    if version is None:
        if "version" not in f.attrs:
            problems.append("root attribute 'version' is missing")
    elif int(version) > VERSION:
        raise MeasurementError(f"file layout version {int(version)} is newer than this "
                               f"napari-d3ip reads ({VERSION}); upgrade napari-d3ip")
    elif int(version) < 1:
        problems.append(f"root attribute version={int(version)} is invalid")
    kind = _attr_str(f, "kind")
    if kind not in KINDS:
        raise MeasurementError(f"root attribute kind={kind!r} is not one of "
                               f"{', '.join(KINDS)}")
    params = _json_attr(f, "operator_params", problems)
    if params is not None and params.get("kind") != kind:
        problems.append(f"operator_params kind {params.get('kind')!r} disagrees with the "
                        f"file's kind {kind!r}")
    if "simulation" in f.attrs:
        _json_attr(f, "simulation", problems)

    arrays: dict[str, np.ndarray] = {}
    data_name = DATA_NAME[kind]
    y = _dataset(f, data_name, problems, f"the measured data of a {kind} file")
    image_shape = None
    if params is not None and "image_shape" in params:
        try:
            image_shape = tuple(int(v) for v in params["image_shape"])
            if len(image_shape) != 2 or min(image_shape) < 1:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"operator_params image_shape={params['image_shape']!r} must be two "
                            "positive integers [H, W]")
            image_shape = None
    n = None
    if y is not None and not _dtype_problem(y, data_name, problems, complex_ok=kind != "ct"):
        y = None
    if y is not None:
        complex_expected = kind != "ct"
        if np.issubdtype(y.dtype, np.complexfloating) != complex_expected:
            problems.append(f"{data_name!r} has dtype {y.dtype}; a {kind} file needs "
                            f"{'complex' if complex_expected else 'real float'} data")
        want_ndim = 4 if kind == "mri-multicoil" else 3
        if y.ndim != want_ndim:
            layout = {"ct": "[slices, views, detectors]", "mri": "[slices, H, W]",
                      "mri-multicoil": "[slices, coils, H, W]"}[kind]
            problems.append(f"{data_name!r} has shape {y.shape}; expected {layout}")
            y = None
        else:
            n = int(y.shape[0])
            if n == 0:
                problems.append(f"{data_name!r} holds no slices")

    if kind == "ct":
        ang = _dataset(f, "angles", problems, "CT projection angles in degrees")
        if ang is not None and _dtype_problem(ang, "angles", problems):
            bad_angles = ["shape"]
            if ang.ndim != 1 or (y is not None and ang.shape[0] != y.shape[1]):
                a = np.zeros((0,) * max(ang.ndim, 1))  # not read: its shape is already wrong
                got = f"{ang.shape[0]} entries" if ang.ndim == 1 else f"shape {ang.shape}"
                problems.append(f"'angles' has {got} but 'sinogram' has "
                                f"{y.shape[1] if y is not None else '?'} views: one angle per "
                                "view, 1D")
            else:
                a = _read(ang, "angles").astype(np.float64)
                bad_angles = _angle_problems(a)
                problems += bad_angles
            if a.size and not bad_angles:
                arrays["angles"] = a
                if y is not None and a.size != y.shape[1]:
                    problems.append(f"'angles' has {a.size} entries but 'sinogram' has "
                                    f"{y.shape[1]} views")
                if params is not None and "n_views" in params and params["n_views"] != a.size:
                    problems.append(f"operator_params n_views={params['n_views']} but 'angles' "
                                    f"has {a.size} entries")
        if y is not None and params is not None and "n_det" in params \
                and params["n_det"] != y.shape[2]:
            problems.append(f"operator_params n_det={params['n_det']} but 'sinogram' has "
                            f"{y.shape[2]} detector bins")
    else:
        mask = _dataset(f, "mask", problems, "the k-space sampling mask of an MRI file")
        if mask is not None and _dtype_problem(mask, "mask", problems, bool_ok=True):
            mk = _read(mask, "mask") if mask.ndim == 2 else np.zeros((0,) * mask.ndim)
            if mk.ndim != 2:
                problems.append(f"'mask' must be 2D [H, W], got shape {mk.shape}")
            elif mk.dtype != bool and not np.all((mk == 0) | (mk == 1)):
                problems.append("'mask' must be boolean (or 0/1)")
            else:
                arrays["mask"] = mk.astype(bool)
                if not mk.any():
                    problems.append("'mask' samples nothing (all False)")
                if y is not None and tuple(y.shape[-2:]) != mk.shape:
                    problems.append(f"'mask' has shape {mk.shape} but 'kspace' slices are "
                                    f"{tuple(y.shape[-2:])}")
                if image_shape is not None and image_shape != mk.shape:
                    problems.append(f"operator_params image_shape={list(image_shape)} but "
                                    f"'mask' has shape {mk.shape}")
                image_shape = image_shape or mk.shape
        if kind == "mri-multicoil":
            maps = _dataset(f, "sensitivity_maps", problems,
                            "coil sensitivity maps of a multi-coil file")
            if maps is not None:
                if not _dtype_problem(maps, "sensitivity_maps", problems, complex_ok=True):
                    pass
                elif not np.issubdtype(maps.dtype, np.complexfloating):
                    problems.append(f"'sensitivity_maps' has dtype {maps.dtype}; complex needed")
                elif maps.ndim not in (3, 4):
                    problems.append(f"'sensitivity_maps' has shape {maps.shape}; expected "
                                    "[slices, coils, H, W] or [coils, H, W]")
                elif y is not None and (tuple(maps.shape[-3:]) != tuple(y.shape[1:]) or (
                        maps.ndim == 4 and maps.shape[0] != y.shape[0])):
                    problems.append(f"'sensitivity_maps' has shape {maps.shape} but 'kspace' "
                                    f"{y.shape} needs [{y.shape[0]}, {y.shape[1]}, "
                                    f"{y.shape[2]}, {y.shape[3]}]")
                else:
                    if image_shape is not None and y is not None:  # bound before reading
                        _size_problem("the file", kind, int(y.shape[0]), image_shape,
                                      tuple(y.shape[1:]), maps_shape=tuple(maps.shape))
                    arrays["maps"] = _read(maps, "sensitivity_maps")
                    bad = int(arrays["maps"].size - np.count_nonzero(np.isfinite(arrays["maps"])))
                    if bad:
                        problems.append(f"'sensitivity_maps' holds {bad} NaN or infinite "
                                        "value(s); the coil maps are damaged")
                    else:
                        problems += _zero_maps_problems(arrays["maps"])
                    if params is not None and "n_coils" in params \
                            and params["n_coils"] != maps.shape[-3]:
                        problems.append(f"operator_params n_coils={params['n_coils']} but "
                                        f"'sensitivity_maps' has {maps.shape[-3]} coils")
    if not problems and y is not None and image_shape is not None:
        n_views = int(y.shape[1]) if kind == "ct" else 0
        _size_problem("the file", kind, int(y.shape[0]), image_shape, tuple(y.shape[1:]),
                      n_views)
    problems += _operator_group(f, arrays)

    ref = f.get("reference")
    if ref is not None:
        if ref.ndim != 3 or (n is not None and ref.shape[0] != n) or (
                image_shape is not None and tuple(ref.shape[1:]) != tuple(image_shape)):
            want = (n if n is not None else "N", *(image_shape or ("H", "W")))
            problems.append(f"'reference' has shape {ref.shape}, expected {want}")
        elif _dtype_problem(ref, "reference", problems):
            r = _read(ref, "reference").astype(np.float32)
            if not np.all(np.isfinite(r)):
                problems.append("'reference' contains NaN or infinite values")
            elif r.size and (r.min() < -1e-3 or r.max() > 1 + 1e-3):
                problems.append(f"'reference' must lie in [0, 1] (it is the pipeline's range), "
                                f"found [{r.min():.3g}, {r.max():.3g}]; store to_unit_range(...)")
    geo = {}
    for name, shape in (("affine", (4, 4)), ("spacing", (3,)), ("intensity", (2,))):
        ds = _dataset(f, name, problems, f"geometry: {shape} float")
        if ds is not None and (not _dtype_problem(ds, name, problems) or ds.shape != shape):
            if ds.shape != shape and not any(name in p for p in problems):
                what = {"affine": "affine must be a finite 4x4 matrix",
                        "spacing": "spacing must be 3 positive numbers (slice, row, col)",
                        "intensity": "intensity must be 2 finite numbers (lo, hi)"}[name]
                problems.append(f"{what}, got shape {ds.shape}")
            ds = None
        geo[name] = _read(ds, name).astype(np.float64) if ds is not None else None
    if all(v is not None for v in geo.values()):
        problems += _geometry_problems(geo["affine"], geo["spacing"], geo["intensity"])
    if problems:
        raise MeasurementError("invalid measurement file:\n  - " + "\n  - ".join(problems))
    return kind, params or {}, arrays


def validate(path: str | Path) -> dict[str, Any]:
    """Check a file against the layout; returns a short summary or raises MeasurementError."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise MeasurementError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise MeasurementError(f"{path}: not a regular file (a folder or a device); a "
                               "measurement is one .h5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise MeasurementError(f"{path}: not an HDF5 file ({e}); measurement files are written "
                               "by `d3ip simulate` or write_measurement") from e
    with f:
        try:
            kind, params, _ = _validate_open(f)
        except MeasurementError as e:
            raise MeasurementError(f"{path}: {e}") from None
        except ResourceError as e:
            raise MeasurementError(str(e).replace("the file:", f"{path}:", 1)) from None
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError,
                IndexError, OverflowError) as e:  # h5py on a damaged file: name the file
            raise damaged(path, e) from None
        data = f[DATA_NAME[kind]]
        return {"kind": kind, "shape": tuple(data.shape), "operator_params": params,
                "has_reference": "reference" in f}


def damaged(path: Path, e: BaseException) -> MeasurementError:
    """A library error met while reading `path` (HDF5 metadata damaged in a way the layout
    checks cannot see), told as what it is: a damaged file, named."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return MeasurementError(f"{path}: the file is damaged or not in the napari-d3ip layout "
                            f"({type(e).__name__}: {first[:200]}); export it again")


def read_measurement(path: str | Path, device: torch.device | str = "cpu") -> Measurement:
    """Validate and load a measurement file; the operator is rebuilt on `device`."""
    validate(path)
    try:
        return _read_measurement(Path(path), device)
    except D3IPError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError,
            IndexError, OverflowError) as e:
        raise damaged(Path(path), e) from None


def _read_measurement(path: Path, device: torch.device | str) -> Measurement:
    import h5py

    from ..operators import operator_from_params

    with h5py.File(path, "r") as f:
        kind, params, arrays = _validate_open(f)
        try:
            y_np = _read(f[DATA_NAME[kind]], DATA_NAME[kind])
        except MeasurementError as e:
            raise MeasurementError(f"{path}: {e}") from None
        from ..validation import float32_overflow

        over = float32_overflow(y_np)
        if over:
            raise MeasurementError(
                f"{path}: {DATA_NAME[kind]!r} holds {over} value(s) beyond float32's range "
                f"(|x| > {np.finfo(np.float32).max:.3g}; largest {np.nanmax(np.abs(y_np)):.3g}): "
                "they would become infinite; rescale the data before saving")
        finite = np.isfinite(y_np)
        if not finite.all():
            bad_slices = np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(axis=1))
            shown = ", ".join(map(str, bad_slices[:8])) + (" ..." if len(bad_slices) > 8 else "")
            raise MeasurementError(
                f"{path}: {DATA_NAME[kind]!r} holds {int(finite.size - finite.sum())} NaN or "
                f"infinite value(s) (slice(s) {shown}); the measurement is damaged and cannot "
                "be reconstructed: re-export it, or drop those slices")
        del finite
        y = torch.from_numpy(y_np.astype(np.complex64 if kind != "ct" else np.float32))
        reference = np.asarray(f["reference"][()], np.float32) if "reference" in f else None
        affine = np.asarray(f["affine"][()], np.float64)
        spacing = tuple(float(v) for v in f["spacing"][()])
        intensity = tuple(float(v) for v in f["intensity"][()])
        simulation = json.loads(_attr_str(f, "simulation") or "{}")
        source = _attr_str(f, "source") or ""
    try:
        op = operator_from_params(params, arrays, device)
    except (OperatorError, KeyError, TypeError, ValueError) as e:
        raise MeasurementError(f"{path}: the operator cannot be rebuilt from operator_params "
                               f"{params} ({e})") from e
    expect = tuple(op.meas_shape)
    if tuple(y.shape[1:]) != expect or (op.n_slices is not None and y.shape[0] != op.n_slices):
        raise MeasurementError(f"{path}: {DATA_NAME[kind]!r} has shape {tuple(y.shape)} but the "
                               f"operator measures (N, {', '.join(map(str, expect))})")
    if reference is not None and tuple(reference.shape[1:]) != tuple(op.image_shape):
        raise MeasurementError(f"{path}: 'reference' slices are {reference.shape[1:]} but the "
                               f"operator's images are {op.image_shape}")
    return Measurement(op, y.to(op.device), reference, affine, spacing,  # type: ignore[arg-type]
                       intensity, simulation, source)  # type: ignore[arg-type]
