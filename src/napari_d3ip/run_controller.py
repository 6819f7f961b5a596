"""The run lifecycle of the GUI without Qt: evented run state, the run controller, and the job
that drives `pipeline.reconstruct` off the GUI thread.

Why here and not in `widgets/`: the lifecycle (what may follow what, when a late step is
ignored, what the progress line says, who releases what when a window closes mid-run) is logic,
and logic is tested without a display. The widgets render it: the Run bar is a view of a
`RunController` (its button, label and progress bar follow the controller's signals) and the
front end supplies only the thread: a `launch(job)` that runs `job.drive()` on a worker and
forwards its yields, return and error to `job.yielded`, `job.returned`, `job.errored` on the
GUI thread (napari's GeneratorWorker in `widgets/workers.py`; a plain loop in the tests).

Signals are psygnal's (a napari dependency, no Qt), as careamics-napari's `signals/` are.
Phases: Idle → Preparing → Adapting/Sampling k of n → Done / Failed, with Cancelling in
between when the user asks to stop (a cancelled run ends Idle, "cancelled at step k/n"); a
refused Run is a note on an idle form. Impossible transitions raise `StateError`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol

import numpy as np
from psygnal import Signal

from .events import Result, Step

#: seconds between two estimates sent to the GUI (≈ 2 Hz)
DEFAULT_INTERVAL = 0.5


class Phase(str, Enum):
    IDLE = "Idle"
    PREPARING = "Preparing"
    ADAPTING = "Adapting"
    SAMPLING = "Sampling"
    CANCELLING = "Cancelling"
    DONE = "Done"
    FAILED = "Failed"


#: phases in which a worker is alive (Run is a Cancel button)
ACTIVE = frozenset({Phase.PREPARING, Phase.ADAPTING, Phase.SAMPLING, Phase.CANCELLING})
_RUNNING = frozenset({Phase.PREPARING, Phase.ADAPTING, Phase.SAMPLING})
_STEPPING = frozenset({Phase.ADAPTING, Phase.SAMPLING, Phase.CANCELLING, Phase.DONE, Phase.FAILED})

_ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.PREPARING}),
    Phase.DONE: frozenset({Phase.PREPARING, Phase.IDLE}),
    Phase.FAILED: frozenset({Phase.PREPARING, Phase.IDLE}),
    Phase.PREPARING: _STEPPING,
    Phase.ADAPTING: _STEPPING,
    Phase.SAMPLING: _STEPPING,
    # a cancelled run ends Idle; a run that finished or failed before it saw the cancel
    # still reports what really happened
    Phase.CANCELLING: frozenset({Phase.IDLE, Phase.DONE, Phase.FAILED}),
}


class StateError(RuntimeError):
    """An impossible transition: a programming error, not a user error."""


def fmt_seconds(s: float | None) -> str:
    """'m:ss' (or 'h:mm:ss'); '–' when unknown."""
    if s is None or not math.isfinite(s) or s < 0:
        return "–"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class RunState:
    """Phase + step k of n + a message + a note; `changed` is emitted after every change."""

    changed = Signal(object)  # the RunState itself

    def __init__(self) -> None:
        self.phase = Phase.IDLE
        self.step = 0
        self.total = 0
        self.message = ""
        self.notice = ""  # a note on an idle form (a refused Run), cleared by any transition

    @property
    def active(self) -> bool:
        """A worker is alive (the Run button is a Cancel button)."""
        return self.phase in ACTIVE

    @property
    def running(self) -> bool:
        """Running and not asked to stop: updates from the worker are welcome."""
        return self.phase in _RUNNING

    def text(self) -> str:
        """The label a user reads, e.g. 'Adapting 3/50' or 'Failed: CUDA out of memory'."""
        if self.notice:
            return self.notice
        p = self.phase
        s = f"{p.value} {self.step}/{self.total}" if p in (Phase.ADAPTING, Phase.SAMPLING) \
            and self.total else p.value
        return f"{s}: {self.message}" if self.message else s

    def connect(self, fn: Callable[[RunState], Any]) -> None:
        """Call `fn(state)` after every change (`changed.connect`)."""
        self.changed.connect(fn)

    def _go(self, phase: Phase, message: str = "") -> None:
        if phase not in _ALLOWED[self.phase]:
            raise StateError(f"run state cannot go from {self.phase.value} to {phase.value}")
        self.phase, self.message, self.notice = phase, message, ""
        self.changed.emit(self)

    def note(self, text: str) -> bool:
        """Show `text` instead of the phase while no run is live (a refused Run, with its
        fix); False, and nothing changes, during a run."""
        if self.active:
            return False
        self.notice = text
        self.changed.emit(self)
        return True

    def start(self, message: str = "") -> None:
        self.step, self.total = 0, 0
        self._go(Phase.PREPARING, message)

    def progress(self, phase: str, step: int, total: int) -> bool:
        """A Step arrived; returns False (and changes nothing) if the run is stopping/over."""
        if not self.running:
            return False
        self.step, self.total = int(step), int(total)
        self._go(Phase.ADAPTING if phase == "adapting" else Phase.SAMPLING)
        return True

    def cancel(self) -> bool:
        """Ask to stop; False if there is nothing to cancel (already stopping or idle)."""
        if not self.running:
            return False
        self._go(Phase.CANCELLING, "stops after the current step")
        return True

    def finish(self, message: str = "") -> None:
        """The worker returned: Done, or Idle if it was a cancelled run."""
        if self.phase is Phase.CANCELLING:
            self._go(Phase.IDLE, message or f"cancelled at step {self.step}/{self.total}")
        else:
            self._go(Phase.DONE, message)

    def fail(self, message: str) -> None:
        self._go(Phase.FAILED, message)


# -- the job: a generator on a worker thread the front end provides ---------------------------

class Handle(Protocol):
    """What the controller needs of a run's worker (a `Job`, or a test's fake)."""

    def start(self) -> None: ...
    def cancel(self) -> None: ...
    def stop(self, timeout: float = ...) -> Any: ...


class WorkerFailed(Exception):
    """A RuntimeError raised inside the job's generator, re-raised under another type.

    napari/superqt generator workers treat a RuntimeError from the generator as "the worker
    object was deleted" and swallow it (no `errored`, no `finished`). PyTorch reports most
    failures (out of memory, shape mismatches) as RuntimeError, so they are re-raised as this.
    """


class Job:
    """One run's generator, its cancel flag, and a flag set once the generator has ended.

    `make(cancel)` builds the generator (it must stop when `cancel` is set); `launch(job)`
    (the front end's) returns an unstarted worker that iterates `job.drive()` off the GUI
    thread and emits `job.yielded` / `job.returned` / `job.errored` on the GUI thread.
    """

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)

    def __init__(self, make: Callable[[threading.Event], Generator[Any, Any, Any]],
                 launch: Callable[[Job], Any]) -> None:
        self.cancel_event = threading.Event()
        self.stopped = threading.Event()
        self._gen = make(self.cancel_event)
        self._started = False
        self.worker = launch(self)

    def drive(self) -> Generator[Any, Any, Any]:
        """Forward the generator, make its RuntimeErrors visible, set `stopped` when it ends."""
        try:
            return (yield from self._gen)
        except RuntimeError as e:
            raise WorkerFailed(f"{type(e).__name__}: {e}") from e
        finally:
            self.stopped.set()

    def start(self) -> None:
        self._started = True
        self.worker.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def stop(self, timeout: float = 0.2) -> bool:
        """Teardown: disconnect every listener, cancel, and wait (at most `timeout`) until the
        generator ended; True if it did (or never started). The generator sees the cancel
        between two network batches, so it ends on its own shortly after: a closing window
        never waits for a whole step."""
        for sig in (self.yielded, self.returned, self.errored):
            sig.disconnect()
        self.cancel_event.set()
        if not self._started:
            return True
        return self.stopped.wait(timeout)


@dataclass
class Update:
    """One step's progress for the GUI; `image` is set only when it is time to redraw."""

    step: Step  # the Step with its estimate removed (the GUI never reads it)
    image: np.ndarray | None = None


class Throttle:
    """True at most once per `interval` seconds (the first call is always True)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = float(interval)
        self._clock = clock
        self._last: float | None = None

    def ready(self, force: bool = False) -> bool:
        now = self._clock()
        if force or self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def to_display(volume: Any) -> np.ndarray:
    """A private float32 C-contiguous copy with NaN/inf removed (done in the worker thread)."""
    if hasattr(volume, "detach"):  # a torch tensor
        volume = volume.detach().float().cpu().numpy()
    arr = np.array(volume, dtype=np.float32, copy=True, order="C")
    if not np.isfinite(arr).all():
        np.nan_to_num(arr, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return arr


def release_memory() -> None:
    """Give memory back after a run or a cancel (GPU caches included).

    Tensors are freed by reference counting when the generator closes; only the young
    generations are collected here: a full `gc.collect()` of a napari process holds the GIL
    for ~0.3 s, a visible freeze of the GUI thread."""
    gc.collect(1)
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


RunFn = Callable[..., Generator[Step, None, Result]]


def reconstruct_steps(measurement: Any, config: Any, prior: Any = None, *,
                      cancel: threading.Event, interval: float = DEFAULT_INTERVAL,
                      run: RunFn | None = None) -> Generator[Update, None, Result | None]:
    """Drive `pipeline.reconstruct` (or `run`, same signature), yield throttled Updates;
    return the Result, or None when cancelled."""
    from .pipeline import RunCancelled

    if run is None:
        from .pipeline import reconstruct as run
    gen = run(measurement, config, prior, should_stop=cancel.is_set)
    throttle = Throttle(interval)
    result: Result | None = None
    try:
        while not cancel.is_set():
            try:
                step = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            except RunCancelled:  # should_stop() said so inside a step
                return None
            last = step.index + 1 >= step.total
            image = to_display(step.estimate) if throttle.ready(force=last) else None
            yield Update(replace(step, estimate=None), image)
    finally:
        gen.close()  # cancels the library loop within the current step and frees its tensors
        del gen
        release_memory()
    return result  # a run that finished before it saw the cancel keeps its work


def reconstruct_job(measurement: Any, config: Any, launch: Callable[[Job], Any], *,
                    prior: Any = None, interval: float = DEFAULT_INTERVAL,
                    run: RunFn | None = None) -> Job:
    """An unstarted reconstruction: `yielded` → Update, `returned` → Result | None."""
    return Job(lambda cancel: reconstruct_steps(measurement, config, prior, cancel=cancel,
                                                interval=interval, run=run), launch)


# -- the controller -----------------------------------------------------------------------------

class RunController:
    """One run at a time: its state, its worker handle, its clock, ETA and progress line.

    `progress(value, maximum, text)` is emitted when the progress line changes; `state.changed`
    after every transition. `hold()` (optional) is claimed for the duration of each run and
    released when it ends (`widgets/gc_hold`); `later(fn)` schedules `fn` on the next turn of
    the event loop (teardown releases the hold there, after the window's own cleanup).
    """

    progress = Signal(int, int, str)

    def __init__(self, hold: Callable[[], Any] | None = None,
                 later: Callable[[Callable[[], Any]], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state = RunState()
        self.handle: Handle | None = None
        self._make_hold = hold
        self._hold: Any = None
        self._later = later or (lambda fn: fn())
        self._clock = clock
        self._started_at = self._step_at = 0.0
        self._eta: float | None = None
        self._k, self._n = 0, 1
        self._text = ""
        self._worker_started = False

    # -- queries -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._clock() - self._started_at if self.state.active else 0.0

    def since_start(self) -> float:
        """Seconds since the last begin (a click right after Run is a double click's second)."""
        return self._clock() - self._started_at

    def progress_text(self) -> str:
        """The progress line now: '3/10 · 0:12 elapsed · ETA 1:30' (the ETA counts down
        between steps), or, before the first step, how long the preparation has taken."""
        if self._k == 0:
            return (f"preparing, then step 1… {fmt_seconds(self.elapsed())} elapsed "
                    "(ETA after the first step)")
        eta = None if self._eta is None else max(self._eta - (self._clock() - self._step_at), 0.0)
        return f"{self._k}/{self._n} · {fmt_seconds(self.elapsed())} elapsed · ETA {fmt_seconds(eta)}"

    # -- transitions ---------------------------------------------------------------------
    def begin(self, handle: Handle, message: str = "", total: int = 1, start: bool = True) -> None:
        """Show Preparing 0 of `total` and (with `start`) start `handle`; with `start=False`
        the front end starts it later with `start_worker()` (after the GUI work a run needs,
        e.g. building its result layer: done before the worker competes for the interpreter)."""
        self.handle = handle
        self._release_hold()
        self._hold = self._make_hold() if self._make_hold is not None else None
        self._started_at = self._step_at = self._clock()
        self._eta, self._k, self._n = None, 0, max(int(total), 1)
        self._worker_started = False
        self.state.start(message)
        self._emit(0, "preparing, then step 1…")
        if start:
            self.start_worker()

    def start_worker(self) -> bool:
        """Start the worker of a run begun with `start=False`; False when the run was shut
        down in between or has started already. A run cancelled in between still starts: its
        worker sees the cancel at once and ends the run."""
        if self.handle is None or self._worker_started:
            return False
        self._worker_started = True
        self.handle.start()
        return True

    def tick(self) -> None:
        """Once a second from the front end's timer: the clock runs during a long step."""
        if self.state.running:
            self._emit(self._k, self.progress_text())

    def step(self, phase: str, k: int, n: int, eta: float | None = None) -> bool:
        """Step k (1-based) of n arrived; False if the run is stopping (ignore the update)."""
        if not self.state.progress(phase, k, n):
            return False
        self._k, self._n, self._eta, self._step_at = int(k), max(int(n), 1), eta, self._clock()
        self._emit(self._k, self.progress_text() if eta is not None else f"{self._k}/{self._n}")
        return True

    def cancel(self) -> bool:
        """Ask the worker to stop after its current step; False if nothing to cancel."""
        if self.handle is not None and self.state.cancel():
            self.handle.cancel()
            return True
        return False

    def refuse(self, text: str) -> bool:
        """A Run that did not start: `text` (the reason and the fix) as the state's note."""
        return self.state.note(text)

    def end(self, message: str = "") -> None:
        """The worker returned (a result, or None after a cancel)."""
        cancelled = self.state.phase is Phase.CANCELLING
        self.handle = None
        self.state.finish(message)
        if not cancelled:
            self._emit(self._n, self._text)
        self._release_hold()

    def fail(self, message: str) -> None:
        """The worker raised."""
        self.handle = None
        self.state.fail(message)
        self._n = 1
        self._emit(0, "failed")
        self._release_hold()

    def shutdown(self, timeout: float = 0.0) -> None:
        """Viewer or dock closing: cancel the worker at once and wait at most `timeout` (it
        stops by itself between two network batches); the GUI never freezes here. The hold
        is released on the next event-loop turn, after the window's own cleanup."""
        handle, self.handle = self.handle, None
        self._release_hold(later=True)  # first: no view is touched before it
        if handle is None:
            return
        handle.stop(timeout)
        with contextlib.suppress(Exception):  # a view of a window being destroyed may raise
            if self.state.running:
                self.state.cancel()
            if self.state.active:
                self.state.finish("cancelled: the window or the dock was closed")

    # -- helpers -------------------------------------------------------------------------
    def _emit(self, value: int, text: str) -> None:
        self._text = text
        self.progress.emit(value, self._n, text)

    def _release_hold(self, later: bool = False) -> None:
        hold, self._hold = self._hold, None
        if hold is None:
            return
        if later:
            self._later(hold.release)
        else:
            hold.release()
