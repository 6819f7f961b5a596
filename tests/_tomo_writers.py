"""Small parallel-beam CT files written to the formats' public specifications, for the tests.

A known volume is projected with an independent projector (`skimage.transform.radon`, not
ours), turned into detector counts by Beer-Lambert (I = flat * exp(-p * scale) + dark, with
Gaussian noise of the counts' Poisson std) and written as a beamline would: Data Exchange
(`/exchange/data`, `data_white`, `data_dark`, `theta` in degrees) or NeXus NXtomo (one
`data` stack with `image_key`, `sample/rotation_angle`). The detector row r of the files is
slice r of the volume, the detector columns are radon's detector bins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def phantom(n: int = 32, slices: int = 3) -> np.ndarray:
    """(slices, n, n) in [0, 1], zero outside a circle of radius n/2 - 5 and asymmetric in
    both in-plane axes (a left-right or up-down flip, or a transpose, changes it)."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = n / 2 - 5
    vol = np.zeros((slices, n, n))
    for s in range(slices):
        body = (xx / (0.9 * r)) ** 2 + (yy / (0.7 * r)) ** 2 <= 1
        vol[s][body] = 0.4
        vol[s][((xx + 0.45 * r) ** 2 + (yy + 0.35 * r) ** 2) <= (0.22 * r) ** 2] = 1.0  # top left
        vol[s][(np.abs(xx - 0.45 * r) <= 0.12 * r) & (np.abs(yy - 0.1 * r) <= 0.4 * r)] = 0.7
        vol[s][((xx - 0.1 * r) ** 2 + (yy - 0.5 * r) ** 2) <= ((0.1 + 0.03 * s) * r) ** 2] = 0.1
    return vol


def radon_sinograms(volume: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """(slices, views, n) line integrals (pixel units) by skimage's radon (circle=True)."""
    from skimage.transform import radon

    return np.stack([radon(s, np.asarray(angles_deg), circle=True).T for s in volume])


def shift_columns(sino: np.ndarray, shift: float) -> np.ndarray:
    """Move every projection `shift` detector pixels towards higher columns (a rotation axis
    `shift` pixels right of the middle): an exact Fourier shift of the zero-padded rows."""
    n = sino.shape[-1]
    spec = np.fft.rfft(sino, 2 * n, axis=-1)
    f = np.fft.rfftfreq(2 * n)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * f * shift), 2 * n, axis=-1)[..., :n]


def counts(sino: np.ndarray, scale: float = 0.03, flat_level: float = 2.0e4,
           dark_level: float = 100.0, n_flats: int = 4, n_darks: int = 3, seed: int = 0,
           noise: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector frames (views, rows, cols) from sinograms (rows = slices, views, cols), with
    flats (a smooth beam profile) and darks (an offset pattern), all with Gaussian noise of
    `noise` times the Poisson std of the counts, as float32 counts."""
    g = np.random.default_rng(seed)
    rows, views, cols = sino.shape
    jj = np.arange(cols)[None, :]
    ii = np.arange(rows)[:, None]
    beam = flat_level * (1.0 + 0.2 * np.cos(2 * np.pi * jj / cols) + 0.05 * np.sin(ii))
    dark = dark_level * (1.0 + 0.1 * np.cos(jj / 3.0 + ii))
    clean = beam[None] * np.exp(-np.transpose(sino, (1, 0, 2)) * scale) + dark[None]

    def noisy(x: np.ndarray) -> np.ndarray:
        return np.clip(x + noise * g.standard_normal(x.shape) * np.sqrt(x), 0, None)

    proj = noisy(clean).astype(np.float32)
    flats = noisy(np.repeat((beam + dark)[None], n_flats, 0)).astype(np.float32)
    darks = noisy(np.repeat(dark[None], n_darks, 0)).astype(np.float32)
    return proj, flats, darks


def write_dxchange(path: Path, proj: np.ndarray, flats: np.ndarray, darks: np.ndarray | None,
                   theta_deg: np.ndarray, pixel_size: tuple[float, str] | None = None) -> Path:
    """A Data Exchange file: /exchange/{data, data_white, data_dark, theta}; the pixel size
    (value, units) in /measurement/instrument/detector/{x,y}_pixel_size."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["implements"] = "exchange:measurement"
        ex = f.create_group("exchange")
        ex.create_dataset("data", data=proj, chunks=(1, *proj.shape[1:]))
        ex.create_dataset("data_white", data=flats)
        if darks is not None:
            ex.create_dataset("data_dark", data=darks)
        ex.create_dataset("theta", data=np.asarray(theta_deg, np.float32))
        if pixel_size is not None:
            det = f.create_group("measurement/instrument/detector")
            for axis in ("x", "y"):
                ds = det.create_dataset(f"{axis}_pixel_size", data=np.float64(pixel_size[0]))
                ds.attrs["units"] = pixel_size[1]
    return path


def write_nxtomo(path: Path, proj: np.ndarray, flats: np.ndarray, darks: np.ndarray,
                 theta_deg: np.ndarray, pixel_size: tuple[float, str] | None = None,
                 entry: str = "scan0001", angle_units: str = "degree") -> Path:
    """An NXtomo file: darks, half the flats, the projections, the other flats in one stack
    with image_key; rotation_angle per frame; an NXdata group soft-linking both. The entry's
    name is not 'entry' on purpose (readers must find it by class)."""
    import h5py

    half = max(1, flats.shape[0] // 2)
    stack = np.concatenate([darks, flats[:half], proj, flats[half:]])
    keys = np.concatenate([np.full(len(darks), 2), np.full(half, 1), np.zeros(len(proj)),
                           np.full(len(flats) - half, 1)]).astype(np.uint8)
    theta = np.asarray(theta_deg, np.float64)
    rot = np.concatenate([np.zeros(len(darks) + half), theta, np.full(len(flats) - half, theta[-1])])
    if angle_units.startswith("rad"):
        rot = np.deg2rad(rot)
    with h5py.File(path, "w") as f:
        e = f.create_group(entry)
        e.attrs["NX_class"] = "NXentry"
        e.create_dataset("definition", data="NXtomo")
        inst = e.create_group("instrument")
        inst.attrs["NX_class"] = "NXinstrument"
        det = inst.create_group("camera")
        det.attrs["NX_class"] = "NXdetector"
        det.create_dataset("data", data=stack, chunks=(1, *stack.shape[1:]))
        det.create_dataset("image_key", data=keys)
        if pixel_size is not None:
            for axis in ("x", "y"):
                det.create_dataset(f"{axis}_pixel_size", data=np.float64(pixel_size[0]))
                det[f"{axis}_pixel_size"].attrs["units"] = pixel_size[1]
        sample = e.create_group("specimen")
        sample.attrs["NX_class"] = "NXsample"
        sample.create_dataset("rotation_angle", data=rot)
        sample["rotation_angle"].attrs["units"] = angle_units
        data = e.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data["data"] = h5py.SoftLink(f"/{entry}/instrument/camera/data")
        data["rotation_angle"] = h5py.SoftLink(f"/{entry}/specimen/rotation_angle")
    return path
