"""Projected cost of a bigger benchmark run from a measured one.

The shape of the cost (how time grows with slices, pixels, NFE, adaptation iterations and
slices adapted, per method) is the library's one cost model, `napari_d3ip.cost.estimate_cost`;
the measured run only calibrates it on the machine it ran on:

    projected = measured sampling × model sampling(target) / model sampling(measured)
              + measured adaptation × model adaptation(target) / model adaptation(measured)

The split is the model's own (`seconds_parts`: sampling, adaptation, TV; from a model that gives
only a total it is derived: sampling = the same configuration without an adapter); everything the
measured run spent outside adaptation (the per-step bookkeeping) is counted with sampling,
which it follows (once per step and slice).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .store import row_ok
from .tables import md_table
from .tasks import METHODS, TASKS, method_config


@dataclass(frozen=True)
class MeasurementShape:
    """What the cost model reads of a measurement, for a projection that has only the size of
    one: slices, image shape, and `y` as a shape without storage (the image-sized meta tensor
    stands in for the data: it only enters the memory estimate, not the seconds)."""

    n_slices: int
    image_shape: tuple[int, int] = (64, 64)

    @property
    def y(self):
        import torch

        return torch.empty((self.n_slices, *self.image_shape), device="meta")


def model_seconds(cfg: Any, n: int, image_shape: tuple[int, int]) -> tuple[float, float]:
    """(sampling, adaptation) seconds of `cfg` at `n` slices by the library's cost model."""
    from napari_d3ip.cost import estimate_cost

    shape = MeasurementShape(int(n), tuple(int(v) for v in image_shape))
    cost = estimate_cost(shape, cfg)
    parts = cost.get("seconds_parts")
    if parts is not None:
        return float(parts["sampling"] + parts.get("tv", 0.0)), float(parts["adaptation"])
    # a model that gives only the total: its sampling part is the same run without an adapter
    total = float(cost["seconds"])
    if cfg.adapter == "none":
        return total, 0.0
    sampling = float(estimate_cost(shape, cfg.replace(adapter="none"))["seconds"])
    return sampling, max(total - sampling, 0.0)


def row_config(row: dict[str, Any]):
    """The RunConfig a row ran with (its stored config; fields an older version stored and
    this one no longer has are dropped), else the method's config rebuilt from the row."""
    from napari_d3ip.config import RunConfig

    stored = row.get("config")
    if isinstance(stored, dict):
        names = {f.name for f in fields(RunConfig)}
        try:
            return RunConfig.from_dict({k: v for k, v in stored.items() if k in names})
        except Exception:  # an old row whose values no longer validate: rebuild it below
            pass
    return method_config(row["method"], TASKS[row["task"]], nfe=row.get("nfe"),
                         iters=row.get("adapt_iters") or None, k=row.get("k_slices") or None)


def project_seconds(row: dict[str, Any] | None, target: Any, n: int) -> float | None:
    """Seconds of `row`'s method run with the RunConfig `target` at `n` slices (same image
    size and machine), from the row's measured sampling and adaptation seconds. A guide."""
    if not row_ok(row):
        return None
    measured = row_config(row)
    shape = tuple(row.get("image_shape") or (64, 64))
    s0, a0 = model_seconds(measured, row["n_slices"], shape)
    s1, a1 = model_seconds(target, n, shape)
    adapt = row.get("adapt_seconds") or 0.0
    sampling = max(row["wall_seconds"] - adapt, 0.0)
    total = sampling * s1 / s0 if s0 > 0 else s1
    if a1 > 0:
        total += adapt * a1 / a0 if a0 > 0 and adapt > 0 else a1
    return total


# plans a full run can take: name -> (nfe, I); None = the preset's (paper Table 5)
PLANS = {"paper settings (NFE 50, Table 5 I and K)": (None, None),
         "cpu-preview-like (NFE 25, I 5)": (25, 5),
         "NFE 25, I 2": (25, 2)}


def projection_lines(quick: dict[str, Any], n: int = 64) -> list[str]:
    """Projected hours of every method on every task at n slices, per plan, from the quick
    section's measured runs (single-threaded, on the machine it ran on)."""
    rows = {(r["task"], r["method"]): r for r in quick["rows"]}
    table = []
    for plan, (nfe, iters) in PLANS.items():
        per_method: dict[str, float] = {}
        for t in TASKS:
            for m in METHODS:
                r = rows.get((t, m))
                if r is None:
                    continue
                cfg = method_config(m, TASKS[t], nfe=nfe, iters=iters)
                sec = project_seconds(r, cfg, n)
                if sec is not None:
                    per_method[m] = per_method.get(m, 0.0) + sec
        if per_method:
            total = sum(per_method.values())
            top = sorted(per_method.items(), key=lambda kv: -kv[1])[:4]
            table.append([plan, f"{total / 3600:.1f} h",
                          ", ".join(f"{METHODS[m][0]} {v / 3600:.1f} h" for m, v in top)])
    if not table:
        return []
    return ([f"## Cost of a full quality run ({n} slices, all methods and tasks), projected", "",
             "The library's cost model (`napari_d3ip.cost.estimate_cost`) calibrated by the "
             "quick section's measured sampling and adaptation seconds (same machine, threads "
             f"and load), at {n} slices: a guide to choose the full run's settings, not a "
             "measurement.", ""]
            + md_table(["plan", "total", "largest parts (summed over tasks)"], table) + [""])
