"""GUI: the Reconstruct widget's controls are generated from RunConfig's declarations; every
field can be set there, and a preset applied in the GUI is exactly `from_preset`."""

from __future__ import annotations

import pytest

from napari_d3ip.config import RunConfig, from_preset, presets, specs

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def rec(make_napari_viewer_proxy):
    from napari_d3ip.widgets.reconstruct_widget import ReconstructWidget

    viewer = make_napari_viewer_proxy()
    w = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


def _user_sets(widget, value) -> None:
    """What a user does with the control: pick, tick, type."""
    from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

    from napari_d3ip.widgets.common import PriorPicker

    if isinstance(widget, PriorPicker):
        widget.combo.setEditText(str(value))
    elif isinstance(widget, QComboBox):
        i = widget.findText(str(value))
        assert i >= 0, (value, [widget.itemText(k) for k in range(widget.count())])
        widget.setCurrentIndex(i)
    elif isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QLineEdit):
        widget.setText(str(value))
    elif isinstance(widget, QSpinBox):
        widget.setValue(widget.minimum() if value is None else int(value))
    elif isinstance(widget, QDoubleSpinBox):
        widget.setValue(widget.minimum() if value is None else float(value))
    else:
        raise AssertionError(type(widget))


def _other_value(s, v):
    if s.name == "adapt_params":
        return "full"
    if s.choices:
        return next(c for c in s.choices if c != v and c not in ("d3ip-mbir", "cuda"))
    if s.type == "bool":
        return not v
    if s.type == "str":
        return "some/prior.safetensors"
    if v is None:
        return 3 if s.type == "int" else 2.5
    if s.name == "tile":
        return 64
    if s.type == "int":
        return v - 1 if s.name in ("window_hi", "t_start") else v + 1
    return 0.5 if s.name == "eta" else round(v * 2, 6)


GUI_FIELDS = [s for s in specs() if s.param.gui]


def test_every_field_but_preset_has_a_generated_control(rec):
    assert set(rec.controls) == {s.name for s in specs()} - {"preset"}
    basic = {s.name for s in specs() if s.param.gui == "basic"}
    assert basic == {"solver", "adapter", "prior", "nfe", "device", "seed"}
    assert set(rec.adv) == set(rec.controls) - basic
    assert rec.adv["tile"] is rec.controls["tile"].widget
    for name, c in rec.controls.items():  # help text reaches the tooltip
        assert c.spec.param.help[:20] in c.widget.toolTip(), name


@pytest.mark.parametrize("s", GUI_FIELDS, ids=lambda s: s.name)
def test_every_field_can_be_set_from_the_gui(rec, s):
    base = rec.config()
    value = _other_value(s, getattr(base, s.name))
    if s.name == "adapt_params":
        _user_sets(rec.controls["adapter"].widget, "d3ip-base")
    _user_sets(rec.controls[s.name].widget, value)
    got = rec.config()
    assert getattr(got, s.name) == pytest.approx(value) if isinstance(value, float) \
        else getattr(got, s.name) == value
    # and nothing else changed (but the adapter where adapt_params needed it)
    want = base.to_dict() | {s.name: getattr(got, s.name)}
    if s.name == "adapt_params":
        want["adapter"] = "d3ip-base"
    assert got.to_dict() == want


def test_optional_fields_read_none_at_their_minimum(rec):
    for name in ("gamma", "meta_finetune_iters"):
        w = rec.controls[name].widget
        _user_sets(w, 3)
        assert getattr(rec.config(), name) == 3
        _user_sets(w, None)
        assert getattr(rec.config(), name) is None and w.text() == "none"


@pytest.mark.parametrize("name", sorted(presets()))
def test_applying_a_preset_in_the_gui_is_exactly_from_preset(rec, name):
    # whatever was set before: fields the preset leaves out go back to RunConfig's defaults
    _user_sets(rec.controls["tile"].widget, 64)
    _user_sets(rec.controls["gamma"].widget, 3.0)
    _user_sets(rec.controls["dps_zeta"].widget, 0.5)
    _user_sets(rec.controls["keep_optimizer"].widget, True)
    _user_sets(rec.controls["seed"].widget, 5)
    rec.fill_presets(presets()[name]["task"])  # what picking a measurement of its kind does
    rec.preset.setCurrentText(name)
    got = rec.config().to_dict()
    want = from_preset(name, prior=rec.prior.value(), device=rec.device.currentText(),
                       seed=5).to_dict()
    assert got == want, {k: (got[k], want[k]) for k in got if got[k] != want[k]}
    if "gamma" in presets()[name]["config"]:
        assert got["gamma"] == presets()[name]["config"]["gamma"]
    # the user's own choices do not make it custom; a method field does
    _user_sets(rec.controls["seed"].widget, 6)
    assert rec.config().preset == name
    _user_sets(rec.controls["nfe"].widget, 7)
    assert rec.preset.currentText() == "(custom)" and rec.config().preset is None


def test_small_learning_rates_survive_the_spin_box(rec):
    rec.fill_presets("mri")
    rec.preset.setCurrentText("mri3d-scd")
    assert rec.config().lr == from_preset("mri3d-scd").lr
    rec.set_values({"lr": 1.234567e-4})
    assert rec.config().lr == 1.234567e-4  # set, not edited: exact
    _user_sets(rec.adv["lr"], 2e-4)
    assert rec.config().lr == pytest.approx(2e-4)


def test_remembered_values_round_trip(rec, make_napari_viewer_proxy):
    from napari_d3ip.widgets.reconstruct_widget import ReconstructWidget

    rec.set_values({"tile": 96, "gamma": 2.0, "meta_finetune_iters": 4, "keep_optimizer": True,
                    "adapter": "d3ip-base", "adapt_params": "full"})
    rec.store.save(rec.values())
    again = ReconstructWidget(rec.viewer)
    assert again.config() == rec.config()
    again.restore_defaults()
    d = again.config().to_dict()
    assert d == RunConfig(prior=d["prior"], device=d["device"]).to_dict()
    again.deleteLater()
