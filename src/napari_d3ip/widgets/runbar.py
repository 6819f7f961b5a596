"""The run controls both run widgets share: Run/Cancel button, state label, progress bar with
elapsed time and ETA, napari's activity-dock progress (off by default), and a stop at once
when the viewer or the dock closes (public napari and Qt API only).

One job: a view of a `run_controller.RunController` (the Qt-free lifecycle: state, worker
handle, clock, ETA, progress line). The bar renders the controller's signals and connects the
window's and the dock's closing to `shutdown`; the widget that uses it decides what a run is
(`run_requested`) and feeds it steps.
"""

from __future__ import annotations

import contextlib
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

from ..run_controller import Handle, Phase, RunController, RunState, fmt_seconds  # noqa: F401
from . import gc_hold
from .common import notify_error

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


def _next_turn(fn: Any) -> None:
    """Run `fn` on the next turn of the event loop; a lambda, because PyQt keeps a bound
    method's object only weakly (the GC hold it releases must live until then)."""
    QTimer.singleShot(0, lambda: fn())


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
        self.controller = RunController(hold=gc_hold.Hold if gc_hold.enabled() else None,
                                        later=_next_turn)
        #: also report in napari's activity dock (off by default). napari animates a spinner
        #: in the status bar while a progress is open, and its progress bar runs the Qt event
        #: loop inside every update (QApplication.processEvents): under software OpenGL (Xvfb,
        #: VNC) a step was ~7x slower with it. When on, it is updated at most once a second.
        self.activity = False
        self._pbar: Any = None
        self._pbar_at = 0.0
        self._pbar_phase = ""
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self.controller.tick)
        self._build()
        self.state.changed.connect(self._render)
        self.controller.progress.connect(self._show_progress)
        self._close_filter = _CloseFilter(self)
        self._owner: weakref.ref | None = None
        self._dock: tuple[weakref.ref, Any] | None = None  # (dock, its destroyed slot)
        if gc_hold.enabled():
            gc_hold.watch_removals(viewer)  # a layer removal's collection sees every object

    def _build(self) -> None:
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

    # -- the controller's state, as the widgets read it ----------------------------------------
    @property
    def state(self) -> RunState:
        return self.controller.state

    @property
    def handle(self) -> Handle | None:
        return self.controller.handle

    def elapsed(self) -> float:
        return self.controller.elapsed()

    # -- button --------------------------------------------------------------------------
    def _on_button(self) -> None:
        if self.state.active:
            if self.controller.since_start() < debounce_seconds():
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
        if owner is None:
            return
        with contextlib.suppress(RuntimeError):
            dock = enclosing_dock(owner)
            if dock is None:
                return
            controller, me = self.controller, weakref.ref(self)

            def on_destroyed(*_: Any) -> None:
                # the dock is mid-destruction (and this bar with it when the whole window
                # goes): stop the worker now, touch no widget; the labels later, if still there
                handle = controller.handle
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

    # -- lifecycle: the controller's, with what only a window has ---------------------------
    def refuse(self, text: str) -> None:
        """A Run that did not start: `text` (the reason and the fix) in the status line."""
        self.controller.refuse(text)

    def cancel(self) -> None:
        """Ask the worker to stop after its current step."""
        self.controller.cancel()

    def begin(self, handle: Handle, message: str = "", total: int = 1, start: bool = True) -> None:
        """Show Preparing and (with `start`) start `handle`, its signals already connected
        by the caller; see `RunController.begin`. Progress bars stay determinate (0 of
        `total`): a "busy" animation repaints the whole window many times a second, which
        costs real CPU next to OpenGL canvases (and a lot under software rendering)."""
        self.controller.begin(handle, message, total, start=False)
        self._open_pbar(max(int(total), 1))
        self._watch_dock()  # docked by now: its destroyed signal ends the run
        self._watch_window()
        self._clock.start()
        if start:
            self.start_worker()

    def start_worker(self) -> bool:
        """Start the worker of a run begun with `start=False` (`RunController.start_worker`)."""
        return self.controller.start_worker()

    def step(self, phase: str, k: int, n: int, eta: float | None = None) -> bool:
        """Show step k (1-based) of n; False if the run is stopping (ignore the update)."""
        if not self.controller.step(phase, k, n, eta):
            return False
        self._update_pbar(phase, k, n)
        return True

    def end(self, message: str = "") -> None:
        """The worker returned (a result, or None after a cancel)."""
        self.controller.end(message)

    def fail(self, message: str, exc: BaseException | None = None) -> None:
        """The worker raised: Failed state, and a napari notification when `exc` is given."""
        self.controller.fail(message)
        if exc is not None:
            notify_error(exc)

    def shutdown(self, timeout: float = 0.0) -> None:
        """Viewer closing / dock closed: cancel the worker at once and do not wait for it
        (it stops by itself between two network batches); the GUI never freezes here."""
        self.controller.shutdown(timeout)
        self._after_run()

    def _after_run(self) -> None:
        self._unwatch_dock()
        self._clock.stop()
        self._close_pbar()

    # -- rendering -----------------------------------------------------------------------
    def _show_progress(self, value: int, maximum: int, text: str) -> None:
        if self.bar.maximum() != maximum:
            self.bar.setRange(0, maximum)
        self.bar.setValue(value)
        self.bar.setFormat(text)

    def _render(self, state: RunState) -> None:
        if not state.active:
            self._after_run()
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

    # -- napari's activity dock ---------------------------------------------------------------
    def _open_pbar(self, total: int) -> None:
        self._close_pbar()
        if not self.activity:
            return
        try:
            from napari.utils import progress

            self._pbar = progress(total=total, desc=f"{self.what}: preparing")
        except Exception:  # the activity dock is a nicety
            self._pbar = None

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

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            pbar, self._pbar = self._pbar, None
            with contextlib.suppress(Exception):
                pbar.close()
