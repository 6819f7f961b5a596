"""Axial, coronal and sagittal views of the volume, behind one small controller.

With `napari-orthogonal-views` installed, `OrthoViews.show()` opens its two extra synchronised
canvases next to the main one through the plugin's public functions (`show_orthogonal_views`,
`hide_orthogonal_views`; the plugin defers the actual show to the Qt event loop, so callers
wait for `is_shown()`); the open views are found as the plugin's public `OrthoViewWidget`s of
this viewer. Without it, `ViewControls` still offers the plain fallback: buttons that reorder
the dims (which plane the main canvas shows) and a 2D/3D toggle.

Every slider, in the main canvas and in the two extra views, counts voxel (slice) indices of
the volume: all the plugin's layers share the volume's voxel grid (`_layers`); the caption
under the view buttons says so (the slider labels keep the anatomical plane names short,
the orthogonal views draw them on the canvas).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

#: dims order per plane for (slice, row, col) volumes: the canvas shows the last two axes
PLANES: dict[str, tuple[int, int, int]] = {
    "Axial": (0, 1, 2),
    "Coronal": (1, 0, 2),
    "Sagittal": (2, 0, 1),
}


#: what every slider counts (one voxel of the volume per step, on every axis)
SLIDER_UNIT = "slice"


def unwrap(viewer: Any) -> Any:
    """The real napari Viewer behind a PublicOnlyProxy (the ortho plugin needs its window)."""
    return getattr(viewer, "__wrapped__", viewer)


def plugin_available() -> bool:
    return importlib.util.find_spec("napari_orthogonal_views") is not None


class OrthoViews:
    """Open / close the orthogonal views of a viewer, or report that only the fallback exists."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.available = plugin_available()

    def widgets(self) -> list[Any]:
        """The plugin's `OrthoViewWidget`s (its public class) showing this viewer, if any."""
        if not self.available:
            return []
        from napari_orthogonal_views import OrthoViewWidget
        from qtpy.QtWidgets import QApplication

        viewer = unwrap(self.viewer)
        return [w for w in QApplication.allWidgets()
                if isinstance(w, OrthoViewWidget) and getattr(w, "viewer", None) is viewer]

    def show(self) -> bool:
        """Ask for the three views; True if the plugin will show them (deferred), else False."""
        if not self.available:
            return False
        from napari_orthogonal_views.ortho_view_manager import show_orthogonal_views

        show_orthogonal_views(unwrap(self.viewer))
        return True

    def hide(self) -> None:
        if self.available and self.is_shown():
            from napari_orthogonal_views.ortho_view_manager import hide_orthogonal_views

            hide_orthogonal_views(unwrap(self.viewer))

    def is_shown(self) -> bool:
        """True while the two extra views are on screen."""
        return any(_visible(w) for w in self.widgets())

    def view_models(self) -> list[Any]:
        """The ViewerModels of the two extra views (empty when not shown)."""
        out = []
        for w in self.widgets():
            vm = getattr(getattr(w, "vm_container", None), "viewer_model", None)
            if vm is not None and _visible(w):
                out.append(vm)
        return out

    # -- fallback ------------------------------------------------------------------------
    def set_plane(self, plane: str) -> None:
        """Show `plane` ('Axial', 'Coronal', 'Sagittal') in the main canvas (2D)."""
        dims = self.viewer.dims
        if dims.ndim < 3:
            return
        lead = tuple(range(dims.ndim - 3))
        dims.order = lead + tuple(len(lead) + a for a in PLANES[plane])
        dims.ndisplay = 2

    def toggle_3d(self) -> None:
        self.viewer.dims.ndisplay = 3 if self.viewer.dims.ndisplay == 2 else 2

    def reset_cameras(self) -> int:
        """Fit every view (the main canvas and the two orthogonal ones) to the data, through
        the public `ViewerModel.reset_view`; returns how many views were reset."""
        self.viewer.reset_view()
        n = 1
        for vm in self.view_models():
            vm.reset_view()
            n += 1
        return n


def _visible(widget: Any) -> bool:
    """An extra view in place in the viewer's window (hiding takes it out and deletes it)."""
    try:
        return widget.parent() is not None and not widget.isHidden()
    except RuntimeError:  # its C++ object is already gone
        return False


class ViewControls(QWidget):
    """'Orthogonal views' checkbox (when the plugin exists) + plane buttons + a 3D toggle."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views = OrthoViews(viewer)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        lay = QHBoxLayout()
        outer.addLayout(lay)
        self.ortho = QCheckBox("3 views")
        self.ortho.setToolTip("axial, coronal and sagittal views side by side "
                              "(napari-orthogonal-views)")
        self.ortho.setVisible(self.views.available)
        self.ortho.toggled.connect(self._on_ortho)
        lay.addWidget(self.ortho)
        self.plane_buttons: dict[str, QPushButton] = {}
        for plane in PLANES:
            b = QPushButton(plane[:3])
            b.setToolTip(f"show the {plane.lower()} plane in the main canvas")
            b.clicked.connect(lambda _=False, p=plane: self.views.set_plane(p))
            lay.addWidget(b)
            self.plane_buttons[plane] = b
        self.btn_3d = QPushButton("2D/3D")
        self.btn_3d.setToolTip("toggle 3D rendering")
        self.btn_3d.clicked.connect(lambda _=False: self.views.toggle_3d())
        lay.addWidget(self.btn_3d)
        self.reset_btn = QPushButton("Reset view")
        self.reset_btn.setToolTip("fit the volume in every view again (zoom and pan)")
        self.reset_btn.clicked.connect(lambda _=False: self.views.reset_cameras())
        lay.addWidget(self.reset_btn)
        self.unit_label = QLabel(f"sliders count voxels ({SLIDER_UNIT} index) in every view")
        self.unit_label.setToolTip("one slider step is one voxel of the volume on every axis; "
                                   "the world position in mm is in the status bar")
        self.unit_label.setStyleSheet("color: gray")
        outer.addWidget(self.unit_label)

    def _on_ortho(self, on: bool) -> None:
        if on:
            self.views.show()
        else:
            self.views.hide()

    def open(self) -> bool:
        """Open the orthogonal views (checks the box); False when only the fallback exists.

        The plugin shows them from the event loop; once shown, every view is fitted to the
        data (they opened cropped otherwise)."""
        if not self.views.available:
            return False
        if not self.ortho.isChecked():
            self.ortho.setChecked(True)
        else:
            self.views.show()
        self._fit_when_shown(20)
        return True

    def _fit_when_shown(self, tries: int) -> None:
        import contextlib

        from qtpy.QtCore import QTimer

        with contextlib.suppress(RuntimeError, AttributeError):  # the viewer may be gone
            if self.views.is_shown():
                self.views.reset_cameras()
            elif tries > 0:
                QTimer.singleShot(100, lambda: self._fit_when_shown(tries - 1))
