"""RunBar teardown through public Qt/napari API: closing the dock (napari deletes it) or the
viewer stops the worker at once."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.gui


class FakeHandle:
    """What RunBar needs of a worker handle."""

    def __init__(self) -> None:
        self.started = False
        self.stopped = threading.Event()

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.stopped.set()

    def stop(self, timeout: float = 0.0) -> None:
        self.stopped.set()


def _docked_bar(viewer):
    from qtpy.QtWidgets import QVBoxLayout, QWidget

    from napari_d3ip.widgets.runbar import RunBar

    owner = QWidget()
    bar = RunBar(viewer, "test", owner)
    QVBoxLayout(owner).addWidget(bar)
    bar.watch(owner)  # before docking, as the widgets do in their __init__
    dock = viewer.window.add_dock_widget(owner, name="bar test")
    return owner, bar, dock


def test_closing_the_dock_stops_the_run(make_napari_viewer_proxy, qtbot):
    from napari_d3ip.widgets.runbar import enclosing_dock

    viewer = make_napari_viewer_proxy()
    owner, bar, dock = _docked_bar(viewer)
    handle = FakeHandle()
    bar.begin(handle, "running", 5)
    assert handle.started and bar.state.active
    assert enclosing_dock(owner) is getattr(dock, "__wrapped__", dock)
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    qtbot.waitUntil(handle.stopped.is_set, timeout=5000)
    assert not bar.state.active


def test_dock_destroyed_signal_alone_stops_the_run(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    owner, bar, dock = _docked_bar(viewer)
    owner.removeEventFilter(bar._close_filter)  # only the dock's own signal is left
    handle = FakeHandle()
    bar.begin(handle, "running", 5)
    owner.setParent(None)
    dock.deleteLater()
    qtbot.waitUntil(handle.stopped.is_set, timeout=5000)
    from napari_d3ip.widgets import gc_hold

    qtbot.waitUntil(lambda: gc_hold.holders() == 0, timeout=2000)  # the run's GC hold ends too


def test_deferred_worker_start(make_napari_viewer_proxy):
    """begin(start=False) + start_worker(): once, and not after the dock closed."""
    viewer = make_napari_viewer_proxy()
    _owner, bar, _dock = _docked_bar(viewer)
    handle = FakeHandle()
    bar.begin(handle, "running", 5, start=False)
    assert bar.state.active and not handle.started
    assert bar.start_worker() and handle.started
    assert not bar.start_worker()  # only once
    bar.shutdown()
    late = FakeHandle()
    bar.begin(late, "again", 5, start=False)
    bar.shutdown()  # closed before its layer was built
    assert not bar.start_worker() and not late.started


def test_a_live_run_holds_the_gc_freeze_and_every_ending_releases_it(make_napari_viewer_proxy,
                                                                      qtbot):
    """begin holds it (gc_hold); end, fail and shutdown give it back (shutdown on the next
    event-loop turn, after napari's teardown)."""
    import gc

    from napari_d3ip.widgets import gc_hold

    viewer = make_napari_viewer_proxy()
    _owner, bar, _dock = _docked_bar(viewer)
    for ending in ("end", "fail", "shutdown"):
        bar.begin(FakeHandle(), "running", 5)
        assert gc_hold.holders() == 1 and gc.get_freeze_count() > 0
        if ending == "end":
            bar.end("done")
        elif ending == "fail":
            bar.fail("broken")
        else:
            bar.shutdown()
            assert gc_hold.holders() == 1  # not yet: napari's close still collects
        qtbot.waitUntil(lambda: gc_hold.holders() == 0, timeout=2000)
        assert gc.get_freeze_count() == 0, ending


def test_a_layer_removal_during_a_run_collects_with_nothing_frozen(make_napari_viewer_proxy,
                                                                    qtbot):
    """napari collects after a removal to free that layer's GPU objects at once: during a run
    that collection must see every object; the freeze comes back on the next turn."""
    import gc

    import numpy as np

    from napari_d3ip.widgets import gc_hold

    viewer = make_napari_viewer_proxy()
    _owner, bar, _dock = _docked_bar(viewer)
    layer = viewer.add_image(np.zeros((4, 8, 8), np.float32))
    seen = []
    viewer.layers.events.removed.connect(lambda e: seen.append(gc.get_freeze_count()),
                                         position="last")
    bar.begin(FakeHandle(), "running", 5)
    assert gc.get_freeze_count() > 0
    viewer.layers.remove(layer)
    assert seen == [0]
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=2000)
    bar.end("done")
    assert gc.get_freeze_count() == 0 and gc_hold.holders() == 0
