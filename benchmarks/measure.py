"""Measuring one benchmark run: wall time, the run card's sampling/adaptation split, peak
memory, adapted-parameter bytes, the paper's metrics (per-slice-mean PSNR/SSIM, volume PSNR),
time spent inside the UNet (hooks on the network module), and the machine and the exact
command it ran on.

Peak memory: the peak resident set size (RSS) of the process during the run minus its RSS at
the start of the run, sampled every 5 ms by a background thread reading /proc/self/statm.
(tracemalloc does not see torch's tensor allocations, and a resource.getrusage ru_maxrss delta
is the growth of the process's all-time high-water mark, which is 0 for any run that peaks
below an earlier run; it is recorded in the JSON as `ru_maxrss_delta_bytes` all the same.)
Short spikes under 5 ms can be missed; the prior, the measurement and the Python/torch
runtime, loaded before the run, are not counted.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import shlex
import sys
import threading
import time
import weakref
from typing import Any

import torch


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the high-water mark
        return _maxrss_bytes()


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) * (1 if sys.platform == "darwin" else 1024)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def release_memory() -> None:
    """Collect garbage and hand free heap pages back to the OS (glibc malloc_trim), so the
    RSS at the start of a run is its live memory and an earlier run's freed-but-kept pages do
    not hide this run's peak (without it a run can show a 0 MB peak)."""
    import gc

    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def warm_up(prior) -> None:
    """One-off costs outside the timed runs: imports (peft), the first network call."""
    import napari_d3ip.adapters  # noqa: F401
    import napari_d3ip.pipeline  # noqa: F401

    try:
        import peft  # noqa: F401
    except ImportError:
        pass
    if prior is not None:
        size = prior.net.config.image_size
        with torch.no_grad():
            prior.net(torch.zeros(1, 1, size, size, device=prior.device), 500)
    release_memory()


class PeakRSS:
    """Context manager: peak RSS above the RSS at entry, sampled every `interval` s."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.start = self.peak = 0
        self.maxrss_delta = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_bytes()
        self._maxrss0 = _maxrss_bytes()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.maxrss_delta = _maxrss_bytes() - self._maxrss0

    @property
    def delta(self) -> int:
        return self.peak - self.start


class UNetTimer:
    """Wall time spent inside the UNet, from hooks on the network module only (nothing global
    is patched): forward = forward pre-hook to forward hook; backward = from the moment the
    gradient reaches the UNet's output to the last gradient the UNet's backward computes (of
    its trainable parameters, e.g. the LoRA factors, or of its input x_t for DPS).

    Tensor hooks record those moments: one on the output of every forward that builds a graph,
    one on each trainable parameter and on each input that needs a gradient. A backward is
    closed (its time added) when the next forward starts, or when the stats are read.

    The module hooks are plain functions, so the LoRA copies the adapters make
    (copy.deepcopy of the prior's network) carry them too; their parameters are hooked the
    first time such a copy runs a forward with grad. Use as a context manager around a run.
    """

    def __init__(self, net: torch.nn.Module):
        self.net = net
        self._stats = {"forward_seconds": 0.0, "backward_seconds": 0.0, "forward_calls": 0}
        self._bw_start: float | None = None  # the backward in progress: gradient at the output
        self._bw_last = 0.0  # ... and the last gradient computed inside the UNet
        self._hooked: dict[int, weakref.ref] = {}  # id -> parameter already hooked
        self._handles: list[Any] = []

    @property
    def stats(self) -> dict[str, float]:
        self._close_backward()
        return self._stats

    def reset(self) -> None:
        self._bw_start = None
        for k in self._stats:
            self._stats[k] = 0 if k == "forward_calls" else 0.0

    def _close_backward(self) -> None:
        if self._bw_start is not None:
            self._stats["backward_seconds"] += max(self._bw_last - self._bw_start, 0.0)
            self._bw_start = None

    def _on_output_grad(self, grad: torch.Tensor) -> None:
        now = time.perf_counter()
        if self._bw_start is None:
            self._bw_start = now
        self._bw_last = now

    def _on_inner_grad(self, grad: torch.Tensor) -> None:
        self._bw_last = time.perf_counter()

    def __enter__(self) -> UNetTimer:
        stack: list[float] = []

        def pre(module, args):
            self._close_backward()  # a new forward: the previous backward is over
            stack.append(time.perf_counter())

        def post(module, args, out):
            self._stats["forward_seconds"] += time.perf_counter() - stack.pop()
            self._stats["forward_calls"] += 1
            if not (isinstance(out, torch.Tensor) and out.requires_grad):
                return
            out.register_hook(self._on_output_grad)
            for a in args:
                if isinstance(a, torch.Tensor) and a.requires_grad:
                    a.register_hook(self._on_inner_grad)
            for p in module.parameters():
                known = self._hooked.get(id(p))
                if p.requires_grad and (known is None or known() is not p):
                    self._hooked[id(p)] = weakref.ref(p)
                    self._handles.append(p.register_hook(self._on_inner_grad))

        self._handles = [self.net.register_forward_pre_hook(pre),
                         self.net.register_forward_hook(post)]
        return self

    def __exit__(self, *exc) -> None:
        self._close_backward()
        for h in self._handles:
            h.remove()
        self._handles = []
        self._hooked = {}

    @property
    def seconds(self) -> float:
        s = self.stats
        return s["forward_seconds"] + s["backward_seconds"]


class RunTimeout(RuntimeError):
    pass


def run_method(measurement, cfg, prior, *, time_limit: float | None = None,
               unet_timer: UNetTimer | None = None) -> dict[str, Any]:
    """Run one reconstruction; returns a flat row of numbers (status 'ok', 'timeout' or
    'error: ...'). A run longer than `time_limit` seconds stops at the end of its step."""
    from napari_d3ip import pipeline

    row: dict[str, Any] = {"n_slices": int(measurement.n_slices),
                           "image_shape": [int(v) for v in measurement.image_shape],
                           "nfe": cfg.nfe,
                           "adapt_iters": cfg.adapt_iters if cfg.adapter != "none" else 0,
                           "k_slices": cfg.k_slices if cfg.adapter != "none" else 0,
                           "config": cfg.to_dict()}
    release_memory()
    t0 = time.perf_counter()

    def on_step(step) -> None:
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            raise RunTimeout(f"stopped after step {step.index + 1}/{step.total} "
                             f"({time.perf_counter() - t0:.0f} s > {time_limit:.0f} s)")

    if unet_timer is not None:
        unet_timer.reset()
    mem = PeakRSS()
    result = None
    try:
        with mem:
            result = pipeline.run(measurement, cfg, prior=prior, on_step=on_step)
        row["status"] = "ok"
    except RunTimeout as e:
        row["status"] = f"timeout: {e}"
    except Exception as e:  # a benchmark reports a failing method and goes on
        row["status"] = f"error: {type(e).__name__}: {e}"
    wall = time.perf_counter() - t0
    row.update(wall_seconds=round(wall, 3), peak_rss_bytes=int(mem.delta),
               ru_maxrss_delta_bytes=int(mem.maxrss_delta))
    if unet_timer is not None:
        row.update(unet_forward_seconds=round(unet_timer.stats["forward_seconds"], 3),
                   unet_backward_seconds=round(unet_timer.stats["backward_seconds"], 3),
                   unet_forward_calls=int(unet_timer.stats["forward_calls"]),
                   unet_share=round(unet_timer.seconds / wall, 4) if wall > 0 else None)
    if result is None:
        return row
    timings = result.card.get("timings", {})
    adaptation = result.card.get("adaptation", {})
    row.update(sampling_seconds=timings.get("sampling_seconds"),
               adapt_seconds=timings.get("adapt_seconds", 0.0),
               card_total_seconds=timings.get("total_seconds"),
               adapted_parameter_bytes=int(adaptation.get("adapted_parameter_bytes", 0)),
               adapted_parameter_sets=int(adaptation.get("adapted_parameter_sets", 0)),
               steps_adapted=int(adaptation.get("steps_adapted", 0)))
    m = result.metrics or {}
    row.update(psnr=_num(m.get("psnr")), ssim=_num(m.get("ssim")),
               volume_psnr=_num(m.get("volume_psnr")), slices_scored=m.get("slices_scored"),
               per_slice_psnr=[_num(r["psnr"], 3) for r in m.get("per_slice", [])])
    return row


def _num(v, nd: int = 4):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else (v if math.isinf(v) else round(v, nd))


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, int(n)))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set or parallel work started
        pass



def cpu_model() -> str:
    from napari_d3ip.core.precision import cpu_model as model

    return model()


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(v, 2) for v in load] if load else None}



def command_line() -> str:
    """The exact command: `python -m benchmarks.<name> ...` for a benchmark run as a module,
    else the script's path relative to the working directory."""
    argv = list(sys.argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        head = ["python", "-m", spec.name]
    else:
        head = ["python"]
        if argv and argv[0]:
            try:
                argv[0] = os.path.relpath(argv[0])
            except ValueError:
                pass
            head.append(argv[0])
    cmd = shlex.join([*head, *argv[1:]])
    parent = os.environ.get("D3IP_BENCH_PARENT")
    return f"{cmd}  (run by `{parent}`)" if parent else cmd
