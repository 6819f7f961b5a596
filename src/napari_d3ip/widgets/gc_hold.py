"""Keep Python's cyclic garbage collector off the objects a live run did not make (issue 14).

Why: napari, Qt and torch keep some 0.2-0.4 million objects that the cyclic GC tracks. A full
collection walks every one of them with the interpreter lock held: 0.15-0.26 s measured on a
2-core Xeon (`benchmarks/gui_stall.py` records each one), during which the window cannot
repaint, whichever thread triggered it. Nobody chooses when it comes: when allocations cross
CPython's thresholds (in the benchmark, right when napari adds and draws the result layer of a
second run), and on every layer removal (napari calls `gc.collect()` there; closing a viewer
mid-run ends in one).

While at least one run is live, the objects alive when each of them started are frozen
(`gc.freeze()`, which only moves a list: O(1)), so collections walk only what the runs have
made since. When the last live run ends they are unfrozen (`gc.unfreeze()`), so nothing lives
longer than it would have: garbage that appeared meanwhile is found by the next collection, as
without the plugin. If something else in the process froze objects before (a fork server),
this module does nothing at all: it would unfreeze what it did not freeze.

One collection must see everything: napari collects right after a layer is removed, to free
that layer's GPU resources at once (a fix for some Windows OpenGL drivers). `watch_removals`
(called by each widget for its viewer) calls `thaw()` when a layer is about to be removed during
a run and `refreeze()` on the next turn of the event loop, so that collection walks the whole
heap as napari means it to (and a closing viewer, which removes every layer, costs what it
costs without the plugin).

Still needed, measured after the run lifecycle moved to `run_controller` (2026-12-02,
`benchmarks/gui_stall.py`, docs/gui.md "Stalls"): with it off, every one of eight runs had a full
collection of 0.27-0.50 s while Simulate added its layers, none of nine with it on. It stays on
by default; `NAPARI_D3IP_GC_HOLD=0` turns it off (e.g. to measure it again, or where another
part of the process needs `gc.freeze()` for itself).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import weakref
from typing import Any

_lock = threading.RLock()  # re-entrant: a Hold.__del__ may run inside a locked section (GC)
_holders = 0
_ours = False  # True while the permanent generation is this module's
_thawed = False  # held, but unfrozen until `refreeze()` (a layer removal's collection)


def enabled() -> bool:
    """The setting: on unless the environment variable NAPARI_D3IP_GC_HOLD is "0" (see the
    module's docstring for why it exists and docs/gui.md for the measurement that keeps it)."""
    return os.environ.get("NAPARI_D3IP_GC_HOLD", "1").strip() != "0"


class Hold:
    """One live run's claim; `release()` is idempotent (end, failure and teardown may each
    call it). With the setting off (`enabled()` False) it claims nothing."""

    def __init__(self) -> None:
        self._live = enabled()
        if self._live:
            _acquire()

    @property
    def live(self) -> bool:
        return self._live

    def release(self) -> None:
        if self._live:
            self._live = False
            _release()

    def __del__(self) -> None:  # a claim dropped without release must not freeze for good
        with contextlib.suppress(Exception):  # at interpreter exit the module may be gone
            self.release()


def _acquire() -> None:
    global _holders, _ours
    with _lock:
        _holders += 1
        if _thawed:
            return  # `refreeze()` freezes for this run too
        if _ours or gc.get_freeze_count() == 0:  # also what an earlier live run has made
            gc.freeze()
            _ours = True


def _release() -> None:
    global _holders, _ours, _thawed
    with _lock:
        _holders = max(_holders - 1, 0)
        if _holders == 0 and (_ours or _thawed):
            if _ours:
                gc.unfreeze()
            _ours = _thawed = False


def thaw() -> None:
    """Unfreeze until `refreeze()`, so the next collection sees every object (napari's
    collection after a layer removal frees that layer's GPU resources). No-op when not held."""
    global _ours, _thawed
    with _lock:
        if _ours:
            gc.unfreeze()
            _ours, _thawed = False, True


def refreeze() -> None:
    """Freeze again after `thaw()`, if runs still hold it (else nothing)."""
    global _ours, _thawed
    with _lock:
        if _thawed and _holders > 0 and gc.get_freeze_count() == 0:
            gc.freeze()
            _ours = True
        _thawed = False


def holders() -> int:
    """How many runs hold the freeze now (for tests and diagnostics)."""
    return _holders


_watched: weakref.WeakSet = weakref.WeakSet()


def watch_removals(viewer: Any) -> None:
    """Thaw for every layer removal in `viewer` while a run holds the freeze, and freeze again
    on the next event-loop turn (after napari's collection, batched ones included). Once per
    viewer; public napari API (`viewer.layers.events.removing`)."""
    layers = getattr(viewer, "layers", None)
    if layers is None or layers in _watched:
        return
    _watched.add(layers)
    layers.events.removing.connect(_on_removing)


def _on_removing(_event: Any = None) -> None:
    if _holders == 0:
        return
    thaw()
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, refreeze)  # a plain function: kept by Qt until it runs
