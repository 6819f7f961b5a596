"""'Prior samples': draw N unconditional samples from a prior into an image layer.

A quick look at what a prior has learned (ellipse phantoms for the shipped one) before using
it for reconstruction. The sampling runs in a thread worker; the layer updates ~2×/s.

The samples are one 2D montage layer placed at the centre of the current view: a 2D layer is
drawn at every slice of a 3D viewer, so it is visible where the user is looking even with a
brain loaded (a stack of N slices sat at world slices 0..N-1, outside the brain's current
slice). The (N, H, W) stack itself is in the layer's metadata ("d3ip_samples").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QPushButton, QSpinBox, QVBoxLayout, QWidget

from .. import _layers as napari_layers
from .common import PriorPicker, available_devices, camera_of, error_text, shipped
from .runbar import RunBar
from .state import ParamStore
from .workers import SampleUpdate, prior_samples_worker

DEFAULTS: dict[str, Any] = {"prior": "ellipses-64", "n": 16, "nfe": 50, "seed": 0,
                            "device": "auto"}


class PriorSamplesWidget(QWidget):
    """Prior, N, NFE, seed, device → Run/Cancel → a stack of N samples."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.store = ParamStore("prior_samples", {**DEFAULTS, "prior": (shipped() or [""])[0]
                                                  or DEFAULTS["prior"]})
        self.layer: Any = None  # the layer of the current / last run

        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.prior = PriorPicker()
        form.addRow("prior", self.prior)
        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setToolTip("number of samples")
        form.addRow("N", self.n)
        self.nfe = QSpinBox()
        self.nfe.setRange(1, 1000)
        self.nfe.setToolTip("number of diffusion steps (function evaluations)")
        form.addRow("NFE", self.nfe)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("seed", self.seed)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        form.addRow("device", self.device)
        lay.addLayout(form)
        self.run = RunBar(napari_viewer, "Prior samples")
        self.run.run_requested.connect(self.start)
        self.run.watch(self)  # closing the dock cancels the sampling
        lay.addWidget(self.run)
        self.defaults_btn = QPushButton("Restore defaults")
        self.defaults_btn.clicked.connect(self.restore_defaults)
        lay.addWidget(self.defaults_btn)
        lay.addStretch(1)
        self.set_values(self.store.load())

    # -- parameters ----------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        return {"prior": self.prior.value(), "n": self.n.value(), "nfe": self.nfe.value(),
                "seed": self.seed.value(), "device": self.device.currentText()}

    def set_values(self, v: dict[str, Any]) -> None:
        self.prior.set_value(str(v["prior"]))
        self.n.setValue(int(v["n"]))
        self.nfe.setValue(int(v["nfe"]))
        self.seed.setValue(int(v["seed"]))
        i = self.device.findText(str(v["device"]))
        self.device.setCurrentIndex(max(i, 0))

    def restore_defaults(self) -> None:
        self.set_values(self.store.restore_defaults())

    # -- run -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start sampling with the current parameters (a new layer per run)."""
        if self.run.state.active:
            return
        v = self.values()
        self.store.save(v)
        self.layer = None
        label = Path(v["prior"]).stem if "/" in v["prior"] else v["prior"]
        self._name = f"Prior samples: {label} N={v['n']} NFE={v['nfe']} seed={v['seed']}"
        handle = prior_samples_worker(v["prior"], v["n"], v["nfe"], v["seed"], v["device"])
        w = handle  # its yielded/returned/errored signals (run_controller.Job)
        w.yielded.connect(self._on_update)
        w.returned.connect(self._on_returned)
        w.errored.connect(self._on_error)
        self.run.begin(handle, f"loading {label}", v["nfe"])

    def _show(self, image: np.ndarray) -> None:
        from ..core.sampling import montage

        grid = montage(image)
        if self.layer is None or self.layer not in self.viewer.layers:
            cy, cx = (float(v) for v in tuple(camera_of(self.viewer).center)[-2:])
            self.layer = self.viewer.add_image(
                grid, name=self._name, contrast_limits=(0.0, 1.0), colormap="gray",
                translate=(cy - grid.shape[0] / 2, cx - grid.shape[1] / 2),
                metadata={napari_layers.ROLE: "samples", "d3ip_samples": image})
        else:
            self.layer.data = grid
            self.layer.metadata["d3ip_samples"] = image

    def _on_update(self, u: SampleUpdate) -> None:
        if not self.run.step("sampling", u.index + 1, u.total):
            return
        if u.image is not None:
            self._show(u.image)

    def _on_returned(self, image: np.ndarray | None) -> None:
        if image is not None and self.run.state.running:
            self._show(image)
        self.run.end(f"{self.n.value()} samples" if image is not None else "")

    def _on_error(self, exc: Exception) -> None:
        self.run.fail(error_text(exc), exc)
