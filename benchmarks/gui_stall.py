"""GUI event-loop stalls of the napari plugin during a run and when the viewer closes (issue 14).

A QTimer ticks every 10 ms on the GUI thread and records the largest gap between two ticks:
that is the longest time the window could not repaint or react. Measured phases:

* ``idle``: the viewer with the volume and the measurement, nothing running;
* ``run_click``: the Run button's own handler (it builds the result layer and, with
  ``--views``, the orthogonal views, before the worker's first step), timed directly;
* ``run``: after the click → Done (every update replaces the layer data);
* ``close``: a second run, the viewer closed after its first update: how long ``close()``
  blocks, and how long until the worker has really stopped.

Every full (generation-2) pass of Python's cyclic garbage collector is recorded with its phase
(``gc_full_collections_seconds``): it holds the interpreter lock, so it stalls the GUI thread
whichever thread triggers it (napari's own `gc.collect()` on a layer removal included). These
were the second run's and the close's excess over napari's floor (``widgets/gc_hold.py``).

Defaults are small (8 slices of 32², the tiny random test prior, 8 steps) so that this runs in
a minute on a busy 2-core machine; ``--prior ellipses-64 --size 64 --slices 64`` measures the
real job. Needs a display (Xvfb: ``xvfb-run -a python -m benchmarks.gui_stall``).

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


def napari_floor(layers: list[tuple[str, object, object]]) -> dict:
    """What napari itself costs, without the plugin: a fresh viewer holding the same layers as the
    plugin's viewer had at its second run, less the last result; the largest stall when that
    result is added (by `viewer.add_image`, on one event-loop turn) and how long `close()` blocks.
    The plugin's own stalls can only be judged against this floor."""
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    *before, last = layers
    for kind, data, scale in before:
        getattr(viewer, "add_" + kind.lower())(data, scale=scale)
    wait_until(lambda: False, 1.0)
    meter = StallMeter()
    meter.start("add")
    wait_until(lambda: False, 0.3)
    t0 = time.perf_counter()
    viewer.add_image(last[1], scale=last[2])
    add_seconds = time.perf_counter() - t0
    wait_until(lambda: False, 1.0)
    t1 = time.perf_counter()
    viewer.close()
    close_seconds = time.perf_counter() - t1
    meter.stop()
    return {"layers": [k for k, _, _ in layers], "add_call_seconds": round(add_seconds, 3),
            "add_max_stall_seconds": round(meter.max_gap["add"], 3),
            "close_blocks_seconds": round(close_seconds, 3), "gc_full_collections_seconds": meter.gc_full}


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
    import numpy as np
    from skimage.transform import resize

    from napari_d3ip.io.volumes import to_unit_range
    from napari_d3ip.sample_data import load_sample
    from napari_d3ip.widgets.data_widget import DataWidget
    from napari_d3ip.widgets.reconstruct_widget import ReconstructWidget
    from napari_d3ip.widgets.state import Phase

    tmp = Path(tempfile.mkdtemp(prefix="d3ip-stall-"))
    prior = args.prior or str(tiny_prior(tmp, args.size))
    vol = load_sample("brain-64")
    data, _ = to_unit_range(vol)
    n0 = data.shape[0] // 2 - args.slices // 2
    data = data[max(n0, 0): max(n0, 0) + args.slices]
    if data.shape[1] != args.size:
        data = resize(data, (data.shape[0], args.size, args.size), order=1).astype(np.float32)

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.add_image(data * 1000.0, name="brain", scale=vol.spacing)
    dw = DataWidget(viewer)
    viewer.window.add_dock_widget(dw, name="D3IP: Data")
    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec, name="D3IP: Reconstruct")
    dw.select_image("brain")
    dw.kind.setCurrentText("ct")
    dw.n_views.setValue(15)
    dw.simulate()
    wait_until(lambda: dw.worker is None, 120)
    rec.prior.set_value(prior)
    rec.device.setCurrentText("cpu")
    rec.solver.setCurrentText("dds")
    rec.adapter.setCurrentText("none")
    rec.nfe.setValue(args.nfe)
    rec.show_views.setChecked(bool(args.views))
    if args.interval is not None:
        rec.update_interval = args.interval

    meter = StallMeter()
    meter.start("idle")
    wait_until(lambda: False, 1.0)

    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    rec.run.button.click()  # synchronous: builds the result layer (and views if asked)
    click_seconds = time.perf_counter() - t0
    meter.start("run")
    wait_until(lambda: rec.run.state.phase in (Phase.DONE, Phase.FAILED), 900)
    run_seconds = time.perf_counter() - t0
    state = rec.run.state.text()
    if prof is not None:
        prof.disable()
        prof.dump_stats(args.profile + ".first")
    meter.start("after-run")
    wait_until(lambda: False, 1.0)

    # a second run, closed mid-run
    rec.nfe.setValue(max(args.nfe * 50, 200))
    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t2 = time.perf_counter()
    rec.run.button.click()
    click2_seconds = time.perf_counter() - t2
    meter.start("second-run")
    handle = rec.run.handle
    wait_until(lambda: rec.ctx is not None and rec.ctx.steps >= 1, 600)
    if prof is not None:
        prof.disable()
        prof.dump_stats(args.profile)
    layers = [(type(layer).__name__, np.asarray(layer.data), layer.scale) for layer in viewer.layers]
    meter.start("close")
    t1 = time.perf_counter()
    viewer.close()
    close_seconds = time.perf_counter() - t1
    wait_until(lambda: handle is None or handle.stopped.is_set(), 120)
    stopped_seconds = time.perf_counter() - t1
    meter.stop()
    floor = napari_floor(layers)

    out = {
        "volume": [int(s) for s in data.shape], "prior": Path(prior).stem, "nfe": args.nfe,
        "views": bool(args.views), "run_seconds": round(run_seconds, 2), "state": state,
        "run_click_seconds": round(click_seconds, 3),
        "second_run_click_seconds": round(click2_seconds, 3),
        "max_stall_seconds": {k: round(v, 3) for k, v in meter.max_gap.items()},
        "stalls_over_100ms": meter.long,
        "gc_full_collections_seconds": meter.gc_full,
        "close_blocks_seconds": round(close_seconds, 3),
        "worker_stopped_after_close_seconds": round(stopped_seconds, 3),
        "napari_alone": floor,
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", ""),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    if os.environ.get("QT_QPA_PLATFORM", "") in ("", "offscreen") and os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    main(sys.argv[1:])
