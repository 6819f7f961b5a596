"""The widgets' plain-Python parts: run state machine, remembered parameters, throttling."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_d3ip.events import Result, Step
from napari_d3ip.widgets.state import ParamStore, Phase, RunState, StateError
from napari_d3ip.widgets.workers import Throttle, reconstruct_steps


def test_run_state_happy_path_and_labels():
    s = RunState()
    seen = []
    s.connect(lambda st: seen.append(st.text()))
    assert s.text() == "Idle" and not s.active
    s.start("loading")
    assert s.active and s.text() == "Preparing: loading"
    assert s.progress("adapting", 3, 50) and s.text() == "Adapting 3/50"
    assert s.progress("sampling", 4, 50) and s.phase is Phase.SAMPLING
    s.finish("PSNR 30 dB")
    assert s.phase is Phase.DONE and not s.active and "PSNR" in s.text()
    assert seen[0] == "Preparing: loading"
    s.start()  # a second run from Done
    assert s.phase is Phase.PREPARING


def test_run_state_cancel_and_fail():
    s = RunState()
    assert not s.cancel()  # nothing to cancel
    s.start()
    s.progress("sampling", 2, 10)
    assert s.cancel() and s.phase is Phase.CANCELLING and s.active
    assert not s.cancel()  # already stopping
    assert not s.progress("sampling", 3, 10)  # late steps are ignored
    s.finish()
    assert s.phase is Phase.IDLE and "cancelled at step 2/10" in s.text()
    s.start()
    s.fail("RuntimeError: boom")
    assert s.phase is Phase.FAILED and "boom" in s.text() and not s.active
    with pytest.raises(StateError):
        s.finish()  # Failed -> Done is a bug


def test_param_store_remembers_and_restores(tmp_path):
    store = ParamStore("w", {"n": 16, "lr": 1e-3, "name": "a", "flag": False}, tmp_path)
    assert store.load() == store.defaults
    store.save({"n": 4, "lr": 2, "name": "b", "flag": True, "unknown": 1})
    again = ParamStore("w", store.defaults, tmp_path).load()
    assert again == {"n": 4, "lr": 2, "name": "b", "flag": True}
    store.path.write_text('{"n": "sixteen", "flag": 1}')  # wrong types are ignored
    assert store.load() == store.defaults
    store.path.write_text("not json")
    assert store.load() == store.defaults
    assert store.restore_defaults() == store.defaults and not store.path.exists()


def test_param_store_uses_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "cfg"))
    store = ParamStore("x", {"a": 1})
    store.save({"a": 2})
    assert (tmp_path / "cfg" / "x.json").exists()


def test_throttle():
    now = [0.0]
    t = Throttle(0.5, clock=lambda: now[0])
    assert t.ready()
    now[0] = 0.2
    assert not t.ready() and t.ready(force=True)
    now[0] = 0.8
    assert t.ready()


def _fake_run(n: int, fail_at: int | None = None, closed: list | None = None):
    def run(measurement, config, prior=None, *, should_stop=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise RuntimeError("boom")
                yield Step(i, 980 - i, n, "sampling", np.full((2, 4, 4), i, np.float32),
                           loss=1.0 / (i + 1), elapsed=i, eta=n - i)
            return Result(volume=np.ones((2, 4, 4), np.float32), card={"ok": True})
        finally:
            if closed is not None:
                closed.append(True)
    return run


def test_reconstruct_steps_throttles_and_returns():
    cancel = threading.Event()
    gen = reconstruct_steps(None, None, cancel=cancel, interval=3600, run=_fake_run(5))
    updates = []
    try:
        while True:
            updates.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert len(updates) == 5
    images = [u.image is not None for u in updates]
    assert images == [True, False, False, False, True]  # first, then the last step
    assert updates[-1].image[0, 0, 0] == 4 and updates[0].step.estimate is None
    assert result.card == {"ok": True}


def test_reconstruct_steps_cancel_closes_the_library_generator():
    cancel = threading.Event()
    closed: list = []
    gen = reconstruct_steps(None, None, cancel=cancel, interval=0, run=_fake_run(100, None, closed))
    next(gen)
    next(gen)
    cancel.set()
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value is None and closed == [True]
