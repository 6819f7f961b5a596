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
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QWidget,
)

from .. import _layers as napari_layers
from .common import error_text, notify_error, scrolling_layout
from .gc_hold import Hold, watch_removals
from .state import ParamStore
from .workers import Prepared, function_worker, read_prepared, simulate_prepared


def defaults() -> dict[str, Any]:
    """The form's defaults: the kinds and their settings are declared once, in operators/
    (imported here, when a widget is made, so that loading the plugin stays torch-free)."""
    from ..operators import KINDS
    from ..operators import SIMULATION_DEFAULTS as SIM

    return {"kind": KINDS[0], "n_views": SIM["ct"]["n_views"], "filter": SIM["ct"]["filter"],
            "mri_accel": SIM["mri"]["accel"], "mc_accel": SIM["mri-multicoil"]["accel"],
            "n_coils": SIM["mri-multicoil"]["n_coils"],
            "acs_fraction": SIM["mri-multicoil"]["acs_fraction"], "noise": SIM["ct"]["noise"],
            "seed": 0}


_SKIP_ROLES = {"measurement", "mask"}


class DataWidget(QWidget):
    """Pick a fully sampled image layer → Simulate; or Open a measurement file."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        from ..operators import KINDS

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
        self.kind.addItems(KINDS)
        self.kind.setToolTip("ct: sparse-view parallel beam; mri: single-coil Cartesian with a "
                             "Poisson-disc mask; mri-multicoil: lines mask, 8 coils, ESPIRiT")
        form.addRow("operator", self.kind)
        self.params = QStackedWidget()
        self.params.addWidget(self._ct_page())
        self.params.addWidget(self._mri_page())
        self.params.addWidget(self._mc_page())
        self.kind.currentIndexChanged.connect(self.params.setCurrentIndex)
        form.addRow(self.params)
        self.noise = QDoubleSpinBox()
        self.noise.setRange(0.0, 1.0)
        self.noise.setDecimals(4)
        self.noise.setSingleStep(0.005)
        self.noise.setToolTip("relative noise std (0.01 = 1% of the mean measured magnitude)")
        form.addRow("noise", self.noise)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("fixes the mask and the noise")
        form.addRow("seed", self.seed)
        self.simulate_btn = QPushButton("Simulate")
        self.simulate_btn.clicked.connect(lambda _=False: self.simulate())
        form.addRow(self.simulate_btn)
        lay.addWidget(sim)

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

    # -- parameter pages -----------------------------------------------------------------
    def _ct_page(self) -> QWidget:
        from ..operators.ct import FILTERS

        w = QWidget()
        f = QFormLayout(w)
        f.setContentsMargins(0, 0, 0, 0)
        self.n_views = QSpinBox()
        self.n_views.setRange(1, 2000)
        self.n_views.setToolTip("projection angles over 180°")
        f.addRow("views", self.n_views)
        self.filter = QComboBox()
        self.filter.addItems(list(FILTERS))
        self.filter.setToolTip("FBP filter used for A†y")
        f.addRow("FBP filter", self.filter)
        return w

    def _mri_page(self) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        f.setContentsMargins(0, 0, 0, 0)
        self.mri_accel = QDoubleSpinBox()
        self.mri_accel.setRange(1.0, 64.0)
        self.mri_accel.setToolTip("acceleration R of the 2D Poisson-disc mask")
        f.addRow("R", self.mri_accel)
        return w

    def _mc_page(self) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        f.setContentsMargins(0, 0, 0, 0)
        self.mc_accel = QDoubleSpinBox()
        self.mc_accel.setRange(1.0, 32.0)
        self.mc_accel.setToolTip("acceleration R of the uniform lines mask")
        f.addRow("R", self.mc_accel)
        self.n_coils = QSpinBox()
        self.n_coils.setRange(1, 64)
        f.addRow("coils", self.n_coils)
        self.acs_fraction = QDoubleSpinBox()
        self.acs_fraction.setRange(0.0, 1.0)
        self.acs_fraction.setDecimals(3)
        self.acs_fraction.setSingleStep(0.01)
        self.acs_fraction.setToolTip("fraction of central (ACS) lines, used for ESPIRiT maps")
        f.addRow("ACS fraction", self.acs_fraction)
        return w

    def values(self) -> dict[str, Any]:
        return {"kind": self.kind.currentText(), "n_views": self.n_views.value(),
                "filter": self.filter.currentText(), "mri_accel": self.mri_accel.value(),
                "mc_accel": self.mc_accel.value(), "n_coils": self.n_coils.value(),
                "acs_fraction": self.acs_fraction.value(), "noise": self.noise.value(),
                "seed": self.seed.value()}

    def set_values(self, v: dict[str, Any]) -> None:
        self.kind.setCurrentIndex(max(self.kind.findText(str(v["kind"])), 0))
        self.params.setCurrentIndex(self.kind.currentIndex())
        self.n_views.setValue(int(v["n_views"]))
        self.filter.setCurrentIndex(max(self.filter.findText(str(v["filter"])), 0))
        self.mri_accel.setValue(float(v["mri_accel"]))
        self.mc_accel.setValue(float(v["mc_accel"]))
        self.n_coils.setValue(int(v["n_coils"]))
        self.acs_fraction.setValue(float(v["acs_fraction"]))
        self.noise.setValue(float(v["noise"]))
        self.seed.setValue(int(v["seed"]))

    def restore_defaults(self) -> None:
        self.set_values(self.store.restore_defaults())

    def operator_params(self) -> dict[str, Any]:
        """The `simulate` keyword parameters of the chosen operator."""
        kind = self.kind.currentText()
        if kind == "ct":
            return {"n_views": self.n_views.value(), "filter": self.filter.currentText()}
        if kind == "mri":
            return {"accel": self.mri_accel.value()}
        return {"accel": self.mc_accel.value(), "n_coils": self.n_coils.value(),
                "acs_fraction": self.acs_fraction.value()}

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
                                                  "Measurement (*.h5 *.hdf5 *.mrd *.nxs)")
            if not path:
                return None
        self._busy(True, f"reading {path}…")
        return self._start(function_worker(read_prepared, str(path)))

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
        self.added = []
        for data, kwargs, kind in napari_layers.measurement_layers(p.measurement, p.name, p.pinv):
            self.added.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        self._busy(False, f"added {napari_layers.describe(p.measurement)} of {p.name}: "
                          f"{', '.join(ly.name for ly in self.added)}")

    def _on_error(self, exc: Exception) -> None:
        self._busy(False, f"⚠ {error_text(exc)}")
        notify_error(exc)
        self.status.setStyleSheet("color: #e0505a")

    def _on_finished(self) -> None:
        self.worker = None
        self.simulate_btn.setEnabled(True)
        self.open_btn.setEnabled(True)
