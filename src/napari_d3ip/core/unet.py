"""An ADM-style UNet for diffusion priors on single-channel images.

`forward` always returns the noise estimate epsilon, whatever the network was trained to
predict (`UNetConfig.prediction`): a v-prediction network (v = sqrt(ab) eps - sqrt(1-ab) x0)
is converted inside forward by eps = sqrt(ab) v + sqrt(1-ab) x_t, in float32, so every
sampler, solver and adapter sees the same interface. `forward(..., raw=True)` gives the
trained target itself (used by training).

Module names matter: LoRA targets `conv1`, `conv2`, `skip`, `emb_proj` (residual blocks) and
`qkv`, `proj_out` (attention blocks) and leaves `conv_in`, `time_mlp` and `conv_out` alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .schedule import VPSchedule

PREDICTIONS = ("eps", "v")


@dataclass
class UNetConfig:
    """Architecture of the UNet; stored in every prior card so the network can be rebuilt."""

    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    image_size: int = 64
    dropout: float = 0.0
    in_channels: int = 1
    out_channels: int = 1
    prediction: str = "eps"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        d["attn_resolutions"] = list(self.attn_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown UNet config fields {unknown}")
        known["channel_mults"] = tuple(known.get("channel_mults", (1, 2, 2, 2)))
        known["attn_resolutions"] = tuple(known.get("attn_resolutions", (16,)))
        return cls(**known)


def _groups(ch: int) -> int:
    return math.gcd(32, ch)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer times (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, scale-shift time conditioning, GroupNorm-SiLU-dropout-conv, skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 qkv and output projections."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj_out(a.transpose(-1, -2).reshape(n, c, h, w))


class Down(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """Residual blocks (each optionally followed by attention) at one resolution."""

    def __init__(self, blocks: list[ResBlock], attns: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)


class UNet(nn.Module):
    """epsilon_theta(x_t, t) for (N, 1, H, W) inputs; H and W divisible by 2**(levels-1)."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = config or UNetConfig()
        self.config = cfg
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        res = cfg.image_size
        chans = [ch]
        cur = ch
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, mult in enumerate(cfg.channel_mults):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(cur, ch * mult, emb_dim, cfg.dropout))
                cur = ch * mult
                attns.append(AttnBlock(cur) if res in cfg.attn_resolutions else nn.Identity())
                chans.append(cur)
            self.down.append(Level(blocks, attns))
            last = i == len(cfg.channel_mults) - 1
            self.downsample.append(nn.Identity() if last else Down(cur))
            if not last:
                chans.append(cur)
                res //= 2

        self.mid1 = ResBlock(cur, cur, emb_dim, cfg.dropout)
        self.mid_attn = AttnBlock(cur)
        self.mid2 = ResBlock(cur, cur, emb_dim, cfg.dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, mult in reversed(list(enumerate(cfg.channel_mults))):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(cur + chans.pop(), ch * mult, emb_dim, cfg.dropout))
                cur = ch * mult
                attns.append(AttnBlock(cur) if res in cfg.attn_resolutions else nn.Identity())
            self.up.append(Level(blocks, attns))
            self.upsample.append(Up(cur) if i > 0 else nn.Identity())
            if i > 0:
                res *= 2

        self.norm_out = nn.GroupNorm(_groups(cur), cur)
        self.conv_out = nn.Conv2d(cur, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.set_schedule(VPSchedule().alpha_bars())
        self.tile = 0  # > 0: slices larger than this go through the network in blended tiles

    def set_schedule(self, alpha_bars: torch.Tensor) -> None:
        """The alpha_bar table a v-prediction output is converted with (not a weight)."""
        ab = alpha_bars.double()
        self.register_buffer("_sqrt_ab", ab.sqrt().float(), persistent=False)
        self.register_buffer("_sqrt_1mab", (1 - ab).sqrt().float(), persistent=False)

    @property
    def divisor(self) -> int:
        return 2 ** (len(self.config.channel_mults) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int, raw: bool = False) -> torch.Tensor:
        """epsilon(x_t, t); with raw=True the trained target (eps or v) as the network emits it.

        With `self.tile` > 0 a slice larger than the tile goes through in overlapping tiles whose
        seams are blended (core/tiling.py): memory and attention cost of one tile."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNet expects (N, {self.config.in_channels}, H, W), got {tuple(x.shape)}"
            )
        tile = self.tile
        if tile and max(x.shape[-2:]) > tile:
            from .tiling import tiled

            return tiled(lambda z: self._forward(z, t, raw), x, tile, multiple=self.divisor)
        return self._forward(x, t, raw)

    def _forward(self, x: torch.Tensor, t: torch.Tensor | int, raw: bool) -> torch.Tensor:
        h_, w_ = x.shape[-2:]
        if h_ % self.divisor or w_ % self.divisor:
            raise ValueError(
                f"image size {h_}x{w_} must be divisible by {self.divisor} for this UNet "
                f"({len(self.config.channel_mults)} levels); pad or resample the volume"
            )
        if not isinstance(t, torch.Tensor):
            t = torch.tensor([t], device=x.device)
        t = t.to(x.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x.dtype))

        h = self.conv_in(x)
        skips = [h]
        for level, down in zip(self.down, self.downsample):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(h, emb))
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level, up in zip(self.up, self.upsample):
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            h = up(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        if raw or self.config.prediction == "eps":
            return out
        ti = t.long().to(self._sqrt_ab.device)
        a = self._sqrt_ab[ti].view(-1, 1, 1, 1).to(x.device)
        s = self._sqrt_1mab[ti].view(-1, 1, 1, 1).to(x.device)
        return a * out.float() + s * x.float()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
