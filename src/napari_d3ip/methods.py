"""Reconstruction methods behind one protocol: the diffusion solvers and ADMM-TV.

A `Method` says what every front end needs to know about a `RunConfig.solver` without
comparing its name: whether it samples a diffusion prior (and so loads one, can adapt it and
costs network evaluations), which RunConfig field counts its steps (`n_steps`: what progress
bars, plots and messages show), what a step is called, and where its step generator and its
cost live (imported when used, so this module stays free of torch).

ADMM-TV is a method like the others: its step generator and its cost are in
`solvers/admm_tv.py`; the diffusion solvers share the pipeline's sampling loop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Method", "get_method", "register_method", "method_names"]


@dataclass(frozen=True)
class Method:
    """One reconstruction method (a `RunConfig.solver` value)."""

    name: str
    label: str  # as papers name it: "DDS", "ADMM-TV"
    uses_prior: bool  # samples a diffusion prior (and can adapt it)
    steps_field: str  # the RunConfig field that counts its steps
    step_word: str  # "steps", "iterations"
    phase: str  # a Step's phase while it runs: "sampling", "iterating"
    steps_at: str = ""  # "module:function" of its step generator ("" : the diffusion loop)
    cost_at: str = ""  # "module:function" of its own seconds (beyond network evaluations)

    def n_steps(self, cfg: Any) -> int:
        """The step count a run of `cfg` shows (NFE for diffusion, iterations for TV)."""
        return int(getattr(cfg, self.steps_field))

    def describe(self, cfg: Any) -> str:
        """'admm-tv (100 iterations)'."""
        return f"{self.name} ({self.n_steps(cfg)} {self.step_word})"

    def _load(self, where: str) -> Any:
        module, _, fn = where.partition(":")
        return getattr(importlib.import_module(module), fn)

    def steps(self) -> Any:
        """Its step generator: (measurement, cfg, t0) -> yields Steps, returns (volume, card
        entries)."""
        return self._load(self.steps_at)

    def own_seconds(self, n: int, h: int, w: int, cfg: Any) -> float:
        """Seconds its own iterations take on a 2-core CPU (0 for the diffusion solvers,
        whose time the cost model counts per network evaluation)."""
        return float(self._load(self.cost_at)(n, h, w, cfg)) if self.cost_at else 0.0


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    return tuple(_METHODS)


def get_method(name: str) -> Method:
    """The method `name`; a KeyError naming the known ones otherwise (RunConfig validates the
    solver before anyone asks)."""
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown solver {name!r}; choose one of {', '.join(_METHODS)}") from None


for _name, _label in (("dds", "DDS"), ("ddnm", "DDNM"), ("dps", "DPS"), ("mbir", "DiffusionMBIR")):
    register_method(Method(_name, _label, True, "nfe", "steps", "sampling"))
register_method(Method("admm-tv", "ADMM-TV", False, "tv_iters", "iterations", "iterating",
                       steps_at="napari_d3ip.solvers.admm_tv:steps",
                       cost_at="napari_d3ip.solvers.admm_tv:cpu_seconds"))
