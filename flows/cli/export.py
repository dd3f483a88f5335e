"""``hdmap export``: convert any map the project can read into an exchange format.

Readers are chosen by file name (:data:`READERS`: suffix -> "module:function"); writers by
``--format`` (:data:`WRITERS`). One more format is one more line in either table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["READERS", "WRITERS", "add_parser", "read_map", "run"]

from formats import READERS, WRITERS, load, read_map

EPILOG = """\
examples:
  hdmap export --format opendrive truth.gpkg -o map.xodr
  hdmap export --format opendrive --version 1.8 map.gpkg -o map18.xodr
  hdmap export --format opendrive other_vendor.xodr -o rewritten.xodr
  hdmap export --format localstd features.gpkg -o map.xsmap.xml

MAP may be a GeoPackage (.gpkg), an OpenDRIVE file (.xodr) or a local-standard file (.xsmap.xml).
What the output format cannot hold is listed as warnings on stderr.
Exit status 3 (one line on stderr) when MAP is missing, unreadable or malformed."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``export`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "export",
        help="convert a map (GeoPackage, OpenDRIVE, local standard) to an exchange format",
        description="Read a map and write it in an exchange format (OpenDRIVE 1.7 or 1.8).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("map", metavar="MAP", type=Path, help="map file to convert")
    parser.add_argument("--format", required=True, choices=sorted(WRITERS), help="output format")
    parser.add_argument(
        "--version",
        dest="format_version",
        default="1.7",
        choices=("1.7", "1.8"),
        help="OpenDRIVE version to write (default 1.7; other formats have one version)",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="output file"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import sys

    from pipeline.errors import HDMapIOError

    if not args.map.exists():
        raise HDMapIOError("no such file", path=args.map)
    model = read_map(args.map)
    writer = load(WRITERS[args.format])
    options = {"version": args.format_version} if args.format == "opendrive" else {}
    warnings = writer(model, args.output, **options) or []
    for line in warnings:
        print(f"hdmap export: warning: {line}", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in model.counts().items() if v)
    what = f"{args.format} {args.format_version}" if options else args.format
    print(f"wrote {args.output} ({what}) from {args.map}: {counts or 'empty map'}")
    return 0
