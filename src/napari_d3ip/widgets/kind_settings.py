"""The Data dock's per-kind settings pages, generated from the operator kinds' declarations.

Each registered kind (operators/kinds.py) declares its simulation settings once (`Setting`:
a `config.Param` with range, step, decimals and label); this module renders those with
`param.gui` set as a form page per kind, so the dock never lists a kind's settings itself
and a spin box's range is the library's rule (`accel` > 1: the box starts one step above 1).
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QStackedWidget, QWidget


def make_control(setting: Any) -> QWidget:
    """A spin box or a combo box for one `operators.Setting`, its range the declared one."""
    p = setting.param
    if p.choices:
        box = QComboBox()
        box.addItems(list(p.choices))
    elif setting.type == "int":
        box = QSpinBox()
        lo, hi = setting.gui_range()
        box.setRange(int(lo), int(min(hi, 2**31 - 1)))
    else:
        box = QDoubleSpinBox()
        if p.decimals is not None:
            box.setDecimals(p.decimals)
        lo, hi = setting.gui_range()
        box.setRange(lo, hi)
        if p.step is not None:
            box.setSingleStep(p.step)
    box.setToolTip(p.help)
    return box


def control_value(box: QWidget) -> Any:
    return box.currentText() if isinstance(box, QComboBox) else box.value()


def set_control(box: QWidget, v: Any) -> None:
    if isinstance(box, QComboBox):
        box.setCurrentIndex(max(box.findText(str(v)), 0))
    elif isinstance(box, QSpinBox):
        box.setValue(int(v))
    else:
        box.setValue(float(v))


def page_defaults() -> dict[str, Any]:
    """The declared default of every page's setting, keyed '<kind>.<setting>'."""
    from ..operators.kinds import all_kinds

    return {f"{k.name}.{st.name}": st.default for k in all_kinds() for st in k.settings
            if st.param.gui}


class KindPages(QStackedWidget):
    """One form page per operator kind (in `kind_names()` order) with its GUI settings.

    Values are keyed '<kind>.<setting>' (what the dock remembers); `params(kind)` gives the
    keyword settings of `measurement_builder.build_measurement` for that kind."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from ..operators.kinds import all_kinds

        self.kinds = all_kinds()
        self.controls: dict[str, dict[str, QWidget]] = {}
        for k in self.kinds:
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            self.controls[k.name] = {}
            for st in k.settings:
                if st.param.gui:
                    box = make_control(st)
                    self.controls[k.name][st.name] = box
                    form.addRow(st.label or st.name, box)
            self.addWidget(page)

    def control(self, kind: str, name: str) -> QWidget:
        """The control of setting `name` on `kind`'s page."""
        return self.controls[kind][name]

    def values(self) -> dict[str, Any]:
        return {f"{kind}.{name}": control_value(box)
                for kind, boxes in self.controls.items() for name, box in boxes.items()}

    def set_values(self, v: dict[str, Any]) -> None:
        for kind, boxes in self.controls.items():
            for name, box in boxes.items():
                key = f"{kind}.{name}"
                if key in v:
                    set_control(box, v[key])

    def params(self, kind: str) -> dict[str, Any]:
        """The settings of `kind` as `build_measurement` takes them."""
        return {name: control_value(box) for name, box in self.controls[kind].items()}
