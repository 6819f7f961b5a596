"""Safe file handling shared by every writer and command: nothing lost, nothing half-written.

* `atomic_path` / `atomic_write_text`: a result is written to a temporary file in the target's
  folder and moved over the target with `os.replace` only once it is complete, so a full disk,
  a crash or Ctrl-C leaves the old file intact (and no truncated one).
* `check_output`: everything that can be known about an output path before any compute:
  extension, not a directory, a writable folder, not one of the inputs, exists only with
  --force.
* `check_memory` / `check_disk`: what a file claims (its shape) or a run needs, bounded by the
  memory and disk space available, with a message that says how much and why.
* `check_destination`: the folder a file will be written to, as the write itself will meet it:
  the temporary name's length within the filesystem's limit, a real filesystem (not /proc or
  /sys, where root passes `os.access`), writable, free space and the process's file-size limit
  (`ulimit -f`: a write past it kills the process with SIGXFSZ). Checked before any compute.
* `planned_outputs` / `input_files`: every file a writer produces for a name (an .mhd header
  and its .zraw data file) and every file an input is read from (an .mhd/.nhdr header and its
  data file): an output may replace none of an input's files, and each produced file needs
  --force to replace an existing one, not only the one the user named.

One writer: every writer of the package (volumes, results, run cards, measurements, figures,
training runs) goes through `check_output`/`check_destination` before its compute and through
`atomic_path` for the bytes; a failed write raises `OutputError` naming the file (never the
hidden temporary) and leaves no temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import D3IPError

GIB = float(1 << 30)


class OutputError(D3IPError):
    """An output path that cannot (or must not) be written; the message names it and why."""


class WriteError(OutputError, OSError):
    """A write that failed (full disk, file-size limit, permissions): names the file, never its
    temporary; nothing was replaced. An OSError too, for callers that catch those."""


class ResourceError(D3IPError):
    """A file or run that needs more memory or disk than there is; says how much of each."""


# -- sizes ---------------------------------------------------------------------------------
def fmt_bytes(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n < 1 << 20:  # small limits (ulimit -f) read as KiB or bytes, not "0 MiB"
        return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n:.0f} bytes"
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
                 what: str = "output", option: str = "--out", nbytes: float = 0) -> Path:
    """Validate an output path before any work; returns it as a Path.

    `inputs` are (description, path) pairs the output must never replace, whatever `force`
    says (the measurement, the input volume, the --config file, the prior); an input's own
    data file (an .mhd's .zraw) counts as the input. Every file the writer produces for
    `path` (`planned_outputs`) is checked the same way. `nbytes`: about how much will be
    written (free space and the file-size limit).
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
    protected = [(desc + ("" if k == 0 else "'s data file"), f) for desc, src in inputs
                 if src is not None and str(src) for k, f in enumerate(input_files(src))]
    for out in planned_outputs(path):
        label = option if out == path else f"{option} {path} (its data file {out.name})"
        for desc, src in protected:
            if same_file(out, src):
                raise OutputError(f"{label}: {out} is the {desc}; napari-d3ip never writes over "
                                  f"its inputs (not even with --force): choose another {option}")
        if out.exists() and not out.is_file():
            raise OutputError(f"{label}: {out} exists and is not a regular file; choose "
                              f"another {option}")
    folder = existing_ancestor(path.parent)
    if not folder.is_dir():
        raise OutputError(f"{option} {path}: {folder} is a file, not a folder")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it or choose another "
                              f"{option}")
    for out in planned_outputs(path)[1:]:
        if out.exists() and not (force and owned_data_file(path, out)):
            raise FileExistsError(
                f"{out} exists: the data file {path.name} would write. "
                + ("It is not the data file of an existing " + path.name + ", so it is never "
                   "replaced, not even with --force: move it or " if force else
                   "Pass --force to overwrite both, or ") + f"choose another {option}")
    check_destination(path, nbytes, what=what, option=option)
    return path


# -- the files a name stands for -----------------------------------------------------------
DATA_FILE_KEYS = {".mhd": "elementdatafile", ".nhdr": "data file"}


def planned_outputs(path: str | Path) -> list[Path]:
    """Every file a volume writer produces for `path`: an .mhd header and its .zraw data file
    (SimpleITK writes compressed data as `<stem>.zraw`), else the file itself."""
    path = Path(path)
    if suffix_of(path) == ".mhd":
        return [path, path.with_suffix(".zraw")]
    return [path]


def owned_data_file(header: Path, data: Path) -> bool:
    """True when `header` exists and names `data` as its data file: replacing the header
    (--force) may replace that file too; any other file of that name is not ours."""
    return header.is_file() and any(same_file(data, f) for f in input_files(header)[1:])


def input_files(path: str | Path) -> list[Path]:
    """The files an input is read from: an .mhd/.nhdr header and the data file(s) it names
    (relative to the header), else the file itself. A header that cannot be read names only
    itself (its reader reports what is wrong)."""
    path = Path(path)
    key = DATA_FILE_KEYS.get(suffix_of(path))
    out = [path]
    if key is None or not path.is_file():
        return out
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(path, "rb") as f:
            head = f.read(64 << 10).decode("latin-1")
        for line in head.splitlines():
            name, sep, value = line.partition(":" if key == "data file" else "=")
            if sep and name.strip().lower() == key:
                value = value.strip()
                if value and value.upper() not in ("LOCAL", "LIST") and "%" not in value:
                    out += [path.parent / v for v in value.split()[:1]]
                break
    return out


# -- the destination's filesystem -----------------------------------------------------------
PSEUDO_FILESYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs",
                      "securityfs", "tracefs", "configfs", "fusectl", "pstore", "bpf", "mqueue",
                      "binfmt_misc", "efivarfs", "hugetlbfs", "autofs", "rpc_pipefs", "nsfs"}


def filesystem_type(folder: str | Path) -> str | None:
    """The type of the filesystem `folder` lies on (Linux /proc/mounts), None if unknown."""
    real = os.path.realpath(folder)
    best, kind = "", None
    with contextlib.suppress(OSError):
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    return kind


def name_max(folder: str | Path) -> int:
    """The longest file name (bytes) the filesystem of `folder` accepts (255 where unknown)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    return 255


def file_size_limit() -> float:
    """The process's file-size limit in bytes (`ulimit -f`), inf when unlimited."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and soft >= 0:
            return float(soft)
    return float("inf")


def check_destination(path: str | Path, nbytes: float = 0, *, what: str = "output",
                      option: str = "--out") -> None:
    """Everything the write of `path` (under its temporary name, then renamed) will need from
    its folder, refused before any compute with a message naming `path` (never the temporary).
    """
    path = Path(path)
    folder = existing_ancestor(path.parent)
    where = f"{option} {path}" if option else str(path)
    kind = filesystem_type(folder)
    if kind in PSEUDO_FILESYSTEMS or str(folder).startswith(("/proc/", "/sys/")) \
            or str(folder) in ("/proc", "/sys"):
        raise OutputError(f"{where}: {folder} is on a {kind or 'kernel'} pseudo-filesystem, not "
                          f"a disk; write the {what} to a real folder")
    limit = name_max(folder)
    for out in planned_outputs(path):
        longest = max(len(out.name.encode()), len(temp_name(out).name.encode()))
        if longest > limit:
            raise OutputError(f"{where}: the file name {out.name!r} is too long for the "
                              f"filesystem ({len(out.name.encode())} bytes; with the temporary "
                              f"name used while writing {longest} of at most {limit}); choose a "
                              "shorter name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: the folder {folder} is not writable; choose another "
                          "location")
    fsize = file_size_limit()
    if nbytes > fsize:
        raise ResourceError(f"{where}: the {what} needs about {fmt_bytes(nbytes)} but this "
                            f"process may write files of at most {fmt_bytes(fsize)} (ulimit -f); "
                            "raise the limit (ulimit -f unlimited) or write a smaller volume")
    if nbytes > 0:
        check_disk(folder, nbytes, where)


# -- atomic writes -------------------------------------------------------------------------
def temp_name(path: Path) -> Path:
    """A unique hidden name beside `path` with the same extension (writers pick the format
    from it)."""
    ext = suffix_of(path)
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    return path.with_name(f".{stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}")


@contextlib.contextmanager
def _file_size_errors() -> Iterator[None]:
    """While writing, a write past `ulimit -f` fails with EFBIG (an OSError the writer reports)
    instead of killing the process with SIGXFSZ (h5py's cleanup then crashed, exit 139)."""
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        old = signal.signal(sig, signal.SIG_IGN)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(sig, old)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path` in one rename.

    On any error (a full disk, a file-size limit, Ctrl-C) the temporary file is removed and
    `path` is untouched; an OSError of the write is raised as `OutputError` naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: its folder cannot be created ({e.strerror or e})") from None
    tmp = temp_name(path)
    try:
        with _file_size_errors():
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
            except WriteError:  # a nested writer's own error already names its file
                raise
            except OSError as e:
                raise write_error(path, e) from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def write_error(path: Path, e: BaseException) -> WriteError:
    """An OSError (or a library's error wrapping one) of a write, told about `path`."""
    import errno

    text = getattr(e, "strerror", None) or str(e)
    code = getattr(e, "errno", None)
    hint = {errno.ENOSPC: "free some space or write elsewhere",
            errno.EFBIG: "the file-size limit (ulimit -f) was reached; raise it",
            errno.EACCES: "choose a writable folder", errno.EROFS: "choose a writable folder"}
    msg = str(text).replace(str(temp_name(path).parent), str(path.parent)) if text else repr(e)
    if ".tmp-" in msg:
        msg = msg.split(": ", 1)[-1]
    return WriteError(f"{path}: the write failed ({msg}); nothing was replaced"
                       + (f"; {hint[code]}" if code in hint else ""))


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
