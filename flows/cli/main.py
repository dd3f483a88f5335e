"""``hdmap``: the command-line entry point.

Each subcommand lives in its own module under ``flows/cli/`` and exposes ``add_parser(subparsers)``
and ``run(args) -> int``. Command modules import only argparse at module level and load the heavy
libraries inside ``run``, so ``hdmap --help`` stays fast.

Exit status:
  0  success
  1  internal error (a bug: the traceback is printed)
  2  bad command-line usage
  3  bad input: a file is missing, unreadable or malformed, or an output path cannot be
     written (one line on stderr names it)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pipeline.errors import HDMapError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3

# command name -> module under flows.cli, in the order --help lists them
COMMANDS: dict[str, str] = {
    "info": "flows.cli.info",
    "simulate": "flows.cli.simulate",
    "preview": "flows.cli.preview",
    "demo": "flows.cli.demo",
    "export": "flows.cli.export",
    "validate": "flows.cli.validate",
    "build": "flows.cli.build",
    "update": "flows.cli.update",
    "score": "flows.cli.score",
    "diff": "flows.cli.diff",
    "publish": "flows.cli.publish",
    "changes": "flows.cli.changes",
    "serve": "flows.cli.serve",
    "keys": "flows.cli.keys",
    "sync": "flows.cli.sync",
}

EPILOG = """\
exit status: 0 success, 1 internal error, 2 bad usage, 3 bad input file.
Run 'hdmap COMMAND --help' for a command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hdmap",
        description="HD-map production toolchain for urban road surveys.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xishan-hdmap")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except HDMapError as exc:
        print(f"hdmap {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. 'hdmap info ... | head'
        sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        if exc.filename is None:  # not about a path the user gave: a bug, keep the traceback
            raise
        print(
            f"hdmap {args.command}: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"hdmap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
