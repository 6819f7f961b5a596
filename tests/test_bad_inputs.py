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


def test_the_table_is_large_enough():
    kinds = {"cli": 0, "api": 0, "reader": 0, "writer": 0}
    for c in CASES:
        kinds[c.id.split("-")[0] if c.id.split("-")[0] in kinds else "cli"] += 1
    assert len(CASES) >= 60 and all(kinds.values()), kinds
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
    before = snapshot(t)
    message = case.call(t, capsys)
    import re

    assert re.search(case.match, message, re.IGNORECASE | re.DOTALL), message
    after = snapshot(t)
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and k not in case.changed)
    assert not changed, f"files changed: {changed}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"], "files outside the case folder"
