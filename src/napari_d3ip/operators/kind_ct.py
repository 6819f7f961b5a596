"""The `ct` kind: parallel-beam sparse-view CT (operators/ct.py) as the front ends and files see it."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import Param
from .base import Measurement, Operator, OperatorError
from .ct import FILTERS, ParallelBeamCT, default_n_det
from .kinds import FileChecks, OperatorKind, Setting, noise


def angle_problems(a: np.ndarray) -> list[str]:
    """Degenerate CT angles: non-finite, all equal (every view the same projection)."""
    if a.ndim != 1:
        return [f"'angles' must be a 1D array [views], got shape {a.shape}"]
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        return [f"'angles' holds {bad} NaN or infinite value(s); the geometry is damaged"]
    if a.size > 1 and float(np.ptp(np.mod(a, 360.0))) == 0.0:
        return [f"all {a.size} 'angles' are equal ({a[0]:g} degrees): every view is the same "
                "projection; store the angle of each view"]
    return []


class CTKind(OperatorKind):
    """Sparse-view parallel-beam CT: real sinograms, projection angles stored beside them."""

    name = "ct"
    label = "parallel-beam CT"
    data_name = "sinogram"
    data_label = "sinogram"
    pinv_name = "FBP"
    complex_data = False
    data_layout = "[slices, views, detectors]"
    stored_arrays = {"angles": "angles"}
    settings = (
        Setting("n_views", "int", 15, Param(
            "CT: projection views over 180 deg", lo=1, accepts=">= 1", flags=("--views",),
            gui_hi=2000, gui="basic"), label="views"),
        Setting("filter", "str", "ram-lak", Param("FBP filter used for A†y", choices=FILTERS,
                                                  gui="basic"), cli=False, label="FBP filter"),
        noise(0.01),
    )
    params = {"n_views": None, "n_det": None, "filter": "ram-lak", "angles": None}

    def simulation_params(self, s, shape, seed):
        return {"n_views": s["n_views"], "filter": s["filter"]}, {"views": s["n_views"]}

    def planned(self, s: dict[str, Any]) -> str:
        return f"{s['n_views']} views"

    def size_note(self, s: dict[str, Any]) -> str:
        return f" with {s['n_views']} views"

    def sampled(self, m: Measurement) -> str:
        return f"{m.operator.params()['n_views']} views"

    def memory_shapes(self, s, shape, n_slices):
        return (s["n_views"], default_n_det(shape)), s["n_views"], None

    def build_bytes(self, n_views: int, h: float, w: float) -> float:
        # the system matrix while it is built: three bins per footprint and scipy's CSR copy
        return 150.0 * max(n_views, 1) * h * w

    def inspect(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"angles": params.get("n_views")}

    def build(self, shape, device, n_slices, p, seed) -> Operator:
        n_views = p["n_views"]
        if isinstance(n_views, float) and n_views.is_integer():
            n_views = int(n_views)
        return ParallelBeamCT(shape, n_views=n_views, n_det=p["n_det"], filter=p["filter"],
                              angles=p["angles"], device=device)

    def rebuild(self, params, arrays, device) -> Operator:
        if "image_shape" not in params:
            raise OperatorError("ct params need 'image_shape'")
        angles = arrays.get("angles")
        return ParallelBeamCT(params["image_shape"], n_views=int(params.get("n_views", 60)),
                              n_det=params.get("n_det"), filter=params.get("filter", "ram-lak"),
                              angles=None if angles is None else np.asarray(angles),
                              device=device, center_offset=params.get("center_offset", 0.0))

    def check_file(self, c: FileChecks, y, params, image_shape):
        problems = c.problems
        ang = c.dataset("angles", "CT projection angles in degrees")
        if ang is not None and c.dtype_ok(ang, "angles"):
            bad_angles = ["shape"]
            if ang.ndim != 1 or (y is not None and ang.shape[0] != y.shape[1]):
                a = np.zeros((0,) * max(ang.ndim, 1))  # not read: its shape is already wrong
                got = f"{ang.shape[0]} entries" if ang.ndim == 1 else f"shape {ang.shape}"
                problems.append(f"'angles' has {got} but 'sinogram' has "
                                f"{y.shape[1] if y is not None else '?'} views: one angle per "
                                "view, 1D")
            else:
                a = c.read(ang, "angles").astype(np.float64)
                bad_angles = angle_problems(a)
                problems += bad_angles
            if a.size and not bad_angles:
                c.arrays["angles"] = a
                if y is not None and a.size != y.shape[1]:
                    problems.append(f"'angles' has {a.size} entries but 'sinogram' has "
                                    f"{y.shape[1]} views")
                if params is not None and "n_views" in params and params["n_views"] != a.size:
                    problems.append(f"operator_params n_views={params['n_views']} but 'angles' "
                                    f"has {a.size} entries")
        if y is not None and params is not None and "n_det" in params \
                and params["n_det"] != y.shape[2]:
            problems.append(f"operator_params n_det={params['n_det']} but 'sinogram' has "
                            f"{y.shape[2]} detector bins")
        return image_shape

    def views_in(self, y_shape: tuple[int, ...]) -> int:
        return int(y_shape[1])
