"""benchmarks/quality.py's quick path, end to end on a tiny prior (fast; no shipped prior)."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from benchmarks import quality

from conftest import make_tiny_prior


def test_quality_quick_writes_rows(tmp_path):
    section = quality.run_quality(
        ["--quick", "--slices", "4", "--methods", "dds,d3ip-base", "--tasks", "ct15",
         "--nfe", "2", "--threads", "1", "--out-dir", str(tmp_path)],
        prior=make_tiny_prior(image_size=64))
    assert [r["method"] for r in section["rows"]] == ["dds", "d3ip-base"]

    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    rows = data["sections"]["quality/quick"]["rows"]
    assert len(rows) == 2
    for r in rows:
        assert r["status"] == "ok", r["status"]
        assert r["n_slices"] == 4 and r["nfe"] == 2
        for key in ("psnr", "ssim", "volume_psnr", "wall_seconds", "sampling_seconds"):
            assert math.isfinite(r[key]), (key, r[key])
        assert r["peak_rss_bytes"] >= 0
        assert len(r["per_slice_psnr"]) == 4
    d3ip = rows[1]
    assert d3ip["adapted_parameter_bytes"] > 0 and d3ip["adapt_iters"] == 1
    assert rows[0]["adapted_parameter_bytes"] == 0

    md = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| DDS |" in md and "| D3IP-base |" in md
    assert "31.73 / 0.908" in md  # the paper's number beside ours
    assert "CPU" in md and "torch" in md and "benchmarks/" in md  # machine and command
    line = next(ln for ln in md.splitlines() if ln.startswith("| SV-CT 15 views | DDS |"))
    assert math.isfinite(float(line.split("|")[3]))


def test_speed_fit_line_and_projection():
    from benchmarks import speed

    assert speed.fit_line([(8, 3.0), (16, 5.0), (32, 9.0)]) == (0.25, 1.0)
    rows = [{"method": m, "n_slices": n, "status": "ok", "wall_seconds": w, "adapt_seconds": a}
            for m, n, w, a in [("d3ip-base", 8, 10, 4), ("d3ip-base", 16, 12, 4),
                               ("ddip", 8, 20, 8), ("ddip", 16, 36, 16)]]
    r = speed.ratios(rows)
    assert "0.000 s/slice" in r["D3IP-base adaptation fit"]
    assert "projected at N = 256: 256 s" in r["DDIP adaptation fit"]
    assert r["DDIP / D3IP-base adaptation"].startswith("4.0x measured at N = 16; 64.0x projected")


def test_adaptation_study_renders_deltas_against_dds():
    from benchmarks import adaptation_study as st

    rows = [{"prior": "p", "volume": "v", "task": "ct15", "nfe": 25, "seed": 0, "row": r,
             "psnr": p, "ssim": 0.5, "wall_seconds": 10.0} for r, p in (("DDS", 20.0), ("D3IP-base (preset)", 23.5))]
    md = st.render(rows)
    assert "| D3IP-base (preset) | 23.50 / 0.500, Δ +3.50" in md
    assert st.key(rows[0]) == ("p", "v", "ct15", 25, 0, "DDS")


def test_unet_timer_uses_module_hooks_only():
    """Forward and backward time through hooks on the network: torch.autograd untouched."""
    from benchmarks.measure import UNetTimer

    net = torch.nn.Sequential(*[torch.nn.Conv2d(4, 4, 3, padding=1) for _ in range(6)])
    net.requires_grad_(False)
    net[2].weight.requires_grad_(True)  # like a LoRA factor: the only trainable parameter
    before = (torch.autograd.backward, torch.autograd.grad)
    x = torch.randn(2, 4, 32, 32)
    with UNetTimer(net) as timer:
        assert (torch.autograd.backward, torch.autograd.grad) == before
        with torch.no_grad():
            net(x)
        net(x).square().mean().backward()  # adaptation: gradient of the parameters
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xi).sum(), xi)  # DPS: gradient of the input
        t0 = time.perf_counter()
        stats = timer.stats
    assert stats["forward_calls"] == 3
    assert 0 < stats["backward_seconds"] < t0
    assert stats["forward_seconds"] > 0 and timer.seconds >= stats["backward_seconds"]
    assert net[2].weight.grad is not None and g.shape == x.shape


def test_projection_follows_the_library_cost_model():
    """A projection scales the measured seconds by napari_d3ip.cost.estimate_cost's ratios."""
    from benchmarks.projection import MeasurementShape, model_seconds, project_seconds
    from benchmarks.tasks import TASKS, method_config

    from napari_d3ip.cost import estimate_cost

    task = TASKS["ct15"]
    cfg = method_config("d3ip-base", task, nfe=5, iters=1)
    row = {"method": "d3ip-base", "task": "ct15", "status": "ok", "psnr": 20.0,
           "n_slices": 8, "nfe": 5, "image_shape": [64, 64], "config": cfg.to_dict(),
           "wall_seconds": 10.0, "adapt_seconds": 4.0}
    assert project_seconds(row, cfg, 8) == pytest.approx(10.0)
    s, a = model_seconds(cfg, 8, (64, 64))
    assert s + a == pytest.approx(estimate_cost(MeasurementShape(8, (64, 64)), cfg)["seconds"])
    big = method_config("d3ip-base", task, nfe=50, iters=5)
    s1, a1 = model_seconds(big, 64, (64, 64))
    assert project_seconds(row, big, 64) == pytest.approx(6.0 * s1 / s + 4.0 * a1 / a)
    dds = method_config("dds", task, nfe=5)
    dds_row = {**row, "method": "dds", "config": dds.to_dict(), "adapt_seconds": 0.0}
    assert project_seconds(dds_row, dds.replace(nfe=10), 16) == pytest.approx(40.0, rel=0.01)
    assert project_seconds({**row, "status": "error: x"}, big, 64) is None


def test_benchmarks_run_as_modules():
    """No sys.path edits: every script imports as benchmarks.<name>."""
    import importlib
    from pathlib import Path

    root = Path(quality.__file__).resolve().parent
    for f in sorted(root.glob("*.py")):
        text = f.read_text(encoding="utf-8")
        assert "sys.path" not in text, f.name
        if f.stem != "gui_stall":
            importlib.import_module(f"benchmarks.{f.stem}")


def test_method_config_keeps_a_study_row_override_of_iters_and_k():
    """An ablation row's adapt_iters / k_slices must reach the run (they were once reset to the
    preset's by the iters/k arguments left at None)."""
    from benchmarks.tasks import TASKS, method_config

    task = TASKS["ct15"]
    assert method_config("d3ip-base", task, adapt_iters=20).adapt_iters == 20
    assert method_config("d3ip-base", task, k_slices=12).k_slices == 12
    assert method_config("d3ip-base", task, iters=3, k=2).adapt_iters == 3
    preset = method_config("d3ip-base", task)
    assert (preset.adapt_iters, preset.k_slices) == (10, 6)


def test_best_tv_denoiser_beats_the_noisy_input_and_picks_the_smallest_weight_without_noise():
    import numpy as np
    from benchmarks.denoiser_vs_tv import TV_WEIGHTS, best_tv_psnr

    clean = np.zeros((2, 32, 32))
    clean[:, 8:24, 8:24] = 1.0
    noisy = clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape)
    noisy_psnr = 10 * np.log10(1 / ((noisy.clip(0, 1) - clean) ** 2).mean(axis=(1, 2))).mean()
    p, w = best_tv_psnr(noisy, clean)
    assert p > noisy_psnr + 5 and TV_WEIGHTS[0] < w < TV_WEIGHTS[-1]
    assert best_tv_psnr(clean, clean)[1] == TV_WEIGHTS[0]


def test_prior_trajectory_table_reads_the_psnr_at_the_first_step_at_or_below_each_mark():
    from benchmarks.prior_trajectory import render

    steps = [(t, t / 100.0) for t in range(980, -1, -40)]  # psnr = t/100 at each step
    late = [(t, 1.0) for t in range(400, -1, -40)]
    md = render([{"task": "ct15", "prior": "p", "t_start": 980, "final_psnr": 9.0, "steps": steps,
                  "training_steps": 123},
                 {"task": "ct15", "prior": "p", "t_start": 400, "final_psnr": 1.0, "steps": late}],
                "m", "cmd")
    assert "| p (123 steps) | 980 | **9.00** | 9.40 / 7.00 / 4.60 / 2.20 / 1.00 |" in md
    assert "| p | 400 | **1.00** | — / — / — / 1.00 / 1.00 |" in md


def test_study_store_keeps_rows_another_process_saved_meanwhile(tmp_path, monkeypatch):
    import benchmarks.adaptation_study as study

    monkeypatch.setattr(study, "STORE", tmp_path / "store.json")
    row = {"prior": "p", "volume": "v", "task": "t", "nfe": 25, "seed": 0}
    mine = [{**row, "row": "mine"}]
    study.save_store([{**row, "row": "theirs"}], "m")  # the other process, after mine loaded
    merged = study.save_store(mine, "m")
    assert sorted(r["row"] for r in merged) == ["mine", "theirs"]
    assert sorted(r["row"] for r in study.load_store()) == ["mine", "theirs"]


def test_d3ip_study_method_runs_the_tasks_study_preset_and_refuses_a_task_without_one():
    import pytest
    from benchmarks.tasks import TASKS, method_config

    from napari_d3ip.config import from_preset

    assert method_config("d3ip-study", TASKS["ct15"]) == from_preset(
        "sv-ct-study", solver="dds", adapter="d3ip-base", nfe=None, seed=0, device="cpu",
        batch_slices=None)
    assert method_config("d3ip-study", TASKS["mri-r8"]).window_hi == 500
    with pytest.raises(SystemExit, match="no study preset"):
        method_config("d3ip-study", TASKS["mc-x4"])


def test_report_of_a_standalone_benchmark_names_its_command_and_writes_both_files(tmp_path):
    import json

    from benchmarks.store import command_line, write_report

    assert command_line("x", ["--prior", "a b"]) == "python -m benchmarks.x --prior 'a b'"
    write_report(tmp_path / "r", {"rows": [1]}, "# table\n")
    assert json.loads((tmp_path / "r.json").read_text()) == {"rows": [1]}
    assert (tmp_path / "r.md").read_text() == "# table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]  # no temporaries left


@pytest.mark.gui
def test_stall_meter_records_every_full_gc_pass_in_its_phase(qtbot):
    """gui_stall's GC record: a full pass lands in the phase it ran in, and none after stop()."""
    import gc

    from benchmarks.gui_stall import StallMeter

    meter = StallMeter()
    meter.start("before")
    meter.start("during")
    gc.collect(1)  # not a full pass
    gc.collect()
    meter.stop()
    gc.collect()
    assert list(meter.gc_full) == ["during"] and len(meter.gc_full["during"]) == 1
    assert meter.gc_full["during"][0] >= 0


def test_phantom_pilot_table_has_one_row_per_prior_and_method_and_a_column_per_task():
    from benchmarks.phantom_pilot import markdown

    rows = [{"prior": p, "steps": s, "volume": v, "task": t, "method": m, "psnr": q, "ssim": 0.5,
             "seconds": 1.0}
            for p, s, m, q0 in (("(none)", None, "admm-tv", 28.0), ("organic", 900, "dds", 24.0))
            for v in ("brain-64", "heldout-epi") for t, q in (("ct15", q0), ("mri-r8", q0 + 1))]
    md = markdown(rows, {"cpu": "X", "torch": "2", "torch_threads": 1}, "cmd", ["ct15", "mri-r8"], 16, 25)
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0].split(" | ")[3:] == ["brain-64 ct15", "brain-64 mri-r8", "heldout-epi ct15", "heldout-epi mri-r8 |"]
    assert lines[1] == "| (none) |  | admm-tv | 28.00 | 29.00 | 28.00 | 29.00 |"
    assert lines[2] == "| organic | 900 | dds | 24.00 | 25.00 | 24.00 | 25.00 |"


def test_anatomy_set_takes_central_slices_of_a_real_volume_in_unit_range_with_seeded_noise():
    from benchmarks.denoiser_vs_tv import anatomy_set

    x0, noise = anatomy_set("brain-64", 64, 4)
    again, noise2 = anatomy_set("brain-64", 64, 4)
    assert x0.shape == noise.shape == (4, 1, 64, 64)
    assert float(x0.min()) >= 0.0 and float(x0.max()) <= 1.0 and float(x0.mean()) > 0.05
    assert torch.equal(noise, noise2) and torch.equal(x0, again)
    small, _ = anatomy_set("brain-64", 32, 2)  # resized to the prior's size
    assert small.shape == (2, 1, 32, 32)


def test_best_presets_rows_switch_the_prior_and_the_adaptation_off_and_on():
    from benchmarks.best_presets import ADAPTATION, configs, markdown

    for task in ("ct15", "mri-r8"):
        c = configs(task, "organic-64")
        assert c["admm-tv"].solver == "admm-tv"
        best, off, adapt = c["best"], c["prior off"], c["+ adaptation"]
        assert best.anchor > 0 and off.anchor == 0.0 and best.adapter == "none"
        assert off.replace(anchor=best.anchor) == best  # the only difference: the prior's weight
        assert adapt.adapter == ADAPTATION["adapter"]
        assert adapt.replace(**{k: getattr(best, k) for k in ADAPTATION}) == best
    rows = [{"volume": "brain-64", "slices": 64, "task": "ct15", "row": r, "psnr": p, "ssim": 0.9,
             "seconds": 1.0} for r, p in (("admm-tv", 28.0), ("best", 28.5), ("prior off", 28.1),
                                          ("+ adaptation", 28.4))]
    md = markdown(rows, {"cpu": "x", "torch": "t", "torch_threads": 1}, "cmd")
    assert "| brain-64 (64) | ct15 |" in md and md.rstrip().endswith("| +0.40 | -0.10 |")
