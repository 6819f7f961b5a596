"""'D3IP: Data': get a measurement into the viewer, simulated from a volume or read from .h5.

Simulating adds the measurement (sinogram, or k-space log-magnitude and its mask; hidden by
default since they live in another space) and A†y (FBP / zero-filled). The measurement layer
carries the `Measurement` itself in `metadata`, which is what 'D3IP: Reconstruct' uses. The
science (normalisation, operators, noise, geometry) is `measurement_builder.build_measurement`;
this widget only collects parameters and adds layers. The input layer is never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from .. import _layers as napari_layers
from .common import TURN_MS, error_text, notify_error, scrolling_layout
from .gc_hold import Hold, watch_removals
from .kind_settings import KindPages, make_control, page_defaults
from .state import ParamStore
from .workers import Prepared, function_worker, read_prepared, simulate_prepared


def defaults() -> dict[str, Any]:
    """The form's defaults: the kinds and their settings are declared once, in operators/
    (imported here, when a widget is made, so that loading the plugin stays torch-free)."""
    from ..operators import get_kind, kind_names
    from ..operators.kinds import NOISE

    kind = kind_names()[0]
    return {"kind": kind, **page_defaults(), "noise": get_kind(kind).defaults[NOISE.name],
            "seed": 0}


_SKIP_ROLES = {"measurement", "mask"}


class DataWidget(QWidget):
    """Pick a fully sampled image layer → Simulate; or Open a measurement file."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pending: list = []  # measurement layers still to add (one per event-loop turn)
        self._prepared: Prepared | None = None
        self._worker_done = False
        self.viewer = napari_viewer
        from ..operators import get_kind, kind_names
        from ..operators.kinds import NOISE

        self.store = ParamStore("data", defaults())
        self.worker: Any = None
        watch_removals(napari_viewer)
        self.added: list[Any] = []  # layers added by the last simulate/open
        self._images: list[Any] = []

        self.scroll, lay = scrolling_layout(self)  # everything scrolls: fits a 1000-pixel screen
        sim = QGroupBox("Simulate from a fully sampled volume")
        form = QFormLayout(sim)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.image = QComboBox()
        self.image.setToolTip("a 3D image layer (slices, H, W); its intensities are scaled "
                              "to [0, 1] and mapped back when saving")
        form.addRow("volume", self.image)
        self.kind = QComboBox()
        self.kind.addItems(kind_names())
        self.kind.setToolTip("; ".join(f"{k}: {get_kind(k).label}" for k in kind_names()))
        form.addRow("operator", self.kind)
        self.params = KindPages()  # each kind's settings, generated from its declaration
        self.kind.currentIndexChanged.connect(self.params.setCurrentIndex)
        form.addRow(self.params)
        self.noise = make_control(NOISE)
        form.addRow("noise", self.noise)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("fixes the mask and the noise")
        form.addRow("seed", self.seed)
        self.simulate_btn = QPushButton("Simulate")
        self.simulate_btn.clicked.connect(lambda _=False: self.simulate())
        form.addRow(self.simulate_btn)
        lay.addWidget(sim)

        from .open_options import OpenOptionsBox

        self.open_options = OpenOptionsBox()  # mask of a fully sampled MRI file, slices
        lay.addWidget(self.open_options)
        row = QHBoxLayout()
        self.open_btn = QPushButton("Open measurement (.h5)…")
        self.open_btn.clicked.connect(lambda _=False: self.open_measurement())
        row.addWidget(self.open_btn)
        self.defaults_btn = QPushButton("Restore defaults")
        self.defaults_btn.clicked.connect(self.restore_defaults)
        row.addWidget(self.defaults_btn)
        lay.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.set_values(self.store.load())
        ev = self.viewer.layers.events
        ev.inserted.connect(self._refresh_images)
        ev.removed.connect(self._refresh_images)
        self._refresh_images()

    # -- parameters ----------------------------------------------------------------------
    def control(self, kind: str, name: str) -> QWidget:
        """The control of a kind's setting (e.g. ("ct", "n_views"))."""
        return self.params.control(kind, name)

    def values(self) -> dict[str, Any]:
        return {"kind": self.kind.currentText(), **self.params.values(),
                "noise": self.noise.value(), "seed": self.seed.value()}

    def set_values(self, v: dict[str, Any]) -> None:
        self.kind.setCurrentIndex(max(self.kind.findText(str(v["kind"])), 0))
        self.params.setCurrentIndex(self.kind.currentIndex())
        self.params.set_values(v)
        self.noise.setValue(float(v["noise"]))
        self.seed.setValue(int(v["seed"]))

    def restore_defaults(self) -> None:
        self.set_values(self.store.restore_defaults())

    def operator_params(self) -> dict[str, Any]:
        """The `simulate` keyword parameters of the chosen operator."""
        return self.params.params(self.kind.currentText())

    # -- layer picker --------------------------------------------------------------------
    def _refresh_images(self, event: Any = None) -> None:
        try:
            current = self.current_image()
            images = [ly for ly in self.viewer.layers
                      if type(ly).__name__ == "Image" and ly.ndim == 3 and not ly.rgb
                      and ly.metadata.get(napari_layers.ROLE) not in _SKIP_ROLES]
            self._images = images
            self.image.blockSignals(True)
            self.image.clear()
            self.image.addItems([ly.name for ly in images])
            if current in images:
                self.image.setCurrentIndex(images.index(current))
            self.image.blockSignals(False)
        except RuntimeError:  # the widget was deleted while the viewer still emits
            pass

    def current_image(self) -> Any:
        i = self.image.currentIndex()
        return self._images[i] if 0 <= i < len(self._images) else None

    def select_image(self, name: str) -> None:
        i = self.image.findText(name)
        if i >= 0:
            self.image.setCurrentIndex(i)

    # -- actions -------------------------------------------------------------------------
    def _busy(self, busy: bool, text: str = "") -> None:
        self.simulate_btn.setEnabled(not busy)
        self.open_btn.setEnabled(not busy)
        self.status.setStyleSheet("")
        self.status.setText(text)

    def simulate(self) -> Any:
        """Simulate the measurement of the chosen layer in a worker; returns the worker."""
        layer = self.current_image()
        if layer is None:
            self.status.setText("⚠ no 3D image layer: open a volume or a sample first")
            return None
        if self.worker is not None:
            return None
        self.store.save(self.values())
        md = layer.metadata
        affine = md.get(napari_layers.AFFINE)
        if affine is None:
            affine = np.diag([*map(float, layer.scale[-3:]), 1.0])
        data = np.asarray(layer.data)  # read here (GUI thread); the worker never sees the layer
        w = function_worker(simulate_prepared, data, self.kind.currentText(), self.noise.value(),
                            self.seed.value(), self.operator_params(), layer.name,
                            affine=affine, intensity=md.get(napari_layers.INTENSITY))
        self._busy(True, f"simulating {self.kind.currentText()} of {layer.name}…")
        return self._start(w)

    def open_measurement(self, path: str | None = None) -> Any:
        """Read a measurement .h5 in a worker (a file dialog when `path` is None)."""
        if self.worker is not None:
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open a measurement", "",
                                                  "Measurement (*.h5 *.hdf5 *.mrd *.nxs *.nx)")
            if not path:
                return None
        self._busy(True, f"reading {path}…")
        options = self.open_options.options(seed=self.seed.value())
        return self._start(function_worker(read_prepared, str(path), options))

    def _start(self, w: Any) -> Any:
        self.worker = w
        hold = Hold()  # no full GC pass over the older objects until it ends (gc_hold)
        # on the worker, not this widget: it ends the hold even if the dock is gone by then
        w.finished.connect(lambda: hold.release())
        w.returned.connect(self._on_prepared)
        w.errored.connect(self._on_error)
        w.finished.connect(self._on_finished)
        w.start()
        return w

    def _on_prepared(self, p: Prepared) -> None:
        """Add the measurement's layers one per turn of the event loop: each napari add (and
        the views' display for it) costs a redraw, and the window repaints in between."""
        self.added = []
        self._pending = list(napari_layers.measurement_layers(p.measurement, p.name, p.pinv))
        self._prepared = p
        self._add_next()

    def _add_next(self) -> None:
        if self._pending:
            data, kwargs, kind = self._pending.pop(0)
            try:
                self.added.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
                QTimer.singleShot(TURN_MS, self._add_next)
            except RuntimeError:  # the dock or the viewer was closed in between: stop adding
                self._pending = []
            return
        p, self._prepared = self._prepared, None
        self._busy(False, f"added {napari_layers.describe(p.measurement)} of {p.name}: "
                          f"{', '.join(ly.name for ly in self.added)}")
        if self._worker_done:
            self._finish_worker()

    def _on_error(self, exc: Exception) -> None:
        self._busy(False, f"⚠ {error_text(exc)}")
        notify_error(exc)
        self.status.setStyleSheet("color: #e0505a")

    def _on_finished(self) -> None:
        # the worker's thread is done; it counts as finished once its layers are all added
        self._worker_done = True
        if self._prepared is None:
            self._finish_worker()

    def _finish_worker(self) -> None:
        self._worker_done = False
        self.worker = None
        self.simulate_btn.setEnabled(True)
        self.open_btn.setEnabled(True)
