"""Every slider counts the same unit (voxel / slice index), in the main canvas and in the
orthogonal views, also beside the measurement layers (issue 14)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

SPACING = (2.0, 1.2, 1.5)


def _layers():
    from napari_d3ip import _layers as L
    from napari_d3ip.widgets.workers import simulate_prepared

    vol = np.random.default_rng(0).random((6, 24, 24)).astype(np.float32)
    for kind, params in (("ct", {"n_views": 8}), ("mri", {"accel": 4.0})):
        p = simulate_prepared(vol, kind, 0.0, 0, params, "vol")
        m = dataclasses.replace(p.measurement, spacing=SPACING)
        yield from L.measurement_layers(m, f"vol-{kind}", p.pinv)


SHAPE = (6, 24, 24)


def test_every_layer_is_on_the_volume_grid():
    """Steps no finer than a voxel, and exactly the volume's extent (sinograms stretched)."""
    seen = set()
    for data, kwargs, _kind in _layers():
        scale = np.asarray(kwargs["scale"])
        assert np.all(scale >= np.asarray(SPACING) - 1e-9), kwargs["name"]
        np.testing.assert_allclose(np.asarray(data.shape) * scale,
                                   np.asarray(SHAPE) * SPACING, err_msg=kwargs["name"])
        seen.add(kwargs["name"].split(" ")[1])
    assert {"sinogram", "k-space", "mask", "FBP", "zero-filled"} <= seen


def test_the_unit_is_labelled(qtbot):
    from napari_d3ip.widgets.orthoviews import SLIDER_UNIT, ViewControls

    class Dims:
        ndim, ndisplay, order = 3, 2, (0, 1, 2)

    class Viewer:
        dims = Dims()

    c = ViewControls(Viewer())
    qtbot.addWidget(c)
    assert "voxels" in c.unit_label.text() and SLIDER_UNIT in c.unit_label.text()


@pytest.mark.gui
def test_sliders_step_one_voxel_on_every_axis(make_napari_viewer_proxy, qtbot):
    from napari_d3ip.widgets.orthoviews import ViewControls

    viewer = make_napari_viewer_proxy(show=True)
    viewer.add_image(np.zeros(SHAPE, np.float32), scale=SPACING, name="volume")
    for data, kwargs, kind in _layers():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    steps = [viewer.dims.range[a].step for a in range(3)]
    np.testing.assert_allclose(steps, SPACING)  # one step = one voxel, on every axis
    assert tuple(viewer.dims.nsteps) == SHAPE  # and the sliders span just the volume
    c = ViewControls(viewer)
    viewer.window.add_dock_widget(c)  # the views are looked up in the dock's window
    if c.open():  # napari-orthogonal-views installed
        qtbot.waitUntil(c.views.is_shown, timeout=20000)
        for vm in c.views.view_models():
            np.testing.assert_allclose([vm.dims.range[a].step for a in range(3)], SPACING)
        c.views.hide()
        qtbot.waitUntil(lambda: not c.views.is_shown(), timeout=10000)
    c.deleteLater()


def test_result_names_tell_runs_apart_at_their_start():
    """napari's layer list elides long names in the middle: the run's number and status come
    first, the source last, and each run's differing settings are in between."""
    from napari_d3ip._layers import result_name
    from napari_d3ip.config import from_preset

    cfg = from_preset("cpu-preview")
    a = result_name(cfg, "brain", "NFE12 K4", 1)
    b = result_name(cfg, "brain", "NFE12 K4", 2, "cancelled")
    assert a == "#1 D3IP-base+DDS cpu-preview NFE12 K4 [brain]"
    assert b == "#2 cancelled · D3IP-base+DDS cpu-preview NFE12 K4 [brain]"
    assert a[:12] != b[:12] and a.endswith("[brain]") and b.endswith("[brain]")
    assert result_name(cfg, "brain") == "D3IP-base+DDS cpu-preview [brain]"  # no number: as before
