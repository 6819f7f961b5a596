"""`d3ip-slicer`: the 3D Slicer CLI module, tested without Slicer.

The XML is read with ctk_cli (a pure-Python reader of the Execution Model, as Slicer reads it);
the command line is built from ctk_cli's parameters by Slicer's rules (vtkSlicerCLIModuleLogic:
`--longflag value` for numbers and enumerations, a boolean's flag only when true, a string,
file or image only when not empty) and run as Slicer runs a Python CLI: the module folder's
script under a Python interpreter, on a NRRD with an oblique direction and anisotropic spacing.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_d3ip.config import SOLVERS, RunConfig, from_preset, presets, specs
from napari_d3ip.slicer_cli import main
from napari_d3ip.slicer_cli.module import SCRIPT, module_files, write_module
from napari_d3ip.slicer_cli.run import (
    Cancelled,
    CancelOnSignal,
    build_parser,
    comment_line,
    config_from_args,
    drive,
    end_line,
    progress_line,
    start_line,
)
from napari_d3ip.slicer_cli.schema import NO_PRESET, number_text, xml_text

ctk_cli = pytest.importorskip("ctk_cli")
sitk = pytest.importorskip("SimpleITK")

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "slicer" / "D3IPReconstruct"
SCRIPT_PATH = MODULE_DIR / "D3IPReconstruct.py"
IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")  # the schema's name and longflag pattern
#: every line Slicer's progress parser knows, and the one summary line of a finished run
TAG_LINE = re.compile(r"<filter-(start|progress|comment|end)>.*</filter-\1>\Z")
#: a parameter's children in the schema's order (ctkCmdLineModule.xsd, paramType + extensions)
ORDER = ["name", "flag", "longflag", "index", "description", "label", "default", "channel",
         "constraints", "element"]


def _module():
    return ctk_cli.CLIModule(stream=io.StringIO(xml_text()))


def slicer_command_line(overrides: dict[str, str]) -> list[str]:
    """The arguments Slicer passes: every parameter of the XML with its value (the default or
    the user's), by the rules of Slicer's command-line builder."""
    args = []
    for p in _module().parameters():
        value = overrides.get(p.name)
        if value is None:
            value = "" if p.default is None else (
                ("true" if p.default else "false") if p.typ == "boolean" else str(p.default))
        if p.typ == "boolean":
            args += [p.longflag] if value == "true" else []
        elif p.typ in ("file", "image", "string", "directory"):
            args += [p.longflag, value] if value != "" else []
        else:
            args += [p.longflag, value]
    return args


def oblique_nrrd(path: Path, seed: int = 0) -> Path:
    """A 4-slice 32x32 NRRD (int16, like a CT) with a rotated direction and anisotropic spacing."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    a = np.zeros((4, 32, 32), np.float32)
    a[:, 8:24, 10:22] = 300
    a[:, 12:18, 4:12] = 150
    a += rng.normal(0, 10, a.shape).astype(np.float32)
    img = sitk.GetImageFromArray(a.astype(np.int16))
    img.SetSpacing((0.7, 0.9, 2.5))
    img.SetOrigin((-10.5, 20.25, 3.0))
    img.SetDirection(Rotation.from_euler("zxy", [30, 10, -20], degrees=True).as_matrix().ravel().tolist())
    sitk.WriteImage(img, str(path))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


# -- the description -----------------------------------------------------------------------
def test_xml_parses_with_ctk_cli_as_slicer_reads_it():
    m = _module()
    assert (m.title, m.category) == ("D3IP Reconstruct", "Reconstruction")
    params = {p.name: p for p in m.parameters()}
    assert (params["input_volume"].typ, params["input_volume"].channel) == ("image", "input")
    assert (params["measurement"].typ, params["measurement"].channel) == ("file", "input")
    assert (params["output_volume"].typ, params["output_volume"].channel) == ("image", "output")
    assert (params["run_card"].typ, params["run_card"].channel) == ("file", "output")
    assert params["preset"].elements == [NO_PRESET, *presets()]  # listed anew from the package
    assert params["solver"].elements == list(SOLVERS)
    assert params["operator"].elements[0] == params["operator"].default == "ct"
    assert [g.advanced for g in m] == [False, False, False, True]
    arguments, options, simple_outputs = m.classifyParameters()
    assert not arguments and not simple_outputs and len(options) == len(params)


def test_defaults_are_the_librarys():
    """Every RunConfig field Slicer shows starts at RunConfig's default (null: empty)."""
    params = {p.name: p for p in _module().parameters()}
    base = RunConfig()
    shown = [s for s in specs() if s.param.gui and s.flags[0]]
    assert {s.name for s in shown} <= set(params)
    for s in shown:
        p, want = params[s.name], getattr(base, s.name)
        if s.optional:
            assert (p.typ, p.default) == ("string", "" if want is None else number_text(want)), s.name
        else:
            assert p.default == want, s.name
        if p.elements:
            assert p.default in p.elements, s.name


def test_xml_follows_the_execution_model_schema():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml_text())
    assert [c.tag for c in root][:3] == ["category", "title", "description"]
    assert xml_text().isascii()  # non-ASCII help (γ, ρ) as character references
    names = []
    for group in root.findall("parameters"):
        assert [c.tag for c in group][:2] == ["label", "description"]
        for p in list(group)[2:]:
            tags = [c.tag for c in p]
            assert tags == sorted(tags, key=ORDER.index), (p.tag, tags)
            name, flag = p.findtext("name"), p.findtext("longflag")
            assert IDENT.match(name) and IDENT.match(flag), name
            c = p.find("constraints")
            if c is not None:
                assert c.findtext("step") and float(c.findtext("minimum")) <= float(c.findtext("maximum"))
                assert float(c.findtext("minimum")) <= float(p.findtext("default")) <= float(c.findtext("maximum"))
            names.append(name)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("value, text", [(0.001, "0.001"), (1e4, "10000"), (0.85, "0.85"), (5, "5"),
                                         (1e-4, "0.0001"), (True, "true"), (0.0, "0")])
def test_number_text_is_positional(value, text):
    """Slicer counts the digits after the point for the box's decimals: 1e-03 would show 0."""
    assert number_text(value) == text


def test_every_parameter_is_an_option_the_script_accepts():
    parser = build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    assert {p.longflag for p in _module().parameters()} <= flags
    args = parser.parse_args(slicer_command_line({"input_volume": "in.nrrd",
                                                  "output_volume": "out.nrrd"}))
    assert config_from_args(args) == RunConfig()  # the defaults Slicer passes change nothing


def test_module_folder_is_generated_from_the_same_source():
    for name, text in module_files().items():
        assert (MODULE_DIR / name).read_text(encoding="utf-8") == text, (
            f"slicer/D3IPReconstruct/{name} is out of date (a preset or setting changed): run "
            "`d3ip-slicer --write-module slicer/D3IPReconstruct --force`")
    assert SCRIPT.splitlines()[0] == "#!/usr/bin/env python-real"
    assert os.access(SCRIPT_PATH, os.X_OK)


def test_the_module_script_prints_the_xml():
    done = subprocess.run([sys.executable, str(SCRIPT_PATH), "--xml"], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert done.returncode == 0 and done.stdout == xml_text()
    assert ctk_cli.CLIModule(stream=io.StringIO(done.stdout)).title == "D3IP Reconstruct"


def test_write_module_refuses_to_replace_a_changed_file(tmp_path):
    folder = tmp_path / "D3IPReconstruct"
    write_module(folder)
    assert {p.name: p.read_text() for p in folder.iterdir()} == module_files()
    write_module(folder)  # equal files: fine
    (folder / "D3IPReconstruct.xml").write_text("<edited/>")
    with pytest.raises(FileExistsError, match="--force"):
        write_module(folder)
    assert (folder / "D3IPReconstruct.xml").read_text() == "<edited/>"
    write_module(folder, force=True)
    assert (folder / "D3IPReconstruct.xml").read_text() == xml_text()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_module(tmp_path / "file")


def test_main_prints_the_xml_and_writes_the_module(tmp_path, capsys):
    assert main(["--xml"]) == 0
    assert capsys.readouterr().out == xml_text()
    assert main(["--write-module", str(tmp_path / "m")]) == 0
    assert "Additional module paths" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in (tmp_path / "m").iterdir()} == module_files()
    (tmp_path / "m" / "D3IPReconstruct.py").write_text("# mine\n")
    assert main(["--write-module", str(tmp_path / "m")]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "m" / "D3IPReconstruct.py").read_text() == "# mine\n"


# -- settings: preset, then what the user changed ---------------------------------------------
@pytest.mark.parametrize("given, check", [
    ({}, lambda c: c == RunConfig()),
    ({"preset": "sv-ct"}, lambda c: c == from_preset("sv-ct")),
    # left at the shown default (50): the preset's value stays
    ({"preset": "cpu-preview", "nfe": "50"}, lambda c: c.nfe == from_preset("cpu-preview").nfe),
    ({"preset": "cpu-preview", "nfe": "7"}, lambda c: c.nfe == 7 and c.preset == "cpu-preview"),
    ({"preset": "sv-ct", "seed": "3", "device": "cpu"}, lambda c: (c.seed, c.device) == (3, "cpu")),
    ({"gamma": "5"}, lambda c: c.gamma == 5.0),
    ({"gamma": "none"}, lambda c: c.gamma is None),
    ({"keep_optimizer": "true", "adapter": "d3ip-base"}, lambda c: c.keep_optimizer is True),
    ({"lr": "0.003", "adapter": "d3ip-base"}, lambda c: c.lr == 0.003),
])
def test_preset_then_changed_settings(given, check):
    args = build_parser().parse_args(slicer_command_line({"input_volume": "in.nrrd",
                                                          "output_volume": "o.nrrd", **given}))
    assert check(config_from_args(args))


# -- progress lines ------------------------------------------------------------------------
def _slicer_strip(text: str) -> str:
    """Slicer's RemoveProgressInfoFromProcessOutput: each tag's regex, in its order."""
    for tag in ("progress", "stage-progress", "name", "comment", "time", "start", "end"):
        text = re.sub(rf"<filter-{tag}>[^<]*</filter-{tag}>[ \t\n\r]*", "", text)
    return text


def test_progress_lines_are_what_slicer_parses():
    assert progress_line(0.5) == "<filter-progress>0.5000</filter-progress>"
    assert progress_line(1.7) == "<filter-progress>1.0000</filter-progress>"
    assert comment_line("a <b>\nc") == "<filter-comment>a (b) c</filter-comment>"
    lines = [start_line("reading x"), progress_line(0.25), comment_line("step"), end_line(1.5)]
    assert all(TAG_LINE.match(line) for line in lines)
    assert _slicer_strip("\n".join(lines) + "\n") == ""  # nothing left over in Slicer's output text


class _Steps:
    """A fake `reconstruct` generator that counts what it was asked for; `after(k)` runs once
    step k has been handed out."""

    def __init__(self, n: int, after=None):
        self.asked, self.closed, self.n, self.after = 0, False, n, after

    def __iter__(self):
        return self

    def __next__(self):
        from napari_d3ip.events import Result, Step

        if self.asked == self.n:
            raise StopIteration(Result(volume=np.zeros((1, 2, 2), np.float32)))
        self.asked += 1
        if self.after is not None:
            self.after(self.asked)
        return Step(index=self.asked - 1, t=0, total=self.n, phase="sampling",
                    estimate=np.zeros((1, 2, 2), np.float32), loss=0.0, elapsed=0.0, eta=0.0)

    def close(self):
        self.closed = True


def test_drive_stops_at_the_next_step_after_a_signal(capsys):
    cancel = CancelOnSignal()
    steps = _Steps(10, after=lambda k: k == 2 and cancel._handler(signal.SIGTERM, None))
    with pytest.raises(Cancelled) as stop:
        drive(steps, cancel)
    assert stop.value.signum == signal.SIGTERM
    assert steps.asked == 2 and steps.closed  # step 3 was never started
    assert capsys.readouterr().out.splitlines() == [progress_line(0.1), progress_line(0.2)]


def test_drive_returns_the_result_with_one_line_per_step(capsys):
    result = drive(_Steps(4), CancelOnSignal())
    assert result.volume.shape == (1, 2, 2)
    assert capsys.readouterr().out.splitlines() == [progress_line(k / 4) for k in (1, 2, 3, 4)]


# -- bad input: one line, non-zero, nothing written -------------------------------------------
@pytest.mark.parametrize("given, needle", [
    ({"input_volume": ""}, "--input_volume"),
    ({"measurement": "m.h5"}, "not both"),
    ({"input_volume": "missing.nrrd"}, "missing.nrrd"),
    ({"output_volume": "out.txt"}, "--output_volume"),
    ({"output_volume": "in.nrrd"}, "never writes over"),  # the input stays as it was
    ({"gamma": "abc"}, "--gamma"),
    ({"noise": "lots"}, "--noise"),
    ({"nfe": "0"}, "nfe"),
    ({"preset": "mri3d", "solver": "dds"}, "made for mri"),
    ({"window_lo": "900", "window_hi": "100", "adapter": "d3ip-base"}, "window_lo"),
])
def test_bad_input_is_one_line_before_any_compute(tmp_path, monkeypatch, capsys, given, needle):
    monkeypatch.chdir(tmp_path)
    oblique_nrrd(tmp_path / "in.nrrd")
    values = {"input_volume": "in.nrrd", "output_volume": "out.nrrd", "solver": "admm-tv",
              "tv_iters": "2", "device": "cpu", **given}
    code = main(slicer_command_line(values))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("d3ip-slicer: error:") and needle in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nrrd"]


def test_a_bad_choice_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--solver", "magic"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--solver" in err[0] and "magic" in err[0]


# -- runs ----------------------------------------------------------------------------------
def _geometry(path: Path) -> dict:
    img = sitk.ReadImage(str(path))
    return {k: np.asarray(getattr(img, f"Get{k}")()) for k in ("Size", "Spacing", "Origin", "Direction")}


def test_slicer_run_keeps_geometry_and_matches_d3ip_reconstruct(tmp_path, tiny_prior_path):
    from napari_d3ip.cli import main as d3ip

    src = oblique_nrrd(tmp_path / "in.nrrd")
    out, card = tmp_path / "out.nrrd", tmp_path / "card.json"
    run = {"solver": "dds", "nfe": "3", "seed": "5", "device": "cpu", "prior": str(tiny_prior_path)}
    args = slicer_command_line({"input_volume": str(src), "output_volume": str(out),
                                "run_card": str(card), "views": "6", **run})
    done = subprocess.run([sys.executable, str(SCRIPT_PATH), *args], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # Slicer logs anything on stderr as an error of the module
    lines = done.stdout.splitlines()
    assert lines[0].startswith("<filter-start>") and lines[-2].startswith("<filter-end>")
    assert all(TAG_LINE.match(line) for line in lines[:-1]) and "out.nrrd" in lines[-1]
    fractions = [float(x) for x in re.findall(r"<filter-progress>([^<]*)</", done.stdout)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [round(f, 4) for f in fractions[1:4]] == [round(k / 3, 4) for k in (1, 2, 3)]  # per step

    got, want = _geometry(out), _geometry(src)
    assert np.array_equal(got["Size"], want["Size"])
    for k in ("Spacing", "Origin", "Direction"):
        assert np.abs(got[k] - want[k]).max() <= 1e-12, k  # float64 round-off at most

    ref = tmp_path / "ref.nrrd"
    assert d3ip(["reconstruct", "--volume", str(src), "--operator", "ct", "--views", "6", "--nfe", "3",
                 "--solver", "dds", "--seed", "5", "--device", "cpu", "--prior", str(tiny_prior_path),
                 "--out", str(ref), "--quiet"]) == 0
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(ref)))
    assert np.array_equal(a, b), np.abs(a - b).max()  # one code path, one thread: the same numbers
    c = json.loads(card.read_text())
    assert (c["config"]["nfe"], c["seed"], c["front_end"]) == (3, 5, "d3ip-slicer")
    assert c["output"] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.nrrd", "out.nrrd", "card.json", "ref.nrrd", "ref.json", "tiny.safetensors", "tiny.json"])


def test_a_measurement_file_gives_its_geometry(tmp_path, capsys):
    from napari_d3ip.io.measurements import read_measurement
    from napari_d3ip.io.volumes import read_volume
    from napari_d3ip.sample_data import sample_path

    out = tmp_path / "r.nrrd"
    code = main(slicer_command_line({"measurement": str(sample_path("ct15")), "output_volume": str(out),
                                     "solver": "admm-tv", "tv_iters": "2", "device": "cpu"}))
    assert code == 0, capsys.readouterr().err
    m = read_measurement(sample_path("ct15"))
    vol = read_volume(out)
    assert vol.shape == (m.n_slices, *m.image_shape) and np.allclose(vol.affine, m.affine, atol=1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nrrd"]  # no card asked, none written


def test_sigterm_stops_the_run_and_leaves_no_output(tmp_path):
    src = oblique_nrrd(tmp_path / "in.nrrd")
    out, card = tmp_path / "out.nrrd", tmp_path / "card.json"
    args = slicer_command_line({"input_volume": str(src), "output_volume": str(out), "run_card": str(card),
                                "solver": "admm-tv", "tv_iters": "100000", "device": "cpu"})
    proc = subprocess.Popen([sys.executable, str(SCRIPT_PATH), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        progressed = 0
        for line in proc.stdout:
            if line.startswith("<filter-progress>") and float(line[17:23]) > 0:
                progressed += 1
                if progressed == 3:  # the run is well into its steps
                    break
        assert progressed == 3, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        sent = time.perf_counter()
        rest, err = proc.communicate(timeout=60)
        waited = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == ["d3ip-slicer: cancelled (SIGTERM); nothing written"]
    assert waited < 10  # an ADMM-TV step of 4 slices of 32x32 takes milliseconds
    assert "<filter-end>" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nrrd"]  # no output, card or temp
