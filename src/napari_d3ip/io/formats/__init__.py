"""One door for measurement files: every format is one module plus one registration line.

A format module `napari_d3ip.io.formats.<name>` defines `FORMAT`, a `MeasurementFormat`:
`sniff` recognises a file by its content (keys and attributes, never the extension, which is
`.h5` for nearly everyone), `open` validates it once and reads it into a `Measurement`,
`inspect` describes it without compute (`d3ip inspect`). `open_measurement(path)` is the only
entry the CLI, the GUI, the npe2 reader and the sample data use. Every reader option lives in
`OpenOptions`; the CLI options of `reconstruct` and `inspect` are generated from it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import D3IPError

if TYPE_CHECKING:
    from ...operators.base import Measurement

#: masks a fully sampled MRI file can be undersampled with (`OpenOptions.mask`)
MASKS = ("equispaced", "random", "poisson")


@dataclass(frozen=True)
class OpenOptions:
    """Every reader option, in one place; None = the reader's default (or: not given)."""

    slices: str | None = None  # "a:b" (python slice of slices / readout positions), applied before loading
    mask: str | None = None  # fully sampled MRI: "equispaced" | "random" | "poisson"
    accel: float | None = None  # fully sampled MRI: acceleration for the chosen mask
    center_fraction: float | None = None  # fastMRI convention (0.08 with 4x, 0.04 with 8x)
    views: int | None = None  # CT: pick N of the file's angles (evenly)
    center: float | None = None  # CT: rotation centre (detector pixels), overrides the estimate
    binning: int | None = None  # CT: detector/slice binning factor
    seed: int = 0

    def given(self) -> dict[str, Any]:
        """The options set to something other than their default (for 'does not apply' errors)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}


#: help text of each option (CLI and GUI); the flag is --<name with dashes>, --bin for binning
OPTION_HELP: dict[str, str] = {
    "slices": "'a:b': read only slices (MRI 3-D: readout positions) a..b-1, a python slice, "
              "before anything is loaded",
    "mask": f"fully sampled MRI only: the undersampling mask, one of {', '.join(MASKS)}",
    "accel": "fully sampled MRI only: the acceleration of --mask (> 1)",
    "center_fraction": "fully sampled MRI only: the fraction of fully sampled centre lines "
                       "(fastMRI: 0.08 with 4x, 0.04 with 8x)",
    "views": "CT only: use N of the file's projection angles, evenly spaced",
    "center": "CT only: the rotation centre in detector pixels (default: estimated from the data)",
    "binning": "CT only: bin detector pixels and slices by this factor",
    "seed": "seed of a random mask",
}
OPTION_FLAGS: dict[str, str] = {"binning": "--bin"}


@dataclass(frozen=True)
class MeasurementFormat:
    """A file format the door reads (see the module docstring)."""

    name: str  # "d3ip", "fastmri", "ismrmrd", "dxchange", "nxtomo"
    description: str
    sniff: Callable[[Path], bool]  # content-based, cheap (keys/attrs only), never raises
    open: Callable[[Path, OpenOptions], Measurement]  # validates once, then reads lazily
    inspect: Callable[[Path, OpenOptions], dict[str, Any]]  # what `d3ip inspect` prints, no compute


#: one registration line per format: module napari_d3ip.io.formats.<name> defines FORMAT
BUILTIN = ("d3ip", "fastmri", "ismrmrd", "dxchange", "nxtomo")


def _error(message: str) -> D3IPError:
    from ..measurements import MeasurementError

    return MeasurementError(message)


def formats() -> list[MeasurementFormat]:
    """The registered formats whose module exists, in BUILTIN order."""
    out = []
    for name in BUILTIN:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise  # a format module that exists but fails to import is a bug: show it
            continue
        out.append(mod.FORMAT)
    return out


def _check_path(path: Path) -> None:
    if not path.exists():
        raise _error(f"{path}: no such file; check the path")
    if not path.is_file():
        raise _error(f"{path}: not a regular file (a folder or a device); a measurement is "
                     "one HDF5 file")


def _listing() -> str:
    return "\n".join(f"  {f.name:9s} {f.description}" for f in formats())


def detect(path: str | Path) -> MeasurementFormat:
    """The format of `path`, recognised by its content; a MeasurementError listing the known
    formats when none recognises it."""
    path = Path(path)
    _check_path(path)
    for fmt in formats():
        if fmt.sniff(path):
            return fmt
    with open(path, "rb") as fh:
        head = fh.read(8)
    what = "an HDF5 file in none of the known layouts" if head == b"\x89HDF\r\n\x1a\n" else "not an HDF5 file"
    raise _error(f"{path}: not a napari-d3ip measurement file, nor any other format this version "
                 f"reads ({what}); the formats read are:\n{_listing()}")


def check_options(options: OpenOptions, allowed: tuple[str, ...], fmt: str) -> None:
    """Refuse options that do not apply to this file (before reading), and bad values."""
    bad = [k for k in options.given() if k not in allowed and k != "seed"]
    if bad:
        flags = ", ".join(option_flag(k) for k in bad)
        verb = "does" if len(bad) == 1 else "do"
        raise _error(f"{flags} {verb} not apply to a {fmt} file; options it takes: "
                     f"{', '.join(option_flag(k) for k in allowed) or 'none'}")
    o = options
    if o.mask is not None and o.mask not in MASKS:
        raise _error(f"--mask {o.mask!r} is not one of {', '.join(MASKS)}")
    if o.accel is not None and not o.accel > 1:
        raise _error(f"--accel must be > 1 (1 = fully sampled), got {o.accel}")
    if o.center_fraction is not None and not 0 < o.center_fraction < 1:
        raise _error(f"--center-fraction must lie in (0, 1), got {o.center_fraction}")
    if o.views is not None and o.views < 2:
        raise _error(f"--views must be >= 2, got {o.views}")
    if o.binning is not None and o.binning < 1:
        raise _error(f"--bin must be >= 1, got {o.binning}")


def option_flag(name: str) -> str:
    """The CLI flag of an OpenOptions field."""
    return OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))


def slice_range(text: str | None, n: int, what: str = "slices") -> range:
    """The indices 'a:b' selects of n (a python slice, step allowed); all of them for None."""
    if text is None:
        return range(n)
    parts = str(text).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        vals = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise _error(f"--slices must be 'a:b' (python slice, e.g. 10:20 or :8), got {text!r}") from None
    if len(vals) == 3 and vals[2] is not None and vals[2] < 1:
        raise _error(f"--slices step must be >= 1, got {text!r}")
    picked = range(n)[slice(*vals)]
    if len(picked) == 0:
        raise _error(f"--slices {text!r} selects none of the file's {n} {what}")
    return picked


#: progress(stage, done, total) of the open in progress (long stages: ESPIRiT per slice)
Progress = Callable[[str, int, int], None]
_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("d3ip_open_progress",
                                                                            default=None)


def report_progress(stage: str, done: int, total: int) -> None:
    """Readers call this in their long stages; it reaches open_measurement's `progress`."""
    cb = _PROGRESS.get()
    if cb is not None:
        cb(stage, done, total)


def open_measurement(path: str | Path, options: OpenOptions | None = None,
                     device: Any = "cpu", progress: Progress | None = None) -> Measurement:
    """Recognise `path`'s format by content, validate it once and read it (on `device`);
    `progress(stage, done, total)` hears the long stages (ESPIRiT: once per slice)."""
    path = Path(path)
    options = options or OpenOptions()
    fmt = detect(path)
    token = _PROGRESS.set(progress)
    try:
        m = fmt.open(path, options)
    finally:
        _PROGRESS.reset(token)
    return m if str(device) == "cpu" else m.to(device)


def inspect_file(path: str | Path, options: OpenOptions | None = None) -> dict[str, Any]:
    """What `d3ip inspect` prints: {'format': name, ...the format's description}."""
    path = Path(path)
    fmt = detect(path)
    return {"format": fmt.name, **fmt.inspect(path, options or OpenOptions())}
