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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import D3IPError

SliceIndex = Sequence[int] | slice | torch.Tensor | np.ndarray


class OperatorError(D3IPError):
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


def power_iteration(apply_a: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                    n_iter: int = 30,
                    device: torch.device | str = "cpu", seed: int = 0) -> float:
    """Largest eigenvalue of a symmetric PSD map (e.g. AᴴA), estimated by power iteration."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(shape, generator=g).to(device)
    lam = 0.0
    with torch.no_grad():
        for _ in range(n_iter):
            w = apply_a(v)
            lam = float((v * w).sum() / (v * v).sum())
            v = w / w.norm().clamp_min(1e-30)
    return lam


def mean_eigenvalue(apply_a: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                    n_probes: int = 4,
                    device: torch.device | str = "cpu", seed: int = 0) -> float:
    """trace(A)/n of a symmetric PSD map by Hutchinson's estimator (Gaussian probes).

    The typical weight of the data term: the scale for regularisation weights. ‖AᴴA‖ is dominated
    by the lowest frequencies for CT (a ramp spectrum) and would make TV weights far too strong.
    """
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for _ in range(n_probes):
            v = torch.randn(shape, generator=g).to(device)
            total += float((v * apply_a(v)).sum() / (v * v).sum())
    return total / n_probes


class OperatorNorms(NamedTuple):
    """Scales of AᴴA (of the first slice's operator): solver weights are relative to them."""

    norm2: float  # ‖AᴴA‖ (power iteration): the Lipschitz constant of the data term
    mean_eig: float  # trace(AᴴA)/n (Hutchinson): the typical weight of the data term


def mean_squared_residual(op: Operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean |A x - y|² over all entries (differentiable): the data-fidelity loss."""
    r = op.forward(x) - y
    return (r.abs() ** 2).mean() if r.is_complex() else (r**2).mean()


def slice_batches(indices: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive runs of at most `size` of `indices`."""
    idx = list(indices)
    return [idx[s:s + size] for s in range(0, len(idx), size)]


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

    #: cached OperatorNorms per device (not part of the data: never compared or printed)
    _norms: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_slices(self) -> int:
        return int(self.y.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.operator.image_shape

    def to(self, device: torch.device | str) -> Measurement:
        return Measurement(self.operator.to(device), self.y.to(device), self.reference,
                           self.affine, self.spacing, self.intensity, self.simulation, self.source,
                           dict(self._norms))

    # -- slices ----------------------------------------------------------------------------
    def subset(self, idx: Sequence[int]) -> Measurement:
        """The measurement of slices `idx` (operator restricted, y and reference sliced); it
        keeps the whole volume's operator norms when they are known (they are the volume's)."""
        idx = list(idx)
        ref = None if self.reference is None else np.asarray(self.reference)[idx]
        return Measurement(self.operator.subset(idx), self.y[idx], ref, self.affine,
                           self.spacing, self.intensity, self.simulation, self.source,
                           dict(self._norms))

    def batches(self, size: int,
                indices: Sequence[int] | None = None) -> Iterator[tuple[list[int], Measurement]]:
        """(slice indices, sub-measurement) of consecutive batches of at most `size` slices
        (of `indices`, default all)."""
        for idx in slice_batches(range(self.n_slices) if indices is None else indices, size):
            yield idx, self.subset(idx)

    # -- what the solvers need ---------------------------------------------------------------
    def norms(self) -> OperatorNorms:
        """‖AᴴA‖ and the mean eigenvalue of AᴴA of the first slice's operator (cached)."""
        device = self.y.device
        key = str(device)
        if key not in self._norms:
            h, w = self.image_shape
            normal = self.operator.subset([0]).normal
            self._norms[key] = OperatorNorms(power_iteration(normal, (1, 1, h, w), device=device),
                                             mean_eigenvalue(normal, (1, 1, h, w), device=device))
        return self._norms[key]

    def residual_loss(self, x: torch.Tensor) -> torch.Tensor:
        """mean |A x - y|² of these slices (differentiable)."""
        return mean_squared_residual(self.operator, x, self.y)

    def loss(self, x: torch.Tensor, batch: int = 32) -> float:
        """The volume's data fidelity mean |A x - y|² (x: (N, 1, H, W)), by batches."""
        with torch.no_grad():
            total = 0.0
            for idx, sub in self.batches(batch):
                total += float(sub.residual_loss(x[idx])) * len(idx)
            return total / self.n_slices

    def pinv_tensor(self, batch: int = 32) -> torch.Tensor:
        """A†y of the whole volume as an (N, 1, H, W) tensor on the measurement's device."""
        with torch.no_grad():
            return torch.cat([sub.operator.pinv(sub.y) for _, sub in self.batches(batch)])

    def pinv(self, batch: int = 32) -> np.ndarray:
        """A†y for the whole volume as (N, H, W) float32 numpy."""
        return self.pinv_tensor(batch)[:, 0].float().cpu().numpy()
