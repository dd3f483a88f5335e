"""``hdmap sync``: keep a local copy of a map service's latest version (tiles.client)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap sync --service http://127.0.0.1:8765 --key xsk_... --dir maps/latest
  HDMAP_KEY=xsk_... hdmap sync --service https://maps.example.org --dir maps/latest --json

Downloads the latest version's manifest and only the tiles whose local copy is missing or differs
(SHA-256 checked), into DIR/tiles/<tile_id>.xsmap.xml.gz; DIR/manifest.json is written last.
An interrupted sync resumes: run it again. The key may come from $HDMAP_KEY instead of --key.
Exit status 3 (one line on stderr) when the service refuses the key (401/403), cannot be
reached, or sends a tile that does not match its hash."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sync`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "sync",
        help="download the latest map version from a map service (only changed tiles)",
        description="Bring a local folder to the latest version published by a map service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service", required=True, metavar="URL", help="service base URL")
    parser.add_argument("--key", metavar="KEY", help="access key (default: $HDMAP_KEY)")
    parser.add_argument("--dir", required=True, type=Path, metavar="DIR", help="local copy")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per request")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from tiles.client import sync

    key = args.key or os.environ.get("HDMAP_KEY")
    if not key:
        print("hdmap sync: error: give --key KEY or set $HDMAP_KEY", file=sys.stderr)
        return 2
    result = sync(args.service, key, args.dir, timeout_s=args.timeout)
    if args.json:
        import dataclasses
        import json

        print(json.dumps(dataclasses.asdict(result)))
    else:
        print(f"synced {args.dir} to {result.summary()}")
    return 0
