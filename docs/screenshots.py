"""Render the napari plugin mid-run and after a run to PNG files (for the README).

    python docs/screenshots.py [--out docs] [--nfe 12] [--iters 3]

Opens napari (under a private Xvfb display when there is no $DISPLAY), loads the sample brain,
simulates 15-view CT with 'D3IP: Data', runs D3IP-base with the shipped prior 'ellipses-64'
from 'D3IP: Reconstruct' with the orthogonal views open, and saves
`screenshot_running.png` (about half way) and `screenshot_done.png`. Needs xvfb when
headless (`apt-get install xvfb xauth`) and napari-orthogonal-views for the three views.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _start_xvfb(size: str = "1800x1400x24") -> subprocess.Popen | None:
    """A private X display when there is none (napari needs OpenGL, offscreen Qt has none)."""
    if os.environ.get("DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        sys.exit("no $DISPLAY and no Xvfb: apt-get install xvfb xauth, or run under a display")
    for n in range(90, 130):
        if not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", size, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["DISPLAY"] = f":{n}"
    time.sleep(1.0)
    return proc


def _wait(app, cond, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--nfe", type=int, default=12, help="diffusion steps (small: quick)")
    ap.add_argument("--iters", type=int, default=3, help="LoRA iterations per step (I)")
    ap.add_argument("--k", type=int, default=4, help="adapted slices per step (K)")
    ap.add_argument("--prior", default="ellipses-64")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    xvfb = _start_xvfb()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    code = 1
    try:
        code = _render(args, out)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
        # Qt's exit handlers can hang once the X server is gone (seen here after the PNGs
        # were written); the files are complete, so leave without them
        os._exit(code)
    return code


def _render(args: argparse.Namespace, out: Path) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_d3ip.widgets.state import Phase

    viewer = napari.Viewer(title="napari-d3ip", show=True)
    app = QApplication.instance()
    viewer.window.set_geometry(0, 0, 1800, 1350)
    viewer.open_sample("napari-d3ip", "brain-64")
    _, data = viewer.window.add_plugin_dock_widget("napari-d3ip", "D3IP: Data")
    # one tab per dock (public tabify): the Reconstruct panel gets the full height to show
    _, rec = viewer.window.add_plugin_dock_widget("napari-d3ip", "D3IP: Reconstruct",
                                                  tabify=True)

    data.select_image("brain-64")
    data.kind.setCurrentText("ct")
    data.n_views.setValue(15)
    data.noise.setValue(0.01)
    data.seed.setValue(0)
    data.simulate()
    _wait(app, lambda: data.worker is None, 300, "the CT simulation")
    for layer in viewer.layers:  # keep the brain for comparison, show FBP under the result
        layer.visible = "sinogram" not in layer.name

    rec.prior.set_value(args.prior)
    rec.preset.setCurrentText("cpu-preview")
    rec.solver.setCurrentText("dds")
    rec.adapter.setCurrentText("d3ip-base")
    rec.nfe.setValue(args.nfe)
    rec.adv["k_slices"].setValue(args.k)
    rec.adv["adapt_iters"].setValue(args.iters)
    rec.device.setCurrentText("auto")
    rec.seed.setValue(0)
    rec.show_views.setChecked(True)
    # the advanced section stays collapsed: the run line, Run, Save and the card show
    rec.update_interval = 0.5
    # napari's activity spinner recomposes the window ~10x/s; under Xvfb's software OpenGL
    # that takes about half a core from the run (the widget's own progress bar stays)
    rec.activity.setChecked(False)
    if not rec.start():
        sys.exit(f"could not start: {rec.cost.text()}")

    total = args.nfe
    _wait(app, lambda: rec.ctx.steps >= max(2, total // 2) and rec.ctx.images >= 1
          and rec.views.views.is_shown(), args.timeout, "half of the run")
    viewer.layers.selection.active = rec.ctx.layer
    viewer.reset_view()
    _settle(app)
    viewer.screenshot(str(out / "screenshot_running.png"), canvas_only=False)
    print("wrote", out / "screenshot_running.png", "at", rec.run.label.text(), flush=True)

    _wait(app, lambda: rec.run.state.phase in (Phase.DONE, Phase.FAILED), args.timeout,
          "the end of the run")
    if rec.run.state.phase is Phase.FAILED:
        sys.exit(f"the run failed: {rec.run.label.text()}")
    viewer.reset_view()
    _settle(app)
    viewer.screenshot(str(out / "screenshot_done.png"), canvas_only=False)
    print("wrote", out / "screenshot_done.png", "at", rec.run.label.text())
    viewer.close()
    return 0


def _settle(app, seconds: float = 1.0) -> None:
    """Let Qt and vispy draw everything that is pending."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
