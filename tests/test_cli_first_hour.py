"""The first hour of a new user (issue 17): self-explaining options, progress from the start,
Ctrl-C keeps the work done, one named PSNR everywhere, figure and README agree."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

import napari_d3ip
from napari_d3ip import pipeline
from napari_d3ip.cli import build_parser, main
from napari_d3ip.commands._common import (
    FIGURE_COLUMNS,
    HelpFormatter,
    orthogonal_views,
    partial_path,
    quality,
)
from napari_d3ip.config import RunConfig, presets
from napari_d3ip.events import Step
from napari_d3ip.io.measurements import read_measurement
from napari_d3ip.io.volumes import read_volume, write_volume

README = Path(__file__).resolve().parents[1] / "README.md"

# the least each command needs to parse; presets only lists JSON files (no torch, no --device)
REQUIRED = {
    "demo": [],
    "reconstruct": ["--measurement", "m.h5", "--out", "o.nii.gz"],
    "simulate": ["--sample", "brain-64", "--operator", "ct", "--out", "m.h5"],
    "sample": [],
    "train-prior": [],
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.fixture(scope="module")
def small_measurement(tmp_path_factory):
    """A 4-slice 32x32 CT measurement file (fits the tiny test prior), written by `d3ip simulate`."""
    from napari_d3ip.training.phantoms import ellipsoid_volume

    d = tmp_path_factory.mktemp("meas")
    vol = write_volume(d / "small.nii.gz", ellipsoid_volume((4, 32, 32), seed=2).numpy())
    out = d / "small.h5"
    assert main(["simulate", "--volume", str(vol), "--operator", "ct", "--views", "8",
                 "--device", "auto", "--out", str(out), "--quiet"]) == 0
    return out


# -- --device, --help, --version, defaults ----------------------------------------------------
@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_computing_command_takes_device_auto_cpu_cuda(command):
    parser = build_parser()
    for device in ("auto", "cpu", "cuda"):
        args = parser.parse_args([command, *REQUIRED[command], "--device", device])
        assert args.device == device
    with pytest.raises(SystemExit):  # choices: a typo is refused by the parser, not by torch
        parser.parse_args([command, *REQUIRED[command], "--device", "gpu"])


def test_simulate_device_auto_runs(tmp_path, capsys):
    out = tmp_path / "m.h5"
    assert main(["simulate", "--sample", "phantom-64", "--operator", "ct", "--views", "4",
                 "--device", "auto", "--out", str(out)]) == 0
    assert read_measurement(out).n_slices == 64


def test_every_option_of_every_command_says_what_it_does_and_its_default():
    for name, sub in _subparsers().items():
        fmt = HelpFormatter(prog=sub.prog)
        for action in sub._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS:
                continue  # -h/--help
            opt = f"d3ip {name} {action.option_strings[0]}"
            text = fmt._get_help_string(action)
            assert action.help and len(action.help) > 8, f"{opt} has no help"
            if action.required:
                assert "required" in text, opt
            else:
                assert "(default:" in text, f"{opt} does not show its default: {text!r}"
        sub.format_help()  # every %-expansion works


def test_preset_help_lists_the_preset_names_and_refuses_others():
    names = list(presets())
    subs = _subparsers()
    for command, option in (("reconstruct", "--preset"), ("demo", "--preset"),
                            ("presets", "--show")):
        action = next(a for a in subs[command]._actions if option in a.option_strings)
        for n in names:
            assert n in action.help, (command, n)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--preset", "no-such-preset"])


def test_help_shows_the_run_defaults_of_the_config(capsys):
    subs = _subparsers()
    nfe = {c: next(a for a in subs[c]._actions if "--nfe" in a.option_strings).help
           for c in ("reconstruct", "demo")}
    assert f"(default: {RunConfig().nfe})" in nfe["reconstruct"]
    assert f"(default: {presets()['cpu-preview']['config']['nfe']})" in nfe["demo"]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"d3ip {napari_d3ip.__version__}"


def test_one_version_source():
    from importlib.metadata import version

    setup_cfg = (README.parent / "setup.cfg").read_text()
    assert re.search(r"^version = attr: napari_d3ip.__version__$", setup_cfg, re.M)
    assert version("napari-d3ip") == napari_d3ip.__version__


def test_views_default_is_the_papers_15_everywhere():
    from napari_d3ip.commands.reconstruct import _check_source_options

    subs = _subparsers()
    for command in ("demo", "simulate"):
        args = subs[command].parse_args(REQUIRED[command])
        assert args.views == 15, command
    # reconstruct's --views also picks N of a measurement file's angles (all when not given):
    # a simulation fills in the paper's 15, a file read keeps None
    args = subs["reconstruct"].parse_args(["--sample", "brain-64", "--operator", "ct", "--out", "o.nii.gz"])
    _check_source_options(args)
    assert args.views == 15
    args = subs["reconstruct"].parse_args(REQUIRED["reconstruct"])
    _check_source_options(args)
    assert args.views is None


# -- progress from the first moment ------------------------------------------------------------
def test_reconstruct_says_preparing_then_shows_progress_and_named_psnr(tmp_path, capsys,
                                                                        small_measurement,
                                                                        tiny_prior_path):
    out = tmp_path / "r.nii.gz"
    assert main(["reconstruct", "--measurement", str(small_measurement), "--prior",
                 str(tiny_prior_path), "--nfe", "3", "--device", "cpu", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "preparing" in cap.err.splitlines()[0]  # before anything is loaded
    assert "3/3" in cap.err
    assert "PSNR per-slice mean" in cap.err  # the bar's PSNR is named too
    line = cap.out.strip()
    m = re.search(r"PSNR ([\d.]+) dB per-slice mean \((\d+) of 4 slices\), ([\d.]+) dB volume; "
                  r"SSIM ([-\d.]+) per-slice mean", line)
    assert m, line
    card = json.loads((tmp_path / "r.json").read_text())
    assert float(m.group(1)) == pytest.approx(card["metrics"]["psnr"], abs=0.006)
    assert float(m.group(3)) == pytest.approx(card["metrics"]["volume_psnr"], abs=0.006)


def test_sample_shows_progress(tmp_path, capsys, tiny_prior_path):
    png = tmp_path / "s.png"
    assert main(["sample", "--prior", str(tiny_prior_path), "--n", "2", "--nfe", "3",
                 "--device", "cpu", "--out", str(png)]) == 0
    err = capsys.readouterr().err
    assert err.index("preparing") < err.index("3/3")  # a line at once, then a bar to the end
    assert png.stat().st_size > 0
    assert main(["sample", "--prior", str(tiny_prior_path), "--n", "1", "--nfe", "2",
                 "--device", "cpu", "--out", str(tmp_path / "q.png"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# -- Ctrl-C keeps the estimate ------------------------------------------------------------------
def _interrupt_at_step(monkeypatch, k: int) -> None:
    """Ctrl-C inside the real generator, during diffusion step k (1-based)."""
    real = pipeline.dds_step
    calls = {"n": 0}

    def dds_step(*a, **kw):
        calls["n"] += 1
        if calls["n"] == k:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "dds_step", dds_step)


def test_ctrl_c_writes_the_current_estimate_as_a_partial_result(tmp_path, capsys, monkeypatch,
                                                                  small_measurement,
                                                                  tiny_prior_path):
    out = tmp_path / "recon.nii.gz"
    args = ["reconstruct", "--measurement", str(small_measurement), "--prior", str(tiny_prior_path),
            "--nfe", "5", "--seed", "1", "--device", "cpu", "--out", str(out), "--quiet"]
    m = read_measurement(small_measurement)
    cfg = RunConfig(prior=str(tiny_prior_path), nfe=5, seed=1, device="cpu")
    steps = list(zip(range(2), pipeline.reconstruct(m, cfg)))  # what the first two steps give

    _interrupt_at_step(monkeypatch, 3)
    assert main(args) == 130
    err = capsys.readouterr().err
    partial = tmp_path / "recon.partial.nii.gz"
    assert "after step 2 of 5" in err and str(partial) in err
    assert not out.exists() and not (tmp_path / "recon.json").exists()  # no final result
    card = json.loads((tmp_path / "recon.partial.json").read_text())
    assert card["interrupted"] is True
    assert (card["step_reached"], card["steps_total"]) == (2, 5)
    assert card["config"]["nfe"] == 5 and card["seed"] == 1 and card["partial_of"] == str(out)
    assert 0 < card["metrics"]["psnr"] < 80
    vol = read_volume(partial)
    lo, hi = m.intensity
    expected = lo + np.clip(steps[1][1].estimate, 0, 1) * (hi - lo)
    assert np.allclose(vol.data, expected, atol=1e-5)  # the estimate of step 2, file intensities
    assert np.allclose(vol.affine, m.affine)

    # a second Ctrl-C never overwrites the first partial result
    first = partial.read_bytes()
    monkeypatch.undo()
    _interrupt_at_step(monkeypatch, 2)
    assert main(args) == 130
    assert partial.read_bytes() == first
    card2 = json.loads((tmp_path / "recon.partial-2.json").read_text())
    assert card2["interrupted"] is True and card2["step_reached"] == 1
    assert (tmp_path / "recon.partial-2.nii.gz").exists()
    capsys.readouterr()

    # --no-partial: nothing written
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.undo()
    _interrupt_at_step(monkeypatch, 3)
    assert main(args + ["--no-partial"]) == 130
    assert "--no-partial" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_ctrl_c_before_the_first_step_writes_nothing(tmp_path, capsys, monkeypatch,
                                                     small_measurement, tiny_prior_path):
    _interrupt_at_step(monkeypatch, 1)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["reconstruct", "--measurement", str(small_measurement), "--prior",
                 str(tiny_prior_path), "--nfe", "3", "--device", "cpu", "--out",
                 str(out / "r.nii.gz"), "--quiet"]) == 130
    assert "nothing to save" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_ctrl_c_in_demo_writes_a_partial_result(tmp_path, capsys, monkeypatch):
    def fake_reconstruct(m, cfg, prior=None):  # two steps, then Ctrl-C (no UNet: fast)
        ref = np.asarray(m.reference, np.float32)
        for i in range(2):
            yield Step(index=i, t=980 - 40 * i, total=cfg.nfe, phase="adapting",
                       estimate=ref * (0.5 + 0.25 * i), loss=0.1, elapsed=0.1 * (i + 1), eta=1.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "reconstruct", fake_reconstruct)
    out = tmp_path / "demo"
    args = ["demo", "--sample", "heldout-epi", "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 130
    card = json.loads((out / "reconstruction.partial.json").read_text())
    assert card["interrupted"] is True and card["step_reached"] == 2
    assert card["steps_total"] == presets()["cpu-preview"]["config"]["nfe"]
    assert read_volume(out / "reconstruction.partial.nii.gz").data.shape[0] == 24
    assert not (out / "reconstruction.nii.gz").exists()
    capsys.readouterr()
    assert main(args + ["--no-partial"]) == 130
    assert not (out / "reconstruction.partial-2.nii.gz").exists()


def test_partial_path_never_takes_an_existing_name(tmp_path):
    out = tmp_path / "x.nii.gz"
    assert partial_path(out) == tmp_path / "x.partial.nii.gz"
    (tmp_path / "x.partial.json").write_text("{}")  # even a lone run card blocks the name
    assert partial_path(out) == tmp_path / "x.partial-2.nii.gz"
    assert partial_path(tmp_path / "y.nii") == tmp_path / "y.partial.nii"


# -- one PSNR, named ---------------------------------------------------------------------------
def test_simulate_prints_the_same_named_quantities_as_demo(tmp_path, capsys):
    """simulate's A†y numbers are the demo's FBP numbers: clipped, per-slice mean and volume."""
    out = tmp_path / "ct.h5"
    assert main(["simulate", "--sample", "heldout-epi", "--operator", "ct", "--views", "15",
                 "--out", str(out)]) == 0
    line = capsys.readouterr().out
    m = read_measurement(out)
    q = quality(m.pinv(), np.asarray(m.reference))
    assert (f"A^+y (FBP): PSNR {q['psnr']:.2f} dB per-slice mean ({q['slices_scored']} of 24 "
            f"slices), {q['volume_psnr']:.2f} dB volume; SSIM {q['ssim']:.3f} per-slice mean") in line


# -- figure and README -------------------------------------------------------------------------
def test_figure_columns_are_axial_coronal_sagittal_as_the_readme_says():
    assert FIGURE_COLUMNS == ("axial", "coronal", "sagittal")
    assert "axial / coronal / sagittal" in README.read_text()
    v = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)  # (z, x, y)
    views = orthogonal_views(v)
    assert [label for label, *_ in views] == list(FIGURE_COLUMNS)
    assert np.array_equal(views[0][1], v[2])  # axial: fixed z
    assert np.array_equal(views[1][1], v[:, :, 4])  # coronal: fixed y (anterior-posterior)
    assert np.array_equal(views[2][1], v[:, 3, :])  # sagittal: fixed x (left-right)


def test_readme_training_line_uses_the_current_options():
    text = README.read_text()
    assert "--no-bf16" not in text
    options = {a for a in _subparsers()["train-prior"]._option_string_actions}
    for line in re.findall(r"`(d3ip train-prior [^`]*)`", text):
        for opt in re.findall(r"(--[a-z0-9-]+)", line):
            assert opt in options, (line, opt)
