"""``hdmap changes``: the change records published between two versions of a store, as GeoJSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli import add_store_argument

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap changes --store sqlite:///maps.db --from 1 --to 2 -o changes.geojson
  hdmap changes --store sqlite:///maps.db --from 1            up to the latest version

One GeoJSON Point (WGS84) per change record, at the changed feature, with properties change,
layer, feature_id and details. A table of records per layer and change type goes to stdout.
exit status: 0 done, 3 unknown version or unreadable store."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``changes`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "changes",
        help="write the change records between two published versions as GeoJSON",
        description="The feature-level change records published after version FROM up to TO.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_argument(parser)
    parser.add_argument("--from", dest="from_version", type=int, required=True, metavar="V1")
    parser.add_argument("--to", dest="to_version", type=int, default=None, metavar="V2")
    parser.add_argument("-o", "--out", type=Path, metavar="GEOJSON", help="output file")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from flows.cli.diff import change_table
    from pipeline.errors import TileError
    from tiles.changes import ChangeRecord, write_changes_geojson
    from tiles.store import open_store

    with open_store(args.store) as store:
        to_version = args.to_version or store.latest_version() or 0
        if not 0 <= args.from_version <= to_version:
            raise TileError(f"--from {args.from_version} must be between 0 and --to {to_version}")
        info = store.version_info(to_version)
        if args.from_version:
            store.version_info(args.from_version)  # NotFoundError when absent
        records = [
            ChangeRecord.from_dict(r)
            for v in range(args.from_version + 1, to_version + 1)
            for r in store.changes(v)
        ]
    print(change_table(records))
    print(f"{len(records)} change records from version {args.from_version} to {to_version}")
    if args.out:
        write_changes_geojson(records, info.metadata.get("crs", ""), args.out)
        print(f"wrote {args.out}")
    return 0
