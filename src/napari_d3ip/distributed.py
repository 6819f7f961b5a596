"""One volume across several processes (GPUs or CPU processes) with torch.distributed.

`torchrun --nproc-per-node N -m napari_d3ip.cli reconstruct ...` (or `d3ip reconstruct
--distributed N`, which launches that) runs `pipeline.reconstruct` on N ranks; a Python caller
initialises a process group itself and calls `reconstruct(..., group=...)` on every rank.

What each rank does (the result equals the single-process one with the same seed, to float
rounding):
- it holds a contiguous slab of slices (`slab_bounds`: sizes differ by at most one) and samples
  them; every rank keeps the whole measurement (adaptation reads any slice's data) and draws
  the whole volume's noise from the run's seeded generator, keeping its slab's part;
- D3IP-base/mbir/meta (the shared set): the K adaptation slices are drawn volume-wide from the
  same seeded generator on every rank; each rank runs the network on the ones it holds, the
  K x̂0 are summed across ranks (`Slab.assemble`), the data consistency and the loss of the K
  slices are computed alike on every rank, and the LoRA gradients (each rank's share of the one
  loss) are summed across ranks before the identical AdamW step: every rank holds the same φ;
- DiffusionMBIR's z-coupling: D_z and D_zᵀ trade one boundary slice with the neighbouring
  ranks, the coupled CG's inner products are summed over the volume (`SlabCoupling`);
- per-slice variants (SCD, DDIP, the meta fine-tuning) adapt the slices each rank holds;
- every step's estimate and the final volume are gathered to every rank; rank 0 writes the
  result and its one run card (`io.results.save_result` writes nothing on the other ranks);
- cancelling: `should_stop` is asked at the step boundaries and its answer OR-ed across ranks,
  closing the generator on one rank tells the others at their next boundary: every rank stops.

Backends: NCCL for CUDA tensors, gloo for CPU ones (`init_from_env` registers both when CUDA
is present). Collectives run on the run's device; their wall time is recorded
(`Slab.comm_seconds`, the run card's `timings.communication_seconds`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch

from .errors import D3IPError
from .solvers.base import ZCoupling
from .solvers.finite_diff import dz as _dz_local

try:
    import torch.distributed as dist
except ImportError:  # pragma: no cover - torch without distributed
    dist = None  # type: ignore[assignment]


class DistributedError(D3IPError):
    """The run cannot be split across these ranks; the message says why."""


def slab_bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) slabs of n slices over `world` ranks, sizes differing by <= 1."""
    if world > n:
        raise DistributedError(f"{world} ranks for {n} slice(s): every rank needs at least one "
                               f"slice; run on at most {n} processes")
    base, extra = divmod(n, world)
    out, lo = [], 0
    for r in range(world):
        hi = lo + base + (1 if r < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 outside it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_initialized() -> bool:
    return dist is not None and dist.is_available() and dist.is_initialized()


def init_from_env(timeout_s: float = 1800.0) -> bool:
    """Initialise the default process group from torchrun's environment (RANK, WORLD_SIZE,
    MASTER_ADDR/PORT, LOCAL_RANK); gloo for CPU tensors, NCCL for CUDA ones when a GPU is
    present. Returns True when a group with more than one rank is ready."""
    if env_world_size() <= 1 or dist is None or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return dist.get_world_size() > 1


def run_device(device: torch.device) -> torch.device:
    """The device of this rank: CUDA device LOCAL_RANK when the run is on CUDA."""
    if device.type == "cuda" and device.index is None and is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank() % max(
            torch.cuda.device_count(), 1))))
    return device


def resolve_group(group="auto"):
    """'auto': the default process group when one with more than one rank is initialised;
    None: a single process; else the given group."""
    if group == "auto":
        return dist.group.WORLD if is_initialized() and dist.get_world_size() > 1 else None
    return group


@dataclass
class Slab:
    """The slices [lo, hi) of an n-slice volume this rank holds, and its collectives (all of
    them no-ops in a single process). Every rank must call the collectives in the same order."""

    lo: int
    hi: int
    n: int
    group: object = None
    rank: int = 0
    world: int = 1
    bounds: list[tuple[int, int]] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    comm_seconds: float = 0.0

    @classmethod
    def single(cls, n: int, device: torch.device | None = None) -> Slab:
        return cls(0, n, n, bounds=[(0, n)], device=device or torch.device("cpu"))

    @classmethod
    def of_group(cls, n: int, group, device: torch.device) -> Slab:
        if group is None:
            return cls.single(n, device)
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        bounds = slab_bounds(n, world)
        lo, hi = bounds[rank]
        return cls(lo, hi, n, group, rank, world, bounds, device)

    # -- where ------------------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def indices(self) -> list[int]:
        return list(range(self.lo, self.hi))

    @property
    def size(self) -> int:
        return self.hi - self.lo

    def held(self, slices: list[int]) -> tuple[list[int], list[int]]:
        """(positions in `slices`, local indices) of the slices of `slices` held here."""
        pos = [j for j, s in enumerate(slices) if self.lo <= s < self.hi]
        return pos, [slices[j] - self.lo for j in pos]

    def card(self) -> dict:
        return {"world_size": self.world, "backend": (dist.get_backend(self.group)
                                                     if self.distributed else None),
                "slabs": [list(b) for b in self.bounds]}

    # -- collectives ------------------------------------------------------------------------
    def _timed(self, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.comm_seconds += time.perf_counter() - t0
        return out

    def all_reduce_(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        if self.distributed:
            o = dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM
            self._timed(dist.all_reduce, t, op=o, group=self.group)
        return t

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on one of them."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.all_reduce_(t, "max").item() > 0)

    def sum(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        return float(self.all_reduce_(t).item())

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The whole (n, ...) volume from every rank's (size, ...) slab, on every rank."""
        if not self.distributed:
            return x
        rows = max(hi - lo for lo, hi in self.bounds)
        pad = x.new_zeros((rows, *x.shape[1:]))
        pad[: x.shape[0]] = x
        parts = [torch.empty_like(pad) for _ in range(self.world)]
        self._timed(dist.all_gather, parts, pad.contiguous(), group=self.group)
        return torch.cat([p[: hi - lo] for p, (lo, hi) in zip(parts, self.bounds)])

    def assemble(self, rows: torch.Tensor, slices: list[int], like: torch.Tensor) -> torch.Tensor:
        """The tensor of all `slices` (volume indices) from each rank's `rows` (the ones it
        holds, in order), on every rank. Differentiable: the gradient of each rank's rows is
        the gradient of the (identical, replicated) computation that follows."""
        pos, _ = self.held(slices)
        full = like.new_zeros((len(slices), *like.shape[1:]))
        if pos:
            full = full.index_put((torch.tensor(pos, device=full.device),), rows)
        elif torch.is_grad_enabled():
            full.requires_grad_(True)
        if not self.distributed:
            return full
        return _SumReplicated.apply(full, self)

    def sum_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Sum the gradients of `params` over the ranks (each holds its share of one loss); a
        parameter without a gradient on every rank keeps None (AdamW then skips it, as in a
        single process)."""
        if not self.distributed or not params:
            return
        dev = params[0].device
        has = torch.tensor([0.0 if p.grad is None else 1.0 for p in params], device=dev)
        self.all_reduce_(has, "max")
        live = [p for p, h in zip(params, has.tolist()) if h > 0]
        if not live:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in live])
        self.all_reduce_(flat)
        k = 0
        for p in live:
            m = p.numel()
            p.grad = flat[k:k + m].view_as(p).clone()
            k += m

    def halo(self, edge: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `edge` (one boundary slice), in rank order."""
        parts = [torch.empty_like(edge) for _ in range(self.world)]
        self._timed(dist.all_gather, parts, edge.contiguous(), group=self.group)
        return parts

    def coupling(self) -> ZCoupling:
        return SlabCoupling(self) if self.distributed else ZCoupling()


class _SumReplicated(torch.autograd.Function):
    """Forward: the sum over ranks. Backward: the incoming gradient unchanged, because what
    follows is computed identically on every rank (the loss is one loss, not one per rank)."""

    @staticmethod
    def forward(ctx, full: torch.Tensor, slab: Slab) -> torch.Tensor:
        out = full.detach().clone()
        slab.all_reduce_(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class SlabCoupling(ZCoupling):
    """D_z and D_zᵀ of a slab: one boundary slice traded with the neighbouring ranks; CG inner
    products summed over the volume. Equal to the single-process maps on the whole volume."""

    def __init__(self, slab: Slab):
        self.slab = slab

    def dz(self, x: torch.Tensor) -> torch.Tensor:
        s = self.slab
        firsts = s.halo(x[:1])
        if s.rank == s.world - 1:  # the volume's last slice: no difference (Neumann)
            return _dz_local(x)
        ext = torch.cat([x, firsts[s.rank + 1]])
        return ext[1:] - ext[:-1]

    def dz_t(self, d: torch.Tensor) -> torch.Tensor:
        s = self.slab
        lasts = s.halo(d[-1:])
        if s.rank == s.world - 1:  # D_zᵀ never reads the volume's last difference
            d = torch.cat([d[:-1], torch.zeros_like(d[-1:])])
        prev = lasts[s.rank - 1] if s.rank > 0 else torch.zeros_like(d[:1])
        return torch.cat([prev, d[:-1]]) - d

    def total(self, partial: torch.Tensor) -> torch.Tensor:
        return self.slab.all_reduce_(partial.clone())

    def rows(self, held: torch.Tensor, slices: list[int]) -> torch.Tensor:
        _, local = self.slab.held(slices)
        return self.slab.assemble(held[local] if local else held[:0], slices, held).detach()


# -- the launcher -----------------------------------------------------------------------------
def add_distributed_option(parser) -> None:
    """`--distributed N`: run on N processes (torchrun; one per GPU on CUDA, gloo on CPU)."""
    parser.add_argument("--distributed", type=int, default=0, metavar="N",
                        help="split the slices across N processes with torch.distributed "
                        "(launches torchrun --standalone --nproc-per-node N; on CUDA one GPU per "
                        "process, on CPU gloo; give each CPU process threads with "
                        "OMP_NUM_THREADS); 0 = one process (default: 0)")


def launch(n: int, argv: list[str]) -> int:
    """Run `d3ip <argv>` (without --distributed) on n processes through torchrun."""
    cleaned, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--distributed":
            skip = True
            continue
        if a.startswith("--distributed="):
            continue
        cleaned.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={n}", "-m", "napari_d3ip.cli", *cleaned]
    return subprocess.call(cmd)


def maybe_launch(args, argv: list[str]) -> int | None:
    """The exit code of a torchrun launch when `--distributed N` (N > 1) was given outside
    torchrun; None when this process should run the command itself."""
    n = int(getattr(args, "distributed", 0) or 0)
    if n > 1 and env_world_size() <= 1:
        return launch(n, argv)
    return None
