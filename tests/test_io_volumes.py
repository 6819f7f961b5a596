"""Volume io: geometry survives a round trip in every format; bad input fails with a fix."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_d3ip.io.volumes import (
    Volume,
    VolumeError,
    from_unit_range,
    read_volume,
    to_unit_range,
    write_volume,
)


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (f(np.deg2rad(a)) for a in (ax, ay, az) for f in (np.cos, np.sin))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture
def oblique() -> np.ndarray:
    """Oblique, anisotropic, left-handed-free affine with a non-trivial origin."""
    a = np.eye(4)
    a[:3, :3] = _rotation(17, -23, 41) @ np.diag([0.7, 1.3, 2.9])
    a[:3, 3] = [-101.123456, 35.5, 12.25]
    return a


@pytest.fixture
def data() -> np.ndarray:
    return (np.random.default_rng(0).random((5, 7, 9)) * 1000 - 200).astype(np.float32)


@pytest.mark.parametrize("ext", ["nii", "nii.gz", "mha", "mhd", "nrrd"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_round_trip_keeps_affine_and_data(tmp_path, ext, axis, oblique, data):
    path = write_volume(tmp_path / f"v.{ext}", Volume(data, oblique, axis=axis))
    back = read_volume(path, axis=axis)
    # NIfTI-1 stores the sform as float32: ~1e-7 relative, hence rtol as well as atol
    assert np.allclose(back.affine, oblique, rtol=1e-6, atol=1e-6)
    assert np.array_equal(back.data, data)
    assert back.data.dtype == np.float32
    assert np.allclose(back.spacing, np.linalg.norm(oblique[:3, :3], axis=0), atol=1e-6)
    assert back.axis == axis and back.source == str(path)
    assert back.intensity == (float(data.min()), float(data.max()))


@pytest.mark.parametrize("ext", ["nii.gz", "mha"])
def test_world_position_of_every_voxel_is_independent_of_axis(tmp_path, ext, oblique, data):
    path = write_volume(tmp_path / f"v.{ext}", data, affine=oblique)
    ref = read_volume(path, axis=2)
    assert np.array_equal(ref.data, data)  # written with axis 2 -> read back as given
    for axis in (0, 1):
        v = read_volume(path, axis=axis)
        # the same voxel value sits at the same world point whatever the slicing axis
        for idx in [(0, 0, 0), (1, 3, 4), (4, 6, 8)]:
            world = ref.affine @ np.array([*idx, 1.0])
            file_idx = (idx[1], idx[2], idx[0])  # ref is (k, i, j) of the file
            order = [axis] + [a for a in (0, 1, 2) if a != axis]
            new_idx = tuple(file_idx[o] for o in order)
            assert v.data[new_idx] == ref.data[idx]
            assert np.allclose(v.affine @ np.array([*new_idx, 1.0]), world, atol=1e-4)


def test_nifti_and_itk_readers_agree_on_world_geometry(tmp_path, oblique, data):
    """nibabel (RAS) and SimpleITK (LPS, converted) see the same geometry for one file."""
    nii = write_volume(tmp_path / "v.nii.gz", data, affine=oblique)
    mha = tmp_path / "v.mha"
    sitk.WriteImage(sitk.ReadImage(str(nii)), str(mha))
    a, b = read_volume(nii), read_volume(mha)
    assert np.allclose(a.affine, b.affine, atol=1e-5)
    assert np.array_equal(a.data, b.data)


def test_default_axis_is_last_nifti_array_axis(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 2.0, 3.0, 1.0])), tmp_path / "a.nii")
    v = read_volume(tmp_path / "a.nii")
    assert v.shape == (4, 2, 3)
    assert np.array_equal(v.data[1], arr[:, :, 1])
    assert v.spacing == (3.0, 1.0, 2.0)


def test_write_refuses_to_overwrite(tmp_path, data):
    path = write_volume(tmp_path / "v.nii.gz", data)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_volume(path, data * 2)
    assert np.array_equal(read_volume(path).data, data)
    write_volume(path, data * 2, overwrite=True)
    assert np.allclose(read_volume(path).data, data * 2)


def test_unit_range_round_trip(data):
    v = Volume(data)
    d01, (lo, hi) = to_unit_range(v)
    assert d01.dtype == np.float32 and d01.min() == 0.0 and d01.max() == 1.0
    assert (lo, hi) == (float(data.min()), float(data.max()))
    assert np.allclose(from_unit_range(d01, (lo, hi)), data, atol=1e-3)
    zeros, rng = to_unit_range(np.full((2, 3, 3), 7.0, np.float32))
    assert not zeros.any() and rng == (7.0, 7.0)


# -- 4D, DICOM ---------------------------------------------------------------------------
def test_4d_needs_a_frame(tmp_path):
    arr = np.stack([np.full((3, 4, 5), f, np.float32) for f in range(3)], -1)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(VolumeError, match=r"3 frames.*frame=<0\.\.2>"):
        read_volume(tmp_path / "t.nii.gz")
    v = read_volume(tmp_path / "t.nii.gz", frame=2)
    assert v.shape == (5, 3, 4) and np.all(v.data == 2.0) and v.meta["frame"] == 2
    with pytest.raises(VolumeError, match="out of range"):
        read_volume(tmp_path / "t.nii.gz", frame=3)


def _write_dicom_series(folder: Path, arr_zyx: np.ndarray, uid: str,
                        spacing=(0.5, 0.75, 2.0), origin=(10.0, -20.0, 30.0)) -> None:
    img = sitk.GetImageFromArray(arr_zyx.astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i in range(img.GetDepth()):
        s = img[:, :, i]
        position = img.TransformIndexToPhysicalPoint((0, 0, i))
        for tag, value in {
            "0020|000e": uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0008|0060": "CT", "0020|0013": str(i + 1), "0008|0018": f"{uid}.{i + 1}",
            "0020|0032": "\\".join(map(str, position)), "0020|0037": "1\\0\\0\\0\\1\\0",
        }.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid[-3:]}_{i:03d}.dcm"))
        writer.Execute(s)


def test_dicom_series_folder(tmp_path):
    arr = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    _write_dicom_series(tmp_path, arr, "1.2.826.0.1.3680043.2.1125.101")
    v = read_volume(tmp_path)
    assert v.shape == (4, 6, 5)  # ITK (x, y, z) sliced along z -> (z, x, y)
    assert np.array_equal(v.data, np.transpose(arr, (0, 2, 1)))
    assert np.allclose(v.spacing, (2.0, 0.5, 0.75))
    assert np.allclose(v.origin, (-10.0, 20.0, 30.0))  # LPS origin -> RAS


def test_dicom_folder_with_two_series_lists_them(tmp_path):
    a, b = "1.2.826.0.1.3680043.2.1125.101", "1.2.826.0.1.3680043.2.1125.202"
    _write_dicom_series(tmp_path, np.zeros((3, 4, 4)), a)
    _write_dicom_series(tmp_path, np.ones((2, 4, 4)) * 5, b)
    with pytest.raises(VolumeError, match="2 DICOM series") as e:
        read_volume(tmp_path)
    assert a in str(e.value) and b in str(e.value) and "series=" in str(e.value)
    v = read_volume(tmp_path, series=b)
    assert v.shape == (2, 4, 4) and np.all(v.data == 5) and v.meta["series"] == b
    with pytest.raises(VolumeError, match="no DICOM series 'nope'"):
        read_volume(tmp_path, series="nope")


# -- bad input ---------------------------------------------------------------------------
def test_complex_nifti_is_refused(tmp_path):
    arr = (np.ones((3, 3, 3)) * (1 + 2j)).astype(np.complex64)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "c.nii")
    with pytest.raises(VolumeError, match="complex.*magnitude"):
        read_volume(tmp_path / "c.nii")


def test_complex_array_is_refused():
    with pytest.raises(VolumeError, match="complex"):
        Volume(np.ones((2, 2, 2), np.complex64))


def test_non_finite_is_refused(tmp_path):
    arr = np.ones((3, 3, 3), np.float32)
    arr[1, 1, 1] = np.nan
    arr[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "n.nii")
    with pytest.raises(VolumeError, match="2 voxel.*nan_to_num"):
        read_volume(tmp_path / "n.nii")
    with pytest.raises(VolumeError, match="NaN"):
        write_volume(tmp_path / "n2.nii", arr)


def test_empty_is_refused(tmp_path):
    with pytest.raises(VolumeError, match="empty"):
        Volume(np.zeros((0, 4, 4), np.float32))
    with pytest.raises(VolumeError, match="empty"):
        write_volume(tmp_path / "e.mha", np.zeros((3, 0, 4), np.float32))


def test_unreadable_and_unknown_files(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(VolumeError, match="not a readable NIfTI"):
        read_volume(bad)
    bad_mha = tmp_path / "broken.mha"
    bad_mha.write_text("garbage")
    with pytest.raises(VolumeError, match="not readable by SimpleITK"):
        read_volume(bad_mha)
    other = tmp_path / "volume.tif"
    other.write_bytes(b"x")
    with pytest.raises(VolumeError, match=r"unknown extension '\.tif'.*\.nii\.gz"):
        read_volume(other)
    with pytest.raises(VolumeError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    with pytest.raises(VolumeError, match="cannot write"):
        write_volume(tmp_path / "out.png", np.zeros((2, 2, 2), np.float32))


def test_bad_axis_and_dimensions(tmp_path):
    path = write_volume(tmp_path / "v.nii", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(VolumeError, match="axis must be 0, 1 or 2"):
        read_volume(path, axis=3)
    with pytest.raises(VolumeError, match="3D"):
        Volume(np.zeros((3, 4), np.float32))
    with pytest.raises(VolumeError, match="singular"):
        Volume(np.zeros((2, 2, 2), np.float32), affine=np.zeros((4, 4)))


def test_itk_4d_frame_and_vector_images(tmp_path):
    arr = np.stack([np.full((3, 4, 5), f, np.float32) for f in range(2)])  # (t, z, y, x)
    sitk.WriteImage(sitk.GetImageFromArray(arr, isVector=False), str(tmp_path / "t.mha"))
    with pytest.raises(VolumeError, match="2 frames"):
        read_volume(tmp_path / "t.mha")
    v = read_volume(tmp_path / "t.mha", frame=1)
    assert v.shape == (3, 5, 4) and np.all(v.data == 1.0)
    rgb = sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.mha"))
    with pytest.raises(VolumeError, match="3-component"):
        read_volume(tmp_path / "rgb.mha")


def test_a_gzipped_nifti_named_nii_is_refused_with_the_right_name(tmp_path):
    import gzip

    import nibabel as nib
    import numpy as np
    import pytest

    from napari_d3ip.io.volumes import VolumeError, read_volume

    good = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(good))
    bad = tmp_path / "v.nii"
    bad.write_bytes(good.read_bytes())
    assert gzip.decompress(bad.read_bytes())  # really gzip
    with pytest.raises(VolumeError, match=r"gzip-compressed: name it \.nii\.gz"):
        read_volume(bad)
