"""Test helpers: small MRI files written to each public specification from a known volume,
known coil maps, a known smooth phase and known noise (CT writers live in their own module).

- fastMRI (facebookresearch/fastMRI README): `kspace` complex64 (slices, coils, readout,
  phase) or (slices, readout, phase), readout oversampled 2x, `ismrmrd_header` XML, test
  style with a 1-D `mask` and attrs `acceleration` / `num_low_frequency`, training style
  fully sampled with `reconstruction_rss` / `reconstruction_esc` (recon-size crop).
- ISMRMRD (ismrmrd.readthedocs.io, the HDF5 layout): `/dataset/xml` and `/dataset/data`, a
  compound of `head` (AcquisitionHeader), `traj` (vlen float32) and `data` (vlen float32,
  interleaved complex, coils x samples), one acquisition per acquired line.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import torch

from napari_d3ip.io.formats._mrheader import header_xml
from napari_d3ip.operators import birdcage_maps


def smooth_phase(shape: tuple[int, int], strength: float = 1.0) -> np.ndarray:
    """A smooth image phase (radians): a tilt plus a gentle bowl, as B0 and the coil give."""
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return strength * (0.9 * xx - 0.6 * yy + 0.7 * (xx**2 + yy**2) + 0.3)


def coil_images(volume: np.ndarray, n_coils: int, phase: float = 0.0) -> np.ndarray:
    """(N, C, H, W) complex coil images S_c x e^{i phi} (single coil: C = 1, S = 1)."""
    n, h, w = volume.shape
    x = volume.astype(np.complex64) * np.exp(1j * smooth_phase((h, w), phase)).astype(np.complex64)
    if n_coils == 1:
        return x[:, None]
    maps = birdcage_maps(n_coils, (h, w)).numpy()
    return (maps[None] * x[:, None]).astype(np.complex64)


def _fft(x: np.ndarray, axes=(-2, -1)) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x))
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(t, dim=axes), dim=axes,
                                             norm="ortho"), dim=axes).numpy()


def add_noise(k: np.ndarray, support: np.ndarray, noise: float, seed: int,
              level_from: np.ndarray | None = None) -> np.ndarray:
    """k + circular Gaussian noise of std noise * mean|level_from| on `support` (the
    convention of Operator.simulate)."""
    if noise <= 0:
        return k
    ref = k if level_from is None else level_from
    sup = np.broadcast_to(support, ref.shape)
    std = noise * float(np.abs(ref[sup]).mean())
    rng = np.random.default_rng(seed)
    n = (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) / math.sqrt(2)
    return (k + std * n * np.broadcast_to(support, k.shape)).astype(np.complex64)


def fastmri_kspace(volume: np.ndarray, n_coils: int, phase: float = 0.0,
                   oversampling: int = 2) -> np.ndarray:
    """Fully sampled k-space of the volume with the readout (rows) oversampled: the object
    sits in the centre of a field of view `oversampling` times taller."""
    imgs = coil_images(volume, n_coils, phase)
    n, c, h, w = imgs.shape
    big = np.zeros((n, c, h * oversampling, w), np.complex64)
    r0 = big.shape[2] // 2 - h // 2
    big[:, :, r0:r0 + h] = imgs
    return _fft(big).astype(np.complex64)


def write_fastmri(path: Path, volume: np.ndarray, n_coils: int = 4, mask: np.ndarray | None = None,
                  phase: float = 0.0, noise: float = 0.0, seed: int = 0, pad: int = 0,
                  fov_mm: tuple[float, float, float] = (160.0, 160.0, 3.0),
                  reference: bool = True, edit=None) -> Path:
    """A fastMRI file of `volume` (N, H, W), readout oversampled 2x; `mask` (W,) makes a test
    file (unsampled columns zero, attrs), None a training file; `pad` columns at each side are
    unacquired (zero, outside encodingLimits). `edit(f)` damages the file for refusal tests."""
    n, h, w = volume.shape
    k = fastmri_kspace(volume, n_coils, phase)
    acquired = np.zeros(w, bool)
    acquired[pad:w - pad] = True
    support = acquired if mask is None else (mask & acquired)
    small = _fft(coil_images(volume, n_coils, phase))  # the noise level of the recon grid
    k = add_noise(k, support, noise, seed, level_from=small * support)
    k = k * support
    hdr = header_xml((2 * h, w, 1), (2 * fov_mm[0], fov_mm[1], fov_mm[2]), (h, w, 1), fov_mm,
                     step1=(0, w - 2 * pad - 1, w // 2 - pad), slices=(0, n - 1, n // 2))
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k if n_coils > 1 else k[:, 0])
        f.create_dataset("ismrmrd_header", data=np.bytes_(hdr))
        if mask is not None:
            f.create_dataset("mask", data=mask.astype(np.float32))
            f.attrs["acceleration"] = float(w / mask.sum())
            f.attrs["num_low_frequency"] = int(_centre_run(mask))
        elif reference:
            name = "reconstruction_rss" if n_coils > 1 else "reconstruction_esc"
            f.create_dataset(name, data=volume.astype(np.float32))
        f.attrs["acquisition"] = "CORPD_FBK"
        if edit is not None:
            edit(f)
    return path


def _centre_run(mask: np.ndarray) -> int:
    c = mask.size // 2
    lo, hi = c, c + 1
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < mask.size and mask[hi]:
        hi += 1
    return hi - lo


# -- ISMRMRD -------------------------------------------------------------------------------
_IDX = np.dtype([(n, "<u2") for n in ("kspace_encode_step_1", "kspace_encode_step_2", "average",
                                       "slice", "contrast", "phase", "repetition", "set",
                                       "segment")] + [("user", "<u2", (8,))])
ACQ_HEAD = np.dtype([
    ("version", "<u2"), ("flags", "<u8"), ("measurement_uid", "<u4"), ("scan_counter", "<u4"),
    ("acquisition_time_stamp", "<u4"), ("physiology_time_stamp", "<u4", (3,)),
    ("number_of_samples", "<u2"), ("available_channels", "<u2"), ("active_channels", "<u2"),
    ("channel_mask", "<u8", (16,)), ("discard_pre", "<u2"), ("discard_post", "<u2"),
    ("center_sample", "<u2"), ("encoding_space_ref", "<u2"), ("trajectory_dimensions", "<u2"),
    ("sample_time_us", "<f4"), ("position", "<f4", (3,)), ("read_dir", "<f4", (3,)),
    ("phase_dir", "<f4", (3,)), ("slice_dir", "<f4", (3,)), ("patient_table_position", "<f4", (3,)),
    ("idx", _IDX), ("user_int", "<i4", (8,)), ("user_float", "<f4", (8,))])


def _acq(n_samples: int, n_coils: int, geometry: dict | None, flags: int = 0, **idx) -> np.ndarray:
    """One AcquisitionHeader; `geometry` = {position, read_dir, phase_dir, slice_dir} (LPS, mm)."""
    h = np.zeros((), ACQ_HEAD)
    h["flags"] = flags
    h["number_of_samples"], h["active_channels"] = n_samples, n_coils
    h["available_channels"], h["center_sample"] = n_coils, n_samples // 2
    for k, v in (geometry or {}).items():
        h[k] = v
    for k, v in idx.items():
        h["idx"][k] = v
    return h


def _interleave(line: np.ndarray) -> np.ndarray:
    d = np.empty(2 * line.size, np.float32)
    d[0::2], d[1::2] = line.real.ravel(), line.imag.ravel()
    return d


def _write_ismrmrd(path: Path, heads: list, datas: list, hdr: str, edit=None) -> Path:
    rec = np.dtype([("head", ACQ_HEAD), ("traj", h5py.vlen_dtype(np.float32)),
                    ("data", h5py.vlen_dtype(np.float32))])
    arr = np.empty(len(heads), rec)
    for i, (h, d) in enumerate(zip(heads, datas, strict=True)):
        arr[i] = (h, np.zeros(0, np.float32), d)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset/xml", data=np.array([hdr.encode()], dtype=h5py.string_dtype()))
        f.create_dataset("dataset/data", data=arr)
        if edit is not None:
            edit(f)
    return path


def write_ismrmrd_3d(path: Path, volume: np.ndarray, mask: np.ndarray, n_coils: int = 4,
                     phase: float = 0.0, noise: float = 0.0, seed: int = 0,
                     partitions_in_slice: bool = False, geometry: dict | None = None,
                     edit=None) -> Path:
    """A 3-D Cartesian ISMRMRD file of `volume` (X, Y, Z), 1 mm voxels: readout x oversampled
    2x, one record per (ky, kz) line of `mask` (Y, Z), plus one noise scan first. With
    `partitions_in_slice` the kz index is stored in idx.slice (mridata.org's convention).
    `geometry` (LPS) goes into every acquisition header: voxel (i, j, k) then lies at
    position + (i - X//2) read_dir + (j - Y//2) phase_dir + (k - Z//2) slice_dir mm."""
    nx, ny, nz = volume.shape
    maps = birdcage_maps(n_coils, (ny, nz)).numpy() if n_coils > 1 else np.ones((1, ny, nz))
    ph = np.exp(1j * smooth_phase((ny, nz), phase))
    img = (maps[:, None] * (volume * ph)[None]).astype(np.complex64)  # (C, X, Y, Z)
    big = np.zeros((n_coils, 2 * nx, ny, nz), np.complex64)
    big[:, nx // 2:nx // 2 + nx] = img
    k = _fft(big, axes=(1, 2, 3))
    small = _fft(img, axes=(2, 3))  # the per-readout-position problem's data
    k = add_noise(k, mask[None, None], noise, seed, level_from=small * mask)
    heads = [_acq(2 * nx, n_coils, geometry, flags=1 << 18)]
    datas = [np.zeros(2 * n_coils * 2 * nx, np.float32)]
    for iy, iz in zip(*np.nonzero(mask), strict=True):
        heads.append(_acq(2 * nx, n_coils, geometry, kspace_encode_step_1=iy,
                          **{"slice" if partitions_in_slice else "kspace_encode_step_2": iz}))
        datas.append(_interleave(k[:, :, iy, iz]))  # (C, samples)
    hdr = header_xml((2 * nx, ny, nz), (2 * nx * 1.0, ny * 1.0, nz * 1.0), (nx, ny, nz),
                     (nx * 1.0, ny * 1.0, nz * 1.0), step1=(0, ny - 1, ny // 2),
                     step2=(0, nz - 1, nz // 2),
                     slices=(0, nz - 1, nz // 2) if partitions_in_slice else (0, 0, 0))
    return _write_ismrmrd(path, heads, datas, hdr, edit)


def write_ismrmrd_2d(path: Path, volume: np.ndarray, mask: np.ndarray, n_coils: int = 4,
                     phase: float = 0.0, noise: float = 0.0, seed: int = 0,
                     geometry: dict | None = None, slice_order: list[int] | None = None,
                     thickness: float = 3.0, edit=None) -> Path:
    """A 2-D multi-slice Cartesian ISMRMRD file of `volume` (S, X, Y), 1 mm pixels, readout x
    oversampled 2x, one record per (slice, ky) of `mask` (Y,), one noise scan first. Volume
    slice s is stored as idx.slice = slice_order[s] (default s: interleaved orders test the
    reader's spatial sort); with `geometry` its centre is position + (s - S//2) * thickness *
    slice_dir and pixel (x, y) lies (x - X//2) mm along read_dir, (y - Y//2) along phase_dir."""
    ns, nx, ny = volume.shape
    imgs = coil_images(volume, n_coils, phase)  # (S, C, X, Y)
    big = np.zeros((ns, n_coils, 2 * nx, ny), np.complex64)
    big[:, :, nx // 2:nx // 2 + nx] = imgs
    k = _fft(big)
    k = add_noise(k, mask[None, None, None], noise, seed, level_from=_fft(imgs) * mask)
    order = list(range(ns)) if slice_order is None else list(slice_order)
    heads = [_acq(2 * nx, n_coils, geometry, flags=1 << 18)]
    datas = [np.zeros(2 * n_coils * 2 * nx, np.float32)]
    for s in range(ns):
        geo = None
        if geometry is not None:
            geo = dict(geometry)
            geo["position"] = (np.asarray(geometry["position"], float)
                               + (s - ns // 2) * thickness * np.asarray(geometry["slice_dir"], float))
        for iy in np.flatnonzero(mask):
            heads.append(_acq(2 * nx, n_coils, geo, kspace_encode_step_1=iy, slice=order[s]))
            datas.append(_interleave(k[s, :, :, iy]))
    hdr = header_xml((2 * nx, ny, 1), (2.0 * nx, 1.0 * ny, thickness), (nx, ny, 1),
                     (1.0 * nx, 1.0 * ny, thickness), step1=(0, ny - 1, ny // 2),
                     step2=(0, 0, 0), slices=(0, ns - 1, ns // 2))
    return _write_ismrmrd(path, heads, datas, hdr, edit)
