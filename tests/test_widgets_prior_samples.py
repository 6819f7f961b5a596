"""GUI: the 'Prior samples' widget draws samples from a prior file in a thread worker."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "config"))


def test_prior_samples_run_with_a_prior_file(make_napari_viewer_proxy, qtbot, tiny_prior_path):
    from napari_d3ip.widgets.prior_samples import PriorSamplesWidget
    from napari_d3ip.widgets.state import Phase

    viewer = make_napari_viewer_proxy()
    w = PriorSamplesWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.prior.set_value(str(tiny_prior_path))
    w.n.setValue(3)
    w.nfe.setValue(4)
    w.device.setCurrentText("cpu")
    w.run.button.click()
    assert w.run.state.active and w.run.button.text() == "Cancel"
    qtbot.waitUntil(lambda: w.run.state.phase is Phase.DONE, timeout=30000)
    layer = w.layer
    assert layer is not None and layer in viewer.layers
    assert layer.data.shape == (3, 32, 32)
    assert np.isfinite(layer.data).all() and 0 <= layer.data.min() <= layer.data.max() <= 1
    assert "N=3" in layer.name and "NFE=4" in layer.name
    assert w.run.button.text() == "Run" and w.run.bar.value() == 4
    # parameters are remembered for the next widget, and defaults can be restored
    w2 = PriorSamplesWidget(viewer)
    assert w2.n.value() == 3 and w2.prior.value() == str(tiny_prior_path)
    w2.restore_defaults()
    assert w2.n.value() == 16 and w2.nfe.value() == 50


def test_prior_samples_bad_prior_fails_cleanly(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_d3ip.widgets.prior_samples import PriorSamplesWidget
    from napari_d3ip.widgets.state import Phase

    viewer = make_napari_viewer_proxy()
    w = PriorSamplesWidget(viewer)
    w.prior.set_value(str(tmp_path / "missing.safetensors"))
    w.start()
    qtbot.waitUntil(lambda: w.run.state.phase is Phase.FAILED, timeout=10000)
    assert "not found" in w.run.label.text()
    assert w.run.button.isEnabled() and w.run.button.text() == "Run"
