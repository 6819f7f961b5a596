"""ISMRMRD reader, 2-D multi-slice path and malformed files (io/formats/ismrmrd.py).

A 2-D Cartesian file written to the public layout (tests/_format_writers.write_ismrmrd_2d:
known volume, coil maps, smooth phase, 1 % noise, one noise scan) must reconstruct (ADMM-TV)
within 1 dB of the same scan simulated internally, in the same orientation; a table of
damaged files is refused before any compute, each with a message naming the problem."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from _format_writers import write_ismrmrd_2d
from napari_d3ip.config import RunConfig
from napari_d3ip.errors import D3IPError
from napari_d3ip.io import OpenOptions, inspect_file, open_measurement
from napari_d3ip.io.formats._mrheader import header_xml
from napari_d3ip.io.formats._mri import fastmri_mask
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
def lines() -> np.ndarray:
    return fastmri_mask(HW, "random", 4, 0.16, seed=0)


def test_2d_multislice_matches_internal_simulation(tmp_path, volume, lines):
    p = write_ismrmrd_2d(tmp_path / "ms.h5", volume, lines, COILS, phase=0.5, noise=0.01)
    info = inspect_file(p)
    assert info["acquisition"] == "2-D multi-slice Cartesian" and info["noise_scans_skipped"] == 1
    assert info["slices"] == N and info["image_shape"] == [HW, HW] and info["coils"] == COILS
    assert info["acceleration"] == pytest.approx(HW / lines.sum())
    m = open_measurement(p)
    assert m.operator.kind == "mri-multicoil" and m.y.shape == (N, COILS, HW, HW)
    np.testing.assert_array_equal(m.operator.mask_np, np.broadcast_to(lines, (HW, HW)))
    x = np.clip(run(m, CFG).volume * m.intensity[1], 0, 1)
    got = evaluate(x, volume)["psnr"]
    internal = simulate(volume, "mri-multicoil", noise=0.01,
                        mask=np.broadcast_to(lines, (HW, HW)).copy(),
                        maps=birdcage_maps(COILS, (HW, HW)))
    want = run(internal, CFG).metrics["psnr"]
    assert abs(got - want) < 1.0, (got, want)
    # (slice, readout row, phase column) as written: not mirrored, not transposed
    assert got > evaluate(x, volume[:, :, ::-1].copy())["psnr"] + 5
    assert got > evaluate(x, np.swapaxes(volume, 1, 2).copy())["psnr"] + 5
    sub = open_measurement(p, OpenOptions(slices="2:5"))
    assert sub.y.shape == (3, COILS, HW, HW)
    np.testing.assert_allclose(sub.y.numpy(), m.y[2:5].numpy() * m.intensity[1] / sub.intensity[1],
                               rtol=1e-4, atol=1e-6)


# -- malformed files ------------------------------------------------------------------------
def _rewrite(f, data):
    del f["dataset/data"]
    f["dataset/data"] = data


def _no_xml(f):
    del f["dataset/xml"]


def _matrix_disagrees(f):
    hdr = header_xml((2 * HW + 2, HW, 1), (2.0 * HW, HW, 3.0), (HW, HW, 1), (HW, HW, 3.0),
                     step1=(0, HW - 1, HW // 2), slices=(0, N - 1, N // 2))
    del f["dataset/xml"]
    f["dataset/xml"] = np.array([hdr.encode()], dtype=h5py.string_dtype())


def _phase_matrix_too_small(f):
    hdr = header_xml((2 * HW, HW // 2, 1), (2.0 * HW, HW, 3.0), (HW, HW // 2, 1), (HW, HW, 3.0),
                     step1=(0, HW // 2 - 1, HW // 4), slices=(0, N - 1, N // 2))
    del f["dataset/xml"]
    f["dataset/xml"] = np.array([hdr.encode()], dtype=h5py.string_dtype())


def _nan(f):
    d = f["dataset/data"][()]
    d["data"][5][7] = np.nan
    _rewrite(f, d)


def _short_record(f):
    d = f["dataset/data"][()]
    d["data"][5] = d["data"][5][:-2]
    _rewrite(f, d)


def _noise_only(f):
    d = f["dataset/data"][()]
    d["head"]["flags"] |= np.uint64(1 << 18)
    _rewrite(f, d)


def _drop_field(field):
    def edit(f):
        d = f["dataset/data"][()]
        keep = [n for n in d.dtype.names if n != field]
        _rewrite(f, np.array([tuple(r[n] for n in keep) for r in d],
                             dtype=np.dtype([(n, d.dtype[n]) for n in keep])))
    return edit


def _drop_head_field(field):
    def edit(f):
        d = f["dataset/data"][()]
        head_t = d.dtype["head"]
        keep = [n for n in head_t.names if n != field]
        new_head = np.dtype([(n, head_t[n]) for n in keep])
        rec = np.dtype([("head", new_head), ("traj", d.dtype["traj"]), ("data", d.dtype["data"])])
        out = np.empty(d.shape, rec)
        for n in keep:
            out["head"][n] = d["head"][n]
        out["traj"], out["data"] = d["traj"], d["data"]
        _rewrite(f, out)
    return edit


def _mixed_coils(f):
    d = f["dataset/data"][()]
    d["head"]["active_channels"][4] = COILS - 1
    _rewrite(f, d)


BAD = [
    ("missing-xml", _no_xml, r"no '/dataset/xml'"),
    ("header-readout-disagrees", _matrix_disagrees,
     r"encoded matrix x = 66 disagrees with the 64 samples"),
    ("header-phase-too-small", _phase_matrix_too_small, r"encode steps fall outside the encoded matrix 16"),
    ("nan-samples", _nan, r"acquisition 5 holds .* NaN"),
    ("short-record", _short_record, r"acquisition 5 holds 510 floats \(expected 512\)"),
    ("noise-only", _noise_only, r"no imaging acquisitions \(only noise scans"),
    ("no-head-field", _drop_field("head"), r"'/dataset/data' has fields \('traj', 'data'\).*needs 'head'"),
    ("no-data-field", _drop_field("data"), r"needs 'head' and 'data'"),
    ("head-without-idx", _drop_head_field("idx"), r"the acquisition header lacks idx"),
    ("head-without-channels", _drop_head_field("active_channels"), r"lacks active_channels"),
    ("coils-differ", _mixed_coils, r"acquisitions differ in samples \[64\] / coils \[3, 4\]"),
]


@pytest.mark.parametrize("name, edit, match", BAD, ids=[b[0] for b in BAD])
def test_malformed_ismrmrd_refused_before_compute(tmp_path, volume, lines, monkeypatch, name,
                                                  edit, match):
    import napari_d3ip.io.formats._mri as mri

    monkeypatch.setattr(mri, "espirit_maps", lambda *a, **k: pytest.fail("computed"))
    p = write_ismrmrd_2d(tmp_path / "bad.h5", volume[:2], lines, COILS, edit=edit)
    with pytest.raises(D3IPError, match=match):
        open_measurement(p)
