"""The Reconstruct dock's guard rails, without Qt: which presets a measurement may use, which
fields matter to the chosen method, and a refused Run said in plain words with its fix.

Everything is read from the library's own declarations (`config.presets_for`, each RunConfig
field's `Param.solvers` / `Param.adapters`), never re-listed here.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import RunConfig, Spec
from ..methods import get_method

#: the preset box's first entry: the form's own settings
CUSTOM = "(custom)"
#: a preset entry of the dock (not a library preset): ADMM-TV, the method the advice names
ADMM_TV = "ADMM-TV (no prior)"
ADMM_TV_SETTINGS = {"solver": "admm-tv", "adapter": "none"}

#: how a field is called in the dock and in messages
LABELS = {"nfe": "NFE", "k_slices": "K", "adapt_iters": "I", "seed": "seed",
          "tv_lambda": "TV weight", "tv_iters": "ADMM-TV iterations"}


def label(field: str) -> str:
    return LABELS.get(field, field.replace("_", " "))


def preset_choices(kind: str | None) -> list[str]:
    """The preset box: custom, the presets made for this kind of measurement, and ADMM-TV
    (the dock's own entry, unless the kind has an ADMM-TV preset of its own). Without a
    measurement (kind None) only custom and ADMM-TV: never a preset of the wrong kind."""
    from ..config import presets, presets_for

    names = presets_for(kind) if kind else []
    every = presets()
    has_tv = any(every[n].get("config", {}).get("solver") == ADMM_TV_SETTINGS["solver"]
                 for n in names)
    return [CUSTOM, *names] + ([] if has_tv else [ADMM_TV])


def applies(spec: Spec, solver: str, adapter: str) -> bool:
    """Whether the field changes a run with this solver and adapter (its declaration says)."""
    p = spec.param
    return (not p.solvers or solver in p.solvers) and (not p.adapters or adapter in p.adapters)


def plain_refusal(exc: BaseException) -> str:
    """A refused Run in plain words with the fix, e.g. 'Not started: NFE must be an integer
    >= 1 and <= 1000, got 0. Change it, then Run.' (no exception type, no 'RunConfig.')."""
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    m = re.match(r"RunConfig\.(\w+): (.*)", text)
    if m:
        field, rest = m.groups()
        fix = "set it as said" if rest.startswith(("adaptation", "adapter", "'full'")) \
            else "change it"
        return f"Not started: {label(field)}: {rest}. {fix.capitalize()}, then Run."
    if "preset" in text and "made for" in text:
        return f"Not started: {text}."
    return f"Not started: {text}"


def settings_that_differ(config: RunConfig, base: RunConfig) -> list[str]:
    """'NFE12', 'K4', ... for the fields that matter to this method and differ from `base`
    (the preset's or the default configuration); the user's prior/device are left out."""
    from ..config import specs

    out = []
    for s in specs():
        if s.name in ("prior", "device", "preset", "solver", "adapter") or not s.param.gui:
            continue
        v, b = getattr(config, s.name), getattr(base, s.name)
        if v == b or not applies(s, config.solver, config.adapter):
            continue
        shown = f"{v:g}" if isinstance(v, float) else str(v)
        name = label(s.name)
        out.append(f"{name}{shown}" if len(name) <= 3 else f"{name} {shown}")
    return out


def base_config(config: RunConfig) -> RunConfig:
    """What `config` is compared against: its preset's configuration, else the defaults
    with its solver and adapter."""
    from ..config import from_preset

    if config.preset:
        try:
            return from_preset(config.preset)
        except Exception:  # a preset gone from the file: compare with the defaults
            pass
    return RunConfig(solver=config.solver, adapter=config.adapter)


def run_label(config: RunConfig) -> tuple[str, str, str]:
    """(method, preset, differing settings) of a run, e.g. ('D3IP-base+DDS', 'cpu-preview',
    'NFE12 K4 I3')."""
    from .._layers import method_label

    preset = config.preset or (method_label(config) if not get_method(config.solver).uses_prior
                               else "custom")
    return method_label(config), preset, " ".join(settings_that_differ(config,
                                                                       base_config(config)))


def describe_value(v: Any) -> str:
    return "–" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
