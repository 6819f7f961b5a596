"""`d3ip reconstruct`: NIfTI with the input's affine, a run card, metrics, never overwrites."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_d3ip.cli import main
from napari_d3ip.io.measurements import read_measurement
from napari_d3ip.io.volumes import read_volume
from napari_d3ip.sample_data import sample_path


def _line(capsys) -> str:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return out[0]


def test_dds_on_the_sample_ct_writes_volume_card_and_metrics(tmp_path, capsys):
    meas = sample_path("ct15")
    out = tmp_path / "recon.nii.gz"
    args = ["reconstruct", "--measurement", str(meas), "--solver", "dds", "--nfe", "2", "--seed", "3",
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    line = _line(capsys)
    assert "PSNR" in line and "recon.nii.gz" in line
    m = read_measurement(meas)
    vol = read_volume(out)
    assert np.allclose(vol.affine, m.affine)
    assert vol.data.shape == (m.n_slices, *m.image_shape)
    card = json.loads((tmp_path / "recon.json").read_text())
    assert card["config"]["solver"] == "dds" and card["config"]["nfe"] == 2 and card["seed"] == 3
    assert card["prior"]["name"] == "organic-64" and card["prior"]["sha256"]
    assert 10 < card["metrics"]["psnr"] < 60

    before = out.read_bytes()
    assert main(args) == 2  # exists: refused, untouched
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(args + ["--force", "--seed", "4"]) == 0
    assert json.loads((tmp_path / "recon.json").read_text())["seed"] == 4


def test_solver_options_reach_the_run_card(tmp_path, capsys):
    out = tmp_path / "tv.nii.gz"
    assert main(["reconstruct", "--measurement", str(sample_path("mri-r8")), "--solver", "admm-tv",
                 "--tv-iters", "3", "--tv-lambda", "0.02", "--admm-rho", "0.7", "--out", str(out),
                 "--quiet"]) == 0
    _line(capsys)
    cfg = json.loads((tmp_path / "tv.json").read_text())["config"]
    assert (cfg["tv_iters"], cfg["tv_lambda"], cfg["admm_rho"]) == (3, 0.02, 0.7)


@pytest.mark.parametrize("extra, message", [
    (["--nfe", "0"], "nfe"),
    (["--dps-zeta", "-1"], "dps_zeta"),
])
def test_bad_options_name_the_problem(tmp_path, capsys, extra, message):
    out = tmp_path / "x.nii.gz"
    code = main(["reconstruct", "--measurement", str(sample_path("ct15")), "--out", str(out), "--quiet",
                 *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_measurement_is_a_clear_error(tmp_path, capsys):
    code = main(["reconstruct", "--measurement", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o.nii.gz")])
    assert code == 2
    assert "nope.h5" in capsys.readouterr().err


def test_reconstruct_without_a_method_says_what_it_runs_and_what_is_recommended(tmp_path, capsys):
    from napari_d3ip.cli import main
    from napari_d3ip.sample_data import sample_path

    out = tmp_path / "r.nii.gz"
    code = main(["reconstruct", "--measurement", str(sample_path("ct15")), "--out", str(out),
                 "--device", "cpu", "--nfe", "1", "--batch-slices", "64"])
    assert code == 0
    err = capsys.readouterr()
    text = err.out + err.err
    assert "no --preset, --config or --solver given" in text and "--preset sv-ct-admm-tv" in text


def test_a_bids_sidecar_beside_the_output_gets_the_real_way_out_first(tmp_path, capsys):
    """--force cannot replace a file napari-d3ip did not write: the first message must not
    advise it, and must name a result name that works."""
    from napari_d3ip.cli import main
    from napari_d3ip.sample_data import sample_path

    side = tmp_path / "sub-01_bold.json"
    side.write_text('{"RepetitionTime": 2.0}')
    code = main(["reconstruct", "--measurement", str(sample_path("ct15")), "--solver", "admm-tv",
                 "--out", str(tmp_path / "sub-01_bold.nii.gz"), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert "sub-01_bold_d3ip.nii.gz" in err and "--force or not" in err
    assert side.read_text() == '{"RepetitionTime": 2.0}'


def test_the_cli_prints_library_errors_and_lets_bugs_keep_their_traceback(monkeypatch, capsys):
    """`d3ip` catches D3IPError (a message, exit 2); a plain ValueError is a bug: it propagates."""
    import pytest

    from napari_d3ip import cli
    from napari_d3ip.errors import OptionError

    def raise_(exc):
        def f(args):
            raise exc
        return f

    parser = cli.build_parser()
    args = parser.parse_args(["presets"])
    args.func = raise_(OptionError("--thing must be 1"))
    assert cli._run(args) == 2
    assert "--thing must be 1" in capsys.readouterr().err
    args.func = raise_(ValueError("an internal shape mismatch"))
    with pytest.raises(ValueError, match="internal"):
        cli._run(args)
