"""The one cost model: time and memory of a run, before it starts.

The GUI's estimate, the refusal of runs that cannot fit (`check_fits`, called by the pipeline
before any compute) and the benchmarks' projections all read it; nothing else computes a cost.

Time is in seconds of a 2-core CPU (one thread of a 2-core AMD EPYC, 2026-11-25,
benchmarks/solvers.md: 0.038 s per slice per DDS step at 64² including CG and bookkeeping, 0.093 s
per slice per adaptation iteration); the GUI rescales it by what the last run measured on the
machine and device at hand. Network cost grows faster than the pixel count because of the
UNet's self-attention (global over (H/4)² tokens): a forward at 128² costs 5.8x one at 64²
(measured on our 2-core CPU before the code existed), i.e. 1.44x per pixel, which `_net_units`
extrapolates linearly in the pixel count. Tiling (`RunConfig.tile`) keeps every network call at the tile's size.

Memory was measured (peak RSS growth, 32-channel UNet, 2026-12-01, Intel Xeon): 3.2 kB per pixel
per slice for a forward without gradients, 21 kB per pixel per slice for a forward plus backward
(adaptation, DPS); both scale with the network's width.
"""

from __future__ import annotations

import functools
from typing import Any

from .config import RunConfig
from .core.tiling import tile_count
from .io.files import ResourceError, available_memory, fmt_bytes
from .methods import get_method
from .operators.base import Measurement

SECONDS_PER_SLICE_STEP = 0.038  # DDS step of one 64² slice, CG included
SECONDS_PER_ADAPT_ITER = 0.093  # one adaptation iteration of one 64² slice (forward + backward)
ATTENTION_GROWTH = 0.147  # per-pixel cost growth per 64² of extra pixels (5.8x at 128²)
NOGRAD_BYTES_PER_PX = 3.2e3  # 32-channel UNet, forward without gradients, per slice
GRAD_BYTES_PER_PX = 21e3  # forward + backward, per slice
REF_CHANNELS = 32
RUNTIME_BYTES = 150e6  # the network's code paths, allocator slack
# one CG iteration (AᴴA + vector updates) of one 64² slice beyond the cg_steps that
# SECONDS_PER_SLICE_STEP already holds (5): AᴴA measured 0.56e-4 s (CT, 15 views) and 0.83e-4 s
# (MRI) per slice, 1 thread, 2026-12-02; with the vector updates about 1.2e-4 s
SECONDS_PER_CG_STEP = 1.2e-4
DEFAULT_CG_STEPS = 5
LORA_STATE_COPIES = 4  # LoRA weights, their gradients and AdamW's two moments
FIT_FRACTION = 0.9


def _net_units(h: int, w: int, tile: int) -> float:
    """Network cost of one slice in 64²-slice units (attention makes big inputs dearer)."""
    def units(px: float) -> float:
        p = px / 4096.0
        return p * (1.0 + ATTENTION_GROWTH * max(p - 1.0, 0.0))

    if tile > 0 and (h > tile or w > tile):
        th, tw = min(h, tile), min(w, tile)
        return tile_count(h, tile) * tile_count(w, tile) * units(th * tw)
    return units(h * w)


def _net_pixels(h: int, w: int, tile: int) -> int:
    """Pixels the network holds activations for at once, per slice (one tile when tiled)."""
    if tile > 0 and (h > tile or w > tile):
        return min(h, tile) * min(w, tile)
    return h * w


def _prior_width(config: RunConfig, image_shape: tuple[int, int], prior: Any = None
                 ) -> tuple[int, int]:
    """(base channels, parameters) of the prior the run will use, from its card (no weights)."""
    if prior is not None:
        return prior.net.config.base_channels, sum(p.numel() for p in prior.net.parameters())
    try:
        from .core.prior import read_card, resolve_prior_name

        card = read_card(resolve_prior_name(config.prior, image_shape))
        return int(card["architecture"]["base_channels"]), int(card.get("parameters", 2.4e6))
    except Exception:  # an unreadable prior is reported by the run itself
        return REF_CHANNELS, int(2.4e6)


def lora_parameters_per_rank(architecture: dict, placement: str = "blocks") -> int:
    """LoRA parameters per unit of rank for a UNet of this architecture (its layers built on
    the meta device: no memory): a Conv2d(in, out, k) gets in*k*k + out, a Linear in + out."""
    import json

    return _lora_per_rank(json.dumps(architecture, sort_keys=True), placement)


@functools.lru_cache(maxsize=16)
def _lora_per_rank(arch_json: str, placement: str) -> int:
    import json

    import torch.nn as nn

    from .adapters.lora import lora_target_names
    from .core.prior import _MetaParameters
    from .core.unet import UNet, UNetConfig

    with _MetaParameters():
        net = UNet(UNetConfig.from_dict(json.loads(arch_json)))
    mods = dict(net.named_modules())
    total = 0
    for name in lora_target_names(net, placement):
        m = mods[name]
        if isinstance(m, nn.Conv2d):
            total += m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels
        else:
            total += m.in_features + m.out_features
    return total


def _lora_bytes(config: RunConfig, image_shape: tuple[int, int], n: int, prior: Any) -> float:
    """LoRA state (weights, gradients, moments; one set per slice for SCD/DDIP) and the rank-wide
    activations of one adaptation batch: what a large --lora-rank costs."""
    if config.adapter == "none":
        return 0.0
    try:
        if prior is not None:
            arch = prior.net.config.to_dict()
        else:
            from .core.prior import read_card, resolve_prior_name

            arch = read_card(resolve_prior_name(config.prior, image_shape))["architecture"]
        per_rank = lora_parameters_per_rank(arch, config.lora_targets)
    except Exception:  # an unreadable prior is reported by the run itself
        per_rank = 2.0e4
    sets = n if config.adapter in ("scd", "ddip") else 1
    state = config.lora_rank * per_rank * 4.0 * LORA_STATE_COPIES * sets
    h, w = image_shape
    acts = 2 * 4.0 * config.lora_rank * h * w * adapted_slices(config, n) * 40  # ~40 targets
    return state + acts


def adapted_slices(config: RunConfig, n: int) -> int:
    """Slices that go through forward + backward together in one adaptation iteration: the
    adapter's own K (adapters/d3ip.py), not a copy of its rule."""
    from .adapters import adapted_slices as k_of

    return k_of(config, n)


def estimate_cost(measurement: Measurement, config: RunConfig, prior: Any = None
                  ) -> dict[str, Any]:
    """Time (s, 2-core CPU) and peak memory (bytes) of a run, with the parts of each."""
    cfg = config
    n = measurement.n_slices
    h, w = measurement.image_shape
    tile = cfg.tile
    units = _net_units(h, w, tile)
    px_cg = h * w / 4096.0
    method = get_method(cfg.solver)
    nfe = cfg.nfe if method.uses_prior else 0
    # the UNet is 97-98 % of a DDS step (benchmarks/loop_overhead.md): the step scales as it does;
    # a DPS step (forward + backward through the UNet) measured 1.3x a DDS step (benchmarks/solvers.py)
    sample = SECONDS_PER_SLICE_STEP * units * n * nfe * (1.3 if cfg.solver == "dps" else 1.0)
    adapt_steps = (sum(1 for t in range(nfe) if t % cfg.adapt_every == 0)
                   * (cfg.window_hi - cfg.window_lo) / 1000.0)
    per_iter = SECONDS_PER_ADAPT_ITER * units
    k = adapted_slices(cfg, n)
    if cfg.adapter in ("scd", "ddip"):
        adapt = adapt_steps * cfg.adapt_iters * per_iter * n
    elif cfg.adapter == "d3ip-meta":
        adapt = adapt_steps * cfg.adapt_iters * per_iter * (k + n)
    else:
        adapt = adapt_steps * cfg.adapt_iters * per_iter * k
    tv = method.own_seconds(n, h, w, cfg)  # ADMM-TV's iterations (solvers/admm_tv.py)
    cg_steps = {"dds": cfg.cg_steps, "mbir": cfg.cg_steps, "ddnm": cfg.ddnm_cg_steps}.get(cfg.solver, 0)
    baseline = 30 if cfg.solver == "ddnm" else DEFAULT_CG_STEPS  # what the step time holds
    cg = SECONDS_PER_CG_STEP * px_cg * n * nfe * max(cg_steps - baseline, 0)

    vol_bytes = n * h * w * 4
    y = measurement.y
    meas_bytes = 4 * y.numel() * y.element_size()  # y, residuals and CG vectors in data space
    parts = {"volumes": 10 * vol_bytes, "measurement": meas_bytes, "runtime": RUNTIME_BYTES}
    if method.uses_prior:  # no network without a prior (ADMM-TV): not even looked up
        channels, params = _prior_width(cfg, (h, w), prior)
        width = channels / REF_CHANNELS
        overlap_factor = (tile_count(h, tile) * tile_count(w, tile) * _net_pixels(h, w, tile)
                          / (h * w)) if tile else 1.0
        full = cfg.adapt_params == "full" and cfg.adapter in ("d3ip-base", "d3ip-mbir")
        parts["network"] = params * 4 * (4 if full else 1)  # + grads and AdamW moments
        batch = min(cfg.batch_slices, n)
        per_px = GRAD_BYTES_PER_PX if cfg.solver == "dps" else NOGRAD_BYTES_PER_PX
        sampling = batch * per_px * width * _net_pixels(h, w, tile)
        adapting = k * GRAD_BYTES_PER_PX * width * h * w * overlap_factor
        parts["activations"] = max(sampling, adapting)
        parts["activations_of"] = "adaptation" if adapting > sampling else "sampling"
        lora = _lora_bytes(cfg, (h, w), n, prior)
        if lora:
            parts["lora"] = lora
    total = sum(v for v in parts.values() if isinstance(v, int | float))
    return {"seconds": sample + adapt + tv + cg, "memory_bytes": int(total),
            "seconds_parts": {"sampling": sample, "adaptation": adapt, "tv": tv, "cg": cg},
            "memory_parts": parts}


def device_memory(device: Any) -> int:
    """Bytes a run can allocate on `device`: free GPU memory on CUDA, else available RAM."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    return available_memory()


def check_fits(measurement: Measurement, config: RunConfig, device: Any = "cpu",
               prior: Any = None, available: int | None = None) -> dict[str, Any]:
    """Refuse, before any compute, a run whose estimated peak memory exceeds what `device` has;
    the message says how much it needs and which settings would make it fit."""
    cost = estimate_cost(measurement, config, prior)
    avail = device_memory(device) if available is None else int(available)
    need = cost["memory_bytes"]
    if need <= FIT_FRACTION * avail:
        return cost
    budget = FIT_FRACTION * avail
    hints = []
    parts = cost["memory_parts"]
    act = parts.get("activations", 0)
    rest = need - act
    h, w = measurement.image_shape
    if act and rest < budget:
        room = budget - rest
        if parts.get("activations_of") == "adaptation":
            k = adapted_slices(config, measurement.n_slices)
            k_fit = int(k * room / act)
            if k_fit >= 1:
                hints.append(f"--k-slices {k_fit} (adapts on fewer slices at a time)")
        else:
            b = min(config.batch_slices, measurement.n_slices)
            b_fit = int(b * room / act)
            if b_fit >= 1:
                hints.append(f"--batch-slices {b_fit}")
        if not config.tile and max(h, w) > 64:
            hints.append("--tile 64 (the network sees overlapping 64-pixel tiles)")
    if parts.get("lora", 0) > 0.5 * budget:
        hints.insert(0, f"a smaller --lora-rank (now {config.lora_rank}; the paper uses 4)")
    if not hints:
        hints.append("fewer slices per run, a smaller volume, or a machine with more memory")
    raise ResourceError(
        f"this run needs about {fmt_bytes(need)} of memory on {device} "
        f"({measurement.n_slices} slices of {h}x{w}; the largest part: "
        f"{max((k for k in parts if isinstance(parts[k], int | float)), key=lambda k: parts[k])}), "
        f"but only {fmt_bytes(avail)} are available: try " + " or ".join(hints))
