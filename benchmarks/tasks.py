"""The benchmark's tasks, methods and the paper's tables (what is measured, and against what).

- the tasks: simulated measurements of a sample volume (ALGORITHM.md section 6);
- the methods: solver + adapter, configured from the package's presets (paper Table 5);
- the paper's Table 2 numbers and issue 7's targets;
- the sample volumes and the prior a benchmark runs with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Task:
    name: str
    label: str
    kind: str  # operator kind for napari_d3ip.operators.simulate
    params: dict[str, Any]
    noise: float  # relative noise std (operators module docstring)
    preset: str  # base preset (paper Table 5 settings of this task)
    paper: str | None  # column of the paper's Table 2 this task corresponds to


TASKS: dict[str, Task] = {
    "ct15": Task("ct15", "SV-CT 15 views", "ct", {"n_views": 15}, 0.01, "sv-ct", "ct"),
    "ct60": Task("ct60", "SV-CT 60 views", "ct", {"n_views": 60}, 0.01, "sv-ct", None),
    "mri-r8": Task("mri-r8", "3D MRI Poisson R=8", "mri", {"accel": 8.0}, 0.0, "mri3d", "mri"),
    "mc-x4": Task("mc-x4", "multi-coil MRI x4, 8 coils", "mri-multicoil",
                  {"accel": 4.0, "n_coils": 8, "acs_fraction": 0.08}, 0.01, "mri-mc", None),
}

# name -> (label, solver, adapter), in the paper's row order (DDNM, DPS added)
METHODS: dict[str, tuple[str, str, str]] = {
    "admm-tv": ("ADMM-TV", "admm-tv", "none"),
    "dds": ("DDS", "dds", "none"),
    "ddnm": ("DDNM", "ddnm", "none"),
    "dps": ("DPS", "dps", "none"),
    "mbir": ("DiffusionMBIR", "mbir", "none"),
    "scd": ("SCD", "dds", "scd"),
    "ddip": ("DDIP", "dds", "ddip"),
    "d3ip-base": ("D3IP-base", "dds", "d3ip-base"),
    "d3ip-mbir": ("D3IP-mbir", "mbir", "d3ip-mbir"),
    "d3ip-meta": ("D3IP-meta", "dds", "d3ip-meta"),
    # the task's "-study" preset (sv-ct-study, mri3d-study): the adaptation study's best
    "d3ip-study": ("D3IP-base (study preset)", "dds", "d3ip-base"),
}
D3IP = ("d3ip-base", "d3ip-mbir", "d3ip-meta", "d3ip-study")

# ALGORITHM.md section 8: the paper's Table 2 (256^3, ellipse prior, OOD), PSNR / SSIM;
# DDNM and DPS rows from the same table in ../shared/paper/ddip3d_paper.txt
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "ct": {"admm-tv": (25.35, 0.783), "ddnm": (23.55, 0.765), "dps": (17.85, 0.470),
           "dds": (27.65, 0.805), "mbir": (28.92, 0.845),
           "scd": (32.91, 0.904), "ddip": (33.13, 0.903), "d3ip-base": (31.73, 0.908),
           "d3ip-mbir": (33.69, 0.919), "d3ip-meta": (33.96, 0.917)},
    "mri": {"admm-tv": (23.89, 0.508), "ddnm": (14.59, 0.281), "dps": (27.30, 0.394),
            "dds": (24.59, 0.532), "mbir": (26.97, 0.620),
            "scd": (26.00, 0.561), "ddip": (27.46, 0.647), "d3ip-base": (30.59, 0.859),
            "d3ip-mbir": (33.89, 0.907), "d3ip-meta": (32.60, 0.877)},
}
# issue 7's targets: D3IP-best - DDS (dB) per task; ADMM-TV beaten by >= 8 dB
TARGET_GAIN_DDS = {"ct15": 6.0, "ct60": 6.0, "mri-r8": 9.0, "mc-x4": 9.0}
TARGET_GAIN_TV = 8.0

VOLUMES = ("brain-64", "heldout-epi", "phantom-64", "brain-128", "brain-128-64")


def parse_list(text: str | None, known: Iterable[str], what: str) -> list[str]:
    """'a,b' or 'all' -> validated list (order of `known` kept for 'all')."""
    known = list(known)
    if text is None or text == "all":
        return known
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in known]
    if bad:
        raise SystemExit(f"unknown {what} {', '.join(bad)}; choose from {', '.join(known)}")
    return items


def load_volume(name: str, slices: int | None = None) -> np.ndarray:
    """A sample volume in [0, 1], (N, H, W) float32, cropped to its `slices` central slices.

    `brain-128-64` is brain-128 average-pooled 2x2 in plane: 128 slices at 64^2 (speed.py).
    """
    from napari_d3ip.io.volumes import to_unit_range
    from napari_d3ip.sample_data import load_sample

    if name not in VOLUMES:
        raise SystemExit(f"unknown volume {name!r}; choose from {', '.join(VOLUMES)}")
    base = "brain-128" if name == "brain-128-64" else name
    vol, _ = to_unit_range(load_sample(base))
    if name == "brain-128-64":
        t = torch.from_numpy(np.ascontiguousarray(vol))[:, None]
        vol = torch.nn.functional.avg_pool2d(t, 2)[:, 0].numpy()
    return central(np.ascontiguousarray(vol, dtype=np.float32), slices)


def central(vol: np.ndarray, slices: int | None) -> np.ndarray:
    n = vol.shape[0]
    if slices is None or slices >= n:
        return vol
    if slices < 1:
        raise SystemExit(f"--slices must be >= 1, got {slices}")
    start = (n - slices) // 2
    return vol[start:start + slices]


def simulate_task(vol: np.ndarray, task: Task, seed: int):
    from napari_d3ip.operators import simulate

    return simulate(vol, task.kind, task.noise, seed, **task.params)


def method_config(method: str, task: Task, *, nfe: int | None = None, iters: int | None = None,
                  k: int | None = None, seed: int = 0, device: str = "cpu",
                  batch_slices: int | None = None, **extra: Any):
    """The RunConfig of `method` on `task`: the task's preset for that method (paper Table 5),
    or the task's base preset with the solver/adapter swapped; then the overrides."""
    from napari_d3ip.config import from_preset, presets

    _, solver, adapter = METHODS[method]
    base = task.preset
    if method == "d3ip-study":
        name = f"{base}-study"
    elif adapter == "d3ip-base":
        name = base
    elif adapter == "none":
        name = f"{base}-dds"
    else:
        name = f"{base}-{adapter}"
    if name not in presets():
        if method == "d3ip-study":
            raise SystemExit(f"no study preset {name!r} for this task; there are "
                             f"{', '.join(p for p in presets() if p.endswith('-study'))}")
        name = base
    over = {"solver": solver, "adapter": adapter, "nfe": nfe, "seed": seed, "device": device,
            "batch_slices": batch_slices, **extra}
    if adapter != "none":  # iters/k win only when given (an override in extra must survive)
        over.update({f: v for f, v in (("adapt_iters", iters), ("k_slices", k)) if v is not None})
    return from_preset(name, **over)



def load_prior_arg(name_or_path: str):
    from napari_d3ip import load_prior

    return load_prior(name_or_path, "cpu")


def prior_info(prior) -> dict[str, Any]:
    card = getattr(prior, "card", {}) or {}
    training = card.get("training", {}) or {}
    return {"name": card.get("name", "unnamed"), "training_steps": training.get("steps"),
            "parameters": card.get("parameters"), "sha256": card.get("sha256")}
