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
from .masks import acceleration, acs_columns, poisson_disc_mask, uniform_lines_mask
from .mri import CartesianMRI, MulticoilMRI, fft2c, ifft2c

__all__ = [
    "OPERATORS", "Measurement", "Operator", "OperatorError", "ParallelBeamCT", "CartesianMRI",
    "MulticoilMRI", "build_operator", "operator_from_params", "simulate", "poisson_disc_mask",
    "uniform_lines_mask", "acceleration", "birdcage_maps", "espirit_maps", "fft2c", "ifft2c",
    "FILTERS", "DEFAULTS", "KINDS", "SIMULATION_DEFAULTS", "MASK_PATTERNS", "check_kind",
]

OPERATORS: dict[str, type[Operator]] = {
    "ct": ParallelBeamCT,
    "mri": CartesianMRI,
    "mri-multicoil": MulticoilMRI,
}

#: the operator kinds, in the order every front end lists them
KINDS: tuple[str, ...] = tuple(OPERATORS)

#: sampling patterns of MRI masks: 2D variable-density Poisson disc, uniform random 1D lines
MASK_PATTERNS = ("poisson", "uniform1d")

#: what a simulated measurement uses when a front end leaves a setting out: the paper's tasks
#: (15-view sparse-view CT with 1% noise; single-coil MRI R=8 Poisson disc, noiseless;
#: multi-coil MRI R=4 uniform lines with 8% ACS columns, 8 coils, 1% noise). The one place
#: the CLI, the widgets and `measurement_builder.build_measurement` read these from.
SIMULATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "ct": {"n_views": 15, "filter": "ram-lak", "noise": 0.01},
    "mri": {"accel": 8.0, "mask": "poisson", "acs_fraction": 0.08, "noise": 0.0},
    "mri-multicoil": {"accel": 4.0, "mask": "uniform1d", "acs_fraction": 0.08, "n_coils": 8,
                      "noise": 0.01},
}

_SIM = SIMULATION_DEFAULTS
# scalar parameters `build_operator` / `simulate` accept per kind, with their defaults
DEFAULTS: dict[str, dict[str, Any]] = {
    "ct": {"n_views": None, "n_det": None, "filter": _SIM["ct"]["filter"], "angles": None},
    "mri": {"accel": _SIM["mri"]["accel"], "calib": None, "mask": None, "mask_seed": None},
    "mri-multicoil": {"accel": _SIM["mri-multicoil"]["accel"],
                      "acs_fraction": _SIM["mri-multicoil"]["acs_fraction"],
                      "n_coils": _SIM["mri-multicoil"]["n_coils"], "mask": None,
                      "maps": None, "mask_seed": None},
}
_ESPIRIT = {"kernel": 6, "thresh": 0.02, "crop": 0.95}


def check_kind(kind: str) -> str:
    """`kind` if it is an operator kind; else an OperatorError naming the choices."""
    if kind not in OPERATORS:
        raise OperatorError(f"unknown operator kind {kind!r}; choose one of "
                            f"{', '.join(OPERATORS)}")
    return kind



def _check_params(kind: str, params: dict[str, Any], extra: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    allowed = {**DEFAULTS[kind], **(extra or {})}
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise OperatorError(f"unknown parameter(s) {', '.join(bad)} for kind {kind!r}; "
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


def _ct(shape: tuple[int, int], device, p: dict[str, Any]) -> ParallelBeamCT:
    n_views = p["n_views"]
    if isinstance(n_views, float) and n_views.is_integer():
        n_views = int(n_views)
    return ParallelBeamCT(shape, n_views=n_views, n_det=p["n_det"], filter=p["filter"],
                          angles=p["angles"], device=device)


def build_operator(kind: str, image_shape: tuple[int, int], n_slices: int | None = None,
                   device: torch.device | str = "cpu", **params: Any) -> Operator:
    """An operator of `kind` for images `image_shape` from scalar parameters.

    ct: n_views (60), n_det (ceil(sqrt 2 max(H, W))), filter ("ram-lak"), angles (degrees).
    mri: mask, or accel (8) and calib (None = auto) for a Poisson-disc mask (seed mask_seed).
    mri-multicoil: mask, or accel (4) and acs_fraction (0.08) for a lines mask; maps (C, H, W)
    or (N, C, H, W), or n_coils (8) birdcage maps (shared by all slices, or repeated for
    n_slices slices when given).
    """
    kind = check_kind(kind)
    shape = _check_shape(image_shape)
    p = _check_params(kind, params)
    seed = 0 if p.get("mask_seed") is None else int(p["mask_seed"])
    if kind == "ct":
        return _ct(shape, device, p)
    if kind == "mri":
        mask = p["mask"]
        if mask is None:
            mask = poisson_disc_mask(shape, float(p["accel"]), p["calib"], seed=seed)
        return CartesianMRI(mask, device=device)
    mask = p["mask"]
    if mask is None:
        mask = uniform_lines_mask(shape, float(p["accel"]), float(p["acs_fraction"]), seed)
    maps = p["maps"]
    if maps is None:
        if int(p["n_coils"]) < 1:
            raise OperatorError(f"n_coils must be >= 1, got {p['n_coils']}")
        maps = birdcage_maps(int(p["n_coils"]), shape)
        if n_slices is not None:
            maps = maps[None].expand(int(n_slices), *maps.shape)
    op = MulticoilMRI(mask, maps, device=device)
    if n_slices is not None and op.n_slices not in (None, int(n_slices)):
        raise OperatorError(f"coil maps for {op.n_slices} slices but n_slices={n_slices}")
    return op


def operator_from_params(params: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                         device: torch.device | str = "cpu") -> Operator:
    """Rebuild an operator from its `params()` and `arrays()` (e.g. read back from HDF5)."""
    arrays = dict(arrays or {})
    if "kind" not in params:
        raise OperatorError("operator params need a 'kind' entry")
    kind = check_kind(str(params["kind"]))
    if kind == "ct":
        if "image_shape" not in params:
            raise OperatorError("ct params need 'image_shape'")
        angles = arrays.get("angles")
        return ParallelBeamCT(params["image_shape"], n_views=int(params.get("n_views", 60)),
                              n_det=params.get("n_det"), filter=params.get("filter", "ram-lak"),
                              angles=None if angles is None else np.asarray(angles),
                              device=device, center_offset=params.get("center_offset", 0.0))
    if "mask" not in arrays:
        raise OperatorError(f"{kind} operators need the 'mask' array to be rebuilt")
    if kind == "mri":
        return CartesianMRI(np.asarray(arrays["mask"]), device=device)
    if "maps" not in arrays:
        raise OperatorError("mri-multicoil operators need the 'maps' array to be rebuilt")
    return MulticoilMRI(np.asarray(arrays["mask"]), np.asarray(arrays["maps"]), device=device)


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


def _espirit_kernel(n_acs: int, kernel: int) -> tuple[int, int]:
    """Kernel for ACS lines: narrow along the few ACS columns. With kw near n_acs there are too
    few shifts along kx to pin the subspace down, the eigenvalues drop below `crop` at the
    object's edge and the maps are zeroed there (measured: kw = 3 of 5 lines crops 26 object
    pixels at 64^2, kw = 2 none; kw = 6 of 10 crops 211 at 128^2, kw = 3 none)."""
    return (kernel, max(1, min(kernel, n_acs, max(2, n_acs // 3))))


def simulate(volume: np.ndarray | torch.Tensor, kind: str = "ct", noise: float = 0.0,
             seed: int = 0, device: torch.device | str = "cpu", **params: Any) -> Measurement:
    """Simulate the measurement of `volume` (N, H, W) in [0, 1] as in the paper.

    ct: parallel beam, n_views (60) over [0, 180). mri: one Poisson-disc mask (accel 8, calib
    auto) for all slices. mri-multicoil: a uniform-lines mask (accel 4, acs_fraction 0.08),
    data from n_coils (8) birdcage maps, and the returned operator carries per-slice ESPIRiT
    maps estimated from the simulated (noisy) ACS data (kernel/thresh/crop tunable), as in the
    paper. `seed` fixes the mask and the noise (see the module docstring for the noise level).
    """
    kind = check_kind(kind)
    if not noise >= 0:
        raise OperatorError(f"noise must be >= 0 (relative std), got {noise}")
    vol, ref = _volume_tensor(volume)
    shape = tuple(vol.shape[-2:])
    extra = _ESPIRIT if kind == "mri-multicoil" else None
    p = _check_params(kind, params, extra)
    mask_seed = int(seed) if p.get("mask_seed") is None else int(p["mask_seed"])
    x = vol[:, None]
    info: dict[str, Any] = {}
    if kind == "ct":
        sim_op = rec_op = _ct(shape, device, p)
    elif kind == "mri":
        mask = p["mask"]
        if mask is None:
            mask = poisson_disc_mask(shape, float(p["accel"]), p["calib"], seed=mask_seed)
        sim_op = rec_op = CartesianMRI(mask, device=device)
        info["achieved_acceleration"] = acceleration(rec_op.mask_np)
    else:
        mask = p["mask"]
        if mask is None:
            mask = uniform_lines_mask(shape, float(p["accel"]), float(p["acs_fraction"]),
                                      seed=mask_seed)
        maps = p["maps"]
        if maps is None:
            maps = birdcage_maps(int(p["n_coils"]), shape)
        sim_op = MulticoilMRI(mask, maps, device=device)
        info["achieved_acceleration"] = acceleration(sim_op.mask_np)
    y = sim_op.simulate(x, noise=float(noise), seed=int(seed))
    if kind == "mri-multicoil":
        acs = acs_columns(sim_op.mask_np)
        n_acs = acs.stop - acs.start
        kernel = _espirit_kernel(n_acs, int(p["kernel"]))
        est = espirit_maps(y, calib_size=(shape[0], n_acs), kernel=kernel,
                           thresh=float(p["thresh"]), crop=float(p["crop"]))
        rec_op = MulticoilMRI(sim_op.mask_np, est, device=device)
        info.update({"n_acs_lines": n_acs, "espirit_kernel": list(kernel)})
    sim_params = {k: v for k, v in p.items()
                  if not isinstance(v, np.ndarray | torch.Tensor) and v is not None}
    simulation = {"kind": kind, "noise": float(noise), "seed": int(seed),
                  "params": sim_params, **info}
    return Measurement(operator=rec_op, y=y, reference=ref, simulation=simulation,
                       source=f"simulated {kind}")

