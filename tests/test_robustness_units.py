"""Known answers for the pieces of issue 28's hardening (the bad-input table exercises them end
to end; here each public function is pinned on its own): the one writer's file sets and
destination checks, strict JSON, dtype and float32 checks, the prior card's schema and hash,
the cost of LoRA rank and CG steps, train-prior's option table, and a real `ulimit -f`."""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_d3ip.errors import D3IPError
from napari_d3ip.io import files


# -- file sets -------------------------------------------------------------------------------
def test_planned_outputs_name_the_mhd_data_file(tmp_path):
    assert files.planned_outputs(tmp_path / "r.mhd") == [tmp_path / "r.mhd", tmp_path / "r.zraw"]
    assert files.planned_outputs(tmp_path / "r.nii.gz") == [tmp_path / "r.nii.gz"]


def test_input_files_read_the_header(tmp_path):
    (tmp_path / "a.mhd").write_text("NDims = 3\nElementDataFile = data/b.raw\n")
    (tmp_path / "c.nhdr").write_text("NRRD0004\ndata file: c.raw.gz\n")
    (tmp_path / "d.mhd").write_text("ElementDataFile = LOCAL\n")
    assert files.input_files(tmp_path / "a.mhd") == [tmp_path / "a.mhd", tmp_path / "data/b.raw"]
    assert files.input_files(tmp_path / "c.nhdr") == [tmp_path / "c.nhdr", tmp_path / "c.raw.gz"]
    assert files.input_files(tmp_path / "d.mhd") == [tmp_path / "d.mhd"]
    assert files.input_files(tmp_path / "missing.mhd") == [tmp_path / "missing.mhd"]


def test_owned_data_file_only_when_the_header_names_it(tmp_path):
    (tmp_path / "r.mhd").write_text("ElementDataFile = r.zraw\n")
    (tmp_path / "r.zraw").write_bytes(b"x")
    (tmp_path / "q.zraw").write_bytes(b"x")
    assert files.owned_data_file(tmp_path / "r.mhd", tmp_path / "r.zraw")
    assert not files.owned_data_file(tmp_path / "q.mhd", tmp_path / "q.zraw")  # no header


def test_force_replaces_an_mhd_with_its_own_data_file(tmp_path):
    from napari_d3ip.io.volumes import read_volume, write_volume

    out = tmp_path / "r.mhd"
    write_volume(out, np.zeros((2, 4, 4), np.float32))
    write_volume(out, np.ones((2, 4, 4), np.float32), overwrite=True)
    assert np.allclose(read_volume(out).data, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.mhd", "r.zraw"]


# -- the destination -------------------------------------------------------------------------
def test_pseudo_filesystems_are_recognised():
    if not Path("/proc/mounts").exists():
        pytest.skip("no /proc/mounts")
    assert files.filesystem_type("/proc/self") == "proc"
    with pytest.raises(files.OutputError, match="pseudo-filesystem"):
        files.check_destination(Path("/proc/x.nii.gz"))


def test_the_temporary_name_counts_against_the_name_limit(tmp_path):
    limit = files.name_max(tmp_path)
    ok = "a" * (limit - 40) + ".nii.gz"
    files.check_destination(tmp_path / ok)
    fits_alone = "b" * (limit - len(".nii.gz")) + ".nii.gz"  # the name fits, its temporary not
    with pytest.raises(files.OutputError, match="temporary name"):
        files.check_destination(tmp_path / fits_alone)


def test_file_size_limit_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "file_size_limit", lambda: 1000.0)
    files.check_destination(tmp_path / "x.h5", 999)
    with pytest.raises(files.ResourceError, match=r"at most 1000 bytes \(ulimit -f\)"):
        files.check_destination(tmp_path / "x.h5", 5000)


def test_fmt_bytes_small_sizes():
    assert files.fmt_bytes(20 * 1024) == "20 KiB"
    assert files.fmt_bytes(100) == "100 bytes"
    assert files.fmt_bytes(3 << 20) == "3 MiB"


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")
def test_a_real_ulimit_f_is_an_error_not_a_crash(tmp_path):
    """Past `ulimit -f` (the pre-check bypassed), the measurement write fails as a WriteError:
    no SIGXFSZ, no crash in HDF5's cleanup (it was exit 139), no temporary left."""
    tests = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {tests!r})\n"
        "import napari_d3ip.io.files as files\n"
        "files.file_size_limit = lambda: float('inf')\n"
        "import test_bad_inputs as t\n"
        "t.N, t.HW = 30, 64\n"
        "from napari_d3ip.io.measurements import write_measurement\n"
        "try:\n"
        "    write_measurement('m.h5', t.make_measurement())\n"
        "except files.WriteError as e:\n"
        "    print('refused:', e)\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (40 * 1024, 40 * 1024))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, preexec_fn=limit, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "refused: m.h5: the write failed (File too large)" in r.stdout
    assert list(tmp_path.iterdir()) == []


# -- strict JSON, dtypes, float32 ------------------------------------------------------------
def test_json_depth_skips_strings():
    from napari_d3ip.validation import json_depth

    assert json_depth('{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth("[" * 10 + "]" * 10) == 10


def test_loads_strict_refuses_duplicates_and_depth():
    from napari_d3ip.validation import InputError, loads_strict

    assert loads_strict('{"a": {"b": 1}}', "x") == {"a": {"b": 1}}
    with pytest.raises(InputError, match="x: the key 'a' appears twice"):
        loads_strict('{"a": 1, "a": 2}', "x")
    with pytest.raises(InputError, match="nested 65 levels"):
        loads_strict("[" * 65 + "]" * 65, "x")


def test_float32_overflow_counts_only_what_float32_cannot_hold():
    from napari_d3ip.validation import float32_overflow

    assert float32_overflow(np.array([1e300, -1e39, 3e38, np.inf, np.nan])) == 2
    assert float32_overflow(np.array([1e300], np.float32)) == 0  # already inf: not overflow
    assert float32_overflow(np.array([1e300 + 1j], np.complex128)) == 1
    assert float32_overflow(np.array([2**62], np.int64)) == 0


def test_check_real_dtype():
    from napari_d3ip.validation import InputError, check_real_dtype

    assert check_real_dtype(np.float64, "x") == np.float64
    assert check_real_dtype(np.complex64, "x", complex_ok=True) == np.complex64
    for dt, msg in ((np.dtype([("a", "f4")]), "compound"), ("S3", "bytes"), (bool, "boolean"),
                    (np.complex64, "complex data")):
        with pytest.raises(InputError, match=msg):
            check_real_dtype(dt, "x")


def test_gzip_size_verifies_the_crc(tmp_path):
    from napari_d3ip.io.volumes import VolumeError, _gzip_size

    data = gzip.compress(b"abc" * 1000)
    (tmp_path / "ok.gz").write_bytes(data)
    assert _gzip_size(tmp_path / "ok.gz", limit=1e9) == 3000
    (tmp_path / "bad.gz").write_bytes(data[:-8] + bytes([data[-8] ^ 1]) + data[-7:])
    with pytest.raises(VolumeError, match="damaged .*CRC"):
        _gzip_size(tmp_path / "bad.gz", limit=1e9)
    with pytest.raises(VolumeError, match="more than 100 bytes"):
        _gzip_size(tmp_path / "ok.gz", limit=100)


# -- prior cards -----------------------------------------------------------------------------
def test_card_digest_covers_the_load_fields_only():
    from napari_d3ip.core.prior import card_digest

    card = {"architecture": {"base_channels": 8}, "schedule": {"T": 1000}, "sha256": "0" * 64,
            "description": "a"}
    d = card_digest(card)
    assert card_digest({**card, "description": "b"}) == d  # prose may change
    assert card_digest({**card, "schedule": {"T": 1000, "beta_end": 0.03}}) != d
    assert card_digest({**card, "sha256": "1" * 64}) != d


def test_card_problems():
    from napari_d3ip.core.prior import card_problems

    good = {"architecture": {"base_channels": 8, "channel_mults": [1, 2]},
            "schedule": {"T": 1000, "beta_start": 1e-4, "beta_end": 0.02}}
    assert card_problems(good) == []
    assert card_problems({**good, "schedule": "linear"})
    assert card_problems({**good, "architecture": [1, 2]})
    assert card_problems({**good, "schedule": {"T": 10}})
    assert card_problems({**good, "pixel_scale": {"render_size": True}})


def test_shipped_priors_carry_a_valid_card_hash_and_an_edited_copy_is_refused(tmp_path):
    from importlib import resources

    from napari_d3ip.core.prior import PriorError, card_digest, load_prior, shipped_priors

    root = Path(str(resources.files("napari_d3ip") / "priors"))
    for name in shipped_priors():
        card = json.loads((root / f"{name}.json").read_text())
        assert card["card_sha256"] == card_digest(card), name
    shutil.copy(root / "ellipses-64.safetensors", tmp_path / "e.safetensors")
    card = json.loads((root / "ellipses-64.json").read_text())
    card["schedule"]["beta_end"] = 0.025
    (tmp_path / "e.json").write_text(json.dumps(card))
    with pytest.raises(PriorError, match="edited after the prior was saved"):
        load_prior(tmp_path / "e.safetensors")


# -- cost of size-driving options ------------------------------------------------------------
def _tiny_meas():
    import torch

    from napari_d3ip.operators.base import Measurement
    from napari_d3ip.operators.ct import ParallelBeamCT

    op = ParallelBeamCT((16, 16), n_views=5)
    y = op.forward(torch.zeros(2, 1, 16, 16))
    return Measurement(op, y, None, np.eye(4), (1.0, 1.0, 1.0), (0.0, 1.0), {}, "t")


def test_lora_rank_and_cg_steps_are_in_the_cost():
    from napari_d3ip.config import RunConfig
    from napari_d3ip.cost import estimate_cost, lora_parameters_per_rank

    arch = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
            "attn_resolutions": [], "image_size": 16}
    per_rank = lora_parameters_per_rank(arch)
    assert per_rank > 0 and lora_parameters_per_rank(arch, "all") > per_rank
    m = _tiny_meas()
    base = RunConfig(device="cpu", adapter="d3ip-base", prior="ellipses-64")
    mem = [estimate_cost(m, base.replace(lora_rank=r))["memory_parts"]["lora"] for r in (4, 8)]
    assert mem[1] == pytest.approx(2 * mem[0])
    t = [estimate_cost(m, base.replace(cg_steps=c))["seconds_parts"]["cg"] for c in (5, 105)]
    assert t[0] == 0 and t[1] > 0


def test_a_huge_lora_rank_is_refused_before_the_run():
    from napari_d3ip.config import RunConfig
    from napari_d3ip.cost import check_fits

    cfg = RunConfig(device="cpu", adapter="d3ip-base", prior="ellipses-64", lora_rank=10**8)
    with pytest.raises(D3IPError, match="--lora-rank"):
        check_fits(_tiny_meas(), cfg, "cpu", available=8 << 30)


# -- train-prior -----------------------------------------------------------------------------
def test_train_config_validate():
    from napari_d3ip.training.recipes import TrainConfig, TrainConfigError

    assert TrainConfig().validate() is not None
    for field, value, flag in (("steps", -1, "--steps"), ("lr", float("nan"), "--lr"),
                               ("beta2", 2.0, "--beta2"), ("n_mean", -5.0, "--ellipses"),
                               ("seed", 2**70, "--seed"), ("channel_mults", (), "--mults")):
        with pytest.raises(TrainConfigError, match=flag):
            TrainConfig(**{field: value}).validate()


def test_training_memory_is_bounded(monkeypatch):
    from napari_d3ip.training.preflight import check_training_resources
    from napari_d3ip.training.recipes import TrainConfig

    monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(1 << 30))
    check_training_resources(TrainConfig(size=16, channels=4, channel_mults=(1, 2), batch=1))
    with pytest.raises(files.ResourceError, match="--channels 2048"):
        check_training_resources(TrainConfig(channels=2048))


def test_a_long_result_name_is_written_with_one_temporary(tmp_path):
    """save_result writes the volume straight into its temporary (no temporary of a temporary,
    whose name would pass the filesystem's limit after the run for names of ~215-233 bytes)."""
    from napari_d3ip.events import Result
    from napari_d3ip.io.results import save_result

    name = "r" * (files.name_max(tmp_path) - 30) + ".nii.gz"
    nii, card = save_result(Result(volume=np.zeros((2, 4, 4), np.float32),
                                   card={"napari_d3ip_version": "x"}), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([nii.name, card.name])
