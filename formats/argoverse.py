"""Argoverse 2 per-log vector maps (``log_map_archive_*.json``) in the layer contract.

An Argoverse 2 map is in the city's metric frame (x east, y north, z up, metres; no EPSG code), so
the model's CRS is :data:`pipeline.crs.LOCAL_CRS_WKT`, the frame ``--crs local`` gives a survey:
a map read here and a build from the city-frame sweeps can be scored against each other.

What is converted:

- ``lane_segments`` -> ``lanes``: the centreline halfway between the left and right boundaries
  (both resampled at the same normalised arc lengths, at least every 1 m), the width at each
  centreline vertex the sum of its 2D distances to the two boundaries; successors, predecessors
  and neighbours by segment id (ids not in the file are dropped); direction forward (Argoverse
  boundaries run in the travel direction). Bike and bus lanes are kept like vehicle lanes.
- each segment's left and right boundary -> ``lane_boundaries`` with the mark type as kind and
  colour (:data:`MARK_TYPES`); a boundary shared by two segments (same vertices to 1 cm, in either
  direction) is written once, with the first segment's orientation and mark type.
- ``pedestrian_crossings`` -> ``crosswalks``: the polygon between the two edges.

``drivable_areas`` are not part of the layer contract and are skipped.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "log_map_archive_demo____PIT_city_1.json"
>>> _ = p.write_text(json.dumps({"lane_segments": {}, "pedestrian_crossings": {}}))
>>> read_argoverse_map(p).is_empty
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely import LineString, Polygon

from pipeline.crs import LOCAL_CRS_WKT
from pipeline.errors import FormatError, HDMapIOError
from pipeline.model import (
    Color,
    Crosswalk,
    Direction,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
)

__all__ = ["MARK_TYPES", "METHOD", "find_log_maps", "read_argoverse_map"]

METHOD = "argoverse2-map"

#: Argoverse 2 ``*_lane_mark_type`` -> (marking kind, colour). Argoverse names double marks left
#: to right in the boundary's direction, as the model does (``DASH_SOLID`` = dashed left).
#: There is no double-dashed kind: it maps to dashed. Blue has no colour code: unknown.
MARK_TYPES: dict[str, tuple[MarkingKind, Color]] = {
    "SOLID_WHITE": (MarkingKind.SOLID, Color.WHITE),
    "SOLID_YELLOW": (MarkingKind.SOLID, Color.YELLOW),
    "SOLID_BLUE": (MarkingKind.SOLID, Color.UNKNOWN),
    "DASHED_WHITE": (MarkingKind.DASHED, Color.WHITE),
    "DASHED_YELLOW": (MarkingKind.DASHED, Color.YELLOW),
    "DOUBLE_SOLID_WHITE": (MarkingKind.DOUBLE_SOLID, Color.WHITE),
    "DOUBLE_SOLID_YELLOW": (MarkingKind.DOUBLE_SOLID, Color.YELLOW),
    "DOUBLE_DASH_WHITE": (MarkingKind.DASHED, Color.WHITE),
    "DOUBLE_DASH_YELLOW": (MarkingKind.DASHED, Color.YELLOW),
    "SOLID_DASH_WHITE": (MarkingKind.SOLID_DASHED, Color.WHITE),
    "SOLID_DASH_YELLOW": (MarkingKind.SOLID_DASHED, Color.YELLOW),
    "DASH_SOLID_WHITE": (MarkingKind.DASHED_SOLID, Color.WHITE),
    "DASH_SOLID_YELLOW": (MarkingKind.DASHED_SOLID, Color.YELLOW),
    "NONE": (MarkingKind.VIRTUAL, Color.UNKNOWN),
    "UNKNOWN": (MarkingKind.VIRTUAL, Color.UNKNOWN),  # a mark of unknown type: not scorable
}

_CENTRELINE_STEP_M = 1.0


def find_log_maps(root: str | os.PathLike[str]) -> list[Path]:
    """Every ``log_map_archive_*.json`` under ``root`` (Argoverse 2 log folders), sorted.

    >>> find_log_maps("/nonexistent")
    []
    """
    return sorted(Path(root).glob("**/map/log_map_archive_*.json"))


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HDMapIOError("no such file", path=path) from None
    except OSError as exc:
        raise HDMapIOError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"not JSON: {exc}", path=path) from None
    if not isinstance(data, dict) or "lane_segments" not in data:
        raise FormatError("not an Argoverse 2 log map: no 'lane_segments'", path=path)
    return data


def _xyz(points: Sequence[dict[str, float]], path: Path, what: str) -> np.ndarray:
    try:
        xyz = np.array([(p["x"], p["y"], p.get("z", 0.0)) for p in points], dtype=float)
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{what}: points need numeric x, y (and z)", path=path) from None
    if xyz.ndim != 2 or len(xyz) < 2 or not np.isfinite(xyz).all():
        raise FormatError(f"{what}: needs at least two finite points", path=path)
    return xyz


def _resample(xyz: np.ndarray, n: int) -> np.ndarray:
    """``n`` points at equal normalised arc lengths (2D) along the polyline ``xyz``."""
    steps = np.hypot(*np.diff(xyz[:, :2], axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    if s[-1] <= 0:
        return np.repeat(xyz[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.column_stack([np.interp(t, s, xyz[:, k]) for k in range(3)])


def _polyline_length(xyz: np.ndarray) -> float:
    return float(np.hypot(*np.diff(xyz[:, :2], axis=0).T).sum())


def _centreline(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    length = max(_polyline_length(left), _polyline_length(right))
    n = max(len(left), len(right), int(np.ceil(length / _CENTRELINE_STEP_M)) + 1)
    lr, rr = _resample(left, n), _resample(right, n)
    centre = (lr + rr) / 2
    points = shapely.points(centre[:, :2])
    widths = shapely.distance(points, LineString(left[:, :2])) + shapely.distance(
        points, LineString(right[:, :2])
    )
    keep = np.concatenate([[True], np.hypot(*np.diff(centre[:, :2], axis=0).T) > 1e-6])
    return centre[keep], widths[keep]


def _boundary_key(xyz: np.ndarray) -> tuple[tuple[float, float], ...]:
    forward = tuple((round(float(x), 2), round(float(y), 2)) for x, y in xyz[:, :2])
    return min(forward, forward[::-1])


def _crosswalk_polygon(e1: np.ndarray, e2: np.ndarray) -> Polygon:
    for ring in (np.vstack([e1, e2[::-1]]), np.vstack([e1, e2])):
        polygon = Polygon(ring)
        if polygon.is_valid and polygon.area > 0:
            return polygon
    hull = shapely.convex_hull(shapely.multipoints(np.vstack([e1, e2])[:, :2]))
    z = float(np.mean(np.concatenate([e1[:, 2], e2[:, 2]])))
    return Polygon([(x, y, z) for x, y in shapely.get_coordinates(hull.exterior)])


def read_argoverse_map(log_map_json: str | os.PathLike[str]) -> MapModel:
    """Read one Argoverse 2 ``log_map_archive_*.json`` into a :class:`MapModel`.

    The CRS is :data:`~pipeline.crs.LOCAL_CRS_WKT` (the city frame, metres); heights are the
    city frame's z. See the module docstring for what is converted. Raises
    :class:`~pipeline.errors.HDMapIOError` when the file cannot be read and
    :class:`~pipeline.errors.FormatError` when it is not an Argoverse 2 log map.
    """
    path = Path(log_map_json)
    data = _load(path)
    lineage = f"argoverse2:{path.stem.removeprefix('log_map_archive_')}"
    segments = data.get("lane_segments") or {}
    if not isinstance(segments, dict):
        raise FormatError("'lane_segments' is not an object", path=path)

    boundaries: dict[tuple, LaneBoundary] = {}
    lanes: dict[int, Lane] = {}
    links: dict[int, dict[str, Any]] = {}
    for key, seg in segments.items():
        try:
            seg_id = int(seg.get("id", key))
            left = _xyz(seg["left_lane_boundary"], path, f"lane segment {seg_id} left")
            right = _xyz(seg["right_lane_boundary"], path, f"lane segment {seg_id} right")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise FormatError(f"lane segment {key}: missing boundary", path=path) from None
        side_ids = []
        for side, xyz in (("left", left), ("right", right)):
            mark = str(seg.get(f"{side}_lane_mark_type", "UNKNOWN"))
            kind, colour = MARK_TYPES.get(mark, MARK_TYPES["UNKNOWN"])
            bkey = _boundary_key(xyz)
            if bkey not in boundaries:
                line = LineString(xyz)
                if line.length <= 0:
                    side_ids.append(None)
                    continue
                boundaries[bkey] = LaneBoundary.create(
                    line, kind, colour, survey_id=lineage, method=METHOD,
                    id_extra=(seg_id, side),
                )  # fmt: skip
            side_ids.append(boundaries[bkey].id)
        centre, widths = _centreline(left, right)
        if len(centre) < 2:
            continue
        lanes[seg_id] = Lane.create(
            LineString(centre),
            tuple(float(w) for w in widths),
            survey_id=lineage,
            method=METHOD,
            id_extra=(seg_id,),
            left_boundary=side_ids[0],
            right_boundary=side_ids[1],
            direction=Direction.FORWARD,
        )
        links[seg_id] = seg

    def ids(values: Any) -> tuple[str, ...]:
        return tuple(lanes[int(v)].id for v in (values or ()) if int(v) in lanes)

    def one(value: Any) -> str | None:
        return lanes[int(value)].id if value is not None and int(value) in lanes else None

    linked = tuple(
        lane.replace(
            successors=ids(links[sid].get("successors")),
            predecessors=ids(links[sid].get("predecessors")),
            left_neighbour=one(links[sid].get("left_neighbor_id")),
            right_neighbour=one(links[sid].get("right_neighbor_id")),
        )
        for sid, lane in lanes.items()
    )

    crosswalks = []
    for key, xing in (data.get("pedestrian_crossings") or {}).items():
        try:
            e1 = _xyz(xing["edge1"], path, f"pedestrian crossing {key} edge1")
            e2 = _xyz(xing["edge2"], path, f"pedestrian crossing {key} edge2")
        except (KeyError, TypeError):
            raise FormatError(f"pedestrian crossing {key}: missing edge", path=path) from None
        crosswalks.append(
            Crosswalk.create(
                _crosswalk_polygon(e1, e2),
                survey_id=lineage,
                method=METHOD,
                id_extra=(int(xing.get("id", key)),),
            )
        )

    city = path.stem.split("____")[-1] if "____" in path.stem else ""
    return MapModel(
        LOCAL_CRS_WKT,
        height_datum="Argoverse 2 city frame z",
        name=f"Argoverse 2 map {city} ({lineage})".replace(" ()", ""),
        lane_boundaries=tuple(boundaries.values()),
        lanes=linked,
        crosswalks=tuple(crosswalks),
    )
