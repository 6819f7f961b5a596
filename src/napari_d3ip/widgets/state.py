"""Run state and remembered parameters: plain Python, so the logic is testable without Qt.

`RunState` is the small state machine the widgets display (Idle → Preparing → Adapting/Sampling
k of n → Done / Failed, with Cancelling in between when the user asks to stop). It refuses
transitions that would hide a bug (e.g. a late Step arriving after Done).

`ParamStore` remembers widget parameters between launches in a JSON file in the user's config
directory, and can restore the defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any


class Phase(str, Enum):
    IDLE = "Idle"
    PREPARING = "Preparing"
    ADAPTING = "Adapting"
    SAMPLING = "Sampling"
    CANCELLING = "Cancelling"
    DONE = "Done"
    FAILED = "Failed"


#: phases in which a worker is alive (Run is a Cancel button)
ACTIVE = frozenset({Phase.PREPARING, Phase.ADAPTING, Phase.SAMPLING, Phase.CANCELLING})
_RUNNING = frozenset({Phase.PREPARING, Phase.ADAPTING, Phase.SAMPLING})

_ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.PREPARING}),
    Phase.DONE: frozenset({Phase.PREPARING, Phase.IDLE}),
    Phase.FAILED: frozenset({Phase.PREPARING, Phase.IDLE}),
    Phase.PREPARING: frozenset({Phase.ADAPTING, Phase.SAMPLING, Phase.CANCELLING,
                                Phase.DONE, Phase.FAILED}),
    Phase.ADAPTING: frozenset({Phase.ADAPTING, Phase.SAMPLING, Phase.CANCELLING,
                               Phase.DONE, Phase.FAILED}),
    Phase.SAMPLING: frozenset({Phase.ADAPTING, Phase.SAMPLING, Phase.CANCELLING,
                               Phase.DONE, Phase.FAILED}),
    # a cancelled run ends Idle; a run that finished or failed before it saw the cancel
    # still reports what really happened
    Phase.CANCELLING: frozenset({Phase.IDLE, Phase.DONE, Phase.FAILED}),
}


class StateError(RuntimeError):
    """An impossible transition: a programming error, not a user error."""


class RunState:
    """Phase + step k of n + a message; listeners are called after every change."""

    def __init__(self) -> None:
        self.phase = Phase.IDLE
        self.step = 0
        self.total = 0
        self.message = ""
        self.notice = ""  # a note on an idle form (a refused Run), cleared by any transition
        self._listeners: list[Callable[[RunState], None]] = []

    # -- queries -------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """A worker is alive (the Run button is a Cancel button)."""
        return self.phase in ACTIVE

    @property
    def running(self) -> bool:
        """Running and not asked to stop: updates from the worker are welcome."""
        return self.phase in _RUNNING

    def text(self) -> str:
        """The label a user reads, e.g. 'Adapting 3/50' or 'Failed: CUDA out of memory'."""
        p = self.phase
        if self.notice:
            return self.notice
        if p in (Phase.ADAPTING, Phase.SAMPLING) and self.total:
            s = f"{p.value} {self.step}/{self.total}"
        else:
            s = p.value
        return f"{s}: {self.message}" if self.message else s

    def connect(self, fn: Callable[[RunState], None]) -> None:
        self._listeners.append(fn)

    # -- transitions ---------------------------------------------------------------------
    def _go(self, phase: Phase, message: str = "") -> None:
        if phase not in _ALLOWED[self.phase]:
            raise StateError(f"run state cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase
        self.message = message
        self.notice = ""
        for fn in list(self._listeners):
            fn(self)

    def note(self, text: str) -> bool:
        """Show `text` instead of the phase while no run is live (a refused Run, with its
        fix); False, and nothing changes, during a run."""
        if self.active:
            return False
        self.notice = text
        for fn in list(self._listeners):
            fn(self)
        return True

    def start(self, message: str = "") -> None:
        self.step, self.total = 0, 0
        self._go(Phase.PREPARING, message)

    def progress(self, phase: str, step: int, total: int) -> bool:
        """A Step arrived; returns False (and changes nothing) if the run is stopping/over."""
        if not self.running:
            return False
        self.step, self.total = int(step), int(total)
        self._go(Phase.ADAPTING if phase == "adapting" else Phase.SAMPLING)
        return True

    def cancel(self) -> bool:
        """Ask to stop; False if there is nothing to cancel (already stopping or idle)."""
        if not self.running:
            return False
        self._go(Phase.CANCELLING, "stops after the current step")
        return True

    def finish(self, message: str = "") -> None:
        """The worker returned: Done, or Idle if it was a cancelled run."""
        if self.phase is Phase.CANCELLING:
            self._go(Phase.IDLE, message or f"cancelled at step {self.step}/{self.total}")
        else:
            self._go(Phase.DONE, message)

    def fail(self, message: str) -> None:
        self._go(Phase.FAILED, message)


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
