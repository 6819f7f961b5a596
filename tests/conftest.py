"""Shared fixtures: a tiny random prior (fast on CPU) saved like a real one."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from napari_d3ip.core.prior import Prior
from napari_d3ip.core.schedule import VPSchedule
from napari_d3ip.core.unet import UNet, UNetConfig

# napari needs OpenGL: under QT_QPA_PLATFORM=offscreen it crashes in vispy. When Xvfb is
# installed, pytest-xvfb starts a virtual display for the session and Qt uses it via xcb.
if shutil.which("Xvfb") and os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = "xcb"

# Test tensors are tiny: one thread avoids oversubscription overhead (10x on a busy 2-core box).
torch.set_num_threads(1)

TINY = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                  attn_resolutions=(16,), image_size=32)


def make_tiny_prior(seed: int = 0, image_size: int = 32) -> Prior:
    """A small randomly initialised UNet; output conv perturbed so eps is not identically 0."""
    torch.manual_seed(seed)
    cfg = UNetConfig(**{**TINY.to_dict(), "image_size": image_size})
    net = UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1 and float(p.abs().sum()) == 0.0:
                p.normal_(0, 0.02)
    net.eval().requires_grad_(False)
    return Prior(net, VPSchedule(), {"name": "tiny-test"})


@pytest.fixture
def tiny_prior() -> Prior:
    return make_tiny_prior()


@pytest.fixture
def tiny_prior_path(tmp_path):
    """A tiny prior written as .safetensors + .json card; returns the .safetensors path."""
    return make_tiny_prior().save(tmp_path / "tiny.safetensors")


class MatrixOperator:
    """Test operator: y = M x per slice for a dense matrix M (exact adjoint by construction)."""

    kind = "matrix"

    def __init__(self, matrix: torch.Tensor, image_shape: tuple[int, int]):
        from napari_d3ip.operators.base import Operator

        class _Op(Operator):
            kind = "matrix"

            def __init__(s, m, shape, device="cpu"):
                super().__init__(shape, device)
                s.m = m.to(device)

            @property
            def meas_shape(s):
                return (s.m.shape[0],)

            def forward(s, x):
                return x.flatten(1) @ s.m.T

            def adjoint(s, y):
                return (y @ s.m).view(-1, 1, *s.image_shape)

            def pinv(s, y):
                return (y @ torch.linalg.pinv(s.m).T).view(-1, 1, *s.image_shape)

            def to(s, device):
                return _Op(s.m, s.image_shape, device)

            def params(s):
                return {"kind": "matrix", "rows": int(s.m.shape[0])}

        self.op = _Op(matrix, image_shape)


def matrix_operator(rows: int, image_shape=(8, 8), seed: int = 0, identity: bool = False):
    h, w = image_shape
    if identity:
        m = torch.eye(h * w)
    else:
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(rows, h * w, generator=g) / (h * w) ** 0.5
    return MatrixOperator(m, image_shape).op


def measurement_of(volume: torch.Tensor, op, noise: float = 0.0):
    """A Measurement of a (N, H, W) volume with operator `op`."""
    from napari_d3ip.operators.base import Measurement

    x = volume[:, None].float()
    y = op.simulate(x, noise=noise, seed=1)
    return Measurement(operator=op, y=y, reference=volume.numpy().astype("float32"))
