"""One way from a fully sampled volume to a `Measurement`, for the CLI and the widgets alike.

    volume (file intensities, affine) -> [0, 1] (the prior's range; (lo, hi) kept to map back)
    -> `operators.simulate` (the kind's mask, noise and seed) -> geometry attached
    (affine, spacing, intensity, source) and the sampling described in `simulation`.

The settings a caller leaves out come from `operators.SIMULATION_DEFAULTS` (the paper's tasks),
the kinds from `operators.KINDS`. Plain Python + NumPy + PyTorch: no Qt.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .operators import (
    KINDS,
    MASK_PATTERNS,
    SIMULATION_DEFAULTS,
    Measurement,
    OperatorError,
    check_kind,
    poisson_disc_mask,
    simulate,
    uniform_lines_mask,
)

__all__ = ["build_measurement", "simulation_settings", "KINDS", "MASK_PATTERNS"]


def simulation_settings(kind: str, **given: Any) -> dict[str, Any]:
    """The kind's settings: `given` (None = not given) over `SIMULATION_DEFAULTS[kind]`,
    checked (finite, in range); unknown names are refused with the accepted ones."""
    kind = check_kind(kind)
    defaults = SIMULATION_DEFAULTS[kind]
    unknown = sorted(k for k, v in given.items() if k not in defaults and v is not None)
    if unknown:
        raise OperatorError(f"{', '.join(unknown)}: not a setting of kind {kind!r}; accepted: "
                            f"{', '.join(defaults)}")
    s = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    noise = float(s["noise"])
    if not math.isfinite(noise) or noise < 0:
        raise OperatorError(f"noise must be a finite number >= 0 (relative std), got {noise}")
    s["noise"] = noise
    if kind == "ct":
        if int(s["n_views"]) != s["n_views"] or int(s["n_views"]) < 1:
            raise OperatorError(f"n_views must be an integer >= 1, got {s['n_views']}")
        s["n_views"] = int(s["n_views"])
        return s
    accel = float(s["accel"])
    if not math.isfinite(accel) or accel < 1:
        raise OperatorError(f"accel must be a finite number >= 1 (1 = fully sampled), got "
                            f"{s['accel']}")
    s["accel"] = accel
    if isinstance(s["mask"], str) and s["mask"] not in MASK_PATTERNS:
        raise OperatorError(f"mask {s['mask']!r} is not one of {', '.join(MASK_PATTERNS)}")
    if not 0 <= float(s["acs_fraction"]) <= 1:
        raise OperatorError(f"acs_fraction must be in [0, 1], got {s['acs_fraction']}")
    if kind == "mri-multicoil" and int(s["n_coils"]) < 1:
        raise OperatorError(f"n_coils must be >= 1, got {s['n_coils']}")
    return s


def _operator_params(kind: str, s: dict[str, Any], shape: tuple[int, int], seed: int
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword parameters of `operators.simulate`, JSON-able description of the sampling)."""
    if kind == "ct":
        return {"n_views": s["n_views"], "filter": s["filter"]}, {"views": s["n_views"]}
    accel, mask, acs = s["accel"], s["mask"], float(s["acs_fraction"])
    kw: dict[str, Any] = {"accel": accel}
    if not isinstance(mask, str):  # an explicit (H, W) mask array
        kw["mask"] = np.asarray(mask)
        mask = "given"
    elif mask == "uniform1d" and kind == "mri":
        kw["mask"] = uniform_lines_mask(shape, accel, acs, seed=seed)
    elif mask == "poisson" and kind == "mri-multicoil":
        # ESPIRiT calibrates from fully sampled columns: keep an ACS band of full height
        calib = (shape[0], max(2, round(acs * shape[1])))
        kw["mask"] = poisson_disc_mask(shape, accel, calib=calib, seed=seed)
    elif kind == "mri-multicoil":
        kw["acs_fraction"] = acs  # simulate() draws its default lines mask with these
    # (otherwise simulate() draws the kind's default pattern itself)
    desc: dict[str, Any] = {"accel": accel, "mask": mask}
    if kind == "mri-multicoil":
        kw["n_coils"] = desc["coils"] = int(s["n_coils"])
    return kw, desc


def build_measurement(volume: Any, kind: str = "ct", *, noise: float | None = None,
                      seed: int = 0, device: Any = "cpu", affine: np.ndarray | None = None,
                      intensity: tuple[float, float] | None = None, source: str | None = None,
                      **settings: Any) -> Measurement:
    """Simulate the measurement of a fully sampled volume, with its geometry attached.

    `volume`: an `io.volumes.Volume` (its affine, intensity range, source and slicing axis are
    used unless given here) or an (N, H, W) array in any intensity range (then `affine`
    defaults to identity and `intensity` to the data's min..max). It is scaled to [0, 1] with
    `intensity` = (lo, hi), which the Measurement keeps to map results back.
    `settings` per kind (None or left out: `operators.SIMULATION_DEFAULTS`): ct: n_views,
    filter; mri: accel, mask ("poisson" | "uniform1d" | an (H, W) array), acs_fraction;
    mri-multicoil: the same and n_coils. `noise` (relative std) and `seed` (mask and noise)
    default to the kind's paper setting and 0.
    """
    from .io.volumes import Volume, to_unit_range

    kind = check_kind(kind)
    s = simulation_settings(kind, noise=noise, **settings)
    if isinstance(volume, Volume):
        vol = volume
        if affine is not None or intensity is not None:
            vol = Volume(data=vol.data, affine=vol.affine if affine is None else affine,
                         source=vol.source, axis=vol.axis,
                         intensity=vol.intensity if intensity is None else intensity)
    else:
        vol = Volume(data=np.asarray(volume),
                     affine=np.eye(4) if affine is None else np.asarray(affine, dtype=float),
                     source=source or "", intensity=intensity)
    source = source if source is not None else vol.source
    data01, (lo, hi) = to_unit_range(vol)
    params, desc = _operator_params(kind, s, tuple(data01.shape[1:]), int(seed))
    m = simulate(data01, kind, noise=s["noise"], seed=int(seed), device=device, **params)
    m.affine = np.asarray(vol.affine, dtype=float)
    m.spacing = vol.spacing
    m.intensity = (float(lo), float(hi))
    m.source = source
    m.simulation = {**m.simulation, "kind": kind, "noise": s["noise"], "seed": int(seed),
                    **desc, "axis": vol.axis, "source": source}
    if m.reference is None:
        m.reference = data01
    return m
