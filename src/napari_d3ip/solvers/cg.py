"""Batched conjugate gradient with per-slice inner products.

Every slice of a batch (dimension 0) is its own linear system: step sizes and directions use
per-slice inner products, so slices never couple (the reference code's single global inner
product couples them: a defect we do not copy). Fixed iteration count; written without
in-place updates so autograd flows through every iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# operator norms are the measurement's (operators/base.py); kept importable from here
from ..operators.base import mean_eigenvalue, power_iteration  # noqa: F401

LinearMap = Callable[[torch.Tensor], torch.Tensor]

#: stopping tolerances of single-precision systems, well above float32 rounding (a 64x64 FFT
#: round trip leaves ~1e-6 relative). RTOL_SINGLE: relative residual norm; QTOL_SINGLE: a search
#: direction whose Rayleigh quotient pᴴAp/pᴴp fell below it times the first one is rounding noise
#: in the null space of A. At 1e-6 both decisions were taken on rounding noise and such a
#: direction got a step of ~1e5: the same seed gave different volumes for different batch sizes
#: or thread counts (MRI, gamma None: 0.12-0.24 max difference on [0, 1]; now ~1e-6).
RTOL_SINGLE = 1e-4
QTOL_SINGLE = 1e-4


def batched_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of <a, b> per slice: (N, ...) x (N, ...) -> (N, 1, ..., 1) broadcastable."""
    prod = (a.conj() * b).real if a.is_complex() or b.is_complex() else a * b
    return prod.flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))


def cg(apply_a: LinearMap, b: torch.Tensor, x0: torch.Tensor | None = None, n_iter: int = 5,
       rtol: float | None = None, coupled: bool = False,
       total: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Run up to `n_iter` CG iterations on A x = b (A symmetric positive semi-definite).

    A slice whose residual fell below `rtol` times its initial residual stops moving (step
    size 0): a converged slice is never disturbed by the others, and rounding noise is not
    amplified when more iterations are asked for than the system needs. A slice also stops
    when its search direction has fallen into the null space of A (Rayleigh quotient pᴴAp/pᴴp
    below `QTOL_SINGLE` (float32; `rtol` in double) times the first one): with a singular A
    (an MRI mask, sparse-view CT) rounding
    noise would otherwise get a step of size rr/pᴴAp → ∞ (seen: 10⁸ after 5 CG steps on a
    noise-free masked-Fourier system). `coupled=True` is for
    maps that mix slices (D_zᵀD_z in DiffusionMBIR, 3D TV): one system, global inner products;
    `total` then turns a sum over the slices held here into the volume's (a slab of a
    distributed volume: an all-reduce).
    """
    if coupled:
        def dot(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            d = batched_dot(a.reshape(1, -1), c.reshape(1, -1)).reshape([1] * a.dim())
            return d if total is None else total(d)
    else:
        dot = batched_dot
    if rtol is None:
        rtol = RTOL_SINGLE if b.dtype in (torch.float32, torch.complex64, torch.bfloat16) else 1e-12
    qtol = QTOL_SINGLE if b.dtype in (torch.float32, torch.complex64, torch.bfloat16) else rtol
    tiny = 1e-30
    x = torch.zeros_like(b) if x0 is None else x0
    if n_iter <= 0:
        return x
    r = b - apply_a(x)
    p = r
    rr = dot(r, r)
    floor = (rtol**2) * rr.detach() + tiny
    q_floor = None
    for _ in range(n_iter):
        ap = apply_a(p)
        pap = dot(p, ap)
        q = pap.detach() / dot(p, p).detach().clamp_min(tiny)  # Rayleigh quotient of p
        if q_floor is None:
            q_floor = max(qtol, rtol) * q + tiny
        live = (rr.detach() > floor) & (pap.detach() > tiny) & (q > q_floor)
        alpha = torch.where(live, rr / pap.clamp_min(tiny), torch.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        beta = torch.where(live, rr_new / rr.clamp_min(tiny), torch.zeros_like(rr))
        p = r + beta * p
        rr = rr_new
    return x
