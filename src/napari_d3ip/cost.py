"""The one cost model: time and memory of a run, before it starts.

The GUI's estimate, the CLI's refusal of runs that cannot fit and the benchmarks' projections
all read it; nothing else computes a cost.
"""

from __future__ import annotations

from .config import RunConfig
from .operators.base import Measurement


def estimate_cost(measurement: Measurement, config: RunConfig) -> dict[str, float]:
    """Rough time (s, on this kind of 2-core CPU) and memory (bytes) before a run.

    Calibrated on the 2.4 M-parameter UNet at 64², one thread of a 2-core AMD EPYC
    (benchmarks/solvers.md, 2026-11-25: 0.038 s per slice per DDS step including its CG and
    bookkeeping, 0.093 s per slice per adaptation iteration); scales with pixels. A GPU is far
    faster.
    """
    n = measurement.n_slices
    h, w = measurement.image_shape
    px = h * w / 4096.0
    cfg = config
    nfe = cfg.nfe if cfg.solver != "admm-tv" else 0
    # a DPS step (forward + backward through the UNet) measured 1.3x a DDS step (benchmarks/solvers.py)
    fwd = 0.038 * px * n * nfe * (1.3 if cfg.solver == "dps" else 1.0)
    adapt_steps = sum(1 for t in range(nfe) if t % cfg.adapt_every == 0) * (cfg.window_hi - cfg.window_lo) / 1000.0
    per_iter = 0.093 * px
    if cfg.adapter in ("scd", "ddip"):
        adapt = adapt_steps * cfg.adapt_iters * per_iter * n
    elif cfg.adapter in ("d3ip-base", "d3ip-mbir"):
        adapt = adapt_steps * cfg.adapt_iters * per_iter * min(cfg.k_slices, n)
    elif cfg.adapter == "d3ip-meta":
        adapt = adapt_steps * cfg.adapt_iters * per_iter * (min(cfg.k_slices, n) + n)
    else:
        adapt = 0.0
    tv = 0.002 * px * n * cfg.tv_iters if cfg.solver == "admm-tv" else 0.0
    vol_bytes = n * h * w * 4
    act = cfg.batch_slices * h * w * 4 * 300  # UNet activations of one batch
    return {"seconds": fwd + adapt + tv, "memory_bytes": int(10 * vol_bytes + act + 20e6)}
