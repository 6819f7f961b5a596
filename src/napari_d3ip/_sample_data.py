"""npe2 sample data: the 64³ brain, the phantom, and the example CT and MRI measurements."""

from __future__ import annotations

from . import _layers as napari_layers
from ._reader import measurement_with_reference


def load(name: str) -> list[napari_layers.LayerData]:
    """Layer data of sample `name` (a volume, or a measurement with A†y and its reference)."""
    from .sample_data import load_sample

    obj = load_sample(name)
    if hasattr(obj, "operator"):
        return measurement_with_reference(obj, name)
    return [napari_layers.volume_layer(obj, name)]


def brain_64() -> list[napari_layers.LayerData]:
    return load("brain-64")


def phantom_64() -> list[napari_layers.LayerData]:
    return load("phantom-64")


def ct15() -> list[napari_layers.LayerData]:
    return load("ct15")


def mri_r8() -> list[napari_layers.LayerData]:
    return load("mri-r8")
