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
seeded generator per run, so a seed gives the same result whatever the batch size (and the
number of processes: see distributed.py for a volume split across ranks).

The loop does no bookkeeping of its own: the Measurement batches itself and knows A†y, its
operator norms and its loss; every estimator (DPS included) is called through `predict` and
`correct_volume`; the network is applied in one place, `apply_net`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import RunConfig, check_preset_kind
from .core.precision import describe_machine, resolve_bf16
from .core.prior import Prior, apply_net, load_prior, resolve_device, resolve_prior_name
from .core.schedule import dds_step
from .cost import check_fits
from .distributed import Slab, resolve_group, run_device
from .errors import D3IPError
from .events import Result, Step
from .io.results import nonfinite_slices
from .methods import get_method
from .metrics import evaluate, mean_psnr
from .operators.base import Measurement
from .operators.kinds import kind_attr
from .solvers import build_estimator
from .solvers.admm_tv import admm_tv
from .solvers.base import Estimator


class PipelineError(D3IPError):
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


def initial_state(pinv: torch.Tensor, kind: str, alpha_bar: float, g: torch.Generator,
                  first: int = 0, total: int | None = None) -> torch.Tensor:
    """x at the first time: A†y + slerp noise across slices, A†y + iid noise, or pure noise.

    `pinv` holds slices first .. first + len - 1 of a `total`-slice volume (a slab of a
    distributed run): the noise is the whole volume's, drawn alike on every process."""
    n = pinv.shape[0]
    total = n if total is None else total
    shape = (1, *pinv.shape[1:])
    full = (total, *pinv.shape[1:])
    if kind == "pure-noise":
        return torch.randn(full, generator=g)[first:first + n].to(pinv.device)
    if kind == "slerp":
        ea, eb = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        noise = torch.cat([slerp(ea, eb, i / max(total - 1, 1)) for i in range(first, first + n)])
    else:
        noise = torch.randn(full, generator=g)[first:first + n]
    return alpha_bar**0.5 * pinv + (1 - alpha_bar) ** 0.5 * noise.to(pinv.device)


def sampling_grid(cfg: RunConfig, sched: Any) -> list[int]:
    """The times the chain visits: the reference grid (cut at t_start for the A†y starts, as
    the paper does), or for a warm start from an estimate (init 'admm-tv') nfe steps from
    t_start exactly down to 0."""
    if cfg.init == "admm-tv":
        return sched.warm_grid(cfg.nfe, cfg.t_start)
    return sched.time_grid(cfg.nfe, t_start=None if cfg.init == "pure-noise" else cfg.t_start)


def start_volume(m: Measurement, ms: Measurement, cfg: RunConfig, slab: Slab,
                 mean_eig: float) -> torch.Tensor:
    """The estimate the chain starts from (before noise): A†y, or for init 'admm-tv' ADMM-TV's
    result (a warm start, CCDF: a good estimate noised to a small t_start needs few steps).
    ADMM-TV couples all slices, so every process computes it on the whole volume and keeps
    its slab."""
    if cfg.init != "admm-tv":
        return ms.pinv_tensor(cfg.batch_slices)
    x = m.pinv_tensor(cfg.batch_slices)
    with torch.no_grad():
        for it in admm_tv(m.operator, m.y, x, cfg.tv_lambda, cfg.admm_rho, cfg.tv_iters,
                          cfg.cg_steps, mean_eig):
            x = it
    return x[slab.lo:slab.hi] if slab.distributed else x


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
        what = kind_attr(getattr(m.operator, "kind", ""), "data_label", "measurement y")
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


class _Stopper:
    """Cancellation: `should_stop` asked at the step boundaries (its answer OR-ed over the
    processes of a distributed run, so every rank stops at the same point) and, in a single
    process, also between the network batches."""

    def __init__(self, should_stop: Callable[[], bool] | None, slab: Slab):
        self.should_stop = should_stop
        self.slab = slab

    def _asked(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def boundary(self) -> None:
        if self.slab.any(self._asked()):
            raise RunCancelled("cancelled during a step")

    def batch(self) -> None:
        if not self.slab.distributed and self._asked():
            raise RunCancelled("cancelled during a step")

    def closed_here(self) -> None:
        """The consumer closed this rank's generator: the other ranks stop at their next
        boundary (this call is the matching collective)."""
        if self.slab.distributed:
            self.slab.any(True)


def _predict(x: torch.Tensor, t: int, ab: float, ms: Measurement, adapter, estimator: Estimator,
             cfg: RunConfig, bf16: bool, stop: _Stopper) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε, x̂0) of every slice of the slab, batch by batch, each group with its parameters."""
    eps, x0 = torch.empty_like(x), torch.empty_like(x)
    for idx, _ in ms.batches(cfg.batch_slices):
        stop.batch()
        for sub, net in adapter.groups(idx):
            eps[sub], x0[sub] = estimator.predict(lambda v, net=net: apply_net(net, v, t, bf16),
                                                  x[sub], ab, ms.subset(sub))
    return eps, x0


def _volume_loss(ms: Measurement, x: torch.Tensor, batch: int, slab: Slab) -> float:
    loss = ms.loss(x, batch)
    return loss if not slab.distributed else slab.sum(loss * ms.n_slices) / slab.n


def reconstruct(measurement: Measurement, config: RunConfig,
                prior: Prior | None = None, *,
                should_stop: Callable[[], bool] | None = None,
                group: Any = "auto") -> Generator[Step, None, Result]:
    """Reconstruct a volume: yields a Step per diffusion step, returns the Result.

    Closing the generator cancels between two steps. `should_stop` (optional) is also asked
    between the network batches and around each adaptation of a step; when it says True the
    generator raises `RunCancelled` at once instead of finishing the step (a window closing
    must not wait for a long step).

    `group`: the torch.distributed process group to split the slices over ('auto': the
    default group when one with more than one rank is initialised; None: this process alone).
    Every rank calls `reconstruct` with the same measurement, config and seed; every rank's
    Steps and Result hold the whole volume (see distributed.py); in a distributed run
    `should_stop` is asked at the step boundaries only.
    """
    from .validation import check_config_object, check_measurement_object

    check_config_object(config)  # a dict or a NumPy y: a clear error, not an AttributeError
    check_measurement_object(measurement)
    cfg = config.validate()
    check_preset_kind(cfg.preset, measurement.operator.kind)
    check_finite(measurement)
    group = resolve_group(group)
    device = run_device(resolve_device(cfg.device)) if group is not None else resolve_device(cfg.device)
    slab = Slab.of_group(measurement.n_slices, group, device)
    run = _Run(cfg, measurement.to(device), device, slab, _Stopper(should_stop, slab),
               resolve_bf16(cfg.bf16, device), time.perf_counter())
    method = get_method(cfg.solver)
    if method.uses_prior:  # a bad prior file is reported before any compute
        run.use_prior(prior)
    check_fits(run.m, cfg, device, run.prior)  # memory: refused before any compute, with what fits
    run.norms = run.m.norms()
    if not method.uses_prior:
        return (yield from _reconstruct_own(run.m, cfg, device, run.t0))
    return (yield from _sample(run))


@dataclass
class _Run:
    """What one diffusion run holds from its start to its run card."""

    cfg: RunConfig
    m: Measurement
    device: torch.device
    slab: Slab
    stop: _Stopper
    bf16: bool
    t0: float
    prior: Prior | None = None
    prior_choice: dict[str, Any] | None = None
    norms: Any = None
    scale: dict[str, Any] = field(default_factory=dict)

    def use_prior(self, prior: Prior | None) -> None:
        """The run's prior: the one given, else `cfg.prior` resolved for the slices' scale."""
        if prior is None:
            name = resolve_prior_name(self.cfg.prior, self.m.image_shape)
            self.prior_choice = {"asked": self.cfg.prior, "used": name}
            prior = load_prior(name, self.device)
        prior.net.tile = self.cfg.tile  # every run sets the network's tiling (core/tiling.py)
        self.prior = prior

    def check_prior(self) -> None:
        """The prior fits the slices (UNet divisor), and a warning if its pixel scale differs."""
        self.prior.to(self.device)
        _check(self.m, self.prior)
        self.scale = prior_scale(self.m, self.prior)
        if "warning" in self.scale:
            import warnings

            warnings.warn(self.scale["warning"], PriorScaleWarning, stacklevel=4)


def _sample(run: _Run) -> Generator[Step, None, Result]:
    """The diffusion loop: adapt (when the adapter says so), predict x̂0, correct it with the
    data, step to the next time; a Step after each."""
    from .adapters import build_adapter

    run.check_prior()
    cfg, m, slab, stop, prior, norms = run.cfg, run.m, run.slab, run.stop, run.prior, run.norms
    sched = prior.schedule
    grid = sampling_grid(cfg, sched)
    ms = m.subset(slab.indices) if slab.distributed else m  # the slices this process samples
    estimator = build_estimator(cfg, norms.norm2, norms.mean_eig)
    estimator.reset(ms.n_slices, slab.coupling())
    adapter = build_adapter(cfg, prior, estimator, m, grid, slab=slab,
                            apply_net=lambda net, v, t: apply_net(net, v, t, run.bf16))
    g = torch.Generator().manual_seed(int(cfg.seed))
    x = initial_state(start_volume(m, ms, cfg, slab, norms.mean_eig), cfg.init,
                      sched.alpha_bar(grid[0]), g, slab.lo, slab.n)
    sample_seconds, x0y = 0.0, x

    for i, t in enumerate(grid):
        ab = sched.alpha_bar(t)
        ab_next = sched.alpha_bar(grid[i + 1]) if i + 1 < len(grid) else 1.0
        phase, adapt_loss = "sampling", None
        stop.boundary()
        if adapter.active(t, i):
            phase, adapt_loss = "adapting", adapter.adapt(x, t, i)
            stop.boundary()
        ts = time.perf_counter()
        eps, x0y = _predict(x, t, ab, ms, adapter, estimator, cfg, run.bf16, stop)
        x0y = estimator.correct_volume(x0y, ms, slab.indices, cfg.batch_slices, cfg.cg_steps,
                                       cfg.admm_iters)
        z = torch.randn((slab.n, *x.shape[1:]), generator=g)[slab.lo:slab.hi].to(run.device) \
            if cfg.eta > 0 else None
        x = dds_step(x0y, eps, ab_next, cfg.eta, z)
        sample_seconds += time.perf_counter() - ts
        try:
            yield _step(run, ms, x0y, i, t, len(grid), phase, adapt_loss)
        except GeneratorExit:
            stop.closed_here()
            raise
    if slab.distributed:  # a rank closed after its last step: every rank stops here
        stop.boundary()
    volume = slab.gather(x0y.detach())[:, 0].clamp(0, 1).float().cpu().numpy()
    return _finish(volume, _sampling_card(run, adapter, sample_seconds, len(grid)), m.reference, m)


def _step(run: _Run, ms: Measurement, x0y: torch.Tensor, i: int, t: int, total: int, phase: str,
          adapt_loss: float | None) -> Step:
    """The Step the front ends show: the whole volume's estimate, its data loss and PSNR."""
    loss = _volume_loss(ms, x0y, run.cfg.batch_slices, run.slab)
    est = run.slab.gather(x0y.detach())[:, 0].float().cpu().numpy()
    elapsed = time.perf_counter() - run.t0
    ref = run.m.reference
    return Step(index=i, t=t, total=total, phase=phase, estimate=est, loss=loss, elapsed=elapsed,
                eta=elapsed / (i + 1) * (total - i - 1),
                psnr=mean_psnr(np.clip(est, 0, 1), ref) if ref is not None else None,
                adapt_loss=adapt_loss)


def _sampling_card(run: _Run, adapter, sample_seconds: float, steps: int) -> dict[str, Any]:
    timings = {"total_seconds": round(time.perf_counter() - run.t0, 3),
               "sampling_seconds": round(sample_seconds, 3),
               "adapt_seconds": round(adapter.seconds, 3)}
    extra: dict[str, Any] = {}
    if run.slab.distributed:
        timings["communication_seconds"] = round(run.slab.comm_seconds, 3)
        extra["distributed"] = run.slab.card()
    return run_card(run.cfg, run.m, run.prior, run.device, {
        "timings": timings, "adaptation": adapter.card(), "prior_scale": run.scale,
        "prior_choice": run.prior_choice, "tile": run.cfg.tile,
        "operator_norm2": run.norms.norm2, "operator_mean_eigenvalue": run.norms.mean_eig,
        "nfe_run": steps, **extra})


def _reconstruct_own(m: Measurement, cfg: RunConfig, device: torch.device,
                     t0: float) -> Generator[Step, None, Result]:
    """A method with its own step generator (methods.py: ADMM-TV), wrapped into a Result."""
    volume, entries = yield from get_method(cfg.solver).steps()(m, cfg, t0)
    card = run_card(cfg, m, None, device, entries)
    return _finish(volume, card, m.reference, m)


def data_residual(m: Measurement, volume: np.ndarray, batch: int = 32) -> float:
    """||A x - y|| / ||y|| of a result (N, H, W): what a run without a reference reports."""
    num = den = 0.0
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(volume, np.float32))[:, None].to(m.y.device)
        for idx, sub in m.batches(batch):
            num += float((sub.operator.forward(x[idx]) - sub.y).abs().pow(2).sum())
            den += float(sub.y.abs().pow(2).sum())
    return float(np.sqrt(num / den)) if den > 0 else float("nan")


def _centre_crop(a: np.ndarray, crop: list[int]) -> np.ndarray:
    h, w = a.shape[-2:]
    r0, c0 = h // 2 - crop[0] // 2, w // 2 - crop[1] // 2
    return a[..., r0:r0 + crop[0], c0:c0 + crop[1]]


def _finish(volume: np.ndarray, card: dict, ref: np.ndarray | None,
            m: Measurement | None = None) -> Result:
    bad = nonfinite_slices(volume)
    if bad:
        import warnings

        card["nonfinite_slices"] = bad
        warnings.warn(f"the reconstruction holds NaN/inf in {len(bad)} slice(s) "
                      f"({', '.join(map(str, bad[:8]))}): the solver diverged there; its "
                      "metrics are NaN", RuntimeWarning, stacklevel=3)
    crop = m.simulation.get("reference_crop") if m is not None else None
    if ref is not None and crop:  # a file's reference covers a centre crop (fastMRI's)
        card["metrics_crop"] = list(crop)
        metrics = evaluate(_centre_crop(volume, crop), _centre_crop(np.asarray(ref), crop))
    else:
        metrics = evaluate(volume, ref) if ref is not None else None
    if metrics is not None:
        card["metrics"] = {k: v for k, v in metrics.items() if k != "per_slice"}
    elif m is not None and m.n_slices == volume.shape[0] and not bad:
        card["data_residual"] = data_residual(m, volume)
        from .noise_level import measurement_noise  # what the residual is compared with

        card["noise_estimate"] = measurement_noise(m)
    return Result(volume=volume, card=card, metrics=metrics)


def run(measurement: Measurement, config: RunConfig, prior: Prior | None = None,
        on_step: Callable[[Step], None] | None = None, *, group: Any = "auto") -> Result:
    """Run `reconstruct` to the end (for scripts); `on_step` sees every Step."""
    gen = reconstruct(measurement, config, prior, group=group)
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)
