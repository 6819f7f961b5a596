"""Small pieces the dock widgets share: prior picker, device list, error text, deferred steps."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

#: milliseconds between two deferred GUI steps: a real timer interval, not 0, so that the event
#: loop paints and handles input between them (zero-delay calls chain back to back in Qt 6)
TURN_MS = 15


def one_per_turn(owner: QWidget, steps: list[Callable[[], Any]]) -> None:
    """Run `steps` in order, one per turn of the event loop (TURN_MS apart), so the window
    repaints between them; nothing runs once `owner` is deleted. A step that fails because a
    view is gone (RuntimeError, AttributeError) is skipped. No timer object is made per call:
    a timer parented to `owner` could be deleted with it while its own timeout ran (a
    segfault in the tests' teardown)."""
    pending = list(steps)

    def run() -> None:
        try:
            owner.objectName()  # raises RuntimeError once the owner's C++ side is gone
        except RuntimeError:
            return
        with contextlib.suppress(RuntimeError, AttributeError):
            pending.pop(0)()
        if pending:
            QTimer.singleShot(TURN_MS, run)

    if pending:
        QTimer.singleShot(TURN_MS, run)


def available_devices() -> list[str]:
    """'auto', 'cpu', and 'cuda' only when a CUDA GPU is present."""
    out = ["auto", "cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            out.append("cuda")
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return out


def camera_of(viewer):
    """The viewer's camera: `viewer.scene.camera` (napari >= 0.9), else `viewer.camera`."""
    scene = getattr(viewer, "scene", None)
    cam = getattr(scene, "camera", None) if scene is not None else None
    return cam if cam is not None else viewer.camera


def shipped() -> list[str]:
    try:
        from ..core.prior import shipped_priors

        return shipped_priors()
    except Exception:  # a broken install should still show the widget
        return []


def error_text(exc: BaseException) -> str:
    """One line a user can act on: the message of the deepest cause, with its type."""
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    msg = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {msg}" if msg else type(cause).__name__


def notify_error(exc: BaseException) -> None:
    """Show a worker's exception as a napari error notification (with its traceback).

    napari's own thread_worker re-raises errors in the GUI thread for its excepthook; our
    workers handle `errored` themselves, so they hand the error to napari explicitly.
    """
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    try:
        from napari.utils.notifications import notification_manager

        notification_manager.receive_error(type(cause), cause, cause.__traceback__)
    except Exception:  # never let reporting an error raise another one
        pass


class PriorPicker(QWidget):
    """Editable combo of shipped prior names plus any .safetensors path, and a Browse button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.addItems(["auto", *shipped()])
        self.combo.setToolTip("auto: the shipped prior trained at the slices' pixel scale; or a "
                              "shipped prior, or the path of a .safetensors file (its .json "
                              "card beside it)")
        lay.addWidget(self.combo, 1)
        self.browse = QPushButton("…")
        self.browse.setFixedWidth(28)
        self.browse.setToolTip("choose a prior file (.safetensors)")
        self.browse.clicked.connect(self._browse)
        lay.addWidget(self.browse)

    def value(self) -> str:
        return self.combo.currentText().strip()

    def set_value(self, v: str) -> None:
        if not v:
            return
        if self.combo.findText(v) < 0:
            self.combo.addItem(v)
        self.combo.setCurrentText(v)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a prior", str(Path.home()),
                                              "Prior weights (*.safetensors)")
        if path:
            self.set_value(path)


def scroll_area(flush: bool = True) -> tuple[QScrollArea, QVBoxLayout]:
    """A frameless, vertical-only scroll area and the layout inside it (margin-free if `flush`)."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    content = QWidget()
    scroll.setWidget(content)
    lay = QVBoxLayout(content)
    if flush:
        lay.setContentsMargins(0, 0, 0, 0)
    return scroll, lay


def scrolling_layout(widget: QWidget) -> tuple[QScrollArea, QVBoxLayout]:
    """Give `widget` a vertical scroll area filling it; returns (scroll area, layout inside),
    so a dock fits a 1000-pixel-high screen whatever its sections."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll, lay = scroll_area(flush=False)
    outer.addWidget(scroll)
    return scroll, lay
