"""A run's checkpoint on disk: what `--resume` reads back (model + EMA weights, AdamW state, the JSON
state), and the compact form a working period commits (float16 weights, no moments).

Files of a run folder: checkpoint_model.safetensors (`model.*` and `ema.*` tensors),
checkpoint_optim.safetensors (AdamW state, `<param id>.<name>`), state.json (step, times, commands,
the config, the optimiser's param groups), loss.csv and validation.csv.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..io.files import atomic_path

MODEL_FILE, OPTIM_FILE, STATE_FILE = "checkpoint_model.safetensors", "checkpoint_optim.safetensors", "state.json"


def _optim_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{pid}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def _optim_from_tensors(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def write_checkpoint(out: Path, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                     state: dict) -> None:
    """Weights, optimiser and `state` (+ the optimiser's param groups) into the run folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    weights = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    tensors, meta = _optim_to_tensors(opt)
    state = {**state, "optim": meta}
    # the one writer (temporary names, nothing left on failure); renamed weights, optimiser,
    # then state.json last: a state never names weights that are not there yet
    with atomic_path(out / STATE_FILE) as tmp3, \
            atomic_path(out / MODEL_FILE) as tmp, \
            atomic_path(out / OPTIM_FILE) as tmp2:
        save_file(weights, str(tmp))
        save_file(tensors, str(tmp2))
        tmp3.write_text(json.dumps(state, indent=2))


def read_state(out: Path) -> dict:
    """The JSON state of the run in `out` (step, times, commands, config, optimiser groups)."""
    return json.loads((out / STATE_FILE).read_text())


def load_weights(out: Path, model: torch.nn.Module, ema: torch.nn.Module) -> None:
    """The model's and the EMA's weights from the run folder `out`."""
    weights = load_file(str(out / MODEL_FILE))
    model.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("ema.")})


def load_optimizer(out: Path, opt: torch.optim.Optimizer, meta: dict) -> bool:
    """AdamW's state from `out`; False where the run was restored from a compact checkpoint
    (weights only: AdamW restarts its moments)."""
    optim_file = out / OPTIM_FILE
    if not optim_file.exists():
        return False
    _optim_from_tensors(opt, load_file(str(optim_file)), meta["optim"])
    return True


COMPACT_DTYPE = torch.float16


def compact_checkpoint(run_dir: str | Path, out: str | Path) -> Path:
    """One file that resumes a run: model + EMA in float16, no AdamW moments, the run's state
    (step, config, curves' length, commands) as JSON metadata. About a quarter of a full
    checkpoint; the only training binary a working period commits."""
    run_dir, out = Path(run_dir), Path(out)
    weights = load_file(str(run_dir / "checkpoint_model.safetensors"))
    state = json.loads((run_dir / "state.json").read_text())
    state.pop("optim", None)
    half = {k: v.to(COMPACT_DTYPE).contiguous() for k, v in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(half, str(tmp), metadata={"state": json.dumps(state),
                                        "loss_csv": (run_dir / "loss.csv").read_text(),
                                        "validation_csv": (run_dir / "validation.csv").read_text()
                                        if (run_dir / "validation.csv").exists() else ""})
    os.replace(tmp, out)
    return out


def restore_compact(path: str | Path, run_dir: str | Path) -> Path:
    """Unpack a compact checkpoint into a run directory that `--resume` continues (AdamW
    restarts with zero moments; the lr schedule, EMA and data stream continue exactly)."""
    run_dir = Path(run_dir)
    if (run_dir / "state.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; restore into a new directory")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k).float() for k in f.keys()}
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(run_dir / "checkpoint_model.safetensors"))
    state = json.loads(meta["state"])
    state["optim"] = {"param_groups": []}
    state.setdefault("commands", []).append(f"restored from compact checkpoint {Path(path).name}")
    (run_dir / "loss.csv").write_text(meta.get("loss_csv", ""))
    if meta.get("validation_csv"):
        (run_dir / "validation.csv").write_text(meta["validation_csv"])
    (run_dir / "state.json").write_text(json.dumps(state, indent=2))
    return run_dir


def drop_rows_after(path: Path, step: int) -> None:
    """Forget curve rows past the checkpoint being resumed: those steps will be redone."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
    if len(keep) != len(lines):
        path.write_text("".join(keep))
