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


def test_every_layer_is_on_the_volume_grid():
    for _data, kwargs, _kind in _layers():
        assert tuple(kwargs["scale"]) == SPACING, kwargs["name"]


def test_labels_name_plane_and_unit():
    from napari_d3ip.widgets.orthoviews import SLIDER_UNIT, anatomical_labels

    labels = anatomical_labels(np.diag([1.0, -1.0, 1.0, 1.0])[[2, 1, 0, 3]])
    assert all(SLIDER_UNIT in lab for lab in labels)
    assert {lab.split()[0] for lab in labels} == {"axial", "coronal", "sagittal"}
    oblique = np.eye(4)
    oblique[:3, 1] = (0.9, 0.3, 0.0)  # rows and slices both run mostly along R
    assert anatomical_labels(oblique) == ("slice", "row", "col")


@pytest.mark.gui
def test_sliders_step_one_voxel_on_every_axis(make_napari_viewer_proxy, qtbot):
    from napari_d3ip.widgets.orthoviews import ViewControls

    viewer = make_napari_viewer_proxy(show=True)
    viewer.add_image(np.zeros((6, 24, 24), np.float32), scale=SPACING, name="volume")
    for data, kwargs, kind in _layers():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    steps = [viewer.dims.range[a].step for a in range(3)]
    np.testing.assert_allclose(steps, SPACING)  # one step = one voxel, on every axis
    c = ViewControls(viewer)
    if c.open():  # napari-orthogonal-views installed
        qtbot.waitUntil(c.views.is_shown, timeout=20000)
        for vm in c.views.view_models():
            np.testing.assert_allclose([vm.dims.range[a].step for a in range(3)], SPACING)
        c.views.hide()
        qtbot.waitUntil(lambda: not c.views.is_shown(), timeout=10000)
    c.deleteLater()
