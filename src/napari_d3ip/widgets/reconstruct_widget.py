"""'D3IP: Reconstruct': choose how to reconstruct a measurement layer and watch it happen.

The widget turns its fields into a `RunConfig`, hands it with the chosen layer's `Measurement`
to `pipeline.reconstruct` in a thread worker, and draws what comes back: a new result layer
(updated ~2×/s, contrast fixed once to the pipeline's [0, 1]), progress with ETA, a live plot
of data loss and PSNR, and at the end the run card in the layer's metadata. A run is bound to
the measurement it started from: changing the picker mid-run changes nothing for that run.

The form holds no knowledge of its own about the parameters: one `Control` per RunConfig field
is generated from the field's declaration (`config.specs()`: basic or advanced, range, choices,
help as tooltip), and a preset is applied by `config.from_preset`, the CLI's function too.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .. import _layers as napari_layers
from ..config import RunConfig, Spec, specs
from ..methods import get_method
from .common import PriorPicker, available_devices, error_text, scroll_area, shipped
from .guard import ADMM_TV, ADMM_TV_SETTINGS, CUSTOM, applies, plain_refusal, preset_choices, run_label
from .orthoviews import ViewControls
from .plot import LivePlot
from .runbar import RunBar, fmt_seconds
from .runs_table import RunsTable
from .state import ParamStore
from .workers import DEFAULT_INTERVAL, Update, reconstruct_worker

_INT32 = 2**31 - 1


def _defaults() -> dict[str, Any]:
    """Every RunConfig field's default (the first shipped prior when the default is not
    shipped), the preset picker and the two display options."""
    out = RunConfig().to_dict()
    out.pop("preset")
    priors = shipped()
    if priors and out["prior"] not in (*priors, "auto"):
        out["prior"] = priors[0]
    out.update(preset=CUSTOM, show_views=False, activity=False)
    return out


class Control:
    """The Qt control of one RunConfig field, generated from its declaration (`config.Spec`):
    a combo box for choices, a check box for a boolean, a spin box for a number (an optional
    number's minimum reads "none"), the prior picker for the prior, a line edit otherwise.

    `value()` gives the field's value: a spin box rounds to its decimals, so a value set by
    `set_value` and not edited since is returned exactly (a preset's lr of 1e-5 stays 1e-5).
    """

    def __init__(self, spec: Spec, choices: list[str] | None = None) -> None:
        self.spec = spec
        p = spec.param
        self._exact: float | None = None
        tip = p.help + (f" ({spec.used_with()})" if spec.used_with() else "")
        if spec.optional and p.none_means:
            tip += f"; none: {p.none_means}"
        if spec.name == "prior":
            w: Any = PriorPicker()
            self.changed = w.combo.currentTextChanged
        elif spec.choices:
            w = QComboBox()
            w.addItems(list(choices if choices is not None else spec.choices))
            self.changed = w.currentTextChanged
        elif spec.type == "bool":
            w = QCheckBox()
            self.changed = w.toggled
        elif spec.type == "int":
            w = QSpinBox()
            lo = int(p.lo) if p.lo is not None else -_INT32
            hi = p.hi if p.hi is not None else p.gui_hi
            hi = _INT32 if hi is None else min(int(hi), _INT32)
            if spec.optional:
                lo -= 1
                w.setSpecialValueText("none")
            w.setRange(lo, hi)
            self.changed = w.valueChanged
        elif spec.type == "float":
            w = QDoubleSpinBox()
            dec = p.decimals if p.decimals is not None else 4
            w.setDecimals(dec)
            w.setSingleStep(p.step if p.step is not None else 10.0 ** -min(dec, 2))
            lo = float(p.lo) if p.lo is not None else -1e9
            if p.lo_open and not spec.optional:
                lo += 10.0 ** -dec
            elif spec.optional and not p.lo_open:
                lo -= 10.0 ** -dec
            if spec.optional:
                w.setSpecialValueText("none")
            hi = p.hi if p.hi is not None else p.gui_hi
            w.setRange(lo, 1e9 if hi is None else float(hi))
            self.changed = w.valueChanged
        else:
            w = QLineEdit()
            self.changed = w.textChanged
        w.setToolTip(tip)
        self.widget = w

    def value(self) -> Any:
        w = self.widget
        if isinstance(w, PriorPicker):
            return w.value()
        if isinstance(w, QComboBox):
            return w.currentText()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QLineEdit):
            return w.text()
        if self.spec.optional and w.value() == w.minimum():
            return None
        if isinstance(w, QSpinBox):
            return int(w.value())
        v = float(w.value())
        if self._exact is not None and abs(v - self._exact) <= 0.5 * 10.0 ** -w.decimals():
            return self._exact
        return v

    def set_value(self, v: Any) -> None:
        w = self.widget
        if isinstance(w, PriorPicker):
            w.set_value(str(v))
        elif isinstance(w, QComboBox):
            if w.findText(str(v)) < 0:  # e.g. cuda:1 from a saved run card
                w.addItem(str(v))
            w.setCurrentIndex(w.findText(str(v)))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(v))
        elif isinstance(w, QLineEdit):
            w.setText(str(v))
        elif v is None:
            w.setValue(w.minimum())
        elif isinstance(w, QSpinBox):
            w.setValue(int(v))
        else:
            w.setValue(float(v))
            self._exact = float(v)


@dataclass
class RunContext:
    """Everything a run is bound to, captured when Run is pressed."""

    measurement: Any
    source: str
    config: RunConfig
    name: str
    number: int = 0  # the run's number in this dock's session (names and the runs table)
    layer: Any = None
    steps: int = 0
    images: int = 0
    result: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class ReconstructWidget(QWidget):
    """Measurement layer + method + parameters → Run/Cancel → a result layer and its run card."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.store = ParamStore("reconstruct", _defaults())
        self.calibration = ParamStore("calibration", {"seconds_per_estimated": 0.0,
                                                      "device": ""})
        self.ctx: RunContext | None = None  # the current or last run
        self._runs_started = 0  # numbers the runs: #1, #2, … in layer names and the runs table
        self._applying = False
        self._measurement_layers: list[Any] = []
        self._selected: Any = None  # the measurement layer the user picked (by identity)
        self._removed_name = ""
        self.update_interval = DEFAULT_INTERVAL  # seconds between redraws of the estimate
        self._draw_cost = 0.0  # GUI seconds the last redraw took
        self._drawn_at = 0.0

        # Run, its progress, the result line, Save and the runs table never scroll away;
        # Advanced, the views and the plot scroll below them (fits 1600x1000)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addLayout(self._make_form())
        outer.addWidget(self._make_run_section())
        self.scroll, lay = scroll_area()
        outer.addWidget(self.scroll, 1)
        self.advanced = self._make_advanced()
        lay.addWidget(self.advanced)
        self.views = ViewControls(napari_viewer)
        self.show_views = QCheckBox("open 3 views on Run")
        self.show_views.setToolTip("off by default: the two extra views take seconds to build "
                                   "under software OpenGL (Xvfb, VNC); tick '3 views' above to "
                                   "open them once, before a run")
        self.show_views.setVisible(self.views.views.available)
        lay.addWidget(self.views)
        lay.addWidget(self.show_views)
        self.plot = LivePlot()
        lay.addWidget(self.plot)
        lay.addStretch(1)
        for combo in self.findChildren(QComboBox):  # never wider than the dock
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        for box in self.findChildren(QAbstractSpinBox):  # a 1e9 range is no reason to be wide
            box.setMinimumWidth(70)

        self._fields = self._field_widgets()
        for c in self.controls.values():
            c.changed.connect(self._on_user_field if c.spec.param.user else self._on_field)
        self.set_values(self.store.load())

        ev = self.viewer.layers.events
        ev.inserted.connect(self._refresh_measurements)
        ev.removed.connect(self._refresh_measurements)
        self._refresh_measurements()

    # -- form ----------------------------------------------------------------------------
    def _make_form(self) -> QFormLayout:
        """Measurement, method (with its advice), preset and the basic RunConfig controls."""
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.measurement = QComboBox()
        self.measurement.setToolTip("a measurement layer made by 'D3IP: Data' or read from .h5")
        self.measurement.currentIndexChanged.connect(self._on_pick)
        form.addRow("measurement", self.measurement)
        self.operator_label = QLabel("–")
        self.operator_label.setWordWrap(True)
        form.addRow("operator", self.operator_label)
        self.preset = QComboBox()
        self.preset.setToolTip("settings made for this kind of measurement, or your own")
        self.fill_presets(None)
        self.preset.currentTextChanged.connect(self._on_preset)
        form.addRow("preset", self.preset)
        # the RunConfig controls: one per field, generated from its declaration
        self.controls: dict[str, Control] = {
            sp.name: Control(sp, available_devices() if sp.name == "device" else None)
            for sp in specs() if sp.param.gui}
        for name, c in self.controls.items():
            if c.spec.param.gui == "basic":
                form.addRow({"nfe": "NFE", "solver": "method"}.get(name, name), c.widget)
            if name == "solver":
                self.advice = QLabel("")
                self.advice.setWordWrap(True)
                self.advice.setStyleSheet("color: #9fc5e8")
                form.addRow(self.advice)
        # the basic controls by name, as scripts and tests reach them (rec.nfe.setValue(10))
        self.solver, self.adapter, self.prior, self.nfe, self.device, self.seed = (
            self.controls[k].widget for k in ("solver", "adapter", "prior", "nfe", "device",
                                              "seed"))
        return form

    def _make_run_section(self) -> QWidget:
        """Run/Cancel, progress, the result line, Save and the runs table."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        self.run = RunBar(self.viewer, "D3IP reconstruction")
        self.run.run_requested.connect(self.start)
        self.run.state.connect(self._on_state)
        self.run.watch(self)  # closing the dock cancels the run
        lay.addWidget(self.run)
        self.cost = QLabel("")
        self.cost.setWordWrap(True)
        lay.addWidget(self.cost)
        self.lock_label = QLabel("")
        self.lock_label.setWordWrap(True)
        self.lock_label.setVisible(False)
        lay.addWidget(self.lock_label)
        row = QHBoxLayout()
        self.save_btn = QPushButton("Save…")
        self.save_btn.setToolTip("write the selected result as NIfTI (input affine) + run card "
                                 "JSON, beside the input file")
        self.save_btn.setEnabled(False)
        self.save_btn.clicked.connect(lambda _=False: self.save())
        row.addWidget(self.save_btn)
        self.defaults_btn = QPushButton("Defaults")
        self.defaults_btn.setToolTip("restore every field's default")
        self.defaults_btn.clicked.connect(self.restore_defaults)
        row.addWidget(self.defaults_btn)
        lay.addLayout(row)
        self.runs = RunsTable(self.viewer)
        lay.addWidget(self.runs)
        return box

    def fill_presets(self, kind: str | None) -> None:
        """Only the presets made for this kind of measurement (plus custom and ADMM-TV)."""
        from ..config import presets

        current = self.preset.currentText()
        names = preset_choices(kind)
        if [self.preset.itemText(i) for i in range(self.preset.count())] == names:
            return
        descs = presets()
        self.preset.blockSignals(True)
        self.preset.clear()
        for name in names:
            self.preset.addItem(name)
            tip = {CUSTOM: "the settings below, as you set them",
                   ADMM_TV: "3D total variation, no prior: seconds, best on real anatomy today"
                   }.get(name, str(descs.get(name, {}).get("description", "")))
            self.preset.setItemData(self.preset.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.preset.setCurrentIndex(max(self.preset.findText(current), 0))
        self.preset.blockSignals(False)

    def _update_enabled(self) -> None:
        """Fields that mean nothing to the chosen method are disabled (their declarations
        say which solvers/adapters they matter to); ADMM-TV takes no adapter."""
        solver, adapter = self.controls["solver"].value(), self.controls["adapter"].value()
        if not get_method(solver).uses_prior and adapter != "none":
            self._applying, was = True, self._applying
            try:
                self.controls["adapter"].set_value("none")
            finally:
                self._applying = was
            adapter = "none"
        if self.run.state.active:
            return
        for c in self.controls.values():
            c.widget.setEnabled(applies(c.spec, solver, adapter))
        with contextlib.suppress(Exception):
            from ..advice import advice

            m = self.current_measurement()
            self.advice.setText(advice(napari_layers.kind_of(m)) if m is not None else "")

    def _make_advanced(self) -> QWidget:
        try:
            from superqt import QCollapsible

            box: Any = QCollapsible("Advanced")
            add = box.addWidget
        except ImportError:  # superqt comes with napari; keep a plain box just in case
            box = QWidget()
            add = QVBoxLayout(box).addWidget
        inner = QWidget()
        form = QFormLayout(inner)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setContentsMargins(0, 0, 0, 0)
        #: the advanced controls' Qt widgets by field name (rec.adv["lr"].setValue(2e-3))
        self.adv: dict[str, Any] = {}
        for name, c in self.controls.items():
            if c.spec.param.gui == "advanced":
                form.addRow(name, c.widget)
                self.adv[name] = c.widget
        self.init, self.bf16 = self.adv["init"], self.adv["bf16"]
        self.activity = QCheckBox("progress in napari's activity dock")
        self.activity.setToolTip("off by default: napari animates a status-bar spinner and runs "
                                 "the event loop in every progress update; without a GPU-backed "
                                 "display (Xvfb, VNC) that made each step several times slower")
        form.addRow("", self.activity)
        add(inner)
        return box

    def _field_widgets(self) -> dict[str, Any]:
        """Every RunConfig control's Qt widget by field name."""
        return {name: c.widget for name, c in self.controls.items()}

    def values(self) -> dict[str, Any]:
        """The remembered parameters (every RunConfig field + preset + view options)."""
        v: dict[str, Any] = {name: c.value() for name, c in self.controls.items()}
        v["preset"] = self.preset.currentText()
        v["show_views"] = self.show_views.isChecked()
        v["activity"] = self.activity.isChecked()
        return v

    def set_values(self, v: dict[str, Any]) -> None:
        self._applying = True
        try:
            for name, c in self.controls.items():
                if name in v:
                    with contextlib.suppress(TypeError, ValueError):  # a stale saved value
                        c.set_value(v[name])
            if "preset" in v:
                i = self.preset.findText(str(v["preset"] or CUSTOM))
                self.preset.setCurrentIndex(max(i, 0))
            if "show_views" in v:
                self.show_views.setChecked(bool(v["show_views"]))
            if "activity" in v:
                self.activity.setChecked(bool(v["activity"]))
        finally:
            self._applying = False
        self._update_enabled()
        self._update_cost()

    def restore_defaults(self) -> None:
        self.set_values(self.store.restore_defaults())

    def config(self) -> RunConfig:
        """The RunConfig the controls describe (raises ConfigError with the field's name).

        Every field has a control, so this is exactly what the form shows; after a preset
        was applied it is that preset's `from_preset` configuration (with the user's prior,
        device and seed) until a field is edited."""
        v = {name: c.value() for name, c in self.controls.items()}
        preset = self.preset.currentText()
        return RunConfig.from_dict({**v, "preset": None if preset in (CUSTOM, ADMM_TV)
                                    else preset})

    def _on_preset(self, name: str) -> None:
        """Show the preset's configuration: `config.from_preset`, the CLI's function too,
        keeping the user's own choices (prior, device, seed)."""
        if self._applying or name == CUSTOM:
            return
        if name == ADMM_TV:
            self.set_values({**ADMM_TV_SETTINGS, "preset": ADMM_TV})
            return
        try:
            from ..config import from_preset

            cfg = from_preset(name, keep={k: c.value() for k, c in self.controls.items()})
        except Exception as e:  # a broken preset file is reported, not fatal
            self.cost.setText(f"preset {name!r}: {error_text(e)}")
            return
        self.set_values(cfg.to_dict())

    def _on_user_field(self, *_: Any) -> None:
        """Prior, device or seed changed: the user's choices, the preset still holds."""
        if not self._applying:
            self._update_cost()

    def _on_field(self, *_: Any) -> None:
        if self._applying:
            return
        if self.preset.currentText() != CUSTOM:  # edited by hand: no longer the preset
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(0)
            self.preset.blockSignals(False)
        self._update_enabled()
        self._update_cost()

    # -- measurement picker --------------------------------------------------------------
    def _refresh_measurements(self, event: Any = None) -> None:
        """Rebuild the picker; the chosen layer is followed by identity. When it is removed the
        picker says so and picks nothing (never silently another measurement); a newly added
        measurement is picked unless a run is live (the form is locked then)."""
        try:
            layers = [ly for ly in self.viewer.layers
                      if napari_layers.MEASUREMENT in getattr(ly, "metadata", {})]
            inserted = getattr(event, "value", None) if event is not None else None
            current = self._selected
            if current is not None and current not in layers:
                self._removed_name = str(getattr(current, "name", ""))
                self._selected = current = None
            if inserted in layers and not self.run.state.active:
                self._selected = current = inserted
                self._removed_name = ""
            elif current is None and not self._removed_name and layers:
                self._selected = current = layers[0]
            self._measurement_layers = layers
            self.measurement.blockSignals(True)
            self.measurement.clear()
            self.measurement.addItems([ly.name for ly in layers])
            if current in layers:
                self.measurement.setCurrentIndex(layers.index(current))
            else:
                placeholder = (f"‹{self._removed_name} was removed: pick a measurement›"
                               if self._removed_name else "‹no measurement›")
                self.measurement.insertItem(0, placeholder)
                self.measurement.setCurrentIndex(0)
            self.measurement.blockSignals(False)
            self._on_measurement()
        except RuntimeError:  # the widget was deleted while the viewer still emits
            pass

    def current_layer(self) -> Any:
        """The measurement layer the user picked (None after it was removed)."""
        return self._selected if self._selected in self._measurement_layers else None

    def current_measurement(self) -> Any:
        layer = self.current_layer()
        return None if layer is None else layer.metadata.get(napari_layers.MEASUREMENT)

    def _on_pick(self, i: int) -> None:
        """The user chose entry `i` of the picker (a placeholder entry picks nothing)."""
        n_extra = self.measurement.count() - len(self._measurement_layers)
        if 0 <= i - n_extra < len(self._measurement_layers):
            self._selected = self._measurement_layers[i - n_extra]
            self._removed_name = ""
        self._on_measurement()

    def _on_measurement(self, *_: Any) -> None:
        m = self.current_measurement()
        self.fill_presets(napari_layers.kind_of(m) if m is not None else None)
        self._update_enabled()
        if m is None and self._removed_name:
            self.operator_label.setText(f"– the layer {self._removed_name!r} was removed; pick "
                                        "another measurement")
        elif m is None:
            self.operator_label.setText("– (simulate or open one with 'D3IP: Data')")
        else:
            h, w = m.image_shape
            self.operator_label.setText(f"{napari_layers.describe(m)} · {m.n_slices} slices of {h}×{w}"
                                        + (" · reference known" if m.reference is not None
                                           else ""))
        self._update_cost()

    def _update_cost(self) -> None:
        if self.run.state.active:  # the run's own measurements (ETA, warnings) are shown
            return
        m = self.current_measurement()
        if m is None:
            self.cost.setText("")
            return
        try:
            from ..cost import estimate_cost

            cfg = self.config()
            c = estimate_cost(m, cfg)
        except Exception as e:  # an invalid field: say which
            self.cost.setText(f"⚠ {error_text(e)}")
            return
        factor, device = self._calibration(cfg)
        if factor > 0:
            when = (f"≈ {fmt_seconds(c['seconds'] * factor)} on this machine ({device}, "
                    "calibrated on its last run)")
        else:
            when = (f"≈ {fmt_seconds(c['seconds'])} on a 2-core CPU (rough; the real ETA "
                    "follows the first step)")
        self.cost.setText(f"estimate: {when}, ≈ {c['memory_bytes'] / 2**20:.0f} MB")

    def _calibration(self, cfg: RunConfig) -> tuple[float, str]:
        """Measured seconds per estimated second on this machine and device (0: unknown)."""
        try:
            from ..core.prior import resolve_device

            device = str(resolve_device(cfg.device))
        except Exception:  # no CUDA: the estimate stays uncalibrated
            return 0.0, ""
        c = self.calibration.load()
        f = float(c.get("seconds_per_estimated") or 0.0)
        return (f, device) if c.get("device") == device and f > 0 else (0.0, device)

    def _calibrate(self, ctx: RunContext, step_index: int, elapsed: float) -> None:
        """After a step: measured time per estimated time (steps done), remembered."""
        try:
            from ..core.prior import resolve_device
            from ..cost import estimate_cost

            est = estimate_cost(ctx.measurement, ctx.config)["seconds"]
            total = ctx.config.n_steps
            done = (step_index + 1) / max(total, 1)
            if est > 0 and done > 0 and elapsed > 0:
                self.calibration.save({"seconds_per_estimated": elapsed / (est * done),
                                       "device": str(resolve_device(ctx.config.device))})
        except Exception:  # calibration is a convenience
            pass

    # -- locked form while a run is live ------------------------------------------------------
    def _form_widgets(self) -> list[Any]:
        return [self.measurement, self.preset, self.prior, self.defaults_btn,
                self.show_views, self.activity, *self._fields.values()]

    def _on_state(self, state: Any) -> None:
        locked = bool(state.active)
        for w in self._form_widgets():
            w.setEnabled(not locked)
        if not locked:
            self._update_enabled()
        if locked and self.ctx is not None:
            c = self.ctx.config
            self.lock_label.setText(
                f"running {c.solver}/{c.adapter}, {c.nfe} steps, preset "
                f"{c.preset or 'custom'} on {self.ctx.source}: the form is locked until the run "
                "ends (Cancel to change it)")
        self.lock_label.setVisible(locked)

    # -- run -----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a run on the selected measurement; False (with the reason shown) if not."""
        if self.run.state.active:
            return False
        layer = self.current_layer()
        m = self.current_measurement()
        if m is None:
            return self._refuse("Not started: no measurement yet. Simulate one in the Data "
                                "step (or open a .h5 file), then Run.")
        try:
            from ..config import check_preset_kind

            cfg = self.config()
            check_preset_kind(cfg.preset, napari_layers.kind_of(m))
        except Exception as e:
            return self._refuse(plain_refusal(e))
        self.store.save(self.values())
        source = str(layer.metadata.get(napari_layers.SOURCE) or layer.name.split(" ")[0])
        method, preset, settings = run_label(cfg)
        self._runs_started += 1
        number = self._runs_started
        self.ctx = RunContext(measurement=m, source=source, config=cfg, number=number,
                              name=napari_layers.result_name(cfg, source, settings, number))
        self.ctx.extra.update(method=method, preset=preset, settings=settings)
        self.plot.clear(cfg.n_steps)
        self.save_btn.setEnabled(False)
        warning = prior_scale_warning(cfg, m)
        self.ctx.extra["prior_scale_warning"] = warning
        if warning:
            self.cost.setText(f"⚠ {warning}")
            with contextlib.suppress(Exception):
                from napari.utils.notifications import show_warning

                show_warning(warning)
        else:
            self.cost.setText(self.cost.text().replace("estimate:", "estimate before the run:"))
        handle = reconstruct_worker(m, cfg, interval=self.update_interval)
        w = handle  # its yielded/returned/errored signals (run_controller.Job)
        ctx = self.ctx
        w.yielded.connect(lambda u, c=ctx: self._on_update(c, u))
        w.returned.connect(lambda r, c=ctx: self._on_returned(c, r))
        w.errored.connect(lambda e, c=ctx: self._on_error(c, e))
        self.run.activity = self.activity.isChecked()
        total = cfg.n_steps
        self.run.begin(handle, f"{cfg.solver}/{cfg.adapter} on {source}", total, start=False)
        # the result layer and the views are staged now (result_display: the layer model at
        # once, napari's add, the labels and the views on later event-loop turns), then the
        # worker starts; later updates only replace the data
        try:
            self._prepare_display(ctx)
        except Exception:  # a display problem must not leave the run in "Preparing"
            self.run.start_worker()
            raise
        return True

    def _refuse(self, text: str) -> bool:
        """A Run that does not start: the reason and its fix in the status line."""
        self.run.refuse(text)
        self.cost.setText("")
        return False

    def cancel(self) -> None:
        self.run.cancel()

    def _prepare_display(self, ctx: RunContext) -> None:
        m = ctx.measurement
        blank = np.zeros((m.n_slices, *m.image_shape), np.float32)
        kwargs = napari_layers.result_kwargs(ctx.name, m, ctx.config)
        from .result_display import stage_result_layer

        ctx.layer = stage_result_layer(
            self.viewer, blank, kwargs, owner=self,
            then=[self.views.open if self.show_views.isChecked() else None,
                  self.run.start_worker])

    def _draw(self, ctx: RunContext, image: np.ndarray) -> None:
        import time

        t0 = time.perf_counter()
        if ctx.layer is None:
            kwargs = napari_layers.result_kwargs(ctx.name, ctx.measurement, ctx.config)
            ctx.layer = self.viewer.add_image(image, **kwargs)
        else:  # staged and not added yet, shown, or deleted by the user: replace quietly
            ctx.layer.data = image
        ctx.images += 1
        self._drawn_at = time.perf_counter()
        self._draw_cost = self._drawn_at - t0

    def _may_draw(self, last: bool) -> bool:
        """Redraw only when the GUI has had at least 4x the last redraw's time for itself."""
        import time

        if last or self.update_interval <= 0:
            return True
        return time.perf_counter() - self._drawn_at >= 4 * self._draw_cost

    def _on_update(self, ctx: RunContext, u: Update) -> None:
        s = u.step
        if not self.run.step(s.phase, s.index + 1, s.total, s.eta):
            return  # cancelling: the estimate no longer matters
        ctx.steps += 1
        ctx.extra["residual"] = s.loss
        if s.index == 0:
            self._calibrate(ctx, s.index, s.elapsed)
        if not ctx.extra.get("prior_scale_warning"):  # the measured ETA replaces the estimate
            self.cost.setText(f"measured on this machine: {fmt_seconds(s.elapsed)} for "
                              f"{s.index + 1} step(s) (the first includes loading); "
                              f"≈ {fmt_seconds(s.elapsed + s.eta)} in all, "
                              f"{fmt_seconds(s.eta)} left")
        self.plot.add(s.index, s.loss, s.psnr, s.total)
        if u.image is not None and self._may_draw(last=s.index + 1 >= s.total):
            self._draw(ctx, u.image)

    def _on_returned(self, ctx: RunContext, result: Any) -> None:
        if result is None:  # cancelled
            self._park_cancelled(ctx)
            ctx.extra["elapsed"] = self.run.elapsed()
            self.run.end()
            self.cost.setText("cancelled: its partial estimate is kept, hidden, below the "
                              "finished results")
            self._add_row(ctx, None, status=f"cancelled {ctx.steps}/{self.run.state.total}")
            return
        ctx.result = result
        secs_run = result.card.get("timings", {}).get("total_seconds")
        if secs_run:
            total = ctx.config.n_steps
            self._calibrate(ctx, total - 1, float(secs_run))
        scale = result.card.get("prior_scale", {})
        if scale.get("warning"):
            self.cost.setText(f"⚠ {scale['warning']}")
        self._draw(ctx, np.asarray(result.volume, dtype=np.float32))
        ctx.layer.metadata[napari_layers.RUN_CARD] = result.card
        if result.metrics is not None:
            ctx.layer.metadata["d3ip_metrics"] = {k: v for k, v in result.metrics.items()
                                                  if k != "per_slice"}
        secs = result.card.get("timings", {}).get("total_seconds")
        bits = []
        psnr = (result.metrics or {}).get("psnr")
        if psnr is not None:
            bits.append(f"PSNR {psnr:.2f} dB (per-slice mean)")
        if secs is not None:
            bits.append(f"{fmt_seconds(secs)}")
        self.run.end(", ".join(bits))
        self.save_btn.setEnabled(True)
        self._add_row(ctx, result)

    def _add_row(self, ctx: RunContext, result: Any, status: str = "") -> None:
        """The run's row in the runs table (PSNR/SSIM with a reference, else the residual)."""
        metrics = (getattr(result, "metrics", None) or {}) if result is not None else {}
        secs = (result.card.get("timings", {}).get("total_seconds") if result is not None
                else ctx.extra.get("elapsed"))
        has_ref = metrics.get("psnr") is not None
        self.runs.add_run(ctx.layer, f"#{ctx.number} {ctx.extra.get('method', '')}",
                          ctx.extra.get("preset", ""),
                          ctx.extra.get("settings", ""), metrics.get("psnr"),
                          metrics.get("ssim"), None if has_ref else ctx.extra.get("residual"),
                          secs, status)

    @staticmethod
    def _status_name(ctx: RunContext, status: str) -> str:
        return napari_layers.result_name(ctx.config, ctx.source, ctx.extra.get("settings", ""),
                                         ctx.number, status)

    def _park_cancelled(self, ctx: RunContext) -> None:
        """A cancelled run's partial result: renamed, hidden, moved below every finished
        result so it never covers a good one in any view."""
        layer = ctx.layer
        if layer is None or layer not in self.viewer.layers:
            return
        layer.name = self._status_name(ctx, "cancelled")
        layer.visible = False
        layers = self.viewer.layers
        finished = [i for i, ly in enumerate(layers)
                    if napari_layers.RUN_CARD in getattr(ly, "metadata", {})]
        here = layers.index(layer)
        if finished and min(finished) < here:
            layers.move(here, min(finished))

    def _on_error(self, ctx: RunContext, exc: Exception) -> None:
        if ctx.layer is not None and ctx.layer in self.viewer.layers:
            ctx.layer.name = self._status_name(ctx, "failed")
        self.run.fail(error_text(exc), exc)

    # -- save ----------------------------------------------------------------------------
    def _save_target(self) -> Any:
        """The selected result layer if it has a run card, else the last finished run's."""
        active = self.viewer.layers.selection.active
        if active is not None and napari_layers.RUN_CARD in getattr(active, "metadata", {}):
            return active
        if self.ctx is not None and self.ctx.result is not None and self.ctx.layer is not None:
            return self.ctx.layer
        return None

    def save(self, path: str | Path | None = None, confirm: Any = None
             ) -> tuple[Path, Path] | None:
        """Write the result NIfTI (input affine, file intensities) + run card JSON.

        Existing files are only replaced after `confirm(existing_paths)` (default: a dialog)
        says yes. Returns the two paths, or None if nothing was written.
        """
        from ..events import Result
        from ..io.results import check_card_path, run_card_path, save_result

        layer = self._save_target()
        if layer is None:
            self.cost.setText("⚠ nothing to save yet: run a reconstruction first")
            return None
        if path is None:
            folder = start_folder(self.viewer, layer)
            path, _ = QFileDialog.getSaveFileName(
                self, "Save reconstruction", str(folder / f"{_safe(layer.name)}.nii.gz"),
                "NIfTI (*.nii.gz *.nii)", options=QFileDialog.Option.DontConfirmOverwrite)
            if not path:
                return None
        path = Path(path)
        if not path.name.lower().endswith((".nii", ".nii.gz")):
            path = path.with_name(path.name + ".nii.gz")
        try:  # a .json that is not ours (a BIDS sidecar) is never replaced: say so first
            check_card_path(run_card_path(path))
        except FileExistsError:
            self.cost.setText(f"⚠ not saved: {run_card_path(path).name} beside it is not a "
                              "D3IP run card (a BIDS sidecar?) and is never replaced; save "
                              f"under another name, e.g. {_stem(path)}_d3ip.nii.gz")
            return None
        existing = [p for p in (path, run_card_path(path)) if p.exists()]
        overwrite = False
        if existing:
            ask = confirm or self._confirm_overwrite
            if not ask(existing):
                self.cost.setText("not saved: the file exists")
                return None
            overwrite = True
        md = layer.metadata
        lo, hi = md.get(napari_layers.INTENSITY) or (0.0, 1.0)
        result = Result(volume=np.asarray(layer.data, dtype=np.float32),
                        card=dict(md[napari_layers.RUN_CARD]), metrics=md.get("d3ip_metrics"))
        try:
            out = save_result(result, path, affine=md.get(napari_layers.AFFINE),
                              intensity=(float(lo), float(hi)), overwrite=overwrite)
        except Exception as e:  # said in the status line and a notification, no traceback
            self.cost.setText(f"⚠ not saved: {plain_refusal(e).removeprefix('Not started: ')}")
            with contextlib.suppress(Exception):
                from napari.utils.notifications import show_warning

                show_warning(f"not saved: {error_text(e)}")
            return None
        self.cost.setText(f"saved {out[0].name} + {out[1].name}")
        return out

    def _confirm_overwrite(self, existing: list[Path]) -> bool:
        names = "\n".join(str(p) for p in existing)
        answer = QMessageBox.question(
            self, "Overwrite?", f"These files exist:\n{names}\n\nReplace them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes


def prior_scale_warning(cfg: RunConfig, m: Any) -> str:
    """The pipeline's PriorScaleWarning text for this run, from the prior's card alone (read
    before the run, so the user sees it at once); empty when the scales agree."""
    if not get_method(cfg.solver).uses_prior:
        return ""
    try:
        from types import SimpleNamespace

        from ..core.prior import card_scale, read_card, resolve_prior_name
        from ..pipeline import prior_scale

        name = resolve_prior_name(cfg.prior, m.image_shape)
        card = read_card(name)
        render = card_scale(card)
        name = str(card.get("name", name))
        return str(prior_scale(m, SimpleNamespace(render_size=render, name=name)).get(
            "warning", ""))
    except Exception:  # a broken prior is reported by the run itself
        return ""



def start_folder(viewer: Any, layer: Any) -> Path:
    """Where Save starts: the folder of the input file the result came from (the result's
    source, or the file of the layer of that name), else the home folder."""
    names = [layer.metadata.get(napari_layers.SOURCE)]
    for ly in viewer.layers:
        if ly.name == names[0] or ly.name.split(" ")[0] == names[0]:
            names.append(ly.metadata.get(napari_layers.SOURCE))
    for name in names:
        with contextlib.suppress(TypeError, ValueError, OSError):
            p = Path(str(name)).expanduser()
            if name and p.exists():
                return p if p.is_dir() else p.parent
    return Path.home()


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_+." else "_" for c in name)
    return keep.strip("_") or "reconstruction"


def _stem(path: Path) -> str:
    return path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
