"""`d3ip-slicer`: run a reconstruction the way 3D Slicer calls a CLI module.

Slicer writes the chosen volume to a NRRD file, calls `d3ip-slicer --input_volume in.nrrd
--output_volume out.nrrd --solver dds ...` (one option per parameter of `schema.xml_text()`),
reads progress from `<filter-progress>` lines on stdout, shows stderr when the exit status is
not 0, and loads the output file. This module holds no science: the measurement is read or
simulated by the same `load_measurement` as `d3ip reconstruct`, the RunConfig comes from
`config.from_preset` / `RunConfig.replace`, the volume is reconstructed by
`pipeline.reconstruct` and written by `io.results.save_result` (the input's affine, so
spacing, origin and direction come back as they went in).

Cancel: SIGTERM or SIGINT set a flag that `reconstruct` reads between network batches and
this loop reads between steps; the run stops within one diffusion step, nothing is written and
the exit status is 128 + the signal. (Slicer's own Cancel button kills the process outright;
then the temporary-name writes guarantee the same: no file appears under the output's name
unless it is complete.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import D3IPError
from .schema import NO_PRESET, TITLE, SlicerParam, all_params

#: volume formats Slicer can hand over and load back as one file (.mhd is two files)
OUTPUT_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")


class SlicerArgumentError(D3IPError):
    """A parameter Slicer passed is not usable; the message names the parameter."""


class Cancelled(Exception):
    """SIGTERM / SIGINT during the run: stop, write nothing."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (Slicer shows stderr as the error)."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message}\n")


# -- the command line, from the same table as the XML --------------------------------------
def parse_value(p: SlicerParam, text: str | None) -> Any:
    """A parameter's text as Python: int, float, bool, or the string itself."""
    if text is None:
        return None
    if p.tag == "integer":
        return int(text)
    if p.tag == "double":
        return float(text)
    if p.tag == "boolean":
        return text == "true"
    return text


def build_parser() -> argparse.ArgumentParser:
    """One option per parameter of the XML (`--name`), plus --xml and --write-module."""
    from .. import __version__

    parser = _OneLineParser(prog="d3ip-slicer", description="3D Slicer CLI module of napari-d3ip: "
                            "reconstruct a volume as Slicer calls it. `--xml` prints the module's "
                            "description; docs/slicer.md says how to install it in Slicer.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--xml", action="store_true", help="print the Execution Model XML and exit")
    parser.add_argument("--write-module", metavar="DIR", help="write the Slicer module folder "
                        "(D3IPReconstruct.py + .xml) into DIR and exit")
    parser.add_argument("--force", action="store_true", help="with --write-module: replace "
                        "module files that differ")
    for p in all_params():
        kw: dict[str, Any] = {"dest": p.name, "help": p.description.replace("%", "%%"),
                              "default": parse_value(p, p.default)}
        if p.tag == "boolean":
            kw["action"] = "store_true"
        else:
            kw["type"] = {"integer": int, "double": float}.get(p.tag, str)
            if p.elements:
                kw["choices"] = p.elements
        parser.add_argument(p.flag, **kw)
    return parser


# -- from the arguments to a RunConfig and a source ------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9,
                                                                abs_tol=1e-12)
    return a == b


def _optional_value(p: SlicerParam, text: str, kind: str) -> Any:
    """An optional field's text: '' = not given, 'none' = null, else a number."""
    from ..config import NULL

    text = text.strip()
    if not text:
        return None
    if text.lower() in ("none", "null"):
        return NULL
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise SlicerArgumentError(f"{p.label} (--{p.name}): {text!r} is not a number; leave it "
                                  "empty for the default") from None


def config_from_args(args: argparse.Namespace):
    """The RunConfig of a Slicer run: the preset (or RunConfig's defaults), then every setting
    the user changed from the default the form showed (Slicer passes them all, changed or not:
    one left at its default must not undo the preset)."""
    from ..config import RunConfig, from_preset, spec

    overrides: dict[str, Any] = {}
    for p in all_params():
        if not p.field:
            continue
        value = getattr(args, p.name)
        if p.tag == "string" and spec(p.field).optional:
            overrides[p.field] = _optional_value(p, value or "", spec(p.field).type)
        elif not _same(value, parse_value(p, p.default)):
            overrides[p.field] = value
    if args.preset and args.preset != NO_PRESET:
        return from_preset(args.preset, **overrides)
    return RunConfig().replace(**overrides)


def _noise(text: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise SlicerArgumentError(f"Noise level (--noise): {text!r} is not a number (0.01 = 1%); "
                                  "leave it empty for the paper's setting") from None


def source_namespace(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments `commands.reconstruct.load_measurement` reads, as `d3ip reconstruct` has
    them: one library path for both front ends."""
    volume, meas = args.input_volume or None, args.measurement or None
    if bool(volume) == bool(meas):
        raise SlicerArgumentError("give either 'Volume to simulate a scan from' (--input_volume) or "
                                  "'Measurement file' (--measurement), " +
                                  ("not both" if volume else "one of them"))
    if meas:  # the file holds its scan: no simulation option is a reader option
        return argparse.Namespace(measurement=meas, volume=None, sample=None)
    return argparse.Namespace(measurement=meas, volume=volume, sample=None,
                              operator=args.operator, views=args.views,
                              accel=args.accel if args.accel > 0 else None,
                              mask=None if args.mask == "auto" else args.mask, coils=args.coils,
                              noise=_noise(args.noise), axis=2, frame=None, series=None,
                              seed=args.seed)


def check_outputs(args: argparse.Namespace, source: argparse.Namespace, cfg) -> tuple[Path, Path | None]:
    """The output volume and run card Slicer named: writable, not an input (the volume, the
    measurement, the prior: `protected_inputs`, as for `d3ip reconstruct`), the card not a
    foreign JSON. Slicer names fresh files; a file already there under a named output is
    replaced (only once the new one is complete)."""
    from ..commands.reconstruct import protected_inputs
    from ..io.files import check_output
    from ..io.results import check_card_path

    if not args.output_volume:
        raise SlicerArgumentError("no 'Reconstructed volume' (--output_volume): choose or create "
                                  "an output volume")
    inputs = protected_inputs(source, cfg)
    out = check_output(args.output_volume, suffixes=OUTPUT_SUFFIXES, inputs=inputs, force=True,
                       what="reconstructed volume", option="--output_volume")
    card = None
    if args.run_card:
        card = check_output(args.run_card, suffixes=(".json",), inputs=[*inputs, ("output volume", out)],
                            force=True, what="run card", option="--run_card")
        check_card_path(card)
    return out, card


# -- progress on stdout ----------------------------------------------------------------------
def emit(line: str) -> None:
    """One line on stdout, at once (Slicer reads the pipe while the run goes on)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _clean(text: str) -> str:
    """Text inside a filter tag: no '<' (Slicer's parser stops there), one line."""
    return " ".join(str(text).replace("<", "(").replace(">", ")").split())


def progress_line(fraction: float) -> str:
    return f"<filter-progress>{min(max(fraction, 0.0), 1.0):.4f}</filter-progress>"


def comment_line(text: str) -> str:
    return f"<filter-comment>{_clean(text)}</filter-comment>"


def start_line(comment: str) -> str:
    return (f"<filter-start><filter-name>{TITLE}</filter-name>"
            f"<filter-comment>{_clean(comment)}</filter-comment></filter-start>")


def end_line(seconds: float) -> str:
    return f"<filter-end><filter-name>{TITLE}</filter-name><filter-time>{seconds:.2f}</filter-time></filter-end>"


def _warning_to_stdout(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings go to stdout: Slicer logs anything on stderr as an error of the module."""
    emit(f"warning: {_clean(message)}")


# -- cancellation --------------------------------------------------------------------------
class CancelOnSignal:
    """SIGTERM / SIGINT only set a flag; the run asks `requested()` between batches and steps."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        self.signum = signum

    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        if self.signum is not None:
            raise Cancelled(self.signum)

    def __enter__(self) -> CancelOnSignal:
        for s in self.SIGNALS:
            self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


# -- the run ----------------------------------------------------------------------------------
def drive(gen, cancel: CancelOnSignal):
    """Iterate a `reconstruct` generator, one progress line per step; returns the Result."""
    from ..pipeline import RunCancelled

    try:
        while True:
            cancel.check()
            try:
                step = next(gen)
            except StopIteration as done:
                return done.value
            emit(progress_line((step.index + 1) / step.total))
    except RunCancelled:
        raise Cancelled(cancel.signum or signal.SIGTERM) from None
    finally:
        gen.close()


def commit(result, measurement, out: Path, card_path: Path | None, argv: list[str]) -> None:
    """Write the volume (and the run card) under temporary names with `save_result`, then move
    them into place, the volume last: no file under the output's name until it is complete."""
    from ..io.files import atomic_write_text
    from ..io.results import json_default, save_result

    tmpdir = Path(tempfile.mkdtemp(prefix=".d3ip-slicer-", dir=out.parent))
    try:
        vol, card = save_result(result, tmpdir / out.name, measurement.affine,
                                measurement.intensity, overwrite=True)
        if card_path is not None:
            data = json.loads(card.read_text(encoding="utf-8"))
            data.update(output=str(out), front_end="d3ip-slicer", command_line=["d3ip-slicer", *argv])
            atomic_write_text(card_path, json.dumps(data, indent=2, default=json_default,
                                                    allow_nan=True) + "\n")
        os.replace(vol, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run(args: argparse.Namespace, argv: list[str], cancel: CancelOnSignal) -> int:
    """Check everything, reconstruct with progress lines, write; 0 on success."""
    from ..commands._common import describe_quality
    from ..commands.reconstruct import load_measurement
    from ..commands.simulate import check_simulation_options
    from ..core.prior import resolve_device
    from ..pipeline import reconstruct

    t0 = time.perf_counter()
    source = source_namespace(args)
    cfg = config_from_args(args)
    out, card_path = check_outputs(args, source, cfg)
    device = resolve_device(cfg.device)  # a missing GPU is said before any work
    if source.volume:
        check_simulation_options(source)
    what = f"reading {source.measurement}" if source.measurement else \
        f"simulating {source.operator} from {Path(source.volume).name}"
    emit(start_line(f"{what}; then {cfg.solver}" + (f" + {cfg.adapter}" if cfg.adapter != "none" else "")
                    + f" on {device}"))
    emit(progress_line(0.0))
    m = load_measurement(source)
    cancel.check()
    emit(comment_line(f"{m.n_slices} slices of {m.image_shape[0]}x{m.image_shape[1]}: reconstructing"))
    result = drive(reconstruct(m, cfg, should_stop=cancel.requested), cancel)
    cancel.check()
    emit(comment_line("writing the result"))
    commit(result, m, out, card_path, argv)
    emit(progress_line(1.0))
    emit(end_line(time.perf_counter() - t0))
    summary = f"{TITLE}: {m.n_slices}x{m.image_shape[0]}x{m.image_shape[1]} -> {out}"
    if result.metrics:
        quality = describe_quality(result.metrics, m.n_slices)
        summary += f"; against the reference (the input volume or the file's): {quality}"
    emit(summary)
    return 0


def _error_line(e: BaseException) -> str:
    where = f"{e.filename}: " if isinstance(e, OSError) and getattr(e, "filename", None) else ""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return "d3ip-slicer: error: " + " ".join(f"{where}{text}".split())


def main(argv: list[str] | None = None) -> int:
    """The `d3ip-slicer` console script and the Slicer module's entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.xml or args.write_module:
        from .module import print_or_write

        return print_or_write(args)
    with warnings.catch_warnings(), CancelOnSignal() as cancel:  # both restored on return
        warnings.showwarning = _warning_to_stdout
        try:
            return run(args, argv, cancel)
        except Cancelled as c:
            name = signal.Signals(c.signum).name
            print(f"d3ip-slicer: cancelled ({name}); nothing written", file=sys.stderr, flush=True)
            return 128 + c.signum
        except (ValueError, FileExistsError, FileNotFoundError, OSError, MemoryError) as e:
            print(_error_line(e) if not isinstance(e, MemoryError) else
                  "d3ip-slicer: error: out of memory; use a smaller volume or fewer slices, a smaller "
                  "'Slices per network batch', or a machine with more memory", file=sys.stderr, flush=True)
            return 2
