"""The result layer of a run, shown without freezing the window at Run (issue 14).

Adding an image layer makes napari build, on the GUI thread and in one go, its vispy visual,
its layer controls and the selection change (0.2-0.7 s measured on a loaded 2-core machine
under software OpenGL, benchmarks/gui_stall.md), and opening the orthogonal views copies every
layer twice more. `stage_result_layer` returns at once with the layer *model* (cheap, no Qt),
so the Run click only starts the worker and relabels its button; the heavy parts then run in
their own turns of the event loop, while the worker loads the prior: add the layer, then each
follow-up (axis labels, the orthogonal views). The window repaints between them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

_PENDING: set[Any] = set()


def stage_result_layer(viewer: Any, data: Any, kwargs: dict[str, Any],
                       then: Sequence[Callable[[], Any] | None] = (),
                       owner: Any = None) -> Any:
    """A new image layer for `data`, added to `viewer` on the next event-loop turn; each of
    `then` runs on a later turn of its own (None entries are skipped). Returns the layer at
    once: its data can be replaced before it is shown (the first estimate may be early).

    `owner` (the dock widget's content) carries the timer: if it is deleted first (the dock or
    the viewer closed within those few milliseconds), the remaining steps never run."""
    from napari.layers import Image
    from qtpy.QtCore import QTimer

    layer = Image(data, **kwargs)
    steps: list[Callable[[], Any]] = [lambda: _add(viewer, layer)]
    steps += [f for f in then if f is not None]
    timer = QTimer(owner)
    timer.setSingleShot(True)
    timer.setInterval(0)
    state = {"next": 0}

    def run() -> None:
        i = state["next"]
        state["next"] = i + 1
        with contextlib.suppress(RuntimeError):  # a Qt object of the viewer is gone
            steps[i]()
        if i + 1 < len(steps):
            timer.start()
        else:
            _PENDING.discard(timer)

    timer.timeout.connect(run)
    timer.start()
    _PENDING.add(timer)  # a timer without owner must outlive this call
    return layer


def _add(viewer: Any, layer: Any) -> None:
    if layer not in viewer.layers:
        viewer.add_layer(layer)


def is_shown(viewer: Any, layer: Any) -> bool:
    """True once the staged layer is in the viewer (and not removed by the user since)."""
    return layer is not None and layer in viewer.layers
