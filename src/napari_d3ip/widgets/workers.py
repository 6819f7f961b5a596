"""napari thread workers around the library's generators.

Everything slow happens here, off the GUI thread: loading priors, the diffusion loop, and
turning each estimate into a display-ready array. The run lifecycle itself (the job, its cancel
flag, the throttled reconstruction steps) is Qt-free in `napari_d3ip.run_controller`; this
module gives it a thread: `napari_launch` puts a job on a napari GeneratorWorker and forwards
the worker's signals to the job's, on the GUI thread.

Cancelling uses the job's own `threading.Event` rather than `worker.quit()`: the generator sees
it between two steps, closes the library generator (which releases its memory at once), and
returns None, so a cancelled run ends through the same `returned` signal as a completed one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..run_controller import (  # noqa: F401 (Update, reconstruct_steps: the widgets' names)
    DEFAULT_INTERVAL,
    Job,
    RunFn,
    Throttle,
    Update,
    reconstruct_job,
    reconstruct_steps,
    release_memory,
    to_display,
)


@dataclass
class SampleUpdate:
    """Progress of unconditional prior sampling."""

    index: int
    total: int
    image: np.ndarray | None = None


def napari_launch(job: Job) -> Any:
    """An unstarted napari GeneratorWorker over `job.drive()`; its yielded/returned/errored
    signals (delivered on the GUI thread) re-emitted by the job (errors become notifications
    where the widget says so)."""
    from napari.qt.threading import GeneratorWorker

    w = GeneratorWorker(job.drive)
    w.yielded.connect(lambda v: job.yielded.emit(v))
    w.returned.connect(lambda v: job.returned.emit(v))
    w.errored.connect(lambda e: job.errored.emit(e))
    return w


# -- reconstruction ------------------------------------------------------------------------

def reconstruct_worker(measurement: Any, config: Any, prior: Any = None, *,
                       interval: float = DEFAULT_INTERVAL, run: RunFn | None = None) -> Job:
    """An unstarted run: job.yielded → Update, job.returned → Result | None."""
    return reconstruct_job(measurement, config, napari_launch, prior=prior, interval=interval,
                           run=run)


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
        release_memory()
    return final


def prior_samples_worker(prior: str, n: int, nfe: int, seed: int, device: str = "auto", *,
                         interval: float = DEFAULT_INTERVAL) -> Job:
    """An unstarted run: job.yielded → SampleUpdate, job.returned → (n, H, W) | None."""
    return Job(lambda cancel: prior_sample_steps(prior, n, nfe, seed, device, cancel=cancel,
                                                 interval=interval), napari_launch)


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
