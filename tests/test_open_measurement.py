"""The one door: io.open_measurement recognises formats by content, options are checked, and
every front end (CLI, npe2 reader, sample data) goes through it."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from napari_d3ip.io import OpenOptions, inspect_file, open_measurement
from napari_d3ip.io.formats import BUILTIN, check_options, detect, formats, option_flag, slice_range
from napari_d3ip.io.measurements import MeasurementError
from napari_d3ip.sample_data import sample_path


def test_detect_by_content_not_extension(tmp_path):
    src = sample_path("mri-r8")
    renamed = tmp_path / "scan.dat"
    renamed.write_bytes(src.read_bytes())
    assert detect(renamed).name == "d3ip"
    assert {f.name for f in formats()} <= set(BUILTIN)


@pytest.mark.parametrize("content, match", [
    (b"plain text", r"not an HDF5 file"),
    (None, r"(?s)HDF5 file in none of the known layouts.*d3ip"),
])
def test_unknown_file_lists_known_formats(tmp_path, content, match):
    p = tmp_path / "x.h5"
    if content is None:
        with h5py.File(p, "w") as f:
            f["something"] = np.zeros(3)
    else:
        p.write_bytes(content)
    with pytest.raises(MeasurementError, match=match):
        open_measurement(p)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(MeasurementError, match="no such file"):
        open_measurement(tmp_path / "nope.h5")
    with pytest.raises(MeasurementError, match="not a regular file"):
        open_measurement(tmp_path)


def test_d3ip_slices_and_inspect():
    p = sample_path("mri-r8")
    m = open_measurement(p, OpenOptions(slices="10:14"))
    whole = open_measurement(p)
    assert m.n_slices == 4
    np.testing.assert_array_equal(m.y.numpy(), whole.y[10:14].numpy())
    np.testing.assert_array_equal(m.reference, whole.reference[10:14])
    info = inspect_file(p, OpenOptions(slices=":8"))
    assert info["format"] == "d3ip" and info["kind"] == "mri" and info["slices"] == 8
    assert info["reference"] is True and info["memory_bytes"] > 0


@pytest.mark.parametrize("options, match", [
    (OpenOptions(mask="random"), r"--mask does not apply to a d3ip file"),
    (OpenOptions(views=4, center=3.0), r"--views, --center do not apply"),
    (OpenOptions(slices="5"), r"--slices must be 'a:b'"),
    (OpenOptions(slices="70:80"), r"selects none of the file's 64 slices"),
])
def test_bad_options_refused_before_reading(options, match):
    with pytest.raises(MeasurementError, match=match):
        open_measurement(sample_path("mri-r8"), options)


@pytest.mark.parametrize("options, match", [
    (OpenOptions(mask="lines"), r"--mask 'lines' is not one of equispaced, random, poisson"),
    (OpenOptions(accel=1.0), r"--accel must be > 1"),
    (OpenOptions(center_fraction=1.5), r"--center-fraction must lie in \(0, 1\)"),
    (OpenOptions(views=1), r"--views must be >= 2"),
    (OpenOptions(binning=0), r"--bin must be >= 1"),
])
def test_option_values_checked(options, match):
    allowed = tuple(f.name for f in dataclasses.fields(OpenOptions))
    with pytest.raises(MeasurementError, match=match):
        check_options(options, allowed, "any")


def test_slice_range():
    assert list(slice_range(None, 3)) == [0, 1, 2]
    assert list(slice_range("1:", 4)) == [1, 2, 3]
    assert list(slice_range(":-1", 4)) == [0, 1, 2]
    assert list(slice_range("0:6:2", 6)) == [0, 2, 4]


def test_cli_options_generated_from_dataclass(capsys):
    from napari_d3ip.cli import main

    with pytest.raises(SystemExit):
        main(["inspect", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(OpenOptions):
        assert option_flag(f.name) in text, f.name
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(OpenOptions):
        assert option_flag(f.name) in text, f.name


def test_cli_inspect_prints_description(capsys):
    from napari_d3ip.cli import main

    assert main(["inspect", str(sample_path("ct15"))]) == 0
    out = capsys.readouterr().out
    assert "d3ip" in out and "ct" in out and "angles" in out and "15" in out
    assert main(["inspect", str(sample_path("ct15")), "--mask", "random"]) == 2
    assert "--mask does not apply" in capsys.readouterr().err


def test_reconstruct_refuses_reader_options_without_a_file(tmp_path, capsys):
    from napari_d3ip.cli import main

    rc = main(["reconstruct", "--sample", "phantom-64", "--slices", "1:3", "--solver", "admm-tv",
               "--out", str(tmp_path / "x.nii.gz")])
    assert rc == 2 and "--slices read(s) a measurement file" in capsys.readouterr().err


def test_npe2_reader_declines_foreign_h5(tmp_path):
    from napari_d3ip._reader import get_reader

    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros(3)
    assert get_reader(str(p)) is None
    assert get_reader(str(sample_path("ct15"))) is not None
