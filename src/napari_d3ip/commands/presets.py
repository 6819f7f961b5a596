"""`d3ip presets`: list the presets (paper Table 5 settings and cpu-preview)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("presets", help="list reconstruction presets")
    p.add_argument("--show", help="print one preset's full configuration as JSON")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from ..config import from_preset, presets

    if args.show:
        print(from_preset(args.show).to_json())
        return 0
    for name, p in presets().items():
        c = p["config"]
        print(f"{name:18} {p['task']:14} {c.get('adapter', 'none'):10} {c.get('solver'):5} "
              f"{p['description']}")
    return 0
