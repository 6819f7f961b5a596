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
    stack = layer.metadata["d3ip_samples"]
    assert stack.shape == (3, 32, 32) and layer.data.shape == (66, 66)  # a 2x2 montage
    assert np.isfinite(stack).all() and 0 <= stack.min() <= stack.max() <= 1
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


def test_prior_samples_are_shown_where_the_user_is_looking(make_napari_viewer_proxy, qtbot,
                                                            tiny_prior_path):
    """With a brain loaded (64 slices of 2 mm, looking at slice 40) the samples used to sit at
    world slices 0..N-1: invisible. Now a 2D montage at the centre of the view."""
    from napari_d3ip.widgets.prior_samples import PriorSamplesWidget
    from napari_d3ip.widgets.state import Phase

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((64, 48, 48)).astype(np.float32),
                     scale=(2.0, 1.5, 1.5), translate=(-50.0, 10.0, 20.0), name="brain")
    viewer.dims.set_current_step(0, 40)
    w = PriorSamplesWidget(viewer)
    w.prior.set_value(str(tiny_prior_path))
    w.n.setValue(4)
    w.nfe.setValue(2)
    w.device.setCurrentText("cpu")
    w.start()
    qtbot.waitUntil(lambda: w.run.state.phase is Phase.DONE, timeout=30000)
    layer = w.layer
    assert layer.ndim == 2 and layer.visible  # drawn at every slice of the 3D view
    (y0, x0), (y1, x1) = layer.extent.world
    from napari_d3ip.widgets.common import camera_of

    cy, cx = camera_of(viewer).center[-2:]
    assert y0 <= cy <= y1 and x0 <= cx <= x1
