"""Prior adaptation during sampling: none, SCD, DDIP, D3IP base / mbir / meta.

One interface, run inside the one sampling loop (pipeline.py): before the sampling step at t,
`adapt(x_t, t)` runs I AdamW iterations on the measurement loss mean|A x̂0|y - y|² of the
chosen slices (gradient through the network and the estimator); then `groups(batch)` hands
the pipeline the network with the right LoRA parameters for each group of slices.

| adapter   | slices per iteration     | parameters                         |
|-----------|--------------------------|------------------------------------|
| none      | -                        | the prior                          |
| scd       | the slice, 1 CG step     | one set per slice, from zero       |
| ddip      | the slice, M CG steps    | one set per slice, from zero       |
| d3ip-base | K random distinct slices | one set for the volume             |
| d3ip-mbir | K contiguous slices      | one set; DiffusionMBIR estimator   |
| d3ip-meta | K random (Reptile)       | meta set + per-slice fine-tuning   |

AdamW is re-created at every diffusion step (as the reference does) unless `keep_optimizer`
(D3IP-base/mbir only: one shared set, so one optimiser state can follow it across steps);
adaptation happens only inside the window [window_lo, window_hi]. `adapt_params = "full"`
fine-tunes every weight of a copy of the network instead of LoRA (D3IP-base/mbir only), and
`lora_targets = "all"` also puts LoRA on the input/output convolutions and the time MLP.

The adapter sees the whole measurement and the slab of slices this process holds (`Slab`:
all of them in a single process; see distributed.py): x_t is the slab's, slice indices are the
volume's. The shared set's slices are drawn volume-wide; each process runs the network on
those it holds and the gradients are summed across processes, so every process keeps the
same φ. The network is applied through `apply_net(net, x, t)` (the pipeline's one call site).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..core.prior import Prior
from ..core.schedule import tweedie
from ..distributed import Slab
from ..errors import D3IPError
from ..operators.base import Measurement
from ..solvers.base import DCContext, Estimator
from .lora import LoraState, add_lora, load_lora_state, lora_parameters, lora_state, state_bytes


class AdapterError(D3IPError):
    """An adapter cannot run with these settings; the message says why and what to change."""


class Adapter:
    """`none`: the prior as trained. Base class of the adaptive variants."""

    name = "none"

    def __init__(self, prior: Prior, config, estimator: Estimator, measurement: Measurement,
                 grid: list[int], slab: Slab | None = None,
                 apply_net: Callable[[nn.Module, torch.Tensor, int], torch.Tensor] | None = None):
        self.prior = prior
        self.cfg = config
        self.estimator = estimator
        self.m = measurement
        self.n = measurement.n_slices
        self.slab = Slab.single(self.n) if slab is None else slab
        self.apply_net = apply_net if apply_net is not None else (lambda net, x, t: net(x, t))
        self.grid = grid
        self.model: nn.Module = prior.net
        self.seconds = 0.0
        self.steps_adapted = 0
        self.rng = torch.Generator().manual_seed(int(config.seed) + 7919)
        self.window_steps = [i for i, t in enumerate(grid) if self.in_window(t, i)]

    # -- when -------------------------------------------------------------------------
    def in_window(self, t: int, index: int) -> bool:
        c = self.cfg
        return c.window_lo <= t <= c.window_hi and index % c.adapt_every == 0

    def active(self, t: int, index: int) -> bool:
        return False

    # -- what -------------------------------------------------------------------------
    def adapt(self, x_t: torch.Tensor, t: int, index: int) -> float | None:
        """Adapt before the sampling step at t; returns the last adaptation loss."""
        return None

    def groups(self, idx: list[int]) -> Iterator[tuple[list[int], nn.Module]]:
        """Sub-batches of `idx` (indices in the slab) with the network (and parameters) to
        use for them."""
        yield idx, self.model

    def card(self) -> dict:
        return {"adapter": self.name}

    # -- shared machinery -------------------------------------------------------------
    def trainable(self) -> list[nn.Parameter]:
        return lora_parameters(self.model)

    def _optimizer(self, keep: bool) -> torch.optim.Optimizer:
        if keep and getattr(self, "_opt", None) is not None:
            return self._opt
        self._opt = torch.optim.AdamW(self.trainable(), lr=self.cfg.lr)
        return self._opt

    def _tweedie(self, x_t: torch.Tensor, s: list[int], t: int, ab: float,
                 shared: bool) -> torch.Tensor:
        """x̂0 of the volume's slices `s` with a graph through the network. `shared`: `s` was
        drawn volume-wide and every process needs all of it (each runs the slices it holds);
        else `s` is held here."""
        if not shared or not self.slab.distributed:
            xs = x_t[[i - self.slab.lo for i in s]].detach()
            return tweedie(xs, self.apply_net(self.model, xs, t), ab)
        _, local = self.slab.held(s)
        xs = x_t[local].detach()
        rows = tweedie(xs, self.apply_net(self.model, xs, t), ab) if local else xs
        return self.slab.assemble(rows, s, x_t)

    def _iterate(self, x_t: torch.Tensor, t: int, choose, iters: int, cg_steps: int,
                 admm_iters: int, keep_optimizer: bool = False, shared: bool = True) -> float:
        """`iters` AdamW steps on the measurement loss of the slices `choose()` returns
        (ALGORITHM.md 4: L = mean |A DC(Tweedie(x_t[S]; θ+φ), y[S]) − y[S]|²). `shared`: one
        set for the volume, its gradient summed over the processes (they all draw the same S)."""
        ab = self.prior.schedule.alpha_bar(t)
        opt = self._optimizer(keep_optimizer)
        self.loss_trace: list[float] = []
        loss_value = float("nan")
        with torch.enable_grad():
            for _ in range(iters):
                s = list(choose())
                sub = self.m.subset(s)
                x0 = self._tweedie(x_t, s, t, ab, shared)
                ctx = DCContext(slices=s, cg_steps=cg_steps, admm_iters=admm_iters,
                                adapting=True)
                loss = sub.residual_loss(self.estimator.correct(x0, sub, ctx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if shared:
                    self.slab.sum_grads(self.trainable())
                opt.step()
                loss_value = float(loss.detach())
                self.loss_trace.append(loss_value)
        return loss_value


class _LoraAdapter(Adapter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        full = getattr(self.cfg, "adapt_params", "lora") == "full"
        if full and self.name not in ("d3ip-base", "d3ip-mbir"):
            raise AdapterError(f"adapt_params 'full' is for d3ip-base/d3ip-mbir (one shared set); "
                               f"{self.name} keeps a set per slice: use 'lora'")
        self.full = full
        if full:
            self.model = copy.deepcopy(self.prior.net).requires_grad_(True).eval()
        else:
            with torch.random.fork_rng(devices=[]):  # LoRA A's random init: seeded, RNG untouched
                torch.manual_seed(int(self.cfg.seed))
                self.model = add_lora(self.prior.net, rank=self.cfg.lora_rank,
                                      placement=getattr(self.cfg, "lora_targets", "blocks"))
            self.model = self.model.to(self.prior.device)
        self.initial: LoraState = ({n: p.detach().clone() for n, p in self.model.named_parameters()}
                                   if full else lora_state(self.model))

    def active(self, t: int, index: int) -> bool:
        return self.cfg.adapt_iters > 0 and self.in_window(t, index)

    def adapt(self, x_t: torch.Tensor, t: int, index: int) -> float | None:
        t0 = time.perf_counter()
        loss = self._adapt(x_t, t, index)
        self.seconds += time.perf_counter() - t0
        self.steps_adapted += 1
        return loss

    def _adapt(self, x_t: torch.Tensor, t: int, index: int) -> float:
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) if self.full else lora_parameters(self.model)

    def sets_kept(self) -> int:
        return 1

    def card(self) -> dict:
        c = self.cfg
        one = state_bytes(self.initial)
        return {
            "adapter": self.name, "k_slices": self.k, "adapt_iters": c.adapt_iters, "lr": c.lr,
            "window": [c.window_lo, c.window_hi], "adapt_every": c.adapt_every,
            "adapt_params": "full" if self.full else "lora",
            "lora_targets": getattr(c, "lora_targets", "blocks"),
            "keep_optimizer": bool(getattr(c, "keep_optimizer", False)),
            "lora_rank": c.lora_rank, "lora_parameters": sum(v.numel() for v in self.initial.values()),
            "adapted_parameter_sets": self.sets_kept(),
            "adapted_parameter_bytes": one * self.sets_kept(),
            "adapt_seconds": round(self.seconds, 3), "steps_adapted": self.steps_adapted,
        }

    @staticmethod
    def slices_per_iteration(cfg, n: int) -> int:
        """K: slices that go through forward + backward together in one adaptation
        iteration (the cost model reads it here: `adapted_slices`)."""
        return 1

    @property
    def k(self) -> int:
        return self.slices_per_iteration(self.cfg, self.n)


class _PerSliceAdapter(_LoraAdapter):
    """SCD / DDIP: every slice owns its LoRA parameters, adapted on that slice alone (each
    process adapts the slices it holds; the reported loss is the volume's mean)."""

    adapt_cg_steps: int | None = None  # None: the sampling estimator's count

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.states: dict[int, LoraState] = {n: dict(self.initial) for n in self.slab.indices}

    def sets_kept(self) -> int:
        return self.n

    def _adapt(self, x_t: torch.Tensor, t: int, index: int) -> float:
        cg = self.adapt_cg_steps if self.adapt_cg_steps is not None else self.cfg.cg_steps
        losses = []
        for n in self.slab.indices:
            load_lora_state(self.model, self.states[n])
            losses.append(self._iterate(x_t, t, lambda n=n: [n], self.cfg.adapt_iters, cg, 1,
                                        shared=False))
            self.states[n] = lora_state(self.model)
        return self.slab.sum(sum(losses)) / self.n

    def groups(self, idx: list[int]) -> Iterator[tuple[list[int], nn.Module]]:
        for i in idx:
            load_lora_state(self.model, self.states[self.slab.lo + i])
            yield [i], self.model


class SCD(_PerSliceAdapter):
    """Steerable conditional diffusion: per-slice LoRA adapted with a 1-CG-step DC."""

    name = "scd"
    adapt_cg_steps = 1


class DDIP(_PerSliceAdapter):
    """Deep diffusion image prior: per-slice LoRA, the same DC as sampling."""

    name = "ddip"


class D3IPBase(_LoraAdapter):
    """One LoRA set for the volume, adapted on K random distinct slices per iteration."""

    name = "d3ip-base"

    @staticmethod
    def slices_per_iteration(cfg, n: int) -> int:
        return min(cfg.k_slices, n)

    def choose(self) -> list[int]:
        return sorted(torch.randperm(self.n, generator=self.rng)[: self.k].tolist())

    def _adapt(self, x_t: torch.Tensor, t: int, index: int) -> float:
        return self._iterate(x_t, t, self.choose, self.cfg.adapt_iters, self.cfg.cg_steps,
                             self.cfg.admm_iters, keep_optimizer=self.keeps_optimizer)

    @property
    def keeps_optimizer(self) -> bool:
        return bool(getattr(self.cfg, "keep_optimizer", False)) and self.name in ("d3ip-base", "d3ip-mbir")


class D3IPMBIR(D3IPBase):
    """D3IP with the DiffusionMBIR estimator on K contiguous slices (one ADMM step inside)."""

    name = "d3ip-mbir"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.n < 2:
            raise AdapterError("d3ip-mbir needs at least 2 slices (it couples neighbours along z); "
                               "use d3ip-base or ddip for a single slice")
        if not self.estimator.whole_volume:
            raise AdapterError("d3ip-mbir needs the DiffusionMBIR estimator (solver 'mbir')")

    @staticmethod
    def slices_per_iteration(cfg, n: int) -> int:
        return max(2, min(cfg.k_slices, n))  # couples neighbours: at least two

    def choose(self) -> list[int]:
        start = int(torch.randint(0, self.n - self.k + 1, (1,), generator=self.rng))
        return list(range(start, start + self.k))

    def _adapt(self, x_t: torch.Tensor, t: int, index: int) -> float:
        return self._iterate(x_t, t, self.choose, self.cfg.adapt_iters, self.cfg.cg_steps, 1,
                             keep_optimizer=self.keeps_optimizer)


class D3IPMeta(D3IPBase):
    """Reptile meta-learning of the shared set, then per-slice DDIP fine-tuning from it.

    φ ← φ + ε_k (φ_K - φ), φ_K the result of I iterations on K random slices; ε_k decays
    linearly from 1 over the adapted steps (ε = 1 throughout is exactly D3IP-base). Each slice
    is then sampled with its own copy fine-tuned from φ for `meta_finetune_iters` iterations.
    """

    name = "d3ip-meta"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.meta: LoraState = dict(self.initial)
        ft = self.cfg.meta_finetune_iters
        self.finetune_iters = self.cfg.adapt_iters if ft is None else ft
        self.states: dict[int, LoraState] | None = None

    def sets_kept(self) -> int:
        return 1 + (self.n if self.finetune_iters > 0 else 0)

    def epsilon(self, index: int) -> float:
        if len(self.window_steps) <= 1:
            return 1.0
        k = self.window_steps.index(index) if index in self.window_steps else 0
        return 1.0 - k / len(self.window_steps)

    def _adapt(self, x_t: torch.Tensor, t: int, index: int) -> float:
        load_lora_state(self.model, self.meta)
        loss = super()._adapt(x_t, t, index)
        phi_k = lora_state(self.model)
        eps = self.epsilon(index)
        if eps == 1.0:  # exactly D3IP-base (no rounding from φ + (φ_K - φ))
            self.meta = phi_k
        else:
            self.meta = {n: self.meta[n] + eps * (phi_k[n] - self.meta[n]) for n in self.meta}
        load_lora_state(self.model, self.meta)
        if self.finetune_iters > 0:
            self.states = {}
            for n in self.slab.indices:
                load_lora_state(self.model, self.meta)
                self._iterate(x_t, t, lambda n=n: [n], self.finetune_iters, self.cfg.cg_steps, 1,
                              shared=False)
                self.states[n] = lora_state(self.model)
        return loss

    def groups(self, idx: list[int]) -> Iterator[tuple[list[int], nn.Module]]:
        if self.states is None:
            load_lora_state(self.model, self.meta)
            yield idx, self.model
            return
        for i in idx:
            load_lora_state(self.model, self.states[self.slab.lo + i])
            yield [i], self.model


ADAPTERS = {cls.name: cls for cls in (Adapter, SCD, DDIP, D3IPBase, D3IPMBIR, D3IPMeta)}


def adapted_slices(config, n: int) -> int:
    """K of `config.adapter` on a volume of n slices (0: no adaptation)."""
    cls = ADAPTERS.get(config.adapter, Adapter)
    return cls.slices_per_iteration(config, n) if cls is not Adapter else 0


def build_adapter(config, prior: Prior, estimator: Estimator, measurement: Measurement,
                  grid: list[int], **kwargs) -> Adapter:
    """The adapter `config.adapter` names; kwargs: slab, apply_net."""
    if config.adapter not in ADAPTERS:
        raise AdapterError(f"unknown adapter {config.adapter!r}; choose from {sorted(ADAPTERS)}")
    return ADAPTERS[config.adapter](prior, config, estimator, measurement, grid, **kwargs)
