"""One function builds a Measurement from a volume: [0, 1], simulate, geometry attached."""

from __future__ import annotations

import numpy as np
import pytest

from napari_d3ip.io.volumes import Volume, from_unit_range
from napari_d3ip.measurement_builder import build_measurement, simulation_settings
from napari_d3ip.operators import KINDS, SIMULATION_DEFAULTS, OperatorError

AFFINE = np.array([[0, 0, 1.5, -20.0], [0, 1.2, 0, -30.0], [2.0, 0, 0, 5.0], [0, 0, 0, 1]])


def _volume(n: int = 3, size: int = 24) -> np.ndarray:
    z, y, x = np.mgrid[0:n, 0:size, 0:size].astype(np.float32)
    blob = np.exp(-((y - size / 2) ** 2 + (x - size / 2.5) ** 2) / (size * 2.0))
    return ((blob + 0.1 * z) * 800.0 - 100.0).astype(np.float32)  # file units, not [0, 1]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_with_its_declared_defaults(kind):
    m = build_measurement(_volume(), kind, seed=1)
    d = SIMULATION_DEFAULTS[kind]
    assert m.operator.kind == kind and m.n_slices == 3 and m.image_shape == (24, 24)
    sim = m.simulation
    assert sim["kind"] == kind and sim["noise"] == d["noise"] and sim["seed"] == 1
    if kind == "ct":
        assert sim["views"] == d["n_views"] == m.operator.params()["n_views"]
    else:
        assert sim["accel"] == d["accel"] and sim["mask"] == d["mask"]
    if kind == "mri-multicoil":
        assert sim["coils"] == d["n_coils"]
    assert m.reference.shape == (3, 24, 24)
    assert 0.0 <= m.reference.min() and m.reference.max() <= 1.0


def test_known_geometry_passes_through_and_intensity_round_trips():
    data = _volume()
    vol = Volume(data=data, affine=AFFINE, source="brain.nii.gz", axis=1)
    m = build_measurement(vol, "ct", n_views=8, noise=0.0)
    np.testing.assert_allclose(m.affine, AFFINE)
    assert m.spacing == pytest.approx((2.0, 1.2, 1.5))
    assert m.source == "brain.nii.gz" and m.simulation["source"] == "brain.nii.gz"
    assert m.simulation["axis"] == 1
    lo, hi = float(data.min()), float(data.max())
    assert m.intensity == pytest.approx((lo, hi))
    np.testing.assert_allclose(from_unit_range(m.reference, m.intensity), data, rtol=1e-5,
                               atol=1e-3)
    # an array with the geometry given beside it: the same measurement
    a = build_measurement(data, "ct", n_views=8, noise=0.0, affine=AFFINE, source="brain.nii.gz")
    np.testing.assert_allclose(a.affine, AFFINE)
    np.testing.assert_allclose(a.y.numpy(), m.y.numpy())
    # a fixed intensity range (e.g. the file's window) is kept, not the data's min..max
    w = build_measurement(data, "mri", intensity=(-1000.0, 1000.0), noise=0.0)
    assert w.intensity == (-1000.0, 1000.0)
    np.testing.assert_allclose(from_unit_range(w.reference, w.intensity), data, atol=1e-3)


def test_masks_seeds_and_settings():
    v = _volume()
    a = build_measurement(v, "mri", seed=3, mask="uniform1d", accel=4.0)
    b = build_measurement(v, "mri", seed=3, mask="uniform1d", accel=4.0)
    np.testing.assert_array_equal(a.operator.mask_np, b.operator.mask_np)
    assert a.simulation["mask"] == "uniform1d"
    p = build_measurement(v, "mri-multicoil", mask="poisson", n_coils=4, noise=0.0)
    assert p.simulation["coils"] == 4 and p.simulation["mask"] == "poisson"
    assert build_measurement(v, "ct", n_views=5, filter="hann").operator.params()["n_views"] == 5


def test_bad_kind_and_bad_settings_name_the_choices():
    with pytest.raises(OperatorError, match="unknown operator kind 'pet'; choose one of ct, mri, "
                       "mri-multicoil"):
        build_measurement(_volume(), "pet")
    with pytest.raises(OperatorError, match="poisson, uniform1d"):
        build_measurement(_volume(), "mri", mask="radial")
    with pytest.raises(OperatorError, match="accel: not a setting of kind 'ct'; accepted: n_views"):
        simulation_settings("ct", accel=4.0)
    for kind, bad, msg in (("ct", {"n_views": 0}, "n_views"), ("mri", {"accel": float("nan")}, "accel"),
                           ("ct", {"noise": -1.0}, "noise"), ("ct", {"noise": float("inf")}, "noise"),
                           ("mri-multicoil", {"n_coils": 0}, "n_coils")):
        with pytest.raises(OperatorError, match=msg):
            simulation_settings(kind, **bad)


def test_the_cli_and_the_widget_worker_build_the_same_measurement(tmp_path):
    """Both front ends go through build_measurement: same volume, same settings, same y."""
    import argparse

    from napari_d3ip.commands.simulate import measure
    from napari_d3ip.io.volumes import write_volume
    from napari_d3ip.widgets.workers import simulate_prepared

    data = _volume(4, 16)
    path = tmp_path / "v.nii.gz"
    write_volume(path, data, np.diag([1.0, 1.0, 1.0, 1.0]))
    args = argparse.Namespace(sample=None, volume=str(path), axis=0, frame=None, series=None,
                              operator="mri", views=15, accel=4.0, mask=None, coils=8,
                              noise=0.01, seed=2)
    cli = measure(args)
    from napari_d3ip.io.volumes import read_volume

    vol = read_volume(path, axis=0)
    gui = simulate_prepared(vol.data, "mri", 0.01, 2, {"accel": 4.0}, "v", affine=vol.affine)
    np.testing.assert_allclose(cli.y.numpy(), gui.measurement.y.numpy(), atol=1e-6)
    np.testing.assert_allclose(cli.affine, gui.measurement.affine)
    assert cli.intensity == gui.measurement.intensity
