"""Cartesian MRI operators (ALGORITHM.md section 6): single-coil and multi-coil (SENSE).

Images are real (the prior's domain), k-space is complex. With the real inner product
<a, b> = Re sum conj(a) b the exact adjoint of x -> M F (S x) is y -> Re(sum_c conj(S_c) F^H
(M y_c)), F the orthonormal centred 2D FFT (unitary, so F^H = F^-1) and M a real 0/1 mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Operator, OperatorError, SliceIndex

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal centred 2D FFT over the last two axes (DC at index (H//2, W//2))."""
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=dims), norm="ortho"),
                              dim=dims)


def ifft2c(y: torch.Tensor) -> torch.Tensor:
    """Inverse of `fft2c` (and its adjoint: the transform is unitary)."""
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(y, dim=dims), norm="ortho"),
                              dim=dims)


def _as_mask(mask: np.ndarray | torch.Tensor, image_shape: tuple[int, int] | None
             ) -> np.ndarray:
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise OperatorError(f"the sampling mask must be 2D (H, W), got shape {m.shape}")
    if image_shape is not None and tuple(m.shape) != tuple(image_shape):
        raise OperatorError(f"mask shape {m.shape} does not match image_shape {image_shape}")
    if m.dtype != bool:
        if not np.all((m == 0) | (m == 1)):
            raise OperatorError("the sampling mask must be boolean (or 0/1 valued)")
        m = m.astype(bool)
    if not m.any():
        raise OperatorError("the sampling mask samples nothing")
    return m


def _check_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in _COMPLEX:
        raise OperatorError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return _COMPLEX[dtype]


class CartesianMRI(Operator):
    """Single-coil Cartesian MRI: y = M * FFT2c(x), one 2D mask shared by every slice."""

    kind = "mri"

    def __init__(self, mask: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        m = _as_mask(mask, None)
        super().__init__(m.shape, device, dtype)
        self.cdtype = _check_dtype(dtype)
        self.mask_np = m
        self.mask = torch.from_numpy(m).to(self.device)
        self._mask_f = self.mask.to(dtype)

    @property
    def meas_shape(self) -> tuple[int, int]:
        return self.image_shape

    @property
    def is_complex(self) -> bool:
        return True

    @property
    def acceleration(self) -> float:
        return float(self.mask_np.size / self.mask_np.sum())

    def _check_kspace(self, y: torch.Tensor) -> None:
        if y.dim() != 3 or tuple(y.shape[1:]) != self.image_shape:
            raise OperatorError(f"mri operator expects k-space (N, {self.image_shape[0]}, "
                                f"{self.image_shape[1]}), got {tuple(y.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x)
        return fft2c(x[:, 0].to(self.dtype)) * self._mask_f

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check_kspace(y)
        return ifft2c(y.to(self.cdtype) * self._mask_f).real[:, None]

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Zero-filled inverse FFT (equal to the adjoint: F is unitary)."""
        return self.adjoint(y)

    def measured_support(self, y: torch.Tensor) -> torch.Tensor:
        return self.mask.to(y.device).expand(y.shape)

    def to(self, device: torch.device | str) -> CartesianMRI:
        return CartesianMRI(self.mask_np, device=device, dtype=self.dtype)

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "image_shape": list(self.image_shape),
                "acceleration": round(self.acceleration, 4)}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mask": self.mask_np.copy()}

    def __repr__(self) -> str:
        return (f"CartesianMRI(image_shape={self.image_shape}, "
                f"acceleration={self.acceleration:.2f}, device={self.device})")


class MulticoilMRI(Operator):
    """Multi-coil Cartesian MRI: y[n, c] = M * FFT2c(S[n, c] x[n]), coil maps per slice.

    `maps` is (N, C, H, W) complex (one set per slice, e.g. ESPIRiT estimates from each
    slice's ACS data; restrict to a batch with `subset`) or (C, H, W) (shared by all slices:
    the operator is then slice-independent).
    """

    kind = "mri-multicoil"

    def __init__(self, mask: np.ndarray | torch.Tensor, maps: np.ndarray | torch.Tensor,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 eps: float = 1e-6):
        m = _as_mask(mask, None)
        super().__init__(m.shape, device, dtype)
        self.cdtype = _check_dtype(dtype)
        s = torch.as_tensor(maps)
        if s.dim() not in (3, 4) or tuple(s.shape[-2:]) != self.image_shape:
            raise OperatorError(f"coil maps must be (N, C, {m.shape[0]}, {m.shape[1]}) or "
                                f"(C, {m.shape[0]}, {m.shape[1]}), got {tuple(s.shape)}")
        self.per_slice = s.dim() == 4
        self.maps = s.to(self.device, self.cdtype)
        self.mask_np = m
        self.mask = torch.from_numpy(m).to(self.device)
        self._mask_f = self.mask.to(dtype)
        self.eps = float(eps)

    @property
    def n_coils(self) -> int:
        return int(self.maps.shape[-3])

    @property
    def meas_shape(self) -> tuple[int, int, int]:
        return (self.n_coils, *self.image_shape)

    @property
    def is_complex(self) -> bool:
        return True

    @property
    def n_slices(self) -> int | None:
        return int(self.maps.shape[0]) if self.per_slice else None

    @property
    def acceleration(self) -> float:
        return float(self.mask_np.size / self.mask_np.sum())

    def _maps_for(self, n: int) -> torch.Tensor:
        if self.per_slice:
            if n != self.maps.shape[0]:
                raise OperatorError(
                    f"this multi-coil operator holds coil maps for {self.maps.shape[0]} slices "
                    f"but got a batch of {n}: restrict it first with op.subset(slice_indices)")
            return self.maps
        return self.maps[None]

    def _check_kspace(self, y: torch.Tensor) -> None:
        if y.dim() != 4 or tuple(y.shape[1:]) != self.meas_shape:
            raise OperatorError(f"mri-multicoil operator expects k-space (N, {self.n_coils}, "
                                f"{self.image_shape[0]}, {self.image_shape[1]}), "
                                f"got {tuple(y.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x)
        s = self._maps_for(x.shape[0])
        return fft2c(s * x.to(self.dtype)) * self._mask_f

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check_kspace(y)
        s = self._maps_for(y.shape[0])
        img = ifft2c(y.to(self.cdtype) * self._mask_f)
        return (s.conj() * img).sum(dim=1, keepdim=True).real

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """SENSE-weighted zero-filled coil combination: Re sum conj(S) F^H(M y) / sum |S|^2."""
        self._check_kspace(y)
        s = self._maps_for(y.shape[0])
        img = ifft2c(y.to(self.cdtype) * self._mask_f)
        num = (s.conj() * img).sum(dim=1, keepdim=True).real
        den = (s.abs() ** 2).sum(dim=1, keepdim=True).clamp_min(self.eps)
        return num / den

    def measured_support(self, y: torch.Tensor) -> torch.Tensor:
        return self.mask.to(y.device).expand(y.shape)

    def subset(self, idx: SliceIndex) -> MulticoilMRI:
        """The operator with only slices `idx`' coil maps (self if maps are shared)."""
        if not self.per_slice:
            return self
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx)
        if isinstance(idx, torch.Tensor):
            idx = idx.to(self.maps.device).long()
        elif not isinstance(idx, slice):
            idx = torch.as_tensor(list(idx), dtype=torch.long, device=self.maps.device)
        maps = self.maps[idx]
        if maps.dim() == 3:  # a single integer index
            maps = maps[None]
        return MulticoilMRI(self.mask_np, maps, self.device, self.dtype, self.eps)

    def to(self, device: torch.device | str) -> MulticoilMRI:
        return MulticoilMRI(self.mask_np, self.maps, device, self.dtype, self.eps)

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "image_shape": list(self.image_shape),
                "n_coils": self.n_coils, "per_slice_maps": self.per_slice,
                "acceleration": round(self.acceleration, 4)}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mask": self.mask_np.copy(), "maps": self.maps.detach().cpu().numpy()}

    def __repr__(self) -> str:
        return (f"MulticoilMRI(image_shape={self.image_shape}, n_coils={self.n_coils}, "
                f"n_slices={self.n_slices}, acceleration={self.acceleration:.2f}, "
                f"device={self.device})")
