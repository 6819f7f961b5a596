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
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_holders = 0
_ours = False  # True while the permanent generation is this module's


class Hold:
    """One live run's claim; `release()` is idempotent (end, failure and teardown may each
    call it)."""

    def __init__(self) -> None:
        self._live = True
        _acquire()

    @property
    def live(self) -> bool:
        return self._live

    def release(self) -> None:
        if self._live:
            self._live = False
            _release()

    def __del__(self) -> None:  # a claim dropped without release must not freeze for good
        self.release()


def _acquire() -> None:
    global _holders, _ours
    with _lock:
        _holders += 1
        if _ours or gc.get_freeze_count() == 0:  # also what an earlier live run has made
            gc.freeze()
            _ours = True


def _release() -> None:
    global _holders, _ours
    with _lock:
        _holders = max(_holders - 1, 0)
        if _holders == 0 and _ours:
            _ours = False
            gc.unfreeze()


def holders() -> int:
    """How many runs hold the freeze now (for tests and diagnostics)."""
    return _holders
