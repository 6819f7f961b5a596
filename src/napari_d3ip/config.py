"""RunConfig: every choice of a reconstruction, validated, with a JSON round trip and presets.

Presets are data (`presets/*.json` inside the package): the paper's Table 5 settings per task
and a `cpu-preview` that finishes a 64^3 volume on a laptop CPU in minutes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

SOLVERS = ("dds", "ddnm", "dps", "mbir", "admm-tv")
ADAPTERS = ("none", "scd", "ddip", "d3ip-base", "d3ip-mbir", "d3ip-meta")
INITS = ("slerp", "noise", "pure-noise")
DEVICES = ("auto", "cpu", "cuda")


MAX_CONFIG_BYTES = 1 << 20
_KIND = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


class ConfigError(ValueError):
    """A RunConfig field is invalid; the message names the field and what it accepts."""


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


@dataclass
class RunConfig:
    """All parameters of one reconstruction (operator parameters live in the Measurement)."""

    solver: str = "dds"
    adapter: str = "none"
    prior: str = "ellipses-64"
    nfe: int = 50
    eta: float = 0.85
    cg_steps: int = 5
    gamma: float | None = None  # None: AᴴA x = Aᴴy; a value: (I + γAᴴA) x = x̂0 + γAᴴy
    ddnm_cg_steps: int = 30
    dps_zeta: float = 1.9
    admm_rho: float = 0.5
    admm_lambda: float = 0.01
    admm_iters: int = 5
    tv_lambda: float = 0.01
    tv_iters: int = 100
    init: str = "slerp"
    t_start: int = 980
    seed: int = 0
    device: str = "auto"
    batch_slices: int = 16
    tile: int = 0  # > 0: the network sees overlapping tile x tile pieces of each slice (memory)
    bf16: str = "off"  # auto | on | off (core/precision.py); off: the same numbers on every CPU
    # adaptation (the paper's contribution)
    k_slices: int = 6
    adapt_iters: int = 10
    lr: float = 1e-3
    window_lo: int = 20
    window_hi: int = 980
    lora_rank: int = 4
    adapt_every: int = 1
    meta_finetune_iters: int | None = None
    adapt_params: str = "lora"  # lora | full (d3ip-base/mbir: fine-tune every weight)
    lora_targets: str = "blocks"  # blocks (paper) | all (+ input/output convs, time MLP)
    keep_optimizer: bool = False  # d3ip-base/mbir: one AdamW state across diffusion steps
    preset: str | None = None

    def _check_types(self) -> None:
        """Every field has its declared type: JSON strings for numbers, floats for integers,
        strings for booleans, NaN or infinity are errors naming the field (never coerced)."""
        for f in fields(self):
            ann = str(f.type)
            optional = "None" in ann
            base = ann.split("|")[0].strip()
            v = getattr(self, f.name)
            where = f"RunConfig.{f.name}"
            if v is None:
                if not optional:
                    raise ConfigError(f"{where}: must be {_KIND[base]}, got null")
                continue
            if base == "str" and f.name == "bf16" and isinstance(v, bool):
                continue  # legacy true/false, normalised in validate()
            got = f"{v!r} ({_json_type(v)})"
            if base == "bool":
                if not isinstance(v, bool):
                    raise ConfigError(f"{where}: must be true or false (a JSON boolean), got {got}")
            elif base == "int":
                if isinstance(v, float) and math.isfinite(v) and v.is_integer():
                    v = int(v)
                    setattr(self, f.name, v)
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ConfigError(f"{where}: must be an integer, got {got}")
            elif base == "float":
                if not isinstance(v, int | float) or isinstance(v, bool):
                    raise ConfigError(f"{where}: must be a number, got {got}")
                if not math.isfinite(float(v)):
                    raise ConfigError(f"{where}: must be a finite number, got {v!r}")
                setattr(self, f.name, float(v))
            elif base == "str":
                if not isinstance(v, str):
                    raise ConfigError(f"{where}: must be a string, got {got}")

    def validate(self) -> RunConfig:
        def bad(field: str, msg: str) -> ConfigError:
            return ConfigError(f"RunConfig.{field}: {msg}")

        from .core.precision import normalize_bf16_mode

        self._check_types()

        try:
            self.bf16 = normalize_bf16_mode(self.bf16)
        except ValueError as e:
            raise bad("bf16", str(e)) from None
        if self.solver not in SOLVERS:
            raise bad("solver", f"{self.solver!r} is not one of {', '.join(SOLVERS)}")
        if self.adapter not in ADAPTERS:
            raise bad("adapter", f"{self.adapter!r} is not one of {', '.join(ADAPTERS)}")
        if self.adapt_params not in ("lora", "full"):
            raise bad("adapt_params", f"{self.adapt_params!r} is not one of lora, full")
        if self.adapt_params == "full" and self.adapter not in ("d3ip-base", "d3ip-mbir"):
            raise bad("adapt_params", "'full' fine-tuning is for d3ip-base/d3ip-mbir (one shared set)")
        if self.lora_targets not in ("blocks", "all"):
            raise bad("lora_targets", f"{self.lora_targets!r} is not one of blocks, all")
        if not isinstance(self.keep_optimizer, bool):
            raise bad("keep_optimizer", f"must be true or false, got {self.keep_optimizer!r}")
        if self.init not in INITS:
            raise bad("init", f"{self.init!r} is not one of {', '.join(INITS)}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise bad("device", f"{self.device!r} is not one of {', '.join(DEVICES)}")
        for name, lo in (("nfe", 1), ("cg_steps", 0), ("ddnm_cg_steps", 1), ("admm_iters", 1),
                         ("tv_iters", 1), ("batch_slices", 1), ("k_slices", 1),
                         ("adapt_iters", 0), ("lora_rank", 1), ("adapt_every", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise bad(name, f"must be an integer >= {lo}, got {v!r}")
        if self.tile != 0 and self.tile < 32:
            raise bad("tile", f"must be 0 (whole slices) or >= 32 pixels, got {self.tile}")
        if not 0 <= self.seed < 2**63:
            raise bad("seed", f"must be an integer in 0 .. 2**63 - 1, got {self.seed}")
        if self.meta_finetune_iters is not None and self.meta_finetune_iters < 0:
            raise bad("meta_finetune_iters", f"must be >= 0 or null, got {self.meta_finetune_iters}")
        if not 1 <= self.nfe <= 1000:
            raise bad("nfe", f"must be between 1 and 1000 (the schedule's T), got {self.nfe}")
        if not 0.0 <= self.eta <= 1.0:
            raise bad("eta", f"must be in [0, 1], got {self.eta}")
        for name in ("admm_rho", "lr", "dps_zeta"):
            if not float(getattr(self, name)) > 0:
                raise bad(name, f"must be > 0, got {getattr(self, name)}")
        for name in ("admm_lambda", "tv_lambda"):
            if float(getattr(self, name)) < 0:
                raise bad(name, f"must be >= 0, got {getattr(self, name)}")
        if self.gamma is not None and self.gamma <= 0:
            raise bad("gamma", f"must be > 0 or null, got {self.gamma}")
        if not 0 < self.t_start < 1000:
            raise bad("t_start", f"must be in 1..999, got {self.t_start}")
        if not 0 <= self.window_lo <= self.window_hi <= 999:
            raise bad("window_lo", f"need 0 <= window_lo <= window_hi <= 999, got "
                                   f"[{self.window_lo}, {self.window_hi}]")
        if self.adapter != "none" and self.solver in ("admm-tv",):
            raise bad("adapter", "adaptation needs a diffusion solver; admm-tv has no prior")
        if self.adapter == "d3ip-mbir" and self.solver not in ("mbir",):
            raise bad("solver", "adapter d3ip-mbir runs with solver 'mbir' (DiffusionMBIR)")
        if self.adapter != "none" and self.solver == "dps":
            raise bad("adapter", "adaptation is defined for DDS/DDNM/MBIR estimators, not DPS")
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
        try:
            data = json.loads(str(text_or_path))
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
        try:
            data = json.loads(text)
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

    def replace(self, **changes: Any) -> RunConfig:
        d = self.to_dict()
        d.update({k: v for k, v in changes.items() if v is not None})
        return RunConfig.from_dict(d)


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


def from_preset(name: str, **overrides: Any) -> RunConfig:
    """RunConfig of a preset, with explicit overrides (None values are ignored)."""
    all_ = presets()
    if name not in all_:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(all_))}")
    d = {**all_[name]["config"], "preset": name}
    d.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict(d)
