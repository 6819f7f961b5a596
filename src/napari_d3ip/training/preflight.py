"""Checks of a training run before any compute: memory for the network, its optimiser and one
batch; a run folder every checkpoint can be written to."""

from __future__ import annotations

from pathlib import Path

from ..core.prior import _MetaParameters
from ..core.unet import UNet
from ..cost import GRAD_BYTES_PER_PX, REF_CHANNELS
from ..io.files import OutputError, check_destination, check_memory
from .recipes import TrainConfig, TrainConfigError, render_size


def check_training_resources(cfg: TrainConfig) -> None:
    """The network, its EMA copy, gradients and AdamW moments (5 copies of the parameters,
    counted on the meta device: no memory) and one batch's activations (forward + backward,
    cost.GRAD_BYTES_PER_PX scaled by the width) bounded by the available memory."""
    try:
        with _MetaParameters():
            params = sum(p.numel() for p in UNet(cfg.unet_config()).parameters())
    except Exception as e:  # an architecture torch cannot build
        raise TrainConfigError(f"train-prior: the UNet (--channels {cfg.channels}, --mults "
                               f"{','.join(map(str, cfg.channel_mults))}) cannot be built: {e}") from None
    acts = GRAD_BYTES_PER_PX * cfg.channels / REF_CHANNELS * cfg.size ** 2 * cfg.batch
    phantoms = 4.0 * cfg.batch * render_size(cfg) ** 2 * 3
    check_memory(5 * 4.0 * params + acts + phantoms,
                 f"train-prior (a {params:,}-parameter UNet, --channels {cfg.channels}; "
                 f"--batch {cfg.batch} of {cfg.size}x{cfg.size})")


def check_run_folder(out: Path) -> None:
    """The run folder as every file of the run will meet it: not a file, on a real writable
    filesystem with room for the checkpoints (io.files.check_destination)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; a training run needs a folder")
    check_destination(out / "checkpoint_model.safetensors", what="training run", option="--out")
