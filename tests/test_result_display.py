"""The result layer is staged: the Run click returns before napari builds it (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_stage_returns_before_the_layer_is_built(make_napari_viewer_proxy, qtbot):
    from napari_d3ip.widgets.result_display import is_shown, stage_result_layer

    viewer = make_napari_viewer_proxy()
    order: list[str] = []
    layer = stage_result_layer(viewer, np.zeros((4, 8, 8), np.float32),
                               {"name": "result", "scale": (2.0, 1.0, 1.0)},
                               then=[lambda: order.append("labels"), None,
                                     lambda: order.append("views")])
    assert not is_shown(viewer, layer) and order == []  # nothing built in the call itself
    qtbot.waitUntil(lambda: order == ["labels", "views"], timeout=5000)
    assert is_shown(viewer, layer) and [ly.name for ly in viewer.layers] == ["result"]
    assert tuple(layer.scale) == (2.0, 1.0, 1.0)


def test_owner_gone_stops_the_remaining_steps(make_napari_viewer_proxy, qtbot):
    from qtpy.QtWidgets import QWidget

    from napari_d3ip.widgets.result_display import stage_result_layer

    viewer = make_napari_viewer_proxy()
    owner = QWidget()
    ran: list[int] = []
    stage_result_layer(viewer, np.zeros((2, 4, 4), np.float32), {"name": "r"},
                       then=[lambda: ran.append(1)], owner=owner)
    owner.deleteLater()
    qtbot.wait(200)
    assert ran == [] and "r" not in [ly.name for ly in viewer.layers]
