"""One way from a fully sampled volume to a `Measurement`, for the CLI and the widgets alike.

    volume (file intensities, affine) -> [0, 1] (the prior's range; (lo, hi) kept to map back)
    -> `operators.simulate` (the kind's mask, noise and seed) -> geometry attached
    (affine, spacing, intensity, source) and the sampling described in `simulation`.

The settings a caller leaves out, and their checks, come from the kind's declaration
(`operators.get_kind(kind).settings`: the paper's tasks). Plain Python + NumPy + PyTorch: no Qt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .operators import KINDS, MASK_PATTERNS, Measurement, get_kind, simulate

__all__ = ["build_measurement", "simulation_settings", "KINDS", "MASK_PATTERNS"]


def simulation_settings(kind: str, **given: Any) -> dict[str, Any]:
    """The kind's settings: `given` (None = not given) over its declared defaults, each
    checked by its declaration (operators/kind_*.py: the rule the CLI and the GUI use too);
    unknown names are refused with the accepted ones."""
    return get_kind(kind).check_settings(given)


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

    k = get_kind(kind)
    kind = k.name
    s = k.check_settings({"noise": noise, **settings})
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
    params, desc = k.simulation_params(s, tuple(data01.shape[1:]), int(seed))
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
