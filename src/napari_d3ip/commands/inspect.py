"""`d3ip inspect FILE`: what a measurement file holds, read from its headers, with no compute.

Format (recognised by content), shapes, coils, sampling pattern and effective acceleration,
ACS size, angles and rotation centre, whether a reference is present, and the memory a run
needs. The reader options (--slices, --mask, ...) are the same as `reconstruct`'s, so the
description is of exactly what `reconstruct --measurement FILE <same options>` would read.
"""

from __future__ import annotations

import json
from typing import Any

from ._common import HelpFormatter, add_open_options, open_options_from_args


def register(sub) -> None:
    p = sub.add_parser("inspect", help="describe a measurement file (no compute)",
                       formatter_class=HelpFormatter, description=__doc__)
    p.add_argument("file", help="a measurement file: d3ip, fastMRI, ISMRMRD, Data Exchange, NXtomo")
    add_open_options(p)
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=_cmd)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return " x ".join(str(v) for v in value) if all(isinstance(v, int) for v in value) \
            else ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {_show(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_description(info: dict[str, Any]) -> str:
    """The lines `d3ip inspect` prints: 'key: value', memory in MiB/GiB."""
    from ..io.files import fmt_bytes

    width = max(len(k) for k in info)
    lines = []
    for key, value in info.items():
        text = fmt_bytes(value) if key.endswith("bytes") and value is not None else _show(value)
        lines.append(f"{key.replace('_', ' '):{width}s}  {text}")
    return "\n".join(lines)


def _cmd(args) -> int:
    from ..io import inspect_file

    info = inspect_file(args.file, open_options_from_args(args))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_description(info))
    return 0
