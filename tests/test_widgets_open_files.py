"""napari and real-data files: the Data dock chooses the mask of a fully sampled MRI file and
hands the Reconstruct dock a measurement of that acceleration; File → Open (the npe2 reader,
through napari's own plugin machinery) turns a file of each format into its preview layer
(zero-filled coil-combined image / FBP) of the right shape."""

from __future__ import annotations

import numpy as np
import pytest

from _format_writers import write_fastmri, write_ismrmrd_2d, write_ismrmrd_3d
from _tomo_writers import counts, phantom, radon_sinograms, write_dxchange, write_nxtomo

pytestmark = pytest.mark.gui

TIMEOUT = 60000
N, HW, COILS = 3, 32, 4


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_D3IP_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    from napari_d3ip.training.phantoms import ellipsoid_volume

    return ellipsoid_volume(HW, seed=0)[14:14 + N].numpy().astype(np.float32)


def test_data_dock_chooses_the_mask_of_a_fully_sampled_file(make_napari_viewer_proxy, qtbot,
                                                            tmp_path, volume):
    from napari_d3ip import _layers as L
    from napari_d3ip.io.formats._mri import fastmri_mask
    from napari_d3ip.widgets.data_widget import DataWidget
    from napari_d3ip.widgets.reconstruct_widget import ReconstructWidget

    path = write_fastmri(tmp_path / "file_train.h5", volume, COILS)  # training style
    viewer = make_napari_viewer_proxy()
    data, rec = DataWidget(viewer), ReconstructWidget(viewer)
    viewer.window.add_dock_widget(data)
    viewer.window.add_dock_widget(rec)
    box = data.open_options
    assert not box.accel.isEnabled()  # 'from the file': R does not apply
    data.open_measurement(str(path))  # no mask chosen: refused, saying how
    qtbot.waitUntil(lambda: data.worker is None, timeout=TIMEOUT)
    assert data.status.text().startswith("⚠") and "Data dock" in data.status.text()
    assert len(viewer.layers) == 0

    box.mask.setCurrentText("equispaced")
    box.accel.setValue(4.0)
    box.center_fraction.setValue(0.16)
    data.seed.setValue(3)
    data.open_measurement(str(path))
    qtbot.waitUntil(lambda: data.worker is None, timeout=TIMEOUT)
    m = rec.current_measurement()
    assert m is not None, data.status.text()
    want = fastmri_mask(HW, "equispaced", 4.0, 0.16, seed=3)
    np.testing.assert_array_equal(m.operator.mask_np[0], want)
    assert m.simulation["achieved_acceleration"] == pytest.approx(HW / want.sum())
    assert m.simulation["sampling"].startswith("equispaced 4x, centre fraction 0.16 (seed 3)")
    pinv = [ly for ly in viewer.layers if ly.metadata.get(L.ROLE) == "pinv"]
    assert len(pinv) == 1 and pinv[0].data.shape == (N, HW, HW)

    box.slices.setText("1:3")  # slices too, and the default centre fraction
    box.center_fraction.setValue(0.0)
    box.mask.setCurrentText("random")
    assert box.options().center_fraction is None and box.options().slices == "1:3"
    data.open_measurement(str(path))
    qtbot.waitUntil(lambda: data.worker is None, timeout=TIMEOUT)
    assert rec.current_measurement().y.shape == (2, COILS, HW, HW)


def _files(tmp_path, volume) -> dict:
    """One small file of each format the door reads -> its preview's (slices, H, W)."""
    from napari_d3ip.io.formats._mri import fastmri_mask
    from napari_d3ip.io.measurements import write_measurement
    from napari_d3ip.operators import poisson_disc_mask, simulate

    out = {}
    ours = simulate(volume, "ct", noise=0.0, seed=0, n_views=8)
    out[write_measurement(tmp_path / "ours.h5", ours)] = (N, HW, HW)
    mask = fastmri_mask(HW, "random", 4, 0.16, seed=0)
    out[write_fastmri(tmp_path / "fastmri_test.h5", volume, COILS, mask=mask)] = (N, HW, HW)
    vol3d = np.transpose(volume, (1, 0, 2))[14:18]  # (x, y, z) = (4, 3, 32): tiny on purpose
    vol3d = np.ascontiguousarray(np.repeat(vol3d, 8, axis=1))  # y: 24 phase-1 lines
    m3 = poisson_disc_mask((24, HW), 2.0, (8, 8), seed=0)
    out[write_ismrmrd_3d(tmp_path / "ismrmrd3d.h5", vol3d, m3, COILS)] = (4, 24, HW)
    lines = np.zeros(HW, bool)
    lines[::2] = lines[12:20] = True
    out[write_ismrmrd_2d(tmp_path / "ismrmrd2d.mrd", volume, lines, COILS)] = (N, HW, HW)
    theta = np.arange(0.0, 180.0, 4.0)
    proj, flats, darks = counts(radon_sinograms(phantom(HW, N), theta), seed=0)
    out[write_dxchange(tmp_path / "dx.h5", proj, flats, darks, theta)] = (N, HW, HW)
    out[write_nxtomo(tmp_path / "scan.nx", proj, flats, darks, theta)] = (N, HW, HW)
    return out


def test_file_open_shows_a_preview_of_each_format(make_napari_viewer_proxy, tmp_path, volume):
    from napari_d3ip import _layers as L
    from napari_d3ip.io import open_measurement

    viewer = make_napari_viewer_proxy()
    for path, shape in _files(tmp_path, volume).items():
        before = len(viewer.layers)
        viewer.open(str(path), plugin="napari-d3ip")  # File → Open with our reader
        new = list(viewer.layers)[before:]
        roles = [ly.metadata.get(L.ROLE) for ly in new]
        assert "measurement" in roles and "pinv" in roles, (path.name, roles)
        pinv = new[roles.index("pinv")]
        assert pinv.data.shape == shape, (path.name, pinv.data.shape)
        m = new[roles.index("measurement")].metadata[L.MEASUREMENT]
        assert m.image_shape == shape[1:] and m.n_slices == shape[0]
        # the preview is A†y of the file's measurement, shown at the file's voxel size
        np.testing.assert_allclose(np.asarray(pinv.data), open_measurement(path).pinv(),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pinv.scale, m.spacing)
