"""Writing a reconstruction: the volume (NIfTI & co.) and its JSON run card beside it.

The library's one place for result files (the CLI, the GUI's save and the napari writer call
`save_result`); `run_card_path`, `check_card_path` and `is_run_card` name and guard the card,
`json_default` serialises numpy values in cards and benchmark stores. In a distributed run
(torch.distributed initialised) only rank 0 writes: the other ranks hold a slab, not the volume.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import D3IPError


class ResultError(D3IPError):
    """A result cannot be written (it diverged); the message says why and what to try."""


def nonfinite_slices(volume: np.ndarray) -> list[int]:
    """Indices of the slices of an (N, H, W) volume that hold NaN or inf."""
    v = np.asarray(volume)
    return np.flatnonzero(~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)).tolist()


def _writing_rank() -> bool:
    """False on the ranks other than 0 of an initialised torch.distributed run."""
    try:
        import torch.distributed as dist
    except ImportError:  # a torch build without distributed support
        return True
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def save_result(result, path: str | Path, affine: np.ndarray | None = None,
                intensity: tuple[float, float] = (0.0, 1.0),
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write the volume as NIfTI (file intensities, the input's affine) and the run card JSON.

    Both files are written completely under temporary names first and then renamed into place
    (a full disk or Ctrl-C leaves the old files intact). A `.json` beside the output that is
    not a napari-d3ip run card (a BIDS sidecar, say) is never replaced, even with `overwrite`.
    A volume with NaN/inf (a diverged run) is refused: nothing is written. On a rank other
    than 0 of a distributed run nothing is written either (rank 0 writes the gathered volume);
    the paths are returned all the same.
    """
    from .files import atomic_path, atomic_write_text, check_destination, planned_outputs
    from .volumes import _check_array, write_volume, write_volume_at

    path = Path(path)
    card_path = run_card_path(path)
    if not _writing_rank():
        return path, card_path
    check_card_path(card_path)
    if not overwrite:
        for p in (*planned_outputs(path), card_path):  # an .mhd's .zraw too
            if p.exists():
                raise FileExistsError(f"{p} exists; choose another name or allow overwriting "
                                      "(--force on the command line)")
    bad = nonfinite_slices(result.volume)
    if bad:
        raise ResultError(f"the result holds NaN/inf in {len(bad)} slice(s) "
                          f"({', '.join(map(str, bad[:8]))}): the reconstruction diverged "
                          "there; nothing written (try --gamma, fewer --cg-steps or another "
                          "solver)")
    check_destination(path, np.asarray(result.volume).size * 4 + 4096, what="result volume",
                      option="")
    lo, hi = intensity
    data = (lo + result.volume.astype(np.float64) * (hi - lo)).astype(np.float32)
    data = _check_array(data, str(path))  # 3D, finite in float32 (hi - lo within range)
    card = dict(result.card)
    card["output"] = str(path)
    text = json.dumps(card, indent=2, default=json_default, allow_nan=True) + "\n"
    aff = np.eye(4) if affine is None else affine
    if path.name.lower().endswith(".mhd"):  # header + data file: write_volume moves both
        write_volume(path, data, affine=aff, overwrite=True)
        atomic_write_text(card_path, text)
        return path, card_path
    with atomic_path(path) as tmp:  # the volume is renamed into place only once both exist
        write_volume_at(tmp, data, aff)  # checked above; no second temporary name
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
        stem = card_path.name[: -len(".json")]
        raise FileExistsError(
            f"{card_path} exists and is not a napari-d3ip run card (a BIDS sidecar or another "
            "tool's file?): it is never replaced, --force or not; give the result another name, "
            f"e.g. {stem}_d3ip.nii.gz (its run card becomes {stem}_d3ip.json)")


def run_card_path(path: str | Path) -> Path:
    """The run card's name beside a result volume: `<stem>.json` (`x.nii.gz` -> `x.json`)."""
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
