"""torch.distributed: 2 gloo processes reproduce the single-process result and stop together.

One spawn of two CPU processes runs every distributed case (the start-up, ~5 s, dominates);
the parent compares with single-process runs of the same seed. Every wait has a timeout.
"""

from __future__ import annotations

import pickle
import time
from datetime import timedelta

import numpy as np
import pytest
import torch

from _equivalence_cases import volume_tol
from conftest import make_tiny_prior, matrix_operator, measurement_of

WORLD = 2
TIMEOUT_S = 120
CASES = {  # the first three run in the default suite, the others with -m slow
    "dds": dict(solver="dds"),
    "d3ip-base": dict(solver="dds", adapter="d3ip-base"),
    "d3ip-mbir": dict(solver="mbir", adapter="d3ip-mbir"),
    "mbir": dict(solver="mbir"),
    "ddip": dict(solver="dds", adapter="ddip"),
    "d3ip-meta": dict(solver="dds", adapter="d3ip-meta", meta_finetune_iters=1),
}


def _measurement():
    g = torch.Generator().manual_seed(0)
    v = torch.zeros(5, 8, 8)  # 5 slices: slabs of 3 and 2
    v[:, 2:6, 1:7] = 0.3 + 0.6 * torch.rand(5, 1, 1, generator=g)
    return measurement_of(v, matrix_operator(36, (8, 8), seed=3), noise=0.01)


def _config(name, **kw):
    from napari_d3ip.config import RunConfig

    base = dict(nfe=4, device="cpu", batch_slices=2, adapt_iters=2, lr=1e-2, k_slices=3,
                window_lo=0, window_hi=999, seed=7)
    return RunConfig(**{**base, **CASES[name], **kw})


def _drive(gen, close_after=None):
    """(steps seen, Result or the exception's name)."""
    steps = 0
    try:
        while True:
            next(gen)
            steps += 1
            if close_after is not None and steps >= close_after:
                gen.close()
                return steps, "closed"
    except StopIteration as stop:
        return steps, stop.value
    except Exception as e:  # noqa: BLE001 (the outcome is what the test checks)
        return steps, type(e).__name__


DEFAULT = ["dds", "d3ip-base", "d3ip-mbir"]
EXTRA = ["mbir", "ddip", "d3ip-meta"]


def _worker(rank: int, store: str, out: str, names: list[str], stops: bool) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    from napari_d3ip.pipeline import reconstruct

    m, prior = _measurement(), make_tiny_prior(0, 8)
    res: dict = {}
    for name in names:
        _, r = _drive(reconstruct(m, _config(name), prior))
        res[name] = (r.volume, r.card.get("distributed"), r.card["timings"])
    if not stops:
        names = []
    # a cancel asked on rank 1 only, after its second step: both ranks stop
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return rank == 1 and calls["n"] > 4

    if stops:
        res["cancel"] = _drive(reconstruct(m, _config("d3ip-base", nfe=6), prior,
                                           should_stop=should_stop))
        # rank 0's consumer closes its generator after 2 steps: rank 1 stops too
        s, r = _drive(reconstruct(m, _config("dds", nfe=6), prior),
                      close_after=2 if rank == 0 else None)
        res["close"] = (s, r if isinstance(r, str) else "finished")
    dist.barrier()
    with open(f"{out}.{rank}", "wb") as f:
        pickle.dump(res, f)
    dist.destroy_process_group()


def _spawn(d, names: list[str], stops: bool) -> list[dict]:
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_worker, args=(str(d / "store"), str(d / "res"), names, stops),
                             nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the distributed run hung for {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    out = []
    for r in range(WORLD):
        with open(d / f"res.{r}", "rb") as f:
            out.append(pickle.load(f))
    return out


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    return _spawn(tmp_path_factory.mktemp("dist"), DEFAULT, True)


@pytest.fixture(scope="module")
def distributed_extra(tmp_path_factory):
    return _spawn(tmp_path_factory.mktemp("dist-extra"), EXTRA, False)


def _single(name, **kw):
    from napari_d3ip.pipeline import run

    return run(_measurement(), _config(name, **kw), make_tiny_prior(0, 8), group=None).volume


def _check_equal(results, name):
    ref = _single(name)
    for rank, res in enumerate(results):
        volume, dist_card, timings = res[name]
        assert volume.shape == ref.shape
        # a slab is another network batch: its rounding (summed in another order) is what
        # tests/tools/equivalence_spread.py measured for the same case across CPUs and batches
        tol = volume_tol(name)
        np.testing.assert_allclose(volume, ref, rtol=0, atol=tol, err_msg=f"{name}, rank {rank}")
        assert dist_card == {"world_size": 2, "backend": "gloo", "slabs": [[0, 3], [3, 5]]}
        assert timings["communication_seconds"] >= 0


@pytest.mark.parametrize("name", DEFAULT)
def test_two_gloo_processes_give_the_single_process_result(distributed_results, name):
    _check_equal(distributed_results, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXTRA)
def test_mbir_and_the_per_slice_variants_shard_to_the_same_result(distributed_extra, name):
    _check_equal(distributed_extra, name)


def test_a_cancel_on_one_rank_stops_every_rank(distributed_results):
    outcomes = [res["cancel"] for res in distributed_results]
    assert all(r == "RunCancelled" for _, r in outcomes), outcomes
    assert outcomes[0][0] == outcomes[1][0] < 6  # the same step, before the end


def test_closing_the_generator_on_one_rank_stops_the_others(distributed_results):
    (s0, r0), (s1, r1) = (res["close"] for res in distributed_results)
    assert (s0, r0) == (2, "closed")
    assert r1 == "RunCancelled" and s1 == 2


def test_slab_bounds_are_contiguous_and_balanced():
    from napari_d3ip.distributed import DistributedError, slab_bounds

    assert slab_bounds(5, 2) == [(0, 3), (3, 5)]
    assert slab_bounds(32, 3) == [(0, 11), (11, 22), (22, 32)]
    with pytest.raises(DistributedError, match="at most 2 processes"):
        slab_bounds(2, 3)


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    import torch.distributed as dist

    from napari_d3ip.events import Result
    from napari_d3ip.io.results import save_result

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    out = tmp_path / "r.nii.gz"
    nii, card = save_result(Result(volume=np.zeros((2, 4, 4), np.float32)), out)
    assert nii == out and not out.exists() and not card.exists()


def test_the_launcher_runs_torchrun_without_the_flag(monkeypatch):
    import argparse

    from napari_d3ip import distributed

    seen = {}
    monkeypatch.setattr(distributed.subprocess, "call", lambda cmd: seen.setdefault("cmd", cmd) and 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    p = argparse.ArgumentParser()
    distributed.add_distributed_option(p)
    p.add_argument("--out")
    argv = ["reconstruct", "--distributed", "2", "--out", "x.nii.gz"]
    assert distributed.maybe_launch(p.parse_args(argv[1:]), argv) == 0
    assert seen["cmd"][1:] == ["-m", "torch.distributed.run", "--standalone",
                               "--nproc-per-node=2", "-m", "napari_d3ip.cli", "reconstruct",
                               "--out", "x.nii.gz"]
    monkeypatch.setenv("WORLD_SIZE", "2")  # inside torchrun: run the command itself
    assert distributed.maybe_launch(p.parse_args(argv[1:]), argv) is None
