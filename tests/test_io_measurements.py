"""Measurement files: every kind round-trips exactly; every broken field is named."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from napari_d3ip.io.measurements import (
    FORMAT,
    MeasurementError,
    read_measurement,
    validate,
    write_measurement,
)
from napari_d3ip.operators.base import Measurement
from napari_d3ip.operators.ct import ParallelBeamCT
from napari_d3ip.operators.mri import CartesianMRI, MulticoilMRI

N, H, W = 3, 16, 16


def _volume() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.random((N, H, W)).astype(np.float32)


def _geometry() -> dict:
    affine = np.array([[0.0, 1.5, 0.2, -10.0], [0.0, 0.1, 1.4, 5.0], [2.5, 0.0, 0.0, 3.0],
                       [0, 0, 0, 1]])
    return {"affine": affine, "spacing": (2.5, 1.5033, 1.4142), "intensity": (-1000.0, 3000.0),
            "simulation": {"noise": 0.01, "seed": 3}, "source": "unit-test"}


def _mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[:, ::3] = True
    m[:, W // 2 - 2:W // 2 + 2] = True
    return m


def make(kind: str, reference: bool = True) -> Measurement:
    x = torch.from_numpy(_volume())[:, None]
    if kind == "ct":
        op = ParallelBeamCT((H, W), n_views=7)
    elif kind == "mri":
        op = CartesianMRI(_mask())
    else:
        g = torch.Generator().manual_seed(0)
        maps = torch.complex(torch.randn(N, 4, H, W, generator=g),
                             torch.randn(N, 4, H, W, generator=g))
        op = MulticoilMRI(_mask(), maps)
    y = op.simulate(x, noise=0.01, seed=3)
    return Measurement(op, y, _volume() if reference else None, **_geometry())


@pytest.mark.parametrize("kind", ["ct", "mri", "mri-multicoil"])
def test_round_trip(tmp_path, kind):
    m = make(kind)
    path = write_measurement(tmp_path / "m.h5", m)
    back = read_measurement(path)
    assert type(back.operator) is type(m.operator)
    assert back.operator.params() == m.operator.params()
    for name, arr in m.operator.arrays().items():
        assert np.array_equal(back.operator.arrays()[name], arr), name
    assert back.y.dtype == m.y.dtype and torch.equal(back.y, m.y)
    assert np.array_equal(back.reference, m.reference)
    assert np.array_equal(back.affine, m.affine)
    assert back.spacing == m.spacing and back.intensity == m.intensity
    assert back.simulation == m.simulation and back.source == "unit-test"
    # the rebuilt operator is the same map: same A†y
    assert np.allclose(back.pinv(), m.pinv(), atol=1e-6)
    summary = validate(path)
    assert summary["kind"] == kind and summary["shape"] == tuple(m.y.shape)
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT and f.attrs["version"] == 1
        assert f.attrs["kind"] == kind
        assert json.loads(f.attrs["operator_params"])["kind"] == kind


def test_layout_names_and_dtypes(tmp_path):
    path = write_measurement(tmp_path / "ct.h5", make("ct"))
    with h5py.File(path) as f:
        assert f["sinogram"].dtype == np.float32 and f["sinogram"].shape == (N, 7, 23)
        assert np.allclose(f["angles"][()], np.arange(7) * 180 / 7)
        assert f["reference"].dtype == np.float32 and f["affine"].shape == (4, 4)
    path = write_measurement(tmp_path / "mc.h5", make("mri-multicoil"))
    with h5py.File(path) as f:
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (N, 4, H, W)
        assert f["mask"].dtype == bool and f["mask"].shape == (H, W)
        assert f["sensitivity_maps"].shape == (N, 4, H, W)


def test_reference_is_optional(tmp_path):
    path = write_measurement(tmp_path / "m.h5", make("mri", reference=False))
    back = read_measurement(path)
    assert back.reference is None and not validate(path)["has_reference"]


def test_refuses_to_overwrite(tmp_path):
    path = write_measurement(tmp_path / "m.h5", make("ct"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_measurement(path, make("mri"))
    assert path.read_bytes() == before
    write_measurement(path, make("mri"), overwrite=True)
    assert read_measurement(path).operator.kind == "mri"


def test_inconsistent_measurement_is_not_written(tmp_path):
    m = make("ct")
    m.y = m.y[:, :5]  # 5 views for a 7-view operator
    m.reference = np.zeros((N, H + 1, W), np.float32)
    with pytest.raises(MeasurementError) as e:
        write_measurement(tmp_path / "m.h5", m)
    assert "y has shape" in str(e.value) and "reference has shape" in str(e.value)
    assert not (tmp_path / "m.h5").exists()


# -- every broken field ------------------------------------------------------------------
def _broken(tmp_path, kind: str, edit) -> str:
    path = write_measurement(tmp_path / f"{kind}.h5", make(kind))
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(MeasurementError) as e:
        read_measurement(path)
    return str(e.value)


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize("kind, edit, message", [
    ("ct", lambda f: f.attrs.__setitem__("format", "something-else"),
     "not a napari-d3ip measurement file"),
    ("ct", lambda f: f.attrs.__setitem__("version", 2), "newer than this napari-d3ip"),
    ("ct", lambda f: f.attrs.__setitem__("kind", "pet"), "kind='pet' is not one of"),
    ("ct", lambda f: f.attrs.__delitem__("operator_params"),
     "'operator_params' is missing"),
    ("ct", lambda f: f.attrs.__setitem__("operator_params", "{not json"), "not valid JSON"),
    ("ct", lambda f: f.attrs.__setitem__("operator_params", json.dumps({"kind": "mri"})),
     "disagrees with the file's kind"),
    ("ct", lambda f: f.__delitem__("sinogram"), "'sinogram' is missing"),
    ("ct", lambda f: f.__delitem__("angles"), "'angles' is missing"),
    ("ct", lambda f: _replace(f, "angles", np.arange(5.0)), "'angles' has 5 entries"),
    ("ct", lambda f: _replace(f, "sinogram", np.zeros((N, 7, 30), np.float32)),
     "n_det=23 but 'sinogram' has 30"),
    ("ct", lambda f: _replace(f, "sinogram", np.zeros((N, 7), np.float32)),
     "expected [slices, views, detectors]"),
    ("mri", lambda f: f.__delitem__("mask"), "'mask' is missing"),
    ("mri", lambda f: _replace(f, "mask", np.ones((H, W + 2), bool)),
     "'mask' has shape (16, 18)"),
    ("mri", lambda f: _replace(f, "mask", np.zeros((H, W), bool)), "samples nothing"),
    ("mri", lambda f: _replace(f, "kspace", np.zeros((N, H, W), np.float32)),
     "needs complex data"),
    ("mri-multicoil", lambda f: f.__delitem__("sensitivity_maps"),
     "'sensitivity_maps' is missing"),
    ("mri-multicoil",
     lambda f: _replace(f, "sensitivity_maps", np.zeros((N, 3, H, W), np.complex64)),
     "'sensitivity_maps' has shape (3, 3, 16, 16)"),
    ("ct", lambda f: _replace(f, "reference", np.zeros((N + 1, H, W), np.float32)),
     "'reference' has shape (4, 16, 16)"),
    ("ct", lambda f: _replace(f, "reference", np.full((N, H, W), 7.0, np.float32)),
     "must lie in [0, 1]"),
    ("ct", lambda f: f.__delitem__("affine"), "'affine' is missing"),
    ("ct", lambda f: _replace(f, "affine", np.eye(3)), "affine must be a finite 4x4"),
    ("ct", lambda f: _replace(f, "spacing", np.array([1.0, -1.0, 1.0])),
     "spacing must be 3 positive"),
    ("ct", lambda f: _replace(f, "intensity", np.array([0.0])), "intensity must be 2"),
])
def test_each_error_is_named(tmp_path, kind, edit, message):
    assert message in _broken(tmp_path, kind, edit)


def test_several_problems_are_reported_together(tmp_path):
    def edit(f):
        del f["angles"]
        del f["spacing"]
    msg = _broken(tmp_path, "ct", edit)
    assert "'angles' is missing" in msg and "'spacing' is missing" in msg


def test_not_hdf5_and_missing_file(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("hello")
    with pytest.raises(MeasurementError, match="not an HDF5 file"):
        read_measurement(bad)
    with pytest.raises(MeasurementError, match="no such file"):
        read_measurement(tmp_path / "missing.h5")


def test_unbuildable_operator_is_reported(tmp_path):
    msg = _broken(tmp_path, "ct", lambda f: f.attrs.__setitem__(
        "operator_params", json.dumps({"kind": "ct", "n_views": 7, "n_det": 23,
                                       "filter": "no-such-filter", "image_shape": [H, W]})))
    assert "cannot be rebuilt" in msg and "no-such-filter" in msg
