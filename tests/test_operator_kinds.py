"""Operator kinds as a registry (issue 24 item 1): one class per kind, one rule per setting,
unknown kinds refused by name, and a new kind registered in a test working end to end
(simulate -> file -> reconstruct with ADMM-TV) without touching any other module."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from napari_d3ip.config import Param, RunConfig
from napari_d3ip.errors import D3IPError
from napari_d3ip.operators import Operator, OperatorError, get_kind, kind_names, register_kind
from napari_d3ip.operators.kinds import FileChecks, OperatorKind, Setting, noise, unregister_kind


# -- a toy kind: inpainting (a random fraction of the pixels is measured) --------------------
class Inpaint(Operator):
    """y = keep * x: real data, the kept pixels stored as an array."""

    kind = "inpaint"

    def __init__(self, keep: np.ndarray, device: Any = "cpu"):
        super().__init__(keep.shape, device)
        self.keep_np = np.asarray(keep, bool)
        self.keep = torch.from_numpy(self.keep_np).to(self.device, torch.float32)

    @property
    def meas_shape(self) -> tuple[int, int]:
        return self.image_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x)
        return x[:, 0] * self.keep

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y * self.keep)[:, None]

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self.adjoint(y)

    def to(self, device: Any) -> Inpaint:
        return Inpaint(self.keep_np, device)

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "image_shape": list(self.image_shape),
                "fraction": float(self.keep_np.mean())}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"keep": self.keep_np.copy()}


class InpaintKind(OperatorKind):
    name = "inpaint"
    label = "inpainting (toy)"
    data_name = "pixels"
    data_label = "kept pixels"
    pinv_name = "zero-filled"
    complex_data = False
    data_layout = "[slices, H, W]"
    stored_arrays = {"keep": "keep_mask"}
    settings = (Setting("fraction", "float", 0.5, Param("fraction of pixels measured", lo=0.0,
                                                        lo_open=True, hi=1.0, decimals=2)),
                noise(0.0))
    params = {"fraction": 0.5}

    def build(self, shape, device, n_slices, p, seed):
        rng = np.random.default_rng(seed)
        return Inpaint(rng.random(shape) < float(p["fraction"]), device)

    def rebuild(self, params, arrays, device):
        return Inpaint(np.asarray(arrays["keep"]), device)

    def check_file(self, c: FileChecks, y, params, image_shape):
        ds = c.dataset("keep_mask", "the kept pixels")
        if ds is not None and c.dtype_ok(ds, "keep_mask", bool_ok=True):
            c.arrays["keep"] = c.read(ds, "keep_mask").astype(bool)
        return image_shape


@pytest.fixture
def inpaint():
    register_kind(InpaintKind())
    yield "inpaint"
    unregister_kind("inpaint")


def _volume(n: int = 4, size: int = 24) -> np.ndarray:
    z, y, x = np.mgrid[0:n, 0:size, 0:size].astype(np.float32)
    v = ((np.abs(y - size / 2) < size / 4) & (np.abs(x - size / 2) < size / 3)).astype(np.float32)
    return v * (0.5 + 0.1 * z / n) + 0.2


def test_a_kind_registered_in_a_test_works_through_simulate_file_and_admm_tv(inpaint, tmp_path):
    from napari_d3ip.io.measurements import read_measurement, write_measurement
    from napari_d3ip.measurement_builder import build_measurement
    from napari_d3ip.metrics import psnr
    from napari_d3ip.pipeline import run

    assert "inpaint" in kind_names()
    m = build_measurement(_volume(), "inpaint", fraction=0.4, seed=1)
    assert m.operator.kind == "inpaint" and m.simulation["noise"] == 0.0
    path = write_measurement(tmp_path / "toy.h5", m)
    back = read_measurement(path)
    np.testing.assert_array_equal(back.operator.keep_np, m.operator.keep_np)
    np.testing.assert_allclose(back.y.numpy(), m.y.numpy())
    result = run(back, RunConfig(solver="admm-tv", tv_iters=40, device="cpu"))
    ref = np.asarray(m.reference)
    pinv = psnr(np.clip(back.pinv(), 0, 1), ref)
    assert psnr(result.volume, ref) > pinv + 3.0  # TV fills the holes A†y leaves at zero


def test_the_cli_offers_a_registered_kind_and_its_settings(inpaint, tmp_path, capsys):
    from napari_d3ip.cli import main

    vol = tmp_path / "v.nii.gz"
    from napari_d3ip.io.volumes import write_volume

    write_volume(vol, _volume(3, 16) * 100.0, np.eye(4))
    out = tmp_path / "m.h5"
    assert main(["simulate", "--volume", str(vol), "--operator", "inpaint", "--fraction", "0.5",
                 "--out", str(out), "--quiet"]) == 0
    line = capsys.readouterr().out
    assert "inpaint" in line and "zero-filled" in line
    assert main(["simulate", "--volume", str(vol), "--operator", "inpaint", "--fraction", "0",
                 "--out", str(tmp_path / "n.h5")]) == 2
    assert "--fraction must be > 0 and <= 1, got 0.0" in capsys.readouterr().err
    res = tmp_path / "r.nii.gz"
    assert main(["reconstruct", "--measurement", str(out), "--solver", "admm-tv", "--tv-iters",
                 "5", "--device", "cpu", "--out", str(res), "--quiet"]) == 0
    assert res.exists()


def test_unknown_kinds_are_refused_by_name_never_taken_for_mri():
    with pytest.raises(OperatorError, match="unknown operator kind 'pet'; choose one of ct, mri, "
                       "mri-multicoil"):
        get_kind("pet")
    with pytest.raises(OperatorError, match="registered already"):
        register_kind(get_kind("ct"))
    from napari_d3ip._layers import _data_label

    assert _data_label("ct") == "sinogram" and _data_label("pet") == "measurement"


@pytest.mark.parametrize("bad", [1.0, 0.5, float("nan"), float("inf")])
def test_accel_has_one_rule_for_library_cli_and_gui(bad):
    """accel > 1 and finite, in the builder, the CLI check and the GUI spin box's range."""
    import argparse

    from napari_d3ip.commands.simulate import check_simulation_options
    from napari_d3ip.measurement_builder import simulation_settings

    for kind in ("mri", "mri-multicoil"):
        with pytest.raises(OperatorError, match=r"accel must be > 1 \(1 = fully sampled\)"):
            simulation_settings(kind, accel=bad)
        args = argparse.Namespace(operator=kind, views=15, accel=bad, mask=None, coils=8,
                                  noise=None, seed=0)
        with pytest.raises(D3IPError, match=r"--accel must be > 1 \(1 = fully sampled\)"):
            check_simulation_options(args)
        lo, _ = get_kind(kind).setting("accel").gui_range()
        assert lo > 1.0 and lo == pytest.approx(1.01)
    assert simulation_settings("mri", accel=1.5)["accel"] == 1.5


def test_settings_are_declared_once_and_generate_the_defaults():
    from napari_d3ip.operators import SIMULATION_DEFAULTS

    assert SIMULATION_DEFAULTS == {
        "ct": {"n_views": 15, "filter": "ram-lak", "noise": 0.01},
        "mri": {"accel": 8.0, "mask": "poisson", "acs_fraction": 0.08, "noise": 0.0},
        "mri-multicoil": {"accel": 4.0, "mask": "uniform1d", "acs_fraction": 0.08, "n_coils": 8,
                          "noise": 0.01}}
    ct = get_kind("ct")
    assert (ct.data_name, ct.pinv_name, ct.complex_data, ct.data_ndim) == ("sinogram", "FBP",
                                                                          False, 3)
    mc = get_kind("mri-multicoil")
    assert mc.stored_arrays == {"mask": "mask", "maps": "sensitivity_maps"} and mc.data_ndim == 4
    assert ct.setting("n_views").flag == "--views" and mc.setting("n_coils").dest == "coils"
    assert ct.setting("n_views").problem(0) == "must be >= 1, got 0"
    assert ct.setting("filter").problem("box") is not None
    assert ct.check_settings({"n_views": 7.0})["n_views"] == 7
