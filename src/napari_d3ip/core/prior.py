"""A diffusion prior: the UNet, its VP schedule and a card that says how it was made.

Weights are stored with safetensors (never pickle); the JSON card beside them records the
architecture, the training command, steps, seed, machine, commit, sha256 of the weights and
the measured quality. `load_prior("ellipses-64")` finds a prior shipped inside the package;
`load_prior("/path/to/x.safetensors")` loads a user's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import D3IPError, OptionError
from .schedule import VPSchedule, tweedie
from .unet import UNet, UNetConfig, count_parameters

SHIPPED_DIR = "priors"


class DeviceError(OptionError):
    """A device that is not there (cuda without a GPU) or not known."""


class PriorError(D3IPError):
    """A prior could not be loaded: the message names the problem and the fix."""


MAX_WEIGHTS_BYTES = 16 << 30  # a prior file larger than this is not one of ours
MAX_CARD_BYTES = 16 << 20


def check_regular_file(path: str | Path, what: str, max_bytes: int) -> Path:
    """A regular file (symlinks followed) of at most `max_bytes`: never hash or read a device,
    a FIFO or a folder (sha256 of /dev/zero never ends)."""
    import os
    import stat

    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise PriorError(f"{what} {p}: cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise PriorError(f"{what} {p} is not a regular file (a device, a pipe or a folder); pass "
                         "the .safetensors file itself")
    if st.st_size > max_bytes:
        raise PriorError(f"{what} {p} is {st.st_size / 2**30:.1f} GiB, more than the "
                         f"{max_bytes / 2**30:.0f} GiB a prior file may have")
    return p


class _MetaParameters(torch.overrides.TorchFunctionMode):
    """Parameters created as `torch.empty` land on the meta device (no memory). Unlike
    `with torch.device("meta")` it leaves other tensors alone: arithmetic on meta tensors
    imports torch._dynamo (1 s, holding up a GUI thread)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def _check_architecture(path: Path, cfg: UNetConfig) -> None:
    """Compare the card's network (its parameters on the meta device: no memory) with the
    tensor shapes in the weights file's header, before the real network is allocated."""
    from safetensors import safe_open

    try:
        with _MetaParameters():
            shapes = {k: tuple(v.shape) for k, v in UNet(cfg).state_dict().items()}
    except Exception as e:  # an impossible architecture (zero channels, ...)
        raise PriorError(f"the card's architecture {cfg.to_dict()} cannot be built: {e}") from e
    try:
        with safe_open(str(path), "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # safetensors raises its own error types
        raise PriorError(f"cannot read weights {path}: {e}") from e
    if stored != shapes:
        missing = sorted(set(shapes) - set(stored))[:3]
        extra = sorted(set(stored) - set(shapes))[:3]
        wrong = [k for k in shapes if k in stored and stored[k] != shapes[k]][:3]
        n_card = sum(math.prod(v) for v in shapes.values())
        n_file = sum(math.prod(v) for v in stored.values())
        raise PriorError(
            f"weights in {path.name} do not fit the card's architecture (card: {n_card:,} "
            f"parameters, file: {n_file:,}; missing {missing}, unexpected {extra}, other shape "
            f"{[(k, shapes[k], stored[k]) for k in wrong]}); the card belongs to another file")


# -- the card: one schema, one hash ----------------------------------------------------------
#: the card fields loading depends on; `card_sha256` covers them together with the weights'
#: sha256, so an edited schedule or scale is refused like edited weights
CARD_HASH_FIELDS = ("architecture", "image_size", "schedule", "pixel_scale", "sha256")
SCHEDULE_T = 1000  # the sampler's grid, the adaptation window and the presets are in 0..999


def card_digest(card: dict) -> str:
    """sha256 of the card's load-relevant fields (canonical JSON) and the weights' sha256."""
    sub = {k: card.get(k) for k in CARD_HASH_FIELDS}
    text = json.dumps(sub, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def card_problems(card: dict) -> list[str]:
    """Every field of a prior card against its one schema (types, ranges); [] when valid."""
    out: list[str] = []
    arch = card.get("architecture")
    if not isinstance(arch, dict):
        out.append(f"'architecture' must be an object, got {type(arch).__name__}")
    else:
        for k in ("base_channels", "num_res_blocks", "image_size", "in_channels", "out_channels"):
            if k in arch and not (_is_int(arch[k]) and arch[k] >= (0 if k == "num_res_blocks" else 1)):
                out.append(f"architecture.{k} must be a positive integer, got {arch[k]!r}")
        for k in ("channel_mults", "attn_resolutions"):
            v = arch.get(k, [])
            if not isinstance(v, list) or not all(_is_int(x) and x >= 1 for x in v) or (
                    k == "channel_mults" and not v):
                out.append(f"architecture.{k} must be a list of positive integers, got {v!r}")
        if "dropout" in arch and not (_number(arch["dropout"]) and 0 <= arch["dropout"] < 1):
            out.append(f"architecture.dropout must be in [0, 1), got {arch['dropout']!r}")
        if arch.get("prediction", "eps") not in ("eps", "v"):
            out.append(f"architecture.prediction must be 'eps' or 'v', got {arch.get('prediction')!r}")
        if "extra" in arch and not isinstance(arch["extra"], dict):
            out.append(f"architecture.extra must be an object, got {arch['extra']!r}")
    sched = card.get("schedule", {})
    if not isinstance(sched, dict):
        out.append(f"'schedule' must be an object {{T, beta_start, beta_end}}, got {sched!r}")
    else:
        unknown = sorted(set(sched) - {"T", "beta_start", "beta_end"})
        if unknown:
            out.append(f"schedule has unknown fields {unknown}")
        if sched.get("T", SCHEDULE_T) != SCHEDULE_T or not _is_int(sched.get("T", SCHEDULE_T)):
            out.append(f"schedule.T must be {SCHEDULE_T} (the sampler's time grid), got "
                       f"{sched.get('T')!r}")
        b0, b1 = sched.get("beta_start", 1e-4), sched.get("beta_end", 0.02)
        if not (_number(b0) and _number(b1) and 0 < b0 < b1 < 1):
            out.append(f"schedule beta_start, beta_end must be finite with 0 < beta_start < "
                       f"beta_end < 1, got {b0!r}, {b1!r}")
    scale = card.get("pixel_scale", {})
    if not isinstance(scale, dict) or ("render_size" in scale and not (
            _is_int(scale["render_size"]) and scale["render_size"] >= 1)):
        out.append(f"pixel_scale.render_size must be a positive integer, got {scale!r}")
    if "image_size" in card and not (_is_int(card["image_size"]) and card["image_size"] >= 1):
        out.append(f"image_size must be a positive integer, got {card['image_size']!r}")
    for k in ("sha256", "card_sha256"):
        v = card.get(k)
        if v is not None and not (isinstance(v, str) and len(v) == 64
                                  and all(c in "0123456789abcdef" for c in v)):
            out.append(f"{k} must be 64 hexadecimal digits, got {str(v)[:20]!r}")
    if "name" in card and not isinstance(card["name"], str):
        out.append(f"name must be a string, got {card['name']!r}")
    return out


def check_card(card: dict, card_path: Path) -> None:
    """The schema, then the card hash (when the card has one): before any weights are read."""
    problems = card_problems(card)
    if problems:
        raise PriorError(f"prior card {card_path} is not valid:\n  - " + "\n  - ".join(problems))
    want = card.get("card_sha256")
    if want is not None and card_digest(card) != want:
        raise PriorError(f"prior card {card_path} was edited after the prior was saved: its "
                         f"fields {', '.join(CARD_HASH_FIELDS)} no longer match its card_sha256; "
                         "restore the card (or re-export the prior)")


def sha256_file(path: str | Path) -> str:
    check_regular_file(path, "file to hash", MAX_WEIGHTS_BYTES)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def apply_net(net: torch.nn.Module, x: torch.Tensor, t: int, bf16: bool = False) -> torch.Tensor:
    """The network's noise estimate ε(x, t) of a batch of slices (N, 1, H, W), float32: the
    one place a network is applied (sampling, adaptation, Prior.eps). bf16 autocast only without
    a graph (a gradient through the network, adaptation or DPS, stays in float32)."""
    if bf16 and not torch.is_grad_enabled():
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return net(x, t).float()
    return net(x, t)


@dataclass
class Prior:
    """Network (returns epsilon whatever it predicts) + schedule + card (provenance, quality)."""

    net: UNet
    schedule: VPSchedule = field(default_factory=VPSchedule)
    card: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.card.get("name", "unnamed"))

    @property
    def image_size(self) -> int:
        return self.net.config.image_size

    @property
    def render_size(self) -> int:
        """Slice size (pixels across the field of view) the prior was trained for: its card's
        pixel_scale.render_size (patch priors), else its image size."""
        return card_scale({**self.card, "architecture": self.net.config.to_dict()})

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> Prior:
        self.net.to(device)
        return self

    @contextlib.contextmanager
    def tiling(self, tile: int):
        """Within the block the network sees slices larger than `tile` in blended tiles (0: whole
        slices); the prior's own setting is restored afterwards."""
        old = self.net.tile
        self.net.tile = int(tile)
        try:
            yield self
        finally:
            self.net.tile = old

    def eps(self, x_t: torch.Tensor, t: int, autocast_bf16: bool = False) -> torch.Tensor:
        """Noise estimate in float32 (optionally computed under bf16 autocast on CPU/CUDA)."""
        return apply_net(self.net, x_t, t, autocast_bf16)

    def tweedie(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """Posterior mean E[x0 | x_t] by Tweedie's formula."""
        return tweedie(x_t, self.eps(x_t, t), self.schedule.alpha_bar(t))

    def save(self, path: str | Path, card: dict | None = None,
             dtype: torch.dtype = torch.float32) -> Path:
        """Write `path` (.safetensors) and `path.with_suffix('.json')` (the card, with sha256).

        `dtype=torch.float16` halves the file (shipped priors: every committed binary stays in
        the history); weights are loaded back into a float32 network either way."""
        from ..io.files import atomic_path, atomic_write_text

        path = Path(path)
        state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in self.net.state_dict().items()}
        with atomic_path(path) as tmp:  # the one writer: temporary name, then renamed
            save_file(state, str(tmp))
            digest = sha256_file(tmp)
        card = dict(self.card if card is None else card)
        card.update(
            architecture=self.net.config.to_dict(),
            image_size=self.image_size,
            parameters=count_parameters(self.net),
            schedule={"T": self.schedule.T, "beta_start": self.schedule.beta_start,
                      "beta_end": self.schedule.beta_end},
            weights_file=path.name,
            weights_dtype=str(dtype).replace("torch.", ""),
            sha256=digest,
        )
        card.setdefault("name", path.stem)
        card["card_sha256"] = card_digest(card)
        atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
        self.card = card
        return path


def shipped_priors() -> list[str]:
    """Names of the priors that ship inside the package."""
    root = resources.files("napari_d3ip") / SHIPPED_DIR
    return sorted(p.name[: -len(".safetensors")] for p in root.iterdir()
                  if p.name.endswith(".safetensors"))


def _resolve(name_or_path: str | Path) -> Path:
    if not str(name_or_path).strip():
        raise PriorError(f"the prior name is empty; pass a shipped prior ({', '.join(shipped_priors())}), "
                         "'auto', or the path of a .safetensors file (--prior)")
    p = Path(name_or_path)
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if p.suffix == ".safetensors" or p.exists() or "/" in str(name_or_path):
        if not p.exists():
            raise PriorError(f"prior weights file not found: {p}")
        return p
    root = resources.files("napari_d3ip") / SHIPPED_DIR
    cand = Path(str(root / f"{name_or_path}.safetensors"))
    if not cand.exists():
        raise PriorError(
            f"unknown prior {str(name_or_path)!r}: shipped priors are {shipped_priors()}; "
            "or pass the path of a .safetensors file with its .json card beside it"
        )
    return cand


def _card_beside(weights: Path) -> dict:
    """The JSON card beside a prior's weights file, checked (size, JSON object)."""
    path = weights.with_suffix(".json")
    if not path.exists():
        raise PriorError(f"prior card missing: expected {path} beside {weights.name}")
    check_regular_file(path, "prior card", MAX_CARD_BYTES)
    from ..validation import loads_strict

    try:
        card = loads_strict(path.read_text(), f"prior card {path}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PriorError(f"prior card {path} is not valid JSON: {e}") from e
    if not isinstance(card, dict):
        raise PriorError(f"prior card {path} must hold a JSON object")
    return card


def read_card(name_or_path: str | Path) -> dict:
    """The card of a prior (shipped name or path) without loading its weights: what the cost
    model and the scale check need (architecture, pixel scale)."""
    return _card_beside(_resolve(name_or_path))


def card_scale(card: dict) -> int:
    """Pixels across the field of view a prior was trained for (patch priors: render_size)."""
    arch = card.get("architecture", {})
    return int(card.get("pixel_scale", {}).get("render_size", arch.get("image_size", 64)))


# the shipped prior to pick for each pixel scale when a run asks for prior "auto" (one per scale):
# at 64 pixels the organic-phantom prior, a better denoiser than TV on real anatomy where the
# Ellipses one is not (benchmarks/denoiser_vs_tv_anatomy.md; docs/results.md)
SCALE_DEFAULTS = ("organic-64", "ellipses-128")


def choose_prior(image_shape: tuple[int, int]) -> tuple[str, str]:
    """The shipped prior whose pixel scale is nearest (in ratio) to the slices', and why."""
    size = max(image_shape)
    shipped = shipped_priors()
    scales = {n: card_scale(read_card(n)) for n in SCALE_DEFAULTS if n in shipped}
    if not scales:
        raise PriorError("no shipped prior found for 'auto'; pass --prior NAME or a path")
    name = min(scales, key=lambda n: abs(math.log(scales[n] / size)))
    scale = scales[name]
    return name, (f"slices of {image_shape[0]}x{image_shape[1]}: {name} (trained for "
                  f"{scale}-pixel slices) is the shipped prior nearest in scale")


def resolve_prior_name(name: str, image_shape: tuple[int, int] | None = None) -> str:
    """`name` itself, or for "auto" the shipped prior that matches the slices' scale."""
    if name != "auto":
        return name
    if image_shape is None:
        return SCALE_DEFAULTS[0]
    return choose_prior(image_shape)[0]


def load_prior(
    name_or_path: str | Path = "ellipses-64",
    device: torch.device | str = "cpu",
    verify: bool = True,
) -> Prior:
    """Load a shipped prior by name or a user's prior from a .safetensors path (card beside it)."""
    path = _resolve(name_or_path)
    card_path = path.with_suffix(".json")
    check_regular_file(path, "prior weights", MAX_WEIGHTS_BYTES)
    card = _card_beside(path)
    if verify and "sha256" in card:
        digest = sha256_file(path)
        if digest != card["sha256"]:
            raise PriorError(
                f"sha256 of {path.name} is {digest[:12]}…, the card says {card['sha256'][:12]}…: "
                "the weights were changed or the card belongs to another file"
            )
    if "architecture" not in card:
        raise PriorError(f"prior card {card_path} has no 'architecture' field")
    problems = card_problems(card)
    if problems:
        raise PriorError(f"prior card {card_path} is not valid:\n  - " + "\n  - ".join(problems))
    try:
        ucfg = UNetConfig.from_dict(card["architecture"])
    except (TypeError, ValueError) as e:
        raise PriorError(f"prior card {card_path}: invalid 'architecture' ({e})") from e
    _check_architecture(path, ucfg)
    net = UNet(ucfg)
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise PriorError(f"cannot read weights {path}: {e}") from e
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PriorError(f"weights in {path.name} do not fit the card's architecture: {e}") from e
    check_card(card, card_path)  # after the architecture check: its message says more
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise PriorError(f"weights in {path.name} hold NaN or infinite values ({', '.join(bad[:3])}"
                         f"{' ...' if len(bad) > 3 else ''}); the file is damaged: re-export it")
    net.eval().requires_grad_(False)
    sched = VPSchedule(**card.get("schedule", {}))
    net.set_schedule(sched.alpha_bars())
    card.setdefault("name", path.stem)
    return Prior(net=net, schedule=sched, card=card).to(device)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cuda' without a GPU is a clear error."""
    d = str(device)
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if d not in ("cpu",) and not d.startswith("cuda") and d != "mps":
        raise DeviceError(f"unknown device {d!r}: use auto, cpu or cuda")
    return torch.device(d)
