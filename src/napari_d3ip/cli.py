"""The `d3ip` command: one entry point over the same library the napari widgets use."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import D3IPError


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from .commands import COMMANDS
    from .commands._common import HelpFormatter

    parser = argparse.ArgumentParser(prog="d3ip", description=__doc__, formatter_class=HelpFormatter,
                                     epilog="`d3ip <command> --help` describes each command's options "
                                     "and their defaults.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def _distributed(args, argv: list[str]) -> tuple[int | None, bool]:
    """(exit code of a `--distributed N` launch or None, whether this is a torchrun rank).

    Under torchrun (WORLD_SIZE > 1) the process group is initialised here, so every command
    runs unchanged on every rank: `reconstruct` splits the slices, only rank 0 writes and
    talks (the other ranks are quiet)."""
    if not getattr(args, "distributed", 0) and os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return None, False
    from .distributed import init_from_env, maybe_launch

    code = maybe_launch(args, argv)
    if code is not None:
        return code, False
    if not init_from_env():
        return None, False
    import torch.distributed as dist

    if dist.get_rank() != 0:
        if hasattr(args, "quiet"):
            args.quiet = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    return None, True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    launched, ranked = _distributed(args, argv)
    if launched is not None:
        return launched
    try:
        return _run(args)
    finally:
        if ranked:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except (D3IPError, FileExistsError, FileNotFoundError) as e:  # anything else: a traceback
        print(f"d3ip {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        inputs = [f"{opt} {getattr(args, name)}" for opt, name in (
            ("--measurement", "measurement"), ("--volume", "volume"), ("--sample", "sample"))
            if getattr(args, name, None)]
        what = f" while working on {', '.join(inputs)}" if inputs else ""
        print(f"d3ip {args.command}: error: out of memory{what}; use a smaller volume, fewer "
              "views or slices, a smaller --batch-slices, or a machine with more memory",
              file=sys.stderr)
        return 2
    except OSError as e:  # permissions, a full disk, a vanished file: say which file and why
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"d3ip {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"d3ip {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
