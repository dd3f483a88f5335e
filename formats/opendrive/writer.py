"""Write the canonical :class:`MapModel` as ASAM OpenDRIVE 1.7 (or 1.8).

How the model becomes roads (right-hand traffic):

- Lanes are grouped by their neighbour links into side-by-side groups (same direction). Groups
  that continue one another outside junctions (leftmost lanes linked one-to-one, no lane linking
  elsewhere; the lane count may change) form a chain; a chain is one road, with a lane section
  per chain piece. The opposite-direction chain that shares the
  chain's innermost left boundary and spans it end to end becomes the road's left side.
- The reference line is the left edge of the leftmost right-side lane (lane centreline plus half
  its width), fitted with normalised ``paramPoly3`` pieces through its vertices with shared
  tangents (continuous in position and heading; each ``length`` is the integrated arc length and
  each ``s`` the sum of the previous lengths). No ``poly3``, no lane offset needed.
- Lane widths: the outer edge of each lane is projected onto the reference line and the widths
  (differences of neighbouring edges) are fitted with continuous cubic ``<width>`` pieces within
  2 mm. Heights: ``<elevation>`` cubics fitted along the reference line within 5 mm; the cross
  slope as ``<superelevation>`` (one-way fall) or ``<shape>`` records every 10 m (a crown).
- Road marks from each lane's outer boundary (the centre lane's from the innermost lane's left
  boundary): solid, broken, solid solid, solid broken, broken solid, curb; colour white/yellow
  (unknown -> standard); width > 0. Virtual boundaries get no road mark.
- Lanes are linked both ways inside a road; road links always carry ``contactPoint``; lanes in a
  model junction become connecting roads of a default ``<junction>`` with one ``<connection>``
  per incoming road and connecting road.
- Signs -> ``<signal>`` (``country="CN"``, type/subtype from :mod:`formats.opendrive.signs`);
  poles -> ``<object type="pole">``; crosswalks -> ``<object type="crosswalk">`` with a
  ``cornerRoad`` outline; stop lines -> ``<object type="roadMark" name="stopLine ...">``. Each is
  placed on the nearest road.
- Header: revMajor 1, revMinor 7 (or 8), name, date, bounds, the CRS as a PROJ string in CDATA
  (without ``+no_defs``); elements ordered header, roads, controllers, junctions; integer ids;
  floats at full (round-trip) precision; the same model and date give the same bytes; the file is
  written atomically.

:func:`write_opendrive` returns the list of what the file cannot hold (warnings).

>>> import tempfile, pathlib
>>> from tests.common import sample_model
>>> path = pathlib.Path(tempfile.mkdtemp()) / "map.xodr"
>>> warnings = write_opendrive(sample_model(), path, date="2026-11-25")
>>> b'revMinor="7"' in path.read_bytes(), len(warnings) > 0
(True, True)
>>> write_opendrive(MapModel("EPSG:4549"), path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pipeline.errors.FormatError: .../map.xodr: the map has no lanes; OpenDRIVE needs at least one road
"""

from __future__ import annotations

import math
import os
import warnings as warnings_module
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyproj
import shapely
import shapely.ops
from lxml import etree

from formats.opendrive.geometry import (
    Cubic,
    PlanView,
    _tangents,
    cubic_value,
    fit_cubic_pieces,
    fit_plan_view,
)
from formats.opendrive.signs import COUNTRY, SIGN_CODES
from pipeline.errors import CRSError, FormatError
from pipeline.files import atomic_path
from pipeline.model import Color, Direction, Lane, LaneBoundary, MapModel, MarkingKind

__all__ = ["ROAD_MARK_TYPE", "build_opendrive", "write_opendrive"]

#: MarkingKind -> OpenDRIVE road-mark type (None: no road mark). Double kinds as digitised.
ROAD_MARK_TYPE: dict[MarkingKind, str | None] = {
    MarkingKind.SOLID: "solid",
    MarkingKind.DASHED: "broken",
    MarkingKind.DOUBLE_SOLID: "solid solid",
    MarkingKind.SOLID_DASHED: "solid broken",
    MarkingKind.DASHED_SOLID: "broken solid",
    MarkingKind.CURB: "curb",
    MarkingKind.VIRTUAL: None,
}
_SWAPPED = {"solid broken": "broken solid", "broken solid": "solid broken"}
_COLOR = {Color.WHITE: "white", Color.YELLOW: "yellow", Color.UNKNOWN: "standard"}
WIDTH_TOLERANCE_M = 0.002
ELEVATION_TOLERANCE_M = 0.005
PLAN_TOLERANCE_M = 0.002
_STEP_M = 0.5
_ZERO_WIDTH_M = 1e-3  # lanes this narrow at a section joint are not linked across it


def _num(value: float) -> str:
    """Shortest string that reads back as the same double."""
    v = float(value)
    if v == 0.0:
        return "0.0"
    return repr(v)


def _sub(parent: etree._Element, tag: str, **attrs: object) -> etree._Element:
    el = etree.SubElement(parent, tag)
    for key, value in attrs.items():
        key = key.rstrip("_")
        el.set(key, _num(value) if isinstance(value, float | np.floating) else str(value))
    return el


def _proj_string(crs: str) -> str:
    try:
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore", UserWarning)
            proj = pyproj.CRS.from_user_input(crs).to_proj4()
    except (pyproj.exceptions.CRSError, RuntimeError) as exc:
        raise CRSError(f"CRS {crs!r} is not readable: {exc}") from None
    parts = [p for p in proj.split() if p not in ("+no_defs", "+type=crs")]
    return " ".join(parts)


# --- lane groups, chains and roads -------------------------------------------------------------


def _normalised(lane: Lane, warnings: list[str]) -> Lane:
    if lane.direction == Direction.BACKWARD:
        from shapely import LineString

        coords = list(lane.geometry.coords)[::-1]
        return lane.replace(
            geometry=LineString(coords), widths_m=lane.widths_m[::-1], direction=Direction.FORWARD
        )
    if lane.direction == Direction.BOTH:
        warnings.append(f"lane {lane.id}: two-way lane written as a one-way driving lane")
    return lane


def _groups(lanes: dict[str, Lane]) -> list[tuple[str, ...]]:
    """Side-by-side lane groups, each ordered left to right (in the travel direction)."""
    seen: set[str] = set()
    groups = []
    for lid in sorted(lanes):
        if lid in seen:
            continue
        start = lid
        visited = {start}
        while True:
            left = lanes[start].left_neighbour
            if (
                left is None
                or left not in lanes
                or left in visited
                or lanes[left].junction != lanes[lid].junction
            ):
                break
            start = left
            visited.add(start)
        order = [start]
        while True:
            right = lanes[order[-1]].right_neighbour
            if right is None or right not in lanes or right in order or right in seen:
                break
            if lanes[right].junction != lanes[lid].junction:
                break
            order.append(right)
        if lid not in order:
            order = [lid]
        seen.update(order)
        groups.append(tuple(order))
    return groups


def _chains(groups: list[tuple[str, ...]], lanes: dict[str, Lane]) -> list[list[tuple[str, ...]]]:
    group_of = {lid: g for g in groups for lid in g}

    def follower(g: tuple[str, ...]) -> tuple[str, ...] | None:
        """The group continuing ``g`` in the same road (its lane count may differ): the leftmost
        lanes link one-to-one, and no lane of either links outside the other."""
        first = lanes[g[0]]
        if first.junction is not None or len(first.successors) != 1:
            return None
        if first.successors[0] not in lanes:
            return None
        nxt = group_of[first.successors[0]]
        if nxt == g or lanes[nxt[0]].junction is not None or lanes[nxt[0]].predecessors != (g[0],):
            return None
        if any(t not in nxt for lid in g for t in lanes[lid].successors if t in lanes):
            return None
        if any(t not in g for lid in nxt for t in lanes[lid].predecessors if t in lanes):
            return None
        return nxt

    nxt_of = {g: follower(g) for g in groups}
    has_pred = {n for n in nxt_of.values() if n is not None}
    chains, used = [], set()
    for g in [g for g in groups if g not in has_pred] + groups:
        if g in used:
            continue
        chain = [g]
        used.add(g)
        while (n := nxt_of[chain[-1]]) is not None and n not in used:
            chain.append(n)
            used.add(n)
        chains.append(chain)
    return chains


def _edge(lane: Lane, side: float) -> np.ndarray:
    """Left (side=+1) or right (side=-1) edge of a lane, (n, 3), from centreline and widths."""
    pts = np.asarray(lane.geometry.coords, dtype=float)
    xy = pts[:, :2]
    keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 1e-9])
    pts, w = pts[keep], np.asarray(lane.widths_m, dtype=float)[keep]
    if len(pts) < 2:
        return pts
    tan = _tangents(pts[:, :2])
    normal = np.column_stack([-tan[:, 1], tan[:, 0]])
    out = pts.copy()
    out[:, :2] += side * normal * (w / 2)[:, None]
    return out


@dataclass
class _Road:
    id: int
    right: list[tuple[str, ...]]  # chain pieces, each ordered left to right (lane -1, -2, ...)
    left: list[tuple[str, ...]] = field(default_factory=list)  # opposite chain, in its travel order
    junction: int = -1
    plan: PlanView | None = None
    breaks: list[float] = field(default_factory=list)
    sections: list[tuple[float, float, tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=list
    )
    elevation: tuple[Cubic, ...] = ()
    ref_sz: tuple[np.ndarray, np.ndarray] | None = None
    superelevation: tuple[Cubic, ...] = ()
    shapes: list[tuple[float, tuple[Cubic, ...]]] = field(default_factory=list)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    out = [parts[0]]
    for p in parts[1:]:
        if np.linalg.norm(p[0, :2] - out[-1][-1, :2]) < 0.01:
            p = p[1:]
        out.append(p)
    return np.concatenate(out)


@dataclass(frozen=True, slots=True)
class _Place:
    road: int
    section: int
    lane_id: int


def _build_roads(
    model: MapModel, warnings: list[str]
) -> tuple[list[_Road], dict[str, Lane], dict[str, int]]:
    lanes = {lane.id: _normalised(lane, warnings) for lane in model.lanes}
    groups = _groups(lanes)
    chains = _chains(groups, lanes)
    chains.sort(key=lambda c: c[0][0])
    junction_ids = {j.id: n for n, j in enumerate(sorted(model.junctions, key=lambda j: j.id))}
    for lane in lanes.values():
        if lane.junction is not None and lane.junction not in junction_ids:
            junction_ids[lane.junction] = len(junction_ids)
    left_edges = {lid: _edge(lanes[lid], +1.0) for lid in lanes}
    roads: list[_Road] = []
    paired: set[int] = set()
    for ci, chain in enumerate(chains):
        if ci in paired:
            continue
        paired.add(ci)
        road = _Road(len(roads), chain)
        first = lanes[chain[0][0]]
        if first.junction is not None:
            road.junction = junction_ids[first.junction]
        else:
            inner = {lanes[g[0]].left_boundary for g in chain} - {None}
            ref = _concat([left_edges[g[0]] for g in chain])
            for cj in range(ci + 1, len(chains)):
                other = chains[cj]
                if cj in paired or lanes[other[0][0]].junction is not None:
                    continue
                if not inner & ({lanes[g[0]].left_boundary for g in other} - {None}):
                    continue
                oref = _concat([left_edges[g[0]] for g in other])
                if (
                    np.linalg.norm(oref[0, :2] - ref[-1, :2]) < 1.0
                    and np.linalg.norm(oref[-1, :2] - ref[0, :2]) < 1.0
                ):
                    road.left = other
                    paired.add(cj)
                    break
        roads.append(road)
    return roads, lanes, junction_ids


def _project_sorted(plan: PlanView, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, t = plan.project(pts[:, 0], pts[:, 1])
    order = np.argsort(s, kind="stable")
    return s[order], t[order]


def _left_line(lane: Lane, boundaries: dict[str, LaneBoundary]) -> np.ndarray:
    """The lane's left edge, (n, 3): its left boundary cut to the lane's extent where the model
    has one that agrees with the lane (within 0.1 m), else centreline + half the width."""
    from_lane = _edge(lane, +1.0)
    boundary = boundaries.get(lane.left_boundary) if lane.left_boundary else None
    if boundary is None or len(from_lane) < 2:
        return from_lane
    line = boundary.geometry
    if not _aligned(boundary, lane):
        line = shapely.reverse(line)
    pts = np.asarray(line.coords, dtype=float)
    ends_match = (
        np.hypot(*(pts[0, :2] - from_lane[0, :2])) < 0.05
        and np.hypot(*(pts[-1, :2] - from_lane[-1, :2])) < 0.05
    )
    if not ends_match:  # a boundary longer than the lane: cut it to the lane's extent
        a = line.project(shapely.Point(from_lane[0, :2]))
        b = line.project(shapely.Point(from_lane[-1, :2]))
        if b - a < 0.5:
            return from_lane
        pts = np.asarray(shapely.ops.substring(line, a, b).coords, dtype=float)
    if pts.shape[1] < 3 or len(pts) < 2:
        return from_lane
    gap_ends = max(
        np.hypot(*(pts[0, :2] - from_lane[0, :2])), np.hypot(*(pts[-1, :2] - from_lane[-1, :2]))
    )
    gap = shapely.distance(shapely.LineString(pts[:, :2]), shapely.points(from_lane[:, :2]))
    if gap_ends > 0.1 or float(np.median(gap)) > 0.1:
        return from_lane
    return pts


def _layout(
    road: _Road, lanes: dict[str, Lane], boundaries: dict[str, LaneBoundary], warnings: list[str]
) -> None:
    """Fit the reference line, find the lane sections and the elevation profile."""
    ref = _concat([_left_line(lanes[g[0]], boundaries) for g in road.right])
    records = fit_plan_view(ref[:, :2], PLAN_TOLERANCE_M)
    road.plan = PlanView(records)
    length = road.plan.length
    breaks = [0.0]
    for g in road.right[1:]:
        s, _ = road.plan.project(
            np.array([lanes[g[0]].geometry.coords[0][0]]),
            np.array([lanes[g[0]].geometry.coords[0][1]]),
        )
        breaks.append(float(s[0]))
    for g in road.left[1:]:
        c = lanes[g[0]].geometry.coords[0]
        s, _ = road.plan.project(np.array([c[0]]), np.array([c[1]]))
        breaks.append(float(s[0]))
    breaks = sorted(breaks)
    merged = [0.0]
    for b in breaks[1:]:
        if b - merged[-1] >= 1.0 and length - b >= 1.0:
            merged.append(b)
    merged.append(length)
    road.breaks = merged

    def piece_at(chain: list[tuple[str, ...]], mid: float) -> tuple[str, ...]:
        best, best_d = chain[0], math.inf
        for g in chain:
            c = np.asarray(lanes[g[0]].geometry.coords)
            s, _ = road.plan.project(c[:, 0], c[:, 1])
            lo, hi = float(s.min()), float(s.max())
            d = 0.0 if lo <= mid <= hi else min(abs(mid - lo), abs(mid - hi))
            if d < best_d:
                best, best_d = g, d
        return best

    for k in range(len(merged) - 1):
        s0, s1 = merged[k], merged[k + 1]
        mid = 0.5 * (s0 + s1)
        right = piece_at(road.right, mid)
        left = piece_at(road.left, mid) if road.left else ()
        road.sections.append((s0, s1, right, left))
    s, _ = _project_sorted(road.plan, ref)
    z = ref[np.argsort(road.plan.project(ref[:, 0], ref[:, 1])[0], kind="stable"), 2]
    s = np.clip(s, 0.0, length)
    s, idx = np.unique(s, return_index=True)
    road.ref_sz = (s, z[idx])
    _fit_elevation(road, s, z[idx])


def _fit_elevation(road: _Road, s: np.ndarray, z: np.ndarray) -> None:
    road.elevation = (
        fit_cubic_pieces(s, z, ELEVATION_TOLERANCE_M) if len(s) else (Cubic(0.0, float(z[0])),)
    )
    if road.elevation and road.elevation[0].s0 != 0.0:
        first = road.elevation[0]
        road.elevation = (
            Cubic(0.0, float(first(np.array(0.0))), first.b, first.c, first.d),
            *road.elevation[1:],
        )


def _outer_edge(
    road: _Road,
    lane: Lane,
    boundaries: dict[str, LaneBoundary],
    grid: np.ndarray,
    warnings: list[str],
) -> np.ndarray:
    """Lateral offset t (m) of a lane's outer edge at ``grid``: its right boundary where the model
    has one that agrees with the lane (within 0.5 m), else centreline + half the width."""
    edge = _edge(lane, -1.0)  # the travel-right edge is the outer one on both sides
    s, t = _project_sorted(road.plan, edge)
    s, idx = np.unique(s, return_index=True)
    from_lane = np.interp(grid, s, t[idx])
    boundary = boundaries.get(lane.right_boundary) if lane.right_boundary else None
    if boundary is None:
        return from_lane
    pts = np.asarray(boundary.geometry.coords, dtype=float)
    bs, bt = _project_sorted(road.plan, pts)
    inside = (bs > grid[0] - 5.0) & (bs < grid[-1] + 5.0)
    bs, bt = bs[inside], bt[inside]
    bs, idx = np.unique(bs, return_index=True)
    bt = bt[idx]
    if len(bs) < 2 or bs[0] > grid[0] + 1.0 or bs[-1] < grid[-1] - 1.0:
        return from_lane
    from_boundary = np.interp(grid, bs, bt)
    if float(np.median(np.abs(from_boundary - from_lane))) > 0.5:
        warnings.append(
            f"lane {lane.id}: right boundary {boundary.id} is over 0.5 m from the lane edge;"
            " lane edge used"
        )
        return from_lane
    return from_boundary


def _cross_section(
    road: _Road, lanes: dict[str, Lane], boundaries: dict[str, LaneBoundary]
) -> None:
    """Fit the cross slope: one ``superelevation`` (roll) where the road falls to one side, or
    ``shape`` records (a crown: a slope on each side of the reference line) every 10 m or less."""
    ids = {lid for _, _, right, left in road.sections for lid in (*right, *left)}
    lines = [lanes[lid].geometry for lid in sorted(ids)]
    for lid in sorted(ids):
        for bid in (lanes[lid].left_boundary, lanes[lid].right_boundary):
            if bid in boundaries:
                lines.append(boundaries[bid].geometry)
    pts = np.concatenate([np.asarray(g.coords, dtype=float) for g in lines])
    s, t = road.plan.project(pts[:, 0], pts[:, 1])
    dz = pts[:, 2] - cubic_value(road.elevation, s)
    if float(np.abs(dz).max()) < 0.002:
        return
    left_side = bool((t > 0.5).any())
    length = road.plan.length
    spacing = min(10.0, max(length / 6.0, 1.0))
    stations = np.linspace(0.0, length, max(2, math.ceil(length / spacing) + 1))
    window = 0.6 * float(np.diff(stations).max())
    # per station: dz = a + b_r t (t < 0) + b_l t (t > 0), least squares over the window
    fit = np.full((len(stations), 3), np.nan)
    for i, st in enumerate(stations):
        near = np.abs(s - st) <= window
        if near.sum() < 3 or np.ptp(t[near]) < 0.5:
            continue
        tn = t[near]
        cols = [np.ones_like(tn), np.minimum(tn, 0.0)]
        if left_side:
            cols.append(np.maximum(tn, 0.0))
        coef, *_ = np.linalg.lstsq(np.column_stack(cols), dz[near], rcond=None)
        fit[i, : len(coef)] = coef
        if not left_side:
            fit[i, 2] = coef[1]
    good = ~np.isnan(fit[:, 0])
    if not good.any():
        return
    fit = np.column_stack([np.interp(stations, stations[good], fit[good, k]) for k in range(3)])
    shift, slope_r, slope_l = fit[:, 0], fit[:, 1], fit[:, 2]
    if road.ref_sz is not None and float(np.abs(shift).max()) > 0.001:
        ref_s, ref_z = road.ref_sz  # the reference line's own height was off: correct it
        _fit_elevation(road, ref_s, ref_z + np.interp(ref_s, stations, shift))
    t_max = float(np.abs(t).max())
    if not left_side or float(np.abs(slope_l - slope_r).max()) < 0.002:
        roll = np.arctan(0.5 * (slope_l + slope_r))
        if float(np.abs(roll).max()) * t_max >= 0.002:
            road.superelevation = fit_cubic_pieces(stations, roll, 0.002 / max(t_max, 1.0))
        return
    t_min = float(t.min()) - 0.5
    for st, sr, sl in zip(stations, slope_r, slope_l, strict=True):
        road.shapes.append(
            (float(st), (Cubic(t_min, float(sr * t_min), float(sr)), Cubic(0.0, 0.0, float(sl))))
        )


def _section_widths(
    road: _Road, lanes: dict[str, Lane], boundaries, s0: float, s1: float, right, left, warnings
):
    """lane (odr id) -> width cubic pieces (s0 absolute), by the projected outer edges."""
    n = max(2, math.ceil((s1 - s0) / _STEP_M) + 1)
    grid = np.linspace(s0, s1, n)
    # add the stations of the model's vertices so that kinks (tapers) are fitted where they are
    stations = []
    for lid in (*right, *left):
        lane = lanes[lid]
        b = boundaries.get(lane.right_boundary) if lane.right_boundary else None
        pts = np.asarray((b.geometry if b is not None else lane.geometry).coords, dtype=float)
        st, _ = road.plan.project(pts[:, 0], pts[:, 1])
        stations.append(st[(st > s0 + 0.05) & (st < s1 - 0.05)])
    grid = np.unique(np.concatenate([grid, *stations]))
    out: dict[int, tuple[Cubic, ...]] = {}
    for side, group in ((-1, right), (1, left)):
        prev = np.zeros_like(grid)
        for k, lid in enumerate(group):
            outer = _outer_edge(road, lanes[lid], boundaries, grid, warnings)
            width = (prev - outer) if side < 0 else (outer - prev)
            if width.min() < 0:
                warnings.append(f"lane {lid}: negative width clipped to 0")
                width = np.maximum(width, 0.0)
            out[side * (k + 1)] = fit_cubic_pieces(grid, width, WIDTH_TOLERANCE_M)
            prev = outer
    return out


# --- XML ----------------------------------------------------------------------------------------


def _road_mark(parent, boundary: LaneBoundary | None, aligned: bool) -> None:
    if boundary is None:
        return
    kind = ROAD_MARK_TYPE[boundary.marking]
    if kind is None:
        return
    if not aligned:
        kind = _SWAPPED.get(kind, kind)
    width = boundary.width_m if boundary.width_m and boundary.width_m > 0 else 0.15
    _sub(
        parent,
        "roadMark",
        sOffset=0.0,
        type=kind,
        weight="standard",
        color=_COLOR[boundary.color],
        width=float(width),
        laneChange="both"
        if "broken" in kind and kind != "solid broken" and kind != "broken solid"
        else "none",
    )


def _aligned(boundary: LaneBoundary | None, lane: Lane) -> bool:
    """Is the boundary digitised in the lane's travel direction?"""
    if boundary is None:
        return True
    b = np.asarray(boundary.geometry.coords)[:, :2]
    c = np.asarray(lane.geometry.coords)[:, :2]
    return float(np.dot(b[-1] - b[0], c[-1] - c[0])) >= 0.0


def _road_index(roads: list[_Road]):
    """KD-tree over points every 2 m along every reference line, with the road of each point."""
    from scipy.spatial import cKDTree

    xy, owner = [], []
    for n, road in enumerate(roads):
        s = np.linspace(0.0, road.plan.length, max(2, math.ceil(road.plan.length / 2.0) + 1))
        x, y, _ = road.plan.evaluate(s)
        xy.append(np.column_stack([x, y]))
        owner.append(np.full(len(s), n))
    return cKDTree(np.concatenate(xy)), np.concatenate(owner)


def _nearest_road(
    roads: list[_Road], x: float, y: float, index=None
) -> tuple[_Road, float, float] | None:
    candidates = roads
    if index is not None:
        tree, owner = index
        _, idx = tree.query([x, y], k=min(64, len(owner)))
        candidates = [roads[n] for n in sorted(set(owner[np.atleast_1d(idx)].tolist()))]
    best = None
    for prefer_plain in (True, False):
        for road in candidates:
            if (road.junction == -1) != prefer_plain or road.plan is None or road.plan.length <= 0:
                continue
            s, t = road.plan.project(np.array([x]), np.array([y]))
            rx, ry = road.plan.offset_points(s, t)
            miss = math.hypot(float(rx[0]) - x, float(ry[0]) - y)
            score = abs(float(t[0])) + 10.0 * miss
            if best is None or score < best[0]:
                best = (score, road, float(s[0]), float(t[0]))
        if best is not None:
            break
    return None if best is None else best[1:]


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def build_opendrive(
    model: MapModel,
    *,
    version: str = "1.7",
    date: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> tuple[bytes, list[str]]:
    """The OpenDRIVE document for ``model`` as bytes, and what it could not hold (warnings).

    ``version`` is ``"1.7"`` or ``"1.8"``; ``date`` goes into the header (default: now, UTC);
    ``path`` only names the target in error messages. Raises :class:`FormatError` for a map
    without lanes (OpenDRIVE needs at least one road).
    """
    if version not in ("1.7", "1.8"):
        raise FormatError(
            f"OpenDRIVE version {version!r} is not supported for writing (1.7 or 1.8)", path=path
        )
    warnings: list[str] = []
    date = date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    roads, lanes, junction_ids = _build_roads(model, warnings)
    if not roads:
        raise FormatError("the map has no lanes; OpenDRIVE needs at least one road", path=path)
    bounds = defaultdict(list)
    boundaries = {b.id: b for b in model.lane_boundaries}
    for road in roads:
        _layout(road, lanes, boundaries, warnings)
        _cross_section(road, lanes, boundaries)

    place: dict[str, list[_Place]] = defaultdict(list)
    for road in roads:
        for k, (_s0, _s1, right, left) in enumerate(road.sections):
            for i, lid in enumerate(right):
                place[lid].append(_Place(road.id, k, -(i + 1)))
            for i, lid in enumerate(left):
                place[lid].append(_Place(road.id, k, i + 1))
    placed = set(place)
    for lid in sorted(set(lanes) - placed):
        warnings.append(f"lane {lid}: could not be placed on a road")

    def travel_start(p: _Place) -> tuple[int, bool]:  # (road, at s-end?)
        return (p.road, p.lane_id > 0)

    root = etree.Element("OpenDRIVE")
    header = _sub(
        root,
        "header",
        revMajor=1,
        revMinor=int(version.split(".")[1]),
        name=model.name or "map",
        version="1.00",
        date=date,
    )
    for road in roads:
        s = np.linspace(0, road.plan.length, max(2, math.ceil(road.plan.length / 5.0) + 1))
        x, y, _ = road.plan.evaluate(s)
        bounds["x"].extend(x.tolist())
        bounds["y"].extend(y.tolist())
    if bounds["x"]:
        header.set("north", _num(max(bounds["y"])))
        header.set("south", _num(min(bounds["y"])))
        header.set("east", _num(max(bounds["x"])))
        header.set("west", _num(min(bounds["x"])))
    header.set("vendor", "xishan-hdmap")
    try:
        proj = _proj_string(model.crs)
    except CRSError:
        proj = None
    if proj:
        geo = etree.SubElement(header, "geoReference")
        geo.text = etree.CDATA(proj)
    else:
        warnings.append("the CRS has no PROJ form (a local frame?): no geoReference written")

    def first_place(lid: str, at_travel_start: bool) -> _Place:
        ps = place[lid]
        if ps[0].lane_id < 0:  # right lane: travel start is the first section
            return ps[0] if at_travel_start else ps[-1]
        return ps[-1] if at_travel_start else ps[0]

    connections: dict[int, list[tuple[int, int, list[tuple[int, int]]]]] = defaultdict(list)
    for road in roads:
        r_el = _sub(
            root,
            "road",
            name=f"road {road.id}",
            length=road.plan.length,
            id=road.id,
            junction=road.junction,
            rule="RHT",
        )
        link_el = _sub(r_el, "link")
        # road links: what touches the s-start (pred) and the s-end (succ)
        ends: dict[bool, list[tuple[_Place, bool, int, str]]] = {False: [], True: []}
        k_last = len(road.sections) - 1
        for at_end, k in ((False, 0), (True, k_last)):
            _, _, right, left = road.sections[k]
            for side, group in ((-1, right), (1, left)):
                for i, lid in enumerate(group):
                    lane = lanes[lid]
                    flows_out = at_end == (side < 0)  # our lane leaves the road at this end
                    targets = lane.successors if flows_out else lane.predecessors
                    ours = lane.geometry.coords[-1 if flows_out else 0]
                    for t in targets:
                        if t not in place:
                            continue
                        # which end of the target lane touches ours: decided by geometry
                        tc = lanes[t].geometry.coords
                        at_start = math.dist(ours[:2], tc[0][:2]) <= math.dist(ours[:2], tc[-1][:2])
                        p = first_place(t, at_travel_start=at_start)
                        t_end = at_start if p.lane_id > 0 else not at_start  # target's s-end?
                        ends[at_end].append((p, t_end, side * (i + 1), t, flows_out))
        lane_links: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
        for at_end in (False, True):
            entries = [e for e in ends[at_end] if e[0].road != road.id or len(road.sections) == 1]
            if not entries:
                continue
            target_roads = {e[0].road for e in entries}
            target_junctions = {roads[r].junction for r in target_roads}
            tag = "successor" if at_end else "predecessor"
            if road.junction == -1 and target_junctions != {-1} and len(target_junctions) == 1:
                _sub(link_el, tag, elementType="junction", elementId=target_junctions.pop())
                for p, _t_end, own_id, _t, flows_out in entries:
                    if roads[p.road].junction != -1 and flows_out:
                        conn_road = roads[p.road]
                        connections[conn_road.junction].append(
                            (road.id, conn_road.id, [(own_id, p.lane_id)])
                        )
                continue
            if len(target_roads) != 1:
                warnings.append(
                    f"road {road.id}: {tag} lanes continue on several roads; no road link written"
                )
                continue
            contact = {e[1] for e in entries}
            if len(contact) != 1:
                warnings.append(
                    f"road {road.id}: inconsistent contact points; no {tag} road link written"
                )
                continue
            _sub(
                link_el,
                tag,
                elementType="road",
                elementId=target_roads.pop(),
                contactPoint="end" if contact.pop() else "start",
            )
            for p, _t_end, own_id, _t, _out in entries:
                lane_links[(int(at_end), own_id)].append((tag, p.lane_id))
        if len(link_el) == 0:
            r_el.remove(link_el)
        pv = _sub(r_el, "planView")
        for rec in road.plan.records:
            g = _sub(
                pv,
                "geometry",
                s=float(rec.s),
                x=float(rec.x),
                y=float(rec.y),
                hdg=float(rec.hdg),
                length=float(rec.length),
            )
            params = dict(rec.params)
            shape = _sub(g, "paramPoly3")
            for key in ("aU", "bU", "cU", "dU", "aV", "bV", "cV", "dV"):
                shape.set(key, _num(params[key]))
            shape.set("pRange", "normalized")
        ep = _sub(r_el, "elevationProfile")
        for c in road.elevation:
            _sub(
                ep,
                "elevation",
                s=float(c.s0),
                a=float(c.a),
                b=float(c.b),
                c=float(c.c),
                d=float(c.d),
            )
        if road.superelevation or road.shapes:
            lp = _sub(r_el, "lateralProfile")
            for c in road.superelevation:
                _sub(lp, "superelevation", s=float(c.s0), a=c.a, b=c.b, c=c.c, d=c.d)
            for st, cubics in road.shapes:
                for c in cubics:
                    _sub(lp, "shape", s=st, t=c.s0, a=c.a, b=c.b, c=c.c, d=c.d)
        lanes_el = _sub(r_el, "lanes")
        _sub(lanes_el, "laneOffset", s=0.0, a=0.0, b=0.0, c=0.0, d=0.0)
        all_widths = [
            _section_widths(road, lanes, boundaries, s0, s1, right, left, warnings)
            for s0, s1, right, left in road.sections
        ]

        def width_at(
            k2: int, odr_id: int, at_end: bool, road: _Road = road, all_widths=all_widths
        ) -> float:
            s0, s1 = road.sections[k2][:2]
            return float(cubic_value(all_widths[k2][odr_id], np.array([s1 if at_end else s0]))[0])

        for k, (s0, _s1, right, left) in enumerate(road.sections):
            widths = all_widths[k]
            sec_el = _sub(lanes_el, "laneSection", s=float(s0))

            def neighbours(k2: int, side: int, road: _Road = road) -> dict[int, str]:
                if not 0 <= k2 < len(road.sections):
                    return {}
                _, _, r2, l2 = road.sections[k2]
                group = r2 if side < 0 else l2
                return {side * (i + 1): lid for i, lid in enumerate(group)}

            for side, group in ((1, left), (-1, right)):
                if not group:
                    continue
                side_el = _sub(sec_el, "left" if side > 0 else "right")
                ids = [side * (i + 1) for i in range(len(group))]
                for odr_id, lid in sorted(zip(ids, group, strict=True), reverse=True):
                    lane = lanes[lid]
                    lane_el = _sub(side_el, "lane", id=odr_id, type="driving", level="false")
                    found: dict[str, list[int]] = {"predecessor": [], "successor": []}
                    for tag, k2 in (("predecessor", k - 1), ("successor", k + 1)):
                        for oid, other in neighbours(k2, side).items():
                            if side < 0:
                                forward = lane.successors if k2 > k else lane.predecessors
                            else:
                                forward = lane.predecessors if k2 > k else lane.successors
                            if other != lid and other not in forward:
                                continue
                            # a lane narrowing to (or growing from) zero width is not linked
                            here = width_at(k, odr_id, at_end=k2 > k)
                            there = width_at(k2, oid, at_end=k2 < k)
                            if min(here, there) > _ZERO_WIDTH_M:
                                found[tag].append(oid)
                    if k == len(road.sections) - 1:
                        found["successor"] += [
                            o for t, o in lane_links.get((1, odr_id), []) if t == "successor"
                        ]
                    if k == 0:
                        found["predecessor"] += [
                            o for t, o in lane_links.get((0, odr_id), []) if t == "predecessor"
                        ]
                    if found["predecessor"] or found["successor"]:
                        ln = _sub(lane_el, "link")
                        for tag in ("predecessor", "successor"):
                            for oid in sorted(set(found[tag]), key=abs):
                                _sub(ln, tag, id=oid)
                    for c in widths[odr_id]:
                        _sub(
                            lane_el,
                            "width",
                            sOffset=float(c.s0 - s0),
                            a=float(c.a),
                            b=float(c.b),
                            c=float(c.c),
                            d=float(c.d),
                        )
                    outer = boundaries.get(lane.right_boundary) if lane.right_boundary else None
                    if lane.right_boundary and outer is None:
                        warnings.append(
                            f"lane {lid}: right boundary {lane.right_boundary} is not in the map"
                        )
                    _road_mark(lane_el, outer, _aligned(outer, lane))
                if side > 0:
                    centre = _sub(sec_el, "center")
                    c_lane = _sub(centre, "lane", id=0, type="none", level="false")
                    inner_lane = lanes[right[0]] if right else lanes[left[0]]
                    cb = (
                        boundaries.get(inner_lane.left_boundary)
                        if inner_lane.left_boundary
                        else None
                    )
                    _road_mark(c_lane, cb, _aligned(cb, inner_lane) == bool(right))
            if not left:
                centre = etree.Element("center")
                c_lane = _sub(centre, "lane", id=0, type="none", level="false")
                cb = (
                    boundaries.get(lanes[right[0]].left_boundary)
                    if lanes[right[0]].left_boundary
                    else None
                )
                _road_mark(c_lane, cb, _aligned(cb, lanes[right[0]]))
                sec_el.insert(0, centre)
    _objects_and_signals(model, roads, root, warnings)
    for jid_model, jid in sorted(junction_ids.items(), key=lambda kv: kv[1]):
        conns = connections.get(jid, [])
        j_el = _sub(root, "junction", name=jid_model, id=jid, type="default")
        merged: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for inc, con, links in conns:
            merged[(inc, con)].extend(links)
        for n, ((inc, con), links) in enumerate(sorted(merged.items())):
            c_el = _sub(
                j_el, "connection", id=n, incomingRoad=inc, connectingRoad=con, contactPoint="start"
            )
            for a, b in sorted(set(links)):
                _sub(c_el, "laneLink", **{"from": a, "to": b})
        if not conns:
            root.remove(j_el)
            warnings.append(f"junction {jid_model}: no connecting road links to it; not written")
    for kind, items in (("road edges", model.road_edges), ("road arrows", model.road_arrows)):
        if items:
            warnings.append(f"{len(items)} {kind} not written (no OpenDRIVE element used for them)")
    if model.junctions:
        warnings.append(f"{len(model.junctions)} junction outlines not written (connectivity only)")
    if model.lanes:
        warnings.append(
            "lane and boundary ids, provenance, confidence and accuracy are not written"
            " (OpenDRIVE has no place for them; pole, sign and object ids go into 'name')"
        )
    dashes = sum(1 for b in model.lane_boundaries if b.dash_length_m is not None)
    if dashes:
        warnings.append(f"{dashes} dash/gap lengths not written (road marks carry the type only)")
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data, warnings


def _objects_and_signals(model: MapModel, roads: list[_Road], root, warnings: list[str]) -> None:
    per_road: dict[int, dict[str, list]] = defaultdict(lambda: {"objects": [], "signals": []})
    next_id = 0

    index = _road_index(roads)

    def place_on(feature_id: str, x: float, y: float):
        found = _nearest_road(roads, x, y, index)
        if found is None:
            warnings.append(f"{feature_id}: no road to place it on; not written")
        return found

    for pole in sorted(model.poles, key=lambda f: f.id):
        found = place_on(pole.id, pole.geometry.x, pole.geometry.y)
        if found is None:
            continue
        road, s, t = found
        z0 = float(cubic_value(road.elevation, np.array([s]))[0])
        per_road[road.id]["objects"].append(
            (
                "pole",
                pole.id,
                dict(
                    s=s,
                    t=t,
                    zOffset=pole.geometry.z - z0,
                    radius=float(max(pole.radius_m, 1e-3)),
                    height=float(pole.height_m),
                ),
            )
        )
    for cw in sorted(model.crosswalks, key=lambda f: f.id):
        c = cw.geometry.centroid
        found = place_on(cw.id, c.x, c.y)
        if found is None:
            continue
        road, s, t = found
        ring = np.asarray(cw.geometry.exterior.coords)[:-1]
        x0, y0 = road.plan.offset_points(np.array([s]), np.array([t]))
        _, _, hdg = road.plan.evaluate(np.array([s]))
        z0 = float(cubic_value(road.elevation, np.array([s]))[0])
        zc = float(np.mean(ring[:, 2]))
        c, sn = math.cos(float(hdg[0])), math.sin(float(hdg[0]))
        dx, dy = ring[:, 0] - float(x0[0]), ring[:, 1] - float(y0[0])
        corners = [
            (float(u), float(v), float(z))
            for u, v, z in zip(dx * c + dy * sn, -dx * sn + dy * c, ring[:, 2] - zc, strict=True)
        ]
        per_road[road.id]["objects"].append(
            ("crosswalk", cw.id, dict(s=s, t=t, zOffset=zc - z0), corners)
        )
    for stop in sorted(model.stop_lines, key=lambda f: f.id):
        pts = np.asarray(stop.geometry.coords)
        mid = pts.mean(axis=0)
        found = place_on(stop.id, float(mid[0]), float(mid[1]))
        if found is None:
            continue
        road, s, t = found
        _, _, hdg = road.plan.evaluate(np.array([s]))
        direction = math.atan2(pts[-1, 1] - pts[0, 1], pts[-1, 0] - pts[0, 0])
        rel = _wrap(direction - math.pi / 2 - float(hdg[0]))
        z0 = float(cubic_value(road.elevation, np.array([s]))[0])
        length = float(np.linalg.norm(pts[-1, :2] - pts[0, :2]))
        per_road[road.id]["objects"].append(
            (
                "roadMark",
                stop.id,
                dict(
                    s=s,
                    t=t,
                    zOffset=float(mid[2]) - z0,
                    hdg=rel,
                    length=float(stop.width_m),
                    width=length,
                ),
            )
        )
    for sign in sorted(model.signs, key=lambda f: f.id):
        found = place_on(sign.id, sign.geometry.x, sign.geometry.y)
        if found is None:
            continue
        road, s, t = found
        _, _, hdg = road.plan.evaluate(np.array([s]))
        facing = math.radians(90.0 - sign.facing_deg)
        rel_plus = _wrap(facing - (float(hdg[0]) + math.pi))
        if abs(rel_plus) <= math.pi / 2:
            orientation, h_offset = "+", rel_plus
        else:
            orientation, h_offset = "-", _wrap(facing - float(hdg[0]))
        z0 = float(cubic_value(road.elevation, np.array([s]))[0])
        type_code, subtype = SIGN_CODES[sign.sign_class]
        per_road[road.id]["signals"].append(
            (
                sign.id,
                dict(
                    s=s,
                    t=t,
                    zOffset=sign.geometry.z - sign.height_m / 2 - z0,
                    hOffset=h_offset,
                    orientation=orientation,
                    type_code=type_code,
                    subtype=subtype,
                    height=float(sign.height_m),
                    width=float(sign.width_m),
                ),
            )
        )
    with_pole = sum(1 for sign in model.signs if sign.pole)
    if with_pole:
        warnings.append(f"{with_pole} signs: their pole references are not written")
    for r_el in root.findall("road"):
        rid = int(r_el.get("id"))
        if rid not in per_road:
            continue
        content = per_road[rid]
        if content["objects"]:
            objs = _sub(r_el, "objects")
            for item in content["objects"]:
                kind, fid, attrs = item[0], item[1], item[2]
                name = f"stopLine {fid}" if kind == "roadMark" else fid
                o = _sub(
                    objs,
                    "object",
                    type=kind,
                    name=name,
                    id=next_id,
                    s=float(attrs["s"]),
                    t=float(attrs["t"]),
                    zOffset=float(attrs["zOffset"]),
                    orientation="none",
                    hdg=float(attrs.get("hdg", 0.0)),
                    pitch=0.0,
                    roll=0.0,
                )
                next_id += 1
                for key in ("radius", "height", "length", "width"):
                    if key in attrs:
                        o.set(key, _num(attrs[key]))
                if kind == "crosswalk":
                    outlines = _sub(o, "outlines")
                    outline = _sub(
                        outlines, "outline", id=0, outer="true", closed="true", laneType="driving"
                    )
                    for n, (u, v, dz) in enumerate(item[3]):
                        _sub(outline, "cornerLocal", u=u, v=v, z=dz, height=0.0, id=n)
        if content["signals"]:
            sigs = _sub(r_el, "signals")
            for fid, a in content["signals"]:
                _sub(
                    sigs,
                    "signal",
                    s=float(a["s"]),
                    t=float(a["t"]),
                    id=next_id,
                    name=fid,
                    dynamic="no",
                    orientation=a["orientation"],
                    zOffset=float(a["zOffset"]),
                    country=COUNTRY,
                    type=a["type_code"],
                    subtype=a["subtype"],
                    hOffset=float(a["hOffset"]),
                    pitch=0.0,
                    roll=0.0,
                    height=a["height"],
                    width=a["width"],
                )
                next_id += 1


def write_opendrive(
    model: MapModel, path: str | os.PathLike[str], *, version: str = "1.7", date: str | None = None
) -> list[str]:
    """Write ``model`` as OpenDRIVE ``version`` (1.7 or 1.8) to ``path`` atomically.

    Returns the warnings: what the file cannot hold. ``date`` fixes the header date (default:
    now, UTC) so that the same model and date give byte-identical files.
    """
    data, warnings = build_opendrive(model, version=version, date=date, path=path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return warnings
