"""Events a reconstruction yields: one Step per diffusion step, then a Result (the return value).

`reconstruct()` is a generator: iterate it for Steps; its return value (StopIteration.value,
or the `returned` signal of a napari generator worker) is the Result. Closing the generator
cancels the run within one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Step:
    """Progress of one diffusion step."""

    index: int  # 0-based step index
    t: int  # diffusion time of this step
    total: int  # number of steps
    phase: str  # "adapting" or "sampling" (or "iterating" for ADMM-TV)
    estimate: np.ndarray  # current Tweedie / data-consistent estimate (N, H, W) float32, CPU
    loss: float  # data fidelity mean |A x - y|^2 of the estimate
    elapsed: float  # seconds since the run started
    eta: float  # estimated seconds left
    psnr: float | None = None  # mean per-slice PSNR when a reference is known
    adapt_loss: float | None = None  # last adaptation loss when adapting


@dataclass
class Result:
    """The final volume (N, H, W) float32 in [0, 1], its run card and metrics."""

    volume: np.ndarray
    card: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
