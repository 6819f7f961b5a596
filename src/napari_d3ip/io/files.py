"""Safe file handling shared by every writer and command: nothing lost, nothing half-written.

* `atomic_path` / `atomic_write_text`: a result is written to a temporary file in the target's
  folder and moved over the target with `os.replace` only once it is complete, so a full disk,
  a crash or Ctrl-C leaves the old file intact (and no truncated one).
* `check_output`: everything that can be known about an output path before any compute:
  extension, not a directory, a writable folder, not one of the inputs, exists only with
  --force.
* `check_memory` / `check_disk`: what a file claims (its shape) or a run needs, bounded by the
  memory and disk space available, with a message that says how much and why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import D3IPError

GIB = float(1 << 30)


class OutputError(D3IPError):
    """An output path that cannot (or must not) be written; the message names it and why."""


class ResourceError(D3IPError):
    """A file or run that needs more memory or disk than there is; says how much of each."""


# -- sizes ---------------------------------------------------------------------------------
def fmt_bytes(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / (1 << 20):.0f} MiB"


def available_memory() -> int:
    """Bytes of memory a new allocation can get: MemAvailable (Linux), else physical memory."""
    env = os.environ.get("NAPARI_D3IP_MEMORY_LIMIT")  # tests and shared machines
    if env:
        return int(float(env))
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return 1 << 40  # unknown platform: do not refuse


def check_memory(nbytes: float, what: str, fraction: float = 0.9) -> None:
    """Refuse `what` if it needs more than `fraction` of the available memory."""
    avail = available_memory()
    if nbytes > fraction * avail:
        raise ResourceError(f"{what} needs about {fmt_bytes(nbytes)} of memory, but only "
                            f"{fmt_bytes(avail)} are available; use a smaller volume (fewer "
                            "slices, smaller images, fewer views) or a machine with more memory")


def check_disk(folder: str | Path, nbytes: float, what: str) -> None:
    """Refuse to write `what` (about `nbytes`) where the disk has less space left."""
    folder = existing_ancestor(Path(folder))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if nbytes > free:
        raise ResourceError(f"{what} needs about {fmt_bytes(nbytes)} of disk space but "
                            f"{folder} has {fmt_bytes(free)} free; free some space or write "
                            "elsewhere")


# -- paths ---------------------------------------------------------------------------------
def existing_ancestor(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` name the same file (symlinks and relative paths resolved)."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    for double in (".nii.gz",):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def check_output(path: str | Path, *, suffixes: Iterable[str] | None = None,
                 inputs: Iterable[tuple[str, str | Path | None]] = (), force: bool = False,
                 what: str = "output", option: str = "--out") -> Path:
    """Validate an output path before any work; returns it as a Path.

    `inputs` are (description, path) pairs the output must never replace, whatever `force`
    says (the measurement, the input volume, the --config file, the prior).
    """
    path = Path(path)
    if not str(path).strip():
        raise OutputError(f"{option} is empty; name the {what} file")
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if suffix_of(path) not in suffixes:
            raise OutputError(f"{option} {path}: the {what} must end in "
                              f"{', '.join(suffixes)} (got {suffix_of(path) or 'no extension'!r})")
    if path.is_dir():
        raise OutputError(f"{option} {path} is a directory; name a file inside it, e.g. "
                          f"{path / ('result' + (next(iter(suffixes)) if suffixes else ''))}")
    for desc, src in inputs:
        if src is not None and str(src) and same_file(path, src):
            raise OutputError(f"{option} {path} is the {desc}; napari-d3ip never writes over "
                              f"its inputs (not even with --force): choose another {option}")
    if path.exists() and not path.is_file():
        raise OutputError(f"{option} {path} exists and is not a regular file; choose another "
                          f"{option}")
    folder = existing_ancestor(path.parent)
    if not folder.is_dir():
        raise OutputError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: the folder {folder} is not writable; choose "
                          "another location")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it or choose another "
                              f"{option}")
    return path


# -- atomic writes -------------------------------------------------------------------------
def temp_name(path: Path) -> Path:
    """A unique hidden name beside `path` with the same extension (writers pick the format
    from it)."""
    ext = suffix_of(path)
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    return path.with_name(f".{stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path` in one rename.

    On any error (a full disk, Ctrl-C) the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise OSError(f"{path}: the writer produced no file")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
