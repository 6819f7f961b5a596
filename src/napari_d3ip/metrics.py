"""Image quality as the paper reports it: per-slice PSNR and SSIM, their means, volume PSNR.

PSNR of slice n uses the data range max(ref_n) - min(ref_n) of that reference slice; SSIM is
scikit-image's `structural_similarity` with a 7x7 uniform window and the same per-slice data
range. Slices whose reference is constant (empty background slices) have no defined range and
are left out of the means (reported as NaN in the per-slice table).
"""

from __future__ import annotations

import math

import numpy as np


def psnr(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """PSNR in dB; data range defaults to ref.max() - ref.min()."""
    dr = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if dr <= 0:
        return float("nan")
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(ref, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(dr * dr / mse)


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """SSIM of one 2D slice (7x7 window, data range of the reference slice)."""
    from skimage.metrics import structural_similarity

    dr = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if dr <= 0:
        return float("nan")
    return float(structural_similarity(np.asarray(x, np.float64), np.asarray(ref, np.float64),
                                       win_size=7, data_range=dr))


def per_slice(x: np.ndarray, ref: np.ndarray, with_ssim: bool = True) -> list[dict[str, float]]:
    """A row per slice: index, PSNR, SSIM (NaN where the reference slice is constant)."""
    if x.shape != ref.shape:
        raise ValueError(f"volume {x.shape} and reference {ref.shape} differ in shape")
    rows = []
    for n in range(ref.shape[0]):
        row = {"slice": n, "psnr": psnr(x[n], ref[n])}
        if with_ssim:
            row["ssim"] = ssim(x[n], ref[n])
        rows.append(row)
    return rows


def mean_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-slice PSNR (cheap: used for live progress)."""
    vals = [psnr(x[n], ref[n]) for n in range(ref.shape[0])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(x: np.ndarray, ref: np.ndarray) -> dict:
    """The paper's metrics: mean per-slice PSNR/SSIM, volume PSNR, and the per-slice table."""
    rows = per_slice(x, ref)
    ok = [r for r in rows if not math.isnan(r["psnr"])]
    return {
        "psnr": float(np.mean([r["psnr"] for r in ok])) if ok else float("nan"),
        "ssim": float(np.mean([r["ssim"] for r in ok])) if ok else float("nan"),
        "volume_psnr": psnr(x, ref),
        "slices_scored": len(ok),
        "per_slice": rows,
    }
