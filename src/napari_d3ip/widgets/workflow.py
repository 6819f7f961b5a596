"""'D3IP': the whole job in one dock, as two steps: 1 Data (simulate or open a measurement),
2 Reconstruct (method, Run, compare, Save). One dock instead of two stacked ones, so that at
1600x1000 the Reconstruct step gets the dock's full height: Run, its progress, the result line
and Save stay in view without scrolling. A new measurement moves the dock to step 2."""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from .. import _layers as napari_layers
from .common import one_per_turn
from .data_widget import DataWidget
from .reconstruct_widget import ReconstructWidget

#: what the two steps need before they can be built (the operator kinds, and torch under them):
#: about 2 s to import in a napari session that has not loaded torch yet
LIBRARIES = ("torch", "napari_d3ip.operators")


#: the dock's width (px) when napari adds it: what the two steps need side by side with the
#: canvas at 1600x1000. The steps are built after the dock is added, so the width cannot come
#: from their size hints (the placeholders' hint would make a 250 px dock that cuts them off).
DOCK_WIDTH = 390


def libraries_loaded() -> bool:
    return all(name in sys.modules for name in LIBRARIES)


def _import_libraries() -> None:
    for name in LIBRARIES:
        importlib.import_module(name)


class WorkflowWidget(QWidget):
    """Tabs '1 Data' and '2 Reconstruct' around the two step widgets.

    Opening the dock must not freeze the window: torch is imported off the GUI thread when the
    session has not loaded it yet (it froze the window ~2 s), and the two steps are built on
    separate turns of the event loop; until then each tab says what it is waiting for.
    `ready` is True, and `data` / `reconstruct` are set, once both are built."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.data: DataWidget | None = None
        self.reconstruct: ReconstructWidget | None = None
        self.loader = None
        for title, tip in (("1 Data", "simulate a measurement from a volume, or open one"),
                           ("2 Reconstruct", "choose a method, run, compare runs, save")):
            waiting = QLabel("loading the reconstruction libraries…")
            waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
            waiting.setStyleSheet("color: gray")
            self.tabs.setTabToolTip(self.tabs.addTab(waiting, title), tip)
        lay.addWidget(self.tabs)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        if libraries_loaded():
            self._build()
        else:
            from .gc_hold import Hold
            from .workers import function_worker

            self.loader = function_worker(_import_libraries)
            hold = Hold()  # the import makes ~10^5 objects: no full GC pass over napari's meanwhile
            self.loader.finished.connect(lambda: hold.release())
            self.loader.returned.connect(self._build)
            self.loader.errored.connect(self._failed)
            # from the next turn: napari's add of the dock and its first paint must not share
            # the interpreter lock with the import (that tripled the add's 0.2 s stall)
            one_per_turn(self, [self.loader.start])

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(DOCK_WIDTH, super().sizeHint().height())

    @property
    def ready(self) -> bool:
        return self.data is not None and self.reconstruct is not None

    def _build(self) -> None:
        one_per_turn(self, [self._build_data, self._build_reconstruct])

    def _failed(self, exc: Exception) -> None:
        """The libraries did not import: say so in both tabs (the plugin cannot work)."""
        with contextlib.suppress(RuntimeError):  # this widget was deleted
            for i in range(self.tabs.count()):
                page = self.tabs.widget(i)
                if isinstance(page, QLabel):
                    page.setText(f"⚠ the reconstruction libraries did not load: {exc}\n"
                                 "reinstall napari-d3ip (see its README)")
                    page.setWordWrap(True)

    def _build_data(self) -> None:
        self.data = DataWidget(self.viewer)
        self._replace(0, self.data)

    def _build_reconstruct(self) -> None:
        self.reconstruct = ReconstructWidget(self.viewer)
        self._replace(1, self.reconstruct)

    def _replace(self, index: int, page: QWidget) -> None:
        current = self.tabs.currentIndex()
        title, tip = self.tabs.tabText(index), self.tabs.tabToolTip(index)
        old = self.tabs.widget(index)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, page, title)
        self.tabs.setTabToolTip(index, tip)
        self.tabs.setCurrentIndex(current)
        old.deleteLater()

    def _on_inserted(self, event: Any) -> None:
        """A measurement arrived: go to the Reconstruct step."""
        layer = getattr(event, "value", None)
        with contextlib.suppress(RuntimeError):  # this widget was deleted
            if (napari_layers.MEASUREMENT in (getattr(layer, "metadata", None) or {})
                    and self.reconstruct is not None):
                self.tabs.setCurrentWidget(self.reconstruct)
