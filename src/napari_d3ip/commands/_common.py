"""Helpers shared by the sub-commands: help text, progress, partial results, metrics, figures."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

from ..config import DEVICES as DEVICE_CHOICES
from ..config import spec as _spec
from ..methods import get_method
from ..operators import SIMULATION_DEFAULTS

DEVICE_HELP = _spec("device").param.help
#: the paper's sparse-view CT task: the one default of every command (operators/ declares it)
SV_CT_VIEWS = SIMULATION_DEFAULTS["ct"]["n_views"]


class HelpFormatter(argparse.HelpFormatter):
    """Ends every option's help with its default; keeps multi-line descriptions as written.

    An option whose help already says "(default: ...)" (a default that depends on other
    options) is left as it is; flags read "(default: off)"; required options have none.
    """

    def _fill_text(self, text, width, indent):
        if "\n" in text.strip():  # a module docstring: already laid out
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or "%(default)" in text or "(default" in text):
            return text
        if action.nargs == 0:  # store_true / store_false flags
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


def add_device_option(p, default: str | None = "auto", help_extra: str = "") -> None:
    """`--device auto|cpu|cuda`, the same on every command."""
    p.add_argument("--device", choices=DEVICE_CHOICES, default=default,
                   help=DEVICE_HELP + help_extra)


def add_open_options(p, title: str = "reading a measurement file") -> None:
    """The reader options (`io.formats.OpenOptions`), generated from its fields: flag, type,
    help. A flag the parser already has (reconstruct's simulation --views/--accel/--mask, the
    run's --seed) is shared: its value serves both, and its choices are widened to the
    readers'. None = not given (the reader's default)."""
    import dataclasses

    from ..io.formats import MASKS, OPTION_HELP, OpenOptions, option_flag

    g = p.add_argument_group(title, "Options of the file readers (io.formats.OpenOptions); an "
                             "option a file's format does not take is refused.")
    existing = {s: a for a in p._actions for s in a.option_strings}  # noqa: SLF001
    for f in dataclasses.fields(OpenOptions):
        flag = option_flag(f.name)
        if flag in existing:
            action = existing[flag]
            if f.name == "mask" and action.choices:
                action.choices = list(dict.fromkeys([*action.choices, *MASKS]))
            continue
        kind = str(f.type).split(" ")[0]
        g.add_argument(flag, dest=f.name, type={"int": int, "float": float}.get(kind, str),
                       default=None, help=OPTION_HELP[f.name] + (
                           "" if "(default" in OPTION_HELP[f.name] else " (default: the reader's)"))


def open_options_from_args(args):
    """The OpenOptions the parsed options give (fields the parser lacks: their defaults)."""
    import dataclasses

    from ..io.formats import OpenOptions

    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(OpenOptions)
          if getattr(args, f.name, None) is not None}
    return OpenOptions(**kw)


def say(message: str, quiet: bool = False) -> None:
    """A progress message on stderr (stdout keeps the results), at once."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def stage_progress(prefix: str, quiet: bool = False, every: float = 2.0):
    """A `progress(stage, done, total)` callback for io.open_measurement: one stderr line per
    update at most every `every` seconds (and the last), with the time so far and left."""
    import time

    t0, last = time.perf_counter(), [-1e9]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if quiet or (now - last[0] < every and done < total):
            return
        last[0] = now
        spent = now - t0
        left = spent / max(done, 1) * (total - done)
        say(f"{prefix}: {stage}: slice {done}/{total} ({spent:.0f} s, ~{left:.0f} s left)")

    return progress


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; `step` is the last finished Step (None before the first one)."""

    def __init__(self, step=None):
        super().__init__()
        self.step = step


def _ticker(bar, stop: threading.Event, every: float = 1.0) -> threading.Thread:
    """Redraw the bar every second, so that its clock runs during a long (first) step."""

    def loop():
        while not stop.wait(every):
            try:
                bar.refresh()
            except Exception:  # a redraw must never break the run
                return

    t = threading.Thread(target=loop, name="d3ip-progress", daemon=True)
    t.start()
    return t


def run_with_progress(gen, desc: str, quiet: bool = False):
    """Drive a `reconstruct` generator with a tqdm bar (loss, PSNR, phase); returns the Result.

    The bar is drawn before the generator starts (it loads the prior and prepares the
    operator before its first step), its clock runs from then on, and its ETA is the mean time
    per step so far times the steps left (no smoothing: it does not swing with the load).
    Ctrl-C raises `Interrupted` carrying the last finished Step, for a partial result.
    """
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    # redirected to a file or a pipe every redraw is a line: at most one every 30 s, no clock
    bar = tqdm(total=None, desc=desc, disable=quiet, dynamic_ncols=True, smoothing=0,
               unit="step", file=sys.stderr, mininterval=0.1 if tty else 30.0)
    stop = threading.Event()
    if not quiet and tty:
        bar.set_postfix_str("preparing, then the first step", refresh=True)
        _ticker(bar, stop)
    last = None
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as done:
                return done.value
            last = step
            if bar.total != step.total:
                bar.total = step.total
            # the data misfit mean |Ax - y|^2 of the current estimate (0 = fits the data exactly)
            post = {"phase": step.phase, "data misfit": f"{step.loss:.3g}"}
            if step.psnr is not None:
                post["PSNR per-slice mean"] = f"{step.psnr:.2f} dB"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        raise Interrupted(last) from None
    finally:
        stop.set()
        bar.close()
        gen.close()


# -- partial results (Ctrl-C) ------------------------------------------------------------------
def _split_ext(path: Path) -> tuple[str, str]:
    name = path.name
    ext = ".nii.gz" if name.endswith(".nii.gz") else path.suffix
    return (name[: -len(ext)] if ext else name), ext


def partial_path(out: str | Path) -> Path:
    """`<stem>.partial<ext>` beside `out`; numbered (`.partial-2`, ...) if that name is taken.

    Neither the volume nor its run card may exist: a partial result never overwrites a file.
    """
    from ..io.results import run_card_path

    out = Path(out)
    stem, ext = _split_ext(out)
    k = 1
    while True:
        cand = out.with_name(f"{stem}.partial{'' if k == 1 else f'-{k}'}{ext}")
        if not cand.exists() and not run_card_path(cand).exists():
            return cand
        k += 1


def save_partial(step, out: str | Path, measurement, config) -> tuple[Path, Path]:
    """Write the estimate of the last finished step as a partial result + its run card."""
    from ..core.prior import resolve_device
    from ..events import Result
    from ..io.results import save_result
    from ..metrics import evaluate
    from ..pipeline import run_card

    m = measurement
    volume = np.clip(np.asarray(step.estimate, np.float32), 0, 1)
    card = run_card(config, m, None, resolve_device(config.device), {
        "interrupted": True,
        "step_reached": step.index + 1,
        "steps_total": step.total,
        "t_reached": step.t,
        "phase": step.phase,
        "elapsed_seconds": round(float(step.elapsed), 3),
        "estimate": "the data-consistent x0 estimate of the last finished step, clipped to [0, 1]",
        "partial_of": str(out),
    })
    if get_method(config.solver).uses_prior:
        card["prior"] = {"name": config.prior}
    if m.reference is not None:
        metrics = evaluate(volume, np.asarray(m.reference))
        card["metrics"] = {k: v for k, v in metrics.items() if k != "per_slice"}
    path = partial_path(out)
    return save_result(Result(volume=volume, card=card), path, m.affine, m.intensity,
                       overwrite=False)


def report_interrupt(stop: Interrupted, out: str | Path, measurement, config,
                     no_partial: bool) -> None:
    """After Ctrl-C: save the current estimate (unless --no-partial) and say what happened."""
    step = stop.step
    if step is None:
        say("interrupted before the first step finished: nothing to save")
        return
    where = f"interrupted after step {step.index + 1} of {step.total}"
    if no_partial:
        say(f"{where}; --no-partial: nothing written")
        return
    try:
        nii, card = save_partial(step, out, measurement, config)
    except Exception as e:  # the interrupt is what the user has to see
        say(f"{where}; could not write the partial result: {e}")
        return
    say(f"{where}: partial result (that step's estimate) written to {nii} (+ {card.name}, "
        "\"interrupted\": true)")


# -- metrics, one definition -------------------------------------------------------------------
def quality(x: np.ndarray, ref: np.ndarray) -> dict:
    """The metrics every command prints, of `x` clipped to [0, 1] (the displayed range).

    `psnr`/`ssim`: mean over the slices whose reference is not constant (per-slice data range,
    as the paper); `volume_psnr`: one PSNR of the whole volume. See `napari_d3ip.metrics`.
    """
    from ..metrics import evaluate

    return evaluate(np.clip(np.asarray(x, np.float32), 0, 1), np.asarray(ref))


def describe_quality(metrics: dict, n_slices: int) -> str:
    """`PSNR 23.80 dB per-slice mean (56 of 64 slices), 25.10 dB volume; SSIM 0.648 per-slice mean`."""
    return (f"PSNR {metrics['psnr']:.2f} dB per-slice mean ({metrics['slices_scored']} of "
            f"{n_slices} slices), {metrics['volume_psnr']:.2f} dB volume; "
            f"SSIM {metrics['ssim']:.3f} per-slice mean")


# -- figures -----------------------------------------------------------------------------------
FIGURE_COLUMNS = ("axial", "coronal", "sagittal")


def orthogonal_views(v: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> list[tuple[str, np.ndarray, float]]:
    """(label, mid-slice, pixel aspect) for the columns of `orthogonal_figure`, in FIGURE_COLUMNS order.

    Sample volumes are (z, x, y) with x, y in RAS order: fixing y (the last axis) gives the
    coronal plane, fixing x (a row) the sagittal one.
    """
    sz, sy, sx = spacing
    n, h, w = v.shape
    views = {"axial": (v[n // 2], sx / sy),
             "coronal": (v[:, :, w // 2], sy / sz),
             "sagittal": (v[:, h // 2, :], sx / sz)}
    return [(label, *views[label]) for label in FIGURE_COLUMNS]


def orthogonal_figure(rows: dict[str, np.ndarray], path: Path, spacing=(1.0, 1.0, 1.0),
                      subtitles: dict[str, str] | None = None) -> Path:
    """A PNG with axial / coronal / sagittal mid-slices (columns) of each volume (rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(len(names), 3, figsize=(7.5, 2.6 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c, (label, img, aspect) in enumerate(orthogonal_views(rows[name], spacing)):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, aspect=1.0 / aspect,
                      origin="lower" if label != "axial" else "upper")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label)
            if c == 0:
                sub = (subtitles or {}).get(name, "")
                ax.set_ylabel(f"{name}\n{sub}", fontsize=9)
    fig.tight_layout()
    from ..io.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
