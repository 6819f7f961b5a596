"""RunConfig: every choice of a reconstruction, validated, with a JSON round trip and presets.

RunConfig is the one schema of a run. Each field declares once, in its `Param`, its range or
choices, its help text, the solvers/adapters it matters to, its CLI flag(s) and whether
the GUI shows it among the basic or the advanced controls. The front ends render those
declarations and never re-list the fields: `d3ip reconstruct`/`demo` generate their options
from `specs()` (commands/reconstruct.py), the Reconstruct widget generates its controls from
them (widgets/reconstruct_widget.py), and `RunConfig.validate` checks ranges and choices from
the same declarations (plus the few rules that tie two fields together).

Presets are data (`presets/*.json` inside the package): the paper's Table 5 settings per task
and a `cpu-preview` that finishes a 64^3 volume on a laptop CPU in minutes. `from_preset` is
the one function that applies a preset, for the CLI and the GUI alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import D3IPError
from .methods import get_method

SOLVERS = ("dds", "ddnm", "dps", "mbir", "admm-tv")
ADAPTERS = ("none", "scd", "ddip", "d3ip-base", "d3ip-mbir", "d3ip-meta")
INITS = ("slerp", "noise", "pure-noise", "admm-tv")
DEVICES = ("auto", "cpu", "cuda")
BF16_MODES = ("off", "auto", "on")  # core/precision.py normalises legacy true/false
DIFFUSION_SOLVERS = ("dds", "ddnm", "dps", "mbir")  # all but admm-tv use the prior
ADAPTING = ("scd", "ddip", "d3ip-base", "d3ip-mbir", "d3ip-meta")  # all but none
SHARED_SET = ("d3ip-base", "d3ip-mbir")  # one adapted set for the volume (D3IP without meta)

MAX_CONFIG_BYTES = 1 << 20
_KIND = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


class ConfigError(D3IPError):
    """A RunConfig field is invalid; the message names the field and what it accepts."""


class _Null:
    """An explicit null from a front end (`--gamma none`), where None means "not given"."""

    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()


@dataclass(frozen=True)
class Param:
    """Everything the front ends and the validation know about one RunConfig field.

    help: one sentence; lo/hi: inclusive bounds (lo_open: lo itself refused); choices: the
    accepted strings; rule + accepts: a check the bounds cannot say (and its wording);
    none_means: for optional fields, what null means; flags: CLI flags (default
    --field-name); gui: "basic", "advanced" or "" (no control); solvers/adapters: where
    the field matters (empty: everywhere); user: a choice of the user that presets keep;
    step/decimals/gui_hi: how the GUI's spin box moves, rounds and where it ends when the
    field has no upper bound; note: added to a range error.
    """

    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None
    rule: Callable[[Any], bool] | None = None
    accepts: str = ""
    none_means: str = ""
    flags: tuple[str, ...] = ()
    gui: str = "advanced"
    solvers: tuple[str, ...] = ()
    adapters: tuple[str, ...] = ()
    user: bool = False
    step: float | None = None
    decimals: int | None = None
    gui_hi: float | None = None
    note: str = ""


def _p(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field whose metadata carries its `Param`."""
    return field(default=default, metadata={"param": Param(help, **spec)})


def _num(v: Any) -> str:
    """1.0 -> 1, 0.001 -> 0.001 (how a bound reads in a message)."""
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Spec:
    """A RunConfig field as the front ends see it: name, base type, default, Param."""

    name: str
    type: str  # "int" | "float" | "str" | "bool"
    optional: bool
    default: Any
    param: Param

    @property
    def flags(self) -> tuple[str, ...]:
        return self.param.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def choices(self) -> tuple[str, ...] | None:
        return self.param.choices

    def accepts(self) -> str:
        """What the field accepts, as a message says it: 'an integer >= 1 and <= 1000'."""
        p = self.param
        if p.accepts:
            text = p.accepts
        elif p.choices:
            text = f"one of {', '.join(p.choices)}"
        elif self.type == "bool":
            text = "true or false"
        elif self.type == "int":
            text = "an integer"
            if p.lo is not None:
                text += f" >= {_num(p.lo)}"
            if p.hi is not None:
                text += f" and <= {_num(p.hi)}" if p.lo is not None else f" <= {_num(p.hi)}"
        elif self.type == "float":
            if p.lo is not None and p.hi is not None:
                text = f"in {'(' if p.lo_open else '['}{_num(p.lo)}, {_num(p.hi)}]"
            elif p.lo is not None:
                text = f"{'>' if p.lo_open else '>='} {_num(p.lo)}"
            elif p.hi is not None:
                text = f"<= {_num(p.hi)}"
            else:
                text = "a finite number"
        else:
            text = "a string"
        return text + (" or null" if self.optional else "")

    def check(self, v: Any) -> str | None:
        """The problem with value `v` (already of the field's type), or None."""
        p = self.param
        if v is None:
            return None if self.optional else f"must be {_KIND[self.type]}, got null"
        if p.rule is not None:
            ok = p.rule(v)
        elif p.choices is not None:
            if v not in p.choices:
                return f"{v!r} is not one of {', '.join(p.choices)}"
            ok = True
        elif self.type in ("int", "float"):
            ok = not ((p.lo is not None and (v < p.lo or (p.lo_open and v == p.lo)))
                      or (p.hi is not None and v > p.hi))
        else:
            ok = True
        if ok:
            return None
        return f"must be {self.accepts()}, got {v!r}" + (f" ({p.note})" if p.note else "")

    def relevant(self, solver: str, adapter: str) -> bool:
        """Whether the field changes a run with this solver and adapter."""
        p = self.param
        return (not p.solvers or solver in p.solvers) and (not p.adapters or adapter in p.adapters)

    def used_with(self) -> str:
        """'used with --solver mbir' (empty when the field matters to every run)."""
        p = self.param
        bits = []
        if p.solvers == DIFFUSION_SOLVERS:
            bits.append("a diffusion solver (not admm-tv)")
        elif p.solvers:
            bits.append(f"solver {', '.join(p.solvers)}")
        if p.adapters == ADAPTING:
            bits.append("an adapter (not none)")
        elif p.adapters:
            bits.append(f"adapter {', '.join(p.adapters)}")
        return ("used with " + "; ".join(bits)) if bits else ""

    def show(self, v: Any) -> str:
        """A value as the help text shows it (None: 'none')."""
        if v is None:
            return "none"
        if isinstance(v, bool):
            return "true" if v else "false"
        return _num(v)


def _is_device(v: str) -> bool:
    return v in DEVICES or (v.startswith("cuda:") and v[5:].isdigit())


def _is_tile(v: int) -> bool:
    return v == 0 or v >= 32


@dataclass
class RunConfig:
    """All parameters of one reconstruction (operator parameters live in the Measurement)."""

    solver: str = _p("dds", "data-consistency solver (mbir: DiffusionMBIR; admm-tv: 3D TV, "
                     "no prior)", choices=SOLVERS, gui="basic")
    adapter: str = _p("none", "adaptation of the prior during sampling (d3ip-*: one LoRA for the "
                      "volume; scd/ddip: per slice; none: the plain solver)", choices=ADAPTERS,
                      gui="basic", solvers=DIFFUSION_SOLVERS)
    prior: str = _p("auto", "auto (the shipped prior trained at the slices' pixel scale: "
                    "organic-64 for 64-pixel slices, ellipses-128 for 128 and larger), a shipped "
                    "prior's name, or a .safetensors path (its .json card beside it)",
                    gui="basic", user=True, solvers=DIFFUSION_SOLVERS)
    nfe: int = _p(50, "diffusion steps (network function evaluations)", lo=1, hi=1000,
                  gui="basic", note="the schedule's T is 1000", solvers=DIFFUSION_SOLVERS)
    eta: float = _p(0.85, "stochasticity of each DDIM step (0 = deterministic)", lo=0.0, hi=1.0,
                    step=0.05, decimals=3, solvers=DIFFUSION_SOLVERS)
    cg_steps: int = _p(5, "conjugate-gradient steps of the data-consistency update per diffusion "
                       "step", lo=0, gui_hi=200, solvers=("dds", "mbir"))
    # None: AᴴA x = Aᴴy; a value: (I + γAᴴA) x = x̂0 + γAᴴy
    gamma: float | None = _p(None, "data weight γ: solve (I + γAᴴA) x = x̂0 + γAᴴy (the MRI "
                             "presets use 5)", lo=0.0, lo_open=True, gui_hi=1e4, step=0.5,
                             decimals=3, none_means="solve AᴴA x = Aᴴy from x̂0",
                             solvers=("dds", "mbir"))
    ddnm_cg_steps: int = _p(30, "DDNM: CG steps of its pseudo-inverse", lo=1, gui_hi=1000,
                            solvers=("ddnm",))
    dps_zeta: float = _p(1.9, "DPS: guidance step, in Landweber steps of 1/L", lo=0.0,
                         lo_open=True, gui_hi=100.0, step=0.1, decimals=3, solvers=("dps",))
    admm_rho: float = _p(0.5, "ADMM penalty ρ", lo=0.0, lo_open=True, gui_hi=1e3, step=0.1,
                         decimals=4, solvers=("mbir", "admm-tv"))
    admm_lambda: float = _p(0.01, "DiffusionMBIR: weight λ of ‖D_z x‖₁", lo=0.0, gui_hi=1e3,
                            step=0.005, decimals=4, solvers=("mbir",))
    admm_iters: int = _p(5, "DiffusionMBIR: ADMM iterations per step", lo=1, gui_hi=1000,
                         solvers=("mbir",))
    mbir_axes: str = _p("z", "DiffusionMBIR: TV along the slice axis only (z, the paper's) or "
                        "along all three axes (zyx)", choices=("z", "zyx"), solvers=("mbir",))
    anchor: float = _p(0.0, "DiffusionMBIR: weight w of the prior's estimate in the data step, "
                       "argmin ½‖Ax−y‖² + w/2‖x−x̂0‖² + λTV(x) (0: x̂0 only starts ADMM, the "
                       "paper's; with mbir_axes zyx, w → 0 gives ADMM-TV's answer)", lo=0.0,
                       gui_hi=100.0, step=0.01, decimals=4, solvers=("mbir",))
    tv_lambda: float = _p(0.01, "ADMM-TV: weight of the 3D TV", lo=0.0, gui_hi=1e3, step=0.005,
                          decimals=4, solvers=("admm-tv",))
    tv_iters: int = _p(100, "ADMM-TV: ADMM iterations", lo=1, gui_hi=100000,
                       solvers=("admm-tv",))
    init: str = _p("slerp", "start: A†y + noise interpolated across slices (slerp), A†y + "
                   "independent noise, pure noise, or ADMM-TV's result + noise (admm-tv: a warm "
                   "start at a small t_start, with tv_lambda and tv_iters)", choices=INITS,
                   solvers=DIFFUSION_SOLVERS)
    t_start: int = _p(980, "diffusion time of the start (init slerp/noise/admm-tv)", lo=1,
                      hi=999, solvers=DIFFUSION_SOLVERS)
    seed: int = _p(0, "seed of the sampling noise (and of a simulated measurement); the same "
                   "seed gives the same result", lo=0, hi=2**63 - 1,
                   accepts="an integer in 0 .. 2**63 - 1", gui="basic", user=True,
                   gui_hi=2**31 - 1)
    device: str = _p("auto", "torch device: auto = CUDA when a GPU is present, else CPU",
                     choices=DEVICES, rule=_is_device, accepts="one of auto, cpu, cuda, cuda:N",
                     gui="basic", user=True)
    batch_slices: int = _p(16, "slices per UNet batch (memory against speed; the result does "
                           "not depend on it)", lo=1, gui_hi=4096, solvers=DIFFUSION_SOLVERS)
    # > 0: the network sees overlapping tile x tile pieces of each slice (memory)
    tile: int = _p(0, "the network sees overlapping tile x tile pieces of each slice (memory); "
                   "0 = whole slices", lo=0, rule=_is_tile,
                   accepts="0 (whole slices) or >= 32 pixels", gui_hi=4096,
                   solvers=DIFFUSION_SOLVERS)
    bf16: str = _p("off", "bf16 autocast for the UNet: auto = only on CUDA or a CPU with bf16 "
                   "instructions (AVX2-only CPUs run bf16 ~55x slower); off gives the same "
                   "numbers on every CPU", choices=BF16_MODES, solvers=DIFFUSION_SOLVERS)
    # adaptation (the paper's contribution)
    k_slices: int = _p(6, "K: slices per adaptation iteration (D3IP)", lo=1, gui_hi=4096,
                       flags=("--k", "--k-slices"), adapters=ADAPTING)
    adapt_iters: int = _p(10, "I: adaptation (optimiser) iterations per step", lo=0,
                          gui_hi=1000, flags=("--iters", "--adapt-iters"), adapters=ADAPTING)
    lr: float = _p(1e-3, "adaptation learning rate", lo=0.0, lo_open=True, gui_hi=1.0,
                   step=1e-4, decimals=6, adapters=ADAPTING)
    window_lo: int = _p(20, "adapt only for diffusion times t in [window_lo, window_hi]", lo=0,
                        hi=999, adapters=ADAPTING)
    window_hi: int = _p(980, "adapt only for diffusion times t in [window_lo, window_hi]", lo=0,
                        hi=999, adapters=ADAPTING)
    lora_rank: int = _p(4, "rank of the LoRA adapters", lo=1, gui_hi=256, adapters=ADAPTING)
    adapt_every: int = _p(1, "adapt every n-th diffusion step", lo=1, gui_hi=1000,
                          adapters=ADAPTING)
    meta_finetune_iters: int | None = _p(
        None, "D3IP-meta: per-slice fine-tuning iterations from the meta-learned LoRA", lo=0,
        gui_hi=1000, none_means="as many as adapt_iters", adapters=("d3ip-meta",))
    # lora | full (d3ip-base/mbir: fine-tune every weight)
    adapt_params: str = _p("lora", "what adaptation trains: LoRA adapters, or every weight "
                           "('full', for d3ip-base/d3ip-mbir: one shared set)",
                           choices=("lora", "full"), adapters=ADAPTING)
    # blocks (paper) | all (+ input/output convs, time MLP)
    lora_targets: str = _p("blocks", "where LoRA goes: the UNet blocks (the paper), or all "
                           "(+ input/output convs and the time MLP)", choices=("blocks", "all"),
                           adapters=ADAPTING)
    keep_optimizer: bool = _p(False, "d3ip-base/mbir: keep one AdamW state across diffusion "
                              "steps", adapters=SHARED_SET)
    preset: str | None = _p(None, "the preset these settings came from (set by --preset / "
                            "the preset picker, not by hand)", gui="", flags=("",))

    def _check_types(self) -> None:
        """Every field has its declared type: JSON strings for numbers, floats for integers,
        strings for booleans, NaN or infinity are errors naming the field (never coerced)."""
        for s in specs():
            v = getattr(self, s.name)
            where = f"RunConfig.{s.name}"
            if v is None:
                if not s.optional:
                    raise ConfigError(f"{where}: must be {_KIND[s.type]}, got null")
                continue
            if s.name == "bf16" and isinstance(v, bool):
                continue  # legacy true/false, normalised in validate()
            got = f"{v!r} ({_json_type(v)})"
            if s.type == "bool":
                if not isinstance(v, bool):
                    raise ConfigError(f"{where}: must be true or false (a JSON boolean), got {got}")
            elif s.type == "int":
                if isinstance(v, float) and math.isfinite(v) and v.is_integer():
                    v = int(v)
                    setattr(self, s.name, v)
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ConfigError(f"{where}: must be an integer, got {got}")
            elif s.type == "float":
                if not isinstance(v, int | float) or isinstance(v, bool):
                    raise ConfigError(f"{where}: must be a number, got {got}")
                if not math.isfinite(float(v)):
                    raise ConfigError(f"{where}: must be a finite number, got {v!r}")
                setattr(self, s.name, float(v))
            elif s.type == "str":
                if not isinstance(v, str):
                    raise ConfigError(f"{where}: must be a string, got {got}")

    def validate(self) -> RunConfig:
        """Types, then each field against its declaration, then the rules between fields."""
        def bad(field: str, msg: str) -> ConfigError:
            return ConfigError(f"RunConfig.{field}: {msg}")

        from .core.precision import normalize_bf16_mode

        self._check_types()
        try:
            self.bf16 = normalize_bf16_mode(self.bf16)
        except ValueError as e:
            raise bad("bf16", str(e)) from None
        for s in specs():
            problem = s.check(getattr(self, s.name))
            if problem:
                raise bad(s.name, problem)
        # rules between fields
        if self.adapt_params == "full" and self.adapter not in SHARED_SET:
            raise bad("adapt_params", "'full' fine-tuning is for d3ip-base/d3ip-mbir (one shared set)")
        if not self.window_lo <= self.window_hi:
            raise bad("window_lo", f"need 0 <= window_lo <= window_hi <= 999, got "
                                   f"[{self.window_lo}, {self.window_hi}]")
        if self.adapter != "none" and self.solver not in DIFFUSION_SOLVERS:
            raise bad("adapter", f"adaptation needs a diffusion solver; {self.solver} has no prior")
        if self.adapter == "d3ip-mbir" and self.solver not in ("mbir",):
            raise bad("solver", "adapter d3ip-mbir runs with solver 'mbir' (DiffusionMBIR)")
        if self.solver == "mbir" and self.adapter in ("d3ip-base", "d3ip-meta"):
            raise bad("adapter", f"{self.adapter} adapts on K scattered slices, and DiffusionMBIR "
                                 "needs contiguous ones (it differences along z): use adapter "
                                 "d3ip-mbir with solver mbir")
        if self.adapter != "none" and self.solver == "dps":
            raise bad("adapter", "adaptation is defined for DDS/DDNM/MBIR estimators, not DPS")
        if (self.solver in DIFFUSION_SOLVERS and self.init == "admm-tv"
                and self.nfe > self.t_start + 1):
            raise bad("nfe", f"a warm start (init admm-tv) walks nfe steps from t_start down to "
                             f"0: nfe {self.nfe} does not fit below t_start {self.t_start}; use "
                             f"nfe <= {self.t_start + 1} or a larger t_start")
        return self

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a RunConfig is a JSON object, got {_json_type(d)}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown RunConfig fields {unknown}; known: {sorted(names)}")
        return cls(**d).validate()

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> RunConfig:
        """From JSON text, or from a file (a Path, or a string that is not JSON text)."""
        if isinstance(text_or_path, Path) or not str(text_or_path).lstrip().startswith("{"):
            return cls.from_file(text_or_path)
        from .validation import loads_strict

        try:
            data = loads_strict(str(text_or_path), "RunConfig JSON")
        except json.JSONDecodeError as e:
            raise ConfigError(f"RunConfig JSON is not valid: {e.msg} at line {e.lineno} column "
                              f"{e.colno}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"RunConfig JSON must be an object {{...}}, got {_json_type(data)}")
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """A RunConfig JSON file, or a run card (its "config" is used). Every error names the
        file, and the field where there is one."""
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p}: no such file")
        if not p.is_file():
            raise ConfigError(f"config file {p}: not a regular file")
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {p}: {p.stat().st_size} bytes is too large for a "
                              "RunConfig (a few hundred bytes); is it the right file?")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"config file {p}: not a text (UTF-8 JSON) file") from None
        except OSError as e:
            raise ConfigError(f"config file {p}: cannot be read ({e.strerror})") from None
        from .validation import loads_strict

        try:
            data = loads_strict(text, f"config file {p}")  # no duplicate keys, bounded depth
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {p}: not valid JSON ({e.msg} at line {e.lineno} "
                              f"column {e.colno})") from None
        if isinstance(data, dict) and "napari_d3ip_version" in data and isinstance(
                data.get("config"), dict):
            data = data["config"]  # a previous run card
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p}: must hold a JSON object {{\"solver\": ...}}, "
                              f"got {_json_type(data)}")
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"config file {p}: {e}") from None
        except TypeError as e:  # defensive: a field the dataclass rejects
            raise ConfigError(f"config file {p}: {e}") from None

    @property
    def n_steps(self) -> int:
        """The step count every front end shows: NFE for a diffusion solver, iterations for
        a method of its own (ADMM-TV's tv_iters); the method says which (methods.py)."""
        return get_method(self.solver).n_steps(self)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with `changes` (None: not given, NULL: set to null), validated."""
        return RunConfig.from_dict({**self.to_dict(), **_given(changes)})


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides a front end gave: None = not given (dropped), NULL = an explicit null."""
    return {k: (None if v is NULL else v) for k, v in overrides.items() if v is not None}


_SPECS: tuple[Spec, ...] | None = None


def specs() -> tuple[Spec, ...]:
    """Every RunConfig field with its declaration, in declaration order."""
    global _SPECS
    if _SPECS is None:
        out = []
        for f in fields(RunConfig):
            ann = str(f.type)
            out.append(Spec(f.name, ann.split("|")[0].strip(), "None" in ann, f.default,
                            f.metadata["param"]))
        _SPECS = tuple(out)
    return _SPECS


def spec(name: str) -> Spec:
    """The declaration of one field."""
    for s in specs():
        if s.name == name:
            return s
    raise KeyError(f"RunConfig has no field {name!r}")


def _preset_root():
    return resources.files("napari_d3ip") / "presets"


def presets() -> dict[str, dict[str, Any]]:
    """All presets: name -> {'description', 'task', 'config': {...}}."""
    out = {}
    for p in sorted(_preset_root().iterdir(), key=lambda p: p.name):
        if p.name.endswith(".json"):
            data = json.loads(p.read_text())
            for name, entry in data.items():
                out[name] = entry
    return out


def presets_for(kind: str) -> list[str]:
    """The presets made for measurements of this operator kind (a preset's `task`)."""
    return [name for name, entry in presets().items() if entry.get("task") == kind]


def check_preset_kind(preset: str | None, kind: str) -> None:
    """Refuse a preset made for another task: its settings (gamma, solver knobs, learning rate)
    were chosen for that task's operator and silently give a worse result on this one."""
    if not preset:
        return
    all_ = presets()
    task = all_.get(preset, {}).get("task")
    if task is None or task == kind:
        return
    names = presets_for(kind)
    raise ConfigError(f"preset {preset!r} is made for {task} measurements, but this measurement is "
                      f"{kind}: choose one of the {kind} presets ({', '.join(names) or 'none'}) "
                      "or set the method's options yourself without --preset")


def user_fields() -> tuple[str, ...]:
    """Fields that are the user's choices, not the method's: a preset never changes them."""
    return tuple(s.name for s in specs() if s.param.user)


def from_preset(name: str, keep: RunConfig | dict[str, Any] | None = None,
                **overrides: Any) -> RunConfig:
    """The one way a preset becomes a RunConfig, for the CLI and the GUI alike.

    RunConfig's defaults, then every field the preset sets, then the user's own choices
    (`user_fields()`: prior, device, seed) from `keep` (the GUI's current settings), then
    `overrides` (the CLI's options; None = not given, NULL = null). Nothing else survives
    from before: applying a preset yields exactly its configuration.
    """
    all_ = presets()
    if name not in all_:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(all_))}")
    d = {**all_[name]["config"], "preset": name}
    if keep is not None:
        kept = keep.to_dict() if isinstance(keep, RunConfig) else dict(keep)
        d.update({k: kept[k] for k in user_fields() if k in kept})
    d.update(_given(overrides))
    return RunConfig.from_dict(d)
