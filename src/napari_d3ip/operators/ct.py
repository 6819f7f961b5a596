"""Parallel-beam CT as a precomputed sparse system matrix (ALGORITHM.md section 6).

Geometry (the same as `skimage.transform.radon(..., circle=False)`, so the two can be compared
directly): pixel (row i, col j) sits at u = j - W//2, v = i - H//2 in pixel units; the view at
angle theta sees it at detector position s = u cos(theta) - v sin(theta); detector bin k covers
[k - 1/2, k + 1/2] - n_det//2 with n_det = ceil(sqrt(2) max(H, W)) bins, so the whole image is
seen (except the outermost tips of the four corner pixels at oblique angles).

Discretisation: the exact area ("footprint") model. A unit square pixel projects at angle theta
to a trapezoid of unit area (the convolution of two boxes of widths |cos| and |sin|); matrix
entry A[(view, bin), pixel] is that trapezoid's integral over the bin. So the sinogram is the
line integral in pixel units averaged over each bin, and agrees with skimage's radon with scale
1 (up to discretisation). The adjoint is the transpose of the same matrix (stored as a second
CSR matrix so both directions are fast), hence exact.

Both matrices are built once per geometry, dtype and device (an LRU cache), with int32
indices: torch's CSR kernel is ~20x faster with int32 than with int64 indices on CPU.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse
import torch

from .base import Operator, OperatorError

FILTERS = ("ram-lak", "shepp-logan", "hann")


# -- the system matrix -----------------------------------------------------------------------
def default_n_det(image_shape: tuple[int, int]) -> int:
    """Detector bins that see the whole square: ceil(sqrt(2) * max(H, W))."""
    return int(math.ceil(math.sqrt(2.0) * max(image_shape)))


def default_angles(n_views: int) -> np.ndarray:
    """n_views angles in degrees over [0, 180), endpoint excluded."""
    return np.arange(n_views, dtype=np.float64) * (180.0 / n_views)


def _trapezoid_cdf(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CDF at t of the unit-area trapezoid = box(width a) * box(width b), a >= b, centred at 0."""
    tp = np.clip(t + 0.5 * (a + b), 0.0, a + b)  # distance from the footprint's left end
    b = np.maximum(b, 1e-12)
    rise = tp * tp / (2 * a * b)
    flat = b / (2 * a) + (tp - b) / a
    fall = 1.0 - (a + b - tp) ** 2 / (2 * a * b)
    return np.where(tp < b, rise, np.where(tp < a, flat, fall))


def system_matrix_triplets(image_shape: tuple[int, int], angles_deg: np.ndarray,
                           n_det: int, center_offset: float = 0.0
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of A: rows = view * n_det + bin, cols = row-major pixel index.

    `center_offset` moves the rotation axis on the detector from bin n_det//2 to
    n_det//2 + center_offset (bins; measured files rarely have it in the middle)."""
    h, w = image_shape
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    c, s = np.cos(th), np.sin(th)
    a = np.maximum(np.abs(c), np.abs(s))[:, None]  # trapezoid box widths (a >= b)
    b = np.minimum(np.abs(c), np.abs(s))[:, None]
    ii, jj = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    u = jj.ravel().astype(np.float64)[None]
    v = ii.ravel().astype(np.float64)[None]
    centre = u * c[:, None] - v * s[:, None] + (n_det // 2 + center_offset)  # (views, pixels), bins
    first = np.floor(centre - 0.5 * (a + b) + 0.5).astype(np.int64)
    pix = np.broadcast_to(np.arange(h * w, dtype=np.int64)[None], centre.shape)
    view = np.broadcast_to(np.arange(len(th), dtype=np.int64)[:, None], centre.shape)
    rows, cols, vals = [], [], []
    for off in range(3):  # a footprint is at most sqrt(2) < 2 bins wide: it meets <= 3 bins
        k = first + off
        wgt = (_trapezoid_cdf(k + 0.5 - centre, a, b) - _trapezoid_cdf(k - 0.5 - centre, a, b))
        keep = (wgt > 1e-12) & (k >= 0) & (k < n_det)
        rows.append((view * n_det + k)[keep])
        cols.append(pix[keep])
        vals.append(wgt[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _torch_csr(m: scipy.sparse.csr_matrix, device: torch.device, dtype: torch.dtype
               ) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int32)),
            torch.from_numpy(m.indices.astype(np.int32)),
            torch.from_numpy(m.data).to(dtype), size=m.shape, check_invariants=False,
        ).to(device)


@lru_cache(maxsize=16)
def _matrices(h: int, w: int, angles: tuple[float, ...], n_det: int, device: torch.device,
              dtype: torch.dtype, center_offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, A^T) as int32 CSR tensors; cached per geometry, device and dtype. scipy does the
    sorting into CSR (several times faster than numpy lexsort at 256^2)."""
    r, c, v = system_matrix_triplets((h, w), np.asarray(angles), n_det, center_offset)
    a = scipy.sparse.csr_matrix((v, (r, c)), shape=(len(angles) * n_det, h * w))
    a.sort_indices()
    at = a.transpose().tocsr()
    at.sort_indices()
    return _torch_csr(a, device, dtype), _torch_csr(at, device, dtype)


def clear_cache() -> None:
    """Drop the cached system matrices (e.g. to time their construction)."""
    _matrices.cache_clear()


class _SparseApply(torch.autograd.Function):
    """y = M x for a constant sparse M; backward applies the stored transpose (also via this
    Function, so higher-order gradients work too)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mat: torch.Tensor, mat_t: torch.Tensor) -> torch.Tensor:
        ctx.mats = (mat, mat_t)
        return mat @ x.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mat, mat_t = ctx.mats
        return _SparseApply.apply(grad, mat_t, mat), None, None


# -- FBP filters -----------------------------------------------------------------------------
def ramp_filter(n_det: int, name: str = "ram-lak", dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, int]:
    """rfft-domain ramp filter for a zero-padded detector of `pad` bins, and `pad`.

    The ramp is the DFT of the sampled band-limited ramp kernel (h[0] = 1/4, h[odd n] =
    -1/(pi n)^2, h[even n] = 0; Kak & Slaney ch. 3), which is ~|f| (f in cycles/bin, 1/2 at
    Nyquist) but with the right small non-zero DC value, so the mean intensity is kept on a
    finite padded detector. Windows, functions of f in [0, 1/2]: Shepp-Logan sinc(f), Hann
    (1 + cos 2 pi f) / 2.
    """
    if name not in FILTERS:
        raise OperatorError(f"unknown FBP filter {name!r}; choose one of {', '.join(FILTERS)}")
    pad = max(64, 2 ** int(math.ceil(math.log2(2 * n_det))))
    n = np.fft.fftfreq(pad, d=1.0 / pad)  # signed integer lags 0, 1, ..., -1
    h = np.zeros(pad)
    h[0] = 0.25
    odd = (n.astype(np.int64) % 2) == 1
    h[odd] = -1.0 / (np.pi * n[odd]) ** 2
    filt = np.real(np.fft.rfft(h))
    f = np.fft.rfftfreq(pad)
    if name == "shepp-logan":
        filt = filt * np.sinc(f)
    elif name == "hann":
        filt = filt * 0.5 * (1.0 + np.cos(2 * np.pi * f))
    return torch.as_tensor(filt, dtype=dtype, device=device), pad


# -- the operator ----------------------------------------------------------------------------
class ParallelBeamCT(Operator):
    """Sparse-view parallel-beam CT: y[n] = A x[n], sinograms (N, n_views, n_det)."""

    kind = "ct"

    def __init__(self, image_shape: tuple[int, int], n_views: int | None = None,
                 n_det: int | None = None, filter: str = "ram-lak",
                 angles: np.ndarray | list[float] | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 center_offset: float = 0.0):
        """`center_offset`: the rotation axis sits at detector bin n_det//2 + center_offset
        (0 for simulations; measured scans set it from their rotation centre)."""
        super().__init__(image_shape, device, dtype)
        if min(self.image_shape) < 1:
            raise OperatorError(f"image_shape must be positive, got {self.image_shape}")
        if angles is None:
            n_views = 60 if n_views is None else n_views
            if not isinstance(n_views, int | np.integer) or n_views < 1:
                raise OperatorError(f"n_views must be an integer >= 1, got {n_views!r}")
            angles = default_angles(int(n_views))
        angles = np.asarray(angles, dtype=np.float64).ravel()
        if angles.size < 1 or not np.all(np.isfinite(angles)):
            raise OperatorError("angles must be a non-empty list of finite degrees")
        if n_views is not None and int(n_views) != angles.size:
            raise OperatorError(f"n_views={n_views} but {angles.size} angles were given")
        n_det = default_n_det(self.image_shape) if n_det is None else n_det
        if not isinstance(n_det, int | np.integer) or n_det < 1:
            raise OperatorError(f"n_det must be an integer >= 1, got {n_det!r}")
        if filter not in FILTERS:
            raise OperatorError(f"unknown FBP filter {filter!r}; choose one of "
                                f"{', '.join(FILTERS)}")
        if dtype not in (torch.float32, torch.float64):
            raise OperatorError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        try:
            center_offset = float(center_offset)
        except (TypeError, ValueError):
            raise OperatorError(f"center_offset must be a number of detector bins, got "
                                f"{center_offset!r}") from None
        if not math.isfinite(center_offset) or abs(center_offset) >= n_det:
            raise OperatorError(f"center_offset must be finite and within the detector "
                                f"(|offset| < n_det={n_det}), got {center_offset}")
        self.center_offset = center_offset
        self.angles = angles
        self.n_views = int(angles.size)
        self.n_det = int(n_det)
        self.filter = filter

    # -- shapes and matrices ---------------------------------------------------------------
    @property
    def meas_shape(self) -> tuple[int, int]:
        return (self.n_views, self.n_det)

    def matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, A^T) as CSR tensors (built on first use, then cached per geometry)."""
        return _matrices(*self.image_shape, tuple(float(a) for a in self.angles), self.n_det,
                         self.device, self.dtype, self.center_offset)

    def _check_sino(self, y: torch.Tensor) -> None:
        if y.dim() != 3 or tuple(y.shape[1:]) != self.meas_shape:
            raise OperatorError(f"ct operator expects sinograms (N, {self.n_views}, "
                                f"{self.n_det}), got {tuple(y.shape)}")

    # -- the maps --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x)
        a, at = self.matrices()
        n = x.shape[0]
        cols = x.reshape(n, -1).to(self.dtype).t()  # (H*W, N)
        return _SparseApply.apply(cols, a, at).t().reshape(n, *self.meas_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check_sino(y)
        a, at = self.matrices()
        n = y.shape[0]
        cols = y.reshape(n, -1).to(self.dtype).t()  # (views*det, N)
        return _SparseApply.apply(cols, at, a).t().reshape(n, 1, *self.image_shape)

    def filter_sinogram(self, y: torch.Tensor) -> torch.Tensor:
        """Ramp-filter every projection along the detector (zero-padded FFT convolution)."""
        self._check_sino(y)
        filt, pad = ramp_filter(self.n_det, self.filter, self.dtype, y.device)
        spec = torch.fft.rfft(y.to(self.dtype), n=pad, dim=-1) * filt
        return torch.fft.irfft(spec, n=pad, dim=-1)[..., : self.n_det]

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Filtered back-projection: A^T (ramp * y) * pi / n_views (views over 180 degrees)."""
        return self.adjoint(self.filter_sinogram(y)) * (math.pi / self.n_views)

    # -- bookkeeping -----------------------------------------------------------------------
    def to(self, device: torch.device | str) -> ParallelBeamCT:
        return ParallelBeamCT(self.image_shape, self.n_views, self.n_det, self.filter,
                              self.angles, device=device, dtype=self.dtype,
                              center_offset=self.center_offset)

    def params(self) -> dict[str, Any]:
        out = {"kind": self.kind, "n_views": self.n_views, "n_det": self.n_det,
               "filter": self.filter, "image_shape": list(self.image_shape)}
        if self.center_offset:  # only measured scans have one: simulated params stay as they were
            out["center_offset"] = self.center_offset
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"angles": self.angles.copy()}

    def __repr__(self) -> str:
        off = f", center_offset={self.center_offset:g}" if self.center_offset else ""
        return (f"ParallelBeamCT(image_shape={self.image_shape}, n_views={self.n_views}, "
                f"n_det={self.n_det}, filter={self.filter!r}{off}, device={self.device})")
