"""fastMRI reader (io/formats/fastmri.py): files written to the public layout by
tests/_format_writers.py from a known volume, coil maps, phase and noise must reconstruct
(ADMM-TV) as well as the same scan simulated internally, in the same orientation; malformed
files are refused before compute with a message naming the problem."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from _format_writers import write_fastmri
from napari_d3ip.config import RunConfig
from napari_d3ip.errors import D3IPError
from napari_d3ip.io import OpenOptions, inspect_file, open_measurement
from napari_d3ip.io.formats._mri import acs_box, fastmri_center, fastmri_mask
from napari_d3ip.io.measurements import MeasurementError
from napari_d3ip.metrics import evaluate
from napari_d3ip.operators import birdcage_maps, simulate
from napari_d3ip.pipeline import run

CFG = RunConfig(solver="admm-tv")
N, HW, COILS = 6, 32, 4


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    from napari_d3ip.training.phantoms import ellipsoid_volume

    return ellipsoid_volume(HW, seed=0)[13:13 + N].numpy().astype(np.float32)


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    return fastmri_mask(HW, "random", 4, 0.16, seed=0)


def _psnr_vs_truth(m, volume) -> float:
    r = run(m, CFG)
    return evaluate(np.clip(r.volume * m.intensity[1], 0, 1), volume)["psnr"]


@pytest.fixture(scope="module")
def internal_psnr(volume, mask) -> float:
    m = simulate(volume, "mri-multicoil", noise=0.01, mask=np.broadcast_to(mask, (HW, HW)).copy(),
                 maps=birdcage_maps(COILS, (HW, HW)))
    return run(m, CFG).metrics["psnr"]


def test_fastmri_masks_follow_fastmri_conventions():
    assert fastmri_center(368, 0.08) == slice(170, 199)  # round(29.44) = 29 from (368-29+1)//2
    m = fastmri_mask(368, "random", 4, 0.08, seed=1)
    assert m[170:199].all()
    assert 3.0 < m.size / m.sum() < 5.5
    e = fastmri_mask(368, "equispaced", 8, 0.04, seed=1)
    assert e[fastmri_center(368, 0.04)].all() and abs(e.size / e.sum() - 8) < 1.0
    assert acs_box(np.broadcast_to(m, (10, 368))) == (9, 29)  # odd rows around the DC row


def test_test_style_multicoil_matches_internal_simulation(tmp_path, volume, mask, internal_psnr):
    p = write_fastmri(tmp_path / "file_brain_test.h5", volume, COILS, mask=mask, noise=0.01)
    m = open_measurement(p)
    assert m.operator.kind == "mri-multicoil" and m.y.shape == (N, COILS, HW, HW)
    assert m.reference is None
    got = _psnr_vs_truth(m, volume)
    assert abs(got - internal_psnr) < 1.0, (got, internal_psnr)
    r = run(m, CFG)  # no reference: the data residual is reported, small for a good fit
    assert 0 < r.card["data_residual"] < 0.1
    # orientation: (slice, readout row, phase column) as in the file, not transposed/flipped
    x = r.volume * m.intensity[1]
    assert evaluate(np.clip(x, 0, 1), volume)["psnr"] > evaluate(
        np.clip(x, 0, 1), volume[:, :, ::-1].copy())["psnr"] + 5


def test_smooth_phase_reconstructs_as_its_phase_free_twin(tmp_path, volume, mask):
    flat = _psnr_vs_truth(open_measurement(write_fastmri(tmp_path / "a.h5", volume, COILS,
                                                         mask=mask, noise=0.01)), volume)
    phased = _psnr_vs_truth(open_measurement(write_fastmri(tmp_path / "b.h5", volume, COILS,
                                                           mask=mask, noise=0.01, phase=1.0)),
                            volume)
    assert abs(flat - phased) < 1.0, (flat, phased)


def test_training_style_with_chosen_mask(tmp_path, volume):
    p = write_fastmri(tmp_path / "train.h5", volume, COILS, noise=0.01, pad=2)
    with pytest.raises(MeasurementError, match="fully sampled fastMRI .* --mask"):
        open_measurement(p)
    opts = OpenOptions(mask="equispaced", accel=4, center_fraction=0.16)
    m = open_measurement(p, opts)
    cols = m.operator.mask_np[0]
    want = fastmri_mask(HW, "equispaced", 4, 0.16, seed=0)
    want[:2] = want[-2:] = False  # the unacquired padding columns
    np.testing.assert_array_equal(cols, want)
    r = run(m, CFG)
    assert r.metrics["psnr"] > 25 and "data_residual" not in r.card
    info = inspect_file(p, opts)
    assert info["style"].startswith("training") and info["acquired_columns"].startswith(f"2:{HW - 2}")
    assert info["reference"] == "reconstruction_rss" and info["acs_columns"] == 5


def test_single_coil_and_slices(tmp_path, volume, mask):
    p = write_fastmri(tmp_path / "sc.h5", volume, 1, mask=mask)
    m = open_measurement(p, OpenOptions(slices="1:4"))
    assert m.y.shape == (3, 1, HW, HW) and m.simulation["coil_maps"] == "single coil"
    assert inspect_file(p)["coils"] == 1


def test_reference_crop_scores_the_crop(tmp_path, volume):
    def crop_ref(f):
        ref = f["reconstruction_rss"][()]
        del f["reconstruction_rss"]
        f["reconstruction_rss"] = ref[:, 4:-4, 4:-4]

    p = write_fastmri(tmp_path / "crop.h5", volume, COILS, edit=crop_ref)
    m = open_measurement(p, OpenOptions(mask="random", accel=4, center_fraction=0.16))
    r = run(m, CFG)
    assert r.card["metrics_crop"] == [HW - 8, HW - 8] and r.metrics["psnr"] > 25


def test_inspect_test_style(tmp_path, volume, mask):
    info = inspect_file(write_fastmri(tmp_path / "t.h5", volume, COILS, mask=mask))
    assert info["format"] == "fastmri" and info["coils"] == COILS
    assert info["image_shape"] == [HW, HW] and info["readout_oversampling"] == 2.0
    assert info["acceleration"] == pytest.approx(HW / mask.sum())
    assert info["reference"] is False and info["memory_bytes"] > 0


def _set(name, value):
    def edit(f):
        del f[name]
        f[name] = value
    return edit


def _nan(f):
    k = f["kspace"][()]
    k[0, 0, 0, 0] = np.nan
    del f["kspace"]
    f["kspace"] = k


def _external(f):
    del f["mask"]
    f["mask"] = h5py.ExternalLink("elsewhere.h5", "/mask")


BAD = [
    ("float-kspace", _set("kspace", np.zeros((N, COILS, 2 * HW, HW), np.float32)), {},
     r"'kspace' has dtype float32"),
    ("header-disagrees", _set("kspace", np.zeros((N, COILS, 2 * HW, HW + 2), np.complex64)), {},
     r"encoded matrix 64 x 32 disagrees with 'kspace'"),
    ("bad-xml", _set("ismrmrd_header", np.bytes_("<ismrmrdHeader><encoding>")), {},
     r"not valid XML"),
    ("nan", _nan, {}, r"'kspace' holds 1 NaN"),
    ("mask-length", _set("mask", np.ones(HW - 1, np.float32)), {}, r"'mask' has shape \(31,\)"),
    ("mask-values", _set("mask", np.full(HW, 0.5, np.float32)), {}, r"'mask' must hold 0/1"),
    ("mask-no-acs", _set("mask", (np.arange(HW) % 4 == 1).astype(np.float32)), {},
     r"no fully sampled centre"),
    ("external-link", _external, {}, r"external link"),
    ("mask-on-test-file", None, {"mask": "random", "accel": 4}, r"already undersampled"),
    ("ct-option", None, {"views": 4}, r"--views does not apply to a fastmri file"),
    ("huge", None, {"memory": 1e5}, r"needs about"),
]


@pytest.mark.parametrize("name, edit, opts, match", BAD, ids=[b[0] for b in BAD])
def test_malformed_files_refused_before_compute(tmp_path, volume, mask, monkeypatch, name, edit,
                                                opts, match):
    import napari_d3ip.io.formats._mri as mri

    monkeypatch.setattr(mri, "espirit_maps", lambda *a, **k: pytest.fail("computed"))
    opts = dict(opts)
    if "memory" in opts:
        monkeypatch.setenv("NAPARI_D3IP_MEMORY_LIMIT", str(opts.pop("memory")))
    p = write_fastmri(tmp_path / "bad.h5", volume, COILS, mask=mask, edit=edit)
    with pytest.raises(D3IPError, match=match):
        open_measurement(p, OpenOptions(**opts))


def test_cli_reconstruct_and_inspect(tmp_path, volume, mask, capsys):
    from napari_d3ip.cli import main

    p = write_fastmri(tmp_path / "train.h5", volume, COILS)
    out = tmp_path / "x.nii.gz"
    assert main(["reconstruct", "--measurement", str(p), "--solver", "admm-tv", "--mask",
                 "random", "--accel", "4", "--center-fraction", "0.16", "--out", str(out),
                 "--quiet"]) == 0
    assert out.exists() and "PSNR" in capsys.readouterr().out
    assert main(["inspect", str(p), "--mask", "random", "--accel", "4"]) == 0
    text = capsys.readouterr().out
    assert "fastmri" in text and "training" in text and "reconstruction_rss" in text


# -- ISMRMRD 3-D ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vol3d() -> np.ndarray:
    from napari_d3ip.training.phantoms import ellipsoid_volume

    return ellipsoid_volume(HW, seed=0)[13:19, :, 4:28].numpy().astype(np.float32)  # x, y, z


def test_ismrmrd_3d_both_partition_conventions(tmp_path, vol3d):
    from _format_writers import write_ismrmrd_3d
    from napari_d3ip.operators import poisson_disc_mask

    mask = poisson_disc_mask((HW, 24), 3.0, (8, 8), seed=0)
    scores = []
    for in_slice in (False, True):
        p = write_ismrmrd_3d(tmp_path / f"a{in_slice}.h5", vol3d, mask, COILS, noise=0.01,
                             phase=0.5, partitions_in_slice=in_slice)
        info = inspect_file(p)
        assert info["format"] == "ismrmrd" and info["noise_scans_skipped"] == 1
        assert info["partitions_from"].startswith("slice" if in_slice else "kspace_encode_step_2")
        assert info["image_shape"] == [HW, 24] and info["slices"] == 6
        m = open_measurement(p)
        np.testing.assert_array_equal(m.operator.mask_np, mask)
        x = np.clip(run(m, CFG).volume * m.intensity[1], 0, 1)
        scores.append(evaluate(x, vol3d)["psnr"])
        assert scores[-1] > evaluate(x, vol3d[:, ::-1].copy())["psnr"] + 5  # not mirrored
    assert scores[0] > 25 and abs(scores[0] - scores[1]) < 0.1, scores
    assert open_measurement(p, OpenOptions(slices="2:4")).y.shape == (2, COILS, HW, 24)


def test_ismrmrd_refusals(tmp_path, vol3d):
    from _format_writers import write_ismrmrd_3d
    from napari_d3ip.operators import poisson_disc_mask

    sparse = np.zeros((HW, 24), bool)
    sparse[::3, ::2] = True
    with pytest.raises(MeasurementError, match="no fully sampled centre"):
        open_measurement(write_ismrmrd_3d(tmp_path / "b.h5", vol3d, sparse, COILS))

    def bad_xml(f):
        del f["dataset/xml"]
        f["dataset/xml"] = np.array([b"<ismrmrdHeader/>"], dtype=h5py.string_dtype())

    mask = poisson_disc_mask((HW, 24), 3.0, (8, 8), seed=0)
    with pytest.raises(MeasurementError, match="no <encoding>"):
        open_measurement(write_ismrmrd_3d(tmp_path / "c.h5", vol3d, mask, COILS, edit=bad_xml))


def test_inspect_describes_a_training_file_without_a_mask_as_fully_sampled(tmp_path):
    """`d3ip inspect` shows what a file holds: a training file needs no mask to be described."""
    from _format_writers import write_fastmri
    from napari_d3ip.io import inspect_file

    vol = np.zeros((2, 32, 32), np.float32)
    vol[:, 8:24, 8:24] = 0.7
    info = inspect_file(write_fastmri(tmp_path / "t.h5", vol, n_coils=2))
    assert info["style"].startswith("training") and info["acceleration"] == 1.0
    assert "--mask" in info["sampling"]
