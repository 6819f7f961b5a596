"""GUI: the orthogonal views open and show the live result layer; the fallback controls work."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "config"))


def test_fallback_plane_buttons_and_3d_toggle(make_napari_viewer_proxy):
    from napari_d3ip.widgets.orthoviews import ViewControls

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((4, 5, 6), np.float32))
    c = ViewControls(viewer)
    c.plane_buttons["Coronal"].click()
    assert tuple(viewer.dims.order) == (1, 0, 2)
    c.plane_buttons["Sagittal"].click()
    assert tuple(viewer.dims.order) == (2, 0, 1)
    c.plane_buttons["Axial"].click()
    assert tuple(viewer.dims.order) == (0, 1, 2)
    c.btn_3d.click()
    assert viewer.dims.ndisplay == 3
    c.btn_3d.click()
    assert viewer.dims.ndisplay == 2
    c.deleteLater()


def test_orthogonal_views_show_the_live_result(make_napari_viewer_proxy, qtbot, tiny_prior_path):
    pytest.importorskip("napari_orthogonal_views")
    from napari_d3ip import _layers as L
    from napari_d3ip.widgets.reconstruct_widget import ReconstructWidget
    from napari_d3ip.widgets.state import Phase
    from napari_d3ip.widgets.workers import simulate_prepared

    viewer = make_napari_viewer_proxy(show=True)
    vol = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    p = simulate_prepared(vol, "ct", 0.0, 0, {"n_views": 8}, "vol")
    for data, kwargs, kind in L.measurement_layers(p.measurement, "vol", p.pinv):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec)
    rec.prior.set_value(str(tiny_prior_path))
    rec.device.setCurrentText("cpu")
    rec.adapter.setCurrentText("none")
    rec.nfe.setValue(5)
    rec.update_interval = 0.0
    rec.show_views.setChecked(True)
    assert rec.start()
    views = rec.views.views
    qtbot.waitUntil(views.is_shown, timeout=20000)
    qtbot.waitUntil(lambda: rec.run.state.phase is Phase.DONE, timeout=60000)
    models = views.view_models()
    assert len(models) == 2
    result = rec.ctx.layer
    for vm in models:
        names = [ly.name for ly in vm.layers]
        assert result.name in names, names
        copy = vm.layers[result.name]
        np.testing.assert_array_equal(copy.data, result.data)  # kept in sync with the run
    # the two extra views show the other two planes of the volume
    orders = sorted(tuple(vm.dims.order) for vm in models)
    assert orders[0] != orders[1] and all(o != (0, 1, 2) for o in orders)
    assert rec.views.ortho.isChecked()
    rec.views.ortho.setChecked(False)
    qtbot.waitUntil(lambda: not views.is_shown(), timeout=10000)
