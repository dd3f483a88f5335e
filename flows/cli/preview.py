"""``hdmap preview``: a top-down intensity image of one or more surveys, optionally with map
features from a GeoPackage drawn on top.

The points are streamed file by file in chunks; only the image raster is held in memory. The
image covers the union of the files' header bounds (or ``--bounds``); its pixel size is chosen
so that the long side is at most 4000 px, cells hold a few points on average and are no finer
than 5 cm, unless ``--pixel-m`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Render a top-down image of one or more surveys: mean intensity per pixel (point count when the
files have no intensity), 2-98 % stretched to grey, pixels without points in dark blue; map
features from a GeoPackage drawn on top, with a legend, the CRS and a scale bar. Points are
streamed in chunks, so memory is bounded by the image size."""

EPILOG = """\
examples:
  hdmap preview survey.laz -o preview.png
  hdmap preview surveys/ -o preview.png --overlay out/build/features.gpkg
  hdmap preview tile.laz --crs EPSG:28992 --pixel-m 0.1 -o preview.png
  hdmap preview run1.laz run2.laz --bounds 534000,3495900,534200,3496100 -o preview.png
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preview",
        help="render a top-down intensity image of surveys, with map features on top",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "surveys", nargs="+", metavar="SURVEY", help="LAS/LAZ files, or folders of them"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument(
        "--overlay",
        type=Path,
        metavar="FEATURES.gpkg",
        help="GeoPackage of map features (in the survey CRS) to draw on top",
    )
    parser.add_argument(
        "--crs", help="CRS of the survey, overriding the files' (e.g. EPSG:4549, or 'local')"
    )
    parser.add_argument(
        "--pixel-m",
        type=_positive_float,
        metavar="M",
        help="cell size in metres (default: chosen from the extent and point density)",
    )
    parser.add_argument(
        "--bounds",
        type=_bounds,
        metavar="MINX,MINY,MAXX,MAXY",
        help="area to render in survey CRS metres (default: the files' header bounds)",
    )
    parser.add_argument("--title", help="title printed on the image (default: the file names)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import pyproj

    from formats.gpkg import read_gpkg
    from pipeline.crs import crs_label
    from pipeline.errors import CRSError
    from pipeline.survey import iter_chunks, read_info, survey_files
    from qa.preview import PreviewGrid, render_preview

    files = survey_files(args.surveys)
    infos = [read_info(path, crs=args.crs) for path in files]
    crs = infos[0].crs
    for info in infos[1:]:
        if not info.crs.equals(crs, ignore_axis_order=True):
            raise CRSError(
                f"CRS {crs_label(info.crs)} differs from {crs_label(crs)} of {files[0]}",
                path=info.path,
            )
    overlay = None
    if args.overlay is not None:
        overlay = read_gpkg(args.overlay)
        if not pyproj.CRS.from_user_input(overlay.crs).equals(crs, ignore_axis_order=True):
            raise CRSError(
                f"overlay CRS {crs_label(pyproj.CRS.from_user_input(overlay.crs))} differs from "
                f"the survey's {crs_label(crs)}",
                path=args.overlay,
            )

    bounds = args.bounds or _union_bounds([info.bounds for info in infos])
    point_count = sum(info.point_count for info in infos)
    try:
        PreviewGrid.from_bounds(bounds, args.pixel_m)
    except ValueError as exc:
        print(f"hdmap preview: error: {exc}", file=sys.stderr)
        return 2
    title = args.title if args.title is not None else _default_title(files, args.overlay)
    chunks = (
        (chunk.xyz, chunk.intensity) for path in files for chunk in iter_chunks(path, args.crs)
    )
    result = render_preview(
        chunks,
        bounds,
        args.out,
        pixel_m=args.pixel_m,
        overlay=overlay,
        title=title,
        crs_label=crs_label(crs),
    )
    print(
        f"wrote {result.path}: {result.width_px} x {result.height_px} px, {result.pixel_m:g} m "
        f"cells, {result.points:,} of {point_count:,} points ({result.shading})"
    )
    return 0


def _union_bounds(bounds: list[tuple[float, ...]]) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of 3D header bounds, widened to at least 1 m each way."""
    minx, miny = min(b[0] for b in bounds), min(b[1] for b in bounds)
    maxx, maxy = max(b[3] for b in bounds), max(b[4] for b in bounds)
    if maxx - minx < 1.0:
        minx, maxx = (minx + maxx) / 2 - 0.5, (minx + maxx) / 2 + 0.5
    if maxy - miny < 1.0:
        miny, maxy = (miny + maxy) / 2 - 0.5, (miny + maxy) / 2 + 0.5
    return (minx, miny, maxx, maxy)


def _default_title(files: list[Path], overlay: Path | None) -> str:
    title = files[0].name + (f" and {len(files) - 1} more" if len(files) > 1 else "")
    return title + (f" with {overlay.name}" if overlay is not None else "")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of metres")
    return value


def _bounds(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not MINX,MINY,MAXX,MAXY with MINX < MAXX and MINY < MAXY"
        )
    return values  # type: ignore[return-value]
