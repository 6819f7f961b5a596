"""The one sampling loop: every solver and adapter runs through `reconstruct`.

```
x = init(A†y, slerp noise)                   at t* (or pure noise)
for t in grid:                               980, 960, ..., 0
    adapter.adapt(x_t, t)                    inside the window (LoRA, AdamW)
    x̂0   = Tweedie(x_t; θ + φ)               batches of slices, per-slice φ where needed
    x̂0|y = estimator(x̂0)                    DDS / DDNM / DPS / DiffusionMBIR
    x_t' = √ᾱ' x̂0|y + √(1-ᾱ') (η z + √(1-η²) ε)
    yield Step                               the consumer draws, logs, or cancels
return Result                                x̂0|y at t = 0, clipped to [0, 1], run card
```
The generator form lets the CLI show a progress bar and the GUI stream live views with the
same code; closing the generator cancels within one step. Noise is drawn on the CPU from one
seeded generator per run, so a seed gives the same result whatever the batch size.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import RunConfig
from .core.precision import describe_machine, resolve_bf16
from .core.prior import Prior, load_prior, resolve_device
from .core.schedule import dds_step, tweedie
from .events import Result, Step
from .metrics import evaluate, mean_psnr
from .operators.base import Measurement
from .solvers import DCContext, build_estimator, data_loss
from .solvers.admm_tv import admm_tv
from .solvers.cg import mean_eigenvalue, power_iteration


class PipelineError(ValueError):
    """The measurement and the configuration cannot run together; the message says why."""


class RunCancelled(Exception):
    """`should_stop()` said stop in the middle of a step (the GUI closing): no Result."""


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (keeps their typical norm)."""
    cos = float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))
    omega = math.acos(max(-1.0, min(1.0, cos)))
    if omega < 1e-6:
        return (1 - w) * a + w * b
    return (math.sin((1 - w) * omega) * a + math.sin(w * omega) * b) / math.sin(omega)


def initial_state(pinv: torch.Tensor, kind: str, alpha_bar: float,
                  g: torch.Generator) -> torch.Tensor:
    """x at the first time: A†y + slerp noise across slices, A†y + iid noise, or pure noise."""
    n = pinv.shape[0]
    shape = (1, *pinv.shape[1:])
    if kind == "pure-noise":
        return torch.randn(pinv.shape, generator=g).to(pinv.device)
    if kind == "slerp":
        ea, eb = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        noise = torch.cat([slerp(ea, eb, i / max(n - 1, 1)) for i in range(n)])
    else:
        noise = torch.randn(pinv.shape, generator=g)
    return alpha_bar**0.5 * pinv + (1 - alpha_bar) ** 0.5 * noise.to(pinv.device)


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(s, min(s + size, n))) for s in range(0, n, size)]


def _operator_scales(m: Measurement, device: torch.device) -> tuple[float, float]:
    """(‖AᴴA‖, mean eigenvalue of AᴴA) of the first slice's operator."""
    h, w = m.image_shape
    normal = m.operator.subset([0]).normal
    return (power_iteration(normal, (1, 1, h, w), device=device),
            mean_eigenvalue(normal, (1, 1, h, w), device=device))


def _volume_loss(m: Measurement, x: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        total = 0.0
        for idx in _batches(m.n_slices, batch):
            total += float(data_loss(m.operator.subset(idx), x[idx], m.y[idx])) * len(idx)
        return total / m.n_slices


def _pinv(m: Measurement, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([m.operator.subset(idx).pinv(m.y[idx])
                          for idx in _batches(m.n_slices, batch)])


class PriorScaleWarning(UserWarning):
    """The prior was trained for another pixel scale than the measurement's slices."""


def prior_scale(m: Measurement, prior: Prior) -> dict[str, Any]:
    """What the run card records of the prior's pixel scale against the slices', with a
    warning text where they differ (a 64-pixel prior on 128-pixel slices sees every
    structure twice as large as it learned)."""
    h, w = m.image_shape
    trained = prior.render_size
    out: dict[str, Any] = {"prior_render_size": trained, "slice_size": [h, w]}
    if max(h, w) != trained:
        out["warning"] = (f"prior {prior.name!r} was trained for {trained}-pixel slices, these are "
                          f"{h}x{w}: structures appear at another scale than it learned; use a "
                          f"prior trained at {max(h, w)} (d3ip train-prior --render-size "
                          f"{max(h, w)} --size 64) or resample the volume")
    return out


def check_finite(m: Measurement) -> None:
    """Refuse NaN / inf in the data, the operator's arrays (coil maps) or the reference before
    any compute: one NaN spreads through every CG step and the whole run would be wasted."""
    problems = []
    y = m.y
    finite = torch.isfinite(y)
    if not bool(finite.all()):
        rows = (~finite.reshape(finite.shape[0], -1).all(dim=1)).nonzero().flatten().tolist()
        what = {"ct": "sinogram", "mri": "k-space", "mri-multicoil": "k-space"}.get(
            getattr(m.operator, "kind", ""), "measurement y")
        problems.append(f"the {what} holds {int((~finite).sum())} NaN or infinite value(s) in "
                        f"slice(s) {', '.join(map(str, rows[:8]))}{' ...' if len(rows) > 8 else ''}")
    try:
        arrays = m.operator.arrays()
    except Exception:  # an operator without arrays() has nothing to check
        arrays = {}
    for name, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            label = {"maps": "coil sensitivity maps", "angles": "CT angles"}.get(name, name)
            problems.append(f"the {label} hold {int(a.size - np.isfinite(a).sum())} NaN or "
                            "infinite value(s)")
    if m.reference is not None and not np.all(np.isfinite(np.asarray(m.reference))):
        problems.append("the reference volume holds NaN or infinite values")
    if problems:
        raise PipelineError("cannot reconstruct: " + "; ".join(problems) + " (fix the "
                            "measurement: NaN cannot be reconstructed)")


def _check(m: Measurement, prior: Prior | None) -> None:
    if m.y.shape[0] < 1:
        raise PipelineError("the measurement has no slices")
    if prior is not None:
        d = prior.net.divisor
        h, w = m.image_shape
        if h % d or w % d:
            raise PipelineError(f"slices of {h}x{w} do not fit the prior's UNet (needs multiples "
                                f"of {d}); resample or pad the volume")


def run_card(config: RunConfig, m: Measurement, prior: Prior | None, device: torch.device,
             extra: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to repeat the run (DESIGN.md, run card)."""
    return {
        "napari_d3ip_version": __version__,
        "config": config.to_dict(),
        "prior": None if prior is None else {"name": prior.name,
                                             "sha256": prior.card.get("sha256"),
                                             "steps": prior.card.get("training", {}).get("steps")},
        "measurement": {"operator": m.operator.params(), "shape": list(m.y.shape),
                        "simulation": m.simulation, "source": m.source,
                        "spacing": list(m.spacing)},
        "seed": config.seed,
        "device": str(device),
        "machine": describe_machine(),
        "bf16_used": resolve_bf16(config.bf16, device, warn=False),
        **extra,
    }


def reconstruct(measurement: Measurement, config: RunConfig,
                prior: Prior | None = None, *,
                should_stop: Callable[[], bool] | None = None) -> Generator[Step, None, Result]:
    """Reconstruct a volume: yields a Step per diffusion step, returns the Result.

    Closing the generator cancels between two steps. `should_stop` (optional) is also asked
    between the network batches and around each adaptation of a step; when it says True the
    generator raises `RunCancelled` at once instead of finishing the step (a window closing
    must not wait for a long step).
    """
    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise RunCancelled("cancelled during a step")

    cfg = config.validate()
    check_finite(measurement)
    device = resolve_device(cfg.device)
    use_bf16 = resolve_bf16(cfg.bf16, device)
    m = measurement.to(device)
    t0 = time.perf_counter()
    n = m.n_slices
    ref = m.reference
    if cfg.solver != "admm-tv":  # a bad prior file is reported before any compute
        prior = prior if prior is not None else load_prior(cfg.prior, device)
    op_norm2, reg_scale = _operator_scales(m, device)

    if cfg.solver == "admm-tv":
        return (yield from _reconstruct_tv(m, cfg, device, op_norm2, reg_scale, t0))

    assert prior is not None
    prior.to(device)
    _check(m, prior)
    scale = prior_scale(m, prior)
    if "warning" in scale:
        import warnings

        warnings.warn(scale["warning"], PriorScaleWarning, stacklevel=2)
    from .adapters import build_adapter

    sched = prior.schedule
    start = None if cfg.init == "pure-noise" else cfg.t_start
    grid = sched.time_grid(cfg.nfe, t_start=start)
    estimator = build_estimator(cfg, op_norm2, reg_scale)
    estimator.reset(n)
    adapter = build_adapter(cfg, prior, estimator, m.operator, m.y, grid)
    g = torch.Generator().manual_seed(int(cfg.seed))
    x = initial_state(_pinv(m, cfg.batch_slices), cfg.init, sched.alpha_bar(grid[0]), g)
    batches = _batches(n, cfg.batch_slices)
    sample_seconds = 0.0
    x0y = x

    for i, t in enumerate(grid):
        ab = sched.alpha_bar(t)
        ab_next = sched.alpha_bar(grid[i + 1]) if i + 1 < len(grid) else 1.0
        adapt_loss = None
        phase = "sampling"
        check_stop()
        if adapter.active(t, i):
            phase = "adapting"
            adapt_loss = adapter.adapt(x, t, i)
            check_stop()
        ts = time.perf_counter()
        eps = torch.empty_like(x)
        x0y = torch.empty_like(x)
        for idx in batches:
            check_stop()
            for sub, net in adapter.groups(idx):
                xs = x[sub]
                if estimator.needs_xt_grad:
                    with torch.enable_grad():
                        xs = xs.detach().requires_grad_(True)
                        e = net(xs, t)
                        x0 = tweedie(xs, e, ab)
                        out = estimator.guided(x0, xs, m.y[sub], m.operator.subset(sub), ab)
                    eps[sub] = e.detach()
                    x0y[sub] = out
                    continue
                with torch.no_grad():
                    if use_bf16:
                        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                            e = net(xs, t).float()
                    else:
                        e = net(xs, t)
                    eps[sub] = e
                    x0y[sub] = tweedie(xs, e, ab)
        if not estimator.needs_xt_grad:
            with torch.no_grad():
                if estimator.whole_volume:
                    ctx = DCContext(list(range(n)), cfg.cg_steps, cfg.admm_iters)
                    x0y = estimator(x0y, m.y, m.operator, ctx)
                else:
                    for idx in batches:
                        ctx = DCContext(idx, cfg.cg_steps, cfg.admm_iters)
                        x0y[idx] = estimator(x0y[idx], m.y[idx], m.operator.subset(idx), ctx)
        z = torch.randn(x.shape, generator=g).to(device) if cfg.eta > 0 else None
        x = dds_step(x0y, eps, ab_next, cfg.eta, z)
        sample_seconds += time.perf_counter() - ts
        est = x0y.detach()[:, 0].float().cpu().numpy()
        elapsed = time.perf_counter() - t0
        yield Step(index=i, t=t, total=len(grid), phase=phase, estimate=est,
                   loss=_volume_loss(m, x0y, cfg.batch_slices), elapsed=elapsed,
                   eta=elapsed / (i + 1) * (len(grid) - i - 1),
                   psnr=mean_psnr(np.clip(est, 0, 1), ref) if ref is not None else None,
                   adapt_loss=adapt_loss)

    volume = x0y.detach()[:, 0].clamp(0, 1).float().cpu().numpy()
    timings = {"total_seconds": round(time.perf_counter() - t0, 3),
               "sampling_seconds": round(sample_seconds, 3),
               "adapt_seconds": round(adapter.seconds, 3)}
    card = run_card(cfg, m, prior, device, {"timings": timings, "adaptation": adapter.card(),
                                            "prior_scale": scale,
                                            "operator_norm2": op_norm2, "reg_scale": reg_scale,
                                            "nfe_run": len(grid)})
    return _finish(volume, card, ref)


def _reconstruct_tv(m: Measurement, cfg: RunConfig, device: torch.device, op_norm2: float,
                    reg_scale: float, t0: float) -> Generator[Step, None, Result]:
    x = _pinv(m, cfg.batch_slices)
    ref = m.reference
    with torch.no_grad():
        iterates = admm_tv(m.operator, m.y, x, cfg.tv_lambda, cfg.admm_rho, cfg.tv_iters,
                           cfg.cg_steps, reg_scale)
        for i, x in enumerate(iterates):  # noqa: B020 (x is the running iterate)
            est = x[:, 0].float().cpu().numpy()
            elapsed = time.perf_counter() - t0
            yield Step(index=i, t=0, total=cfg.tv_iters, phase="iterating", estimate=est,
                       loss=_volume_loss(m, x, cfg.batch_slices), elapsed=elapsed,
                       eta=elapsed / (i + 1) * (cfg.tv_iters - i - 1),
                       psnr=mean_psnr(np.clip(est, 0, 1), ref) if ref is not None else None)
    volume = x[:, 0].clamp(0, 1).float().cpu().numpy()
    card = run_card(cfg, m, None, device, {
        "timings": {"total_seconds": round(time.perf_counter() - t0, 3)},
        "adaptation": {"adapter": "none"}, "operator_norm2": op_norm2, "reg_scale": reg_scale})
    return _finish(volume, card, ref)


def _finish(volume: np.ndarray, card: dict, ref: np.ndarray | None) -> Result:
    bad = nonfinite_slices(volume)
    if bad:
        import warnings

        card["nonfinite_slices"] = bad
        warnings.warn(f"the reconstruction holds NaN/inf in {len(bad)} slice(s) "
                      f"({', '.join(map(str, bad[:8]))}): the solver diverged there; its "
                      "metrics are NaN", RuntimeWarning, stacklevel=3)
    metrics = evaluate(volume, ref) if ref is not None else None
    if metrics is not None:
        card["metrics"] = {k: v for k, v in metrics.items() if k != "per_slice"}
    return Result(volume=volume, card=card, metrics=metrics)


def nonfinite_slices(volume: np.ndarray) -> list[int]:
    """Indices of the slices of an (N, H, W) volume that hold NaN or inf."""
    v = np.asarray(volume)
    return np.flatnonzero(~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)).tolist()


def run(measurement: Measurement, config: RunConfig, prior: Prior | None = None,
        on_step: Callable[[Step], None] | None = None) -> Result:
    """Run `reconstruct` to the end (for scripts); `on_step` sees every Step."""
    gen = reconstruct(measurement, config, prior)
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)


def save_result(result: Result, path: str | Path, affine: np.ndarray | None = None,
                intensity: tuple[float, float] = (0.0, 1.0),
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write the volume as NIfTI (file intensities, the input's affine) and the run card JSON.

    Both files are written completely under temporary names first and then renamed into place
    (a full disk or Ctrl-C leaves the old files intact). A `.json` beside the output that is
    not a napari-d3ip run card (a BIDS sidecar, say) is never replaced, even with `overwrite`.
    A volume with NaN/inf (a diverged run) is refused: nothing is written.
    """
    from .io.files import atomic_path, atomic_write_text
    from .io.volumes import write_volume

    path = Path(path)
    card_path = run_card_path(path)
    check_card_path(card_path)
    if not overwrite:
        for p in (path, card_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; choose another name or allow overwriting "
                                      "(--force on the command line)")
    bad = nonfinite_slices(result.volume)
    if bad:
        raise PipelineError(f"the result holds NaN/inf in {len(bad)} slice(s) "
                            f"({', '.join(map(str, bad[:8]))}): the reconstruction diverged "
                            "there; nothing written (try --gamma, fewer --cg-steps or another "
                            "solver)")
    lo, hi = intensity
    data = (lo + result.volume.astype(np.float32) * (hi - lo)).astype(np.float32)
    card = dict(result.card)
    card["output"] = str(path)
    text = json.dumps(card, indent=2, default=json_default, allow_nan=True) + "\n"
    aff = np.eye(4) if affine is None else affine
    if path.name.lower().endswith(".mhd"):  # header + data file: write_volume moves both
        write_volume(path, data, affine=aff, overwrite=True)
        atomic_write_text(card_path, text)
        return path, card_path
    with atomic_path(path) as tmp:  # the volume is renamed into place only once both exist
        write_volume(tmp, data, affine=aff, overwrite=True)
        atomic_write_text(card_path, text)
    return path, card_path


def is_run_card(path: str | Path) -> bool:
    """True when `path` is a JSON run card napari-d3ip wrote (it names the package version)."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > 64 << 20:
            return False
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "napari_d3ip_version" in data


def check_card_path(card_path: str | Path) -> None:
    """Refuse a run card name taken by a file napari-d3ip did not write."""
    card_path = Path(card_path)
    if card_path.exists() and not is_run_card(card_path):
        raise FileExistsError(
            f"{card_path} exists and is not a napari-d3ip run card (a BIDS sidecar or another "
            "tool's file?); it is never replaced: choose another output name")


def run_card_path(path: str | Path) -> Path:
    path = Path(path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return path.with_name(stem + ".json")


def json_default(o):
    """JSON for numpy scalars/arrays (run cards, benchmark stores); str() for the rest."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
