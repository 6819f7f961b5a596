"""Training targets and loss weights.

With SNR = ab/(1-ab), the x0 error of an eps network is |e_eps|^2 / SNR and of a v network
(1-ab)|e_v|^2 = |e_v|^2 / (SNR+1); min-SNR-gamma weights the x0 error by min(SNR, gamma), so
w_eps = min(SNR, gamma)/SNR and w_v = min(SNR, gamma)/(SNR+1) (known-answer tested). v prediction
gives accurate x0 at high t, where eps prediction multiplies the network's error by
sqrt((1-ab)/ab): 130x at t = 980.
"""

from __future__ import annotations

import torch


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    return alpha_bar / (1 - alpha_bar)


def loss_weight(alpha_bar: torch.Tensor, prediction: str, gamma: float) -> torch.Tensor:
    """Per-sample weight of the target MSE (module docstring); 1 where gamma <= 0."""
    if gamma <= 0:
        return torch.ones_like(alpha_bar)
    s = snr(alpha_bar)
    clipped = torch.minimum(s, torch.full_like(s, gamma))
    return clipped / (s + 1) if prediction == "v" else clipped / s


def v_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """v = sqrt(ab) eps - sqrt(1-ab) x0 (per-sample ab)."""
    ab = alpha_bar.view(-1, *([1] * (x0.dim() - 1))).to(x0)
    return ab.sqrt() * noise - (1 - ab).sqrt() * x0
