"""The GUI's run lifecycle without Qt (napari_d3ip.run_controller): evented state, the job on a
worker the front end provides, the controller's clock, ETA, progress line and teardown."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from napari_d3ip.events import Result, Step
from napari_d3ip.run_controller import (
    Job,
    Phase,
    RunController,
    RunState,
    StateError,
    WorkerFailed,
    fmt_seconds,
    reconstruct_job,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class LoopWorker:
    """A front end's worker without threads: start() runs the job's generator to its end and
    emits the job's signals, as napari's GeneratorWorker does on the GUI thread."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        gen = self.job.drive()
        try:
            while True:
                self.job.yielded.emit(next(gen))
        except StopIteration as stop:
            self.job.returned.emit(stop.value)
        except Exception as e:  # noqa: BLE001 - what a worker does with any error
            self.job.errored.emit(e)


class Hold:
    def __init__(self) -> None:
        self.released = 0

    def release(self) -> None:
        self.released += 1


def _fake_run(n: int, fail_at: int | None = None, closed: list | None = None):
    def run(measurement, config, prior=None, *, should_stop=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise RuntimeError("CUDA out of memory")
                yield Step(i, 980 - i, n, "sampling", np.full((2, 4, 4), i, np.float32),
                           loss=1.0, elapsed=i, eta=n - i)
            return Result(volume=np.ones((2, 4, 4), np.float32), card={"ok": True})
        finally:
            if closed is not None:
                closed.append(True)
    return run


def test_state_is_evented_and_refuses_impossible_transitions():
    s = RunState()
    seen: list[str] = []
    s.changed.connect(lambda st: seen.append(st.text()))
    s.start("loading")
    s.progress("adapting", 1, 4)
    assert s.cancel() and not s.progress("sampling", 2, 4)  # a late step changes nothing
    s.finish()
    assert seen == ["Preparing: loading", "Adapting 1/4", "Cancelling: stops after the current step",
                    "Idle: cancelled at step 1/4"]
    assert s.note("Not started: no measurement") and s.text() == "Not started: no measurement"
    s.start()
    assert not s.note("x") and s.notice == ""  # no note during a run; a transition clears it
    s.fail("boom")
    with pytest.raises(StateError, match="Failed to Done"):
        s.finish()


def test_job_forwards_steps_and_result_and_sets_stopped():
    closed: list = []
    job = reconstruct_job(None, None, LoopWorker, interval=3600, run=_fake_run(4, closed=closed))
    updates, results = [], []
    job.yielded.connect(updates.append)
    job.returned.connect(results.append)
    assert not job.stopped.is_set()
    job.start()
    assert [u.image is not None for u in updates] == [True, False, False, True]
    assert updates[-1].image[0, 0, 0] == 3 and updates[0].step.estimate is None
    assert results[0].card == {"ok": True} and job.stopped.is_set() and closed == [True]


def test_job_runtime_errors_surface_as_worker_failed():
    job = reconstruct_job(None, None, LoopWorker, run=_fake_run(4, fail_at=2))
    errors: list = []
    job.errored.connect(errors.append)
    job.start()
    assert isinstance(errors[0], WorkerFailed) and "CUDA out of memory" in str(errors[0])
    assert job.stopped.is_set()


def test_job_cancel_returns_none_and_closes_the_library_generator():
    closed: list = []
    job = reconstruct_job(None, None, LoopWorker, interval=0, run=_fake_run(100, closed=closed))
    results: list = []
    job.yielded.connect(lambda u: u.step.index == 1 and job.cancel())
    job.returned.connect(results.append)
    job.start()
    assert job.cancelled and results == [None] and closed == [True]


def test_job_stop_disconnects_and_does_not_wait_for_an_unstarted_worker():
    job = Job(lambda cancel: iter(()), LoopWorker)
    got: list = []
    job.returned.connect(got.append)
    assert job.stop(timeout=5.0) is True and job.cancelled  # never started: nothing to wait for
    job.returned.emit("late")
    assert got == []  # a late event reaches nobody


def test_job_stop_waits_at_most_timeout_for_a_started_worker():
    release = threading.Event()

    def slow(cancel):
        release.wait(5)
        yield 1

    class Thread:
        def __init__(self, job):
            self.job = job

        def start(self):
            threading.Thread(target=lambda: list(self.job.drive()), daemon=True).start()

    job = Job(slow, Thread)
    job.start()
    assert job.stop(timeout=0.05) is False  # still inside its step
    release.set()
    assert job.stopped.wait(5)


def test_controller_progress_line_clock_and_eta():
    clock, lines = Clock(), []
    c = RunController(clock=clock)
    c.progress.connect(lambda v, m, t: lines.append((v, m, t)))
    job = reconstruct_job(None, None, LoopWorker, run=_fake_run(1))
    c.begin(job, "dds/none on brain", total=10, start=False)
    assert c.state.phase is Phase.PREPARING and lines[-1] == (0, 10, "preparing, then step 1…")
    clock.t += 65
    c.tick()
    assert lines[-1][2] == "preparing, then step 1… 1:05 elapsed (ETA after the first step)"
    assert c.step("sampling", 1, 10, eta=90.0)
    assert lines[-1] == (1, 10, "1/10 · 1:05 elapsed · ETA 1:30")
    clock.t += 30
    c.tick()  # the ETA counts down between two steps
    assert lines[-1] == (1, 10, "1/10 · 1:35 elapsed · ETA 1:00")
    assert c.step("sampling", 2, 10) and lines[-1] == (2, 10, "2/10")
    assert c.elapsed() == pytest.approx(95.0)
    c.end("PSNR 30 dB")
    assert c.state.phase is Phase.DONE and lines[-1] == (10, 10, "2/10") and c.elapsed() == 0.0
    assert c.handle is None and c.state.text() == "Done: PSNR 30 dB"


def test_controller_starts_the_worker_once_and_never_after_shutdown():
    c = RunController()
    job = reconstruct_job(None, None, LoopWorker, run=_fake_run(2))
    results: list = []
    job.returned.connect(lambda r: (results.append(r), c.end()))
    c.begin(job, total=2, start=False)
    assert c.start_worker() and job.worker.starts == 1 and results[0].card == {"ok": True}
    assert not c.start_worker() and c.state.phase is Phase.DONE
    late = reconstruct_job(None, None, LoopWorker, run=_fake_run(2))
    c.begin(late, total=2, start=False)
    c.shutdown()  # the window closed before the result layer was built
    assert not c.start_worker() and late.worker.starts == 0
    assert c.state.phase is Phase.IDLE and "window or the dock was closed" in c.state.text()


def test_controller_cancel_fail_and_refuse():
    c = RunController()
    assert not c.cancel()  # nothing to cancel
    assert c.refuse("Not started: no measurement. Simulate one.") and "Simulate" in c.state.text()
    job = Job(lambda cancel: iter(()), LoopWorker)
    c.begin(job, total=5, start=False)
    c.step("sampling", 2, 5)
    assert not c.refuse("x")  # no note over a live run
    assert c.cancel() and job.cancelled and c.state.phase is Phase.CANCELLING
    assert not c.step("sampling", 3, 5)
    c.end()
    assert c.state.phase is Phase.IDLE and c.state.text() == "Idle: cancelled at step 2/5"
    lines: list = []
    c.progress.connect(lambda v, m, t: lines.append((v, m, t)))
    c.begin(Job(lambda cancel: iter(()), LoopWorker), total=5)
    c.fail("RuntimeError: boom")
    assert c.state.phase is Phase.FAILED and lines[-1] == (0, 1, "failed") and c.handle is None


def test_controller_holds_for_each_run_and_releases_on_every_ending():
    holds: list[Hold] = []
    later: list = []

    def hold() -> Hold:
        holds.append(Hold())
        return holds[-1]

    c = RunController(hold=hold, later=later.append)
    for ending in ("end", "fail", "shutdown"):
        c.begin(Job(lambda cancel: iter(()), LoopWorker), total=3)
        assert holds[-1].released == 0
        getattr(c, ending)(*(("boom",) if ending == "fail" else ()))
        if ending == "shutdown":  # on the next event-loop turn, after the window's cleanup
            assert holds[-1].released == 0 and len(later) == 1
            later.pop()()
        assert holds[-1].released == 1, ending
    with pytest.raises(StateError):  # one run at a time: the widgets check `state.active`
        c.begin(Job(lambda cancel: iter(()), LoopWorker), total=3)
        c.begin(Job(lambda cancel: iter(()), LoopWorker), total=3)


def test_double_click_window_and_fmt_seconds():
    clock = Clock()
    c = RunController(clock=clock)
    c.begin(Job(lambda cancel: iter(()), LoopWorker), total=3, start=False)
    clock.t += 0.3
    assert c.since_start() == pytest.approx(0.3)
    assert [fmt_seconds(s) for s in (None, -1, float("nan"), 59.6, 61, 3725)] == \
        ["–", "–", "–", "1:00", "1:01", "1:02:05"]


def test_the_controller_imports_no_qt_and_no_napari():
    code = ("import sys, napari_d3ip.run_controller; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', "
            "'PySide2', 'PySide6', 'napari', 'superqt', 'vispy')]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
