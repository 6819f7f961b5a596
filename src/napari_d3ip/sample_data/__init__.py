"""Small volumes and measurements shipped with the package, so demos and tests run offline.

The files are made by `sample_data/make_sample_data.py` in the source repository; README.md
in this folder says what each one is, how it was made and under which licence it is shipped.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import D3IPError

if TYPE_CHECKING:
    from ..io.volumes import Volume
    from ..operators.base import Measurement

SAMPLES: dict[str, dict[str, str]] = {
    "brain-64": {
        "file": "brain-64.nii.gz",
        "description": "MNI ICBM152 2009a T1 template (real anatomy), head cropped to a cube, "
                       "64^3 at 2.95 mm, [0, 1]",
    },
    "brain-128": {
        "file": "brain-128.nii.gz",
        "description": "the same MNI ICBM152 2009a T1 template at 128^3 (1.48 mm), [0, 1]",
    },
    "heldout-epi": {
        "file": "heldout-epi.nii.gz",
        "description": "a real EPI brain volume from nibabel's test data (another source and "
                       "contrast, for held-out checks): 24 axial slices of 64^2, [0, 1]",
    },
    "phantom-64": {
        "file": "phantom-64.nii.gz",
        "description": "3D ellipsoid phantom, ellipsoid_volume(64, seed=0), 64^3, [0, 1]",
    },
    "ct15": {
        "file": "brain-64_ct15.h5",
        "description": "brain-64, parallel-beam CT, 15 views over 180 deg, 1% noise, seed 0",
    },
    "ct60": {
        "file": "brain-64_ct60.h5",
        "description": "brain-64, parallel-beam CT, 60 views over 180 deg, 1% noise, seed 0",
    },
    "mri-r8": {
        "file": "brain-64_mri-poisson-r8.h5",
        "description": "brain-64, single-coil Cartesian MRI, 2D Poisson-disc mask R=8, "
                       "no noise, seed 0",
    },
}


class SampleError(KeyError, D3IPError):
    """An unknown sample name (lists the known ones); a ValueError too, for the CLI."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


def volume_samples() -> list[str]:
    """The shipped sample volumes (the others are measurement files)."""
    return [k for k, v in SAMPLES.items() if v["file"].endswith(".nii.gz")]


def sample_path(name: str) -> Path:
    """The installed file of sample `name` (see SAMPLES)."""
    if name not in SAMPLES:
        listing = "\n".join(f"  {k:12s} {v['description']}" for k, v in SAMPLES.items())
        raise SampleError(f"unknown sample {name!r}; available samples:\n{listing}")
    path = Path(str(resources.files(__name__) / SAMPLES[name]["file"]))
    if not path.exists():
        raise FileNotFoundError(f"sample {name!r} should be at {path} but is missing; "
                                "reinstall napari-d3ip (or run sample_data/make_sample_data.py "
                                "in a source checkout)")
    return path


def load_sample(name: str, device: str = "cpu") -> Volume | Measurement:
    """A sample volume (`Volume`, file intensities) or measurement (`Measurement`)."""
    path = sample_path(name)
    if path.suffix == ".h5":
        from ..io import open_measurement

        return open_measurement(path, device=device)
    from ..io.volumes import read_volume

    return read_volume(path)
