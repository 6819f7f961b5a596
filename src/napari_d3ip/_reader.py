"""npe2 reader: volumes (NIfTI, NRRD, MHA/MHD, a DICOM series folder) and measurement files.

A measurement file (our .h5, fastMRI, ISMRMRD, Data Exchange, NXtomo) is recognised by its
content through the one door, `io.formats.detect` / `io.open_measurement`: `.h5` is every
format's suffix, so the suffix only says "maybe"; a `.h5` no reader recognises is declined.

Volumes become one image layer with `scale` = voxel spacing and the affine in metadata;
a measurement becomes its measurement layer(s) plus A†y (and the reference when it has one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _layers as napari_layers

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
MEASUREMENT_SUFFIXES = (".h5", ".hdf5", ".mrd", ".nxs", ".nx")

ReaderFunction = Callable[[Any], list[napari_layers.LayerData]]


def _single_path(path: Any) -> str | None:
    """The one path napari passes (a list of exactly one counts), else None."""
    if isinstance(path, list | tuple):
        return str(path[0]) if len(path) == 1 else None
    return str(path)


def looks_like_dicom_folder(folder: Path) -> bool:
    """A folder with at least one file that is DICOM (.dcm or the 'DICM' magic at byte 128)."""
    try:
        for i, f in enumerate(sorted(folder.iterdir())):
            if i > 50:
                break
            if not f.is_file():
                continue
            if f.suffix.lower() == ".dcm":
                return True
            with open(f, "rb") as fh:
                head = fh.read(132)
            if len(head) == 132 and head[128:132] == b"DICM":
                return True
    except OSError:
        return False
    return False


def _stem(path: Path) -> str:
    name = path.name
    for suf in (".nii.gz", *VOLUME_SUFFIXES, *MEASUREMENT_SUFFIXES):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def get_reader(path: Any) -> ReaderFunction | None:
    """npe2 `get_reader`: a reader function for paths we understand, else None."""
    one = _single_path(path)
    if one is None:
        return None
    p = Path(one)
    low = p.name.lower()
    if p.is_dir():
        return read_volume_layers if looks_like_dicom_folder(p) else None
    if low.endswith(MEASUREMENT_SUFFIXES):
        return read_measurement_layers if _recognised(p) else None
    if low.endswith(VOLUME_SUFFIXES):
        return read_volume_layers
    return None


def _recognised(path: Path) -> bool:
    """Whether a registered measurement format reads this file (content, headers only); a
    path that is not there yet is accepted (opening it then says so, naming the file)."""
    from .io.formats import formats

    if not path.is_file():
        return True
    return any(fmt.sniff(path) for fmt in formats())


def read_volume_layers(path: Any) -> list[napari_layers.LayerData]:
    from .io.volumes import read_volume

    p = Path(_single_path(path) or "")
    return [napari_layers.volume_layer(read_volume(p), _stem(p))]


def read_measurement_layers(path: Any) -> list[napari_layers.LayerData]:
    from .io import open_measurement

    p = Path(_single_path(path) or "")
    m = open_measurement(p)
    return measurement_with_reference(m, _stem(p))


def measurement_with_reference(m: Any, name: str) -> list[napari_layers.LayerData]:
    """Measurement layers, plus the fully sampled reference (hidden) when the file has one."""
    out = napari_layers.measurement_layers(m, name)
    if m.reference is not None:
        out.insert(0, (m.reference, {
            "name": f"{name} reference", "scale": tuple(float(s) for s in m.spacing),
            "contrast_limits": (0.0, 1.0), "visible": False,
            "metadata": {napari_layers.ROLE: "reference", napari_layers.AFFINE: m.affine,
                         napari_layers.INTENSITY: tuple(m.intensity)}}, "image"))
    return out
