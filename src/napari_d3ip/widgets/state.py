"""Remembered parameters: plain Python, so the logic is testable without Qt.

(The run state machine is `napari_d3ip.run_controller`; its names are re-exported here for the
widgets and scripts that import them from this module.)

`ParamStore` remembers widget parameters between launches in a JSON file in the user's config
directory, and can restore the defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..run_controller import ACTIVE, Phase, RunState, StateError  # noqa: F401 (re-exported)

# -- remembered parameters -----------------------------------------------------------------

def config_dir() -> Path:
    """Where parameters are remembered: $NAPARI_D3IP_CONFIG_DIR, else the user config dir."""
    env = os.environ.get("NAPARI_D3IP_CONFIG_DIR")
    if env:
        return Path(env)
    try:
        from platformdirs import user_config_dir

        return Path(user_config_dir("napari-d3ip", appauthor=False))
    except ImportError:  # platformdirs comes with napari, but keep a sane fallback
        return Path.home() / ".config" / "napari-d3ip"


class ParamStore:
    """Widget parameters remembered in `<config dir>/<name>.json`.

    Only keys of `defaults` are kept and a saved value must have the default's type
    (int may stand for float): a stale or hand-edited file never breaks a widget.
    """

    def __init__(self, name: str, defaults: dict[str, Any], directory: Path | None = None):
        self.name = name
        self.defaults = dict(defaults)
        self._dir = directory

    @property
    def path(self) -> Path:
        return (self._dir or config_dir()) / f"{self.name}.json"

    def load(self) -> dict[str, Any]:
        values = dict(self.defaults)
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return values
        if not isinstance(saved, dict):
            return values
        for k, v in saved.items():
            if k in values and _same_kind(values[k], v):
                values[k] = v
        return values

    def save(self, values: dict[str, Any]) -> None:
        data = {k: v for k, v in values.items() if k in self.defaults}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(data, indent=2) + "\n")
        except OSError:  # read-only home: remembering is a convenience, not a requirement
            pass

    def restore_defaults(self) -> dict[str, Any]:
        """Forget the saved file; returns the defaults."""
        try:
            self.path.unlink()
        except OSError:
            pass
        return dict(self.defaults)


def _same_kind(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))
