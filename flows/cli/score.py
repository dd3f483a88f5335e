"""``hdmap score``: score a predicted map against a truth map, layer by layer (qa/score.py).

Maps are read by file name (:data:`READERS`: suffix -> "module:function"); one more format is one
more line there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["LAYERS", "READERS", "add_parser", "read_map", "run"]

from formats import READERS, read_map

#: qa.score.SCORED_LAYERS, repeated here so that 'hdmap --help' loads no numeric library
LAYERS = (
    "lane_boundaries", "road_edges", "stop_lines", "lanes", "poles", "signs", "road_arrows",
    "crosswalks",
)  # fmt: skip

EPILOG = """\
examples:
  hdmap score --truth data_samples/scenes/urban/truth.gpkg --pred out/urban/features.gpkg
  hdmap score --truth truth.gpkg --pred features.gpkg --json score.json --layers poles signs
  hdmap score --truth log_map_archive_LOG____PIT_city_1.json --pred out/av2/features.gpkg \
      --region "POLYGON ((1450 180, 1550 180, 1550 280, 1450 280, 1450 180))"

Maps: GeoPackage (.gpkg), local standard (.xsmap.xml), Argoverse 2 log map (.json, in the
'--crs local' frame).

Linear layers: length-based completeness (C), correctness (K) and F1 within 0.10 and 0.20 m,
RMS offset of matched vertices, marking kind and colour accuracy on matched length.
Points: one-to-one matching within 0.5 m (arrows: centroids within 1.0 m). Crosswalks: IoU.
'-' marks a value that is undefined (an empty layer).
exit status 3 (one line on stderr) when a map is missing, unreadable, or the CRSs differ."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``score`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "score",
        help="score a predicted map against a truth map (F1, RMS offset, matching, IoU)",
        description="Score PRED against TRUTH layer by layer and print the tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--truth", required=True, type=Path, metavar="TRUTH", help="truth map")
    parser.add_argument("--pred", required=True, type=Path, metavar="PRED", help="predicted map")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the report as JSON")
    parser.add_argument(
        "--layers",
        nargs="+",
        choices=LAYERS,
        metavar="LAYER",
        help=f"score only these layers (default all: {', '.join(LAYERS)})",
    )
    parser.add_argument(
        "--region",
        metavar="WKT",
        help="score only inside this 2D polygon (WKT text, or a file holding it) in the maps' CRS",
    )
    parser.set_defaults(run=run)
    return parser


def _region(text: str) -> Any:
    """A 2D polygon from WKT text or from a file holding WKT."""
    import shapely
    from shapely.errors import ShapelyError

    from pipeline.errors import FormatError

    source = Path(text)
    if not text.lstrip().upper().startswith(("POLYGON", "MULTIPOLYGON")) and source.is_file():
        text = source.read_text(encoding="utf-8")
    try:
        region = shapely.from_wkt(text.strip())
    except (ShapelyError, ValueError):
        raise FormatError(
            "--region is not WKT", path=source if source.is_file() else None
        ) from None
    if region.geom_type not in ("Polygon", "MultiPolygon") or region.is_empty:
        raise FormatError(f"--region must be a non-empty polygon, got {region.geom_type}")
    return shapely.force_2d(region)


def run(args: argparse.Namespace) -> int:
    """Read both maps, score them, print the tables, write the JSON; return the exit status."""
    from qa.score import format_table, score_maps, write_json_report

    truth = read_map(args.truth)
    pred = read_map(args.pred)
    region = _region(args.region) if args.region else None
    report = score_maps(truth, pred, layers=args.layers, region=region)
    print(f"truth: {args.truth}\npred:  {args.pred}\n")
    print(format_table(report))
    if args.json:
        write_json_report(report, args.json)
        print(f"\nwrote {args.json}")
    return 0
