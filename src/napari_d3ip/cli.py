"""The `d3ip` command: one entry point over the same library the napari widgets use."""

from __future__ import annotations

import argparse
import sys

from . import __version__


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"d3ip {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"d3ip {args.command}: error: out of memory; use a smaller volume, fewer views or "
              "slices, a smaller --batch-slices, or a machine with more memory", file=sys.stderr)
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
