"""``hdmap info``: describe survey files (and an optional trajectory and orthophoto) and check them.

Every survey file is read in full (chunked, bounded memory), so a file that ``info`` accepts is one
the build can read: the same checks run (CRS present and projected, point count matches the data,
no NaN coordinates, LAZ not truncated).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pyproj

from pipeline.crs import crs_label
from pipeline.ortho import OrthoInfo, read_ortho_info
from pipeline.survey import SurveyInfo, SurveyStats, read_info, scan_survey, survey_files
from pipeline.trajectory import ATTITUDE_COLUMNS, Trajectory, read_trajectory

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap info survey/                              every .las/.laz in the folder
  hdmap info tile.laz --crs EPSG:28992            the file has no CRS record: name it
  hdmap info sweep.laz --crs local                a local metric frame (no EPSG code)
  hdmap info run1.laz --trajectory run1.csv --ortho ortho.tif --json

The CRS comes from the file (WKT record, else GeoTIFF keys) unless --crs is given, which wins.
Coordinates in feet are converted to metres. Density is points per square metre of ground
actually covered (occupied --cell-m grid cells), not of the bounding box.
Exit status 3 (one line on stderr) when a file is missing, unreadable or inconsistent."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``info`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "info",
        help="describe and check survey files (LAS/LAZ), a trajectory and an orthophoto",
        description="Read survey files in full and print what they hold: point count, format,\n"
        "CRS, bounds in metres, attributes and point density.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("surveys", nargs="+", metavar="SURVEY", help="LAS/LAZ file or folder")
    parser.add_argument(
        "--crs",
        help="CRS of the survey (e.g. EPSG:4549, or 'local'); overrides the file's CRS",
    )
    parser.add_argument("--trajectory", metavar="CSV", help="trajectory CSV to check")
    parser.add_argument("--ortho", metavar="TIF", help="orthophoto GeoTIFF to check")
    parser.add_argument(
        "--cell-m",
        type=_positive_float,
        default=1.0,
        help="grid cell size in metres for the density estimate (default 1.0)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Check every input (headers first, so a bad file fails fast), then scan the surveys."""
    paths = survey_files(args.surveys)
    infos = [read_info(path, args.crs) for path in paths]
    trajectory = read_trajectory(args.trajectory) if args.trajectory else None
    ortho = read_ortho_info(args.ortho) if args.ortho else None
    stats = [scan_survey(info.path, args.crs, cell_m=args.cell_m) for info in infos]

    if args.json:
        document = {
            "surveys": [_survey_json(i, s) for i, s in zip(infos, stats, strict=True)],
            "trajectory": _trajectory_json(trajectory, args.trajectory, stats),
            "ortho": _ortho_json(ortho, infos),
        }
        print(json.dumps(document, indent=2))
        return 0

    for info, stat in zip(infos, stats, strict=True):
        print("\n".join(_survey_lines(info, stat)))
        print()
    if trajectory is not None:
        print("\n".join(_trajectory_lines(trajectory, args.trajectory, stats)))
        print()
    if ortho is not None:
        print("\n".join(_ortho_lines(ortho, infos)))
        print()
    if len(infos) > 1:
        total = sum(s.points for s in stats)
        print(f"{len(infos)} files, {total:,} points")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of metres, not {text}")
    return value


# ---- text -----------------------------------------------------------------------------------


def _survey_lines(info: SurveyInfo, stats: SurveyStats) -> list[str]:
    kind = "LAZ (compressed)" if info.compressed else "LAS (uncompressed)"
    source = {"wkt": "WKT record", "geotiff": "GeoTIFF keys", "option": "--crs"}[info.crs_source]
    b = stats.bounds
    lines = [
        str(info.path),
        f"  points      {stats.points:,}  (LAS {info.las_version}, point format"
        f" {info.point_format}, {kind})",
        f"  CRS         {crs_label(info.crs)}  [from {source}]",
    ]
    if info.crs_source == "option" and info.file_crs is not None:
        lines.append(
            f"  note        --crs overrides the file's own CRS, {crs_label(info.file_crs)}"
        )
    lines += [
        f"  units       {_units_text(info)}",
        f"  bounds (m)  x {b[0]:.3f} .. {b[3]:.3f}   y {b[1]:.3f} .. {b[4]:.3f}"
        f"   z {b[2]:.3f} .. {b[5]:.3f}",
        f"  extent      {b[3] - b[0]:.1f} m x {b[4] - b[1]:.1f} m, {b[5] - b[2]:.1f} m high",
    ]
    if _header_bounds_differ(info, stats):
        h = info.bounds
        lines.append(
            f"  note        header bounds differ from the points: x {h[0]:.3f} .. {h[3]:.3f}"
            f"   y {h[1]:.3f} .. {h[4]:.3f}   z {h[2]:.3f} .. {h[5]:.3f}"
        )
    lines.append(f"  attributes  {', '.join(_attributes(info))}")
    lines.append(
        f"  density     {stats.density_per_m2:.1f} points/m2 over {stats.occupied_area_m2:,.0f} m2"
        f" covered ({stats.cell_m:g} m cells)"
    )
    if stats.intensity_max is not None:
        if stats.intensity_max == 0:
            lines.append("  intensity   present but all zero")
        else:
            lines.append(
                f"  intensity   min {stats.intensity_min}, median {stats.intensity_median},"
                f" p99 {stats.intensity_p99}, max {stats.intensity_max}"
            )
    if stats.gps_time_range is not None:
        t0, t1 = stats.gps_time_range
        if t0 == t1 == 0:
            lines.append("  GPS time    present but all zero")
        else:
            lines.append(f"  GPS time    {t0:.3f} .. {t1:.3f} s ({t1 - t0:.1f} s)")
    return lines


def _trajectory_lines(traj: Trajectory, path: str, stats: list[SurveyStats]) -> list[str]:
    attitude = [c.removesuffix("_deg") for c in ATTITUDE_COLUMNS if getattr(traj, c) is not None]
    lines = [
        f"trajectory {path}",
        f"  poses       {len(traj):,} over {traj.duration_s:.1f} s, {traj.length_m:.1f} m"
        f" ({_rate_text(traj)})",
        f"  GPS time    {traj.gps_time[0]:.3f} .. {traj.gps_time[-1]:.3f} s",
        f"  attitude    {', '.join(attitude) if attitude else 'none (position only)'}",
    ]
    overlap = _time_overlap(traj, stats)
    if overlap is not None:
        lines.append(f"  covers      {overlap:.0%} of the survey points' GPS time span")
    return lines


def _ortho_lines(ortho: OrthoInfo, infos: list[SurveyInfo]) -> list[str]:
    px, py = ortho.pixel_size
    unit = ortho.crs.axis_info[0].unit_name if ortho.crs.axis_info else "units"
    b = ortho.bounds
    extras = []
    if ortho.has_alpha:
        extras.append("alpha band")
    if ortho.nodata is not None:
        extras.append(f"nodata {ortho.nodata:g}")
    lines = [
        f"ortho {ortho.path}",
        f"  image       {ortho.width} x {ortho.height} px, {ortho.bands} band(s) {ortho.dtype}"
        + (f" ({', '.join(extras)})" if extras else ""),
        f"  CRS         {crs_label(ortho.crs)}",
        f"  pixel       {px:.6g} x {py:.6g} {unit}",
        f"  bounds      x {b[0]:.6f} .. {b[2]:.6f}   y {b[1]:.6f} .. {b[3]:.6f}",
    ]
    coverage = _ortho_coverage(ortho, infos)
    lines.append(
        "  covers      "
        + (
            "unknown (survey CRS is a local frame)"
            if coverage is None
            else f"{coverage:.0%} of the surveys' bounding box"
        )
    )
    return lines


def _units_text(info: SurveyInfo) -> str:
    if info.xy_factor == 1.0 and info.z_factor == 1.0:
        return "metres"
    return (
        f"converted to metres (x, y x {info.xy_factor:.12g}; z x {info.z_factor:.12g}"
        " metres per file unit)"
    )


def _attributes(info: SurveyInfo) -> list[str]:
    names = [d for d in info.dimensions if d not in ("X", "Y", "Z")]
    if {"red", "green", "blue"} <= set(names):
        names = [n for n in names if n not in ("green", "blue")]
        names[names.index("red")] = "rgb"
    return names


def _header_bounds_differ(info: SurveyInfo, stats: SurveyStats, tolerance_m: float = 0.02) -> bool:
    return any(abs(a - b) > tolerance_m for a, b in zip(info.bounds, stats.bounds, strict=True))


def _rate_text(traj: Trajectory) -> str:
    if len(traj) < 2 or traj.duration_s <= 0:
        return "single pose"
    return f"{(len(traj) - 1) / traj.duration_s:.1f} Hz"


def _time_overlap(traj: Trajectory, stats: list[SurveyStats]) -> float | None:
    """Share of the survey points' GPS time span inside the trajectory's span (None if unknown)."""
    ranges = [s.gps_time_range for s in stats if s.gps_time_range and s.gps_time_range[1] > 0]
    if not ranges:
        return None
    t0 = min(r[0] for r in ranges)
    t1 = max(r[1] for r in ranges)
    if t1 <= t0:
        return 1.0 if traj.gps_time[0] <= t0 <= traj.gps_time[-1] else 0.0
    inside = min(t1, traj.gps_time[-1]) - max(t0, traj.gps_time[0])
    return max(0.0, inside) / (t1 - t0)


def _ortho_coverage(ortho: OrthoInfo, infos: list[SurveyInfo]) -> float | None:
    """Share of the surveys' bounding boxes the ortho covers (None if not comparable)."""
    if any(_is_local(i.crs) for i in infos) or _is_local(ortho.crs):
        return None
    ob = ortho.bounds
    covered = total = 0.0
    for info in infos:
        transformer = pyproj.Transformer.from_crs(info.crs, ortho.crs, always_xy=True)
        b = info.bounds
        minx, miny, maxx, maxy = transformer.transform_bounds(b[0], b[1], b[3], b[4])
        area = max(maxx - minx, 0) * max(maxy - miny, 0)
        inter = max(min(maxx, ob[2]) - max(minx, ob[0]), 0) * max(
            min(maxy, ob[3]) - max(miny, ob[1]), 0
        )
        covered += inter
        total += area
    return covered / total if total > 0 else 0.0


def _is_local(crs: pyproj.CRS) -> bool:
    return crs.is_engineering or (
        crs.is_compound and any(s.is_engineering for s in crs.sub_crs_list)
    )


# ---- JSON -----------------------------------------------------------------------------------


def _survey_json(info: SurveyInfo, stats: SurveyStats) -> dict[str, Any]:
    return {
        "path": str(info.path),
        "las_version": info.las_version,
        "point_format": info.point_format,
        "point_count": info.point_count,
        "points_read": stats.points,
        "compressed": info.compressed,
        "crs": {
            "label": crs_label(info.crs),
            "source": info.crs_source,
            "file_crs": None if info.file_crs is None else crs_label(info.file_crs),
            "wkt": info.crs.to_wkt(),
            "xy_factor": info.xy_factor,
            "z_factor": info.z_factor,
        },
        "bounds_m": _bounds_json(stats.bounds),
        "header_bounds_m": _bounds_json(info.bounds),
        "dimensions": list(info.dimensions),
        "density": {
            "points_per_m2": stats.density_per_m2,
            "occupied_area_m2": stats.occupied_area_m2,
            "cell_m": stats.cell_m,
        },
        "intensity": None
        if stats.intensity_max is None
        else {
            "min": stats.intensity_min,
            "median": stats.intensity_median,
            "p99": stats.intensity_p99,
            "max": stats.intensity_max,
        },
        "gps_time_range": list(stats.gps_time_range) if stats.gps_time_range else None,
    }


def _trajectory_json(
    traj: Trajectory | None, path: str | None, stats: list[SurveyStats]
) -> dict[str, Any] | None:
    if traj is None:
        return None
    return {
        "path": str(Path(path)) if path else None,
        "poses": len(traj),
        "duration_s": traj.duration_s,
        "length_m": traj.length_m,
        "gps_time_range": [float(traj.gps_time[0]), float(traj.gps_time[-1])],
        "attitude": [c for c in ATTITUDE_COLUMNS if getattr(traj, c) is not None],
        "survey_time_coverage": _time_overlap(traj, stats),
    }


def _ortho_json(ortho: OrthoInfo | None, infos: list[SurveyInfo]) -> dict[str, Any] | None:
    if ortho is None:
        return None
    return {
        "path": str(ortho.path),
        "width": ortho.width,
        "height": ortho.height,
        "bands": ortho.bands,
        "dtype": ortho.dtype,
        "crs": crs_label(ortho.crs),
        "pixel_size": list(ortho.pixel_size),
        "bounds": list(ortho.bounds),
        "has_alpha": ortho.has_alpha,
        "nodata": None if ortho.nodata is None or math.isnan(ortho.nodata) else ortho.nodata,
        "survey_coverage": _ortho_coverage(ortho, infos),
    }


def _bounds_json(b: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(("minx", "miny", "minz", "maxx", "maxy", "maxz"), b, strict=True))
