"""ESPIRiT's per-slice progress reaches the caller of open_measurement (the CLI prints it on
stderr), and the plain door without a listener is unchanged."""

from __future__ import annotations

import numpy as np

from _format_writers import write_fastmri
from napari_d3ip.io import OpenOptions, open_measurement
from napari_d3ip.io.formats._mri import fastmri_mask


def _file(tmp_path):
    from napari_d3ip.training.phantoms import ellipsoid_volume

    vol = ellipsoid_volume(32, seed=0)[13:16].numpy().astype(np.float32)
    return write_fastmri(tmp_path / "t.h5", vol, 4, mask=fastmri_mask(32, "random", 4, 0.16, 0))


def test_open_measurement_reports_espirit_per_slice(tmp_path):
    heard = []
    m = open_measurement(_file(tmp_path), OpenOptions(), progress=lambda *a: heard.append(a))
    assert heard == [("coil maps (ESPIRiT)", i, 3) for i in (1, 2, 3)]
    assert m.n_slices == 3


def test_cli_prints_espirit_progress_on_stderr(tmp_path, capsys):
    from napari_d3ip.cli import main

    p = _file(tmp_path)
    assert main(["reconstruct", "--measurement", str(p), "--solver", "admm-tv", "--out",
                 str(tmp_path / "x.nii.gz")]) == 0
    err = capsys.readouterr().err
    assert "coil maps (ESPIRiT): slice 1/3" in err and "coil maps (ESPIRiT): slice 3/3" in err
    assert main(["reconstruct", "--measurement", str(p), "--solver", "admm-tv", "--out",
                 str(tmp_path / "y.nii.gz"), "--quiet"]) == 0
    assert "ESPIRiT" not in capsys.readouterr().err
