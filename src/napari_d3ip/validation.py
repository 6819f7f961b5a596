"""Checks every entry point runs before any compute: JSON that cannot be trusted, the types of
what the Python API is given, dtypes and values that float32 cannot hold.

Why one module: the CLI, the GUI, the readers and the library's own API all meet the same
hostile inputs (a `--config` nested 200 000 levels deep, duplicate keys that "last wins" would
silently resolve, a dict where a RunConfig belongs, a NumPy array where a tensor belongs, a
float64 1e300 that becomes inf in float32). Each check raises a `D3IPError` that names the
file, field or argument and the fix, instead of a RecursionError or a NumPy TypeError later.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import D3IPError

MAX_JSON_DEPTH = 64  # a RunConfig or a prior card is 2-4 levels deep
FLOAT32_MAX = float(np.finfo(np.float32).max)
TORCH_SEED_MAX = 2**64 - 1  # torch.manual_seed accepts [-2**63, 2**64)


class InputError(D3IPError):
    """An argument or a value of the wrong kind: says which one, what it is and what is needed."""


# -- JSON ----------------------------------------------------------------------------------
def json_depth(text: str) -> int:
    """Deepest nesting of [ and { in JSON text (strings skipped), without parsing it."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _no_duplicates(where: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise InputError(f"{where}: the key {k!r} appears twice; JSON readers disagree on "
                                 "which one counts, so napari-d3ip refuses it: keep one")
            out[k] = v
        return out
    return hook


def loads_strict(text: str, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that refuses duplicate keys and nesting deeper than `max_depth` (Python's
    parser would raise RecursionError) with a message naming `where`. JSON syntax errors are
    left to the caller (json.JSONDecodeError), which words them for its file."""
    depth = json_depth(text)
    if depth > max_depth:
        raise InputError(f"{where}: JSON nested {depth} levels deep (at most {max_depth}); this "
                         "is not a napari-d3ip file")
    return json.loads(text, object_pairs_hook=_no_duplicates(where))


# -- values float32 must hold ----------------------------------------------------------------
def float32_overflow(arr: np.ndarray) -> int:
    """How many finite values of a float64/integer array lie beyond float32's range (they would
    become inf)."""
    a = np.asarray(arr)
    if a.dtype.kind == "c" and a.dtype.itemsize > 8:
        return float32_overflow(a.real) + float32_overflow(a.imag)
    if a.dtype.kind != "f" or a.dtype.itemsize <= 4:  # integers up to 2**64 fit float32's range
        return 0
    with np.errstate(invalid="ignore"):
        return int(np.count_nonzero(np.isfinite(a) & (np.abs(a) > FLOAT32_MAX)))


def check_real_dtype(dtype: Any, where: str, *, complex_ok: bool = False,
                     bool_ok: bool = False) -> np.dtype:
    """Refuse dtypes that are not numbers of the right kind (compound, bytes, strings, objects,
    bool where intensities belong, complex where real data belong)."""
    dt = np.dtype(dtype)
    if dt.names is not None or dt.kind == "V":
        raise InputError(f"{where}: compound/structured dtype {dt}; store plain numbers "
                         "(one value per element)")
    if dt.kind in "SUaO":
        raise InputError(f"{where}: dtype {dt} holds bytes, strings or objects, not numbers")
    if dt.kind == "b" and not bool_ok:
        raise InputError(f"{where}: boolean data; a mask is not an image or a measurement: store "
                         "numbers (float32)")
    if dt.kind == "c" and not complex_ok:
        raise InputError(f"{where}: complex data ({dt}) where real values are needed; store the "
                         "magnitude or the real part")
    if dt.kind not in "biufc":
        raise InputError(f"{where}: dtype {dt} is not numeric")
    return dt


# -- the Python API's arguments -------------------------------------------------------------
def check_config_object(config: Any, where: str = "config") -> None:
    """A RunConfig, not a dict or a preset name."""
    from .config import RunConfig

    if isinstance(config, RunConfig):
        return
    kind = type(config).__name__
    hint = ("RunConfig.from_dict(your_dict)" if isinstance(config, dict)
            else "from_preset(name)" if isinstance(config, str) else "RunConfig(...)")
    raise InputError(f"{where} must be a napari_d3ip.RunConfig, got a {kind}; pass {hint}")


def check_measurement_object(m: Any, where: str = "measurement") -> None:
    """A Measurement whose y is a torch tensor of a numeric dtype, whose operator has a kind."""
    import torch

    from .operators.base import Measurement

    if not isinstance(m, Measurement):
        raise InputError(f"{where} must be a napari_d3ip Measurement (read_measurement, "
                         f"simulate), got a {type(m).__name__}")
    y = m.y
    if isinstance(y, np.ndarray):
        raise InputError(f"{where}.y is a NumPy array; it must be a torch tensor: "
                         "m.y = torch.from_numpy(y)")
    if not isinstance(y, torch.Tensor):
        raise InputError(f"{where}.y must be a torch tensor, got a {type(y).__name__}")
    if not (y.is_floating_point() or y.is_complex()):
        raise InputError(f"{where}.y has dtype {y.dtype}; measurements are float32 (CT) or "
                         "complex64 (MRI)")
    if y.dtype in (torch.float64, torch.complex128):
        over = float32_overflow(y.detach().cpu().numpy())
        if over:
            raise InputError(f"{where}.y holds {over} value(s) beyond float32's range (|x| > "
                             f"{FLOAT32_MAX:.3g}): they would become infinite; rescale the data")
    if not isinstance(getattr(m.operator, "kind", None), str):
        raise InputError(f"{where}.operator is a {type(m.operator).__name__}, not a napari-d3ip "
                         "operator (operators.operator_from_params)")
    if m.reference is not None and not isinstance(m.reference, np.ndarray | torch.Tensor):
        raise InputError(f"{where}.reference must be an array or None, got a "
                         f"{type(m.reference).__name__}")


def check_int_range(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer option within [lo, hi] (e.g. what torch.manual_seed accepts)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise InputError(f"{name} must be an integer in {lo}..{hi}, got {value}")
    return int(value)
