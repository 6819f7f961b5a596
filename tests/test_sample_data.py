"""Shipped samples: present, packaged, licensed, and what their descriptions say they are."""

from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

import numpy as np
import pytest

from napari_d3ip.io.volumes import Volume, to_unit_range
from napari_d3ip.metrics import psnr
from napari_d3ip.operators.base import Measurement
from napari_d3ip.sample_data import SAMPLES, load_sample, sample_path

PKG = Path(sample_path("brain-64")).parent
ROOT = Path(__file__).resolve().parents[1]


def test_every_sample_exists_and_is_small():
    total = 0
    for name in SAMPLES:
        path = sample_path(name)
        assert path.is_file() and path.parent == PKG
        total += path.stat().st_size
    assert total < 15e6


def test_package_data_globs_ship_every_file():
    """A non-editable install ships what setup.cfg's package_data lists: check it covers all."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["napari_d3ip"].split()]
    for f in PKG.iterdir():
        if f.name == "__init__.py" or f.name.startswith((".", "__")):
            continue
        rel = f"sample_data/{f.name}"
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} would not be installed"


def test_licences_and_readme():
    mni = (PKG / "LICENSE_MNI152.txt").read_text(encoding="utf-8")
    assert "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre" in mni
    assert "provided that the above\ncopyright notice appear in all copies" in mni
    assert "MIT License" in (PKG / "LICENSE_nibabel.txt").read_text(encoding="utf-8")
    readme = (PKG / "README.md").read_text(encoding="utf-8")
    for name, entry in SAMPLES.items():
        assert entry["file"] in readme, name
    assert "make_sample_data.py" in readme and "napari-d3ip-measurement" in readme


def test_unknown_name_lists_the_samples():
    with pytest.raises(KeyError) as e:
        sample_path("brain-999")
    assert all(name in str(e.value) for name in SAMPLES)
    with pytest.raises(ValueError):  # the CLI reports ValueErrors
        load_sample("brain-999")


@pytest.mark.parametrize("name, shape, fill", [("brain-64", (64, 64, 64), 0.2),
                                               ("brain-128", (128, 128, 128), 0.2),
                                               ("heldout-epi", (24, 64, 64), 0.2),
                                               ("phantom-64", (64, 64, 64), 0.03)])
def test_volumes(name, shape, fill):
    v = load_sample(name)
    assert isinstance(v, Volume) and v.shape == shape and v.data.dtype == np.float32
    assert v.data.min() == 0.0 and v.data.max() == pytest.approx(1.0)
    assert v.intensity == (0.0, pytest.approx(1.0))
    assert (v.data == 0).mean() > 0.3  # background is exactly 0
    assert (v.data > 0.05).mean() > fill  # the object fills its part of the field of view


def test_brains_share_their_world_geometry():
    """Both resolutions of the MNI brain sit at the same world position (affines are right)."""
    def centre_of_mass(v: Volume) -> np.ndarray:
        idx = np.indices(v.shape).reshape(3, -1)
        w = v.data.reshape(-1)
        c = (idx * w).sum(1) / w.sum()
        return (v.affine @ np.r_[c, 1.0])[:3]

    b64, b128 = load_sample("brain-64"), load_sample("brain-128")
    assert np.allclose(b64.spacing, 2 * np.asarray(b128.spacing))
    assert np.allclose(centre_of_mass(b64), centre_of_mass(b128), atol=0.1)
    # MNI space: the brain's centre of mass is near the origin, a little posterior-superior
    assert np.allclose(centre_of_mass(b64), [0.0, -21.3, 10.6], atol=1.0)


def test_phantom_is_the_documented_function():
    from napari_d3ip.training.phantoms import ellipsoid_volume

    ref = ellipsoid_volume(64, seed=0).numpy()
    assert np.allclose(load_sample("phantom-64").data, ref, atol=1e-6)


@pytest.mark.parametrize("name, kind, shape, pinv_psnr", [
    ("ct15", "ct", (64, 15, 91), 23.37),
    ("ct60", "ct", (64, 60, 91), 33.64),
    ("mri-r8", "mri", (64, 64, 64), 18.99),
])
def test_measurements(name, kind, shape, pinv_psnr):
    m = load_sample(name)
    assert isinstance(m, Measurement) and m.operator.kind == kind
    assert tuple(m.y.shape) == shape
    brain = load_sample("brain-64")
    assert np.allclose(m.reference, to_unit_range(brain)[0])
    assert np.allclose(m.affine, brain.affine) and m.source == "brain-64.nii.gz"
    if kind == "mri":
        assert m.operator.acceleration == pytest.approx(8.0, rel=0.01)
        assert m.simulation["noise"] == 0.0
    else:
        assert m.simulation["noise"] == 0.01
    # the README's numbers
    assert psnr(m.pinv(), m.reference, data_range=1.0) == pytest.approx(pinv_psnr, abs=0.05)
