"""Training: batches are a function of (seed, step); a tiny run learns and resumes exactly."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from napari_d3ip.core.prior import load_prior
from napari_d3ip.training.data import training_batch
from napari_d3ip.training.metrics import gaussian_blur
from napari_d3ip.training.recipes import TrainConfig
from napari_d3ip.training.trainer import Trainer


def _cfg(tmp_path, steps, **kw):
    base = dict(out=str(tmp_path / "run"), size=32, channels=8, channel_mults=(1, 2),
                num_res_blocks=1, attn_resolutions=(16,), steps=steps, batch=8, lr=2e-3,
                warmup=5, device="cpu", bf16=False, val_every=0, checkpoint_minutes=1e9,
                name="tiny", n_mean=40.0)
    base.update(kw)
    return TrainConfig(**base)


def test_training_batches_are_reproducible(tmp_path):
    cfg = _cfg(tmp_path, 1)
    a, b = training_batch(cfg, 5, torch.device("cpu")), training_batch(cfg, 5, torch.device("cpu"))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = training_batch(cfg, 6, torch.device("cpu"))
    assert not torch.equal(a[0], c[0])


def test_gaussian_blur_preserves_constants():
    x = torch.full((1, 1, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(x, 2.0), x, atol=1e-6)


def test_existing_run_needs_resume(tmp_path):
    Trainer(_cfg(tmp_path, 1)).run(progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(_cfg(tmp_path, 2))


@pytest.mark.slow
def test_tiny_training_learns_and_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    full = Trainer(_cfg(tmp_path / "a", 60))
    full.run(progress=False)
    with open(tmp_path / "a" / "run" / "loss.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    first = Trainer(_cfg(tmp_path / "b", 30))
    first.run(progress=False)
    resumed = Trainer(_cfg(tmp_path / "b", 60), resume=True)
    assert resumed.state.step == 30
    path = resumed.run(progress=False)
    assert losses[-1] < 0.5  # ε-MSE starts at ~1
    for pa, pb in zip(full.ema.parameters(), resumed.ema.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)
    prior = load_prior(path)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["training"]["steps"] == 60 and len(card["training"]["commands"]) == 2
    assert prior.image_size == 32


def test_cli_trains_resumes_and_exports(tmp_path, capsys):
    from napari_d3ip.cli import main

    out = tmp_path / "cli-run"
    args = ["train-prior", "--out", str(out), "--name", "tiny-cli", "--size", "32", "--channels", "8",
            "--mults", "1,2", "--res-blocks", "1", "--batch", "2", "--device", "cpu", "--threads", "1",
            "--bf16", "off", "--val-every", "0"]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "2"]) == 2  # an existing run is never overwritten
    assert "--resume" in capsys.readouterr().err
    # a curve row past the checkpoint (a run killed between checkpoints) is dropped on resume
    with open(out / "loss.csv", "a") as f:
        f.write("99,0.5,1.0,1.0\n")
    assert main(args + ["--steps", "3", "--resume"]) == 0
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "loss.csv"))]
    assert 99 not in steps and steps == sorted(steps)
    prior = load_prior(out / "tiny-cli.safetensors")
    assert prior.image_size == 32
    card = json.loads((out / "tiny-cli.json").read_text())
    assert card["training"]["steps"] == 3 and len(card["training"]["commands"]) == 2


def test_every_command_registers():
    from napari_d3ip.cli import build_parser
    from napari_d3ip.commands import COMMANDS

    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert names == {c.replace("_", "-") for c in COMMANDS}
