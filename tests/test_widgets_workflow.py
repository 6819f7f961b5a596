"""GUI at 1600x1000: the one-dock workflow ('D3IP': 1 Data, 2 Reconstruct) keeps Run, its
progress, the result line, Save and the runs table in view without scrolling, and no widget is
wider than the dock."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

TIMEOUT = 60000


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "config"))


def _inside(widget, frame) -> bool:
    """`widget` lies wholly inside `frame`'s visible rectangle."""
    from qtpy.QtCore import QPoint, QRect

    top_left = widget.mapTo(frame, QPoint(0, 0))
    return QRect(QPoint(0, 0), frame.size()).contains(QRect(top_left, widget.size()))


def test_one_dock_fits_1600x1000(make_napari_viewer_proxy, qtbot):
    from qtpy.QtWidgets import QScrollArea, QWidget

    from napari_d3ip import _layers as L

    viewer = make_napari_viewer_proxy(show=True)
    viewer.window.set_geometry(0, 0, 1600, 1000)
    vol = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    viewer.add_image(vol, name="vol", metadata={L.AFFINE: np.diag([2.0, 1.0, 1.0, 1.0])})
    _, flow = viewer.window.add_plugin_dock_widget("napari-d3ip", "D3IP")
    qtbot.waitUntil(lambda: flow.ready, timeout=TIMEOUT)  # the steps are built turn by turn
    flow.data.select_image("vol")
    flow.data.kind.setCurrentText("ct")
    flow.data.control("ct", "n_views").setValue(8)
    flow.data.simulate()
    qtbot.waitUntil(lambda: flow.data.worker is None, timeout=TIMEOUT)
    assert flow.tabs.currentWidget() is flow.reconstruct  # a measurement: on to step 2
    qtbot.wait(300)
    rec = flow.reconstruct
    assert flow.height() > 700, flow.height()  # the dock has the window's height
    for w in (rec.run.button, rec.run.bar, rec.run.label, rec.save_btn, rec.runs,
              rec.preset, rec.solver, rec.advice):
        assert w.isVisible() and _inside(w, flow), type(w).__name__
    assert "ADMM-TV" in rec.advice.text()
    # no widget wider than the dock (nothing cut off on the right)
    for w in flow.findChildren(QWidget):
        if w.isVisible() and not isinstance(w.parentWidget(), QScrollArea):
            right = w.mapTo(flow, w.rect().topRight()).x()
            chain, p = [], w
            while p is not None and p is not flow:
                chain.append(type(p).__name__ + ":" + str(p.width()))
                p = p.parentWidget()
            assert right <= flow.width() + 1, (chain, right, flow.width())
    assert isinstance(rec.scroll, QScrollArea)  # Advanced, the views and the plot below
    rec.run.shutdown()


def test_the_dock_opens_at_once_and_builds_its_steps_on_later_turns(make_napari_viewer_proxy, qtbot):
    from qtpy.QtWidgets import QLabel

    from napari_d3ip.widgets.workflow import WorkflowWidget

    viewer = make_napari_viewer_proxy()
    flow = WorkflowWidget(viewer)
    # nothing heavy in the caller's turn: both tabs wait, named as before
    assert not flow.ready and flow.data is None and flow.reconstruct is None
    assert [flow.tabs.tabText(i) for i in range(2)] == ["1 Data", "2 Reconstruct"]
    assert all(isinstance(flow.tabs.widget(i), QLabel) for i in range(2))
    qtbot.waitUntil(lambda: flow.ready, timeout=TIMEOUT)
    assert flow.tabs.widget(0) is flow.data and flow.tabs.widget(1) is flow.reconstruct
    assert flow.tabs.currentIndex() == 0 and "simulate" in flow.tabs.tabToolTip(0)


def test_libraries_not_yet_loaded_are_imported_off_the_gui_thread(make_napari_viewer_proxy, qtbot,
                                                                   monkeypatch):
    import threading

    from napari_d3ip.widgets import workflow

    threads = []
    monkeypatch.setattr(workflow, "libraries_loaded", lambda: False)
    monkeypatch.setattr(workflow, "_import_libraries",
                        lambda: threads.append(threading.current_thread()))
    flow = workflow.WorkflowWidget(make_napari_viewer_proxy())
    qtbot.waitUntil(lambda: flow.ready, timeout=TIMEOUT)
    assert threads and threads[0] is not threading.main_thread()


def test_libraries_that_fail_to_load_are_named_in_the_dock(make_napari_viewer_proxy, qtbot,
                                                           monkeypatch):
    from napari_d3ip.widgets import workflow

    def broken() -> None:
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(workflow, "libraries_loaded", lambda: False)
    monkeypatch.setattr(workflow, "_import_libraries", broken)
    flow = workflow.WorkflowWidget(make_napari_viewer_proxy())
    qtbot.waitUntil(lambda: "did not load" in flow.tabs.widget(0).text(), timeout=TIMEOUT)
    assert "torch" in flow.tabs.widget(1).text() and "reinstall" in flow.tabs.widget(1).text()
    qtbot.wait(200)
    assert not flow.ready
