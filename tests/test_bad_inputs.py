"""Bad input, table-driven (issue 14): every case must end in a clear message that names the
problem, and must leave every file in its folder as it was (no output half-written, no input
replaced, nothing removed).

Each case prepares its files in a fresh folder, the folder is snapshotted (names, sizes, mtimes,
contents), the case runs through the CLI (`d3ip ...`, exit status 2), the Python API, the npe2
reader or the npe2 writer, and the folder is compared with the snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from napari_d3ip.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N, HW = 3, 16


# -- files the cases start from ------------------------------------------------------------
def make_measurement(kind: str = "ct"):
    from napari_d3ip.operators.base import Measurement
    from napari_d3ip.operators.ct import ParallelBeamCT
    from napari_d3ip.operators.mri import CartesianMRI, MulticoilMRI

    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, HW, HW, generator=g)
    mask = np.zeros((HW, HW), bool)
    mask[:, ::3] = True
    mask[:, HW // 2 - 2: HW // 2 + 2] = True
    if kind == "ct":
        op = ParallelBeamCT((HW, HW), n_views=7)
    elif kind == "mri":
        op = CartesianMRI(mask)
    else:
        maps = torch.complex(torch.randn(N, 2, HW, HW, generator=g),
                             torch.randn(N, 2, HW, HW, generator=g))
        op = MulticoilMRI(mask, maps)
    y = op.simulate(x, noise=0.01, seed=1)
    return Measurement(op, y, x[:, 0].numpy().copy(), np.eye(4), (1.0, 1.0, 1.0), (0.0, 1.0),
                       {"seed": 1}, "unit-test")


def meas(name: str = "m.h5", kind: str = "ct", edit: Callable | None = None) -> Callable:
    def prep(t: Path) -> None:
        from napari_d3ip.io.measurements import write_measurement

        write_measurement(t / name, make_measurement(kind))
        if edit is not None:
            with h5py.File(t / name, "r+") as f:
                edit(f, t)
    return prep


def text(name: str, content: str) -> Callable:
    def prep(t: Path) -> None:
        (t / name).write_text(content)
    return prep


def volume(name: str = "v.nii.gz", data: np.ndarray | None = None) -> Callable:
    def prep(t: Path) -> None:
        arr = np.random.default_rng(0).random((HW, HW, 4)).astype(np.float32) if data is None \
            else data
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(t / name))
    return prep


def huge_nifti(t: Path) -> None:
    """A 352-byte file whose header claims 4096³ float32 voxels (256 GiB)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4096, 4096, 4096))
    hdr.set_data_dtype(np.float32)
    (t / "huge.nii").write_bytes(hdr.binaryblock + b"\0" * 4)


def dicom(damage: str) -> Callable:
    def prep(t: Path) -> None:
        import locale

        saved = locale.setlocale(locale.LC_ALL)
        try:  # GDCM's writer sets the process locale to "C" (then text files default to ASCII)
            _write_series(t, damage)
        finally:
            locale.setlocale(locale.LC_ALL, saved)
    return prep


def _write_series(t: Path, damage: str) -> None:
    import SimpleITK as sitk

    folder = t / "dcm"
    folder.mkdir()
    img = sitk.GetImageFromArray((np.arange(6 * 8 * 8).reshape(6, 8, 8) % 97).astype(np.int16))
    img.SetSpacing((0.5, 0.5, 2.0))
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.777"
    for i in range(6):
        s = img[:, :, i]
        pos = img.TransformIndexToPhysicalPoint((0, 0, i))
        for tag, value in {"0020|000e": uid, "0020|000d": uid + ".1", "0008|0060": "CT",
                           "0020|0013": str(i + 1), "0008|0018": f"{uid}.{i + 1}",
                           "0020|0032": "\\".join(map(str, pos)),
                           "0020|0037": "1\\0\\0\\0\\1\\0"}.items():
            s.SetMetaData(tag, value)
        w.SetFileName(str(folder / f"s{i:03d}.dcm"))
        w.Execute(s)
    files = sorted(folder.iterdir())
    if damage == "missing":
        files[2].unlink()
        files[3].unlink()
    elif damage == "truncated":
        files[3].write_bytes(files[3].read_bytes()[:300])




def prior_files(edit_card: Callable | None = None) -> Callable:
    def prep(t: Path) -> None:
        from conftest import make_tiny_prior

        make_tiny_prior().save(t / "p.safetensors")
        if edit_card is not None:
            card = json.loads((t / "p.json").read_text())
            edit_card(card)
            (t / "p.json").write_text(json.dumps(card))
    return prep


def dev_zero_prior(t: Path) -> None:
    (t / "p.safetensors").symlink_to("/dev/zero")
    from conftest import make_tiny_prior

    make_tiny_prior().save(t / "real.safetensors")
    (t / "p.json").write_text((t / "real.json").read_text())


def all_of(*preps: Callable) -> Callable:
    def prep(t: Path) -> None:
        for p in preps:
            p(t)
    return prep


def bids_pair(t: Path) -> None:
    (t / "sub-01_T1w.json").write_text('{"RepetitionTime": 2.3, "EchoTime": 0.003}\n')


# -- edits of a measurement file -----------------------------------------------------------
def set_value(name: str, index: tuple, value) -> Callable:
    def edit(f, t):
        f[name][index] = value
    return edit


def external_link(f, t):
    with h5py.File(t / "other.h5", "w") as g:
        g["angles"] = f["angles"][()]
    del f["angles"]
    f["angles"] = h5py.ExternalLink("other.h5", "/angles")


def soft_link(f, t):
    f["spacing_again"] = h5py.SoftLink("/spacing")


def many_slices(f, t):
    """400000 slices claimed by a few KB (unwritten chunks of a compressed dataset)."""
    shape = f["sinogram"].shape
    del f["sinogram"]
    del f["reference"]
    f.create_dataset("sinogram", shape=(400_000, *shape[1:]), dtype="f4",
                     chunks=(1, *shape[1:]), compression="gzip")


def huge_image(f, t):
    params = json.loads(f.attrs["operator_params"])
    params["image_shape"] = [4096, 4096]
    f.attrs["operator_params"] = json.dumps(params)
    del f["reference"]


def json_attr(name: str, value: str) -> Callable:
    def edit(f, t):
        f.attrs[name] = value
    return edit


def result_meta(volume_ok: bool = True) -> dict:
    from napari_d3ip import _layers as L

    card = {"napari_d3ip_version": "test", "config": {"solver": "dds"}}
    return {"metadata": {L.RUN_CARD: card, L.AFFINE: np.eye(4), L.INTENSITY: (0.0, 1.0)},
            "scale": (1.0, 1.0, 1.0)}


# -- how a case runs -----------------------------------------------------------------------
def cli(*argv: str) -> Callable:
    def call(t: Path, capsys) -> str:
        args = [a.format(t=t) for a in argv]
        capsys.readouterr()
        try:
            rc = main(args)
        except SystemExit as e:  # argparse: invalid choice / type
            rc = e.code
        err = capsys.readouterr().err
        assert rc == 2, f"exit status {rc}, stderr: {err}"
        assert "Traceback" not in err, err
        return err
    return call


def api(fn: Callable[[Path], object], exc: type[BaseException] = Exception) -> Callable:
    def call(t: Path, capsys) -> str:
        with pytest.raises(exc) as e:
            fn(t)
        return str(e.value)
    return call


def _recon(m) -> None:
    from napari_d3ip.config import RunConfig
    from napari_d3ip.pipeline import reconstruct

    next(reconstruct(m, RunConfig(device="cpu", nfe=2)))


def _with(m_kind: str, change: Callable) -> Callable:
    def fn(t: Path):
        m = make_measurement(m_kind)
        change(m)
        return _recon(m)
    return fn


def _nan_y(m):
    m.y[1, 0, 0] = float("nan")


def _inf_maps(m):
    m.operator.maps[0, 0, 0, 0] = complex(float("inf"), 0.0)


def _read(path: str) -> Callable:
    def fn(t: Path):
        from napari_d3ip._reader import get_reader

        p = str(t / path)
        reader = get_reader(p)
        assert reader is not None, f"no reader for {p}"
        return reader(p)
    return fn


def _write(path: str, data=None, meta: dict | None = None) -> Callable:
    def fn(t: Path):
        from napari_d3ip._writer import write_nifti

        arr = np.random.default_rng(0).random((N, HW, HW)).astype(np.float32) if data is None \
            else data
        return write_nifti(str(t / path), arr, meta if meta is not None else result_meta())
    return fn


def _nan_volume() -> np.ndarray:
    v = np.random.default_rng(0).random((N, HW, HW)).astype(np.float32)
    v[1, 2, 3] = np.nan
    return v


def _mkdir(name: str) -> Callable:
    def prep(t: Path) -> None:
        (t / name).mkdir()
    return prep


def _readonly(monkeypatch, t: Path) -> None:
    """Pretend `t/ro` is not writable (the tests may run as root, where chmod does not bite)."""
    import napari_d3ip.io.files as files

    real = os.access
    monkeypatch.setattr(files.os, "access", lambda p, mode: False
                        if Path(p).resolve() == (t / "ro").resolve() else real(p, mode))


@dataclass
class Case:
    id: str
    prepare: Callable[[Path], None] | None
    call: Callable
    match: str  # a regular expression the message must contain (case-insensitive)
    patch: Callable | None = None
    skip: str | None = None
    changed: tuple[str, ...] = field(default_factory=tuple)  # files allowed to change


R = ("reconstruct", "--measurement", "{t}/m.h5", "--quiet", "--device", "cpu")
R_OUT = (*R, "--out", "{t}/r.nii.gz")
S = ("simulate", "--operator", "ct", "--quiet")
GPU = torch.cuda.is_available()

CASES = [
    # -- CLI reconstruct: the output path, checked before any work ---------------------------
    Case("recon-out-extension", meas(), cli(*R, "--out", "{t}/r.txt"), r"must end in .*\.nii"),
    Case("recon-out-no-extension", meas(), cli(*R, "--out", "{t}/result"), r"no extension"),
    Case("recon-out-is-directory", all_of(meas(), _mkdir("d.nii.gz")),
         cli(*R, "--out", "{t}/d.nii.gz", "--force"), r"is a directory"),
    Case("recon-out-readonly-folder", all_of(meas(), _mkdir("ro")),
         cli(*R, "--out", "{t}/ro/r.nii.gz"), r"not writable", patch=_readonly),
    Case("recon-out-parent-is-a-file", all_of(meas(), text("f", "x")),
         cli(*R, "--out", "{t}/f/r.nii.gz"), r"is a file, not a folder"),
    Case("recon-out-exists", all_of(meas(), volume("r.nii.gz")), cli(*R_OUT), r"--force"),
    Case("recon-force-out-is-measurement", meas("m.nii.gz"),
         cli("reconstruct", "--measurement", "{t}/m.nii.gz", "--out", "{t}/m.nii.gz", "--force",
             "--quiet"), r"is the measurement"),
    Case("recon-force-out-is-volume", volume("v.nii.gz"),
         cli("reconstruct", "--volume", "{t}/v.nii.gz", "--out", "{t}/v.nii.gz", "--force",
             "--quiet"), r"is the input volume"),
    Case("recon-force-card-is-config", all_of(meas(), text("cfg.json", '{"nfe": 2}')),
         cli(*R, "--config", "{t}/cfg.json", "--out", "{t}/cfg.nii.gz", "--force"),
         r"is the --config file"),
    Case("recon-force-bids-sidecar", all_of(meas(), bids_pair),
         cli(*R, "--out", "{t}/sub-01_T1w.nii.gz", "--force"), r"not a napari-d3ip run card"),
    Case("recon-force-out-is-prior-card", all_of(meas(), prior_files()),
         cli(*R, "--prior", "{t}/p.safetensors", "--out", "{t}/p.nii.gz", "--force"),
         r"is the prior card"),
    # -- CLI reconstruct: --config, field by field -----------------------------------------
    Case("config-not-json", all_of(meas(), text("c.json", "nfe = 5\n")),
         cli(*R_OUT, "--config", "{t}/c.json"), r"c\.json: not valid JSON .*line 1"),
    Case("config-empty", all_of(meas(), text("c.json", "")),
         cli(*R_OUT, "--config", "{t}/c.json"), r"c\.json: not valid JSON"),
    Case("config-missing", meas(), cli(*R_OUT, "--config", "{t}/nope.json"),
         r"nope\.json: no such file"),
    Case("config-is-directory", all_of(meas(), _mkdir("cdir")),
         cli(*R_OUT, "--config", "{t}/cdir"), r"cdir: not a regular file"),
    Case("config-seed-float", all_of(meas(), text("c.json", '{"seed": 1.7}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"c\.json: RunConfig\.seed: must be an integer"),
    Case("config-nfe-string", all_of(meas(), text("c.json", '{"nfe": "5"}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"RunConfig\.nfe: must be an integer, got '5' "
         r"\(a string\)"),
    Case("config-lr-string", all_of(meas(), text("c.json", '{"lr": "1e-3"}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"RunConfig\.lr: must be a number"),
    Case("config-gamma-nan", all_of(meas(), text("c.json", '{"gamma": NaN}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"RunConfig\.gamma: must be a finite number"),
    Case("config-eta-infinity", all_of(meas(), text("c.json", '{"eta": Infinity}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"RunConfig\.eta: must be a finite number"),
    Case("config-bf16-bad", all_of(meas(), text("c.json", '{"bf16": "maybe"}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"bf16"),
    Case("config-keep-optimizer-string", all_of(meas(), text("c.json", '{"keep_optimizer": "no"}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"keep_optimizer: must be true or false"),
    Case("config-unknown-field", all_of(meas(), text("c.json", '{"nfee": 5}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"unknown RunConfig fields \['nfee'\]"),
    Case("config-list", all_of(meas(), text("c.json", "[1, 2]")),
         cli(*R_OUT, "--config", "{t}/c.json"), r"must hold a JSON object"),
    Case("config-solver-null", all_of(meas(), text("c.json", '{"solver": null}')),
         cli(*R_OUT, "--config", "{t}/c.json"), r"RunConfig\.solver: must be a string, got null"),
    # -- CLI reconstruct: settings ---------------------------------------------------------
    Case("gamma-nan", meas(), cli(*R_OUT, "--gamma", "nan"), r"gamma: must be a finite number"),
    Case("lr-inf", meas(), cli(*R_OUT, "--lr", "inf"), r"lr: must be a finite number"),
    Case("tv-lambda-nan", meas(), cli(*R_OUT, "--tv-lambda", "nan"), r"tv_lambda: must be a finite"),
    Case("admm-rho-inf", meas(), cli(*R_OUT, "--admm-rho", "inf"), r"admm_rho: must be a finite"),
    Case("dps-zeta-negative", meas(), cli(*R_OUT, "--dps-zeta", "-1"), r"dps_zeta: must be > 0"),
    Case("eta-above-one", meas(), cli(*R_OUT, "--eta", "2"), r"eta: must be in \[0, 1\]"),
    Case("nfe-zero", meas(), cli(*R_OUT, "--nfe", "0"), r"nfe: must be an integer >= 1"),
    Case("seed-negative", meas(), cli(*R_OUT, "--seed", "-1"), r"seed: must be an integer in 0"),
    Case("window-garbage", meas(), cli(*R_OUT, "--window", "a,b"), r"--window must be 'lo,hi'"),
    Case("window-reversed", meas(), cli(*R_OUT, "--window", "900,100"), r"window_lo"),
    Case("device-bogus", meas(), cli(*R_OUT, "--device", "bogus"), r"invalid choice: 'bogus'"),
    Case("device-cuda-without-gpu", meas(), cli(*R[:-2], "--out", "{t}/r.nii.gz", "--device",
                                                "cuda"), r"no CUDA GPU", skip=GPU and "has a GPU"),
    # -- CLI reconstruct: the measurement file ---------------------------------------------
    Case("measurement-missing", None, cli(*R_OUT), r"m\.h5: no such file"),
    Case("measurement-not-hdf5", text("m.h5", "hello"), cli(*R_OUT), r"not an HDF5 file"),
    Case("measurement-is-directory", _mkdir("m.h5"), cli(*R_OUT), r"not a regular file"),
    Case("measurement-nan-sinogram", meas(edit=set_value("sinogram", (1, 2, 3), np.nan)),
         cli(*R_OUT), r"'sinogram' holds 1 NaN or infinite value\(s\) \(slice\(s\) 1\)"),
    Case("measurement-inf-kspace", meas(kind="mri", edit=set_value("kspace", (0, 1, 1), np.inf)),
         cli(*R_OUT), r"'kspace' holds 1 NaN or infinite"),
    Case("measurement-nan-coil-maps",
         meas(kind="mri-multicoil", edit=set_value("sensitivity_maps", (0, 0, 0, 0), np.nan)),
         cli(*R_OUT), r"'sensitivity_maps' holds 1 NaN or infinite"),
    Case("measurement-external-link", meas(edit=external_link), cli(*R_OUT),
         r"'angles' is an external link to other\.h5"),
    Case("measurement-soft-link", meas(edit=soft_link), cli(*R_OUT),
         r"'spacing_again' is a soft link"),
    Case("measurement-400000-slices", meas(edit=many_slices), cli(*R_OUT),
         r"400000 slices of 16x16 .*needs about .* of memory, but only"),
    Case("measurement-image-4096", meas(edit=huge_image), cli(*R_OUT),
         r"slices of 4096x4096 .*needs about .* of memory"),
    Case("measurement-bad-params-json", meas(edit=json_attr("operator_params", "{oops")),
         cli(*R_OUT), r"operator_params' is not valid JSON"),
    Case("measurement-wrong-format", meas(edit=json_attr("format", "something-else")),
         cli(*R_OUT), r"not a napari-d3ip measurement file"),
    Case("measurement-newer-version", meas(edit=lambda f, t: f.attrs.__setitem__("version", 99)),
         cli(*R_OUT), r"version 99 is newer"),
    # -- CLI reconstruct: the prior --------------------------------------------------------
    Case("prior-dev-zero", all_of(meas(), dev_zero_prior),
         cli(*R_OUT, "--prior", "{t}/p.safetensors"), r"is not a regular file"),
    Case("prior-card-architecture-too-big",
         all_of(meas(), prior_files(lambda c: c["architecture"].update(base_channels=8192))),
         cli(*R_OUT, "--prior", "{t}/p.safetensors"), r"do not fit the card's architecture"),
    Case("prior-card-not-json", all_of(meas(), prior_files(), text("p.json", "{")),
         cli(*R_OUT, "--prior", "{t}/p.safetensors"), r"p\.json is not valid JSON"),
    Case("prior-missing", meas(), cli(*R_OUT, "--prior", "{t}/nope.safetensors"),
         r"prior weights file not found"),
    Case("prior-weights-changed",
         all_of(meas(), prior_files(lambda c: c.update(sha256="0" * 64))),
         cli(*R_OUT, "--prior", "{t}/p.safetensors"), r"sha256 of p\.safetensors"),
    # -- CLI reconstruct / simulate: volumes and simulation options ------------------------
    Case("recon-volume-nan", volume(data=np.full((HW, HW, 3), np.nan, np.float32)),
         cli("reconstruct", "--volume", "{t}/v.nii.gz", "--out", "{t}/r.nii.gz", "--quiet"),
         r"NaN or infinite"),
    Case("recon-views-zero", None,
         cli("reconstruct", "--sample", "phantom-64", "--views", "0", "--out", "{t}/r.nii.gz",
             "--quiet"), r"--views must be >= 1"),
    Case("simulate-views-100000", None,
         cli(*S, "--sample", "phantom-64", "--views", "100000", "--out", "{t}/m.h5"),
         r"with 100000 views needs about .* of memory"),
    Case("simulate-views-negative", None,
         cli(*S, "--sample", "phantom-64", "--views", "-5", "--out", "{t}/m.h5"),
         r"--views must be >= 1"),
    Case("simulate-accel-nan", None,
         cli("simulate", "--operator", "mri", "--sample", "phantom-64", "--accel", "nan",
             "--out", "{t}/m.h5"), r"--accel must be > 1 \(1 = fully sampled\) and finite"),
    Case("simulate-noise-nan", None,
         cli(*S, "--sample", "phantom-64", "--noise", "nan", "--out", "{t}/m.h5"),
         r"--noise must be a finite number >= 0"),
    Case("simulate-noise-negative", None,
         cli(*S, "--sample", "phantom-64", "--noise", "-0.1", "--out", "{t}/m.h5"),
         r"--noise must be a finite number >= 0"),
    Case("simulate-coils-zero", None,
         cli("simulate", "--operator", "mri-multicoil", "--sample", "phantom-64", "--coils",
             "0", "--out", "{t}/m.h5"), r"--coils must be >= 1"),
    Case("simulate-out-extension", None,
         cli(*S, "--sample", "phantom-64", "--out", "{t}/m.nii.gz"), r"must end in \.h5"),
    Case("simulate-out-directory-force", _mkdir("m.h5"),
         cli(*S, "--sample", "phantom-64", "--out", "{t}/m.h5", "--force"), r"is a directory"),
    Case("simulate-out-exists", meas(), cli(*S, "--sample", "phantom-64", "--out", "{t}/m.h5"),
         r"m\.h5 exists; pass --force"),
    Case("simulate-device-bogus", None,
         cli(*S, "--sample", "phantom-64", "--device", "bogus", "--out", "{t}/m.h5"),
         r"invalid choice: 'bogus'"),
    Case("simulate-device-cuda-without-gpu", None,
         cli(*S, "--sample", "phantom-64", "--device", "cuda", "--out", "{t}/m.h5"),
         r"no CUDA GPU", skip=GPU and "has a GPU"),
    Case("simulate-volume-missing", None,
         cli(*S, "--volume", "{t}/nope.nii.gz", "--out", "{t}/m.h5"), r"no such file or folder"),
    Case("simulate-volume-unknown-extension", text("v.xyz", "x"),
         cli(*S, "--volume", "{t}/v.xyz", "--out", "{t}/m.h5"), r"unknown extension '\.xyz'"),
    Case("simulate-volume-truncated-nifti", text("v.nii.gz", "not gzip"),
         cli(*S, "--volume", "{t}/v.nii.gz", "--out", "{t}/m.h5"), r"not a readable NIfTI"),
    Case("simulate-volume-4d-no-frame", volume(data=np.zeros((HW, HW, 3, 2), np.float32)),
         cli(*S, "--volume", "{t}/v.nii.gz", "--out", "{t}/m.h5"), r"4D data with 2 frames"),
    Case("simulate-volume-header-claims-256gib", huge_nifti,
         cli(*S, "--volume", "{t}/huge.nii", "--out", "{t}/m.h5"),
         r"4096 x 4096 x 4096 voxels\) needs about .* of memory"),
    Case("simulate-dicom-missing-slices", dicom("missing"),
         cli(*S, "--volume", "{t}/dcm", "--out", "{t}/m.h5"),
         r"slice positions jump .* about 2 slice\(s\) are missing"),
    Case("simulate-dicom-truncated-file", dicom("truncated"),
         cli(*S, "--volume", "{t}/dcm", "--out", "{t}/m.h5"),
         r"1 DICOM file\(s\) could not be read \(s003\.dcm\)"),
    # -- CLI demo and sample ---------------------------------------------------------------
    Case("demo-out-is-a-file", text("demo", "x"), cli("demo", "--out", "{t}/demo", "--quiet"),
         r"--out .*demo is a file"),
    Case("demo-nfe-zero", None, cli("demo", "--out", "{t}/d", "--nfe", "0", "--quiet"),
         r"nfe: must be an integer >= 1"),
    Case("demo-existing-results", all_of(_mkdir("d"), text("d/demo.png", "old")),
         cli("demo", "--out", "{t}/d", "--quiet"), r"demo\.png exists; pass --force"),
    Case("sample-n-zero", None, cli("sample", "--n", "0", "--out", "{t}/s.png"), r"--n must be"),
    Case("sample-eta-nan", None, cli("sample", "--eta", "nan", "--out", "{t}/s.png"),
         r"--eta must be in \[0, 1\]"),
    Case("sample-out-extension", None, cli("sample", "--out", "{t}/s.nii.gz"),
         r"must end in \.png"),
    Case("sample-prior-dev-zero", dev_zero_prior,
         cli("sample", "--prior", "{t}/p.safetensors", "--out", "{t}/s.png", "--device", "cpu",
             "--quiet"), r"is not a regular file"),
    # -- Python API --------------------------------------------------------------------------
    Case("api-config-seed-float", None,
         api(lambda t: __import__("napari_d3ip").RunConfig(seed=1.7).validate()),
         r"RunConfig\.seed: must be an integer, got 1\.7"),
    Case("api-config-json-nan", None,
         api(lambda t: __import__("napari_d3ip").RunConfig.from_json('{"admm_lambda": NaN}')),
         r"admm_lambda: must be a finite number"),
    Case("api-config-json-broken", None,
         api(lambda t: __import__("napari_d3ip").RunConfig.from_json('{"nfe": ')),
         r"not valid: Expecting value at line 1"),
    Case("api-preset-unknown", None,
         api(lambda t: __import__("napari_d3ip.config").config.from_preset("nope")),
         r"unknown preset 'nope'"),
    Case("api-reconstruct-nan-y", None, api(_with("ct", _nan_y)),
         r"sinogram holds 1 NaN or infinite value\(s\) in slice\(s\) 1"),
    Case("api-reconstruct-inf-maps", None, api(_with("mri-multicoil", _inf_maps)),
         r"coil sensitivity maps hold 1 NaN or infinite"),
    Case("api-simulate-nan-volume", None,
         api(lambda t: __import__("napari_d3ip.operators").operators.simulate(
             np.full((2, HW, HW), np.nan, np.float32), "ct", n_views=5)),
         r"volume holds 512 NaN or infinite voxel"),
    Case("api-write-volume-extension", None,
         api(lambda t: __import__("napari_d3ip.io.volumes").io.volumes.write_volume(
             t / "x.txt", np.zeros((2, 4, 4), np.float32))), r"cannot write '\.txt'"),
    Case("api-write-volume-exists", volume("x.nii.gz"),
         api(lambda t: __import__("napari_d3ip.io.volumes").io.volumes.write_volume(
             t / "x.nii.gz", np.zeros((2, 4, 4), np.float32))), r"x\.nii\.gz exists"),
    Case("api-write-measurement-exists", meas(),
         api(lambda t: __import__("napari_d3ip.io.measurements").io.measurements
             .write_measurement(t / "m.h5", make_measurement())), r"m\.h5 exists"),
    Case("api-save-result-nan", None,
         api(lambda t: __import__("napari_d3ip.io.results").io.results.save_result(
             __import__("napari_d3ip.events").events.Result(volume=_nan_volume()),
             t / "r.nii.gz")), r"NaN/inf in 1 slice\(s\) \(1\).*nothing written"),
    Case("api-save-result-bids-sidecar", bids_pair,
         api(lambda t: __import__("napari_d3ip.io.results").io.results.save_result(
             __import__("napari_d3ip.events").events.Result(volume=np.zeros((2, 4, 4))),
             t / "sub-01_T1w.nii.gz", overwrite=True)), r"not a napari-d3ip run card"),
    Case("api-load-prior-architecture", prior_files(
         lambda c: c["architecture"].update(base_channels=16)),
         api(lambda t: __import__("napari_d3ip").load_prior(t / "p.safetensors")),
         r"do not fit the card's architecture \(card: .* parameters, file"),
    Case("api-load-prior-dev-zero", dev_zero_prior,
         api(lambda t: __import__("napari_d3ip").load_prior(t / "p.safetensors")),
         r"not a regular file"),
    Case("api-read-measurement-external-link", meas(edit=external_link),
         api(lambda t: __import__("napari_d3ip.io.measurements").io.measurements
             .read_measurement(t / "m.h5")), r"external links are refused"),
    Case("api-read-volume-dicom-missing", dicom("missing"),
         api(lambda t: __import__("napari_d3ip.io.volumes").io.volumes.read_volume(t / "dcm")),
         r"slices? .*missing"),
    # -- npe2 reader -------------------------------------------------------------------------
    Case("reader-nan-sinogram", meas(edit=set_value("sinogram", (0, 0, 0), np.inf)),
         api(_read("m.h5")), r"'sinogram' holds 1 NaN or infinite"),
    Case("reader-external-link", meas(edit=external_link), api(_read("m.h5")),
         r"external link"),
    Case("reader-truncated-dicom", dicom("truncated"), api(_read("dcm")),
         r"could not be read .*truncated"),
    Case("reader-broken-nifti", text("v.nii.gz", "garbage"), api(_read("v.nii.gz")),
         r"not a readable NIfTI"),
    Case("reader-huge-header", huge_nifti, api(_read("huge.nii")), r"needs about .* of memory"),
    Case("reader-400000-slices", meas(edit=many_slices), api(_read("m.h5")),
         r"400000 slices .* of memory"),
    # -- npe2 writer -------------------------------------------------------------------------
    Case("writer-bids-sidecar", bids_pair, api(_write("sub-01_T1w.nii.gz")),
         r"sub-01_T1w\.json exists and is not a napari-d3ip run card"),
    Case("writer-bids-sidecar-and-image", all_of(bids_pair, volume("sub-01_T1w.nii.gz")),
         api(_write("sub-01_T1w.nii.gz")), r"never replaced"),
    Case("writer-extension", None, api(_write("x.txt", meta={"metadata": {}})),
         r"cannot write '\.txt'"),
    Case("writer-directory", _mkdir("d.nii.gz"), api(_write("d.nii.gz", meta={"metadata": {}})),
         r"is a directory"),
    Case("writer-nan-layer", None, api(_write("x.nii.gz", data=_nan_volume(),
                                              meta={"metadata": {}})), r"NaN or infinite"),
    Case("writer-nan-result", None, api(_write("x.nii.gz", data=_nan_volume())),
         r"NaN/inf in 1 slice"),
]


# == round two (issue 28): data loss, corrupted input, checks before compute ==================
from napari_d3ip.errors import D3IPError  # noqa: E402

REFUSED = (D3IPError, FileExistsError)


def apid(fn: Callable[[Path], object]) -> Callable:
    """An API case that must end in a D3IPError (or FileExistsError), never a library error."""
    return api(fn, REFUSED)


def mhd_volume(name: str = "in.mhd", data_name: str | None = None) -> Callable:
    """An .mhd header + its .zraw; `data_name` renames the data file (the header follows)."""
    def prep(t: Path) -> None:
        import SimpleITK as sitk

        arr = np.random.default_rng(0).random((4, HW, HW)).astype(np.float32)
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(t / name), useCompression=True)
        if data_name:
            old = (t / name).with_suffix(".zraw")
            old.rename(t / data_name)
            hdr = (t / name).read_text().replace(old.name, data_name)
            (t / name).write_text(hdr)
    return prep


def nifti_bytes(arr: np.ndarray, slope: float | None = None) -> bytes:
    img = nib.Nifti1Image(arr, np.eye(4))
    img.header.set_data_offset(352)
    if slope is not None:
        img.header.set_slope_inter(1.0, 0.0)
    raw = img.header.binaryblock + b"\0" * 4 + arr.astype(img.get_data_dtype()).tobytes("F")
    if slope is not None:  # scl_slope (offset 112, float32) patched in the bytes themselves
        raw = raw[:112] + np.float32(slope).tobytes() + raw[116:]
    return raw


def raw_nifti(name: str, arr: np.ndarray, slope: float | None = None, gz: int | None = None,
              damage: Callable[[bytes], bytes] | None = None) -> Callable:
    def prep(t: Path) -> None:
        import gzip

        data = nifti_bytes(arr, slope)
        if gz is not None:
            data = gzip.compress(data, compresslevel=gz)
        if damage is not None:
            data = damage(data)
        (t / name).write_bytes(data)
    return prep


def claimed_nifti(name: str, shape: tuple[int, ...], gz: bool = False) -> Callable:
    """A header claiming `shape` int16 voxels, with four bytes of data after it."""
    def prep(t: Path) -> None:
        import gzip

        hdr = nib.Nifti1Header()
        hdr.set_data_shape(shape)
        hdr.set_data_dtype(np.int16)
        raw = hdr.binaryblock + b"\0" * 8
        (t / name).write_bytes(gzip.compress(raw) if gz else raw)
    return prep


def _bad_crc(b: bytes) -> bytes:
    return b[:-8] + bytes([b[-8] ^ 0xFF]) + b[-7:]


def _zero_middle(b: bytes) -> bytes:
    mid = len(b) // 2
    return b[:mid] + b"\0" * 64 + b[mid + 64:]


def _int_vol() -> np.ndarray:
    return (np.arange(HW * HW * 4).reshape(HW, HW, 4) % 1000).astype(np.int16)


def replace_ds(name: str, data=None, **kw) -> Callable:
    """Edit: dataset `name` replaced by `data` (or an empty one created with `kw`)."""
    def edit(f, t):
        if name in f:
            del f[name]
        if data is not None:
            f.create_dataset(name, data=data)
        else:
            f.create_dataset(name, **kw)
    return edit


def sino_like(dtype, fill=0) -> Callable:
    def edit(f, t):
        shape = f["sinogram"].shape
        del f["sinogram"]
        f.create_dataset("sinogram", data=np.full(shape, fill, dtype=dtype))
    return edit


def kspace_like(dtype, fill=0) -> Callable:
    def edit(f, t):
        shape = f["kspace"].shape
        del f["kspace"]
        f.create_dataset("kspace", data=np.full(shape, fill, dtype=dtype))
    return edit


def set_attr(name: str, value) -> Callable:
    def edit(f, t):
        f.attrs[name] = value
    return edit


def set_all(name: str, value, index=()) -> Callable:
    def edit(f, t):
        a = f[name][()]
        a[index if index else ...] = value
        f[name][...] = a
    return edit


def corrupt_chunk(name: str = "sinogram") -> Callable:
    """Overwrite the middle of the first compressed chunk of `name` on disk."""
    def prep(t: Path) -> None:
        meas()(t)
        with h5py.File(t / "m.h5", "r") as f:
            info = f[name].id.get_chunk_info(0)
        with open(t / "m.h5", "r+b") as fh:
            fh.seek(info.byte_offset + info.size // 2)
            fh.write(b"\xff" * min(16, info.size // 2))
    return prep


def compound(shape) -> np.ndarray:
    return np.zeros(shape, dtype=[("a", "f4"), ("b", "f4")])


def _ct_shape(t: Path) -> tuple[int, ...]:
    with h5py.File(t / "m.h5", "r") as f:
        return f["sinogram"].shape


def prior_with(edit_card: Callable | None = None, nan_weights: bool = False) -> Callable:
    """A saved tiny prior; the card edited afterwards (its card_sha256 kept as saved)."""
    def prep(t: Path) -> None:
        from conftest import make_tiny_prior

        prior = make_tiny_prior()
        if nan_weights:
            with torch.no_grad():
                next(prior.net.parameters())[0].fill_(float("nan"))
        prior.save(t / "p.safetensors")
        if edit_card is not None:
            card = json.loads((t / "p.json").read_text())
            edit_card(card)
            (t / "p.json").write_text(json.dumps(card))
    return prep


def card_text(text: str) -> Callable:
    def prep(t: Path) -> None:
        prior_with()(t)
        (t / "p.json").write_text(text)
    return prep


def _fsize(limit: int) -> Callable:
    def patch(monkeypatch, t: Path) -> None:
        import napari_d3ip.io.files as files

        monkeypatch.setattr(files, "file_size_limit", lambda: float(limit))
    return patch


def _api_recon(config=None, change: Callable | None = None) -> Callable:
    def fn(t: Path):
        from napari_d3ip.config import RunConfig
        from napari_d3ip.pipeline import reconstruct

        m = make_measurement("ct")
        if change is not None:
            change(m)
        cfg = RunConfig(device="cpu", nfe=2, solver="admm-tv") if config is None else config
        return next(reconstruct(m, cfg))
    return fn


def _set_y(value) -> Callable:
    def change(m):
        m.y = value(m.y)
    return change


def _write_meas_y(value) -> Callable:
    def fn(t: Path):
        from napari_d3ip.io.measurements import write_measurement

        m = make_measurement("ct")
        m.y = value(m.y)
        return write_measurement(t / "w.h5", m)
    return fn


def _vol(t: Path | None = None) -> np.ndarray:
    return np.random.default_rng(0).random((N, HW, HW)).astype(np.float32)


def _wv(name: str, **kw) -> Callable:
    def fn(t: Path):
        from napari_d3ip.io.volumes import write_volume

        kw2 = {k: (tuple((d, t / p) for d, p in v) if k == "inputs" else v) for k, v in kw.items()}
        return write_volume(t / name, _vol(), **kw2)
    return fn


def _sr(name: str, overwrite: bool = False) -> Callable:
    def fn(t: Path):
        from napari_d3ip.events import Result
        from napari_d3ip.io.results import save_result

        return save_result(Result(volume=np.zeros((2, 4, 4), np.float32),
                                  card={"napari_d3ip_version": "x"}), t / name,
                           overwrite=overwrite)
    return fn


def _wm(path: str) -> Callable:
    def fn(t: Path):
        from napari_d3ip.io.measurements import write_measurement

        return write_measurement(t / path if not path.startswith("/") else Path(path),
                                 make_measurement())
    return fn


def _read_vol(name: str) -> Callable:
    def fn(t: Path):
        from napari_d3ip.io.volumes import read_volume

        return read_volume(t / name)
    return fn


def _read_meas(t: Path):
    from napari_d3ip.io.measurements import read_measurement

    return read_measurement(t / "m.h5")


def _load_prior(t: Path):
    from napari_d3ip import load_prior

    return load_prior(t / "p.safetensors")


def _train(**kw) -> Callable:
    def fn(t: Path):
        from napari_d3ip.training.recipes import TrainConfig
        from napari_d3ip.training.trainer import train_prior

        base = dict(out=str(t / "run"), size=16, channels=4, channel_mults=(1, 2),
                    attn_resolutions=(), batch=1, steps=1, device="cpu", val_every=0)
        cfg = TrainConfig(**{**base, **kw})
        return train_prior(cfg, progress=False)
    return fn


RT = (*R, "--solver", "admm-tv", "--tv-iters", "2")  # reconstruct, cheapest method
RT_OUT = (*RT, "--out", "{t}/r.nii.gz")
RV = ("reconstruct", "--quiet", "--device", "cpu", "--solver", "admm-tv", "--operator", "ct",
      "--views", "5")
SV = ("simulate", "--operator", "ct", "--views", "5", "--quiet", "--out", "{t}/m2.h5",
      "--volume")
TP = ("train-prior", "--out", "{t}/run", "--device", "cpu", "--steps", "1", "--size", "16",
      "--channels", "4", "--mults", "1,2", "--attn", "", "--batch", "1", "--val-every", "0")
PR = (*R_OUT, "--prior", "{t}/p.safetensors")
E3 = 1e300

CASES += [
    # -- writers: every produced file, the destination, before any compute ------------------
    Case("recon-out-mhd-zraw-exists", all_of(meas(), text("r.zraw", "mine")),
         cli(*RT, "--out", "{t}/r.mhd"), r"r\.zraw exists: the data file r\.mhd would write"),
    Case("recon-force-mhd-orphan-zraw", all_of(meas(), text("r.zraw", "mine")),
         cli(*RT, "--out", "{t}/r.mhd", "--force"), r"r\.zraw exists.*never replaced"),
    Case("recon-force-mhd-data-is-input-data", mhd_volume("in.mhd", "r.zraw"),
         cli(*RV, "--volume", "{t}/in.mhd", "--out", "{t}/r.mhd", "--force"),
         r"r\.zraw is the input volume \(--volume\)'s data file"),
    Case("recon-force-out-is-input-mhd", mhd_volume("in.mhd"),
         cli(*RV, "--volume", "{t}/in.mhd", "--out", "{t}/in.mhd", "--force"),
         r"in\.mhd is the input volume"),
    Case("recon-force-out-is-input-zraw-via-nii", mhd_volume("in.mhd", "r.zraw"),
         cli(*RV, "--volume", "{t}/in.mhd", "--out", "{t}/r.mhd", "--force", "--no-partial"),
         r"data file"),
    Case("recon-out-under-proc", meas(), cli(*RT, "--out", "/proc/d3ip-r.nii.gz"),
         r"/proc is on a proc pseudo-filesystem"),
    Case("recon-out-under-sys", meas(), cli(*RT, "--out", "/sys/d3ip-r.nii.gz"),
         r"pseudo-filesystem, not a disk"),
    Case("recon-out-name-too-long", meas(), cli(*RT, "--out", "{t}/" + "a" * 240 + ".nii.gz"),
         r"too long for the filesystem .*temporary name"),
    Case("recon-out-mhd-name-too-long", meas(), cli(*RT, "--out", "{t}/" + "b" * 246 + ".mhd"),
         r"too long for the filesystem"),
    Case("recon-out-file-size-limit", meas(), cli(*RT_OUT), r"ulimit -f", patch=_fsize(100)),
    Case("recon-card-name-too-long", meas(), cli(*RT, "--out", "{t}/" + "c" * 236 + ".nii"),
         r"too long"),
    Case("simulate-out-under-proc", None,
         cli(*S, "--sample", "phantom-64", "--out", "/proc/d3ip-m.h5"), r"pseudo-filesystem"),
    Case("simulate-out-name-too-long", None,
         cli(*S, "--sample", "phantom-64", "--out", "{t}/" + "m" * 245 + ".h5"), r"too long"),
    Case("simulate-out-file-size-limit", None,
         cli(*S, "--sample", "phantom-64", "--views", "5", "--out", "{t}/m.h5"),
         r"m\.h5: the measurement needs about .*\(ulimit -f\)", patch=_fsize(1000)),
    Case("sample-out-under-proc", None, cli("sample", "--out", "/proc/d3ip-s.png"),
         r"pseudo-filesystem"),
    Case("sample-out-name-too-long", None, cli("sample", "--out", "{t}/" + "s" * 246 + ".png"),
         r"too long"),
    Case("demo-out-under-sys", None, cli("demo", "--out", "/sys/d3ip-demo", "--quiet"),
         r"pseudo-filesystem|not writable"),
    Case("train-out-under-proc", None, cli(*TP[:1], "--out", "/proc/d3ip-run", *TP[3:]),
         r"pseudo-filesystem"),
    Case("train-out-is-a-file", text("run", "x"), cli(*TP), r"--out .*run is a file"),
    Case("api-write-volume-zraw-exists", text("r.zraw", "mine"), apid(_wv("r.mhd")),
         r"r\.zraw exists"),
    Case("api-write-volume-orphan-zraw-overwrite", text("r.zraw", "mine"),
         apid(_wv("r.mhd", overwrite=True)), r"never replaced"),
    Case("api-write-volume-input-data-file", mhd_volume("in.mhd", "r.zraw"),
         apid(_wv("r.mhd", overwrite=True, inputs=(("input volume", "in.mhd"),))),
         r"input volume's data file"),
    Case("api-write-volume-proc", None,
         api(lambda t: __import__("napari_d3ip.io.volumes").io.volumes.write_volume(
             "/proc/d3ip.nii.gz", _vol()), REFUSED), r"pseudo-filesystem"),
    Case("api-write-volume-file-size-limit", None, apid(_wv("x.nii.gz")), r"ulimit -f",
         patch=_fsize(64)),
    Case("api-write-volume-name-too-long", None, apid(_wv("v" * 244 + ".nii.gz")), r"too long"),
    Case("api-save-result-zraw-exists", text("r.zraw", "mine"), apid(_sr("r.mhd")),
         r"r\.zraw exists"),
    Case("api-save-result-orphan-zraw-overwrite", text("r.zraw", "mine"),
         apid(_sr("r.mhd", overwrite=True)), r"never replaced"),
    Case("api-save-result-file-size-limit", None, apid(_sr("r.nii.gz")), r"ulimit -f",
         patch=_fsize(32)),
    Case("api-write-measurement-file-size-limit", None, apid(_wm("w.h5")), r"ulimit -f",
         patch=_fsize(2000)),
    Case("api-write-measurement-proc", None, apid(_wm("/proc/d3ip-w.h5")), r"pseudo-filesystem"),
    Case("api-write-measurement-name-too-long", None, apid(_wm("w" * 246 + ".h5")), r"too long"),
    Case("writer-orphan-zraw", text("r.zraw", "mine"),
         api(_write("r.mhd", meta={"metadata": {}}), REFUSED), r"never replaced"),
    Case("writer-result-orphan-zraw", text("r.zraw", "mine"), api(_write("r.mhd"), REFUSED),
         r"never replaced"),
    Case("writer-file-size-limit", None, api(_write("x.nii.gz", meta={"metadata": {}}), REFUSED),
         r"ulimit -f", patch=_fsize(16)),
    # -- measurement files: dtypes, attributes, structure ----------------------------------
    Case("measurement-compound-sinogram", meas(edit=sino_like([("a", "f4"), ("b", "f4")])),
         cli(*RT_OUT), r"'sinogram': compound/structured dtype"),
    Case("measurement-bytes-sinogram", meas(edit=sino_like("S4")), cli(*RT_OUT),
         r"'sinogram': dtype \|S4 holds bytes"),
    Case("measurement-bool-sinogram", meas(edit=sino_like(bool)), cli(*RT_OUT),
         r"'sinogram': boolean data"),
    Case("measurement-complex-sinogram", meas(edit=sino_like(np.complex64)), cli(*RT_OUT),
         r"'sinogram': complex data"),
    Case("measurement-real-kspace", meas(kind="mri", edit=kspace_like(np.float32)), cli(*RT_OUT),
         r"'kspace' has dtype float32; a mri file needs complex"),
    Case("measurement-string-kspace", meas(kind="mri", edit=kspace_like("S8")), cli(*RT_OUT),
         r"'kspace': dtype \|S8"),
    Case("measurement-version-array", meas(edit=set_attr("version", np.array([1, 2]))),
         cli(*RT_OUT), r"'version' is an array of shape \(2,\)"),
    Case("measurement-version-string", meas(edit=set_attr("version", "one")), cli(*RT_OUT),
         r"'version' must be an integer"),
    Case("measurement-kind-array", meas(edit=set_attr("kind", np.array([1.0, 2.0]))),
         cli(*RT_OUT), r"kind=.* is not one of"),
    Case("measurement-format-array", meas(edit=set_attr("format", np.array([3, 4]))),
         cli(*RT_OUT), r"not a napari-d3ip measurement file"),
    Case("measurement-operator-is-dataset", meas(edit=replace_ds("operator", np.zeros(3))),
         cli(*RT_OUT), r"'operator' must be a group"),
    Case("measurement-operator-entry-group", meas(edit=lambda f, t: f.create_group("operator/x/y")),
         cli(*RT_OUT), r"'operator/x' must be a dataset"),
    Case("measurement-operator-entry-bytes",
         meas(edit=replace_ds("operator/x", np.array([b"ab", b"cd"]))), cli(*RT_OUT),
         r"'operator/x'.*bytes"),
    Case("measurement-operator-entry-nan", meas(edit=replace_ds("operator/x", np.array([np.nan]))),
         cli(*RT_OUT), r"'operator/x' contains NaN"),
    Case("measurement-operator-entry-huge",
         meas(edit=replace_ds("operator/x", shape=(200_000, 200_000), dtype="f4",
                              chunks=(1, 1000), compression="gzip")),
         cli(*RT_OUT), r"m\.h5: dataset 'operator/x' \(shape \(200000, 200000\).*needs about"),
    Case("measurement-simulation-not-json", meas(edit=set_attr("simulation", "{x")), cli(*RT_OUT),
         r"'simulation' is not valid JSON"),
    Case("measurement-params-list", meas(edit=set_attr("operator_params", "[1, 2]")),
         cli(*RT_OUT), r"'operator_params' must be a JSON object"),
    Case("measurement-sinogram-no-slices", meas(edit=replace_ds("sinogram", shape=(0, 7, 23),
                                                                dtype="f4")),
         cli(*RT_OUT), r"holds no slices|'angles'|reference"),
    Case("measurement-sinogram-float64-overflow", meas(edit=set_all("sinogram", E3, (0, 0, 0))),
         cli(*RT_OUT), r"NaN or infinite|beyond float32"),
    Case("measurement-sinogram-f64-1e300", meas(edit=sino_like(np.float64, E3)), cli(*RT_OUT),
         r"'sinogram' holds \d+ value\(s\) beyond float32's range"),
    Case("measurement-kspace-c128-1e300", meas(kind="mri", edit=kspace_like(np.complex128, E3)),
         cli(*RT_OUT), r"'kspace' holds \d+ value\(s\) beyond float32"),
    Case("measurement-corrupt-gzip-chunk", corrupt_chunk("sinogram"), cli(*RT_OUT),
         r"m\.h5: .*'sinogram' cannot be read .*damaged"),
    Case("reader-corrupt-gzip-chunk", corrupt_chunk("sinogram"), api(_read("m.h5"), REFUSED),
         r"m\.h5: .*'sinogram' cannot be read"),
    Case("api-read-measurement-corrupt-chunk", corrupt_chunk("sinogram"), apid(_read_meas),
         r"m\.h5: .*'sinogram' cannot be read"),
    # -- measurement files: angles ---------------------------------------------------------
    Case("measurement-angles-all-equal", meas(edit=set_all("angles", 5.0)), cli(*RT_OUT),
         r"all 7 'angles' are equal \(5 degrees\)"),
    Case("measurement-angles-equal-mod-360",
         meas(edit=lambda f, t: f["angles"].__setitem__(..., np.arange(7) * 360.0)),
         cli(*RT_OUT), r"'angles' are equal"),
    Case("measurement-angles-nan", meas(edit=set_value("angles", (3,), np.nan)), cli(*RT_OUT),
         r"'angles' holds 1 NaN or infinite"),
    Case("measurement-angles-inf", meas(edit=set_value("angles", (0,), np.inf)), cli(*RT_OUT),
         r"'angles' holds 1 NaN or infinite"),
    Case("measurement-angles-complex",
         meas(edit=replace_ds("angles", np.arange(7) * (1 + 1j))), cli(*RT_OUT),
         r"'angles': complex data"),
    Case("measurement-angles-compound", meas(edit=replace_ds("angles", compound((7,)))),
         cli(*RT_OUT), r"'angles': compound"),
    Case("measurement-angles-2d", meas(edit=replace_ds("angles", np.zeros((7, 1)))), cli(*RT_OUT),
         r"'angles' has shape \(7, 1\)"),
    Case("measurement-angles-claim-1e9",
         meas(edit=replace_ds("angles", shape=(10**9,), dtype="f8", chunks=(4096,),
                              compression="gzip")), cli(*RT_OUT),
         r"'angles' has 1000000000 entries but 'sinogram' has 7 views"),
    Case("measurement-angles-strings", meas(edit=replace_ds("angles", np.array(["a"] * 7, "S1"))),
         cli(*RT_OUT), r"'angles': dtype \|S1"),
    # -- measurement files: masks, coil maps, reference, geometry --------------------------
    Case("measurement-mask-all-false", meas(kind="mri", edit=set_all("mask", False)),
         cli(*RT_OUT), r"'mask' samples nothing"),
    Case("measurement-mask-values-2", meas(kind="mri", edit=lambda f, t: replace_ds(
        "mask", f["mask"][()].astype(np.int8) * 2)(f, t)), cli(*RT_OUT),
         r"'mask' must be boolean"),
    Case("measurement-mask-compound", meas(kind="mri", edit=replace_ds("mask", compound((HW, HW)))),
         cli(*RT_OUT), r"'mask': compound"),
    Case("measurement-mask-claim-huge",
         meas(kind="mri", edit=replace_ds("mask", shape=(100_000, 100_000), dtype="u1",
                                          chunks=(1, 1000), compression="gzip")),
         cli(*RT_OUT), r"dataset 'mask' \(shape \(100000, 100000\).*needs about"),
    Case("measurement-maps-all-zero",
         meas(kind="mri-multicoil", edit=set_all("sensitivity_maps", 0)), cli(*RT_OUT),
         r"'sensitivity_maps' are all zero for all slices"),
    Case("measurement-maps-one-slice-zero",
         meas(kind="mri-multicoil", edit=set_all("sensitivity_maps", 0, (1,))), cli(*RT_OUT),
         r"all zero for slice\(s\) 1"),
    Case("measurement-maps-real",
         meas(kind="mri-multicoil", edit=lambda f, t: replace_ds(
             "sensitivity_maps", f["sensitivity_maps"][()].real.copy())(f, t)), cli(*RT_OUT),
         r"'sensitivity_maps' has dtype float32; complex needed"),
    Case("measurement-maps-bytes",
         meas(kind="mri-multicoil", edit=replace_ds("sensitivity_maps",
                                                    np.zeros((N, 2, HW, HW), "S2"))),
         cli(*RT_OUT), r"'sensitivity_maps': dtype \|S2"),
    Case("measurement-maps-corrupt-chunk", corrupt_chunk("reference"), cli(*RT_OUT),
         r"'reference' cannot be read"),
    Case("measurement-reference-compound", meas(edit=replace_ds("reference", compound((N, HW, HW)))),
         cli(*RT_OUT), r"'reference': compound"),
    Case("measurement-reference-nan", meas(edit=set_value("reference", (0, 1, 1), np.nan)),
         cli(*RT_OUT), r"'reference' contains NaN"),
    Case("measurement-reference-range", meas(edit=set_value("reference", (0, 1, 1), 7.0)),
         cli(*RT_OUT), r"'reference' must lie in \[0, 1\]"),
    Case("measurement-reference-claim-huge",
         meas(edit=replace_ds("reference", shape=(N, 100_000, 100_000), dtype="f4",
                              chunks=(1, 1, 1000), compression="gzip")), cli(*RT_OUT),
         r"'reference' has shape \(3, 100000, 100000\)"),
    Case("measurement-affine-shape", meas(edit=replace_ds("affine", np.eye(5))), cli(*RT_OUT),
         r"affine must be a finite 4x4 matrix, got shape \(5, 5\)"),
    Case("measurement-affine-claim-huge",
         meas(edit=replace_ds("affine", shape=(10**9,), dtype="f8", chunks=(4096,),
                              compression="gzip")), cli(*RT_OUT), r"affine must be a finite 4x4"),
    Case("measurement-affine-singular", meas(edit=replace_ds("affine", np.zeros((4, 4)))),
         cli(*RT_OUT), r"affine is singular"),
    Case("measurement-spacing-negative", meas(edit=replace_ds("spacing", np.array([1.0, -1, 1]))),
         cli(*RT_OUT), r"spacing must be 3 positive numbers"),
    Case("measurement-spacing-strings", meas(edit=replace_ds("spacing", np.array([b"1"] * 3))),
         cli(*RT_OUT), r"'spacing': dtype \|S1"),
    Case("measurement-intensity-1e300", meas(edit=replace_ds("intensity", np.array([0.0, E3]))),
         cli(*RT_OUT), r"intensity .* beyond float32's range"),
    Case("measurement-intensity-span-overflows", meas(edit=replace_ds(
        "intensity", np.array([-3e38, 3e38]))), cli(*RT_OUT), r"intensity .* beyond float32"),
    Case("volume-intensity-span-overflows",
         volume("v.nii.gz", np.tile(np.array([-3e38, 3e38], np.float32), (HW, HW, 2))),
         cli(*SV, "{t}/v.nii.gz"), r"intensities span -3e\+38\.\.3e\+38, a range float32 cannot"),
    Case("measurement-intensity-nan", meas(edit=replace_ds("intensity", np.array([0.0, np.nan]))),
         cli(*RT_OUT), r"intensity must be 2 finite numbers"),
    Case("measurement-n-det-mismatch", meas(edit=lambda f, t: f.attrs.__setitem__(
        "operator_params", json.dumps({**json.loads(f.attrs["operator_params"]), "n_det": 3}))),
         cli(*RT_OUT), r"n_det=3 but 'sinogram' has"),
    Case("reader-angles-all-equal", meas(edit=set_all("angles", 0.0)), api(_read("m.h5"), REFUSED),
         r"'angles' are equal"),
    Case("reader-maps-all-zero", meas(kind="mri-multicoil", edit=set_all("sensitivity_maps", 0)),
         api(_read("m.h5"), REFUSED), r"all zero"),
    Case("api-read-measurement-operator-dataset", meas(edit=replace_ds("operator", np.zeros(3))),
         apid(_read_meas), r"'operator' must be a group"),
    Case("api-read-measurement-compound", meas(edit=sino_like([("a", "f4")])), apid(_read_meas),
         r"compound"),
    # -- volumes: corrupted files, impossible claims, intensities ---------------------------
    Case("volume-nii-gz-bad-crc", raw_nifti("v.nii.gz", _int_vol(), gz=6, damage=_bad_crc),
         cli(*SV, "{t}/v.nii.gz"), r"v\.nii\.gz: the gzip data are damaged .*CRC"),
    Case("volume-nii-gz-zeroed-middle", raw_nifti("v.nii.gz", _int_vol(), gz=0,
                                                  damage=_zero_middle),
         cli(*SV, "{t}/v.nii.gz"), r"gzip data are damaged"),
    Case("volume-nii-gz-truncated-stream", raw_nifti("v.nii.gz", _int_vol(), gz=6,
                                                     damage=lambda b: b[:len(b) * 2 // 3]),
         cli(*SV, "{t}/v.nii.gz"), r"gzip data are damaged|not a readable NIfTI"),
    Case("volume-nii-truncated", raw_nifti("v.nii", _int_vol(), damage=lambda b: b[:600]),
         cli(*SV, "{t}/v.nii"), r"v\.nii: truncated: its header claims"),
    Case("volume-nii-claims-1000-cubed", claimed_nifti("c.nii", (1000, 1000, 1000)),
         cli(*SV, "{t}/c.nii"), r"1000 x 1000 x 1000 voxels\) needs about"),
    Case("volume-nii-claims-200-cubed", claimed_nifti("c.nii", (200, 200, 200)),
         cli(*SV, "{t}/c.nii"), r"c\.nii: truncated: its header claims 16,000,\d+ bytes .* the file holds \d+"),
    Case("volume-nii-gz-claims-200-cubed", claimed_nifti("c.nii.gz", (200, 200, 200), gz=True),
         cli(*SV, "{t}/c.nii.gz"), r"c\.nii\.gz: truncated"),
    Case("volume-nii-slope-overflow", raw_nifti("v.nii", _int_vol(), slope=1e38),
         cli(*SV, "{t}/v.nii"),
         r"int16 data 0\.\.999 scaled by scl_slope=1e\+38.*beyond float32.s range: an impossible"),
    Case("volume-nii-slope-negative-overflow", raw_nifti("v.nii", _int_vol(), slope=-2e38),
         cli(*SV, "{t}/v.nii"), r"scl_slope=-2e\+38.*an impossible intensity range"),
    Case("volume-nii-float64-1e300",
         volume("v.nii.gz", np.full((HW, HW, 3), E3, np.float64)), cli(*SV, "{t}/v.nii.gz"),
         r"lie beyond float32's range .* would become infinite"),
    Case("volume-nii-rgb", raw_nifti("v.nii", np.zeros((HW, HW, 2), [("R", "u1"), ("G", "u1"),
                                                                       ("B", "u1")])),
         cli(*SV, "{t}/v.nii"), r"RGB|structured|not a readable"),
    Case("recon-volume-bad-crc", raw_nifti("v.nii.gz", _int_vol(), gz=6, damage=_bad_crc),
         cli(*RV, "--volume", "{t}/v.nii.gz", "--out", "{t}/r.nii.gz"), r"gzip data are damaged"),
    Case("reader-nii-gz-bad-crc", raw_nifti("v.nii.gz", _int_vol(), gz=6, damage=_bad_crc),
         api(_read("v.nii.gz"), REFUSED), r"gzip data are damaged"),
    Case("api-read-volume-zeroed-gzip", raw_nifti("v.nii.gz", _int_vol(), gz=0,
                                                  damage=_zero_middle),
         apid(_read_vol("v.nii.gz")), r"gzip data are damaged"),
    Case("api-read-volume-claims-200-cubed", claimed_nifti("c.nii", (200, 200, 200)),
         apid(_read_vol("c.nii")), r"truncated"),
    Case("api-volume-bytes", None,
         apid(lambda t: __import__("napari_d3ip.io.volumes").io.volumes.Volume(
             np.zeros((2, 2, 2), "S4"))), r"dtype \|S4 holds bytes"),
    Case("api-write-volume-f64-1e300", None,
         apid(lambda t: __import__("napari_d3ip.io.volumes").io.volumes.write_volume(
             t / "x.nii.gz", np.full((2, 4, 4), E3))), r"beyond float32"),
    # -- --config and JSON -------------------------------------------------------------------
    Case("config-duplicate-key", all_of(meas(), text("c.json", '{"nfe": 2, "nfe": 900}')),
         cli(*RT_OUT, "--config", "{t}/c.json"), r"c\.json: the key 'nfe' appears twice"),
    Case("config-nested-200000", all_of(meas(), text("c.json", "[" * 200_000 + "]" * 200_000)),
         cli(*RT_OUT, "--config", "{t}/c.json"), r"c\.json: JSON nested 200000 levels deep"),
    Case("config-nested-100-in-object",
         all_of(meas(), text("c.json", '{"nfe": ' + "[" * 100 + "]" * 100 + "}")),
         cli(*RT_OUT, "--config", "{t}/c.json"), r"nested 101 levels"),
    Case("config-seed-2-pow-70", all_of(meas(), text("c.json", f'{{"seed": {2**70}}}')),
         cli(*RT_OUT, "--config", "{t}/c.json"), r"RunConfig\.seed: must be an integer in 0"),
    Case("config-duplicate-in-run-card",
         all_of(meas(), text("c.json", '{"napari_d3ip_version": "x", "config": {"seed": 1, '
                                       '"seed": 2}}')),
         cli(*RT_OUT, "--config", "{t}/c.json"), r"'seed' appears twice"),
    Case("recon-seed-2-pow-70", meas(), cli(*RT_OUT, "--seed", str(2**70)),
         r"seed: must be an integer in 0"),
    Case("recon-prior-empty", meas(), cli(*R_OUT, "--prior", ""), r"the prior name is empty"),
    Case("recon-lora-rank-1e8", meas(),
         cli(*R_OUT, "--adapter", "d3ip-base", "--lora-rank", "100000000", "--prior",
             "ellipses-64"), r"needs about .* of memory.*--lora-rank"),
    Case("api-config-json-duplicate", None,
         apid(lambda t: __import__("napari_d3ip").RunConfig.from_json('{"nfe": 2, "nfe": 3}')),
         r"'nfe' appears twice"),
    Case("api-config-json-deep", None,
         apid(lambda t: __import__("napari_d3ip").RunConfig.from_json(
             '{"nfe": ' + "[" * 5000 + "]" * 5000 + "}")), r"nested 5001 levels"),
    Case("simulate-seed-2-pow-70", None,
         cli(*S, "--sample", "phantom-64", "--seed", str(2**70), "--out", "{t}/m.h5"),
         r"--seed must be an integer in 0\.\.2\*\*63-1"),
    Case("simulate-seed-negative", None,
         cli(*S, "--sample", "phantom-64", "--seed", "-3", "--out", "{t}/m.h5"), r"--seed must"),
    Case("sample-seed-2-pow-70", None,
         cli("sample", "--seed", str(2**70), "--out", "{t}/s.png"), r"--seed must be"),
    # -- the Python API's arguments ----------------------------------------------------------
    Case("api-reconstruct-config-dict", None, apid(_api_recon({"nfe": 2})),
         r"config must be a napari_d3ip\.RunConfig, got a dict; pass RunConfig\.from_dict"),
    Case("api-reconstruct-config-string", None, apid(_api_recon("sv-ct")),
         r"got a str; pass from_preset"),
    Case("api-reconstruct-y-numpy", None, apid(_api_recon(change=_set_y(lambda y: y.numpy()))),
         r"measurement\.y is a NumPy array; it must be a torch tensor"),
    Case("api-reconstruct-y-int", None,
         apid(_api_recon(change=_set_y(lambda y: y.to(torch.int32)))), r"dtype torch\.int32"),
    Case("api-reconstruct-y-list", None,
         apid(_api_recon(change=_set_y(lambda y: y.tolist()))), r"got a list"),
    Case("api-reconstruct-not-a-measurement", None,
         apid(lambda t: next(__import__("napari_d3ip.pipeline").pipeline.reconstruct(
             {"y": 1}, __import__("napari_d3ip").RunConfig()))), r"got a dict"),
    Case("api-reconstruct-y-f64-1e300", None,
         apid(_api_recon(change=_set_y(lambda y: y.double().fill_(E3)))),
         r"measurement\.y holds \d+ value\(s\) beyond float32's range"),
    Case("api-write-measurement-y-numpy", None, apid(_write_meas_y(lambda y: y.numpy())),
         r"y is a NumPy array"),
    Case("api-write-measurement-y-bool", None,
         apid(_write_meas_y(lambda y: y > 0)), r"dtype torch\.bool"),
    # -- priors: one schema, one hash, finite weights ---------------------------------------
    Case("prior-card-schedule-string", all_of(meas(), prior_with(lambda c: c.update(
        schedule="linear"))), cli(*PR), r"p\.json is not valid:.*'schedule' must be an object"),
    Case("prior-card-architecture-list", all_of(meas(), prior_with(lambda c: c.update(
        architecture=[1, 2]))), cli(*PR), r"'architecture' must be an object"),
    Case("prior-card-schedule-T-10", all_of(meas(), prior_with(lambda c: c["schedule"].update(
        T=10))), cli(*PR), r"schedule\.T must be 1000"),
    Case("prior-card-beta-nan", all_of(meas(), prior_with(lambda c: c["schedule"].update(
        beta_end=float("nan")))), cli(*PR), r"beta_start < beta_end < 1"),
    Case("prior-card-beta-above-one", all_of(meas(), prior_with(lambda c: c["schedule"].update(
        beta_end=2.0))), cli(*PR), r"beta_end < 1, got .*2\.0"),
    Case("prior-card-edited-beta", all_of(meas(), prior_with(lambda c: c["schedule"].update(
        beta_end=0.021))), cli(*PR), r"p\.json was edited after the prior was saved"),
    Case("prior-card-edited-scale", all_of(meas(), prior_with(lambda c: c.update(
        pixel_scale={"render_size": 512}))), cli(*PR), r"was edited after the prior was saved"),
    Case("prior-card-hash-not-hex", all_of(meas(), prior_with(lambda c: c.update(
        card_sha256="xyz"))), cli(*PR), r"card_sha256 must be 64 hexadecimal digits"),
    Case("prior-card-channels-string", all_of(meas(), prior_with(lambda c: c["architecture"].update(
        base_channels="32"))), cli(*PR), r"architecture\.base_channels must be a positive integer"),
    Case("prior-card-mults-strings", all_of(meas(), prior_with(lambda c: c["architecture"].update(
        channel_mults=["a"]))), cli(*PR), r"architecture\.channel_mults must be a list"),
    Case("prior-card-prediction-bogus", all_of(meas(), prior_with(lambda c: c["architecture"].update(
        prediction="x0"))), cli(*PR), r"architecture\.prediction must be 'eps' or 'v'"),
    Case("prior-card-render-size-string", all_of(meas(), prior_with(lambda c: c.update(
        pixel_scale={"render_size": "64"}))), cli(*PR), r"pixel_scale\.render_size"),
    Case("prior-card-duplicate-key", all_of(meas(), card_text('{"name": "a", "name": "b"}')),
         cli(*PR), r"prior card .*p\.json: the key 'name' appears twice"),
    Case("prior-card-nested", all_of(meas(), card_text("[" * 100_000 + "]" * 100_000)),
         cli(*PR), r"JSON nested 100000 levels"),
    Case("prior-weights-nan", all_of(meas(), prior_with(nan_weights=True)), cli(*PR),
         r"weights in p\.safetensors hold NaN or infinite values"),
    Case("api-load-prior-schedule-T", prior_with(lambda c: c["schedule"].update(T=10)),
         apid(_load_prior), r"schedule\.T must be 1000"),
    Case("api-load-prior-edited", prior_with(lambda c: c["schedule"].update(beta_start=2e-4)),
         apid(_load_prior), r"was edited"),
    Case("api-load-prior-empty-name", None,
         apid(lambda t: __import__("napari_d3ip").load_prior("")), r"prior name is empty"),
    Case("sample-prior-edited-card", prior_with(lambda c: c["schedule"].update(beta_end=0.03)),
         cli("sample", "--prior", "{t}/p.safetensors", "--out", "{t}/s.png", "--device", "cpu",
             "--quiet"), r"was edited"),
    # -- train-prior: every option before a folder or a network ------------------------------
    Case("train-steps-negative", None, cli(*TP, "--steps", "-1"), r"--steps must be an integer >= 1, got -1"),
    Case("train-steps-zero", None, cli(*TP, "--steps", "0"), r"--steps must be"),
    Case("train-size-zero", None, cli(*TP, "--size", "0"), r"--size must be an integer in 8\.\.4096, got 0"),
    Case("train-size-not-divisible", None, cli(*TP, "--size", "18", "--mults", "1,2,2"),
         r"--size 18 must be a multiple of 4"),
    Case("train-batch-zero", None, cli(*TP, "--batch", "0"), r"--batch must be"),
    Case("train-ellipses-negative", None, cli(*TP, "--ellipses", "-5"),
         r"--ellipses must be a number in \(0, 10000\], got -5"),
    Case("train-ellipses-nan", None, cli(*TP, "--ellipses", "nan"), r"--ellipses must be"),
    Case("train-lr-nan", None, cli(*TP, "--lr", "nan"), r"--lr must be a finite number in \(0, 1\], got nan"),
    Case("train-lr-zero", None, cli(*TP, "--lr", "0"), r"--lr must be"),
    Case("train-lr-inf", None, cli(*TP, "--lr", "inf"), r"--lr must be"),
    Case("train-beta2-two", None, cli(*TP, "--beta2", "2"), r"--beta2 must be a number in \(0, 1\), got 2"),
    Case("train-beta2-one", None, cli(*TP, "--beta2", "1"), r"--beta2 must be"),
    Case("train-mults-letters", None, cli(*TP, "--mults", "a,b"), r"--mults must be comma-separated integers.*'a,b'"),
    Case("train-mults-empty", None, cli(*TP, "--mults", ""), r"--mults must be"),
    Case("train-mults-zero", None, cli(*TP, "--mults", "1,0"), r"--mults must be"),
    Case("train-attn-letters", None, cli(*TP, "--attn", "x"), r"--attn must be comma-separated"),
    Case("train-seed-2-pow-70", None, cli(*TP, "--seed", str(2**70)),
         r"--seed must be an integer in 0\.\.2\*\*63-1"),
    Case("train-seed-negative", None, cli(*TP, "--seed", "-1"), r"--seed must be"),
    Case("train-channels-zero", None, cli(*TP, "--channels", "0"), r"--channels must be"),
    Case("train-channels-million", None, cli(*TP, "--channels", "1000000"),
         r"--channels must be an integer in 1\.\.4096"),
    Case("train-channels-memory", None, cli(*TP, "--channels", "4000"),
         r"train-prior \(a [\d,]+-parameter UNet, --channels 4000.*needs about .* of memory"),
    Case("train-batch-memory", None, cli(*TP, "--batch", "60000", "--size", "256"),
         r"--batch 60000 of 256x256\) needs about"),
    Case("train-res-blocks-negative", None, cli(*TP, "--res-blocks", "-1"), r"--res-blocks must be"),
    Case("train-render-size-small", None, cli(*TP, "--render-size", "8"), r"--render-size 8 must be 0 or >= --size 16"),
    Case("train-decay-fraction-two", None, cli(*TP, "--decay-fraction", "2"), r"--decay-fraction must be"),
    Case("train-min-snr-nan", None, cli(*TP, "--min-snr-gamma", "nan"), r"--min-snr-gamma must be"),
    Case("train-checkpoint-minutes-zero", None, cli(*TP, "--checkpoint-minutes", "0"), r"--checkpoint-minutes must be"),
    Case("train-budget-nan", None, cli(*TP, "--budget-minutes", "nan"), r"--budget-minutes must be"),
    Case("train-val-every-negative", None, cli(*TP, "--val-every", "-1"), r"--val-every must be"),
    Case("train-threads-negative", None, cli(*TP, "--threads", "-2"), r"--threads must be"),
    Case("train-name-with-slash", None, cli(*TP, "--name", "a/b"), r"--name 'a/b' must be"),
    Case("train-several-problems", None, cli(*TP, "--steps", "-1", "--lr", "nan"),
         r"--steps must be .*; --lr must be"),
    Case("api-train-steps-negative", None, apid(_train(steps=-1)), r"--steps must be"),
    Case("api-train-lr-nan", None, apid(_train(lr=float("nan"))), r"--lr must be"),
    Case("api-train-seed-huge", None, apid(_train(seed=2**70)), r"--seed must be"),
    Case("api-train-name-empty", None, apid(_train(name="")), r"--name '' must be"),
]


def snapshot(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = "dir"
        else:
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _no_compute(monkeypatch) -> None:
    """Every case must be refused before any compute: the network, ADMM-TV and a training
    step raise if they are reached."""
    import napari_d3ip.core.unet as unet
    import napari_d3ip.pipeline as pipeline
    import napari_d3ip.solvers.admm_tv as admm_tv
    import napari_d3ip.training.trainer as training

    def started(*a, **k):
        raise AssertionError("compute started before the input was refused")

    monkeypatch.setattr(unet.UNet, "forward", started)
    monkeypatch.setattr(training.Trainer, "train_step", started)
    monkeypatch.setattr(admm_tv, "admm_tv", started)  # ADMM-TV's steps (methods.py)
    monkeypatch.setattr(pipeline, "admm_tv", started)  # the warm start of init admm-tv


def test_the_table_is_large_enough():
    kinds = {"cli": 0, "api": 0, "reader": 0, "writer": 0}
    for c in CASES:
        kinds[c.id.split("-")[0] if c.id.split("-")[0] in kinds else "cli"] += 1
    assert len(CASES) >= 210 and all(kinds.values()), kinds
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys, monkeypatch):
    if case.skip:
        pytest.skip(case.skip)
    # a fixed memory budget: the size checks do not depend on the machine the tests run on
    monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(4 << 30))
    monkeypatch.chdir(tmp_path)
    t = tmp_path / "case"
    t.mkdir()
    if case.prepare is not None:
        case.prepare(t)
    if case.patch is not None:
        case.patch(monkeypatch, t)
    _no_compute(monkeypatch)
    before = snapshot(t)
    message = case.call(t, capsys)
    import re

    assert re.search(case.match, message, re.IGNORECASE | re.DOTALL), message
    after = snapshot(t)
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and k not in case.changed)
    assert not changed, f"files changed: {changed}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"], "files outside the case folder"
