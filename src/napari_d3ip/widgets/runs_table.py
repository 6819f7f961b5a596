"""The runs table of the Reconstruct dock: one row per finished or cancelled run (method,
preset, the settings that differ, PSNR and SSIM when a reference exists, the data residual
otherwise, time); clicking a row selects its result layer."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("method", "preset", "PSNR", "SSIM", "residual", "time")


def _num(v: Any, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


class RunsTable(QTableWidget):
    """Runs side by side; `layers[i]` is row i's result layer."""

    def __init__(self, viewer: Any) -> None:
        super().__init__(0, len(COLUMNS))
        self.viewer = viewer
        self.layers: list[Any] = []
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        head = self.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        head.setMinimumSectionSize(20)
        self.setWordWrap(False)
        self.setMaximumHeight(140)
        self.setMinimumHeight(70)
        self.setToolTip("every run of this session; click a row to select its result layer")
        self.cellClicked.connect(lambda row, _col: self.select(row))

    def add_run(self, layer: Any, method: str, preset: str, settings: str,
                psnr: float | None, ssim: float | None, residual: float | None,
                seconds: float | None, status: str = "") -> int:
        """Append a row (newest on top); returns its row index."""
        from .runbar import fmt_seconds

        self.insertRow(0)
        self.layers.insert(0, layer)
        when = fmt_seconds(seconds) if seconds is not None else "–"
        cells = (method + (f" ({status})" if status else ""),
                 preset + (f" {settings}" if settings else ""),
                 _num(psnr, "{:.2f}"), _num(ssim, "{:.3f}"),
                 _num(residual, "{:.2e}"), when)
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            self.setItem(0, col, item)
        return 0

    def select(self, row: int) -> bool:
        """Select row `row`'s result layer in the viewer; False if it was removed."""
        if not 0 <= row < len(self.layers):
            return False
        layer = self.layers[row]
        with contextlib.suppress(Exception):
            if layer in self.viewer.layers:
                self.viewer.layers.selection.active = layer
                return True
        return False
