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
