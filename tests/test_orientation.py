"""The radiological display geometry from the affine alone (orientation.py): which array axis
is which anatomical direction, and where a voxel lands on the screen in each view."""

from __future__ import annotations

import numpy as np
import pytest

from napari_d3ip.orientation import axis_map, screen_frame, screen_position, view_geometry

SHAPE = (6, 8, 10)


def _rot_x(deg: float) -> np.ndarray:
    t = np.radians(deg)
    r = np.eye(4)
    r[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return r


AFFINES = {
    "RAS": np.diag([2.0, 1.5, 1.0, 1.0]),
    "LPS": np.diag([-2.0, -1.5, 1.0, 1.0]),
    # the shipped brain's layout: slices along S, rows along R, cols along A
    "slices-S": np.array([[0, 1.5, 0, 0], [0, 0, 1.0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1.0]]),
    "LPS-slices-S": np.array([[0, -1.5, 0, 0], [0, 0, -1.0, 0], [-2.0, 0, 0, 0], [0, 0, 0, 1.0]]),
    "oblique-35": _rot_x(35.0) @ np.diag([2.0, 1.5, 1.0, 1.0]),
}


def _corner(affine: np.ndarray, want: tuple[int, int, int]) -> tuple[int, int, int]:
    """The voxel corner of SHAPE nearest the world direction `want` (+1/-1 along R, A, S)."""
    best, score = None, -np.inf
    for i in (0, SHAPE[0] - 1):
        for j in (0, SHAPE[1] - 1):
            for k in (0, SHAPE[2] - 1):
                w = affine[:3, :3] @ np.array([i, j, k], float) + affine[:3, 3]
                centre = affine[:3, :3] @ (np.array(SHAPE, float) - 1) / 2 + affine[:3, 3]
                s = float(np.dot(w - centre, want))
                if s > score:
                    best, score = (i, j, k), s
    return best


@pytest.mark.parametrize("name", list(AFFINES))
def test_right_anterior_superior_corner_is_top_left_in_every_radiological_view(name):
    aff = AFFINES[name]
    ras = _corner(aff, (1, 1, 1))
    for plane in ("Axial", "Coronal", "Sagittal"):
        g = view_geometry(aff, plane)
        x, y = screen_position(g, ras, SHAPE)
        assert x < 0.5 and y < 0.5, (name, plane, g, x, y)
        assert sorted(g.order) == [0, 1, 2]


@pytest.mark.parametrize("name", list(AFFINES))
def test_neurological_puts_the_right_on_the_right_in_axial_and_coronal(name):
    aff = AFFINES[name]
    ras = _corner(aff, (1, 1, 1))
    for plane, right in (("Axial", True), ("Coronal", True), ("Sagittal", False)):
        x, y = screen_position(view_geometry(aff, plane, radiological=False), ras, SHAPE)
        assert (x > 0.5) is right and y < 0.5, (name, plane)


def test_letters_and_titles():
    g = view_geometry(AFFINES["RAS"], "Axial")
    assert (g.top, g.bottom, g.left, g.right, g.title) == ("A", "P", "R", "L", "Axial")
    g = view_geometry(AFFINES["RAS"], "Coronal", radiological=False)
    assert (g.top, g.bottom, g.left, g.right) == ("S", "I", "L", "R")
    g = view_geometry(AFFINES["RAS"], "Sagittal")
    assert (g.top, g.bottom, g.left, g.right) == ("S", "I", "A", "P")


def test_axis_map_known_answers():
    m = axis_map(AFFINES["slices-S"])
    assert m.world == (2, 0, 1) and m.sign == (1, 1, 1) and not m.oblique
    assert m.axis_labels() == ("I→S", "L→R", "P→A")
    m = axis_map(AFFINES["LPS"])
    assert m.sign == (-1, -1, 1) and m.axis_labels() == ("R→L", "A→P", "I→S")
    m = axis_map(AFFINES["oblique-35"])
    assert m.oblique and m.obliquity == pytest.approx(35.0, abs=1e-6)
    assert "35° oblique" in view_geometry(AFFINES["oblique-35"], "Axial").title
    # an axis at 45° never steals another's plain direction
    m = axis_map(_rot_x(45.0) @ np.diag([1.0, 1.0, 1.0, 1.0]))
    assert sorted(m.world) == [0, 1, 2]


@pytest.mark.parametrize("bad", [np.eye(3), np.full((4, 4), np.nan), np.diag([1.0, 0.0, 1.0, 1.0])])
def test_bad_affines_are_refused(bad):
    with pytest.raises(ValueError):
        axis_map(bad)


def test_unknown_plane_is_refused():
    with pytest.raises(ValueError, match="Axial"):
        screen_frame("axial")
