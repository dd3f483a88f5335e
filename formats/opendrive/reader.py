"""Read OpenDRIVE 1.1-1.8 into evaluated geometry and the canonical :class:`MapModel`.

:func:`load_network` parses a file (safely, see :mod:`formats.xmlsafe`) into plain records:
roads with their plan view, elevation, lane offset, lane sections (``<width>`` or the older
``<border>``), road marks, links, signals and objects, and junctions. :func:`read_opendrive`
evaluates them, sampled at ``step_m`` (0.5 m by default) or finer, into a map:

- each lane for vehicles (:data:`VEHICLE_LANE_TYPES`) -> :class:`Lane`, its centreline digitised
  in the travel direction (right-hand traffic: right lanes run with ``s``, left lanes against
  it), widths per vertex, inner/outer boundaries as left/right boundary, links through lane
  sections, road links and junction connections;
- each lane border beside a vehicle lane (and the centre lane) -> :class:`LaneBoundary`, split
  where the road mark changes; road-mark type and colour -> :class:`MarkingKind` and :class:`Color`;
- static signals -> :class:`Sign` (class from the CN code mapping, else unknown), objects of type
  ``pole``/``streetLamp`` -> :class:`Pole`, ``crosswalk`` -> :class:`Crosswalk` (outline, or the
  length x width box), stop-line road marks -> :class:`StopLine`;
- junctions -> :class:`Junction` (convex hull of their connecting lanes);
- heights from ``<elevation>``, ``<superelevation>`` and lateral ``<shape>``; the CRS from
  ``<geoReference>`` (a PROJ string), or a local metric frame when there is none. The header
  ``<offset>`` and ``<signalReference>``/``<objectReference>`` records are not applied; dynamic
  signals (traffic lights) are skipped.

>>> read_opendrive.__name__
'read_opendrive'
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from lxml import etree
from shapely import LineString, Point, Polygon

from formats.opendrive.geometry import Cubic, PlanGeometry, PlanView, cubic_value
from formats.opendrive.signs import SIGN_SHAPE, sign_class_of
from formats.xmlsafe import MAX_XML_BYTES, parse_xml
from pipeline.errors import FormatError
from pipeline.model import (
    Color,
    Crosswalk,
    Direction,
    Junction,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    Sign,
    StopLine,
)

__all__ = [
    "VEHICLE_LANE_TYPES",
    "Network",
    "RoadRecord",
    "lane_boundary_lines",
    "load_network",
    "read_opendrive",
]

#: OpenDRIVE lane types read as :class:`Lane` (lanes for vehicles); sidewalks, shoulders,
#: borders, curbs, medians and the like only shape the cross-section.
VEHICLE_LANE_TYPES = frozenset(
    {
        "driving",
        "entry",
        "exit",
        "onRamp",
        "offRamp",
        "connectingRamp",
        "bidirectional",
        "bus",
        "taxi",
        "HOV",
        "slipLane",
        "mwyEntry",
        "mwyExit",
        "special1",
        "special2",
        "special3",
        "roadWorks",
        "tram",
        "rail",
    }
)

_MARKING_OF_TYPE = {
    "solid": MarkingKind.SOLID,
    "broken": MarkingKind.DASHED,
    "solid solid": MarkingKind.DOUBLE_SOLID,
    "broken broken": MarkingKind.DASHED,
    "solid broken": MarkingKind.SOLID_DASHED,
    "broken solid": MarkingKind.DASHED_SOLID,
    "curb": MarkingKind.CURB,
    "edge": MarkingKind.CURB,
    "botts dots": MarkingKind.DASHED,
    "grass": MarkingKind.CURB,
    "none": MarkingKind.VIRTUAL,
}
_SWAPPED_KIND = {
    MarkingKind.SOLID_DASHED: MarkingKind.DASHED_SOLID,
    MarkingKind.DASHED_SOLID: MarkingKind.SOLID_DASHED,
}
_COLOR_OF = {"white": Color.WHITE, "standard": Color.WHITE, "yellow": Color.YELLOW}


def _f(el: etree._Element, name: str, default: float = 0.0) -> float:
    value = el.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class RoadMarkRecord:
    s_offset: float
    type: str
    color: str
    width: float


@dataclass(frozen=True, slots=True)
class LaneRecord:
    id: int
    type: str
    widths: tuple[Cubic, ...]  # s0 absolute along the road
    borders: tuple[Cubic, ...]
    marks: tuple[RoadMarkRecord, ...]
    predecessors: tuple[int, ...]
    successors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SectionRecord:
    s0: float
    s1: float
    lanes: tuple[LaneRecord, ...]  # left (descending id), centre, right (descending id)

    def lane(self, lane_id: int) -> LaneRecord | None:
        return next((lane for lane in self.lanes if lane.id == lane_id), None)


@dataclass(frozen=True, slots=True)
class LinkRecord:
    element_type: str  # "road" or "junction"
    element_id: str
    contact_point: str | None


@dataclass(frozen=True, slots=True)
class RoadRecord:
    """One ``<road>``: plan view, profiles, lane sections, links, signals and objects."""

    id: str
    name: str
    junction: str
    length: float
    plan_view: PlanView
    elevation: tuple[Cubic, ...]
    lane_offset: tuple[Cubic, ...]
    sections: tuple[SectionRecord, ...]
    predecessor: LinkRecord | None
    successor: LinkRecord | None
    signals: tuple[etree._Element, ...] = field(repr=False)
    objects: tuple[etree._Element, ...] = field(repr=False)
    superelevation: tuple[Cubic, ...] = ()
    shapes: tuple[tuple[float, tuple[Cubic, ...]], ...] = ()  # (s, cubics in t with s0 = t)

    def lane_edges(
        self, section: SectionRecord, s: np.ndarray
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Lane id -> (inner t, outer t) in metres at ``s`` within ``section``."""
        offset = cubic_value(self.lane_offset, s)
        edges: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for side in (-1, 1):
            inner = offset.copy()
            ids = sorted((lane.id for lane in section.lanes if lane.id * side > 0), key=abs)
            for lane_id in ids:
                lane = section.lane(lane_id)
                if lane.borders and not lane.widths:
                    outer = offset + cubic_value(lane.borders, s)
                else:
                    outer = inner + side * cubic_value(lane.widths, s)
                edges[lane_id] = (inner, outer)
                inner = outer
        return edges

    def z(self, s: np.ndarray) -> np.ndarray:
        """Height of the reference line at ``s`` (metres)."""
        return cubic_value(self.elevation, s)

    def surface_z(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Height of the road surface at (s, t): elevation, superelevation (roll, positive
        falling to the right) and lateral shape (interpolated linearly between its stations)."""
        s = np.asarray(s, dtype=float)
        t = np.broadcast_to(np.asarray(t, dtype=float), s.shape)
        z = self.z(s) + t * np.tan(cubic_value(self.superelevation, s))
        if self.shapes:
            stations = np.array([st for st, _ in self.shapes])
            heights = np.array([cubic_value(c, t) for _, c in self.shapes])  # (stations, n)
            if len(stations) == 1:
                return z + heights[0]
            k = np.clip(np.searchsorted(stations, s, side="right") - 1, 0, len(stations) - 2)
            span = stations[k + 1] - stations[k]
            w = np.clip((s - stations[k]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
            cols = np.arange(len(s))
            z = z + (1 - w) * heights[k, cols] + w * heights[k + 1, cols]
        return z


@dataclass(frozen=True, slots=True)
class Network:
    """A parsed OpenDRIVE file: version, georeference, roads and junctions (id -> name)."""

    path: str
    rev_minor: int
    name: str
    geo_reference: str
    roads: tuple[RoadRecord, ...]
    junctions: dict[str, etree._Element] = field(repr=False)


def _cubics(
    parent: etree._Element | None, tag: str, s_name: str, base: float = 0.0
) -> tuple[Cubic, ...]:
    if parent is None:
        return ()
    out = [
        Cubic(base + _f(e, s_name), _f(e, "a"), _f(e, "b"), _f(e, "c"), _f(e, "d"))
        for e in parent.findall(tag)
    ]
    return tuple(sorted(out, key=lambda c: c.s0))


def _shapes(profile: etree._Element | None) -> tuple[tuple[float, tuple[Cubic, ...]], ...]:
    if profile is None:
        return ()
    by_s: dict[float, list[Cubic]] = defaultdict(list)
    for e in profile.findall("shape"):
        by_s[_f(e, "s")].append(Cubic(_f(e, "t"), _f(e, "a"), _f(e, "b"), _f(e, "c"), _f(e, "d")))
    return tuple((st, tuple(sorted(c, key=lambda c: c.s0))) for st, c in sorted(by_s.items()))


def _link(el: etree._Element | None) -> LinkRecord | None:
    if el is None or el.get("elementId") is None:
        return None
    return LinkRecord(el.get("elementType", "road"), el.get("elementId"), el.get("contactPoint"))


def _plan_view(road: etree._Element, path: Path) -> PlanView:
    records = []
    pv = road.find("planView")
    if pv is None:
        raise FormatError(f"road {road.get('id')!r} has no <planView>", path=path)
    for g in pv.findall("geometry"):
        shape = next(iter(g), None)
        if shape is None:
            raise FormatError(f"road {road.get('id')!r}: <geometry> without a shape", path=path)
        kind = shape.tag
        if kind == "arc":
            params = (("curvature", _f(shape, "curvature")),)
        elif kind == "spiral":
            params = (("curvStart", _f(shape, "curvStart")), ("curvEnd", _f(shape, "curvEnd")))
        elif kind == "poly3":
            params = tuple((k, _f(shape, k)) for k in "abcd")
        elif kind == "paramPoly3":
            params = tuple(
                (k, _f(shape, k)) for k in ("aU", "bU", "cU", "dU", "aV", "bV", "cV", "dV")
            )
            params += (("pRange", shape.get("pRange", "normalized")),)
        elif kind == "line":
            params = ()
        else:
            raise FormatError(f"road {road.get('id')!r}: unknown geometry <{kind}>", path=path)
        records.append(
            PlanGeometry(
                _f(g, "s"), _f(g, "x"), _f(g, "y"), _f(g, "hdg"), _f(g, "length"), kind, params
            )
        )
    records.sort(key=lambda r: r.s)
    return PlanView(tuple(records))


def _sections(road: etree._Element, length: float) -> tuple[SectionRecord, ...]:
    lanes_el = road.find("lanes")
    if lanes_el is None:
        return ()
    raw = sorted(lanes_el.findall("laneSection"), key=lambda e: _f(e, "s"))
    out = []
    for k, sec in enumerate(raw):
        s0 = _f(sec, "s")
        s1 = _f(raw[k + 1], "s") if k + 1 < len(raw) else length
        lanes = []
        for lane in sec.iter("lane"):
            link = lane.find("link")
            preds = tuple(
                int(_f(p, "id")) for p in (link.findall("predecessor") if link is not None else ())
            )
            succs = tuple(
                int(_f(p, "id")) for p in (link.findall("successor") if link is not None else ())
            )
            marks = tuple(
                sorted(
                    (
                        RoadMarkRecord(
                            s0 + _f(m, "sOffset"),
                            m.get("type", "none"),
                            m.get("color", "standard"),
                            _f(m, "width", 0.12),
                        )
                        for m in lane.findall("roadMark")
                    ),
                    key=lambda m: m.s_offset,
                )
            )
            lanes.append(
                LaneRecord(
                    int(_f(lane, "id")),
                    lane.get("type", "none"),
                    _cubics(lane, "width", "sOffset", s0),
                    _cubics(lane, "border", "sOffset", s0),
                    marks,
                    preds,
                    succs,
                )
            )
        out.append(SectionRecord(s0, max(s1, s0), tuple(lanes)))
    return tuple(out)


def load_network(path: str | os.PathLike[str], max_bytes: int = MAX_XML_BYTES) -> Network:
    """Parse an OpenDRIVE file into :class:`Network` records (nothing evaluated yet)."""
    path = Path(path)
    root = parse_xml(path, max_bytes=max_bytes).getroot()
    if root.tag != "OpenDRIVE":
        raise FormatError(f"root element is <{root.tag}>, not <OpenDRIVE>", path=path)
    header = root.find("header")
    if header is None:
        raise FormatError("no <header> element", path=path)
    geo = header.find("geoReference")
    geo_text = "".join(geo.itertext()).strip() if geo is not None else ""
    roads = []
    for road in root.findall("road"):
        length = _f(road, "length")
        link = road.find("link")
        roads.append(
            RoadRecord(
                id=road.get("id", ""),
                name=road.get("name", ""),
                junction=road.get("junction", "-1"),
                length=length,
                plan_view=_plan_view(road, path),
                elevation=_cubics(road.find("elevationProfile"), "elevation", "s"),
                lane_offset=_cubics(road.find("lanes"), "laneOffset", "s"),
                sections=_sections(road, length),
                predecessor=_link(link.find("predecessor")) if link is not None else None,
                successor=_link(link.find("successor")) if link is not None else None,
                signals=tuple(road.findall("signals/signal")),
                objects=tuple(road.findall("objects/object")),
                superelevation=_cubics(road.find("lateralProfile"), "superelevation", "s"),
                shapes=_shapes(road.find("lateralProfile")),
            )
        )
    junctions = {j.get("id", ""): j for j in root.findall("junction")}
    return Network(
        str(path),
        int(_f(header, "revMinor", 0)),
        header.get("name", ""),
        geo_text,
        tuple(roads),
        junctions,
    )


def _grid(s0: float, s1: float, step_m: float, extra: tuple[float, ...] = ()) -> np.ndarray:
    n = max(1, math.ceil((s1 - s0) / step_m - 1e-9))
    s = np.linspace(s0, s1, n + 1)
    if extra:
        s = np.unique(np.concatenate([s, [e for e in extra if s0 < e < s1]]))
    return s


def _section_grid(
    road: RoadRecord, section: SectionRecord, step_m: float, extra: tuple[float, ...] = ()
) -> np.ndarray:
    """Stations along a section so that every lane border is sampled ``step_m`` or finer
    (borders on the outside of a curve are longer than the reference line)."""
    s = _grid(section.s0, section.s1, step_m, extra)
    for _ in range(6):
        edges = road.lane_edges(section, s)
        worst = 0.0
        offsets = [outer for _inner, outer in edges.values()] + [cubic_value(road.lane_offset, s)]
        for outer in offsets:
            x, y = road.plan_view.offset_points(s, outer)
            if len(s) > 1:
                worst = max(worst, float(np.hypot(np.diff(x), np.diff(y)).max()))
        if worst <= step_m:
            break
        finer = float(np.diff(s).max()) * step_m / (worst * 1.02)
        s = _grid(section.s0, section.s1, finer, extra)
    return s


def lane_boundary_lines(
    network: Network, step_m: float = 0.5
) -> dict[tuple[str, int, int], np.ndarray]:
    """(road id, section index, lane id) -> outer border of that lane as (n, 3) x, y, z (metres).

    Lane id 0 is the centre lane (the reference line shifted by the lane offset).
    """
    out: dict[tuple[str, int, int], np.ndarray] = {}
    for road in network.roads:
        for k, sec in enumerate(road.sections):
            if sec.s1 - sec.s0 < 1e-6:
                continue
            s = _section_grid(road, sec, step_m)
            edges = road.lane_edges(sec, s)
            centre = cubic_value(road.lane_offset, s)
            x, y = road.plan_view.offset_points(s, centre)
            out[(road.id, k, 0)] = np.column_stack([x, y, road.surface_z(s, centre)])
            for lane_id, (_, outer) in edges.items():
                x, y = road.plan_view.offset_points(s, outer)
                out[(road.id, k, lane_id)] = np.column_stack([x, y, road.surface_z(s, outer)])
    return out


def _crs_of(geo: str) -> str:
    if not geo:
        from pipeline.crs import local_crs

        return local_crs().to_wkt()
    return " ".join(geo.split())


def _line(points: np.ndarray) -> LineString | None:
    keep = np.concatenate([[True], np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1) > 1e-9])
    pts = points[keep]
    return LineString(pts) if len(pts) >= 2 else None


def read_opendrive(
    path: str | os.PathLike[str], *, step_m: float = 0.5, max_bytes: int = MAX_XML_BYTES
) -> MapModel:
    """Read an OpenDRIVE file (1.1-1.8) into a :class:`MapModel`, sampled every ``step_m`` metres.

    Raises :class:`FormatError` for unsafe, malformed or structurally broken files.
    """
    if step_m <= 0 or step_m > 0.5:
        raise ValueError(f"step_m must be in (0, 0.5], got {step_m}")
    net = load_network(path, max_bytes=max_bytes)
    survey = f"opendrive:{Path(path).name}"
    kw = {"survey_id": survey, "method": "opendrive"}
    boundaries: list[LaneBoundary] = []
    lanes: dict[tuple[str, int, int], Lane] = {}
    junction_of_road = {r.id: r.junction for r in net.roads}
    road_by_id = {r.id: r for r in net.roads}
    for road in net.roads:
        for k, sec in enumerate(road.sections):
            if sec.s1 - sec.s0 < 1e-6:
                continue
            marks_at = tuple(m.s_offset for lane in sec.lanes for m in lane.marks)
            s = _section_grid(road, sec, step_m, marks_at)
            edges = road.lane_edges(sec, s)
            offset = cubic_value(road.lane_offset, s)
            bound_ids: dict[int, str | None] = {}
            types = {lane.id: lane.type for lane in sec.lanes}
            for lane in sec.lanes:
                # a border is kept when it bounds a lane for vehicles on either side
                outward = lane.id + (1 if lane.id > 0 else -1)
                beside = (1, -1) if lane.id == 0 else (lane.id, outward)
                if not any(types.get(i) in VEHICLE_LANE_TYPES for i in beside):
                    continue
                t = offset if lane.id == 0 else edges[lane.id][1]
                z = road.surface_z(s, t)
                bound_ids[lane.id] = _boundaries(road, k, lane, s, t, z, boundaries, kw)
            for lane in sec.lanes:
                if lane.id == 0 or lane.type not in VEHICLE_LANE_TYPES:
                    continue
                inner, outer = edges[lane.id]
                width = np.abs(outer - inner)
                if float(width.max()) < 1e-3:
                    continue
                mid = 0.5 * (inner + outer)
                x, y = road.plan_view.offset_points(s, mid)
                pts = np.column_stack([x, y, road.surface_z(s, mid)])
                w = width
                if lane.id > 0:
                    pts, w = pts[::-1], w[::-1]
                geom = _line(pts)
                if geom is None:
                    continue
                if len(geom.coords) != len(w):
                    keep = np.concatenate(
                        [[True], np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1) > 1e-9]
                    )
                    w = w[keep]
                inner_id = lane.id - 1 if lane.id > 0 else lane.id + 1
                lanes[(road.id, k, lane.id)] = Lane.create(
                    geom,
                    tuple(float(v) for v in w),
                    **kw,
                    id_extra=(road.id, k, lane.id),
                    left_boundary=bound_ids.get(inner_id),
                    right_boundary=bound_ids.get(lane.id),
                    direction=Direction.FORWARD,
                    junction=None if road.junction in ("-1", "") else road.junction,
                )
    lanes = _link_lanes(net, lanes, road_by_id)
    junction_features = []
    for jid in net.junctions:
        members = [lane for key, lane in lanes.items() if junction_of_road.get(key[0]) == jid]
        if not members:
            continue
        hull = shapely.union_all(
            [lane.geometry.buffer(lane.width_m / 2) for lane in members]
        ).convex_hull
        if not isinstance(hull, Polygon):
            continue
        zmean = float(np.mean([c[2] for lane in members for c in lane.geometry.coords]))
        poly = Polygon([(x, y, zmean) for x, y in hull.exterior.coords])
        jf = Junction.create(
            poly, **kw, id_extra=("junction", jid), lanes=tuple(lane.id for lane in members)
        )
        junction_features.append(jf)
        for key, lane in list(lanes.items()):
            if junction_of_road.get(key[0]) == jid:
                lanes[key] = lane.replace(junction=jf.id)
    signs, poles, crosswalks, stops = _signals_and_objects(net, kw)
    return MapModel(
        _crs_of(net.geo_reference),
        name=net.name,
        lane_boundaries=tuple(boundaries),
        lanes=tuple(lanes.values()),
        stop_lines=tuple(stops),
        crosswalks=tuple(crosswalks),
        poles=tuple(poles),
        signs=tuple(signs),
        junctions=tuple(junction_features),
    )


def _boundaries(road, k, lane, s, t, z, out, kw) -> str | None:
    """Append the lane's outer border split by road mark; return the id of the longest piece."""
    marks = lane.marks or (RoadMarkRecord(s[0], "none", "standard", 0.12),)
    best, best_len = None, -1.0
    for m_idx, mark in enumerate(marks):
        start = max(mark.s_offset, s[0])
        end = marks[m_idx + 1].s_offset if m_idx + 1 < len(marks) else s[-1]
        sel = (s >= start - 1e-9) & (s <= end + 1e-9)
        if sel.sum() < 2:
            continue
        x, y = road.plan_view.offset_points(s[sel], t[sel])
        geom = _line(np.column_stack([x, y, z[sel]]))
        if geom is None:
            continue
        kind = _MARKING_OF_TYPE.get(mark.type, MarkingKind.SOLID)
        if lane.id > 0:  # left side: OpenDRIVE lists double marks inside-out, i.e. right to left
            kind = _SWAPPED_KIND.get(kind, kind)
        b = LaneBoundary.create(
            geom,
            kind,
            _COLOR_OF.get(mark.color, Color.UNKNOWN),
            **kw,
            id_extra=(road.id, k, lane.id, m_idx),
            width_m=mark.width if mark.width > 0 else 0.12,
        )
        out.append(b)
        if end - start > best_len:
            best, best_len = b.id, end - start
    return best


def _link_lanes(net: Network, lanes: dict, road_by_id: dict) -> dict:
    """Fill predecessors/successors (travel direction) and same-direction neighbours."""
    at_end: dict[tuple, set] = defaultdict(set)  # key -> keys touching its s-end
    at_start: dict[tuple, set] = defaultdict(set)

    def connect(a, a_end: bool, b, b_end: bool) -> None:
        if a not in lanes or b not in lanes:
            return
        (at_end if a_end else at_start)[a].add(b)
        (at_end if b_end else at_start)[b].add(a)

    def last(road) -> int:
        return len(road.sections) - 1

    for road in net.roads:
        for k, sec in enumerate(road.sections):
            for lane in sec.lanes:
                key = (road.id, k, lane.id)
                for succ in lane.successors:
                    if k < last(road):
                        connect(key, True, (road.id, k + 1, succ), False)
                    elif road.successor and road.successor.element_type == "road":
                        other = road_by_id.get(road.successor.element_id)
                        if other and other.sections:
                            cp_end = road.successor.contact_point == "end"
                            connect(
                                key, True, (other.id, last(other) if cp_end else 0, succ), cp_end
                            )
                for pred in lane.predecessors:
                    if k > 0:
                        connect(key, False, (road.id, k - 1, pred), True)
                    elif road.predecessor and road.predecessor.element_type == "road":
                        other = road_by_id.get(road.predecessor.element_id)
                        if other and other.sections:
                            cp_end = road.predecessor.contact_point != "start"
                            connect(
                                key, False, (other.id, last(other) if cp_end else 0, pred), cp_end
                            )
    for jid, junction in net.junctions.items():
        for conn in junction.findall("connection"):
            inc = road_by_id.get(conn.get("incomingRoad", ""))
            con = road_by_id.get(conn.get("connectingRoad", conn.get("linkedRoad", "")))
            if inc is None or con is None or not inc.sections or not con.sections:
                continue
            con_end = conn.get("contactPoint") == "end"
            if (
                inc.successor
                and inc.successor.element_type == "junction"
                and inc.successor.element_id == jid
            ):
                inc_end = True
            elif (
                inc.predecessor
                and inc.predecessor.element_type == "junction"
                and inc.predecessor.element_id == jid
            ):
                inc_end = False
            else:
                continue
            for ll in conn.findall("laneLink"):
                a = (inc.id, last(inc) if inc_end else 0, int(_f(ll, "from")))
                b = (con.id, last(con) if con_end else 0, int(_f(ll, "to")))
                connect(a, inc_end, b, con_end)
    out = {}
    for key, lane in lanes.items():
        road_id, k, lane_id = key
        forward = lane_id < 0
        succ = at_end[key] if forward else at_start[key]
        pred = at_start[key] if forward else at_end[key]
        step = 1 if forward else -1
        left = (road_id, k, lane_id + step)
        right = (road_id, k, lane_id - step)
        out[key] = lane.replace(
            successors=tuple(sorted(lanes[x].id for x in succ)),
            predecessors=tuple(sorted(lanes[x].id for x in pred)),
            left_neighbour=lanes[left].id if left in lanes and left[2] * lane_id > 0 else None,
            right_neighbour=lanes[right].id if right in lanes and right[2] * lane_id > 0 else None,
        )
    return out


def _signals_and_objects(net: Network, kw: dict):
    signs, poles, crosswalks, stops = [], [], [], []
    for road in net.roads:
        if road.plan_view.length <= 0:
            continue
        for n_sig, sig in enumerate(road.signals):
            if sig.get("dynamic", "no") == "yes":
                continue
            s, t = _f(sig, "s"), _f(sig, "t")
            x, y = road.plan_view.offset_points(np.array([s]), np.array([t]))
            _, _, hdg = road.plan_view.evaluate(np.array([s]))
            height = _f(sig, "height", 0.8) or 0.8
            width = _f(sig, "width", 0.8) or 0.8
            z = float(road.z(np.array([s]))[0]) + _f(sig, "zOffset") + height / 2
            facing = (
                float(hdg[0])
                + _f(sig, "hOffset")
                + (0.0 if sig.get("orientation") == "-" else math.pi)
            )
            azimuth = (90.0 - math.degrees(facing)) % 360.0
            cls = sign_class_of(sig.get("country", ""), sig.get("type", ""), sig.get("subtype", ""))
            signs.append(
                Sign.create(
                    Point(float(x[0]), float(y[0]), z),
                    cls,
                    SIGN_SHAPE[cls],
                    azimuth,
                    **kw,
                    id_extra=("signal", road.id, sig.get("id", ""), n_sig),
                    width_m=width,
                    height_m=height,
                )
            )
        for n_obj, obj in enumerate(road.objects):
            kind = obj.get("type", "")
            name = (obj.get("name") or "").lower()
            subtype = (obj.get("subtype") or "").lower()
            s, t = _f(obj, "s"), _f(obj, "t")
            x, y = road.plan_view.offset_points(np.array([s]), np.array([t]))
            _, _, road_hdg = road.plan_view.evaluate(np.array([s]))
            z0 = float(road.z(np.array([s]))[0]) + _f(obj, "zOffset")
            extra = ("object", road.id, obj.get("id", ""), n_obj)
            if kind in ("pole", "streetLamp"):
                radius = (
                    _f(obj, "radius", 0.0) or max(_f(obj, "width"), _f(obj, "length")) / 2 or 0.05
                )
                poles.append(
                    Pole.create(
                        Point(float(x[0]), float(y[0]), z0),
                        _f(obj, "height", 3.0) or 3.0,
                        radius,
                        **kw,
                        id_extra=extra,
                    )
                )
            elif kind == "crosswalk":
                poly = _outline(road, obj, float(x[0]), float(y[0]), float(road_hdg[0]), z0, s)
                if poly is not None:
                    crosswalks.append(Crosswalk.create(poly, **kw, id_extra=extra))
            elif kind == "roadMark" and ("stop" in name or "stop" in subtype):
                hdg = float(road_hdg[0]) + _f(obj, "hdg")
                half = _f(obj, "width", 3.0) / 2
                dx, dy = -math.sin(hdg) * half, math.cos(hdg) * half
                line = LineString([(x[0] - dx, y[0] - dy, z0), (x[0] + dx, y[0] + dy, z0)])
                stops.append(
                    StopLine.create(
                        line, **kw, id_extra=extra, width_m=_f(obj, "length", 0.4) or 0.4
                    )
                )
    return signs, poles, crosswalks, stops


def _outline(
    road: RoadRecord, obj, x0: float, y0: float, road_hdg: float, z0: float, s0: float
) -> Polygon | None:
    outline = obj.find("outlines/outline")
    if outline is None:
        outline = obj.find("outline")
    hdg = road_hdg + _f(obj, "hdg")
    pts: list[tuple[float, float, float]] = []
    if outline is not None:
        road_corners = outline.findall("cornerRoad")
        local_corners = outline.findall("cornerLocal")
        if road_corners:
            s = np.array([_f(c, "s") for c in road_corners])
            t = np.array([_f(c, "t") for c in road_corners])
            x, y = road.plan_view.offset_points(s, t)
            z = road.z(s) + np.array([_f(c, "dz") for c in road_corners])
            pts = list(zip(x.tolist(), y.tolist(), z.tolist(), strict=True))
        elif local_corners:
            c, sn = math.cos(hdg), math.sin(hdg)
            for cl in local_corners:
                u, v = _f(cl, "u"), _f(cl, "v")
                pts.append((x0 + u * c - v * sn, y0 + u * sn + v * c, z0 + _f(cl, "z")))
    if len(pts) < 3:
        length, width = _f(obj, "length"), _f(obj, "width")
        if length <= 0 or width <= 0:
            return None
        c, sn = math.cos(hdg), math.sin(hdg)
        for u, v in (
            (-length / 2, -width / 2),
            (length / 2, -width / 2),
            (length / 2, width / 2),
            (-length / 2, width / 2),
        ):
            pts.append((x0 + u * c - v * sn, y0 + u * sn + v * c, z0))
    poly = Polygon(pts)
    if not poly.is_valid or poly.area <= 0:
        return None
    return poly
