"""The run controls both run widgets share: Run/Cancel button, state label, progress bar with
ETA, napari's activity-dock progress, and a clean stop when the viewer closes.

One job: present a `RunState` and own the lifetime of the worker behind it. The widget that
uses it decides what a run is (`run_requested`) and feeds it steps.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from qtpy.QtCore import QEvent, QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from .common import notify_error
from .orthoviews import unwrap
from .state import Phase, RunState
from .workers import RunHandle


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s < 0:
        return "–"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class _CloseFilter(QObject):
    """Stops the run when the viewer's main window closes."""

    def __init__(self, bar: RunBar) -> None:
        super().__init__()
        self._bar = bar

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close:
            with contextlib.suppress(RuntimeError):
                self._bar.shutdown()
        return False


class RunBar(QWidget):
    """Run ↔ Cancel button + state label + progress bar; emits `run_requested`."""

    run_requested = Signal()

    def __init__(self, viewer: Any, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.what = what
        self.state = RunState()
        self.handle: RunHandle | None = None
        #: also report in napari's activity dock. napari animates a spinner in the status bar
        #: while a progress is open; under software OpenGL (Xvfb, VNC) each frame recomposes
        #: the window: measured ≈ 0.5 CPU core, taken from the run itself on a 2-core machine.
        self.activity = True
        self._pbar: Any = None
        self._task_id: Any = None

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
        with contextlib.suppress(AttributeError, RuntimeError):
            unwrap(viewer).window._qt_window.installEventFilter(self._close_filter)

    # -- button --------------------------------------------------------------------------
    def _on_button(self) -> None:
        if self.state.active:
            self.cancel()
        else:
            self.run_requested.emit()

    def cancel(self) -> None:
        """Ask the worker to stop after its current step."""
        if self.handle is not None and self.state.cancel():
            self.handle.cancel()

    # -- lifecycle driven by the owning widget -------------------------------------------
    def begin(self, handle: RunHandle, message: str = "", total: int = 1) -> None:
        """Start `handle` (signals already connected by the caller) and show Preparing.

        Progress bars stay determinate (0 of `total`): a "busy" animation repaints the whole
        window many times a second, which costs real CPU next to OpenGL canvases (and a lot
        under software rendering), i.e. it would slow down the run it is reporting on.
        """
        self.handle = handle
        self.state.start(message)
        total = max(int(total), 1)
        self.bar.setRange(0, total)
        self.bar.setValue(0)
        self.bar.setFormat("preparing…")
        self._open_pbar(total)
        self._register_task()
        handle.start()

    def step(self, phase: str, k: int, n: int, eta: float | None = None) -> bool:
        """Show step k (1-based) of n; False if the run is stopping (ignore the update)."""
        if not self.state.progress(phase, k, n):
            return False
        if self.bar.maximum() != n:
            self.bar.setRange(0, n)
        self.bar.setValue(k)
        self.bar.setFormat(f"%v/%m · ETA {fmt_seconds(eta)}" if eta is not None else "%v/%m")
        if self._pbar is not None:
            with contextlib.suppress(Exception):
                if self._pbar.total != n:
                    self._pbar.total = n
                self._pbar.set_description(f"{self.what}: {phase} {k}/{n}")
                self._pbar.update(k - self._pbar.n)
        return True

    def end(self, message: str = "") -> None:
        """The worker returned (a result, or None after a cancel)."""
        cancelled = self.state.phase is Phase.CANCELLING
        self.state.finish(message)
        if not cancelled:
            self.bar.setValue(self.bar.maximum())
            if self.bar.format() == "preparing…":
                self.bar.setFormat("%v/%m")
        self._close_pbar(failed=False, cancelled=cancelled)
        self.handle = None

    def fail(self, message: str, exc: BaseException | None = None) -> None:
        """The worker raised: Failed state, and a napari notification when `exc` is given."""
        self.state.fail(message)
        if exc is not None:
            notify_error(exc)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("failed")
        self._close_pbar(failed=True)
        self.handle = None

    def shutdown(self, timeout: float = 60.0) -> None:
        """Viewer closing / widget going away: stop the worker and wait for it (bounded)."""
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.stop(timeout)
        self._close_pbar(failed=False, cancelled=True)

    # -- rendering -----------------------------------------------------------------------
    def _render(self, state: RunState) -> None:
        self.label.setText(state.text())
        if state.phase is Phase.CANCELLING:
            self.button.setText("Cancelling…")
            self.button.setEnabled(False)
        elif state.active:
            self.button.setText("Cancel")
            self.button.setEnabled(True)
        else:
            self.button.setText("Run")
            self.button.setEnabled(True)
        color = {Phase.FAILED: "#e0505a", Phase.DONE: "#5cb85c"}.get(state.phase, "")
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
            with contextlib.suppress(Exception):
                self._pbar.close()
            self._pbar = None
        if self._task_id is not None:
            with contextlib.suppress(Exception):
                from napari.utils.task_status import Status

                status = Status.FAILED if failed else (Status.CANCELLED if cancelled
                                                       else Status.COMPLETED)
                unwrap(self.viewer).window._update_task_status(self._task_id, status)
            self._task_id = None

    def _register_task(self) -> None:
        """Tell napari a task runs: it asks before closing and calls our cancel if it closes."""
        try:
            from napari.utils.task_status import Status

            self._task_id = unwrap(self.viewer).window._register_task_status(
                "napari-d3ip", Status.BUSY, self.what, cancel_callback=self._cancel_on_close)
        except Exception:  # older napari: the close filter still stops the run
            self._task_id = None

    def _cancel_on_close(self) -> bool:
        self.shutdown()
        return True
