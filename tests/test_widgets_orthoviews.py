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
    # the two extra views show the other two planes of the volume (the display is applied one
    # step per turn of the event loop after each layer arrives)
    def other_planes() -> bool:
        orders = sorted(tuple(vm.dims.order) for vm in models)
        return orders[0] != orders[1] and all(o != (0, 1, 2) for o in orders)

    qtbot.waitUntil(other_planes, timeout=5000)
    assert rec.views.ortho.isChecked()
    rec.views.ortho.setChecked(False)
    qtbot.waitUntil(lambda: not views.is_shown(), timeout=10000)


def test_one_per_turn_runs_steps_in_order_on_separate_turns_and_stops_with_its_owner(qtbot):
    import time

    from qtpy.QtCore import QCoreApplication, QEvent
    from qtpy.QtWidgets import QWidget

    from napari_d3ip.widgets.common import TURN_MS, one_per_turn

    owner = QWidget()
    ran: list[tuple[int, float]] = []
    one_per_turn(owner, [lambda i=i: ran.append((i, time.perf_counter())) for i in range(3)])
    assert ran == []  # nothing in the caller's turn
    qtbot.waitUntil(lambda: len(ran) == 3, timeout=2000)
    assert [i for i, _ in ran] == [0, 1, 2]
    # a timer interval apart, so that the event loop paints and takes input in between
    assert all(b - a >= 0.9 * TURN_MS / 1000 for (_, a), (_, b) in zip(ran, ran[1:]))
    # a step that fails because a view is gone does not stop the rest
    done: list[int] = []
    one_per_turn(owner, [lambda: (_ for _ in ()).throw(RuntimeError("gone")), lambda: done.append(1)])
    qtbot.waitUntil(lambda: done == [1], timeout=2000)
    # once the owner is deleted, nothing more runs
    done.clear()
    one_per_turn(owner, [lambda: done.append(0), lambda: done.append(1)])
    owner.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # deleted now
    qtbot.wait(10 * TURN_MS)
    assert done == []
