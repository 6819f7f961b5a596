"""The run controls both run widgets share: Run/Cancel button, state label, progress bar with
elapsed time and ETA, napari's activity-dock progress (off by default), and a stop at once
when the viewer or the dock closes (public napari and Qt API only).

One job: present a `RunState` and own the lifetime of the worker behind it. The widget that
uses it decides what a run is (`run_requested`) and feeds it steps.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .common import notify_error
from .gc_hold import Hold, watch_removals
from .state import Phase, RunState
from .workers import RunHandle


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s < 0:
        return "–"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


#: seconds after Run during which a second click is ignored (a double click must not cancel);
#: at least the desktop's double-click interval (Qt's default: 0.4 s)
DEBOUNCE = 0.6


def debounce_seconds() -> float:
    with contextlib.suppress(Exception):
        from qtpy.QtWidgets import QApplication

        return max(DEBOUNCE, QApplication.doubleClickInterval() / 1000.0 + 0.1)
    return DEBOUNCE


class _CloseFilter(QObject):
    """Stops the run when the viewer's main window closes (its Close event), or when the
    widget that owns the run leaves its dock before the dock is known (a ParentChange to no
    parent). Public Qt API only."""

    def __init__(self, bar: RunBar) -> None:
        super().__init__()
        self._bar = weakref.ref(bar)  # the filter must not keep the widget (and viewer) alive

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        kind = event.type()
        if kind not in (QEvent.Type.Close, QEvent.Type.ParentChange):
            return False
        with contextlib.suppress(RuntimeError):
            bar = self._bar()
            if bar is not None and (kind == QEvent.Type.Close or obj.parent() is None):
                bar.shutdown()
        return False


def _shutdown_later(ref: weakref.ref) -> None:
    with contextlib.suppress(RuntimeError):  # the bar's C++ object may be gone by now
        bar = ref()
        if bar is not None:
            bar.shutdown()


def enclosing_dock(widget: QWidget) -> QDockWidget | None:
    """The QDockWidget `widget` sits in (napari's `add_dock_widget` wraps it in one), if any."""
    w = widget.parentWidget()
    while w is not None:
        if isinstance(w, QDockWidget):
            return w
        w = w.parentWidget()
    return None


class RunBar(QWidget):
    """Run ↔ Cancel button + state label + progress bar; emits `run_requested`."""

    run_requested = Signal()

    def __init__(self, viewer: Any, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.what = what
        self.state = RunState()
        self.handle: RunHandle | None = None
        #: also report in napari's activity dock (off by default). napari animates a spinner
        #: in the status bar while a progress is open, and its progress bar runs the Qt event
        #: loop inside every update (QApplication.processEvents): under software OpenGL (Xvfb,
        #: VNC) a step was ~7x slower with it. When on, it is updated at most once a second.
        self.activity = False
        self._pbar: Any = None
        self._pbar_at = 0.0
        self._pbar_phase = ""
        self._started_at = 0.0
        self._step_at = 0.0
        self._eta: float | None = None
        self._k = 0
        self._n = 1
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.button = QPushButton("Run")
        self.button.setMinimumHeight(28)
        self.button.clicked.connect(self._on_button)
        row.addWidget(self.button, 1)
        lay.addLayout(row)
        self.label = QLabel("Idle")
        self.label.setWordWrap(True)
        lay.addWidget(self.label)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.bar.setTextVisible(True)
        lay.addWidget(self.bar)
        self.state.connect(self._render)

        self._close_filter = _CloseFilter(self)
        self._owner: weakref.ref | None = None
        self._dock: tuple[weakref.ref, Any] | None = None  # (dock, its destroyed slot)
        self._worker_started = False
        self._gc: Hold | None = None  # the run's hold on the GC freeze (gc_hold)
        watch_removals(viewer)  # a layer removal's collection still sees every object

    # -- button --------------------------------------------------------------------------
    def _on_button(self) -> None:
        if self.state.active:
            if time.monotonic() - self._started_at < debounce_seconds():
                return  # the second click of a double click on Run
            self.cancel()
        else:
            self.run_requested.emit()

    def watch(self, owner: QWidget) -> None:
        """Cancel the run when `owner` (the dock widget's content) is closed or undocked:
        its dock's `destroyed` signal (napari deletes a dock closed with its x button), and,
        until the dock is known, `owner` leaving its parent."""
        self._owner = weakref.ref(owner)
        owner.installEventFilter(self._close_filter)  # installing twice activates it once

    def _watch_dock(self) -> None:
        """While a run is live, the dock's `destroyed` signal stops it (connected at begin,
        disconnected when the run ends, so an idle bar never runs code in a dying window)."""
        self._unwatch_dock()
        owner = self._owner() if self._owner is not None else None
        if owner is None or not self.state.active:
            return
        with contextlib.suppress(RuntimeError):
            dock = enclosing_dock(owner)
            if dock is None:
                return
            me = weakref.ref(self)

            def on_destroyed(*_: Any) -> None:
                # the dock is mid-destruction (and this bar with it when the whole window
                # goes): stop the worker now, touch no widget; the labels later, if still there
                bar = me()
                handle = getattr(bar, "handle", None)
                if handle is None:
                    return
                with contextlib.suppress(Exception):
                    handle.stop(0.0)
                QTimer.singleShot(0, lambda: _shutdown_later(me))

            dock.destroyed.connect(on_destroyed)
            self._dock = (weakref.ref(dock), on_destroyed)

    def _unwatch_dock(self) -> None:
        watched, self._dock = self._dock, None
        if watched is None:
            return
        dock = watched[0]()
        if dock is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                dock.destroyed.disconnect(watched[1])

    def _watch_window(self) -> None:
        """The top-level window the bar lives in (napari's main window once docked): its
        Close event cancels the run (Qt's QWidget.window(), no private napari API)."""
        with contextlib.suppress(RuntimeError):
            top = self.window()
            if top is not None and top is not self:
                self.watch(top)

    def refuse(self, text: str) -> None:
        """A Run that did not start: `text` (the reason and the fix) in the status line."""
        self.state.note(text)

    def cancel(self) -> None:
        """Ask the worker to stop after its current step."""
        if self.handle is not None and self.state.cancel():
            self.handle.cancel()

    # -- lifecycle driven by the owning widget -------------------------------------------
    def begin(self, handle: RunHandle, message: str = "", total: int = 1,
              start: bool = True) -> None:
        """Start `handle` (signals already connected by the caller) and show Preparing.

        With `start=False` the caller starts the worker later with `start_worker()` (after
        the GUI work a run needs, e.g. building its result layer: done before the worker
        competes with it for the interpreter, that work stalls the window less).

        Progress bars stay determinate (0 of `total`): a "busy" animation repaints the whole
        window many times a second, which costs real CPU next to OpenGL canvases (and a lot
        under software rendering), i.e. it would slow down the run it is reporting on.
        """
        self.handle = handle
        self._release_gc()
        self._gc = Hold()  # no full GC pass over what existed before the run (gc_hold)
        self._started_at = self._step_at = time.monotonic()
        self._eta, self._k, self._n = None, 0, max(int(total), 1)
        self.state.start(message)
        total = max(int(total), 1)
        self.bar.setRange(0, total)
        self.bar.setValue(0)
        self.bar.setFormat("preparing, then step 1…")
        self._open_pbar(total)
        self._watch_dock()  # docked by now: its destroyed signal ends the run
        self._watch_window()
        self._clock.start()
        self._worker_started = False
        if start:
            self.start_worker()

    def start_worker(self) -> bool:
        """Start the worker of a run begun with `start=False`; False when the dock or the
        window was closed in between, or when it has started already. A run cancelled in
        between still starts: its worker sees the cancel at once and ends the run."""
        handle = self.handle
        if handle is None or self._worker_started:
            return False
        self._worker_started = True
        handle.start()
        return True

    def elapsed(self) -> float:
        return time.monotonic() - self._started_at if self.state.active else 0.0

    def _tick(self) -> None:
        """Once a second: the clock runs during a long step (the first one loads the prior)."""
        if not self.state.running:
            return
        since = time.monotonic() - self._step_at
        if self._k == 0:
            self.bar.setFormat(f"preparing, then step 1… {fmt_seconds(self.elapsed())} "
                               "elapsed (ETA after the first step)")
        else:
            eta = None if self._eta is None else max(self._eta - since, 0.0)
            self.bar.setFormat(f"%v/%m · {fmt_seconds(self.elapsed())} elapsed · ETA "
                               f"{fmt_seconds(eta)}")

    def step(self, phase: str, k: int, n: int, eta: float | None = None) -> bool:
        """Show step k (1-based) of n; False if the run is stopping (ignore the update)."""
        if not self.state.progress(phase, k, n):
            return False
        self._k, self._n, self._eta, self._step_at = k, n, eta, time.monotonic()
        if self.bar.maximum() != n:
            self.bar.setRange(0, n)
        self.bar.setValue(k)
        self.bar.setFormat(f"%v/%m · {fmt_seconds(self.elapsed())} elapsed · ETA "
                           f"{fmt_seconds(eta)}" if eta is not None else "%v/%m")
        self._update_pbar(phase, k, n)
        return True

    def _update_pbar(self, phase: str, k: int, n: int) -> None:
        """napari's progress runs processEvents in every call: at most once a second (and
        at the last step), never re-entered from inside itself."""
        if self._pbar is None:
            return
        now = time.monotonic()
        if k < n and now - self._pbar_at < 1.0 and phase == self._pbar_phase:
            return
        pbar, self._pbar = self._pbar, None  # a nested update finds no progress bar
        self._pbar_at = now
        try:
            with contextlib.suppress(Exception):
                if pbar.total != n:
                    pbar.total = n
                if phase != self._pbar_phase:
                    self._pbar_phase = phase
                    pbar.set_description(f"{self.what}: {phase}")
                pbar.update(k - pbar.n)
        finally:
            if self._pbar is None and self.state.active:
                self._pbar = pbar
            elif self._pbar is None:  # the run ended while napari ran the event loop
                with contextlib.suppress(Exception):
                    pbar.close()

    def end(self, message: str = "") -> None:
        """The worker returned (a result, or None after a cancel)."""
        cancelled = self.state.phase is Phase.CANCELLING
        self._clock.stop()
        self.state.finish(message)
        if not cancelled:
            self.bar.setValue(self.bar.maximum())
            if self.bar.format() == "preparing…":
                self.bar.setFormat("%v/%m")
        self._close_pbar(failed=False, cancelled=cancelled)
        self._unwatch_dock()
        self.handle = None
        self._release_gc()

    def fail(self, message: str, exc: BaseException | None = None) -> None:
        """The worker raised: Failed state, and a napari notification when `exc` is given."""
        self._clock.stop()
        self.state.fail(message)
        if exc is not None:
            notify_error(exc)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("failed")
        self._close_pbar(failed=True)
        self._unwatch_dock()
        self.handle = None
        self._release_gc()

    def shutdown(self, timeout: float = 0.0) -> None:
        """Viewer closing / dock closed: cancel the worker at once and do not wait for it
        (it stops by itself between two network batches); the GUI never freezes here."""
        handle, self.handle = self.handle, None
        self._release_gc(later=True)  # first: no Qt call, so it holds even if the bar's C++ is gone
        self._unwatch_dock()
        self._clock.stop()
        if handle is not None:
            handle.stop(timeout)
            with contextlib.suppress(Exception):
                if self.state.running:
                    self.state.cancel()
                if self.state.active:
                    self.state.finish("cancelled: the window or the dock was closed")
        self._close_pbar(failed=False, cancelled=True)

    def _release_gc(self, later: bool = False) -> None:
        """End this bar's hold on the GC freeze; `later`: on the next event-loop turn, so that
        the collections napari makes while it tears the window down still skip the frozen
        objects (a plain function: the bar may be gone by then)."""
        hold, self._gc = self._gc, None
        if hold is None:
            return
        if later:  # a lambda: PyQt keeps a bound method's object only weakly
            QTimer.singleShot(0, lambda: hold.release())
        else:
            hold.release()

    # -- rendering -----------------------------------------------------------------------
    def _render(self, state: RunState) -> None:
        self.label.setText(state.text())
        if state.phase is Phase.CANCELLING:
            self.button.setText("Cancelling…")
            self.button.setEnabled(False)
        elif state.active:
            self.button.setText("Cancel")
            self.button.setToolTip("stop after the current step (a second click within "
                                   f"{debounce_seconds():.1f} s of Run is ignored)")
            self.button.setEnabled(True)
        else:
            self.button.setText("Run")
            self.button.setEnabled(True)
        color = {Phase.FAILED: "#e0505a", Phase.DONE: "#5cb85c"}.get(state.phase, "")
        if state.notice:
            color = "#f0ad4e"
        self.label.setStyleSheet(f"color: {color}" if color else "")

    # -- napari integration (activity dock, close confirmation) ---------------------------
    def _open_pbar(self, total: int) -> None:
        self._close_pbar()
        if not self.activity:
            return
        try:
            from napari.utils import progress

            self._pbar = progress(total=total, desc=f"{self.what}: preparing")
        except Exception:  # the activity dock is a nicety
            self._pbar = None

    def _close_pbar(self, failed: bool = False, cancelled: bool = False) -> None:
        if self._pbar is not None:
            pbar, self._pbar = self._pbar, None
            with contextlib.suppress(Exception):
                pbar.close()
