"""Image quality as the paper reports it: per-slice PSNR and SSIM, their means, volume PSNR.

PSNR of slice n uses the data range max(ref_n) - min(ref_n) of that reference slice; SSIM is
scikit-image's `structural_similarity` with a 7x7 uniform window and the same per-slice data
range. Slices whose reference is constant (empty background slices) have no defined range and
are left out of the means (reported as NaN in the per-slice table).

NaN is never hidden: a slice whose *estimate* holds NaN/inf (a diverged run) makes every mean
NaN, and `evaluate` lists such slices under "nonfinite_slices".
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


def _scored(ref: np.ndarray) -> list[int]:
    """Slices with a defined data range (non-constant reference)."""
    return [n for n in range(ref.shape[0]) if float(ref[n].max() - ref[n].min()) > 0]


def _nonfinite(x: np.ndarray) -> list[int]:
    x = np.asarray(x)
    return np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)).tolist()


def mean_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-slice PSNR (cheap: used for live progress); NaN if any estimate slice is."""
    if _nonfinite(x):
        return float("nan")
    vals = [psnr(x[n], ref[n]) for n in _scored(ref)]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(x: np.ndarray, ref: np.ndarray) -> dict:
    """The paper's metrics: mean per-slice PSNR/SSIM, volume PSNR, and the per-slice table."""
    x = np.asarray(x)
    bad = _nonfinite(x)
    if bad:  # scikit-image's SSIM raises on NaN; the numbers must say NaN, not drop slices
        rows = [{"slice": n, "psnr": float("nan"), "ssim": float("nan")} if n in bad else
                {"slice": n, "psnr": psnr(x[n], ref[n]), "ssim": ssim(x[n], ref[n])}
                for n in range(ref.shape[0])]
    else:
        rows = per_slice(x, ref)
    scored = _scored(ref)
    nan = float("nan")
    out = {
        "psnr": float(np.mean([rows[n]["psnr"] for n in scored])) if scored and not bad else nan,
        "ssim": float(np.mean([rows[n]["ssim"] for n in scored])) if scored and not bad else nan,
        "volume_psnr": psnr(x, ref) if not bad else nan,
        "slices_scored": len(scored),
        "per_slice": rows,
    }
    if bad:
        out["nonfinite_slices"] = bad
    return out
