"""Nothing lost (issue 14): writes are atomic, a failing write leaves the old file as it was,
the npe2 writer replaces only what the user named and run cards it wrote itself."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from napari_d3ip.events import Result
from napari_d3ip.io.files import OutputError, atomic_write_text, check_output
from napari_d3ip.io.measurements import read_measurement, write_measurement
from napari_d3ip.io.results import is_run_card, run_card_path, save_result
from napari_d3ip.io.volumes import read_volume, write_volume


def _disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _vol(value: float = 0.5) -> np.ndarray:
    return np.full((3, 8, 8), value, np.float32)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_nifti_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "r.nii.gz"
    write_volume(out, _vol(0.25))
    before = out.read_bytes()

    def half_then_full(img, filename):  # the writer gets as far as a truncated file
        Path(filename).write_bytes(b"\x1f\x8b truncated")
        _disk_full()

    monkeypatch.setattr(nib, "save", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        write_volume(out, _vol(0.75), overwrite=True)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []
    monkeypatch.undo()
    assert np.allclose(read_volume(out).data, 0.25)


def test_result_and_run_card_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    out = tmp_path / "r.nii.gz"
    save_result(Result(volume=_vol(0.25), card={"napari_d3ip_version": "x", "seed": 1}), out)
    vol_before, card_before = out.read_bytes(), run_card_path(out).read_text()
    real = Path.write_text

    def card_fails(self, *a, **k):
        if ".tmp-" in self.name and self.suffix == ".json":
            real(self, "{\"trunc")
            _disk_full()
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", card_fails)
    with pytest.raises(OSError):
        save_result(Result(volume=_vol(0.75), card={"napari_d3ip_version": "x", "seed": 2}),
                    out, overwrite=True)
    assert out.read_bytes() == vol_before  # the new volume was never renamed into place
    assert run_card_path(out).read_text() == card_before
    assert _leftovers(tmp_path) == []


def test_measurement_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    from test_bad_inputs import make_measurement

    out = tmp_path / "m.h5"
    write_measurement(out, make_measurement())
    before = out.read_bytes()
    calls = []
    real = h5py.Group.create_dataset

    def second_fails(self, *a, **k):
        calls.append(a[0] if a else k.get("name"))
        if len(calls) == 2:
            _disk_full()
        return real(self, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", second_fails)
    with pytest.raises(OSError):
        write_measurement(out, make_measurement("mri"), overwrite=True)
    monkeypatch.undo()
    assert out.read_bytes() == before and _leftovers(tmp_path) == []
    assert read_measurement(out).operator.kind == "ct"


def test_disk_space_is_checked_before_writing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from napari_d3ip.io.files import ResourceError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(ResourceError, match="disk space"):
        write_volume(tmp_path / "x.nii.gz", _vol())
    assert list(tmp_path.iterdir()) == []


def test_atomic_text_and_check_output(tmp_path):
    p = atomic_write_text(tmp_path / "a.json", "{}")
    assert p.read_text() == "{}" and _leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="is the measurement"):
        check_output(tmp_path / "a.json", inputs=[("measurement", tmp_path / "a.json")],
                     force=True)
    os.symlink(tmp_path / "a.json", tmp_path / "link.json")  # a link to an input is the input
    with pytest.raises(OutputError, match="is the --config file"):
        check_output(tmp_path / "link.json", inputs=[("--config file", tmp_path / "a.json")],
                     force=True)
    with pytest.raises(FileExistsError, match="--force"):
        check_output(tmp_path / "a.json")
    assert check_output(tmp_path / "new" / "b.nii.gz", suffixes=(".nii.gz",)).name == "b.nii.gz"


# -- the npe2 writer ---------------------------------------------------------------------------
def _result_meta(seed: int = 0) -> dict:
    from napari_d3ip import _layers as L

    return {"metadata": {L.RUN_CARD: {"napari_d3ip_version": "t", "seed": seed},
                         L.AFFINE: np.diag([2.0, 1.0, 1.0, 1.0]), L.INTENSITY: (0.0, 100.0)}}


def test_writer_replaces_the_named_file_and_its_own_card(tmp_path):
    from napari_d3ip._writer import write_nifti

    out = tmp_path / "r.nii.gz"
    assert write_nifti(str(out), _vol(0.25), _result_meta(1)) == [str(out), str(tmp_path / "r.json")]
    # saving again onto the name the user gave: replaced, card included (it is ours)
    write_nifti(str(out), _vol(0.5), _result_meta(2))
    assert json.loads((tmp_path / "r.json").read_text())["seed"] == 2
    assert np.allclose(read_volume(out).data, 50.0) and _leftovers(tmp_path) == []


def test_writer_never_replaces_a_foreign_sidecar(tmp_path):
    from napari_d3ip._writer import write_nifti

    sidecar = tmp_path / "sub-01_T1w.json"
    sidecar.write_text('{"RepetitionTime": 2.3}')
    image = tmp_path / "sub-01_T1w.nii.gz"
    write_volume(image, _vol(0.1))
    before = image.read_bytes()
    assert not is_run_card(sidecar)
    with pytest.raises(FileExistsError, match="never replaced"):
        write_nifti(str(image), _vol(0.9), _result_meta())
    assert sidecar.read_text() == '{"RepetitionTime": 2.3}' and image.read_bytes() == before
    # a plain image layer has no card: the named file is written, the sidecar untouched
    write_nifti(str(image), _vol(0.9), {"metadata": {}})
    assert sidecar.read_text() == '{"RepetitionTime": 2.3}'


def test_cli_force_still_replaces_a_previous_result(tmp_path, capsys):
    """--force is for the outputs: replacing our own result and card stays possible."""
    from napari_d3ip.cli import main
    from test_bad_inputs import make_measurement

    write_measurement(tmp_path / "m.h5", make_measurement())
    args = ["reconstruct", "--measurement", str(tmp_path / "m.h5"), "--solver", "admm-tv",
            "--tv-iters", "2", "--out", str(tmp_path / "r.nii.gz"), "--quiet", "--device", "cpu"]
    assert main(args) == 0
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main(args + ["--force", "--seed", "5"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["seed"] == 5
    assert _leftovers(tmp_path) == []
