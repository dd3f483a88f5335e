"""The canonical map model: immutable, typed feature records and the :class:`MapModel` holding them.

Every stage reads and writes this model, and every format in ``formats/`` converts it to and from
a file. Coordinates are metres in the projected CRS named by :attr:`MapModel.crs`; heights are in
metres above the datum named by :attr:`MapModel.height_datum`. Geometries are shapely 2 objects
with Z (immutable and hashable), so records are frozen and comparable.

Feature IDs are derived from content, never from a counter: :func:`feature_id` hashes the feature
class, the anchor point rounded to 0.1 m and the survey lineage, so that the same input gives the
same IDs and two map versions can be diffed.

>>> from shapely import LineString
>>> line = LineString([(0, 0, 10), (20, 0, 10)])
>>> b = LaneBoundary.create(line, MarkingKind.DASHED, Color.WHITE, survey_id="s1",
...                         dash_length_m=2.0, gap_length_m=4.0)
>>> b.id == LaneBoundary.create(line, MarkingKind.DASHED, Color.WHITE, survey_id="s1").id
True
>>> MapModel(crs="EPSG:4549").is_empty
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Self

import shapely
from shapely import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from pipeline.errors import FormatError

__all__ = [
    "FEATURE_TYPES",
    "ArrowKind",
    "Color",
    "Crosswalk",
    "Direction",
    "Feature",
    "Junction",
    "Lane",
    "LaneBoundary",
    "MapModel",
    "MarkingKind",
    "Pole",
    "Provenance",
    "RoadArrow",
    "RoadEdge",
    "RoadEdgeKind",
    "Sign",
    "SignClass",
    "SignShape",
    "StopLine",
    "anchor_point",
    "feature_id",
]


class MarkingKind(StrEnum):
    """Lane-boundary marking kinds (GB 5768.3 lane lines, plus curb and virtual boundaries)."""

    SOLID = "solid"
    DASHED = "dashed"
    DOUBLE_SOLID = "double_solid"
    SOLID_DASHED = "solid_dashed"  # solid on the left, dashed on the right (digitising direction)
    DASHED_SOLID = "dashed_solid"
    CURB = "curb"
    VIRTUAL = "virtual"


class Color(StrEnum):
    WHITE = "white"
    YELLOW = "yellow"
    UNKNOWN = "unknown"


class RoadEdgeKind(StrEnum):
    CURB = "curb"
    BARRIER = "barrier"
    PAVEMENT_EDGE = "pavement_edge"


class Direction(StrEnum):
    """Travel direction of a lane relative to the digitising direction of its centreline."""

    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


class ArrowKind(StrEnum):
    STRAIGHT = "straight"
    LEFT = "left"
    RIGHT = "right"
    STRAIGHT_LEFT = "straight_left"
    STRAIGHT_RIGHT = "straight_right"
    U_TURN = "u_turn"
    LEFT_U_TURN = "left_u_turn"


class SignShape(StrEnum):
    CIRCLE = "circle"
    TRIANGLE = "triangle"
    INVERTED_TRIANGLE = "inverted_triangle"
    OCTAGON = "octagon"
    RECTANGLE = "rectangle"


class SignClass(StrEnum):
    """GB 5768.2 sign categories (the full code list lives in ``standards/``)."""

    WARNING = "warning"
    PROHIBITION = "prohibition"
    STOP = "stop"
    YIELD = "yield"
    MANDATORY = "mandatory"
    GUIDE = "guide"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a feature came from: the survey, the extraction method and its version."""

    survey_id: str
    method: str = "unknown"


def anchor_point(geometry: BaseGeometry) -> tuple[float, float, float]:
    """The point a feature is owned by: a point itself, a line's midpoint, a polygon's centroid.

    >>> anchor_point(LineString([(0, 0, 1), (10, 0, 3)]))
    (5.0, 0.0, 2.0)
    >>> anchor_point(Point(1, 2, 3))
    (1.0, 2.0, 3.0)
    """
    if geometry.is_empty:
        raise ValueError("an empty geometry has no anchor point")
    if isinstance(geometry, Point):
        p = geometry
    elif isinstance(geometry, LineString):
        p = shapely.line_interpolate_point(geometry, 0.5, normalized=True)
    else:
        p = geometry.centroid
        if not p.has_z:
            z = shapely.get_coordinates(geometry, include_z=True)[:, 2].mean()
            return (float(p.x), float(p.y), float(z))
    z = p.z if p.has_z else 0.0
    return (float(p.x), float(p.y), float(z))


def feature_id(prefix: str, geometry: BaseGeometry, lineage: str, *extra: object) -> str:
    """A stable ID from the feature class, the anchor point rounded to 0.1 m and the lineage.

    >>> feature_id("pole", Point(10.04, 20.0, 1.0), "survey-1")
    'pole-2f0ca4a1219d7070'
    >>> feature_id("pole", Point(10.01, 20.0, 1.0), "survey-1")  # same 0.1 m cell, same ID
    'pole-2f0ca4a1219d7070'
    """
    x, y, z = anchor_point(geometry)
    key = "|".join(
        [prefix, f"{round(x, 1):.1f}", f"{round(y, 1):.1f}", f"{round(z, 1):.1f}", lineage]
    )
    key += "".join(f"|{e}" for e in extra)
    return f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def _check_geometry(record: Feature, geometry: BaseGeometry, kinds: tuple[type, ...]) -> None:
    if not isinstance(geometry, kinds):
        raise TypeError(
            f"{type(record).__name__} {record.id}: geometry must be "
            f"{' or '.join(k.__name__ for k in kinds)}, got {geometry.geom_type}"
        )
    if geometry.is_empty or not geometry.has_z:
        raise ValueError(f"{type(record).__name__} {record.id}: geometry must be non-empty 3D")
    coords = shapely.get_coordinates(geometry, include_z=True)
    if not all(math.isfinite(v) for v in coords.ravel()):
        raise ValueError(
            f"{type(record).__name__} {record.id}: geometry has NaN or infinite values"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Feature:
    """Fields every feature carries. Subclasses add their geometry and attributes."""

    id: str
    provenance: Provenance
    confidence: float = 1.0
    accuracy_m: float | None = None  # 1-sigma horizontal position accuracy estimate

    layer: ClassVar[str] = ""
    id_prefix: ClassVar[str] = ""
    geometry_types: ClassVar[tuple[type, ...]] = ()

    def __post_init__(self) -> None:
        _check_geometry(self, self.geometry, self.geometry_types)
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"{self.id}: confidence {self.confidence} is outside [0, 1]")

    @property
    def geometry(self) -> BaseGeometry:  # overridden by a field in every subclass
        raise NotImplementedError

    @classmethod
    def create(
        cls,
        geometry: BaseGeometry,
        *args: Any,
        survey_id: str,
        method: str = "unknown",
        id_extra: tuple[object, ...] = (),
        **kwargs: Any,
    ) -> Self:
        """Build a record whose ID is derived from its class, anchor point and survey lineage."""
        fid = feature_id(cls.id_prefix, geometry, survey_id, *id_extra)
        return cls(geometry, *args, id=fid, provenance=Provenance(survey_id, method), **kwargs)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneBoundary(Feature):
    """A painted or virtual lane boundary: a 3D polyline along the marking centre."""

    geometry: LineString = field(kw_only=False)
    marking: MarkingKind = field(kw_only=False)
    color: Color = field(kw_only=False, default=Color.UNKNOWN)
    width_m: float = 0.15  # painted line width
    dash_length_m: float | None = None  # dashed kinds only
    gap_length_m: float | None = None

    layer: ClassVar[str] = "lane_boundaries"
    id_prefix: ClassVar[str] = "lb"
    geometry_types: ClassVar[tuple[type, ...]] = (LineString,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lane(Feature):
    """A lane: centreline digitised in the travel direction, with widths at its vertices."""

    geometry: LineString = field(kw_only=False)
    widths_m: tuple[float, ...] = field(kw_only=False)
    left_boundary: str | None = None
    right_boundary: str | None = None
    direction: Direction = Direction.FORWARD
    predecessors: tuple[str, ...] = ()
    successors: tuple[str, ...] = ()
    left_neighbour: str | None = None
    right_neighbour: str | None = None
    junction: str | None = None

    layer: ClassVar[str] = "lanes"
    id_prefix: ClassVar[str] = "lane"
    geometry_types: ClassVar[tuple[type, ...]] = (LineString,)

    def __post_init__(self) -> None:
        Feature.__post_init__(self)
        if len(self.widths_m) != len(self.geometry.coords):
            raise ValueError(
                f"{self.id}: {len(self.widths_m)} widths for "
                f"{len(self.geometry.coords)} centreline vertices"
            )

    @property
    def width_m(self) -> float:
        """Mean width over the centreline vertices, metres."""
        return sum(self.widths_m) / len(self.widths_m)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoadEdge(Feature):
    """Edge of the drivable surface: the foot of a curb face, a barrier, or the pavement's end."""

    geometry: LineString = field(kw_only=False)
    kind: RoadEdgeKind = field(kw_only=False)
    height_m: float | None = None  # curb step or barrier height

    layer: ClassVar[str] = "road_edges"
    id_prefix: ClassVar[str] = "edge"
    geometry_types: ClassVar[tuple[type, ...]] = (LineString,)


@dataclass(frozen=True, slots=True, kw_only=True)
class StopLine(Feature):
    """A stop line: the centre line of the painted bar across the lanes."""

    geometry: LineString = field(kw_only=False)
    width_m: float = 0.4

    layer: ClassVar[str] = "stop_lines"
    id_prefix: ClassVar[str] = "stop"
    geometry_types: ClassVar[tuple[type, ...]] = (LineString,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Crosswalk(Feature):
    """A zebra crosswalk: the outline of its stripes as one polygon."""

    geometry: Polygon = field(kw_only=False)

    layer: ClassVar[str] = "crosswalks"
    id_prefix: ClassVar[str] = "xwalk"
    geometry_types: ClassVar[tuple[type, ...]] = (Polygon,)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoadArrow(Feature):
    """A painted arrow: its outline polygon (or a point when only its position is known)."""

    geometry: Polygon | Point = field(kw_only=False)
    kind: ArrowKind = field(kw_only=False)

    layer: ClassVar[str] = "road_arrows"
    id_prefix: ClassVar[str] = "arrow"
    geometry_types: ClassVar[tuple[type, ...]] = (Polygon, Point)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pole(Feature):
    """A vertical pole: the point where its axis meets the ground."""

    geometry: Point = field(kw_only=False)
    height_m: float = field(kw_only=False)
    radius_m: float = field(kw_only=False)

    layer: ClassVar[str] = "poles"
    id_prefix: ClassVar[str] = "pole"
    geometry_types: ClassVar[tuple[type, ...]] = (Point,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sign(Feature):
    """A traffic-sign panel: its centre in 3D, class, shape, facing azimuth and size."""

    geometry: Point = field(kw_only=False)
    sign_class: SignClass = field(kw_only=False)
    shape: SignShape = field(kw_only=False)
    facing_deg: float = field(
        kw_only=False
    )  # azimuth the panel face points to, clockwise from grid north
    width_m: float = 0.8
    height_m: float = 0.8  # panel height (its centre height is the geometry's z)
    pole: str | None = None

    layer: ClassVar[str] = "signs"
    id_prefix: ClassVar[str] = "sign"
    geometry_types: ClassVar[tuple[type, ...]] = (Point,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Junction(Feature):
    """A junction area, with the lanes that cross it."""

    geometry: Polygon = field(kw_only=False)
    lanes: tuple[str, ...] = ()

    layer: ClassVar[str] = "junctions"
    id_prefix: ClassVar[str] = "junction"
    geometry_types: ClassVar[tuple[type, ...]] = (Polygon,)


FEATURE_TYPES: tuple[type[Feature], ...] = (
    LaneBoundary,
    Lane,
    RoadEdge,
    StopLine,
    Crosswalk,
    RoadArrow,
    Pole,
    Sign,
    Junction,
)
_FIELD_OF_TYPE = {
    LaneBoundary: "lane_boundaries",
    Lane: "lanes",
    RoadEdge: "road_edges",
    StopLine: "stop_lines",
    Crosswalk: "crosswalks",
    RoadArrow: "road_arrows",
    Pole: "poles",
    Sign: "signs",
    Junction: "junctions",
}


@dataclass(frozen=True, slots=True)
class MapModel:
    """A map: its CRS, height datum and one tuple of features per class.

    ``crs`` is anything pyproj accepts (``"EPSG:4549"`` or WKT) and must be projected, in metres.
    """

    crs: str
    height_datum: str = "unknown"
    name: str = ""
    lane_boundaries: tuple[LaneBoundary, ...] = ()
    lanes: tuple[Lane, ...] = ()
    road_edges: tuple[RoadEdge, ...] = ()
    stop_lines: tuple[StopLine, ...] = ()
    crosswalks: tuple[Crosswalk, ...] = ()
    road_arrows: tuple[RoadArrow, ...] = ()
    poles: tuple[Pole, ...] = ()
    signs: tuple[Sign, ...] = ()
    junctions: tuple[Junction, ...] = ()

    def __post_init__(self) -> None:
        for cls, name in _FIELD_OF_TYPE.items():
            values = getattr(self, name)
            if not isinstance(values, tuple):
                object.__setattr__(self, name, values := tuple(values))
            for f in values:
                if type(f) is not cls:
                    raise TypeError(f"MapModel.{name} holds a {type(f).__name__}")
        seen: dict[str, str] = {}
        for f in self.features():
            if f.id in seen:
                raise FormatError(f"duplicate feature id {f.id!r} in {seen[f.id]} and {f.layer}")
            seen[f.id] = f.layer

    @classmethod
    def from_features(cls, crs: str, features: Iterable[Feature], **kwargs: Any) -> MapModel:
        """Sort features into their layers, keeping their order.

        >>> MapModel.from_features("EPSG:4549", []).is_empty
        True
        """
        buckets: dict[str, list[Feature]] = {name: [] for name in _FIELD_OF_TYPE.values()}
        for f in features:
            buckets[_FIELD_OF_TYPE[type(f)]].append(f)
        return cls(crs, **kwargs, **{k: tuple(v) for k, v in buckets.items()})

    def layer(self, name: str) -> tuple[Feature, ...]:
        """The features of one layer by its GeoPackage name (``"lane_boundaries"``...)."""
        if name not in _FIELD_OF_TYPE.values():
            raise KeyError(f"no layer {name!r}")
        return getattr(self, name)

    def features(self) -> Iterator[Feature]:
        """Every feature, layer by layer in the order of :data:`FEATURE_TYPES`."""
        for name in _FIELD_OF_TYPE.values():
            yield from getattr(self, name)

    def by_id(self) -> dict[str, Feature]:
        return {f.id: f for f in self.features()}

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in _FIELD_OF_TYPE.values())

    def counts(self) -> dict[str, int]:
        """Feature count per layer.

        >>> MapModel("EPSG:4549").counts()["poles"]
        0
        """
        return {name: len(getattr(self, name)) for name in _FIELD_OF_TYPE.values()}

    def replace(self, **changes: Any) -> MapModel:
        return dataclasses.replace(self, **changes)


LAYERS: tuple[str, ...] = tuple(_FIELD_OF_TYPE.values())
