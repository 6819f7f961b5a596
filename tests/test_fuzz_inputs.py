"""Seeded fuzzing of the two file formats users hand us (issue 28): measurement files and NIfTI
headers, mutated at random. Every mutant must be either refused cleanly (a `D3IPError` with a
message) or read and reconstructed (ADMM-TV, two iterations, tiny) without any other exception.

Deterministic: one seed, a fixed list of mutants; bounded in time: each part stops at its time
budget (the whole file stays under 60 s on our 2-core CPU) and says how many mutants it tried.
A failure names the mutation, so it can be replayed alone with `_mutant(seed, i)`.
"""

from __future__ import annotations

import gzip
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from napari_d3ip.errors import D3IPError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEED = 28
BUDGET_S = 22.0  # per part; the whole file under 60 s
N_MEAS, N_NIFTI = 300, 400
N, HW = 2, 16


# -- the outcome every mutant must have -----------------------------------------------------
def _reconstruct(m) -> np.ndarray:
    from napari_d3ip.config import RunConfig
    from napari_d3ip.pipeline import run

    cfg = RunConfig(solver="admm-tv", tv_iters=2, device="cpu")
    return run(m, cfg).volume


def _outcome(load: Callable[[], object], what: str) -> str:
    """'refused' or 'reconstructed'; anything else fails the test with `what` in the message."""
    try:
        m = load()
        vol = _reconstruct(m)
    except D3IPError as e:
        assert str(e).strip(), f"{what}: refused with an empty message"
        return "refused"
    except Exception as e:  # the point of the test: no other exception may escape
        raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
    assert np.all(np.isfinite(vol)), f"{what}: reconstructed a non-finite volume"
    return "reconstructed"


# -- measurement files ----------------------------------------------------------------------
def _write_valid(path: Path, kind: str) -> None:
    from napari_d3ip.io.measurements import write_measurement
    from napari_d3ip.operators.base import Measurement
    from napari_d3ip.operators.ct import ParallelBeamCT
    from napari_d3ip.operators.mri import CartesianMRI, MulticoilMRI

    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, HW, HW, generator=g)
    mask = np.zeros((HW, HW), bool)
    mask[:, ::2] = True
    if kind == "ct":
        op = ParallelBeamCT((HW, HW), n_views=5)
    elif kind == "mri":
        op = CartesianMRI(mask)
    else:
        maps = torch.complex(torch.randn(N, 2, HW, HW, generator=g),
                             torch.randn(N, 2, HW, HW, generator=g))
        op = MulticoilMRI(mask, maps)
    y = op.simulate(x, noise=0.01, seed=1)
    m = Measurement(op, y, x[:, 0].numpy().copy(), np.eye(4), (1.0, 1.0, 1.0), (0.0, 1.0),
                    {"seed": 1}, "fuzz")
    write_measurement(path, m)


VALUES = [0, -1, 1, 2**31, 2**63 - 1, -(2**63), 1e300, -1e300, float("nan"), float("inf"), 0.5,
          "", "ct", "mri", "x" * 300, "{", "{}", '{"kind": "ct"}', b"\xff\xfe", np.array([1, 2]),
          np.array([]), np.array([[1.0, 2.0]]), np.array([b"a"]), True]
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint16, bool, np.complex64,
          np.complex128, "S3", [("a", "f4"), ("b", "i2")]]
SHAPES = [(), (0,), (1,), (3,), (4, 4), (2, 5, 23), (1, 16, 16), (2, 2, 16, 16), (7, 1, 1)]


def _datasets(f) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def _mutate_h5(f, rng: np.random.Generator) -> str:
    """One random edit of an open measurement file; returns what it did."""
    names = _datasets(f)
    op = int(rng.integers(8))
    if op == 0:  # an attribute gets another value (of another type)
        key = str(rng.choice(["format", "version", "kind", "operator_params", "simulation",
                              "source", "software", "extra"]))
        val = VALUES[int(rng.integers(len(VALUES)))]
        f.attrs[key] = val
        return f"attrs[{key!r}] = {val!r}"[:120]
    if op == 1:  # operator_params: one field changed
        import json

        try:
            params = json.loads(f.attrs["operator_params"])
        except Exception:
            return "operator_params unreadable: unchanged"
        key = str(rng.choice(sorted(params) + ["image_shape", "n_views", "n_det", "n_coils"]))
        val = VALUES[int(rng.integers(len(VALUES)))]
        params[key] = val.tolist() if isinstance(val, np.ndarray) else (
            val.decode("latin-1") if isinstance(val, bytes) else val)
        f.attrs["operator_params"] = json.dumps(params, allow_nan=True, default=lambda o: (
            o.decode("latin-1") if isinstance(o, bytes) else str(o)))
        return f"operator_params[{key!r}] = {params[key]!r}"[:120]
    name = str(rng.choice(names)) if names else "sinogram"
    if op == 2 and name in f:  # a dataset deleted
        del f[name]
        return f"del {name}"
    if op == 3 and name in f:  # a dataset replaced by another dtype (same values where possible)
        dt = DTYPES[int(rng.integers(len(DTYPES)))]
        old = f[name][()]
        del f[name]
        try:
            f.create_dataset(name, data=np.asarray(old).astype(dt))
        except (TypeError, ValueError):
            f.create_dataset(name, data=np.zeros(np.shape(old), dtype=dt))
        return f"{name} as {np.dtype(dt)}"
    if op == 4 and name in f:  # a dataset replaced by another shape
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        dtype = f[name].dtype
        del f[name]
        f.create_dataset(name, data=np.ones(shape, dtype=dtype))
        return f"{name} reshaped to {shape}"
    if op == 5 and name in f and f[name].size:  # some values set to a hostile number
        a = f[name][()]
        val = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, 1e-30, 7.0])
        flat = a.reshape(-1)
        idx = rng.integers(flat.size, size=int(rng.integers(1, 4)))
        try:
            flat[idx] = val
        except (TypeError, ValueError, OverflowError):
            flat[idx] = 0
        f[name][...] = flat.reshape(a.shape)
        return f"{name}[{idx.tolist()}] = {val}"
    if op == 6:  # something unexpected added
        what = str(rng.choice(["operator", "operator/x", "extra", "reference_group"]))
        if what in f:
            del f[what]
        if what == "reference_group":
            f.create_group("reference") if "reference" not in f else None
        elif what == "operator":
            f.create_dataset("operator", data=np.arange(3))
        else:
            f.create_dataset(what, data=np.array([np.nan, 1.0]))
        return f"added {what}"
    if name in f:  # op 7: all zeros
        f[name][...] = np.zeros(f[name].shape, dtype=f[name].dtype)
        return f"{name} all zero"
    return "no change"


def _corrupt_bytes(path: Path, rng: np.random.Generator) -> str:
    """Bytes inside a compressed data chunk overwritten (HDF5 metadata is left alone: the
    library itself is not what we fuzz), or the file truncated."""
    if rng.random() < 0.25:
        size = path.stat().st_size
        keep = int(size * rng.uniform(0.3, 0.95))
        with open(path, "r+b") as fh:
            fh.truncate(keep)
        return f"truncated to {keep} of {size} bytes"
    with h5py.File(path, "r") as f:
        chunked = [n for n in _datasets(f) if f[n].chunks is not None]
        if not chunked:
            return "no chunk"
        name = str(rng.choice(chunked))
        info = f[name].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + int(rng.integers(max(info.size, 1))))
        fh.write(rng.integers(0, 256, size=8, dtype=np.uint8).tobytes())
    return f"chunk of {name} overwritten"


def test_mutated_measurement_files_are_refused_or_reconstructed(tmp_path, monkeypatch):
    from napari_d3ip.io.measurements import read_measurement

    monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(4 << 30))
    rng = np.random.default_rng(SEED)
    valid = {k: tmp_path / f"valid-{k}.h5" for k in ("ct", "mri", "mri-multicoil")}
    for kind, p in valid.items():
        _write_valid(p, kind)
    seen = {"refused": 0, "reconstructed": 0}
    t0 = time.perf_counter()
    for i in range(N_MEAS):
        if time.perf_counter() - t0 > BUDGET_S:
            break
        kind = str(rng.choice(list(valid)))
        path = tmp_path / f"m{i}.h5"
        shutil.copy(valid[kind], path)
        if rng.random() < 0.2:
            what = _corrupt_bytes(path, rng)
        else:
            with h5py.File(path, "r+") as f:
                what = "; ".join(_mutate_h5(f, rng) for _ in range(int(rng.integers(1, 3))))
        seen[_outcome(lambda p=path: read_measurement(p), f"mutant {i} ({kind}: {what})")] += 1
        path.unlink()
    print("measurements", seen)
    assert seen["refused"] >= 20 and sum(seen.values()) >= 40, seen
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in valid.values())


# -- NIfTI headers --------------------------------------------------------------------------
HEADER_FIELDS = {  # field -> hostile values for it
    "dim": [[3, 16, 16, 4, 1, 1, 1, 1], [3, 0, 16, 4, 1, 1, 1, 1], [3, 16, 16, 30000, 1, 1, 1, 1],
            [4, 16, 16, 4, 3, 1, 1, 1], [7, 16, 16, 4, 1, 1, 1, 2], [2, 16, 16, 1, 1, 1, 1, 1],
            [3, 1000, 1000, 1000, 1, 1, 1, 1], [3, -16, 16, 4, 1, 1, 1, 1], [9, 1, 1, 1, 1, 1, 1, 1]],
    "pixdim": [[1, 0, 0, 0, 1, 1, 1, 1], [1, np.nan, 1, 1, 1, 1, 1, 1], [1, 1e38, 1, 1, 1, 1, 1, 1],
               [-1, -2, 1, 1, 1, 1, 1, 1], [1, np.inf, 1, 1, 1, 1, 1, 1]],
    "datatype": [2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 0, 7],
    "bitpix": [0, 8, 13, 64, 255],
    "vox_offset": [0, 100, 352, 4000, 1e9, -5, np.nan],
    "scl_slope": [0, 1, -1, 1e38, 1e-38, np.nan, np.inf],
    "scl_inter": [0, 1e38, -1e38, np.nan, np.inf],
    "qform_code": [0, 1, 2, 5, -3, 99],
    "sform_code": [0, 1, 4, -1, 99],
    "quatern_b": [0, 1, 2, np.nan, 1e30],
    "srow_x": [[0, 0, 0, 0], [np.nan, 0, 0, 0], [1e38, 0, 0, 0], [1, 0, 0, 1e38]],
    "magic": [b"n+1", b"ni1", b"xxx", b""],
    "sizeof_hdr": [348, 0, 540, 1],
}


def _mutant_nifti(rng: np.random.Generator) -> tuple[bytes, str]:
    """A valid 16x16x4 volume (float32 or int16) with 1-3 header fields set to hostile values,
    as the raw bytes of a .nii file (nibabel's checks bypassed: we write the header bytes)."""
    dtype = np.float32 if rng.random() < 0.5 else np.int16
    arr = (np.random.default_rng(int(rng.integers(1 << 30))).random((HW, HW, 4)) * 500).astype(dtype)
    img = nib.Nifti1Image(arr, np.eye(4))
    hdr = img.header
    hdr.set_data_offset(352)
    edits = []
    for _ in range(int(rng.integers(1, 4))):
        field = str(rng.choice(sorted(HEADER_FIELDS)))
        vals = HEADER_FIELDS[field]
        val = vals[int(rng.integers(len(vals)))]
        try:
            hdr[field] = val
        except (ValueError, TypeError, OverflowError):
            continue
        edits.append(f"{field}={val!r}")
    raw = hdr.binaryblock + b"\0" * 4 + arr.tobytes("F")
    if rng.random() < 0.15:  # and sometimes the data too: cut short
        raw = raw[: int(len(raw) * rng.uniform(0.2, 0.99))]
        edits.append("data truncated")
    return raw, ", ".join(edits) or "no change"


def test_mutated_nifti_headers_are_refused_or_reconstructed(tmp_path, monkeypatch):
    from napari_d3ip.io.volumes import read_volume, to_unit_range
    from napari_d3ip.measurement_builder import build_measurement

    monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(4 << 30))
    rng = np.random.default_rng(SEED + 1)
    seen = {"refused": 0, "reconstructed": 0}
    t0 = time.perf_counter()
    for i in range(N_NIFTI):
        if time.perf_counter() - t0 > BUDGET_S:
            break
        raw, what = _mutant_nifti(rng)
        gz = rng.random() < 0.3
        path = tmp_path / (f"v{i}.nii.gz" if gz else f"v{i}.nii")
        path.write_bytes(gzip.compress(raw) if gz else raw)

        def load(p=path):
            vol = read_volume(p)
            return build_measurement(vol, "ct", n_views=5, noise=0.0, seed=0, device="cpu")

        seen[_outcome(load, f"mutant {i} ({path.name}: {what})")] += 1
        path.unlink()
    print("nifti", seen)
    assert seen["refused"] >= 20 and seen["reconstructed"] >= 5 and sum(seen.values()) >= 60, seen
    assert to_unit_range is not None and list(tmp_path.iterdir()) == []
