"""GUI event-loop stalls of the napari plugin, per user action, against napari's own floor
(issues 14 and 29).

A QTimer ticks every 10 ms on the GUI thread and records the largest gap between two ticks:
that is the longest time the window could not repaint or react. Each action below is one phase
(the largest gap from the action until the window has settled), after a quiet moment of its
own; ``idle`` is how much this (shared) machine alone delays the GUI thread:

* ``dock``: Plugins → D3IP (``viewer.window.add_plugin_dock_widget``: the one dock) until both
  steps are built, in a session that has not imported torch yet (the plugin's first use);
* ``simulate``: Simulate (15-view CT) until its three layers are in and the dock is on step 2;
* ``run``: the Run click and what follows until Done (the result layer is staged and added);
  ``run_click_seconds`` times the click's own handler;
* ``notification``: Save into a folder that cannot be written: the status line and a napari
  warning notification (the toast);
* ``3views`` / ``3views-off``: ticking "3 views" (napari-orthogonal-views builds two more
  canvases; ours then folds their controls, orients and fits them) and unticking it;
* ``second-run`` and ``close``: a second run on top of the first result, the viewer closed
  after its first update: how long ``close()`` blocks and until the worker has really stopped.

napari's floor for the same actions (``napari_alone``): a fresh viewer holding the same layers,
without the plugin: a plain dock (a QLabel), ``show_warning``, napari-orthogonal-views' own
``show_orthogonal_views`` / ``hide_orthogonal_views``, ``viewer.add_image`` of the last result,
one canvas text overlay (``label``: what each view title or direction letter costs),
``close()``. The plugin's own share of a stall is its excess over that floor.

Every full (generation-2) pass of Python's cyclic garbage collector is recorded with its phase
(``gc_full_collections_seconds``): it holds the interpreter lock, so it stalls the GUI thread
whichever thread triggers it. ``NAPARI_D3IP_GC_HOLD=0`` turns the plugin's freeze of the
collector during runs off (``widgets/gc_hold.py``) to measure whether it is still needed.

Defaults are small (8 slices of 32², the tiny random test prior, 8 steps) so that this runs in
about two minutes on a busy 2-core machine; ``--prior ellipses-64 --size 64 --slices 64``
measures the real job. Needs a display (Xvfb: ``xvfb-run -a python -m benchmarks.gui_stall``).

    python -m benchmarks.gui_stall [--views] [--interval 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path


class StallMeter:
    """Largest gap between ticks of a 10 ms QTimer, per named phase."""

    def __init__(self, period_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.period = period_ms / 1000.0
        self.phase = "idle"
        self.max_gap: dict[str, float] = {}
        self.long: dict[str, list[float]] = {}
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self._tick)
        #: full (generation 2) collections of Python's cyclic GC per phase, in seconds: the
        #: GIL is held throughout, so each is a stall of the GUI thread whatever thread ran it
        self.gc_full: dict[str, list[float]] = {}
        self._gc_t0 = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, event: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if event == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_full.setdefault(self.phase, []).append(round(time.perf_counter() - self._gc_t0, 3))

    def stop(self) -> None:
        self.timer.stop()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def start(self, phase: str) -> None:
        self.phase = phase
        self._last = time.perf_counter()
        self.max_gap.setdefault(phase, 0.0)
        self.long.setdefault(phase, [])
        if not self.timer.isActive():
            self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = now - self._last - self.period
        self._last = now
        if gap > self.max_gap.get(self.phase, 0.0):
            self.max_gap[self.phase] = gap
        if gap > 0.1:
            self.long.setdefault(self.phase, []).append(round(gap, 3))


def wait_until(cond, timeout: float = 600.0) -> bool:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    t0 = time.perf_counter()
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: (cond() or time.perf_counter() - t0 > timeout) and loop.quit())
    poll.start()
    loop.exec_() if hasattr(loop, "exec_") else loop.exec()
    poll.stop()
    return bool(cond())


def tiny_prior(folder: Path, size: int) -> Path:
    """A small random UNet saved like a real prior (the one the tests use)."""
    import torch

    from napari_d3ip.core.prior import Prior
    from napari_d3ip.core.schedule import VPSchedule
    from napari_d3ip.core.unet import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                          attn_resolutions=(16,), image_size=size))
    return Prior(net.eval(), VPSchedule(), {"name": "tiny-test"}).save(folder / "tiny.safetensors")


def act(meter: StallMeter, phase: str, action, settle: float = 1.5, until=None,
        timeout: float = 60.0) -> float:
    """A quiet moment (phase 'before-<phase>'), then `action()` in phase `phase`, then wait
    until `until()` (if given) and `settle` seconds more; returns how long `action()` blocked."""
    meter.start(f"before-{phase}")
    wait_until(lambda: False, 0.3)
    meter.start(phase)
    t0 = time.perf_counter()
    action()
    seconds = time.perf_counter() - t0
    if until is not None:
        wait_until(until, timeout)
    wait_until(lambda: False, settle)
    meter.start(f"after-{phase}")
    return round(seconds, 3)


def napari_floor(layers: list[tuple[str, object, object]]) -> dict:
    """What napari itself costs for the same actions, without the plugin: a fresh viewer
    holding the plugin viewer's layers (less the last result); a plain dock, a warning
    notification, napari-orthogonal-views alone, adding the last result, closing."""
    import napari
    from napari.utils.notifications import show_warning
    from qtpy.QtWidgets import QLabel

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    *before, last = layers
    for kind, data, scale in before:
        getattr(viewer, "add_" + kind.lower())(data, scale=scale)
    wait_until(lambda: False, 1.0)
    meter = StallMeter()
    calls = {"dock": act(meter, "dock", lambda: viewer.window.add_dock_widget(
        QLabel("a plain dock"), name="floor")),
        "notification": act(meter, "notification", lambda: show_warning(
            "not saved: the folder is not writable; choose another location"))}
    with contextlib.suppress(ImportError):
        from napari_orthogonal_views.ortho_view_manager import (
            hide_orthogonal_views,
            show_orthogonal_views,
        )

        calls["3views"] = act(meter, "3views", lambda: show_orthogonal_views(viewer), 3.0)
        calls["3views-off"] = act(meter, "3views-off", lambda: hide_orthogonal_views(viewer))
    calls["add"] = act(meter, "add", lambda: viewer.add_image(last[1], scale=last[2]))

    def label() -> None:  # one canvas text overlay, as each title or direction letter is
        from napari.components.overlays import TextOverlay

        viewer.canvas.overlays["floor_label"] = TextOverlay(text="A", position="top_center",
                                                            visible=True, font_size=12)

    calls["label"] = act(meter, "label", label)
    wait_until(lambda: False, 0.5)
    meter.start("close")
    t1 = time.perf_counter()
    viewer.close()
    close_seconds = time.perf_counter() - t1
    meter.stop()
    return {"layers": [k for k, _, _ in layers], "call_seconds": calls,
            "max_stall_seconds": {k: round(v, 3) for k, v in meter.max_gap.items()},
            "stalls_over_100ms": {k: v for k, v in meter.long.items() if v},
            "add_call_seconds": calls["add"], "add_max_stall_seconds": round(meter.max_gap["add"], 3),
            "close_blocks_seconds": round(close_seconds, 3), "gc_full_collections_seconds": meter.gc_full}


def _volume(args: argparse.Namespace) -> tuple:
    import numpy as np
    from skimage.transform import resize

    from napari_d3ip.io.volumes import to_unit_range
    from napari_d3ip.sample_data import load_sample

    vol = load_sample("brain-64")
    data, _ = to_unit_range(vol)
    n0 = data.shape[0] // 2 - args.slices // 2
    data = data[max(n0, 0): max(n0, 0) + args.slices]
    if data.shape[1] != args.size:
        data = resize(data, (data.shape[0], args.size, args.size), order=1).astype(np.float32)
    return data, vol.spacing


def _open_dock(viewer, meter: StallMeter, out: dict):
    """Plugins → D3IP (timed) until both steps are built; torch not yet imported, as in a
    napari session where the plugin is first used (it is then imported off the GUI thread)."""
    holder: dict = {}

    def open_dock() -> None:
        holder["dock"], holder["widget"] = viewer.window.add_plugin_dock_widget("napari-d3ip", "D3IP")

    out["torch_loaded_before_dock"] = "torch" in sys.modules
    t0 = time.perf_counter()
    out["calls"]["dock"] = act(meter, "dock", open_dock, 1.0, lambda: holder["widget"].ready, 120)
    out["dock_ready_seconds"] = round(time.perf_counter() - t0, 2)
    return holder["widget"]


def _simulate(w, meter: StallMeter, out: dict, args, prior: str):
    """A 15-view CT simulated (timed), then the run's settings."""
    dw, rec = w.data, w.reconstruct
    dw.select_image("brain")
    dw.kind.setCurrentText("ct")
    views = dw.control("ct", "n_views") if hasattr(dw, "control") else dw.n_views
    views.setValue(15)
    out["calls"]["simulate"] = act(meter, "simulate", dw.simulate, 1.0, lambda: dw.worker is None, 120)
    rec.prior.set_value(prior)
    rec.device.setCurrentText("cpu")
    rec.solver.setCurrentText("dds")
    rec.adapter.setCurrentText("none")
    rec.nfe.setValue(args.nfe)
    rec.show_views.setChecked(bool(args.views))
    if args.interval is not None:
        rec.update_interval = args.interval
    return rec


def _first_run(rec, meter: StallMeter, out: dict, folder: Path, profile: str | None) -> None:
    """Run → Done (timed), then a Save that fails (a notification) and the 3 views on/off."""
    from napari_d3ip.widgets.state import Phase

    prof = _profile(profile)
    t0 = time.perf_counter()
    out["calls"]["run_click"] = act(meter, "run", rec.run.button.click, 1.0,
                                    lambda: rec.run.state.phase in (Phase.DONE, Phase.FAILED), 900)
    out["run_seconds"] = round(time.perf_counter() - t0, 2)
    out["state"] = rec.run.state.text()
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile + ".first")
    blocker = folder / "not-a-folder"
    blocker.write_text("a file where Save expects a folder\n")
    out["calls"]["notification"] = act(meter, "notification",
                                       lambda: rec.save(blocker / "result.nii.gz"))
    out["save_status"] = rec.cost.text()
    if rec.views.views.available:
        out["calls"]["3views"] = act(meter, "3views", lambda: rec.views.ortho.setChecked(True),
                                     3.0, rec.views.views.is_shown, 30)
        out["calls"]["3views-off"] = act(meter, "3views-off",
                                         lambda: rec.views.ortho.setChecked(False))


def _profile(path: str | None):
    if not path:
        return None
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    return prof


def _second_run_and_close(viewer, rec, meter: StallMeter, out: dict, args) -> list:
    """A second, long run; the viewer closed after its first update (timed)."""
    import numpy as np

    rec.nfe.setValue(max(args.nfe * 50, 200))
    prof = _profile(args.profile)
    meter.start("before-second-run")
    wait_until(lambda: False, 0.3)
    t2 = time.perf_counter()
    rec.run.button.click()
    out["calls"]["second_run_click"] = round(time.perf_counter() - t2, 3)
    meter.start("second-run")
    handle = rec.run.handle
    wait_until(lambda: (rec.ctx is not None and rec.ctx.steps >= 1) or not rec.run.state.running, 600)
    if prof is not None:
        prof.disable()
        prof.dump_stats(args.profile)
    layers = [(type(layer).__name__, np.asarray(layer.data), layer.scale) for layer in viewer.layers]
    meter.start("close")
    t1 = time.perf_counter()
    viewer.close()
    out["close_blocks_seconds"] = round(time.perf_counter() - t1, 3)
    wait_until(lambda: handle is None or handle.stopped.is_set(), 120)
    out["worker_stopped_after_close_seconds"] = round(time.perf_counter() - t1, 3)
    return layers


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", default=None, help="prior name/path (default: tiny random)")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--nfe", type=int, default=8)
    ap.add_argument("--views", action="store_true", help="open the orthogonal views on Run")
    ap.add_argument("--interval", type=float, default=None, help="seconds between redraws")
    ap.add_argument("--json", default=None)
    ap.add_argument("--profile", default=None,
                    help="write cProfiles of the GUI thread during the first run (FILE.first) and the "
                         "second (FILE)")
    args = ap.parse_args(argv)
    os.environ.setdefault("NAPARI_D3IP_CONFIG_DIR", tempfile.mkdtemp(prefix="d3ip-stall-"))
    import napari

    from napari_d3ip.widgets import gc_hold

    tmp = Path(tempfile.mkdtemp(prefix="d3ip-stall-"))
    data, spacing = _volume(args)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.add_image(data * 1000.0, name="brain", scale=spacing)
    meter = StallMeter()
    meter.start("idle")
    wait_until(lambda: False, 1.0)
    out: dict = {"volume": [int(s) for s in data.shape], "nfe": args.nfe,
                 "views": bool(args.views), "gc_hold": gc_hold.enabled(), "calls": {}}
    flow = _open_dock(viewer, meter, out)
    prior = args.prior or str(tiny_prior(tmp, args.size))
    out["prior"] = Path(prior).stem
    rec = _simulate(flow, meter, out, args, prior)
    meter.start("idle")
    wait_until(lambda: False, 1.0)
    _first_run(rec, meter, out, tmp, args.profile)
    layers = _second_run_and_close(viewer, rec, meter, out, args)
    meter.stop()
    quiet = [k for k in meter.max_gap if k.startswith(("before-", "after-"))]
    out["between_actions_max_stall_seconds"] = {k: round(meter.max_gap.pop(k), 3) for k in quiet}
    for k in quiet:
        meter.long.pop(k, None)
    out.update({
        "max_stall_seconds": {k: round(v, 3) for k, v in meter.max_gap.items()},
        "stalls_over_100ms": meter.long, "gc_full_collections_seconds": meter.gc_full,
        "napari_alone": napari_floor(layers), "cpu": _cpu(),
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", ""),
        "load_average": [round(x, 2) for x in os.getloadavg()]})
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


if __name__ == "__main__":
    if os.environ.get("QT_QPA_PLATFORM", "") in ("", "offscreen") and os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    main(sys.argv[1:])
