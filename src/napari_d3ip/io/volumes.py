"""Read and write 3D volumes (NIfTI, NRRD, MHA/MHD, DICOM series) without losing geometry.

Conventions (DESIGN.md, "Units and conventions"):

* A `Volume` holds `data` as (slices, H, W) float32 in the *file's* intensities and a 4x4
  `affine` that maps a voxel index (slice, row, col, 1) to world coordinates in RAS+
  millimetres (the NIfTI/nibabel convention; ITK files, which are LPS, are converted).
* Every format is first put in the file's own voxel index order (i, j, k): nibabel's array
  order for NIfTI, ITK's (x, y, z) for NRRD/MHA/MHD/DICOM. `axis` picks which of i, j, k
  becomes the slice axis; the other two keep their order as (row, col). The default, 2 (k),
  is the last NIfTI array axis: axial slices for RAS-like volumes and for DICOM axial series.
* The affine is permuted with the data, so the world position of every voxel is unchanged;
  `write_volume` undoes the permutation, so read -> write -> read (same `axis`) gives back the
  same array, the same file layout and the same affine.

The pipeline works in [0, 1]; `to_unit_range` / `from_unit_range` map between the two and
the (lo, hi) pair travels with the measurement so results can be written in file units.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import D3IPError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")
_LPS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS (its own inverse)


class VolumeError(D3IPError):
    """A volume that cannot be read or written; the message names the problem and the fix."""


@dataclass
class Volume:
    """A 3D volume in file intensities with its voxel (slice, row, col) -> world RAS affine."""

    data: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    source: str = ""
    axis: int = 2
    intensity: tuple[float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = _check_array(np.asarray(self.data), self.source or "volume")
        self.affine = _check_affine(self.affine)
        if self.axis not in (0, 1, 2):
            raise VolumeError(f"axis must be 0, 1 or 2, got {self.axis!r}")
        if self.intensity is None:
            self.intensity = (float(self.data.min()), float(self.data.max()))
        else:
            self.intensity = (float(self.intensity[0]), float(self.intensity[1]))
        lo, hi = self.intensity
        if not (np.isfinite(lo) and np.isfinite(hi)) or abs(hi - lo) > np.finfo(np.float32).max:
            raise VolumeError(f"{self.source or 'volume'}: intensities span {lo:.3g}..{hi:.3g}, "
                              "a range float32 cannot hold (results in file units would be "
                              "infinite); rescale the volume")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (slice, row, col): the affine's column norms."""
        return spacing_from_affine(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def origin(self) -> np.ndarray:
        """World RAS position (mm) of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()


# -- geometry helpers ----------------------------------------------------------------------
def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size along each index axis (column norms of the 3x3 part)."""
    a = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.linalg.norm(a[:3, :3], axis=0))  # type: ignore[return-value]


def _axis_order(axis: int) -> tuple[int, int, int]:
    """File index axes in (slice, row, col) order for slice axis `axis`."""
    rest = [a for a in (0, 1, 2) if a != axis]
    return (axis, rest[0], rest[1])


def _permutation(axis: int) -> np.ndarray:
    """P with (i, j, k, 1) = P @ (slice, row, col, 1)."""
    p = np.zeros((4, 4))
    for new, old in enumerate(_axis_order(axis)):
        p[old, new] = 1.0
    p[3, 3] = 1.0
    return p


def _to_slices(arr: np.ndarray, affine: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """File order (i, j, k) -> (slice, row, col) with the affine permuted to match."""
    if axis not in (0, 1, 2):
        raise VolumeError(f"axis must be 0, 1 or 2 (the file's i, j, k index axis), got {axis!r}")
    return np.transpose(arr, _axis_order(axis)), affine @ _permutation(axis)


def _from_slices(data: np.ndarray, affine: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `_to_slices`."""
    order = _axis_order(axis)
    return np.transpose(data, np.argsort(order)), affine @ np.linalg.inv(_permutation(axis))


def _check_affine(affine: np.ndarray) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise VolumeError(f"affine must be 4x4, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise VolumeError("affine contains NaN/inf; fix the file header (spacing/origin/direction)")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise VolumeError("affine is singular (zero spacing or degenerate direction); fix the "
                          "file header or pass a valid affine")
    return a


def _check_array(arr: np.ndarray, what: str) -> np.ndarray:
    """Real, finite, non-empty, 3D -> float32; otherwise a VolumeError that says what to do."""
    if np.iscomplexobj(arr):
        raise VolumeError(f"{what}: complex data ({arr.dtype}); napari-d3ip reconstructs real "
                          "images. Save the magnitude (numpy.abs) or the real part instead.")
    if arr.dtype.names is not None or arr.dtype == object:
        raise VolumeError(f"{what}: structured/RGB or object data ({arr.dtype}); convert it to a "
                          "single-channel grey-level volume first.")
    if arr.size == 0:
        raise VolumeError(f"{what}: the volume is empty (shape {arr.shape}); check the file "
                          "(or the series/frame you chose) really contains voxels.")
    if arr.ndim != 3:
        raise VolumeError(f"{what}: expected a 3D volume (slices, H, W), got shape {arr.shape}")
    from ..validation import InputError, check_real_dtype, float32_overflow

    try:
        check_real_dtype(arr.dtype, what, bool_ok=True)
    except InputError as e:
        raise VolumeError(str(e)) from None
    over = float32_overflow(arr)
    if over:
        raise VolumeError(f"{what}: {over} voxel(s) lie beyond float32's range (largest "
                          f"{np.nanmax(np.abs(arr)):.3g} > 3.4e38): they would become infinite; "
                          "rescale the volume before saving it")
    arr = arr.astype(np.float32, copy=False)
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise VolumeError(f"{what}: {bad} voxel(s) are NaN or infinite; replace them (e.g. "
                          "numpy.nan_to_num(data, nan=0.0)) and save the volume again.")
    return np.ascontiguousarray(arr)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _select_frame(arr: np.ndarray, frame: int | None, what: str, n_spatial: int = 3) -> np.ndarray:
    """Drop a 4th (time/channel) axis at position `n_spatial` by choosing one frame."""
    if arr.ndim <= n_spatial:
        if frame not in (None, 0):
            raise VolumeError(f"{what}: frame={frame} given but the volume is 3D; drop frame=")
        return arr
    extra = arr.shape[n_spatial:]
    if arr.ndim > n_spatial + 1:
        # trailing singleton axes (NIfTI 5D with one component) are harmless
        squeezed = arr.reshape(arr.shape[:n_spatial] + (int(np.prod(extra)),))
        if any(e != 1 for e in extra[1:]):
            raise VolumeError(f"{what}: {arr.ndim}D data of shape {arr.shape} (vector or multi-"
                              "component images) is not supported; extract one 3D volume first.")
        arr = squeezed
    n = arr.shape[n_spatial]
    if n == 1 and frame in (None, 0):
        return arr[..., 0]
    if frame is None:
        raise VolumeError(f"{what}: 4D data with {n} frames (shape {arr.shape}); choose one "
                          f"with frame=<0..{n - 1}> (CLI: --frame).")
    if not -n <= frame < n:
        raise VolumeError(f"{what}: frame={frame} out of range; the file has {n} frames "
                          f"(0..{n - 1}).")
    return arr[..., frame]


# -- reading -------------------------------------------------------------------------------
def read_volume(path: str | Path, axis: int = 2, frame: int | None = None,
                series: str | None = None) -> Volume:
    """Read a NIfTI/NRRD/MHA/MHD file or a DICOM series folder as a `Volume`.

    `axis` (0, 1 or 2) is the file index axis (NIfTI array axis, ITK x/y/z) to slice along;
    `frame` picks one volume of 4D data; `series` the SeriesInstanceUID of a DICOM folder
    holding several series.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder; check the path")
    if axis not in (0, 1, 2):
        raise VolumeError(f"axis must be 0, 1 or 2 (the file's i, j, k index axis), got {axis!r}")
    meta: dict[str, Any] = {}
    if path.is_dir():
        arr, affine, meta = _read_dicom_series(path, series, frame)
    else:
        suffix = _suffix(path)
        if suffix in NIFTI_SUFFIXES:
            arr, affine = _read_nifti(path, frame)
        elif suffix in ITK_SUFFIXES:
            arr, affine = _read_itk_file(path, frame)
        elif suffix == ".dcm":
            raise VolumeError(f"{path}: a single DICOM file; pass the folder holding the whole "
                              "series instead (read_volume(folder) / --volume <folder>).")
        else:
            raise VolumeError(f"{path}: unknown extension {suffix!r}; supported: "
                              f"{', '.join(NIFTI_SUFFIXES + ITK_SUFFIXES)} or a DICOM folder. "
                              "Convert the file (e.g. with SimpleITK) to one of these.")
    if frame is not None:
        meta["frame"] = int(frame)
    arr = _check_array(arr, str(path))
    data, affine = _to_slices(arr, _check_affine(affine), axis)
    return Volume(np.ascontiguousarray(data), affine, source=str(path), axis=axis, meta=meta)


def _is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes (a .nii.gz saved as .nii, say)."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def _read_nifti(path: Path, frame: int | None) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises many types for corrupt files
        hint = ("; it is gzip-compressed: name it .nii.gz" if _is_gzip(path) and path.suffix == ".nii"
                else "; check the file is complete and really NIfTI")
        raise VolumeError(f"{path}: not a readable NIfTI file ({e}){hint}") from e
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind == "c":
        raise VolumeError(f"{path}: complex data ({dtype}); napari-d3ip reconstructs real images. "
                          "Save the magnitude (numpy.abs) or the real part instead.")
    if dtype.names is not None:
        raise VolumeError(f"{path}: RGB/structured data ({dtype}); convert it to a single-channel "
                          "grey-level volume first.")
    shape = img.shape
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) > 3 and frame is None and int(np.prod(shape[3:])) > 1:
        # fail before reading a possibly large 4D array
        _select_frame(np.empty(shape, dtype=np.uint8), None, str(path))
    _check_claimed_size(path, shape)
    _check_nifti_data_present(path, img)  # a truncated or damaged file, before the big read
    try:
        arr = _nifti_data(path, img)
    except VolumeError:
        raise
    except Exception as e:
        raise VolumeError(f"{path}: the voxel data could not be read ({e}); the file may be "
                          "truncated") from e
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = _select_frame(arr, frame, str(path))
    return arr, np.asarray(img.affine, dtype=np.float64)


def _nifti_data(path: Path, img) -> np.ndarray:
    """The voxels scaled by the header's scl_slope/scl_inter in float64, refused when the
    scaling is not finite or puts values beyond float32 (nibabel would scale int16 by a float32
    slope and give inf without a word)."""
    proxy = img.dataobj
    raw = np.asarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    if not (np.isfinite(slope) and np.isfinite(inter)):
        raise VolumeError(f"{path}: the header's intensity scaling is not finite (scl_slope="
                          f"{slope}, scl_inter={inter}); fix the header (slope 1, intercept 0)")
    if raw.dtype.kind in "iu" and raw.size:
        lo, hi = float(raw.min()), float(raw.max())
        ends = np.array([lo * slope + inter, hi * slope + inter])
        if not np.all(np.isfinite(ends)) or np.max(np.abs(ends)) > np.finfo(np.float32).max:
            raise VolumeError(f"{path}: {raw.dtype} data {lo:g}..{hi:g} scaled by scl_slope="
                              f"{slope:g}, scl_inter={inter:g} give {ends[0]:.3g}..{ends[1]:.3g}, "
                              "beyond float32's range: an impossible intensity range; fix the "
                              "header's scaling")
    if slope == 1.0 and inter == 0.0:
        return raw
    return raw.astype(np.float64) * slope + inter


def _check_nifti_data_present(path: Path, img) -> None:
    """Refuse a NIfTI whose file holds fewer voxel bytes than its header claims (a 752-byte
    file claiming 1000^3 voxels) and a .nii.gz whose gzip stream fails its CRC or length check
    (nibabel does not verify it: damaged integer data would be read as plausible values).
    Streaming: one decompression pass in 4 MiB pieces, bounded by the claimed size."""
    hdr = img.header
    try:
        offset = int(hdr.get_data_offset())
        need = offset + int(np.prod(hdr.get_data_shape(), dtype=np.float64)) * \
            np.dtype(hdr.get_data_dtype()).itemsize
    except Exception:  # a header nibabel could not size: the read reports it
        return
    if _suffix(path) == ".nii.gz":
        have = _gzip_size(path, limit=need + (64 << 20))
    else:
        have = path.stat().st_size
    if have < need:
        raise VolumeError(f"{path}: truncated: its header claims {need:,} bytes (voxels "
                          f"{' x '.join(map(str, hdr.get_data_shape()))} {hdr.get_data_dtype()} "
                          f"from byte {offset}) but the file holds {have:,}"
                          f"{' once decompressed' if _suffix(path) == '.nii.gz' else ''}; copy "
                          "the file again")


def _gzip_size(path: Path, limit: float) -> int:
    """Decompressed size of a gzip file, verifying every member's CRC-32 and length; stops
    (refusing) past `limit` bytes (more data than the header can use: not this file)."""
    import gzip
    import zlib

    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 22)
                if not chunk:
                    return total
                total += len(chunk)
                if total > limit:
                    raise VolumeError(f"{path}: the gzip stream holds more than {limit:,.0f} "
                                      "bytes, far more than the header claims; not a valid "
                                      "NIfTI file")
    except (OSError, EOFError, zlib.error) as e:
        raise VolumeError(f"{path}: the gzip data are damaged ({e}); the voxels cannot be "
                          "trusted: copy or export the file again") from None


def _check_claimed_size(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse before reading a header that claims more voxels than memory can hold (a
    compressed file can claim far more than its size; reading it would exhaust memory)."""
    from .files import check_memory

    n = float(np.prod([max(int(s), 0) for s in shape], dtype=np.float64))
    # float32 data, the transposed copy and the [0, 1] copy the pipeline makes
    check_memory(n * 4 * 3, f"{path} (its header claims {' x '.join(map(str, shape))} voxels)")


def _itk_geometry(img) -> np.ndarray:
    """ITK (x, y, z) index -> RAS affine from origin/spacing/direction (first 3 dims)."""
    dim = img.GetDimension()
    n = min(dim, 3)
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:n, :n]
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)[:n]
    origin = np.asarray(img.GetOrigin(), dtype=np.float64)[:n]
    m = np.eye(3)
    m[:n, :n] = direction * spacing[None, :]
    o = np.zeros(3)
    o[:n] = origin
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ m
    affine[:3, 3] = _LPS @ o
    return affine


def _itk_to_array(img, what: str, frame: int | None) -> np.ndarray:
    import SimpleITK as sitk

    if img.GetNumberOfComponentsPerPixel() > 1:
        raise VolumeError(f"{what}: {img.GetNumberOfComponentsPerPixel()}-component (vector/RGB) "
                          "pixels; convert to a single-channel grey-level volume first.")
    pid = img.GetPixelID()
    if pid in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise VolumeError(f"{what}: complex data; napari-d3ip reconstructs real images. Save the "
                          "magnitude (numpy.abs) or the real part instead.")
    arr = sitk.GetArrayFromImage(img)  # reversed index order: (..., z, y, x)
    dim = img.GetDimension()
    arr = np.transpose(arr, tuple(range(arr.ndim))[::-1])  # -> (x, y, z, [t])
    if dim == 2:
        arr = arr[:, :, None]
    return _select_frame(arr, frame, what)


def _read_itk_file(path: Path, frame: int | None) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    try:
        info = sitk.ImageFileReader()
        info.SetFileName(str(path))
        info.ReadImageInformation()
        size = tuple(info.GetSize()) + (info.GetNumberOfComponents(),)
    except Exception:  # the full read below reports what is wrong
        size = None
    if size is not None:
        _check_claimed_size(path, size)
    try:
        img = sitk.ReadImage(str(path))
    except Exception as e:  # RuntimeError from ITK with a long message
        first = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise VolumeError(f"{path}: not readable by SimpleITK ({first}); check the file (and its "
                          ".raw data file for .mhd/.nhdr) is complete") from e
    return _itk_to_array(img, str(path), frame), _itk_geometry(img)


def dicom_series(folder: str | Path) -> dict[str, int]:
    """SeriesInstanceUID -> number of files for every DICOM series in `folder`."""
    import SimpleITK as sitk

    folder = str(folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return {uid: len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in uids}


def _looks_like_dicom(f: Path) -> bool:
    if f.suffix.lower() == ".dcm":
        return True
    try:
        with open(f, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _check_dicom_complete(folder: Path, names: list[str], found: dict[str, int]) -> None:
    """Refuse a series with unreadable (truncated) files or missing / repeated slices.

    GDCM leaves files it cannot parse out of every series and ITK then stacks the remaining
    slices with an averaged spacing (only a warning on stderr): the volume would silently have
    fewer slices at the wrong positions.
    """
    import SimpleITK as sitk

    listed: set[str] = set()
    for uid in found:
        listed.update(os.path.realpath(n) for n in
                      sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
    orphans = sorted(f.name for f in folder.iterdir() if f.is_file()
                     and os.path.realpath(f) not in listed and _looks_like_dicom(f))
    if orphans:
        shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5
                                          else "")
        raise VolumeError(f"{folder}: {len(orphans)} DICOM file(s) could not be read ({shown}): "
                          "truncated or damaged; copy the series again (the volume would miss "
                          "those slices)")
    positions, numbers = [], []
    normal = None
    for n in names:
        r = sitk.ImageFileReader()
        r.SetFileName(n)
        try:
            r.ReadImageInformation()
        except Exception as e:
            raise VolumeError(f"{folder}: {Path(n).name} is not a readable DICOM file ({e}); "
                              "copy the series again") from e
        keys = set(r.GetMetaDataKeys())
        if "0020|0032" in keys and "0020|0037" in keys and normal is None:
            o = [float(v) for v in r.GetMetaData("0020|0037").split("\\")]
            if len(o) == 6:
                normal = np.cross(o[:3], o[3:])
        if "0020|0032" in keys and normal is not None:
            pos = [float(v) for v in r.GetMetaData("0020|0032").split("\\")]
            positions.append(float(np.dot(pos, normal)))
        if "0020|0013" in keys:
            with contextlib.suppress(ValueError):
                numbers.append(int(float(r.GetMetaData("0020|0013"))))
    if len(positions) == len(names) and len(names) >= 2:
        p = np.sort(np.asarray(positions))
        d = np.diff(p)
        step = float(np.median(d))
        if step <= 1e-6 or np.any(d <= 1e-3 * max(step, 1e-6)):
            raise VolumeError(f"{folder}: two or more files of the series are at the same slice "
                              "position (duplicated slices); keep one copy of each")
        if np.any(np.abs(d - step) > 0.05 * step):
            k = int(np.argmax(np.abs(d - step)))
            missing = int(round(d[k] / step)) - 1
            raise VolumeError(f"{folder}: the slice positions jump from {p[k]:.2f} to "
                              f"{p[k + 1]:.2f} mm where the series steps by {step:.2f} mm: "
                              f"{'about ' + str(missing) if missing > 0 else 'some'} slice(s) "
                              f"are missing ({len(names)} files found); copy the whole series")
    elif len(numbers) == len(names) and len(names) >= 2:
        nums = sorted(numbers)
        gaps = [b for a, b in zip(nums, nums[1:]) if b - a != 1]
        if gaps:
            raise VolumeError(f"{folder}: instance numbers {nums[0]}..{nums[-1]} have gaps "
                              f"({len(names)} files): slices are missing; copy the whole series")


def _read_dicom_series(folder: Path, series: str | None, frame: int | None):
    import SimpleITK as sitk

    found = dicom_series(folder)
    if not found:
        raise VolumeError(f"{folder}: a folder without any DICOM series; pass a folder of .dcm "
                          "files of one series, or a NIfTI/NRRD/MHA file")
    if series is None:
        if len(found) > 1:
            listing = "\n".join(f"  {uid}  ({n} files)" for uid, n in found.items())
            raise VolumeError(f"{folder}: holds {len(found)} DICOM series:\n{listing}\nchoose one "
                              "with series='<uid>' (CLI: --series <uid>)")
        series = next(iter(found))
    elif series not in found:
        raise VolumeError(f"{folder}: no DICOM series {series!r}; available: "
                          f"{', '.join(found)}")
    names = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series))
    _check_dicom_complete(folder, names, found)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    try:
        img = reader.Execute()
    except Exception as e:
        raise VolumeError(f"{folder}: DICOM series {series} could not be read ({e}); check all "
                          "files of the series are present and uncompressed/readable") from e
    what = f"{folder} (series {series})"
    return _itk_to_array(img, what, frame), _itk_geometry(img), {"series": series}


# -- writing -------------------------------------------------------------------------------
def write_volume(path: str | Path, volume: Volume | np.ndarray, affine: np.ndarray | None = None,
                 overwrite: bool = False, axis: int | None = None,
                 inputs: tuple[tuple[str, str | Path | None], ...] = ()) -> Path:
    """Write a (slices, H, W) volume as NIfTI (.nii, .nii.gz) or MHA/MHD/NRRD.

    The data go back to the file index order the volume was read in (`axis`, default the
    Volume's, else 2) so a round trip reproduces the file. `affine` (slice, row, col -> RAS)
    overrides the Volume's; an array without one gets the identity. Never overwrites an
    existing file unless `overwrite=True` (for .mhd neither the header nor its .zraw data
    file), and never one of `inputs` ((description, path) pairs; an .mhd input's data file
    included). The destination is checked (io.files.check_output) before the data are touched.
    """
    path = Path(path)
    suffix = _suffix(path)
    if path.is_dir():
        raise VolumeError(f"{path} is a directory; name a file such as {path / 'volume.nii.gz'}")
    if suffix not in WRITE_SUFFIXES:
        raise VolumeError(f"{path}: cannot write {suffix or 'files without extension'!r}; use one "
                          f"of {', '.join(WRITE_SUFFIXES)}")
    from .files import check_output

    if path.exists() and not overwrite:  # (an .mhd's data file: check_output below)
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it, "
                              "or choose another name")
    if isinstance(volume, Volume):
        data = volume.data
        aff = volume.affine if affine is None else affine
        axis = volume.axis if axis is None else axis
    else:
        data = _check_array(np.asarray(volume), str(path))
        aff = np.eye(4) if affine is None else affine
        axis = 2 if axis is None else axis
    aff = _check_affine(aff)
    check_output(path, inputs=inputs, force=overwrite, what="volume", option="output",
                 nbytes=data.size * 4 + 4096)
    if suffix == ".mhd":
        arr, file_affine = _file_layout(data, aff, axis)
        _write_mhd(path, arr, file_affine)
        return path
    from .files import atomic_path

    with atomic_path(path) as tmp:  # a full disk or Ctrl-C never leaves a truncated file
        write_volume_at(tmp, data, aff, axis)
    return path


def _file_layout(data: np.ndarray, affine: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    arr, file_affine = _from_slices(data, affine, axis)
    return np.ascontiguousarray(arr, dtype=np.float32), file_affine


def write_volume_at(path: Path, data: np.ndarray, affine: np.ndarray, axis: int = 2) -> None:
    """Write checked (slices, H, W) float32 data to exactly `path` (NIfTI by its name, else
    ITK), no checks and no temporary of its own: for writers that already hold a temporary
    name (`save_result`), whose own temporary would otherwise get a second, longer one."""
    arr, file_affine = _file_layout(data, _check_affine(affine), axis)
    if _suffix(path) in NIFTI_SUFFIXES:
        _write_nifti(path, arr, file_affine)
    else:
        _write_itk(path, arr, file_affine)


def _write_mhd(path: Path, arr: np.ndarray, affine: np.ndarray) -> None:
    """.mhd + its data file: both written in a temporary folder with their final names (the
    header names its data file), then moved into place, data first. Only the two files the
    header stands for are moved (`files.planned_outputs`); a failed write leaves nothing."""
    import shutil
    import tempfile

    from .files import OutputError, planned_outputs, write_error

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    except OSError as e:
        raise write_error(path, e) from None
    try:
        _write_itk(tmpdir / path.name, arr, affine)
        made = {f.name for f in tmpdir.iterdir()}
        wanted = [p for p in reversed(planned_outputs(path))]
        if made != {p.name for p in wanted}:
            raise OutputError(f"{path}: SimpleITK wrote {sorted(made)}, not the expected "
                              f"{sorted(p.name for p in wanted)}; nothing was replaced")
        for target in wanted:  # data file first, the header last
            os.replace(tmpdir / target.name, target)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _write_nifti(path: Path, arr: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(arr, affine)
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="scanner")
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _write_itk(path: Path, arr: np.ndarray, affine: np.ndarray) -> None:
    import SimpleITK as sitk

    m = _LPS @ affine[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    direction = m / spacing[None, :]
    img = sitk.GetImageFromArray(np.transpose(arr, (2, 1, 0)))  # (x, y, z) -> (z, y, x)
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(v) for v in _LPS @ affine[:3, 3]])
    img.SetDirection([float(v) for v in direction.reshape(-1)])
    try:
        sitk.WriteImage(img, str(path), useCompression=True)
    except Exception as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise OSError(f"SimpleITK could not write the file ({first})") from e


# -- intensity range -----------------------------------------------------------------------
def to_unit_range(vol: Volume | np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Scale to [0, 1] (the prior's range); returns the data and the (lo, hi) to undo it.

    A constant volume maps to zeros (there is nothing to scale).
    """
    if isinstance(vol, Volume):
        data = vol.data
        lo, hi = vol.intensity  # type: ignore[misc]
    else:
        data = _check_array(np.asarray(vol), "volume")
        lo, hi = float(data.min()), float(data.max())
    span = hi - lo
    if span <= 0:
        return np.zeros(data.shape, np.float32), (float(lo), float(hi))
    out = (data.astype(np.float64) - lo) / span
    return np.clip(out, 0.0, 1.0).astype(np.float32), (float(lo), float(hi))


def from_unit_range(data01: np.ndarray, intensity: tuple[float, float]) -> np.ndarray:
    """Map [0, 1] back to the file's intensities (lo, hi)."""
    lo, hi = float(intensity[0]), float(intensity[1])
    return (np.asarray(data01, dtype=np.float64) * (hi - lo) + lo).astype(np.float32)
