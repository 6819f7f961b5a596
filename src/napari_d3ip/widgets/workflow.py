"""'D3IP': the whole job in one dock, as two steps: 1 Data (simulate or open a measurement),
2 Reconstruct (method, Run, compare, Save). One dock instead of two stacked ones, so that at
1600x1000 the Reconstruct step gets the dock's full height: Run, its progress, the result line
and Save stay in view without scrolling. A new measurement moves the dock to step 2."""

from __future__ import annotations

import contextlib
from typing import Any

from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from .. import _layers as napari_layers
from .data_widget import DataWidget
from .reconstruct_widget import ReconstructWidget


class WorkflowWidget(QWidget):
    """Tabs '1 Data' and '2 Reconstruct' around the two step widgets."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.data = DataWidget(napari_viewer)
        self.reconstruct = ReconstructWidget(napari_viewer)
        self.tabs.addTab(self.data, "1 Data")
        self.tabs.addTab(self.reconstruct, "2 Reconstruct")
        self.tabs.setTabToolTip(0, "simulate a measurement from a volume, or open one")
        self.tabs.setTabToolTip(1, "choose a method, run, compare runs, save")
        lay.addWidget(self.tabs)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)

    def _on_inserted(self, event: Any) -> None:
        """A measurement arrived: go to the Reconstruct step."""
        layer = getattr(event, "value", None)
        with contextlib.suppress(RuntimeError):  # this widget was deleted
            if napari_layers.MEASUREMENT in (getattr(layer, "metadata", None) or {}):
                self.tabs.setCurrentWidget(self.reconstruct)
