"""Render the napari plugin mid-run and after a run to PNG files (for the README).

    python docs/screenshots.py [--out docs] [--nfe 12] [--iters 3]

Opens napari at 1600x1000 (under a private Xvfb display when there is no $DISPLAY), loads the
sample brain, simulates 15-view CT in the 'D3IP' dock's Data step, runs ADMM-TV (the method the
dock recommends), then DDS with the shipped prior 'ellipses-64' with the three radiological
views open, and saves `screenshot_running.png` (the second run about half way) and
`screenshot_done.png` (both runs in the runs table). Needs xvfb when
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


def _start_xvfb(size: str = "1600x1000x24") -> subprocess.Popen | None:
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
    except BaseException:  # os._exit below skips the interpreter's own report: print it here
        import traceback

        traceback.print_exc()
        raise
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
    viewer.window.set_geometry(0, 0, 1600, 1000)
    viewer.open_sample("napari-d3ip", "brain-64")
    _, flow = viewer.window.add_plugin_dock_widget("napari-d3ip", "D3IP")
    _wait(app, lambda: flow.ready, 120, "the dock's two steps")
    data, rec = flow.data, flow.reconstruct

    data.select_image("brain-64")
    data.kind.setCurrentText("ct")
    data.control("ct", "n_views").setValue(15)
    data.noise.setValue(0.01)
    data.seed.setValue(0)
    data.simulate()
    _wait(app, lambda: data.worker is None, 300, "the CT simulation")
    for layer in viewer.layers:  # keep the brain for comparison, show FBP under the result
        layer.visible = "sinogram" not in layer.name
    rec.views.open()
    _wait(app, rec.views.views.is_shown, 120, "the three views")
    rec.activity.setChecked(False)
    rec.update_interval = 0.5

    # 1: the recommended method (seconds)
    rec.preset.setCurrentText("sv-ct-admm-tv" if rec.preset.findText("sv-ct-admm-tv") >= 0
                              else "ADMM-TV (no prior)")
    if not rec.start():
        sys.exit(f"could not start: {rec.run.label.text()}")
    _wait(app, lambda: rec.run.state.phase in (Phase.DONE, Phase.FAILED), args.timeout,
          "the ADMM-TV run")
    # 2: a diffusion run, caught half way
    rec.preset.setCurrentText("sv-ct-dds")
    rec.prior.set_value(args.prior)
    rec.nfe.setValue(args.nfe)
    rec.device.setCurrentText("auto")
    rec.seed.setValue(0)
    if not rec.start():
        sys.exit(f"could not start: {rec.run.label.text()}")

    total = args.nfe
    _wait(app, lambda: rec.ctx.steps >= max(2, total // 2) and rec.ctx.images >= 1
          and rec.views.views.is_shown(), args.timeout, "half of the run")
    viewer.layers.selection.active = rec.ctx.layer
    rec.views.views.reset_cameras()
    _settle(app)
    viewer.screenshot(str(out / "screenshot_running.png"), canvas_only=False)
    print("wrote", out / "screenshot_running.png", "at", rec.run.label.text(), flush=True)

    _wait(app, lambda: rec.run.state.phase in (Phase.DONE, Phase.FAILED), args.timeout,
          "the end of the run")
    if rec.run.state.phase is Phase.FAILED:
        sys.exit(f"the run failed: {rec.run.label.text()}")
    rec.views.views.reset_cameras()
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
