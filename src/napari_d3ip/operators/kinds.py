"""Operator kinds: one class per kind says everything the rest of the package knows about it.

A kind (ct, mri, mri-multicoil, ...) declares, in one `OperatorKind` subclass:

- its simulation `settings` (`Setting`: a `config.Param` per setting, the same declaration
  RunConfig's fields use), from which `d3ip simulate`'s options (commands/simulate.py), the
  Data dock's page (widgets/data_widget.py) and `measurement_builder.simulation_settings`'s
  checks are generated: one rule per setting for the CLI, the GUI and the library;
- its data (`data_name`, the file's dataset; `data_label`, the layer's name), A†y's name
  (`pinv_name`), whether y is complex, the layout of y, and how its operator arrays are
  stored (`stored_arrays`, all of them required to rebuild the operator);
- how to build, rebuild (from a file's params and arrays) and simulate its operator, and how
  to check its arrays in a measurement file (`check_file`).

Adding a kind is one new module with its subclass plus one `register_kind(...)` line in
`operators/__init__.py`; an unknown kind is an `OperatorError` naming the known ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from ..config import Param
from .base import Measurement, Operator, OperatorError

__all__ = ["Setting", "OperatorKind", "FileChecks", "register_kind", "get_kind", "kind_names",
           "NOISE", "all_kinds", "kind_attr"]


@dataclass(frozen=True)
class Setting:
    """One simulation setting of a kind: name, type, default and its `Param` (help, range or
    choices, `accepts` wording, CLI flag, GUI step/decimals/label).

    `cli`: whether `d3ip simulate` offers it as an option (flag: `param.flags[0]`, default
    `--name`); `param.gui` "" keeps it off the Data dock's page. Array values (an explicit
    mask) pass unchecked: only scalars have a range."""

    name: str
    type: str  # "int" | "float" | "str"
    default: Any
    param: Param
    cli: bool = True
    label: str = ""

    @property
    def flag(self) -> str:
        return self.param.flags[0] if self.param.flags else "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """The argparse attribute of the flag."""
        return self.flag.lstrip("-").replace("-", "_")

    def accepts(self) -> str:
        p = self.param
        if p.accepts:
            return p.accepts
        if p.choices:
            return f"one of {', '.join(p.choices)}"
        lo = "" if p.lo is None else f"{'>' if p.lo_open else '>='} {p.lo:g}"
        hi = "" if p.hi is None else f"<= {p.hi:g}"
        return " and ".join(b for b in (lo, hi) if b) or "a finite number"

    def problem(self, v: Any) -> str | None:
        """Why `v` is refused ('must be > 1 (1 = fully sampled) and finite, got nan'), or None."""
        if isinstance(v, np.ndarray | torch.Tensor):
            return None
        p = self.param
        if p.choices is not None:
            return None if v in p.choices else f"must be {self.accepts()}, got {v!r}"
        try:
            x = float(v)
        except (TypeError, ValueError):
            return f"must be {self.accepts()}, got {v!r}"
        ok = math.isfinite(x) and (self.type != "int" or x == int(x))
        if ok and p.lo is not None:
            ok = x > p.lo if p.lo_open else x >= p.lo
        if ok and p.hi is not None:
            ok = x <= p.hi
        return None if ok else f"must be {self.accepts()}, got {v!r}"

    def coerce(self, v: Any) -> Any:
        """`v` as the setting's type (after `problem` said it is fine)."""
        if isinstance(v, np.ndarray | torch.Tensor) or self.param.choices is not None:
            return v
        return int(v) if self.type == "int" else float(v) if self.type == "float" else v

    def show(self, v: Any) -> str:
        """How a command line writes the value: 8.0 -> 8."""
        return f"{v:g}" if isinstance(v, float) else str(v)

    def gui_range(self) -> tuple[float, float]:
        """(min, max) of the GUI's spin box: the same bounds, an open bound moved by one step
        of the shown decimals, no upper bound replaced by `gui_hi`."""
        p = self.param
        lo = 0.0 if p.lo is None else float(p.lo)
        if p.lo_open:
            lo += 1 if self.type == "int" else 10.0 ** -(p.decimals or 2)
        hi = p.hi if p.hi is not None else p.gui_hi if p.gui_hi is not None else 1e6
        return lo, float(hi)


#: relative Gaussian noise std: every kind has it (with its own default)
NOISE = Setting("noise", "float", 0.0, Param(
    "relative Gaussian noise std (0.01 = 1% of the mean measured magnitude)", lo=0.0,
    accepts="a finite number >= 0", hi=None, gui_hi=1.0, step=0.005, decimals=4, gui=""))


def noise(default: float) -> Setting:
    """The shared noise setting with a kind's default."""
    return _replace(NOISE, default=float(default))


class FileChecks(Protocol):
    """What the measurement file layer hands a kind to check its datasets (io/measurements.py):
    problems are collected, arrays read with their size bounded and named on failure."""

    problems: list[str]
    arrays: dict[str, np.ndarray]

    def dataset(self, name: str, why: str) -> Any: ...

    def dtype_ok(self, ds: Any, name: str, *, complex_ok: bool = False,
                 bool_ok: bool = False) -> bool: ...

    def read(self, ds: Any, name: str) -> np.ndarray: ...

    def memory(self, n_slices: int, image_shape: tuple[int, int], meas_shape: tuple[int, ...],
               n_views: int = 0, maps_shape: tuple[int, ...] | None = None) -> None: ...


class OperatorKind:
    """Base of every kind; see the module docstring. Subclasses set the class attributes and
    implement `build`, `rebuild` and `check_file`; `simulate` defaults to measuring with the
    built operator."""

    name: ClassVar[str]
    label: ClassVar[str]  # "parallel-beam CT": help texts
    data_name: ClassVar[str]  # dataset of y in a measurement file
    data_label: ClassVar[str]  # the measurement layer's name
    pinv_name: ClassVar[str]  # A†y as people call it: "FBP", "zero-filled"
    complex_data: ClassVar[bool]
    data_layout: ClassVar[str]  # "[slices, views, detectors]"
    stored_arrays: ClassVar[dict[str, str]] = {}  # Operator.arrays() name -> dataset name
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: scalar/array parameters `build_operator` / `simulate` accept, with their defaults
    params: ClassVar[dict[str, Any]] = {}
    #: parameters only `simulate` accepts (e.g. ESPIRiT's)
    simulate_only: ClassVar[dict[str, Any]] = {}

    @property
    def data_ndim(self) -> int:
        """Dimensions of y in a file: those `data_layout` names."""
        return len(self.data_layout.strip("[]").split(","))

    # -- settings --------------------------------------------------------------------------
    def setting(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def defaults(self) -> dict[str, Any]:
        """The paper's setting of each simulation setting."""
        return {s.name: s.default for s in self.settings}

    def check_settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """`given` (None = not given) over the defaults, each checked by its declaration."""
        names = [s.name for s in self.settings]
        unknown = sorted(k for k, v in given.items() if k not in names and v is not None)
        if unknown:
            raise OperatorError(f"{', '.join(unknown)}: not a setting of kind {self.name!r}; "
                                f"accepted: {', '.join(names)}")
        out = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        for s in self.settings:
            why = s.problem(out[s.name])
            if why:
                raise OperatorError(f"{s.name} {why}")
            out[s.name] = s.coerce(out[s.name])
        return out

    def simulation_params(self, s: dict[str, Any], shape: tuple[int, int], seed: int
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(keyword parameters of `operators.simulate`, JSON-able description of the sampling
        for `Measurement.simulation`) from checked settings."""
        kw = {k: v for k, v in s.items() if k != "noise" and k in {**self.params,
                                                                   **self.simulate_only}}
        return kw, {}

    def planned(self, s: dict[str, Any]) -> str:
        """What a simulation with settings `s` samples, said before it runs ('15 views')."""
        return "undersampled"

    def size_note(self, s: dict[str, Any]) -> str:
        """' with 15 views' after 'simulating ct of N slices of HxW' (memory messages)."""
        return ""

    def sampled(self, m: Measurement) -> str:
        """How a made measurement is sampled, as `d3ip simulate` reports it."""
        return "undersampled"

    def memory_shapes(self, s: dict[str, Any], shape: tuple[int, int], n_slices: int
                      ) -> tuple[tuple[int, ...], int, tuple[int, ...] | None]:
        """(y's shape per slice, views, coil-maps shape) a simulation with `s` makes, for
        `claimed_bytes`."""
        return tuple(shape), 0, None

    def build_bytes(self, n_views: int, h: float, w: float) -> float:
        """Memory building the operator needs beyond its arrays (the CT system matrix)."""
        return 0.0

    def inspect(self, params: dict[str, Any]) -> dict[str, Any]:
        """What `d3ip inspect` shows of a file's operator params."""
        return {}

    def views_in(self, y_shape: tuple[int, ...]) -> int:
        """Projection views in data of this shape (0: not a projection kind)."""
        return 0

    # -- operators -------------------------------------------------------------------------
    def build(self, shape: tuple[int, int], device: Any, n_slices: int | None,
              p: dict[str, Any], seed: int) -> Operator:
        raise NotImplementedError

    def rebuild(self, params: dict[str, Any], arrays: dict[str, np.ndarray],
                device: Any) -> Operator:
        raise NotImplementedError

    def simulate(self, x: torch.Tensor, noise: float, seed: int, device: Any,
                 p: dict[str, Any], mask_seed: int
                 ) -> tuple[Operator, torch.Tensor, dict[str, Any]]:
        """(the operator to reconstruct with, y, what to add to `simulation`)."""
        op = self.build(tuple(x.shape[-2:]), device, None, p, mask_seed)
        return op, op.simulate(x, noise=float(noise), seed=int(seed)), {}

    # -- files -----------------------------------------------------------------------------
    def check_file(self, c: FileChecks, y: Any, params: dict[str, Any] | None,
                   image_shape: tuple[int, int] | None) -> tuple[int, int] | None:
        """Check the kind's datasets beside y (`c.problems`, `c.arrays`); return the image
        shape they show (or the one given)."""
        return image_shape


_KINDS: dict[str, OperatorKind] = {}


def register_kind(kind: OperatorKind) -> OperatorKind:
    """Add a kind (its `name` must be new); returns it."""
    if kind.name in _KINDS:
        raise OperatorError(f"operator kind {kind.name!r} is registered already")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests that register a toy kind clean up with this)."""
    _KINDS.pop(name, None)


def kind_names() -> tuple[str, ...]:
    """The registered kinds, in the order every front end lists them."""
    return tuple(_KINDS)


def all_kinds() -> tuple[OperatorKind, ...]:
    return tuple(_KINDS.values())


def kind_attr(name: Any, attr: str, default: Any) -> Any:
    """An attribute of kind `name` ('pinv_name', 'data_label'), or `default` for an object
    that is no registered kind (a message about it still reads)."""
    k = _KINDS.get(name) if isinstance(name, str) else None
    return default if k is None else getattr(k, attr)


def get_kind(name: Any) -> OperatorKind:
    """The kind called `name`; else an OperatorError naming the known ones."""
    k = _KINDS.get(name) if isinstance(name, str) else None
    if k is None:
        raise OperatorError(f"unknown operator kind {name!r}; choose one of "
                            f"{', '.join(_KINDS)}")
    return k
