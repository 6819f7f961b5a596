"""`d3ip presets`: list the presets (paper Table 5 settings and cpu-preview)."""

from __future__ import annotations

from ..methods import get_method
from ._common import HelpFormatter


def register(sub) -> None:
    from ..config import presets

    names = list(presets())
    p = sub.add_parser("presets", help="list reconstruction presets", formatter_class=HelpFormatter,
                       description="List the reconstruction presets (the paper's Table 5 settings "
                       "per task, and cpu-preview) or show one as RunConfig JSON.")
    p.add_argument("--show", choices=names, metavar="NAME",
                   help=f"print one preset's full configuration as JSON: {', '.join(names)} "
                   "(default: none: list them all)")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from ..config import from_preset, presets

    if args.show:
        print(from_preset(args.show).to_json())
        return 0
    row = "{:18} {:14} {:9} {:10} {:>4}  {}"
    print(row.format("preset", "task", "solver", "adapter", "NFE", "what it is"))
    for name, p in presets().items():
        c = from_preset(name)  # the values a run gets, defaults included
        nfe = str(c.nfe) if get_method(c.solver).uses_prior else "—"
        print(row.format(name, p["task"], c.solver, c.adapter, nfe, p["description"]))
    return 0
