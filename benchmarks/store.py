"""The JSON store of benchmark results: one file, sections by label (`<kind>/<label>`), each
section saying what ran, where, with which prior, and the rows it produced."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def load_store(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("sections"), dict):
                return data
        except json.JSONDecodeError:
            pass
    return {"sections": {}}


def save_section(path: Path, label: str, section: dict[str, Any]) -> dict[str, Any]:
    """Put `section` under `label` in the JSON store at `path` (other labels are kept); the
    file is replaced atomically, so a benchmark killed mid-write leaves the previous store."""
    store = load_store(path)
    store["sections"][label] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(store, indent=1, default=json_value) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return store


def command_line(module: str, argv: list[str] | None) -> str:
    """How a benchmark was run, for its report: `python -m benchmarks.<module> <args>`."""
    args = sys.argv[1:] if argv is None else argv
    return f"python -m benchmarks.{module} " + " ".join(shlex.quote(a) for a in args)


def write_report(stem: Path, payload: dict[str, Any], markdown: str) -> None:
    """A stand-alone benchmark's results: `<stem>.json` (the raw rows) and `<stem>.md` (the
    table), each replaced atomically."""
    for path, text in ((stem.with_suffix(".json"), json.dumps(payload, indent=1) + "\n"),
                       (stem.with_suffix(".md"), markdown)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def json_value(obj: Any) -> Any:
    """JSON for what rows hold besides plain values: numpy scalars and arrays, paths."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


@dataclass
class Section:
    """One benchmark invocation: what ran, where, and the rows it produced."""

    label: str
    title: str
    command: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    prior: dict[str, Any] | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    started: str = field(default_factory=now)
    finished: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def row_ok(r: dict | None) -> bool:
    """A row that ran to the end and was scored."""
    return bool(r) and r.get("status") == "ok" and r.get("psnr") is not None


def sections(out_dir: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The sections of one kind ('quality', 'speed', 'solvers') in results.json, by label."""
    store = load_store(out_dir / "results.json")["sections"]
    return {k.split("/", 1)[1]: v for k, v in store.items() if k.startswith(kind + "/")}


def save(out_dir: Path, kind: str, label: str, section: dict[str, Any]) -> Path:
    path = out_dir / "results.json"
    save_section(path, f"{kind}/{label}", {**section, "kind": kind})
    return path
