"""Data-consistency estimators (DDS, DDNM, DPS, DiffusionMBIR) and the ADMM-TV baseline."""

from __future__ import annotations

from .base import DCContext, Estimator, data_loss
from .ddnm import DDNM
from .dds import DDS
from .dps import DPS
from .mbir import DiffusionMBIR


def build_estimator(config, norm2: float = 1.0, mean_eig: float | None = None) -> Estimator:
    """The estimator a RunConfig asks for (ADMM-TV has none: it is not a diffusion solver)."""
    s = config.solver
    if s == "dds":
        return DDS(norm2, gamma=config.gamma)
    if s == "ddnm":
        return DDNM(norm2, pinv_steps=config.ddnm_cg_steps)
    if s == "dps":
        return DPS(norm2, zeta=config.dps_zeta)
    if s == "mbir":
        return DiffusionMBIR(norm2, rho=config.admm_rho, lam=config.admm_lambda,
                             mean_eig=mean_eig, axes=config.mbir_axes, anchor=config.anchor)
    raise ValueError(f"solver {s!r} has no data-consistency estimator")


__all__ = ["DCContext", "Estimator", "data_loss", "DDS", "DDNM", "DPS", "DiffusionMBIR",
           "build_estimator"]
