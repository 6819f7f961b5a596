"""The npe2 manifest: every command resolves, and the reader, writer, sample data and layer
conversion live at package level without Qt or napari (napari-plugin-template layout)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import yaml

PKG = Path(__file__).resolve().parents[1] / "src" / "napari_d3ip"


def test_every_manifest_command_resolves():
    manifest = yaml.safe_load((PKG / "napari.yaml").read_text(encoding="utf-8"))
    commands = manifest["contributions"]["commands"]
    assert len(commands) >= 9
    for c in commands:
        module, _, attr = c["python_name"].partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), c["id"]
    qt_free = [c["python_name"] for c in commands if not c["python_name"].startswith(
        "napari_d3ip.widgets.")]
    assert {n.split(":")[0] for n in qt_free} == {"napari_d3ip._reader", "napari_d3ip._writer",
                                                 "napari_d3ip._sample_data"}


def test_npe2_contributions_import_without_qt_or_napari():
    code = ("import sys; import napari_d3ip._reader, napari_d3ip._writer, "
            "napari_d3ip._sample_data, napari_d3ip._layers; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'vispy')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_widgets_use_no_private_napari_api():
    """No underscore attribute of napari or napari-orthogonal-views objects in our widgets."""
    pattern = re.compile(r"_qt_window|_qt_viewer|_register_task_status|_update_task_status|"
                         r"_get_manager|_VIEWER_MANAGERS|napari\.\w*\._|ovm\._")
    for f in sorted((PKG / "widgets").glob("*.py")):
        hits = [ln for ln in f.read_text(encoding="utf-8").splitlines() if pattern.search(ln)]
        assert not hits, (f.name, hits)
