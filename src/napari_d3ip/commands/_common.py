"""Helpers shared by the sub-commands: progress bars over the pipeline, figures, output files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_with_progress(gen, desc: str, quiet: bool = False):
    """Drive a `reconstruct` generator with a tqdm bar (loss, PSNR, phase); returns the Result."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            if bar is None:
                bar = tqdm(total=step.total, desc=desc, disable=quiet, dynamic_ncols=True)
            post = {"phase": step.phase, "loss": f"{step.loss:.3g}"}
            if step.psnr is not None:
                post["psnr"] = f"{step.psnr:.2f}"
            bar.set_postfix(post)
            bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        gen.close()


def check_outputs(paths: list[Path], force: bool) -> None:
    """Refuse to overwrite any existing output unless --force."""
    if force:
        return
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} exist(s); pass --force to overwrite or "
                              "choose another --out")


def orthogonal_figure(rows: dict[str, np.ndarray], path: Path, spacing=(1.0, 1.0, 1.0),
                      subtitles: dict[str, str] | None = None) -> Path:
    """A PNG with axial / coronal / sagittal mid-slices (columns) of each volume (rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(len(names), 3, figsize=(7.5, 2.6 * len(names)), squeeze=False)
    sz, sy, sx = spacing
    for r, name in enumerate(names):
        v = rows[name]
        n, h, w = v.shape
        views = [
            ("axial", v[n // 2], sx / sy),
            # sample volumes are (z, x, y) in RAS order: fixing a row is sagittal
            ("sagittal", v[:, h // 2, :], sx / sz),
            ("coronal", v[:, :, w // 2], sy / sz),
        ]
        for c, (label, img, aspect) in enumerate(views):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, aspect=1.0 / aspect, origin="lower"
                      if c else "upper")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label)
            if c == 0:
                sub = (subtitles or {}).get(name, "")
                ax.set_ylabel(f"{name}\n{sub}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
