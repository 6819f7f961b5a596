"""Axial, coronal and sagittal views of the volume, shown the radiological way, behind one
small controller.

`AnatomicalDisplay` applies `orientation.view_geometry` (Qt-free, from the volume's affine) to
the main canvas and to the two extra views: which array axes each canvas shows (a dims order),
which screen directions are flipped (napari's public camera orientation), the view's title and
the direction letters at its edges (napari canvas text overlays). It changes the display only,
never a layer's data, affine or a file. It is applied as soon as a volume with an affine is
added to the viewer (not after a Run), and again when the extra views open.

With `napari-orthogonal-views` installed, `OrthoViews.show()` opens its two extra synchronised
canvases through the plugin's public entry points (`show_orthogonal_views`,
`hide_orthogonal_views`) with the viewer napari itself hands out (`napari.current_viewer()`,
checked to be ours: no access past napari's PublicOnlyProxy). The open views are the plugin's
public `OrthoViewWidget`s inside our own window (`QWidget.window().findChildren`, no scan of
every widget of the application). The plugin's own Controls panel is collapsed when the views
open (its splitter handle brings it back).

Every slider, in the main canvas and in the two extra views, counts voxel (slice) indices of
the volume: all the plugin's layers share the volume's voxel grid (`_layers`).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from qtpy.QtWidgets import QCheckBox, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .. import _layers as napari_layers
from ..orientation import PLANES, axis_map, view_geometry
from .common import camera_of, one_per_turn

#: what every slider counts (one voxel of the volume per step, on every axis)
SLIDER_UNIT = "slice"
#: canvas overlay keys of the title and the four direction letters
_OVERLAYS = {"title": "top_left", "top": "top_center", "bottom": "bottom_center",
             "left": "middle_left", "right": "middle_right"}


def plugin_available() -> bool:
    return importlib.util.find_spec("napari_orthogonal_views") is not None


class OrthoViews:
    """Open / close the orthogonal views of a viewer, or report that only the fallback exists.

    `anchor` is a widget of ours inside the viewer's window (the dock's content): the views
    are looked up among that window's children."""

    def __init__(self, viewer: Any, anchor: QWidget | None = None) -> None:
        self.viewer = viewer
        self.anchor = anchor
        self.available = plugin_available()

    def _napari_viewer(self) -> Any:
        """The Viewer napari hands out (the plugin needs the real one), if it is ours."""
        import napari

        current = napari.current_viewer()
        if current is None or not (self.viewer == current):  # proxy == real: same viewer
            return None
        return current

    def widgets(self) -> list[Any]:
        """The plugin's `OrthoViewWidget`s (its public class) in this viewer's window."""
        if not self.available or self.anchor is None:
            return []
        from napari_orthogonal_views import OrthoViewWidget

        with contextlib.suppress(RuntimeError):  # the anchor's C++ object is gone
            return list(self.anchor.window().findChildren(OrthoViewWidget))
        return []

    def show(self) -> bool:
        """Ask for the three views; True if the plugin will show them (deferred), else False."""
        viewer = self._napari_viewer() if self.available else None
        if viewer is None:
            return False
        from napari_orthogonal_views.ortho_view_manager import show_orthogonal_views

        show_orthogonal_views(viewer)
        return True

    def hide(self) -> None:
        viewer = self._napari_viewer() if self.available else None
        if viewer is not None and self.is_shown():
            from napari_orthogonal_views.ortho_view_manager import hide_orthogonal_views

            hide_orthogonal_views(viewer)

    def is_shown(self) -> bool:
        """True while the two extra views are on screen."""
        return any(_visible(w) for w in self.widgets())

    def shown_widgets(self) -> list[Any]:
        return [w for w in self.widgets() if _visible(w)]

    def view_models(self) -> list[Any]:
        """The ViewerModels of the two extra views (empty when not shown)."""
        out = []
        for w in self.shown_widgets():
            vm = getattr(getattr(w, "vm_container", None), "viewer_model", None)
            if vm is not None:
                out.append(vm)
        return out

    def collapse_controls(self) -> bool:
        """Fold the plugin's Controls panel (a quarter of the canvas) into its splitter edge."""
        if not self.available or self.anchor is None:
            return False
        from napari_orthogonal_views.widget_controls import MainControlsWidget
        from qtpy.QtWidgets import QSplitter

        done = False
        with contextlib.suppress(RuntimeError):
            for panel in self.anchor.window().findChildren(MainControlsWidget):
                child, parent = panel, panel.parentWidget()
                while parent is not None and not isinstance(parent, QSplitter):
                    child, parent = parent, parent.parentWidget()
                if parent is None:
                    continue
                i = parent.indexOf(child)
                sizes = parent.sizes()
                if i >= 0 and sizes[i] > 0:
                    sizes[1 - i if len(sizes) == 2 else 0] += sizes[i]
                    sizes[i] = 0
                    parent.setSizes(sizes)
                done = True
        return done

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


def volume_affine(layer: Any) -> np.ndarray | None:
    """The voxel -> RAS affine of a 3D image layer of the plugin (None: not anatomical)."""
    md = getattr(layer, "metadata", None) or {}
    aff = md.get(napari_layers.AFFINE)
    if aff is None or getattr(layer, "ndim", 0) < 3:
        return None
    try:
        a = np.asarray(aff, dtype=float)
        axis_map(a)
    except (TypeError, ValueError):
        return None
    return a


def set_view_labels(model: Any, texts: dict[str, str], keys: Any = None) -> None:
    """The title and the four direction letters of one view (napari canvas text overlays);
    only those of `keys` when given (each new overlay builds a vispy visual: one at a time)."""
    from napari.components.overlays import TextOverlay

    overlays = model.canvas.overlays
    for key, position in _OVERLAYS.items():
        if keys is not None and key not in keys:
            continue
        name = f"d3ip_{key}"
        text = texts.get(key, "")
        if name in overlays:
            overlays[name].text = text
            overlays[name].visible = bool(text)
        elif text:
            overlays[name] = TextOverlay(text=text, position=position, visible=True,
                                         font_size=12 if key != "title" else 11,
                                         color="#ffd24d" if key != "title" else "white")


class AnatomicalDisplay:
    """Shows the volume radiologically (or neurologically) in the main canvas and the two
    extra views: dims order, camera flips, titles and letters from `orientation`."""

    def __init__(self, viewer: Any, views: OrthoViews) -> None:
        self.viewer = viewer
        self.views = views
        self.affine: np.ndarray | None = None
        self.radiological = True
        self.plane = "Axial"  # what the main canvas shows

    def note(self) -> str:
        """One line for the dock: the volume's obliquity, or '' for an aligned volume."""
        if self.affine is None:
            return ""
        m = axis_map(self.affine)
        if not m.oblique:
            return ""
        return (f"the volume is {m.obliquity:.0f}° oblique: the views show its nearest "
                "axial / coronal / sagittal planes")

    def extra_planes(self) -> dict[int, str]:
        """Plane of the right (sync axis 1) and bottom (sync axis 2) extra views."""
        others = [p for p in ("Sagittal", "Coronal", "Axial") if p != self.plane]
        return {1: others[0], 2: others[1]}

    def apply(self) -> bool:
        """Apply the display to every open view; False when there is nothing anatomical."""
        steps = self.apply_steps()
        for step in steps:
            step()
        return bool(steps)

    def apply_steps(self) -> list[Callable[[], Any]]:
        """`apply` as small steps (the main canvas's order and camera, then each of its labels,
        then each extra view's order and camera and each of its labels; empty when there is
        nothing anatomical), so that a caller may run them on separate turns of the event
        loop: a new text overlay builds a vispy visual and redraws (0.2-0.5 s per view with all
        five at once under software OpenGL, benchmarks/gui_stall.py) and the window repaints
        in between. Each step reads the display's settings when it runs (a later switch is
        never undone); a step that changes nothing emits nothing."""
        plan = self._plan()
        if plan is None:
            return []
        return [self._apply_main, *(partial(self._apply_main_label, key) for key in _OVERLAYS),
                *(partial(self._apply_extra, i, part) for part in (None, *_OVERLAYS)
                  for i in range(len(plan[2])))]

    def _plan(self) -> tuple | None:
        """(main order, its geometry, [(extra view widget, its order, its geometry)])."""
        dims = self.viewer.dims
        if self.affine is None or dims.ndim < 3:
            return None
        lead = tuple(range(dims.ndim - 3))
        g = view_geometry(self.affine, self.plane, self.radiological)
        main = lead + tuple(len(lead) + a for a in g.order)
        planes = self.extra_planes()
        extras = []
        for w in self.views.shown_widgets():
            plane = planes.get((getattr(w, "sync_axes", None) or [0])[0])
            if plane is None:
                continue
            eg = view_geometry(self.affine, plane, self.radiological)
            extras.append((w, lead + tuple(len(lead) + a for a in eg.order), eg))
        return main, g, extras

    def _apply_main(self) -> None:
        plan = self._plan()
        if plan is None:
            return
        main, g, extras = plan
        for w, full, _ in extras:  # the plugin derives the view's order from the main one
            w.order = tuple(main.index(a) - len(main) for a in full[-3:])
        dims = self.viewer.dims
        labels = list(dims.axis_labels)
        labels[-3:] = axis_map(self.affine).axis_labels()
        dims.axis_labels = labels
        dims.order = main
        camera_of(self.viewer).orientation2d = (g.vertical, g.horizontal)

    def _apply_main_label(self, key: str) -> None:
        """One title or direction letter of the main canvas."""
        plan = self._plan()
        if plan is not None:
            set_view_labels(self.viewer, _texts(plan[1]), keys=(key,))

    def _apply_extra(self, i: int, label: str | None) -> None:
        """Extra view `i`: its order and camera (`label` None), or one of its labels."""
        plan = self._plan()
        if plan is None or i >= len(plan[2]):
            return
        w, full, eg = plan[2][i]
        vm = w.vm_container.viewer_model
        if label is None:
            vm.dims.order = full
            camera_of(vm).orientation2d = (eg.vertical, eg.horizontal)
        else:
            set_view_labels(vm, _texts(eg), keys=(label,))


def _texts(g: Any) -> dict[str, str]:
    return {"title": g.title, "top": g.top, "bottom": g.bottom, "left": g.left, "right": g.right}


class ViewControls(QWidget):
    """'3 views' (when the plugin exists) + 'neurological' + plane buttons + 2D/3D + reset;
    keeps the anatomical display of the last volume added to the viewer."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.views = OrthoViews(viewer, anchor=self)
        self.display = AnatomicalDisplay(viewer, self.views)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(grid)
        self.ortho = QCheckBox("3 views")
        self.ortho.setToolTip("axial, coronal and sagittal views side by side "
                              "(napari-orthogonal-views)")
        self.ortho.setVisible(self.views.available)
        self.ortho.toggled.connect(self._on_ortho)
        grid.addWidget(self.ortho, 0, 0)
        self.neuro = QCheckBox("neurological")
        self.neuro.setToolTip("off (radiological, as 3D Slicer and ITK-SNAP show it): the "
                              "patient's right on the screen's left; on: on the right. "
                              "Display only: data and files never change")
        self.neuro.toggled.connect(self._on_neuro)
        grid.addWidget(self.neuro, 0, 1, 1, 2)
        self.plane_buttons: dict[str, QPushButton] = {}
        for i, plane in enumerate(PLANES):
            b = QPushButton(plane[:3])
            b.setToolTip(f"show the {plane.lower()} plane in the main canvas")
            b.clicked.connect(lambda _=False, p=plane: self.set_plane(p))
            grid.addWidget(b, 1, i)
            self.plane_buttons[plane] = b
        self.btn_3d = QPushButton("2D/3D")
        self.btn_3d.setToolTip("toggle 3D rendering")
        self.btn_3d.clicked.connect(lambda _=False: self.toggle_3d())
        grid.addWidget(self.btn_3d, 2, 0)
        self.reset_btn = QPushButton("Fit")
        self.reset_btn.setToolTip("fit the volume in every view again (zoom and pan)")
        self.reset_btn.clicked.connect(lambda _=False: self.views.reset_cameras())
        grid.addWidget(self.reset_btn, 2, 1)
        self.unit_label = QLabel(f"sliders count voxels ({SLIDER_UNIT} index)")
        self.unit_label.setToolTip("one slider step is one voxel of the volume on every axis; "
                                   "the world position in mm is in the status bar")
        self.unit_label.setWordWrap(True)
        self.unit_label.setStyleSheet("color: gray")
        outer.addWidget(self.unit_label)
        self.oblique_label = QLabel("")
        self.oblique_label.setWordWrap(True)
        self.oblique_label.setVisible(False)
        outer.addWidget(self.oblique_label)
        with contextlib.suppress(AttributeError):  # a stand-in viewer without layers
            viewer.layers.events.inserted.connect(self._on_inserted)
            for layer in viewer.layers:
                self._on_inserted(layer=layer)

    # -- anatomy -------------------------------------------------------------------------
    def _on_inserted(self, event: Any = None, layer: Any = None) -> None:
        """A volume with an affine arrived: show it the radiological way from the next turns
        of the event loop on (order and camera first, then each title and letter)."""
        layer = layer if layer is not None else getattr(event, "value", None)
        aff = volume_affine(layer)
        if aff is None:
            return
        with contextlib.suppress(RuntimeError):  # this widget was deleted
            same = self.display.affine is not None and np.allclose(self.display.affine, aff)
            if not same:
                self.display.affine = aff
                self.display.plane = "Axial"
            # one step per turn: a label's first drawing must not share a turn with napari's
            # own add of the layer (Simulate stalled 0.6-1.8 s with all of it in one turn)
            one_per_turn(self, self.display.apply_steps())
            note = self.display.note()
            self.oblique_label.setText(note)
            self.oblique_label.setVisible(bool(note))

    def _on_neuro(self, on: bool) -> None:
        self.display.radiological = not on
        self.display.apply()

    def set_plane(self, plane: str) -> None:
        """Show `plane` ('Axial', 'Coronal', 'Sagittal') in the main canvas (2D)."""
        dims = self.viewer.dims
        if dims.ndim < 3:
            return
        self.display.plane = plane
        if not self.display.apply():  # no affine: the array's own axes
            lead = tuple(range(dims.ndim - 3))
            plain = {"Axial": (0, 1, 2), "Coronal": (1, 0, 2), "Sagittal": (2, 0, 1)}[plane]
            dims.order = lead + tuple(len(lead) + a for a in plain)
        dims.ndisplay = 2

    def toggle_3d(self) -> None:
        self.viewer.dims.ndisplay = 3 if self.viewer.dims.ndisplay == 2 else 2

    # -- the extra views -----------------------------------------------------------------
    def _on_ortho(self, on: bool) -> None:
        if on:
            self.views.show()
            self._when_shown(20)
        else:
            self.views.hide()

    def open(self) -> bool:
        """Open the orthogonal views (checks the box); False when only the fallback exists.

        The plugin shows them from the event loop; once shown, their planes are set, the
        plugin's Controls panel folded and every view fitted to the data."""
        if not self.views.available:
            return False
        if not self.ortho.isChecked():
            self.ortho.setChecked(True)
        else:
            self.views.show()
            self._when_shown(20)
        return True

    def _when_shown(self, tries: int) -> None:
        """Once the views are shown: fold their controls, orient each view, hide the axes
        arrows, fit the cameras, each on its own turn of the event loop (all in one turn
        froze the window 0.8-1.4 s after napari-orthogonal-views' own build)."""
        from qtpy.QtCore import QTimer

        with contextlib.suppress(RuntimeError, AttributeError):  # the viewer may be gone
            if self.views.is_shown():
                one_per_turn(self, [self._fold, *self.display.apply_steps(),
                                    self.views.reset_cameras])
            elif tries > 0:
                QTimer.singleShot(100, lambda: self._when_shown(tries - 1))

    def _fold(self) -> None:
        """Fold the views' controls; the letters say it when the display is anatomical: no
        axes arrows over the image."""
        self.views.collapse_controls()
        if self.display.affine is not None and self.viewer.dims.ndim >= 3:
            for model in (self.viewer, *self.views.view_models()):
                model.canvas.overlays.axes.visible = False
