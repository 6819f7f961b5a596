"""napari thread workers around the library's generators.

Everything slow happens here, off the GUI thread: loading priors, the diffusion loop, and
turning each estimate into a display-ready array. Estimates are throttled in the worker (about
2 Hz, always including the last step) so the GUI thread only ever receives what it will draw.

Cancelling uses our own `threading.Event` rather than `worker.quit()`: the wrapped generator
sees it between two steps, closes the library generator (which releases its memory at once),
and returns None, so a cancelled run ends through the same `returned`/`finished` signals as a
completed one.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..events import Result, Step

#: seconds between two estimates sent to the GUI (≈ 2 Hz)
DEFAULT_INTERVAL = 0.5


@dataclass
class Update:
    """One step's progress for the GUI; `image` is set only when it is time to redraw."""

    step: Step  # the Step with its estimate removed (the GUI never reads it)
    image: np.ndarray | None = None


@dataclass
class SampleUpdate:
    """Progress of unconditional prior sampling."""

    index: int
    total: int
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


def _release() -> None:
    """Give memory back after a run or a cancel (GPU caches included).

    Tensors are freed by reference counting when the generator closes; only the young
    generations are collected here: a full `gc.collect()` of a napari process holds the GIL
    for ~0.3 s, a visible freeze of the GUI thread."""
    gc.collect(1)
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


class RunHandle:
    """A worker with its cancel flag and a flag set once its generator has really ended.

    `stop()` is for teardown (viewer closing): it detaches the GUI from the worker, asks it
    to cancel and waits (bounded) until the library generator is closed.
    """

    def __init__(self) -> None:
        self.worker: Any = None
        self.cancel_event = threading.Event()
        self.stopped = threading.Event()

    def start(self) -> None:
        self.worker.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def stop(self, timeout: float = 0.2) -> bool:
        """Disconnect, cancel, and wait (at most `timeout`) until the worker ended; True if
        it did in time. The worker notices the cancel between two network batches, so it ends
        on its own shortly after; closing a window never waits for a whole step."""
        w = self.worker
        if w is not None:
            for sig in ("yielded", "returned", "errored", "finished", "started"):
                with contextlib.suppress(TypeError, RuntimeError, AttributeError):
                    getattr(w, sig).disconnect()
        self.cancel_event.set()
        if w is None or not getattr(w, "_running", True):
            return True
        return self.stopped.wait(timeout)


class WorkerFailed(Exception):
    """A RuntimeError raised inside a generator worker, re-raised under another type.

    napari/superqt generator workers treat a RuntimeError from the generator as "the worker
    object was deleted" and swallow it (no `errored`, no `finished`). PyTorch reports most
    failures (out of memory, shape mismatches) as RuntimeError, so we re-raise them as this.
    """


def _until_stopped(gen: Generator[Any, Any, Any], stopped: threading.Event):
    """Forward `gen`, make its RuntimeErrors visible, and set `stopped` when it ends."""
    try:
        return (yield from gen)
    except RuntimeError as e:
        raise WorkerFailed(f"{type(e).__name__}: {e}") from e
    finally:
        stopped.set()


def _generator_worker(gen: Generator[Any, Any, Any], stopped: threading.Event):
    """A napari GeneratorWorker (errors become notifications) over an existing generator."""
    from napari.qt.threading import GeneratorWorker

    return GeneratorWorker(_until_stopped, gen, stopped)


# -- reconstruction ------------------------------------------------------------------------

def reconstruct_steps(
    measurement: Any,
    config: Any,
    prior: Any = None,
    *,
    cancel: threading.Event,
    interval: float = DEFAULT_INTERVAL,
    run: Callable[..., Generator[Step, None, Result]] | None = None,
) -> Generator[Update, None, Result | None]:
    """Drive `pipeline.reconstruct`, yield throttled Updates; return the Result or None."""
    import inspect

    from ..pipeline import RunCancelled

    if run is None:
        from ..pipeline import reconstruct as run
    try:
        takes_stop = "should_stop" in inspect.signature(run).parameters
    except (TypeError, ValueError):
        takes_stop = False
    gen = run(measurement, config, prior, should_stop=cancel.is_set) if takes_stop \
        else run(measurement, config, prior)
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
        _release()
    return result  # a run that finished before it saw the cancel keeps its work


def reconstruct_worker(measurement: Any, config: Any, prior: Any = None, *,
                       interval: float = DEFAULT_INTERVAL,
                       run: Callable[..., Generator[Step, None, Result]] | None = None
                       ) -> RunHandle:
    """An unstarted run: worker.yielded → Update, worker.returned → Result | None."""
    handle = RunHandle()
    handle.worker = _generator_worker(
        reconstruct_steps(measurement, config, prior, cancel=handle.cancel_event,
                          interval=interval, run=run), handle.stopped)
    return handle


# -- unconditional prior samples -----------------------------------------------------------

def prior_sample_steps(
    prior: str, n: int, nfe: int, seed: int, device: str = "auto", *,
    cancel: threading.Event, interval: float = DEFAULT_INTERVAL, eta: float = 0.85,
) -> Generator[SampleUpdate, None, np.ndarray | None]:
    """Load the prior (in this thread) and draw n samples; return (n, H, W) in [0, 1] or None."""
    from ..core.prior import load_prior, resolve_device
    from ..core.sampling import sample_prior

    p = load_prior(prior, device=resolve_device(device))
    gen = sample_prior(p, n=n, nfe=nfe, eta=eta, seed=seed)
    throttle = Throttle(interval)
    final: np.ndarray | None = None
    try:
        for i, total, x0 in gen:
            if cancel.is_set():
                return None
            last = i + 1 >= total
            image = np.clip(to_display(x0[:, 0]), 0.0, 1.0) if throttle.ready(force=last) else None
            if last:
                final = image
            yield SampleUpdate(i, total, image)
    finally:
        gen.close()
        del p
        _release()
    return final


def prior_samples_worker(prior: str, n: int, nfe: int, seed: int, device: str = "auto", *,
                         interval: float = DEFAULT_INTERVAL) -> RunHandle:
    """An unstarted run: worker.yielded → SampleUpdate, worker.returned → (n, H, W) | None."""
    handle = RunHandle()
    handle.worker = _generator_worker(
        prior_sample_steps(prior, n, nfe, seed, device, cancel=handle.cancel_event,
                           interval=interval), handle.stopped)
    return handle


# -- measurements --------------------------------------------------------------------------

@dataclass
class Prepared:
    """A measurement and its display arrays, computed in the worker thread."""

    measurement: Any
    pinv: np.ndarray  # A†y (N, H, W)
    name: str


def simulate_prepared(volume: np.ndarray, kind: str, noise: float, seed: int,
                      params: dict[str, Any], name: str, affine: np.ndarray | None = None,
                      intensity: tuple[float, float] | None = None) -> Prepared:
    """Simulate the measurement of a fully sampled volume and compute A†y (worker thread):
    the library's `build_measurement` (scale to [0, 1], simulate, attach the geometry)."""
    from ..measurement_builder import build_measurement

    m = build_measurement(volume, kind, noise=noise, seed=seed, device="cpu", affine=affine,
                          intensity=intensity, source=name, **params)
    return Prepared(m, to_display(m.pinv()), name)


def read_prepared(path: str, options: Any = None) -> Prepared:
    """Read a measurement file through the one door (any registered format, `options` an
    io.formats.OpenOptions) and compute A†y (worker thread)."""
    from pathlib import Path

    from ..io import open_measurement

    m = open_measurement(path, options)
    name = Path(path).name.split(".")[0]
    return Prepared(m, to_display(m.pinv()), name)


def function_worker(fn: Callable[..., Any], *args: Any, **kwargs: Any):
    """An unstarted napari FunctionWorker; the caller handles `errored` (no re-raise)."""
    from napari.qt.threading import create_worker

    return create_worker(fn, *args, _start_thread=False, _ignore_errors=True, **kwargs)
