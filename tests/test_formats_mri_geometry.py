"""Geometry out for MRI files (io/formats/_mrgeometry.py): the NIfTI written from an ISMRMRD
file carries the voxel size and the orientation of its acquisition headers (LPS -> RAS), and
a fastMRI file (no patient position) says its orientation is unknown. A bright marker voxel
written at a known patient position must come back at that RAS position: a left-right flip
(a sign lost in LPS -> RAS) or a swapped axis fails these tests.

The expected RAS positions are computed here by hand from the writer's stated convention
(voxel i of N along a direction lies (i - N//2) * spacing from `position`, LPS), not with
the reader's functions."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from _format_writers import write_fastmri, write_ismrmrd_2d, write_ismrmrd_3d
from napari_d3ip.io import OpenOptions, inspect_file, open_measurement
from napari_d3ip.io.formats._mri import fastmri_mask
from napari_d3ip.io.measurements import MeasurementError

COILS = 4


def _phantom(shape, marker) -> np.ndarray:
    from napari_d3ip.training.phantoms import ellipsoid_volume

    n = max(shape)
    v = ellipsoid_volume(n, seed=0).numpy().astype(np.float32)
    c = [n // 2 - s // 2 for s in shape]
    v = 0.5 * v[c[0]:c[0] + shape[0], c[1]:c[1] + shape[1], c[2]:c[2] + shape[2]].copy()
    v[marker] = 2.0  # brighter than anything else
    return v


def _marker_ras(nifti) -> np.ndarray:
    """The RAS position (mm) of the brightest voxel of a NIfTI file, read with nibabel."""
    img = nib.load(str(nifti))
    data = np.asarray(img.dataobj)
    ijk = np.unravel_index(int(np.argmax(np.abs(data))), data.shape)
    return (img.affine @ np.array([*ijk, 1.0]))[:3]


def _reconstruct(path, out, *extra) -> dict:
    from napari_d3ip.cli import main

    assert main(["reconstruct", "--measurement", str(path), "--solver", "admm-tv", "--out",
                 str(out), "--quiet", *extra]) == 0
    return json.loads(out.with_name(out.name.replace(".nii.gz", ".json")).read_text())


# an oblique-free but permuted, sign-flipped orientation: readout posterior, phase to the
# patient's right, partitions superior (right-handed: read x phase = slice)
GEO_3D = {"position": (10.0, -20.0, 5.0), "read_dir": (0.0, 1.0, 0.0),
          "phase_dir": (-1.0, 0.0, 0.0), "slice_dir": (0.0, 0.0, 1.0)}


def test_ismrmrd_3d_marker_lands_at_its_patient_position(tmp_path):
    shape, marker = (6, 32, 24), (1, 9, 17)
    vol = _phantom(shape, marker)
    full = np.ones(shape[1:], bool)
    p = write_ismrmrd_3d(tmp_path / "geo3d.h5", vol, full, COILS, geometry=GEO_3D)
    m = open_measurement(p)
    # by hand: LPS = (10, -20, 5) + (1-3)*(0,1,0) + (9-16)*(-1,0,0) + (17-12)*(0,0,1)
    #              = (17, -22, 10)  ->  RAS (-17, 22, 10)
    want = np.array([-17.0, 22.0, 10.0])
    np.testing.assert_allclose(m.affine[:3, :3], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-9)
    np.testing.assert_allclose((m.affine @ [*marker, 1.0])[:3], want, atol=1e-6)
    card = _reconstruct(p, tmp_path / "x.nii.gz")
    np.testing.assert_allclose(_marker_ras(tmp_path / "x.nii.gz"), want, atol=1e-4)
    assert card["measurement"]["simulation"]["orientation"].startswith("from the acquisition")
    assert inspect_file(p)["orientation"] == "slice, row, col towards P, R, S"
    # a readout range keeps its place: voxel 0 of slices 1:5 is voxel 1 of the whole volume
    sub = open_measurement(p, OpenOptions(slices="1:5"))
    np.testing.assert_allclose(sub.affine @ [0, 9, 17, 1.0], m.affine @ [1, 9, 17, 1.0])


GEO_2D = {"position": (-5.0, 12.0, 30.0), "read_dir": (0.0, 0.0, -1.0),
          "phase_dir": (0.0, 1.0, 0.0), "slice_dir": (1.0, 0.0, 0.0)}  # sagittal


def test_ismrmrd_2d_stack_sorted_in_space_and_placed(tmp_path):
    shape, marker = (5, 32, 32), (3, 20, 7)
    vol = _phantom(shape, marker)
    full = np.ones(shape[2], bool)
    p = write_ismrmrd_2d(tmp_path / "geo2d.h5", vol, full, COILS, geometry=GEO_2D,
                         slice_order=[0, 2, 4, 1, 3], thickness=3.0)
    m = open_measurement(p)
    # by hand: LPS = (-5, 12, 30) + (3-2)*3*(1,0,0) + (20-16)*(0,0,-1) + (7-16)*(0,1,0)
    #              = (-2, 3, 26)  ->  RAS (2, -3, 26)
    want = np.array([2.0, -3.0, 26.0])
    np.testing.assert_allclose(m.affine[:3, :3], [[-3, 0, 0], [0, 0, -1], [0, -1, 0]], atol=1e-6)
    x = m.operator.pinv(m.y)[:, 0].numpy()
    assert np.unravel_index(int(np.argmax(np.abs(x))), x.shape) == marker  # spatial order
    _reconstruct(p, tmp_path / "x.nii.gz")
    np.testing.assert_allclose(_marker_ras(tmp_path / "x.nii.gz"), want, atol=1e-4)


def test_no_geometry_is_unknown_and_said(tmp_path):
    vol = _phantom((4, 32, 32), (1, 3, 4))
    mask = fastmri_mask(32, "random", 4, 0.16, seed=0)
    m = open_measurement(write_fastmri(tmp_path / "f.h5", vol, COILS, mask=mask),
                         OpenOptions(slices="1:4"))
    assert m.simulation["orientation"].startswith("unknown")
    # fastMRI header: recon FOV z 3 mm (slice), encoded 320/64 = 5 and 160/32 = 5 mm pixels
    np.testing.assert_allclose(m.affine, [[3, 0, 0, 3], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 1]])
    assert inspect_file(tmp_path / "f.h5")["orientation"].startswith("unknown")
    m2 = open_measurement(write_ismrmrd_2d(tmp_path / "i.h5", vol, np.ones(32, bool), COILS))
    assert m2.simulation["orientation"].startswith("unknown")


def _geo(**change):
    return {**GEO_2D, **change}


BAD_GEOMETRY = [
    ("not-unit", _geo(read_dir=(0.0, 0.0, -2.0)), r"read_dir .* is not a unit vector"),
    ("not-orthogonal", _geo(phase_dir=(0.0, 0.6, -0.8)), r"not orthogonal"),
]


@pytest.mark.parametrize("name, geo, match", BAD_GEOMETRY, ids=[b[0] for b in BAD_GEOMETRY])
def test_damaged_directions_refused(tmp_path, name, geo, match):
    vol = _phantom((3, 32, 32), (1, 3, 4))
    p = write_ismrmrd_2d(tmp_path / "g.h5", vol, np.ones(32, bool), COILS, geometry=geo)
    with pytest.raises(MeasurementError, match=match):
        inspect_file(p)


def test_differing_directions_refused(tmp_path):
    vol = _phantom((3, 32, 32), (1, 3, 4))

    def tilt_one(f):
        d = f["dataset/data"][()]
        d["head"]["read_dir"][5] = (0.0, 1.0, 0.0)
        d["head"]["phase_dir"][5] = (0.0, 0.0, 1.0)
        del f["dataset/data"]
        f["dataset/data"] = d

    p = write_ismrmrd_2d(tmp_path / "g.h5", vol, np.ones(32, bool), COILS, geometry=GEO_2D,
                         edit=tilt_one)
    with pytest.raises(MeasurementError, match="acquisitions' read_dir differ"):
        open_measurement(p)
