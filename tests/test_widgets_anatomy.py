"""GUI: a volume opened from a NIfTI file is shown the radiological way at once, in the main
canvas and in the two extra views: a marker at the patient's right-anterior-superior corner
lands top-left in every view (top-right in axial and coronal with 'neurological' on), for RAS,
LPS and oblique files; each view is titled and lettered."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

SHAPE = (12, 14, 10)  # file order (i, j, k)


def _rot_x(deg: float) -> np.ndarray:
    t = np.radians(deg)
    r = np.eye(4)
    r[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return r


# file affine, and the file voxel corner at the patient's right, anterior, superior
CASES = {
    "RAS": (np.diag([2.0, 1.5, 3.0, 1.0]), (1, 1, 1)),
    "LPS": (np.diag([-2.0, -1.5, 3.0, 1.0]), (0, 0, 1)),
    "oblique": (_rot_x(35.0) @ np.diag([2.0, 1.5, 3.0, 1.0]), (1, 1, 1)),
}


def _nifti(tmp_path, name):
    import nibabel as nib

    affine, hi = CASES[name]
    vol = np.zeros(SHAPE, np.float32)
    idx = tuple(slice(n - 4, n - 2) if h else slice(2, 4) for n, h in zip(SHAPE, hi))
    vol[idx] = 1.0
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), str(path))
    return path


def _marker_side(img: np.ndarray) -> tuple[str, str]:
    """('left'|'right', 'top'|'bottom') of the red marker against the canvas centre."""
    r, g, b = (img[..., c].astype(int) for c in range(3))
    ys, xs = np.nonzero((r > 25) & (r > 3 * g) & (r > 3 * b))
    assert len(xs) > 4, "the marker is not on screen"
    h, w = img.shape[:2]
    return ("left" if xs.mean() < w / 2 else "right", "top" if ys.mean() < h / 2 else "bottom")


@pytest.mark.parametrize("name", list(CASES))
def test_marker_lands_in_the_radiological_quadrant(make_napari_viewer_proxy, qtbot, tmp_path,
                                                   name):
    pytest.importorskip("napari_orthogonal_views")
    from napari_d3ip.widgets.orthoviews import ViewControls

    viewer = make_napari_viewer_proxy(show=True)
    c = ViewControls(viewer)
    viewer.window.add_dock_widget(c)
    (layer,) = viewer.open(str(_nifti(tmp_path, name)), plugin="napari-d3ip")
    layer.colormap = "red"
    # set as soon as the volume is opened (one label per turn of the event loop, so that no
    # turn stalls the window): axial title and letters, short slider labels
    titles = viewer.canvas.overlays
    qtbot.waitUntil(lambda: "d3ip_right" in titles, timeout=5000)
    assert titles["d3ip_title"].text.startswith("Axial")
    assert {titles[f"d3ip_{k}"].text for k in ("top", "bottom", "left", "right")} == \
        {"A", "P", "R", "L"}
    assert all(len(lbl) <= 3 for lbl in viewer.dims.axis_labels)
    assert ("oblique" in titles["d3ip_title"].text) is (name == "oblique")
    assert c.oblique_label.isVisible() is (name == "oblique")
    marker = np.argwhere(np.asarray(layer.data) > 0.5).mean(axis=0).round().astype(int)
    viewer.dims.current_step = tuple(marker)
    assert c.open()
    qtbot.waitUntil(c.views.is_shown, timeout=30000)
    qtbot.waitUntil(lambda: len(c.views.view_models()) == 2, timeout=10000)
    c.display.apply()
    viewer.dims.current_step = tuple(marker)
    for neuro in (False, True):
        c.neuro.setChecked(neuro)
        c.views.reset_cameras()
        qtbot.wait(200)
        shots = {viewer.canvas.overlays["d3ip_title"].text.split(" ")[0]:
                 viewer.screenshot(canvas_only=True)}
        for w in c.views.shown_widgets():
            vm = w.vm_container.viewer_model
            shots[vm.canvas.overlays["d3ip_title"].text.split(" ")[0]] = w.qt_viewer.screenshot()
        assert set(shots) == {"Axial", "Coronal", "Sagittal"}
        for plane, img in shots.items():
            lr = "right" if neuro and plane != "Sagittal" else "left"
            assert _marker_side(img) == (lr, "top"), (name, plane, neuro)
    # letters replace napari's axes arrows (they would cover the image's corner)
    assert not viewer.canvas.overlays.axes.visible
    c.views.hide()
    qtbot.waitUntil(lambda: not c.views.is_shown(), timeout=10000)
