"""Forward operators (CT, single- and multi-coil MRI), a registry, and measurement simulation.

`build_operator(kind, image_shape, ...)` makes an operator from scalar parameters,
`operator_from_params(op.params(), op.arrays())` rebuilds one exactly (for HDF5 files), and
`simulate(volume, kind, noise, seed, ...)` makes a `Measurement` of a volume as in the paper
(ALGORITHM.md section 6).

Noise convention (all kinds): y = A x + n, n Gaussian with std `noise * mean|A x|` over the
measured entries only (complex data: circular complex noise of that std per entry), as in
`Operator.simulate`. So noise=0.01 is the paper's 1% relative noise for CT; for multi-coil MRI
the paper's sigma_y = 0.01 is on normalised k-space, here it is relative as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Measurement, Operator, OperatorError
from .coils import birdcage_maps, espirit_maps
from .ct import FILTERS, ParallelBeamCT
from .kind_ct import CTKind
from .kind_mri import MASK_PATTERNS, MRIKind, MulticoilKind
from .kinds import OperatorKind, Setting, get_kind, kind_names, register_kind
from .masks import acceleration, poisson_disc_mask, uniform_lines_mask
from .mri import CartesianMRI, MulticoilMRI, fft2c, ifft2c

__all__ = [
    "OPERATORS", "Measurement", "Operator", "OperatorError", "ParallelBeamCT", "CartesianMRI",
    "MulticoilMRI", "build_operator", "operator_from_params", "simulate", "poisson_disc_mask",
    "uniform_lines_mask", "acceleration", "birdcage_maps", "espirit_maps", "fft2c", "ifft2c",
    "FILTERS", "DEFAULTS", "KINDS", "SIMULATION_DEFAULTS", "MASK_PATTERNS", "check_kind",
    "OperatorKind", "Setting", "get_kind", "kind_names", "register_kind",
]

# the registered kinds: a new kind is one module with its OperatorKind and one line here
register_kind(CTKind())
register_kind(MRIKind())
register_kind(MulticoilKind())

OPERATORS: dict[str, type[Operator]] = {
    "ct": ParallelBeamCT,
    "mri": CartesianMRI,
    "mri-multicoil": MulticoilMRI,
}

#: the operator kinds at import, in the order every front end lists them (`kind_names()`
#: also has kinds registered later)
KINDS: tuple[str, ...] = kind_names()

#: what a simulated measurement uses when a front end leaves a setting out: the paper's tasks
#: (15-view sparse-view CT with 1% noise; single-coil MRI R=8 Poisson disc, noiseless;
#: multi-coil MRI R=4 uniform lines with 8% ACS columns, 8 coils, 1% noise), read from each
#: kind's `settings` (operators/kind_*.py), where they are declared.
SIMULATION_DEFAULTS: dict[str, dict[str, Any]] = {k: get_kind(k).defaults for k in KINDS}

#: scalar parameters `build_operator` / `simulate` accept per kind, with their defaults
DEFAULTS: dict[str, dict[str, Any]] = {k: dict(get_kind(k).params) for k in KINDS}


def check_kind(kind: str) -> str:
    """`kind` if it is an operator kind; else an OperatorError naming the choices."""
    return get_kind(kind).name


def _check_params(kind: OperatorKind, params: dict[str, Any], extra: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    allowed = {**kind.params, **(extra or {})}
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise OperatorError(f"unknown parameter(s) {', '.join(bad)} for kind {kind.name!r}; "
                            f"accepted: {', '.join(allowed)}")
    return {**allowed, **params}


def _check_shape(image_shape) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise OperatorError(f"image_shape must be (H, W), got {image_shape!r}") from None
    if h < 1 or w < 1:
        raise OperatorError(f"image_shape must be positive, got {image_shape!r}")
    return h, w


def build_operator(kind: str, image_shape: tuple[int, int], n_slices: int | None = None,
                   device: torch.device | str = "cpu", **params: Any) -> Operator:
    """An operator of `kind` for images `image_shape` from scalar parameters.

    ct: n_views (60), n_det (ceil(sqrt 2 max(H, W))), filter ("ram-lak"), angles (degrees).
    mri: mask, or accel (8) and calib (None = auto) for a Poisson-disc mask (seed mask_seed).
    mri-multicoil: mask, or accel (4) and acs_fraction (0.08) for a lines mask; maps (C, H, W)
    or (N, C, H, W), or n_coils (8) birdcage maps (shared by all slices, or repeated for
    n_slices slices when given).
    """
    k = get_kind(kind)
    shape = _check_shape(image_shape)
    p = _check_params(k, params)
    seed = 0 if p.get("mask_seed") is None else int(p["mask_seed"])
    return k.build(shape, device, n_slices, p, seed)


def operator_from_params(params: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                         device: torch.device | str = "cpu") -> Operator:
    """Rebuild an operator from its `params()` and `arrays()` (e.g. read back from HDF5)."""
    if "kind" not in params:
        raise OperatorError("operator params need a 'kind' entry")
    return get_kind(str(params["kind"])).rebuild(params, dict(arrays or {}), device)


def _volume_tensor(volume: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    v = volume.detach().cpu() if isinstance(volume, torch.Tensor) else torch.as_tensor(
        np.asarray(volume))
    if v.dim() == 2:
        v = v[None]
    if v.dim() != 3:
        raise OperatorError(f"volume must be (N, H, W) (or one (H, W) slice), got "
                            f"{tuple(v.shape)}")
    if v.is_complex():
        raise OperatorError("volume must be real-valued (magnitude images in [0, 1])")
    v = v.to(torch.float32)
    if not bool(torch.isfinite(v).all()):
        raise OperatorError(f"volume holds {int((~torch.isfinite(v)).sum())} NaN or infinite "
                            "voxel(s); replace them (numpy.nan_to_num) before simulating")
    return v, v.numpy().copy()


def simulate(volume: np.ndarray | torch.Tensor, kind: str = "ct", noise: float = 0.0,
             seed: int = 0, device: torch.device | str = "cpu", **params: Any) -> Measurement:
    """Simulate the measurement of `volume` (N, H, W) in [0, 1] as in the paper.

    ct: parallel beam, n_views (60) over [0, 180). mri: one Poisson-disc mask (accel 8, calib
    auto) for all slices. mri-multicoil: a uniform-lines mask (accel 4, acs_fraction 0.08),
    data from n_coils (8) birdcage maps, and the returned operator carries per-slice ESPIRiT
    maps estimated from the simulated (noisy) ACS data (kernel/thresh/crop tunable), as in the
    paper. `seed` fixes the mask and the noise (see the module docstring for the noise level).
    """
    k = get_kind(kind)
    if not noise >= 0:
        raise OperatorError(f"noise must be >= 0 (relative std), got {noise}")
    vol, ref = _volume_tensor(volume)
    p = _check_params(k, params, k.simulate_only)
    mask_seed = int(seed) if p.get("mask_seed") is None else int(p["mask_seed"])
    rec_op, y, info = k.simulate(vol[:, None], float(noise), int(seed), device, p, mask_seed)
    sim_params = {n: v for n, v in p.items()
                  if not isinstance(v, np.ndarray | torch.Tensor) and v is not None}
    simulation = {"kind": k.name, "noise": float(noise), "seed": int(seed),
                  "params": sim_params, **info}
    return Measurement(operator=rec_op, y=y, reference=ref, simulation=simulation,
                       source=f"simulated {k.name}")
