"""``hdmap diff``: the changes between two maps (tiles/changes.py), as a table and GeoJSON.

Maps are read by file name (:data:`formats.READERS`), so any two maps the project reads can be
compared: GeoPackage, OpenDRIVE, local standard.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap diff build/urban/features.gpkg build/urban_changed/features.gpkg -o changes.geojson
  hdmap diff old.xsmap.xml new.xodr --json > changes.json

OLD and NEW may be GeoPackages (.gpkg), OpenDRIVE files (.xodr) or local-standard files
(.xsmap.xml), in one CRS. Features are matched by geometry, not by ID: points one to one within a
match distance, lines by shared length (a line split differently counts once), polygons by
centroid and overlap. Change types: inserted, deleted, geometry_changed, marking_changed,
type_changed, connectivity_changed.
-o writes one GeoJSON Point (WGS84) per change with its change, layer, feature_id, old_id,
new_id and details. --json prints the records as JSON instead of the table.
exit status 3 (one line on stderr) when a map is missing, unreadable, or the CRSs differ."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``diff`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "diff",
        help="find the changes between two maps (inserted, deleted, moved, repainted...)",
        description="Compare OLD with NEW feature by feature and list every change.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("old", metavar="OLD", type=Path, help="the earlier map")
    parser.add_argument("new", metavar="NEW", type=Path, help="the later map")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="GEOJSON", help="write the changes as GeoJSON here"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the change records as JSON, not a table"
    )
    parser.set_defaults(run=run)
    return parser


def _read(path: Path) -> Any:
    from formats import read_map
    from pipeline.errors import HDMapIOError

    if not path.exists():
        raise HDMapIOError("no such file", path=path)
    if not path.is_file():
        raise HDMapIOError("not a file", path=path)
    return read_map(path)


def change_table(records: Any) -> str:
    """Records per layer (rows) and change type (columns), with totals."""
    from pipeline.model import LAYERS
    from tiles.changes import CHANGE_TYPES

    counts: dict[tuple[str, str], int] = {}
    for r in records:
        counts[(r.layer, r.change)] = counts.get((r.layer, r.change), 0) + 1
    layers = [name for name in LAYERS if any((name, c) in counts for c in CHANGE_TYPES)]
    head = ["layer", *(c.removesuffix("_changed") for c in CHANGE_TYPES), "total"]
    rows = []
    for name in layers:
        row = [counts.get((name, c), 0) for c in CHANGE_TYPES]
        rows.append([name, *map(str, row), str(sum(row))])
    totals = [str(sum(counts.get((name, c), 0) for name in layers)) for c in CHANGE_TYPES]
    rows.append(["total", *totals, str(sum(counts.values()))])
    widths = [max(len(row[k]) for row in [head, *rows]) for k in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


def run(args: argparse.Namespace) -> int:
    """Read both maps, compare them, print the summary, write the GeoJSON; return 0."""
    import json

    from pipeline.errors import CRSError
    from qa.score import same_crs
    from tiles.changes import compare_maps, write_changes_geojson

    old, new = _read(args.old), _read(args.new)
    if not same_crs(old.crs, new.crs):
        raise CRSError(
            f"is in {_crs_name(new.crs)} but {args.old} is in {_crs_name(old.crs)}; "
            "reproject one map first",
            path=args.new,
        )
    comparison = compare_maps(old, new)
    records = comparison.records
    if args.output:
        write_changes_geojson(records, old.crs, args.output)
    if args.json:
        doc = {
            "old": str(args.old),
            "new": str(args.new),
            "crs": old.crs,
            "count": len(records),
            "records": [r.to_dict() for r in records],
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    n_old, n_new = sum(old.counts().values()), sum(new.counts().values())
    print(f"old: {args.old} ({n_old} features)\nnew: {args.new} ({n_new} features)\n")
    print(change_table(records))
    print(f"\n{len(records)} changes, {len(comparison.matches)} features matched")
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _crs_name(crs: str) -> str:
    import pyproj

    try:
        c = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        return crs[:60]
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name
