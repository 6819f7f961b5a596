"""LoRA on the prior's UNet, via peft, and LoRA state that can be swapped per slice.

Targets (as in the reference): every Conv2d/Linear inside residual blocks (conv1, conv2, the
1x1 skip, the time-embedding projection emb_proj) and attention blocks (qkv, proj_out); not
conv_in, the time-embedding MLP or conv_out. peft gives conv LoRA with A of the base kernel
size and B 1x1 initialised to zero, so the adapted network starts exactly equal to the prior.
Per-slice parameter sets are kept as state dicts and loaded in place: the model is wrapped once.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

LORA_TARGETS = ("conv1", "conv2", "skip", "emb_proj", "qkv", "proj_out")
# `lora_targets = "all"` (the adaptation study's placement ablation) adds the input and output
# convolutions and the time-embedding MLP, which the paper leaves frozen
IO_TARGETS = ("conv_in", "conv_out", "time_mlp.0", "time_mlp.2")
LORA_PLACEMENTS = ("blocks", "all")

LoraState = dict[str, torch.Tensor]


def lora_target_names(net: nn.Module, placement: str = "blocks") -> list[str]:
    """Full names of the Conv2d/Linear modules that get LoRA ('blocks': the paper's; 'all':
    also the input/output convolutions and the time-embedding MLP)."""
    if placement not in LORA_PLACEMENTS:
        raise ValueError(f"LoRA placement must be one of {LORA_PLACEMENTS}, got {placement!r}")
    return [name for name, mod in net.named_modules()
            if isinstance(mod, nn.Conv2d | nn.Linear)
            and (name.rsplit(".", 1)[-1] in LORA_TARGETS or (placement == "all" and name in IO_TARGETS))]


def add_lora(net: nn.Module, rank: int = 4, alpha: float | None = None,
             placement: str = "blocks") -> nn.Module:
    """A copy of `net` with LoRA injected (base weights frozen, only LoRA trainable)."""
    from peft import LoraConfig, inject_adapter_in_model  # slow import: keep it lazy

    model = copy.deepcopy(net)
    model.requires_grad_(False)
    cfg = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank,
                     target_modules=lora_target_names(model, placement), lora_dropout=0.0, bias="none")
    model = inject_adapter_in_model(cfg, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    model.eval()
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_" in n]


def lora_state(model: nn.Module) -> LoraState:
    """A detached copy of the LoRA parameters."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


@torch.no_grad()
def load_lora_state(model: nn.Module, state: LoraState) -> None:
    """Copy a LoRA state into the model's parameters in place (no re-wrapping)."""
    params = dict(model.named_parameters())
    missing = set(n for n in params if "lora_" in n) - set(state)
    if missing:
        raise ValueError(f"LoRA state lacks {len(missing)} parameters, e.g. {sorted(missing)[0]}")
    for n, v in state.items():
        params[n].copy_(v)


def state_bytes(state: LoraState) -> int:
    return sum(v.numel() * v.element_size() for v in state.values())


def save_lora(path: str | Path, state: LoraState, metadata: dict[str, str] | None = None) -> Path:
    """Write adapter weights with safetensors."""
    path = Path(path)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path),
              metadata=metadata)
    return path


def load_lora(path: str | Path, device: torch.device | str = "cpu") -> LoraState:
    return {k: v.to(device) for k, v in load_file(str(path)).items()}
