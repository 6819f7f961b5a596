"""The `mri` and `mri-multicoil` kinds: Cartesian MRI (operators/mri.py) as the front ends and
files see it: complex k-space, a boolean mask, and (multi-coil) coil sensitivity maps."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import Param
from .base import Measurement, Operator, OperatorError
from .coils import birdcage_maps, espirit_maps
from .kinds import FileChecks, OperatorKind, Setting, noise
from .masks import acceleration, acs_columns, poisson_disc_mask, uniform_lines_mask
from .mri import CartesianMRI, MulticoilMRI

#: sampling patterns of MRI masks: 2D variable-density Poisson disc, uniform random 1D lines
MASK_PATTERNS = ("poisson", "uniform1d")
_ESPIRIT = {"kernel": 6, "thresh": 0.02, "crop": 0.95}


def _accel(default: float) -> Setting:
    return Setting("accel", "float", default, Param(
        "MRI: acceleration R of the mask (its kind's pattern unless --mask)", lo=1.0, lo_open=True,
        accepts="> 1 (1 = fully sampled) and finite", gui_hi=64.0, decimals=2, step=0.5,
        gui="basic"), label="R")


def _mask(default: str) -> Setting:
    return Setting("mask", "str", default, Param(
        "MRI sampling: 2D variable-density Poisson disc or uniform random 1D lines",
        choices=MASK_PATTERNS, gui=""))


_ACS = Setting("acs_fraction", "float", 0.08, Param(
    "fraction of central (ACS) lines, used for ESPIRiT maps", lo=0.0, hi=1.0,
    accepts="in [0, 1]", step=0.01, decimals=3, gui="basic"), cli=False, label="ACS fraction")


def zero_maps_problems(maps: np.ndarray) -> list[str]:
    """Coil maps that are zero for a whole slice (or everywhere): A y would be 0 whatever the
    image, and the "result" would be the prior alone."""
    m = maps.reshape(-1, *maps.shape[-3:]) if maps.ndim == 4 else maps[None]
    zero = np.flatnonzero(~np.any(m.reshape(m.shape[0], -1) != 0, axis=1))
    if zero.size == 0:
        return []
    where = "all slices" if zero.size == m.shape[0] else \
        f"slice(s) {', '.join(map(str, zero[:8].tolist()))}"
    return [f"'sensitivity_maps' are all zero for {where}: the data would constrain nothing "
            "there; the coil maps are missing or damaged"]


def _espirit_kernel(n_acs: int, kernel: int) -> tuple[int, int]:
    """Kernel for ACS lines: narrow along the few ACS columns. With kw near n_acs there are too
    few shifts along kx to pin the subspace down, the eigenvalues drop below `crop` at the
    object's edge and the maps are zeroed there (measured: kw = 3 of 5 lines crops 26 object
    pixels at 64^2, kw = 2 none; kw = 6 of 10 crops 211 at 128^2, kw = 3 none)."""
    return (kernel, max(1, min(kernel, n_acs, max(2, n_acs // 3))))


class MRIKind(OperatorKind):
    """Single-coil Cartesian MRI with one mask for all slices."""

    name = "mri"
    label = "single-coil MRI"
    data_name = "kspace"
    data_label = "k-space"
    pinv_name = "zero-filled"
    complex_data = True
    data_layout = "[slices, H, W]"
    stored_arrays = {"mask": "mask"}
    settings = (_accel(8.0), _mask("poisson"), _ACS, noise(0.0))
    params = {"accel": 8.0, "calib": None, "mask": None, "mask_seed": None}

    def simulation_params(self, s, shape, seed):
        accel, mask, acs = s["accel"], s["mask"], float(s["acs_fraction"])
        kw: dict[str, Any] = {"accel": accel}
        if not isinstance(mask, str):  # an explicit (H, W) mask array
            kw["mask"] = np.asarray(mask)
            mask = "given"
        else:
            kw.update(self._pattern(mask, shape, accel, acs, seed))
        return kw, {"accel": accel, "mask": mask}

    def _pattern(self, mask: str, shape, accel: float, acs: float, seed: int) -> dict[str, Any]:
        """The mask keywords of a pattern other than the kind's own default."""
        if mask == "uniform1d":
            return {"mask": uniform_lines_mask(shape, accel, acs, seed=seed)}
        return {}  # simulate() draws its default Poisson-disc mask itself

    def planned(self, s: dict[str, Any]) -> str:
        return f"R={s['accel']}"

    def sampled(self, m: Measurement) -> str:
        return f"R={m.operator.acceleration:.2f} ({m.simulation['mask']})"

    def inspect(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"coils": params.get("n_coils", 1), "acceleration": params.get("acceleration")}

    def build(self, shape, device, n_slices, p, seed) -> Operator:
        mask = p["mask"]
        if mask is None:
            mask = poisson_disc_mask(shape, float(p["accel"]), p["calib"], seed=seed)
        return CartesianMRI(mask, device=device)

    def rebuild(self, params, arrays, device) -> Operator:
        if "mask" not in arrays:
            raise OperatorError(f"{self.name} operators need the 'mask' array to be rebuilt")
        return CartesianMRI(np.asarray(arrays["mask"]), device=device)

    def simulate(self, x, noise, seed, device, p, mask_seed):
        op = self.build(tuple(x.shape[-2:]), device, None, p, mask_seed)
        info = {"achieved_acceleration": acceleration(op.mask_np)}
        return op, op.simulate(x, noise=float(noise), seed=int(seed)), info

    def check_file(self, c: FileChecks, y, params, image_shape):
        problems = c.problems
        mask = c.dataset("mask", "the k-space sampling mask of an MRI file")
        if mask is not None and c.dtype_ok(mask, "mask", bool_ok=True):
            mk = c.read(mask, "mask") if mask.ndim == 2 else np.zeros((0,) * mask.ndim)
            if mk.ndim != 2:
                problems.append(f"'mask' must be 2D [H, W], got shape {mk.shape}")
            elif mk.dtype != bool and not np.all((mk == 0) | (mk == 1)):
                problems.append("'mask' must be boolean (or 0/1)")
            else:
                c.arrays["mask"] = mk.astype(bool)
                if not mk.any():
                    problems.append("'mask' samples nothing (all False)")
                if y is not None and tuple(y.shape[-2:]) != mk.shape:
                    problems.append(f"'mask' has shape {mk.shape} but 'kspace' slices are "
                                    f"{tuple(y.shape[-2:])}")
                if image_shape is not None and image_shape != mk.shape:
                    problems.append(f"operator_params image_shape={list(image_shape)} but "
                                    f"'mask' has shape {mk.shape}")
                image_shape = image_shape or mk.shape
        return image_shape


class MulticoilKind(MRIKind):
    """Multi-coil Cartesian MRI: data from birdcage maps, reconstructed with ESPIRiT maps
    estimated from the (noisy) ACS data, as in the paper."""

    name = "mri-multicoil"
    label = "multi-coil MRI with ESPIRiT maps"
    data_layout = "[slices, coils, H, W]"
    stored_arrays = {"mask": "mask", "maps": "sensitivity_maps"}
    settings = (_accel(4.0), _mask("uniform1d"), _ACS,
                Setting("n_coils", "int", 8, Param(
                    "mri-multicoil: number of coils", lo=1, accepts=">= 1", flags=("--coils",),
                    gui_hi=64, gui="basic"), label="coils"),
                noise(0.01))
    params = {"accel": 4.0, "acs_fraction": 0.08, "n_coils": 8, "mask": None, "maps": None,
              "mask_seed": None}
    simulate_only = _ESPIRIT

    def simulation_params(self, s, shape, seed):
        kw, desc = super().simulation_params(s, shape, seed)
        if "mask" not in kw:
            kw["acs_fraction"] = float(s["acs_fraction"])  # simulate() draws its lines mask
        kw["n_coils"] = desc["coils"] = int(s["n_coils"])
        return kw, desc

    def _pattern(self, mask, shape, accel, acs, seed):
        if mask == "poisson":
            # ESPIRiT calibrates from fully sampled columns: keep an ACS band of full height
            calib = (shape[0], max(2, round(acs * shape[1])))
            return {"mask": poisson_disc_mask(shape, accel, calib=calib, seed=seed)}
        return {}

    def size_note(self, s: dict[str, Any]) -> str:
        return f" with {s['n_coils']} coils"

    def memory_shapes(self, s, shape, n_slices):
        c = int(s["n_coils"])
        return (c, *shape), 0, (n_slices, c, *shape)

    def _mask_for(self, shape, p, seed) -> Any:
        mask = p["mask"]
        if mask is None:
            mask = uniform_lines_mask(shape, float(p["accel"]), float(p["acs_fraction"]),
                                      seed=seed)
        return mask

    def build(self, shape, device, n_slices, p, seed) -> Operator:
        mask = self._mask_for(shape, p, seed)
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

    def rebuild(self, params, arrays, device) -> Operator:
        if "mask" not in arrays:
            raise OperatorError(f"{self.name} operators need the 'mask' array to be rebuilt")
        if "maps" not in arrays:
            raise OperatorError("mri-multicoil operators need the 'maps' array to be rebuilt")
        return MulticoilMRI(np.asarray(arrays["mask"]), np.asarray(arrays["maps"]),
                            device=device)

    def simulate(self, x, noise, seed, device, p, mask_seed):
        shape = tuple(x.shape[-2:])
        mask = self._mask_for(shape, p, mask_seed)
        maps = p["maps"]
        if maps is None:
            maps = birdcage_maps(int(p["n_coils"]), shape)
        sim_op = MulticoilMRI(mask, maps, device=device)
        info: dict[str, Any] = {"achieved_acceleration": acceleration(sim_op.mask_np)}
        y = sim_op.simulate(x, noise=float(noise), seed=int(seed))
        acs = acs_columns(sim_op.mask_np)
        n_acs = acs.stop - acs.start
        kernel = _espirit_kernel(n_acs, int(p["kernel"]))
        est = espirit_maps(y, calib_size=(shape[0], n_acs), kernel=kernel,
                           thresh=float(p["thresh"]), crop=float(p["crop"]))
        info.update({"n_acs_lines": n_acs, "espirit_kernel": list(kernel)})
        return MulticoilMRI(sim_op.mask_np, est, device=device), y, info

    def check_file(self, c: FileChecks, y, params, image_shape):
        image_shape = super().check_file(c, y, params, image_shape)
        maps = c.dataset("sensitivity_maps", "coil sensitivity maps of a multi-coil file")
        if maps is None or not c.dtype_ok(maps, "sensitivity_maps", complex_ok=True):
            return image_shape
        problem = _maps_shape_problem(maps, y)
        if problem:
            c.problems.append(problem)
            return image_shape
        if image_shape is not None and y is not None:  # bound before reading
            c.memory(int(y.shape[0]), image_shape, tuple(y.shape[1:]),
                     maps_shape=tuple(maps.shape))
        c.arrays["maps"] = arr = c.read(maps, "sensitivity_maps")
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            c.problems.append(f"'sensitivity_maps' holds {bad} NaN or infinite value(s); the "
                              "coil maps are damaged")
        else:
            c.problems.extend(zero_maps_problems(arr))
        if params is not None and "n_coils" in params and params["n_coils"] != maps.shape[-3]:
            c.problems.append(f"operator_params n_coils={params['n_coils']} but "
                              f"'sensitivity_maps' has {maps.shape[-3]} coils")
        return image_shape


def _maps_shape_problem(maps: Any, y: Any) -> str | None:
    if not np.issubdtype(maps.dtype, np.complexfloating):
        return f"'sensitivity_maps' has dtype {maps.dtype}; complex needed"
    if maps.ndim not in (3, 4):
        return (f"'sensitivity_maps' has shape {maps.shape}; expected [slices, coils, H, W] or "
                "[coils, H, W]")
    if y is not None and (tuple(maps.shape[-3:]) != tuple(y.shape[1:]) or (
            maps.ndim == 4 and maps.shape[0] != y.shape[0])):
        return (f"'sensitivity_maps' has shape {maps.shape} but 'kspace' {y.shape} needs "
                f"[{y.shape[0]}, {y.shape[1]}, {y.shape[2]}, {y.shape[3]}]")
    return None

