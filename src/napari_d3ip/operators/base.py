"""The Operator contract and the Measurement container.

An operator acts slice by slice on real images batched as (N, 1, H, W) float32 tensors:
`forward` maps them to measurements (N, *meas_shape) (float for CT, complex for MRI),
`adjoint` is its exact adjoint for the real inner product <Ax, y> = Re sum conj(Ax) y,
`pinv` is the cheap reconstruction A†y (FBP, zero-filled inverse FFT). All of them are
differentiable torch functions and work on any device.

Slice-dependent operators (multi-coil MRI with per-slice coil maps) hold per-slice data and
must be restricted to a batch of slices with `subset(idx)` before use on that batch; slice-
independent operators return themselves from `subset`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

SliceIndex = Sequence[int] | slice | torch.Tensor | np.ndarray


class OperatorError(ValueError):
    """Bad operator parameters or input shapes; the message names the fix."""


class Operator(ABC):
    """Forward model y = A x applied independently to every slice."""

    kind: str = "abstract"

    def __init__(self, image_shape: tuple[int, int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.device = torch.device(device)
        self.dtype = dtype

    # -- shapes --------------------------------------------------------------------------
    @property
    @abstractmethod
    def meas_shape(self) -> tuple[int, ...]:
        """Shape of one slice's measurement."""

    @property
    def is_complex(self) -> bool:
        return False

    @property
    def n_slices(self) -> int | None:
        """Number of slices the operator is bound to, or None if slice-independent."""
        return None

    # -- the maps ------------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) real -> (N, *meas_shape)."""

    @abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(N, *meas_shape) -> (N, 1, H, W) real; the exact adjoint of `forward`."""

    @abstractmethod
    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Cheap approximate inverse (FBP for CT, zero-filled IFFT for MRI)."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^H A x."""
        return self.adjoint(self.forward(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    # -- slices, devices, serialisation --------------------------------------------------
    def subset(self, idx: SliceIndex) -> Operator:
        """The operator restricted to slices `idx` (self when slice-independent)."""
        return self

    @abstractmethod
    def to(self, device: torch.device | str) -> Operator:
        """The same operator on another device."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-able scalar parameters (for run cards and HDF5 attributes), incl. 'kind'."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Array-valued parameters (angles, mask, coil maps) for HDF5."""
        return {}

    # -- measurement simulation ----------------------------------------------------------
    def simulate(self, x: torch.Tensor, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
        """y = A x + n with n Gaussian of std `noise` * mean|A x| over measured entries.

        Complex measurements get circular complex noise of the same std per entry; only
        measured entries (non-zero mask) receive noise. Seeded: same seed, same noise.
        """
        with torch.no_grad():
            y = self.forward(x.to(self.device, self.dtype))
            if noise <= 0:
                return y
            support = self.measured_support(y)
            scale = float(y.abs()[support].mean()) * noise
            g = torch.Generator().manual_seed(int(seed))
            if y.is_complex():
                n = torch.complex(torch.randn(y.shape, generator=g),
                                  torch.randn(y.shape, generator=g)) / 2**0.5
            else:
                n = torch.randn(y.shape, generator=g)
            n = n.to(y.device, y.dtype) * scale
            return y + n * support

    def measured_support(self, y: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the entries that are actually measured (all, by default)."""
        return torch.ones_like(y, dtype=torch.bool)

    def check_image(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) != self.image_shape:
            raise OperatorError(
                f"{self.kind} operator expects images (N, 1, {self.image_shape[0]}, "
                f"{self.image_shape[1]}), got {tuple(x.shape)}"
            )


@dataclass
class Measurement:
    """Undersampled data of one volume with its operator and the volume's geometry.

    `y` is (N, *meas_shape); `reference` the fully sampled volume (N, H, W) in [0, 1] when
    known (simulations); `affine` the 4x4 voxel-to-world matrix in (slice, row, col) index
    order; `intensity` maps [0, 1] back to the file's range (lo, hi).
    """

    operator: Operator
    y: torch.Tensor
    reference: np.ndarray | None = None
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: tuple[float, float] = (0.0, 1.0)
    simulation: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def n_slices(self) -> int:
        return int(self.y.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.operator.image_shape

    def to(self, device: torch.device | str) -> Measurement:
        return Measurement(self.operator.to(device), self.y.to(device), self.reference,
                           self.affine, self.spacing, self.intensity, self.simulation, self.source)

    def pinv(self, batch: int = 32) -> np.ndarray:
        """A†y for the whole volume as (N, H, W) float32 numpy."""
        out = []
        with torch.no_grad():
            for s in range(0, self.n_slices, batch):
                idx = list(range(s, min(s + batch, self.n_slices)))
                out.append(self.operator.subset(idx).pinv(self.y[idx])[:, 0].float().cpu())
        return torch.cat(out).numpy()
