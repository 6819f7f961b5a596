"""gc_hold: while a run is live, full GC passes skip what existed before it (no 0.2 s GUI
stalls), and everything is collectable again once the last run ends."""

from __future__ import annotations

import gc
import weakref

import pytest

from napari_d3ip.widgets import gc_hold


class Node:
    """A cyclic-garbage candidate that only the cyclic GC can free."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _clean_gc_state():
    assert gc_hold.holders() == 0 and gc.get_freeze_count() == 0, "a test left the GC frozen"
    yield
    assert gc_hold.holders() == 0
    gc.unfreeze()


def _cycle() -> weakref.ref:
    node = Node()
    return weakref.ref(node)  # the only strong reference left is the cycle


def test_cycles_older_than_the_run_wait_for_its_end():
    old = _cycle()
    hold = gc_hold.Hold()
    assert gc.get_freeze_count() > 0
    gc.collect()
    assert old() is not None, "frozen: a full collection must not walk what the run did not make"
    hold.release()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert old() is None, "after the run nothing may stay uncollectable"


def test_garbage_the_run_makes_is_collected_during_it():
    hold = gc_hold.Hold()
    young = _cycle()
    gc.collect()
    assert young() is None
    hold.release()


def test_frozen_until_the_last_of_two_runs_ends_and_release_is_idempotent():
    first, second = gc_hold.Hold(), gc_hold.Hold()
    assert gc_hold.holders() == 2
    first.release()
    first.release()  # end, failure and teardown may each release
    assert gc_hold.holders() == 1 and gc.get_freeze_count() > 0 and not first.live
    made_by_first = _cycle()
    second.release()
    assert gc_hold.holders() == 0 and gc.get_freeze_count() == 0
    gc.collect()
    assert made_by_first() is None


def test_a_freeze_made_by_someone_else_is_left_alone():
    gc.freeze()  # e.g. a fork server
    theirs = gc.get_freeze_count()
    hold = gc_hold.Hold()
    assert gc.get_freeze_count() == theirs  # nothing of ours added
    hold.release()
    assert gc.get_freeze_count() == theirs  # and theirs not undone


def test_a_hold_dropped_without_release_gives_the_freeze_back():
    hold = gc_hold.Hold()
    assert gc_hold.holders() == 1
    del hold
    assert gc_hold.holders() == 0 and gc.get_freeze_count() == 0


def test_thaw_lets_one_collection_see_everything_then_refreeze():
    gc_hold.thaw()  # not held: nothing to do
    assert gc.get_freeze_count() == 0
    hold = gc_hold.Hold()
    old = _cycle()  # made during the run, frozen by the next freeze
    gc_hold.refreeze()  # not thawed: nothing to do
    older = _cycle()
    gc_hold.thaw()
    assert gc.get_freeze_count() == 0 and gc_hold.holders() == 1
    gc.collect()  # a layer removal's collection (napari frees the layer's GPU objects)
    assert old() is None and older() is None
    gc_hold.refreeze()
    assert gc.get_freeze_count() > 0
    gc_hold.thaw()
    hold.release()  # ends while thawed
    gc_hold.refreeze()  # the timer fires after the run ended: must not freeze again
    assert gc.get_freeze_count() == 0 and gc_hold.holders() == 0
