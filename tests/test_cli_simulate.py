"""`d3ip simulate`: files come out right, nothing is overwritten without --force."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_d3ip.cli import main
from napari_d3ip.io.measurements import read_measurement
from napari_d3ip.io.volumes import read_volume, to_unit_range, write_volume

AFFINE = np.array([[0.0, 0.9, 0.0, -12.0], [0.0, 0.0, 1.1, 4.0], [2.5, 0.0, 0.0, 30.0],
                   [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def volume_path(tmp_path_factory):
    """4 slices of 32x32 in CT-like units (-1000..), anisotropic and permuted affine."""
    from napari_d3ip.training.phantoms import ellipsoid_volume

    vol = ellipsoid_volume((4, 32, 32), seed=1).numpy() * 2000.0 - 1000.0
    return write_volume(tmp_path_factory.mktemp("vol") / "small.nii.gz", vol, affine=AFFINE)


def _summary(capsys) -> str:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # one line
    return out[0]


def _psnr(line: str) -> float:
    """The volume PSNR of A†y (clipped to [0, 1]) that the summary names as such."""
    m = re.search(r"A\^\+y \((?:FBP|zero-filled)\): PSNR [\d.]+ dB per-slice mean \(\d+ of \d+ "
                  r"slices\), ([\d.]+) dB volume; SSIM [-\d.]+ per-slice mean", line)
    return float(m.group(1))


def test_ct(tmp_path, volume_path, capsys):
    out = tmp_path / "ct.h5"
    rc = main(["simulate", "--volume", str(volume_path), "--operator", "ct", "--views", "12",
               "--out", str(out)])
    assert rc == 0
    line = _summary(capsys)
    assert "ct, 4 slices of 32x32" in line and "12 views" in line and "noise 0.01" in line
    m = read_measurement(out)
    assert m.operator.kind == "ct" and m.operator.params()["n_views"] == 12
    assert tuple(m.y.shape) == (4, 12, 46)
    vol = read_volume(volume_path)
    ref, lohi = to_unit_range(vol)
    assert np.allclose(m.reference, ref) and m.intensity == pytest.approx(lohi)
    assert np.allclose(m.affine, vol.affine) and np.allclose(m.spacing, vol.spacing)
    assert m.simulation["noise"] == 0.01 and m.simulation["views"] == 12
    # the printed volume PSNR is the one of the file's A†y, clipped to [0, 1] like every image
    mse = np.mean((np.clip(m.pinv(), 0, 1) - m.reference) ** 2)
    assert _psnr(line) == pytest.approx(10 * np.log10(1 / mse), abs=0.01)
    assert 10 < _psnr(line) < 40


def test_mri_defaults_and_more_samples_is_better(tmp_path, volume_path, capsys):
    psnrs = {}
    for accel in ("8", "3"):
        out = tmp_path / f"mri{accel}.h5"
        args = ["simulate", "--volume", str(volume_path), "--operator", "mri", "--out", str(out)]
        if accel != "8":
            args += ["--accel", accel]
        assert main(args) == 0
        line = _summary(capsys)
        m = read_measurement(out)
        assert m.operator.acceleration == pytest.approx(float(accel), rel=0.02)
        assert f"R={m.operator.acceleration:.2f} (poisson)" in line and "noise 0," in line
        psnrs[accel] = _psnr(line)
    assert psnrs["3"] > psnrs["8"] + 2


def test_mri_uniform_lines(tmp_path, volume_path, capsys):
    out = tmp_path / "lines.h5"
    assert main(["simulate", "--volume", str(volume_path), "--operator", "mri", "--mask",
                 "uniform1d", "--accel", "4", "--out", str(out)]) == 0
    assert "(uniform1d)" in _summary(capsys)
    mask = read_measurement(out).operator.arrays()["mask"]
    assert (mask.all(axis=0) | ~mask.any(axis=0)).all()  # whole columns (phase-encode lines)


def test_multicoil(tmp_path, volume_path, capsys):
    out = tmp_path / "mc.h5"
    assert main(["simulate", "--volume", str(volume_path), "--operator", "mri-multicoil",
                 "--coils", "4", "--out", str(out)]) == 0
    line = _summary(capsys)
    assert "R=4.00 (uniform1d)" in line and "noise 0.01" in line
    m = read_measurement(out)
    assert tuple(m.y.shape) == (4, 4, 32, 32) and m.operator.n_coils == 4


def test_force(tmp_path, volume_path, capsys):
    out = tmp_path / "m.h5"
    base = ["simulate", "--volume", str(volume_path), "--operator", "ct", "--views", "6",
            "--out", str(out)]
    assert main(base) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(base + ["--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err
    assert out.read_bytes() == before
    assert main(base + ["--seed", "5", "--force"]) == 0
    assert read_measurement(out).simulation["seed"] == 5


def test_sample_volume_and_bad_inputs(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["simulate", "--sample", "phantom-64", "--operator", "ct", "--views", "8",
                 "--out", str(out)]) == 0
    assert "64 slices of 64x64" in _summary(capsys)
    assert read_measurement(out).simulation["source"] == "sample:phantom-64"
    assert main(["simulate", "--sample", "ct15", "--operator", "ct", "--out",
                 str(tmp_path / "x.h5")]) == 2
    assert "not a volume" in capsys.readouterr().err
    assert main(["simulate", "--sample", "nope", "--operator", "ct", "--out",
                 str(tmp_path / "x.h5")]) == 2
    assert "brain-64" in capsys.readouterr().err  # lists the available samples
    assert main(["simulate", "--volume", str(tmp_path / "missing.nii.gz"), "--operator", "ct",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["simulate", "--sample", "phantom-64", "--operator", "mri", "--accel", "1",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert "--accel must be > 1" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_file_records_the_equivalent_command(tmp_path, volume_path, capsys):
    out = tmp_path / "c.h5"
    assert main(["simulate", "--volume", str(volume_path), "--operator", "mri", "--out",
                 str(out)]) == 0
    cmd = read_measurement(out).simulation["command"]
    assert cmd == (f"d3ip simulate --volume {volume_path} --operator mri --accel 8 --mask "
                   f"poisson --noise 0 --seed 0 --axis 2 --out {out}")
