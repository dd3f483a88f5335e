"""``hdmap publish``: publish a finished build as the next version of a map store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows.cli import add_publish_arguments, add_store_argument

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap publish out/build-v1 --store sqlite:///maps.db
  hdmap publish out/build-v2 --store postgresql://postgres@127.0.0.1:5432/hdmap --json

The build is compared with the latest published version: unchanged features keep their published
records, so only tiles holding a change get new content; publishing the same map again creates no
version. The new version number is printed on stdout (with --json, a summary document).
--confidentiality takes 'identity' (default) or 'package.module:attribute', a coordinate
processing step applied to the published tiles.
exit status: 0 published (or nothing to publish), 3 bad build folder or store."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``publish`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "publish",
        help="publish a build folder as a new map version (only changed tiles get new content)",
        description="Cut a build's map into NDS.Live tiles and publish them as one atomic version.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "build", metavar="BUILD_DIR", type=Path, help="a folder `hdmap build` wrote"
    )
    add_store_argument(parser)
    add_publish_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the version")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tiles.publish import load_confidentiality, publish_build
    from tiles.store import open_store

    step = load_confidentiality(args.confidentiality)
    with open_store(args.store) as store:
        result = publish_build(args.build, store, level=args.level, confidentiality=step)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    elif args.quiet:
        print(result.version)
    else:
        if result.unchanged:
            print(f"no change against version {result.version}: nothing published")
        else:
            summary = result.summary()
            changes = ", ".join(f"{n} {kind}" for kind, n in sorted(summary["changes"].items()))
            print(
                f"published version {result.version}"
                + (f" (after {result.previous})" if result.previous else "")
                + f": {len(result.changed_tiles)} tiles changed, {result.new_blobs} new blobs"
                + (f"; changes: {changes}" if changes else "")
            )
    return 0
