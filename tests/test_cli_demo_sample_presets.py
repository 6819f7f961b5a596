"""`d3ip demo`, `d3ip sample`, `d3ip presets` through the real CLI entry point (tiny settings)."""

from __future__ import annotations

import json
import re

import numpy as np

from napari_d3ip.cli import main
from napari_d3ip.config import presets
from napari_d3ip.io.volumes import read_volume


def test_demo_writes_volume_card_and_figure_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--sample", "heldout-epi", "--nfe", "2", "--iters", "1", "--k", "2", "--device", "cpu",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "FBP: PSNR" in text and "d3ip-base: PSNR" in text
    for label in ("FBP", "d3ip-base"):  # every PSNR says which one it is
        line = next(ln for ln in text.splitlines() if f"{label}: PSNR" in ln)
        assert re.search(r"PSNR [\d.]+ dB per-slice mean \(\d+ of 24 slices\), [\d.]+ dB volume; "
                         r"SSIM [-\d.]+ per-slice mean", line), line
    vol = read_volume(out / "reconstruction.nii.gz")
    assert vol.data.shape[0] == 24 and np.isfinite(vol.data).all()
    card = json.loads((out / "reconstruction.json").read_text())
    assert card["config"]["adapter"] == "d3ip-base" and card["config"]["nfe"] == 2
    assert (out / "demo.png").stat().st_size > 10_000
    assert main(args) == 2  # the outputs exist: nothing is overwritten without --force
    assert "--force" in capsys.readouterr().err


def test_sample_writes_a_montage_and_nifti(tmp_path, capsys):
    png, nii = tmp_path / "s.png", tmp_path / "s.nii.gz"
    assert main(["sample", "--n", "2", "--nfe", "2", "--device", "cpu", "--out", str(png),
                 "--nifti", str(nii)]) == 0
    assert png.stat().st_size > 0
    assert read_volume(nii).data.shape == (2, 64, 64)


def test_presets_lists_every_preset_and_shows_one(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    header = listing.splitlines()[0].split()
    assert header[:5] == ["preset", "task", "solver", "adapter", "NFE"]
    for name in presets():
        assert name in listing
    sv_ct = next(line for line in listing.splitlines() if line.startswith("sv-ct "))
    assert sv_ct.split()[1:5] == ["ct", "dds", "d3ip-base", "50"]
    assert main(["presets", "--show", "sv-ct"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["adapter"], shown["k_slices"], shown["nfe"]) == ("d3ip-base", 6, 50)
