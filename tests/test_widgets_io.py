"""The npe2 contributions: manifest, reader, writer and sample data (mostly without a viewer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_d3ip import _layers as L
from napari_d3ip._reader import get_reader
from napari_d3ip._writer import write_nifti

AFFINE = np.array([[0, 0, 1.5, -20.0], [0, 1.2, 0, -30.0], [2.0, 0, 0, 5.0], [0, 0, 0, 1]])


def test_manifest_is_valid_and_every_command_imports():
    import importlib

    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-d3ip")
    assert pm.display_name == "D3IP reconstruction"
    c = pm.contributions
    assert {w.display_name for w in c.widgets} == {"D3IP", "Prior samples", "D3IP: Data",
                                                    "D3IP: Reconstruct"}
    assert {s.key for s in c.sample_data} == {"brain-64", "phantom-64", "ct15", "mri-r8"}
    for cmd in c.commands:
        mod, attr = cmd.python_name.split(":")
        assert callable(getattr(importlib.import_module(mod), attr)), cmd.python_name


def test_reader_accepts_our_formats_only(tmp_path):
    for name in ("a.nii", "a.nii.gz", "a.nrrd", "a.mha", "a.mhd", "m.h5"):
        assert get_reader(str(tmp_path / name)) is not None, name
    assert get_reader(str(tmp_path / "a.png")) is None
    assert get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None
    empty = tmp_path / "folder"
    empty.mkdir()
    assert get_reader(str(empty)) is None  # not a DICOM folder
    (empty / "x.dcm").write_bytes(b"")
    assert get_reader(str(empty)) is not None


def test_writer_reader_round_trip_keeps_data_and_affine(tmp_path):
    data = np.random.default_rng(0).random((6, 10, 12)).astype(np.float32) * 300
    meta = {"scale": (2.0, 1.2, 1.5), "metadata": {L.AFFINE: AFFINE, L.AXIS: 2}}
    written = write_nifti(str(tmp_path / "vol.nii.gz"), data, meta)
    assert written == [str(tmp_path / "vol.nii.gz")]
    (back, kwargs, kind), = get_reader(written[0])(written[0])
    assert kind == "image" and kwargs["name"] == "vol"
    np.testing.assert_allclose(back, data, rtol=1e-6)
    np.testing.assert_allclose(kwargs["metadata"][L.AFFINE], AFFINE, atol=1e-6)
    np.testing.assert_allclose(kwargs["scale"], (2.0, 1.2, 1.5), atol=1e-6)
    # without an affine the layer's scale is used
    write_nifti(str(tmp_path / "plain.nii"), data, {"scale": (3.0, 1.0, 1.0), "metadata": {}})
    (_, kw2, _), = get_reader(str(tmp_path / "plain.nii"))(str(tmp_path / "plain.nii"))
    np.testing.assert_allclose(kw2["scale"], (3.0, 1.0, 1.0), atol=1e-6)


def test_writer_puts_the_run_card_beside_a_result(tmp_path):
    vol01 = np.linspace(0, 1, 6 * 8 * 8, dtype=np.float32).reshape(6, 8, 8)
    card = {"config": {"solver": "dds"}, "seed": 0}
    meta = {"scale": (2.0, 1.2, 1.5),
            "metadata": {L.AFFINE: AFFINE, L.RUN_CARD: card, L.INTENSITY: (0.0, 1000.0)}}
    nii, card_path = write_nifti(str(tmp_path / "rec.nii.gz"), vol01, meta)
    assert json.loads(open(card_path).read())["config"] == {"solver": "dds"}
    (back, kwargs, _), = get_reader(nii)(nii)
    np.testing.assert_allclose(back, vol01 * 1000.0, rtol=1e-5, atol=1e-3)  # file units
    np.testing.assert_allclose(kwargs["metadata"][L.AFFINE], AFFINE, atol=1e-6)


def test_measurement_file_reads_as_measurement_pinv_and_reference(tmp_path):
    from napari_d3ip.io.measurements import write_measurement
    from napari_d3ip.operators import simulate

    vol = np.random.default_rng(1).random((4, 16, 16)).astype(np.float32)
    m = simulate(vol, "mri", noise=0.0, seed=0, accel=4.0)
    path = write_measurement(tmp_path / "meas.h5", m)
    out = get_reader(str(path))(str(path))
    roles = [kw["metadata"][L.ROLE] for _, kw, _ in out]
    assert roles == ["reference", "measurement", "mask", "pinv"]
    meas = out[1][1]["metadata"][L.MEASUREMENT]
    assert meas.y.shape == m.y.shape and meas.operator.kind == "mri"
    assert out[3][0].shape == (4, 16, 16)


def test_sample_data_layers():
    from napari_d3ip import _sample_data as samples

    (data, kwargs, kind), = samples.brain_64()
    assert kind == "image" and data.shape == (64, 64, 64)
    assert kwargs["metadata"][L.AFFINE].shape == (4, 4) and len(kwargs["scale"]) == 3
    (ph, _, _), = samples.phantom_64()
    assert ph.shape == (64, 64, 64)
    for fn in (samples.ct15, samples.mri_r8):
        try:
            out = fn()
        except FileNotFoundError:
            pytest.skip("the measurement samples are not built in this checkout")
        assert any(kw["metadata"].get(L.ROLE) == "measurement" for _, kw, _ in out)
        assert any(kw["metadata"].get(L.ROLE) == "pinv" for _, kw, _ in out)


@pytest.mark.gui
def test_plugin_in_napari(make_napari_viewer_proxy, tmp_path, monkeypatch):
    """Widgets, reader, writer and samples through napari's own plugin machinery."""
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer_proxy()
    for name in ("Prior samples", "D3IP: Data", "D3IP: Reconstruct"):
        dock, widget = viewer.window.add_plugin_dock_widget("napari-d3ip", name)
        assert widget is not None
    viewer.open_sample("napari-d3ip", "brain-64")
    layer = viewer.layers["brain-64"]
    assert layer.data.shape == (64, 64, 64) and L.AFFINE in layer.metadata
    path = tmp_path / "brain.nii.gz"
    viewer.layers.selection.active = layer
    assert viewer.layers.save(str(path), selected=True, plugin="napari-d3ip") == [str(path)]
    assert path.exists()
    viewer.open(str(path), plugin="napari-d3ip")
    again = viewer.layers["brain"]
    np.testing.assert_allclose(again.data, layer.data, rtol=1e-6)
    np.testing.assert_allclose(again.metadata[L.AFFINE], layer.metadata[L.AFFINE], atol=1e-6)
