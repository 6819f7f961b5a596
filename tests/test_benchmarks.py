"""benchmarks/quality.py's quick path, end to end on a tiny prior (fast; no shipped prior)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from conftest import make_tiny_prior

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _quality():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import quality

    return quality


def test_quality_quick_writes_rows(tmp_path):
    quality = _quality()
    section = quality.run_quality(
        ["--quick", "--slices", "4", "--methods", "dds,d3ip-base", "--tasks", "ct15",
         "--nfe", "2", "--threads", "1", "--out-dir", str(tmp_path)],
        prior=make_tiny_prior(image_size=64))
    assert [r["method"] for r in section["rows"]] == ["dds", "d3ip-base"]

    data = json.loads((tmp_path / "results.json").read_text())
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

    md = (tmp_path / "RESULTS.md").read_text()
    assert "| DDS |" in md and "| D3IP-base |" in md
    assert "31.73 / 0.908" in md  # the paper's number beside ours
    assert "CPU" in md and "torch" in md and "benchmarks/" in md  # machine and command
    line = next(ln for ln in md.splitlines() if ln.startswith("| SV-CT 15 views | DDS |"))
    assert math.isfinite(float(line.split("|")[3]))


def test_speed_fit_line_and_projection():
    _quality()  # puts benchmarks/ on the path
    import speed

    assert speed.fit_line([(8, 3.0), (16, 5.0), (32, 9.0)]) == (0.25, 1.0)
    rows = [{"method": m, "n_slices": n, "status": "ok", "wall_seconds": w, "adapt_seconds": a}
            for m, n, w, a in [("d3ip-base", 8, 10, 4), ("d3ip-base", 16, 12, 4),
                               ("ddip", 8, 20, 8), ("ddip", 16, 36, 16)]]
    r = speed.ratios(rows)
    assert "0.000 s/slice" in r["D3IP-base adaptation fit"]
    assert "projected at N = 256: 256 s" in r["DDIP adaptation fit"]
    assert r["DDIP / D3IP-base adaptation"].startswith("4.0x measured at N = 16; 64.0x projected")


def test_adaptation_study_renders_deltas_against_dds():
    _quality()
    import adaptation_study as st

    rows = [{"prior": "p", "volume": "v", "task": "ct15", "nfe": 25, "seed": 0, "row": r,
             "psnr": p, "ssim": 0.5, "wall_seconds": 10.0} for r, p in (("DDS", 20.0), ("D3IP-base (preset)", 23.5))]
    md = st.render(rows)
    assert "| D3IP-base (preset) | 23.50 / 0.500, Δ +3.50" in md
    assert st.key(rows[0]) == ("p", "v", "ct15", 25, 0, "DDS")
