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
from ..operators import get_kind, kind_names
from ..operators.base import Measurement, OperatorError
from ..operators.kinds import OperatorKind
from .files import ResourceError, atomic_path, check_output

FORMAT = "napari-d3ip-measurement"
VERSION = 1
MEASUREMENT_SUFFIXES = (".h5", ".hdf5")
# the data's dataset name, the operator arrays' dataset names, whether y is complex and
# which arrays are required are each kind's declaration (operators/kind_*.py)
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
    k: OperatorKind | None = None
    try:
        k = get_kind(kind)
    except OperatorError:
        problems.append(f"operator kind {kind!r} is not one of {', '.join(kind_names())}")
    y = m.y
    expect = tuple(op.meas_shape)
    if y.dim() != 1 + len(expect) or tuple(y.shape[1:]) != expect:
        problems.append(f"y has shape {tuple(y.shape)} but the operator measures "
                        f"(N, {', '.join(map(str, expect))})")
    if op.n_slices is not None and y.shape[0] != op.n_slices:
        problems.append(f"y has {y.shape[0]} slices but the operator holds {op.n_slices}")
    if k is not None and bool(y.is_complex()) != k.complex_data:
        problems.append(f"y dtype {y.dtype} does not suit a {kind} operator "
                        f"({'complex' if k.complex_data else 'real'} expected)")
    if not bool(torch.isfinite(y).all()):
        problems.append("y contains NaN or infinite values")
    if m.reference is not None:
        ref = np.asarray(m.reference)
        want = (int(y.shape[0]), *op.image_shape)
        if ref.shape != want:
            problems.append(f"reference has shape {ref.shape}, expected {want}")
    problems += _geometry_problems(np.asarray(m.affine), np.asarray(m.spacing),
                                   np.asarray(m.intensity))
    for name in (k.stored_arrays if k is not None else ()):
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
    k = get_kind(op.kind)
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
            f.attrs["kind"] = k.name
            f.attrs["operator_params"] = json.dumps(op.params())
            f.attrs["simulation"] = json.dumps(m.simulation)
            f.attrs["source"] = str(m.source)
            f.attrs["software"] = f"napari-d3ip {__version__}"
            y = m.y.detach().cpu()
            y = y.to(torch.complex64) if y.is_complex() else y.to(torch.float32)
            f.create_dataset(k.data_name, data=y.numpy(), **_COMPRESS)
            for name, arr in op.arrays().items():
                arr = np.asarray(arr)
                if name == "mask":
                    arr = arr.astype(bool)
                elif np.iscomplexobj(arr):
                    arr = arr.astype(np.complex64)
                target = k.stored_arrays.get(name, f"operator/{name}")
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

    Counts the data y (read, then copied to a tensor), what building the operator needs (the
    kind's `build_bytes`: the CT system matrix, about 150 bytes per view and pixel), coil
    maps, and the run's volumes (ten float32 copies of (N, H, W), cost.estimate_cost).
    """
    k = get_kind(kind)
    n = float(max(n_slices, 0))
    h, w = (float(max(int(v), 0)) for v in image_shape)
    y_items = n * float(np.prod([max(int(v), 0) for v in meas_shape], dtype=np.float64))
    total = y_items * (8 if k.complex_data else 4) * 2
    total += k.build_bytes(n_views, h, w)
    if maps_shape is not None:
        total += 8.0 * float(np.prod([max(int(v), 0) for v in maps_shape], dtype=np.float64))
    total += 10 * 4.0 * n * h * w
    return total


def _size_problem(path_or_what: str, kind: str, n: int, image_shape, meas_shape,
                  n_views: int = 0, maps_shape=None) -> None:
    from .files import check_memory

    need = claimed_bytes(kind, n, image_shape, meas_shape, n_views, maps_shape)
    check_memory(need, f"{path_or_what}: {n} slices of {image_shape[0]}x{image_shape[1]}"
                 + (f" with {n_views} views" if n_views else ""))


class _Checks:
    """What a kind's `check_file` gets (operators.kinds.FileChecks): the open file, the
    problems found so far and the arrays read, with the helpers above."""

    def __init__(self, f, kind: str, problems: list[str]) -> None:
        self.f, self.kind, self.problems = f, kind, problems
        self.arrays: dict[str, np.ndarray] = {}

    def dataset(self, name: str, why: str) -> Any:
        return _dataset(self.f, name, self.problems, why)

    def dtype_ok(self, ds, name: str, *, complex_ok: bool = False, bool_ok: bool = False) -> bool:
        return _dtype_problem(ds, name, self.problems, complex_ok=complex_ok, bool_ok=bool_ok)

    def read(self, ds, name: str) -> np.ndarray:
        return _read(ds, name)

    def memory(self, n_slices: int, image_shape: tuple[int, int], meas_shape: tuple[int, ...],
               n_views: int = 0, maps_shape: tuple[int, ...] | None = None) -> None:
        _size_problem("the file", self.kind, n_slices, image_shape, meas_shape, n_views,
                      maps_shape)


def _check_version(f, problems: list[str]) -> None:
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


def _check_header(f, problems: list[str]) -> tuple[OperatorKind, dict[str, Any] | None]:
    """Links, format, version, kind and the JSON attributes: (the kind, operator params)."""
    links = _links_problems(f)
    if links:
        raise MeasurementError("invalid measurement file:\n  - " + "\n  - ".join(links))
    fmt = _attr_str(f, "format")
    if fmt != FORMAT:
        raise MeasurementError(
            f"not a napari-d3ip measurement file (root attribute format={fmt!r}, expected "
            f"{FORMAT!r}); write it with napari_d3ip.io.measurements.write_measurement or "
            "`d3ip simulate`")
    _check_version(f, problems)
    kind = _attr_str(f, "kind")
    try:
        k = get_kind(kind)
    except OperatorError:
        raise MeasurementError(f"root attribute kind={kind!r} is not one of "
                               f"{', '.join(kind_names())}") from None
    params = _json_attr(f, "operator_params", problems)
    if params is not None and params.get("kind") != kind:
        problems.append(f"operator_params kind {params.get('kind')!r} disagrees with the "
                        f"file's kind {kind!r}")
    if "simulation" in f.attrs:
        _json_attr(f, "simulation", problems)
    return k, params


def _params_image_shape(params: dict[str, Any] | None, problems: list[str]
                        ) -> tuple[int, int] | None:
    if params is None or "image_shape" not in params:
        return None
    try:
        image_shape = tuple(int(v) for v in params["image_shape"])
        if len(image_shape) != 2 or min(image_shape) < 1:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"operator_params image_shape={params['image_shape']!r} must be two "
                        "positive integers [H, W]")
        return None
    return image_shape  # type: ignore[return-value]


def _check_data(f, k: OperatorKind, problems: list[str]) -> tuple[Any, int | None]:
    """The measured data y: present, numbers of the kind's type, the kind's layout."""
    name = k.data_name
    y = _dataset(f, name, problems, f"the measured data of a {k.name} file")
    if y is not None and not _dtype_problem(y, name, problems, complex_ok=k.complex_data):
        y = None
    if y is None:
        return None, None
    if np.issubdtype(y.dtype, np.complexfloating) != k.complex_data:
        problems.append(f"{name!r} has dtype {y.dtype}; a {k.name} file needs "
                        f"{'complex' if k.complex_data else 'real float'} data")
    if y.ndim != k.data_ndim:
        problems.append(f"{name!r} has shape {y.shape}; expected {k.data_layout}")
        return None, None
    n = int(y.shape[0])
    if n == 0:
        problems.append(f"{name!r} holds no slices")
    return y, n


def _check_reference(f, n: int | None, image_shape, problems: list[str]) -> None:
    ref = f.get("reference")
    if ref is None:
        return
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


def _check_geometry(f, problems: list[str]) -> None:
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


def _validate_open(f) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """Check an open file; return (kind, operator params, operator arrays) or raise."""
    problems: list[str] = []
    k, params = _check_header(f, problems)
    y, n = _check_data(f, k, problems)
    image_shape = _params_image_shape(params, problems)
    checks = _Checks(f, k.name, problems)
    image_shape = k.check_file(checks, y, params, image_shape)
    arrays = checks.arrays
    if not problems and y is not None and image_shape is not None:
        _size_problem("the file", k.name, int(y.shape[0]), image_shape, tuple(y.shape[1:]),
                      k.views_in(tuple(y.shape)))
    problems += _operator_group(f, arrays)
    _check_reference(f, n, image_shape, problems)
    _check_geometry(f, problems)
    if problems:
        raise MeasurementError("invalid measurement file:\n  - " + "\n  - ".join(problems))
    return k.name, params or {}, arrays


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
        data = f[get_kind(kind).data_name]
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
        k = get_kind(kind)
        data_name = k.data_name
        try:
            y_np = _read(f[data_name], data_name)
        except MeasurementError as e:
            raise MeasurementError(f"{path}: {e}") from None
        from ..validation import float32_overflow

        over = float32_overflow(y_np)
        if over:
            raise MeasurementError(
                f"{path}: {data_name!r} holds {over} value(s) beyond float32's range "
                f"(|x| > {np.finfo(np.float32).max:.3g}; largest {np.nanmax(np.abs(y_np)):.3g}): "
                "they would become infinite; rescale the data before saving")
        finite = np.isfinite(y_np)
        if not finite.all():
            bad_slices = np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(axis=1))
            shown = ", ".join(map(str, bad_slices[:8])) + (" ..." if len(bad_slices) > 8 else "")
            raise MeasurementError(
                f"{path}: {data_name!r} holds {int(finite.size - finite.sum())} NaN or "
                f"infinite value(s) (slice(s) {shown}); the measurement is damaged and cannot "
                "be reconstructed: re-export it, or drop those slices")
        del finite
        y = torch.from_numpy(y_np.astype(np.complex64 if k.complex_data else np.float32))
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
        raise MeasurementError(f"{path}: {data_name!r} has shape {tuple(y.shape)} but the "
                               f"operator measures (N, {', '.join(map(str, expect))})")
    if reference is not None and tuple(reference.shape[1:]) != tuple(op.image_shape):
        raise MeasurementError(f"{path}: 'reference' slices are {reference.shape[1:]} but the "
                               f"operator's images are {op.image_shape}")
    return Measurement(op, y.to(op.device), reference, affine, spacing,  # type: ignore[arg-type]
                       intensity, simulation, source)  # type: ignore[arg-type]
