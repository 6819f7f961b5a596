"""Shared machinery of the benchmarks (quality.py, speed.py, solvers.py, run_all.py).

- the tasks (simulated measurements of a sample volume, as in ALGORITHM.md section 6) and the
  methods (solver + adapter, configured from the package's presets, paper Table 5);
- one timed run of one method: wall time, the run card's sampling/adaptation split, peak
  memory, adapted-parameter bytes, the paper's metrics (per-slice-mean PSNR/SSIM, volume PSNR);
- time spent inside the UNet (forward hooks + autograd timing), for speed.py;
- the machine description and the exact command, JSON stores and markdown rendering
  (benchmarks/RESULTS.md is rebuilt from results.json and speed.json every time).

Peak memory: the peak resident set size (RSS) of the process during the run minus its RSS at
the start of the run, sampled every 5 ms by a background thread reading /proc/self/statm.
(tracemalloc does not see torch's tensor allocations, and a resource.getrusage ru_maxrss delta
is the growth of the process's all-time high-water mark, which is 0 for any run that peaks
below an earlier run; it is recorded in the JSON as `ru_maxrss_delta_bytes` all the same.)
Short spikes under 5 ms can be missed; the prior, the measurement and the Python/torch
runtime, loaded before the run, are not counted.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import shlex
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# tasks and methods
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    label: str
    kind: str  # operator kind for napari_d3ip.operators.simulate
    params: dict[str, Any]
    noise: float  # relative noise std (operators module docstring)
    preset: str  # base preset (paper Table 5 settings of this task)
    paper: str | None  # column of the paper's Table 2 this task corresponds to


TASKS: dict[str, Task] = {
    "ct15": Task("ct15", "SV-CT 15 views", "ct", {"n_views": 15}, 0.01, "sv-ct", "ct"),
    "ct60": Task("ct60", "SV-CT 60 views", "ct", {"n_views": 60}, 0.01, "sv-ct", None),
    "mri-r8": Task("mri-r8", "3D MRI Poisson R=8", "mri", {"accel": 8.0}, 0.0, "mri3d", "mri"),
    "mc-x4": Task("mc-x4", "multi-coil MRI x4, 8 coils", "mri-multicoil",
                  {"accel": 4.0, "n_coils": 8, "acs_fraction": 0.08}, 0.01, "mri-mc", None),
}

# name -> (label, solver, adapter), in the paper's row order (DDNM, DPS added)
METHODS: dict[str, tuple[str, str, str]] = {
    "admm-tv": ("ADMM-TV", "admm-tv", "none"),
    "dds": ("DDS", "dds", "none"),
    "ddnm": ("DDNM", "ddnm", "none"),
    "dps": ("DPS", "dps", "none"),
    "mbir": ("DiffusionMBIR", "mbir", "none"),
    "scd": ("SCD", "dds", "scd"),
    "ddip": ("DDIP", "dds", "ddip"),
    "d3ip-base": ("D3IP-base", "dds", "d3ip-base"),
    "d3ip-mbir": ("D3IP-mbir", "mbir", "d3ip-mbir"),
    "d3ip-meta": ("D3IP-meta", "dds", "d3ip-meta"),
}
D3IP = ("d3ip-base", "d3ip-mbir", "d3ip-meta")

# ALGORITHM.md section 8: the paper's Table 2 (256^3, ellipse prior, OOD), PSNR / SSIM;
# DDNM and DPS rows from the same table in ../shared/paper/ddip3d_paper.txt
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "ct": {"admm-tv": (25.35, 0.783), "ddnm": (23.55, 0.765), "dps": (17.85, 0.470),
           "dds": (27.65, 0.805), "mbir": (28.92, 0.845),
           "scd": (32.91, 0.904), "ddip": (33.13, 0.903), "d3ip-base": (31.73, 0.908),
           "d3ip-mbir": (33.69, 0.919), "d3ip-meta": (33.96, 0.917)},
    "mri": {"admm-tv": (23.89, 0.508), "ddnm": (14.59, 0.281), "dps": (27.30, 0.394),
            "dds": (24.59, 0.532), "mbir": (26.97, 0.620),
            "scd": (26.00, 0.561), "ddip": (27.46, 0.647), "d3ip-base": (30.59, 0.859),
            "d3ip-mbir": (33.89, 0.907), "d3ip-meta": (32.60, 0.877)},
}
# issue 7's targets: D3IP-best - DDS (dB) per task; ADMM-TV beaten by >= 8 dB
TARGET_GAIN_DDS = {"ct15": 6.0, "ct60": 6.0, "mri-r8": 9.0, "mc-x4": 9.0}
TARGET_GAIN_TV = 8.0

VOLUMES = ("brain-64", "heldout-epi", "phantom-64", "brain-128", "brain-128-64")


def parse_list(text: str | None, known: Iterable[str], what: str) -> list[str]:
    """'a,b' or 'all' -> validated list (order of `known` kept for 'all')."""
    known = list(known)
    if text is None or text == "all":
        return known
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in known]
    if bad:
        raise SystemExit(f"unknown {what} {', '.join(bad)}; choose from {', '.join(known)}")
    return items


def load_volume(name: str, slices: int | None = None) -> np.ndarray:
    """A sample volume in [0, 1], (N, H, W) float32, cropped to its `slices` central slices.

    `brain-128-64` is brain-128 average-pooled 2x2 in plane: 128 slices at 64^2 (speed.py).
    """
    from napari_d3ip.io.volumes import to_unit_range
    from napari_d3ip.sample_data import load_sample

    if name not in VOLUMES:
        raise SystemExit(f"unknown volume {name!r}; choose from {', '.join(VOLUMES)}")
    base = "brain-128" if name == "brain-128-64" else name
    vol, _ = to_unit_range(load_sample(base))
    if name == "brain-128-64":
        t = torch.from_numpy(np.ascontiguousarray(vol))[:, None]
        vol = torch.nn.functional.avg_pool2d(t, 2)[:, 0].numpy()
    return central(np.ascontiguousarray(vol, dtype=np.float32), slices)


def central(vol: np.ndarray, slices: int | None) -> np.ndarray:
    n = vol.shape[0]
    if slices is None or slices >= n:
        return vol
    if slices < 1:
        raise SystemExit(f"--slices must be >= 1, got {slices}")
    start = (n - slices) // 2
    return vol[start:start + slices]


def simulate_task(vol: np.ndarray, task: Task, seed: int):
    from napari_d3ip.operators import simulate

    return simulate(vol, task.kind, task.noise, seed, **task.params)


def method_config(method: str, task: Task, *, nfe: int | None = None, iters: int | None = None,
                  k: int | None = None, seed: int = 0, device: str = "cpu",
                  batch_slices: int | None = None, **extra: Any):
    """The RunConfig of `method` on `task`: the task's preset for that method (paper Table 5),
    or the task's base preset with the solver/adapter swapped; then the overrides."""
    from napari_d3ip.config import from_preset, presets

    _, solver, adapter = METHODS[method]
    base = task.preset
    if adapter == "d3ip-base":
        name = base
    elif adapter == "none":
        name = f"{base}-dds"
    else:
        name = f"{base}-{adapter}"
    if name not in presets():
        name = base
    over = {"solver": solver, "adapter": adapter, "nfe": nfe, "seed": seed, "device": device,
            "batch_slices": batch_slices, **extra}
    if adapter != "none":
        over.update(adapt_iters=iters, k_slices=k)
    return from_preset(name, **over)


# --------------------------------------------------------------------------------------------
# measuring one run
# --------------------------------------------------------------------------------------------


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
    """Wall time spent inside the UNet: forward (pre/post forward hooks on the network) and
    backward (from the moment the gradient reaches the UNet's output to the end of the
    `torch.autograd.backward`/`grad` call; the UNet is the first thing in the graph, x_t needs
    no gradient, so everything after that point is the UNet's backward).

    The hooks are plain functions, so the LoRA copies the adapters make (copy.deepcopy of the
    prior's network) carry them too. Use as a context manager around a run.
    """

    def __init__(self, net: torch.nn.Module):
        self.net = net
        self.stats = {"forward_seconds": 0.0, "backward_seconds": 0.0, "forward_calls": 0}

    def reset(self) -> None:
        for k in self.stats:
            self.stats[k] = 0 if k == "forward_calls" else 0.0

    def __enter__(self) -> UNetTimer:
        stats = self.stats
        stack: list[float] = []
        bw: dict[str, float | None] = {"start": None}

        def pre(module, args):
            stack.append(time.perf_counter())

        def post(module, args, out):
            stats["forward_seconds"] += time.perf_counter() - stack.pop()
            stats["forward_calls"] += 1
            if isinstance(out, torch.Tensor) and out.requires_grad:
                def on_grad(g):
                    if bw["start"] is None:
                        bw["start"] = time.perf_counter()
                out.register_hook(on_grad)

        def wrap(fn):
            def inner(*a, **kw):
                bw["start"] = None
                try:
                    return fn(*a, **kw)
                finally:
                    if bw["start"] is not None:
                        stats["backward_seconds"] += time.perf_counter() - bw["start"]
                        bw["start"] = None
            return inner

        self._handles = [self.net.register_forward_pre_hook(pre),
                         self.net.register_forward_hook(post)]
        self._orig = (torch.autograd.backward, torch.autograd.grad)
        torch.autograd.backward = wrap(self._orig[0])
        torch.autograd.grad = wrap(self._orig[1])
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        torch.autograd.backward, torch.autograd.grad = self._orig

    @property
    def seconds(self) -> float:
        return self.stats["forward_seconds"] + self.stats["backward_seconds"]


class RunTimeout(RuntimeError):
    pass


def run_method(measurement, cfg, prior, *, time_limit: float | None = None,
               unet_timer: UNetTimer | None = None) -> dict[str, Any]:
    """Run one reconstruction; returns a flat row of numbers (status 'ok', 'timeout' or
    'error: ...'). A run longer than `time_limit` seconds stops at the end of its step."""
    from napari_d3ip import pipeline

    row: dict[str, Any] = {"n_slices": int(measurement.n_slices), "nfe": cfg.nfe,
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


def load_prior_arg(name_or_path: str):
    from napari_d3ip import load_prior

    return load_prior(name_or_path, "cpu")


def prior_info(prior) -> dict[str, Any]:
    card = getattr(prior, "card", {}) or {}
    training = card.get("training", {}) or {}
    return {"name": card.get("name", "unnamed"), "training_steps": training.get("steps"),
            "parameters": card.get("parameters"), "sha256": card.get("sha256")}


# --------------------------------------------------------------------------------------------
# machine, command, JSON
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    from napari_d3ip.core.precision import cpu_model as model

    return model()


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(v, 2) for v in load] if load else None}


def machine_md(m: dict[str, Any]) -> str:
    load = m.get("load_average_at_start")
    text = (f"CPU {m['cpu']}, {m['logical_cores']} logical cores; torch {m['torch']} with "
            f"{m['torch_threads']} thread(s); Python {m['python']}")
    if load:
        text += f"; load average at start {', '.join(f'{v:.2f}' for v in load)}"
    return text


def command_line() -> str:
    """The exact command (relative to the repository root when run from there)."""
    argv = list(sys.argv)
    if argv and argv[0]:
        try:
            argv[0] = os.path.relpath(argv[0])
        except ValueError:
            pass
    cmd = shlex.join(["python", *argv])
    parent = os.environ.get("D3IP_BENCH_PARENT")
    return f"{cmd}  (run by `{parent}`)" if parent else cmd


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def load_store(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("sections"), dict):
                return data
        except json.JSONDecodeError:
            pass
    return {"sections": {}}


def save_section(path: Path, label: str, section: dict[str, Any]) -> dict[str, Any]:
    """Put `section` under `label` in the JSON store at `path` (other labels are kept)."""
    from napari_d3ip.pipeline import json_default

    store = load_store(path)
    store["sections"][label] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(store, indent=1, default=json_default) + "\n")
    return store


@dataclass
class Section:
    """One benchmark invocation: what ran, where, and the rows it produced."""

    label: str
    title: str
    command: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    prior: dict[str, Any] | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    started: str = field(default_factory=now)
    finished: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------


def f2(v, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{nd}f}"


def mb(v) -> str:
    return "—" if v is None else f"{v / 1e6:.1f}"


def size_str(v) -> str:
    if not v:
        return "0"
    return f"{v / 1e6:.2f} MB" if v >= 1e5 else f"{v / 1e3:.1f} kB"


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _ok(r: dict | None) -> bool:
    return bool(r) and r.get("status") == "ok" and r.get("psnr") is not None


def _pair(r: dict | None) -> str:
    if not r:
        return ""
    if not _ok(r):
        return r.get("status", "?").split(":")[0]
    return f"{f2(r['psnr'])} / {f2(r['ssim'], 3)}"


def section_header(s: dict[str, Any]) -> list[str]:
    prior = s.get("prior") or {}
    lines = [f"- command: `{s['command']}`",
             f"- machine: {machine_md(s['machine'])}",
             f"- started {s.get('started')}, finished {s.get('finished') or 'not finished'}"]
    if prior:
        lines.append(f"- prior: `{prior.get('name')}` ({prior.get('parameters')} parameters, "
                     f"trained {prior.get('training_steps')} steps, sha256 "
                     f"{str(prior.get('sha256'))[:12]}…)")
    st = s.get("settings", {})
    if st:
        lines.append("- settings: " + ", ".join(f"{k} {v}" for k, v in st.items()))
    if s.get("note"):
        lines += ["", s["note"]]
    return lines + [""]


def quality_tables(s: dict[str, Any]) -> list[str]:
    rows = s["rows"]
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    by = {(r["task"], r["method"]): r for r in rows}
    header = ["method"]
    for t in tasks:
        header.append(f"{TASKS[t].label}: ours PSNR / SSIM")
        if TASKS[t].paper:
            header.append("paper (256³) PSNR / SSIM")
    table = []
    for m in methods:
        line = [METHODS[m][0]]
        for t in tasks:
            line.append(_pair(by.get((t, m))))
            if TASKS[t].paper:
                p = PAPER[TASKS[t].paper].get(m)
                line.append(f"{p[0]:.2f} / {p[1]:.3f}" if p else "—")
        table.append(line)
    out = ["Shaped like the paper's Table 2 (per-slice-mean PSNR in dB / SSIM; the paper's "
           "SV-CT column is 60 views at 256², the like-for-like of 15 views at 64²; its 3D MRI "
           "column is Poisson-disc R = 15 at 256³).", ""]
    out += md_table(header, table) + [""]
    detail = []
    for t in tasks:
        for m in methods:
            r = by.get((t, m))
            if not r:
                continue
            detail.append([TASKS[t].label, METHODS[m][0], f2(r.get("psnr")),
                           f2(r.get("ssim"), 3), f2(r.get("volume_psnr")),
                           f2(r.get("wall_seconds"), 1), f2(r.get("sampling_seconds"), 1),
                           f2(r.get("adapt_seconds"), 1), mb(r.get("peak_rss_bytes")),
                           size_str(r.get("adapted_parameter_bytes")),
                           r.get("status", "?")[:80]])
    out += md_table(["task", "method", "PSNR", "SSIM", "volume PSNR", "wall s", "sampling s",
                     "adapt s", "peak MB", "adapted params", "status"], detail) + [""]
    out += targets(s)
    return out


def targets(s: dict[str, Any]) -> list[str]:
    """Issue 7's targets, checked on this section's numbers."""
    by = {(r["task"], r["method"]): r for r in s["rows"]}
    tasks = [t for t in TASKS if any(r["task"] == t for r in s["rows"])]
    lines = []
    for t in tasks:
        d3 = [(by[(t, m)]["psnr"], m) for m in D3IP if _ok(by.get((t, m)))]
        if not d3:
            continue
        best, which = max(d3)
        checks = []
        ref = [("dds", TARGET_GAIN_DDS[t], "DDS"), ("admm-tv", TARGET_GAIN_TV, "ADMM-TV"),
               ("scd", 0.0, "SCD"), ("ddip", 0.0, "DDIP")]
        for m, goal, name in ref:
            r = by.get((t, m))
            if not _ok(r):
                continue
            gain = best - r["psnr"]
            verdict = "met" if gain >= goal else "MISSED"
            checks.append(f"vs {name} {gain:+.2f} dB (target ≥ {goal:+.0f}: {verdict})")
        if checks:
            lines.append(f"- {TASKS[t].label}: D3IP-best = {METHODS[which][0]} "
                         f"{best:.2f} dB; " + "; ".join(checks))
    if lines:
        lines = ["Targets of issue 7 on these numbers:", ""] + lines + [""]
    return lines


def speed_tables(s: dict[str, Any]) -> list[str]:
    rows = s["rows"]
    ns = sorted({r["n_slices"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    by = {(r["method"], r["n_slices"]): r for r in rows}
    table = []
    for m in methods:
        for n in ns:
            r = by.get((m, n))
            if not r:
                continue
            table.append([METHODS[m][0], str(n), f2(r.get("wall_seconds"), 1),
                          f2(r.get("sampling_seconds"), 1), f2(r.get("adapt_seconds"), 1),
                          f2(r.get("unet_forward_seconds"), 1),
                          f2(r.get("unet_backward_seconds"), 1),
                          f2(100 * r["unet_share"], 0) + " %" if r.get("unet_share") else "—",
                          mb(r.get("peak_rss_bytes")), size_str(r.get("adapted_parameter_bytes")),
                          f2(r.get("psnr")), r.get("status", "?")[:60]])
    out = md_table(["method", "slices", "wall s", "sampling s", "adapt s", "UNet fwd s",
                    "UNet bwd s", "UNet share", "peak MB", "adapted params", "PSNR", "status"],
                   table) + [""]
    ratios = s.get("ratios", {})
    if ratios:
        out += ["Ratios (wall time; adaptation-only in brackets):", ""]
        out += [f"- {k}: {v}" for k, v in ratios.items()] + [""]
    return out


def sections(out_dir: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The sections of one kind ('quality', 'speed', 'solvers') in results.json, by label."""
    store = load_store(out_dir / "results.json")["sections"]
    return {k.split("/", 1)[1]: v for k, v in store.items() if k.startswith(kind + "/")}


def save(out_dir: Path, kind: str, label: str, section: dict[str, Any]) -> Path:
    path = out_dir / "results.json"
    save_section(path, f"{kind}/{label}", {**section, "kind": kind})
    return path


def render_results(out_dir: Path) -> Path:
    """benchmarks/RESULTS.md from results.json (its quality and speed sections)."""
    quality = sections(out_dir, "quality")
    speed = sections(out_dir, "speed")
    lines = [
        "# D3IP benchmarks: quality and speed",
        "",
        "Generated by the scripts in `benchmarks/` (common.py renders this file from "
        "`results.json`; do not edit by hand, re-run the scripts). Each "
        "section says the command, the machine and the prior it ran with. Our runs are "
        "64² slices on a shared 2-core CPU with a small CPU-trained prior; the paper's "
        "numbers are 256³ with a GPU-trained prior: compare the *ordering* and the *gaps*, "
        "not the absolute dB.",
        "",
        "Metrics as the paper (ALGORITHM.md 7): PSNR per slice with that reference slice's "
        "data range, SSIM 7×7, both averaged over slices (empty slices excluded); volume "
        "PSNR with data range 1. Wall time includes the library's per-step bookkeeping "
        "(data loss and live PSNR of every step). Peak memory: peak RSS of the process during "
        "the run above its RSS at the start, sampled every 5 ms from /proc/self/statm "
        "(not tracemalloc, which misses torch tensors). Adapted params: bytes of LoRA "
        "parameters the method keeps (one set for D3IP-base/mbir, one per slice for "
        "SCD/DDIP, meta set + one per slice for D3IP-meta).",
        "",
    ]
    order = sorted(quality, key=lambda k: (k.startswith("quick"), k))
    for label in order:
        s = quality[label]
        lines += [f"## Quality — {s['title']}", ""] + section_header(s) + quality_tables(s)
    for label in sorted(speed, key=lambda k: (k.startswith("quick"), k)):
        s = speed[label]
        lines += [f"## Speed — {s['title']}", ""] + section_header(s) + speed_tables(s)
    if "quick" in quality:
        lines += projection_lines(quality["quick"])
    lines += NOTES
    if (out_dir / "solvers.md").exists():
        lines += ["## Fixed-prior solvers", "",
                  "See [solvers.md](solvers.md) (ADMM-TV, DDS, DDNM, DPS, DiffusionMBIR on "
                  "CT 15 views and MRI R = 8).", ""]
    path = out_dir / "RESULTS.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


# --------------------------------------------------------------------------------------------
# projection of a bigger run from a measured one
# --------------------------------------------------------------------------------------------


def adapt_work(method: str, n: int, k: int, iters: int, steps: int) -> float:
    """Slice-iterations of adaptation (one forward + backward of one slice = 1)."""
    if method in ("scd", "ddip"):
        return steps * iters * n
    if method in ("d3ip-base", "d3ip-mbir"):
        return steps * iters * min(k, n)
    if method == "d3ip-meta":
        return steps * iters * (min(k, n) + n)
    return 0.0


def project_seconds(row: dict[str, Any], n: int, nfe: int, iters: int,
                    k: int) -> float | None:
    """Seconds of `row`'s method at n slices / nfe / I / K, from its measured unit costs
    (sampling per slice-step, adaptation per slice-iteration). A rough guide."""
    if not _ok(row):
        return None
    m = row["method"]
    n0, nfe0 = row["n_slices"], row["nfe"]
    if m == "admm-tv":
        return row["wall_seconds"] * n / n0
    sampling = (row.get("sampling_seconds") or 0.0) / (n0 * nfe0)
    other = max(0.0, row["wall_seconds"] - (row.get("sampling_seconds") or 0.0)
                - (row.get("adapt_seconds") or 0.0)) / (n0 * nfe0)
    total = (sampling + other) * n * nfe
    if METHODS[m][2] != "none":
        k0, i0 = row["k_slices"], row["adapt_iters"]
        w0 = adapt_work(m, n0, k0, i0, row.get("steps_adapted") or max(nfe0 - 1, 1))
        if w0 > 0:
            w = adapt_work(m, n, k, iters, max(nfe - 1, 1))
            total += (row.get("adapt_seconds") or 0.0) / w0 * w
    return total


# plans a full run can take: name -> (nfe, I); None = the preset's (paper Table 5)
PLANS = {"paper settings (NFE 50, Table 5 I and K)": (None, None),
         "cpu-preview-like (NFE 25, I 5)": (25, 5),
         "NFE 25, I 2": (25, 2)}


def projection_lines(quick: dict[str, Any], n: int = 64) -> list[str]:
    """Projected hours of every method on every task at n slices, per plan, from the quick
    section's measured unit costs (single-threaded, on the machine it ran on)."""
    rows = {(r["task"], r["method"]): r for r in quick["rows"]}
    table = []
    for plan, (nfe, iters) in PLANS.items():
        per_method: dict[str, float] = {}
        for t in TASKS:
            for m in METHODS:
                r = rows.get((t, m))
                if r is None:
                    continue
                cfg = method_config(m, TASKS[t], nfe=nfe, iters=iters)
                sec = project_seconds(r, n, cfg.nfe, cfg.adapt_iters, cfg.k_slices)
                if sec is not None:
                    per_method[m] = per_method.get(m, 0.0) + sec
        if per_method:
            total = sum(per_method.values())
            top = sorted(per_method.items(), key=lambda kv: -kv[1])[:4]
            table.append([plan, f"{total / 3600:.1f} h",
                          ", ".join(f"{METHODS[m][0]} {v / 3600:.1f} h" for m, v in top)])
    if not table:
        return []
    return ([f"## Cost of a full quality run ({n} slices, all methods and tasks), projected", "",
             "From the quick section's measured unit costs (sampling per slice-step, "
             "adaptation per slice-iteration; same machine, threads and load), scaled to "
             f"{n} slices: a guide to choose the full run's settings, not a measurement.",
             ""] + md_table(["plan", "total", "largest parts (summed over tasks)"], table)
            + [""])


NOTES = [
    "## Notes on reading these numbers", "",
    "- The prior: each section names the prior and how many training steps it had; the "
    "paper's prior was trained to convergence on a GPU. An under-trained prior limits every "
    "diffusion method, and adaptation has more to fix.",
    "- Scale: 64² slices (the shipped prior's size) instead of 256²; 15 CT views at 64² is "
    "the like-for-like of the paper's 60 views at 256² (same fraction of the Nyquist number "
    "of views); our MRI uses R = 8, the paper's 3D MRI R = 15.",
    "- DPS runs with the NFE of the others here; the paper gives it 1000 DDPM steps.",
    "- A quick section (few slices, NFE 5, I = 1) is a smoke test of the whole harness: its "
    "dB say nothing about the methods.",
    "- Wall times are single-threaded (`--threads 1`) on cores shared with other jobs; "
    "ratios between methods measured in one run are more trustworthy than absolute seconds.",
    "",
]
