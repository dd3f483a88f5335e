"""The semantic rules of the local standard: one check function per rule of the catalogue.

The catalogue (``standards/rules.json``) says what each rule requires, its clause and severity;
:data:`RULE_CHECKS` maps every rule ID to the function that checks it. A check reads a
:class:`Context` (the parsed file, its geometries, an optional truth map) and yields
:class:`Finding` records. Checks are written so that one defect fires one rule: a rule skips what
another rule reports (a reference to a missing lane is XS-REF-002, not also XS-TOP-001; a feature
whose coordinates are broken is XS-GEO-001 and no geometric rule looks at it again).

XS-SCH-001 (the schema) runs in :mod:`qa.validate` before these checks; the accuracy checks
against truth (XS-ACC-003 to 005) run only when a truth map is given.

>>> sorted(RULE_CHECKS)[:3]
['XS-ACC-001', 'XS-ACC-002', 'XS-ACC-003']
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from formats.localstd import LAYER_ENCODINGS, LocalStdDocument, RawFeature, raw_geometry
from pipeline.model import MapModel, anchor_point
from standards import AccuracyGrade, accuracy_grade, code_lists, rule_catalogue, sign_class

__all__ = [
    "RULE_CHECKS",
    "SCHEMA_RULE",
    "TRUTH_LAYERS",
    "Context",
    "Finding",
    "nds_packed_tile_id",
    "run_rules",
]

SCHEMA_RULE = "XS-SCH-001"
#: Layers whose vertices (lines) or points serve as accuracy check points against truth.
TRUTH_LAYERS: tuple[str, ...] = (
    "lane_boundaries",
    "road_edges",
    "stop_lines",
    "poles",
    "signs",
    "road_arrows",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule violation: the rule, its clause and severity, the feature and where it is.

    ``x``/``y`` are in the file's CRS (metres); ``line`` is the source line of the feature.
    """

    rule_id: str
    severity: str
    clause: str
    message: str
    feature_id: str | None = None
    layer: str | None = None
    line: int | None = None
    x: float | None = None
    y: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "severity": self.severity,
            "clause": self.clause,
            "feature": self.feature_id,
            "layer": self.layer,
            "line": self.line,
            "x": self.x,
            "y": self.y,
            "message": self.message,
        }


@dataclass
class Context:
    """What every check reads: the document, its features by ID and their geometries."""

    document: LocalStdDocument
    truth: MapModel | None = None
    statistics: dict[str, Any] = field(default_factory=dict)  # accuracy figures, filled by checks

    @cached_property
    def by_id(self) -> dict[str, RawFeature]:
        out: dict[str, RawFeature] = {}
        for raw in self.document.features:
            out.setdefault(raw.id, raw)
        return out

    @cached_property
    def geometry_problems(self) -> dict[int, str]:
        """index -> why the coordinates cannot make a geometry (XS-GEO-001)."""
        out = {}
        for i, raw in enumerate(self.document.features):
            values = [v for ring in raw.rings for v in ring]
            if not all(math.isfinite(v) for v in values):
                out[i] = "coordinates hold NaN or infinite values"
                continue
            try:
                raw_geometry(raw)
            except ValueError as exc:
                if "triplets" in str(exc) or "one x y z" in str(exc):
                    out[i] = str(exc)
        return out

    @cached_property
    def geometries(self) -> dict[int, BaseGeometry]:
        """index -> geometry, for features whose coordinates are whole (degenerate ones too)."""
        out = {}
        for i, raw in enumerate(self.document.features):
            if i in self.geometry_problems:
                continue
            try:
                out[i] = raw_geometry(raw)
            except (ValueError, shapely.errors.GEOSException):
                continue
        return out

    @cached_property
    def degenerate(self) -> dict[int, str]:
        """index -> why the geometry is degenerate (XS-GEO-002)."""
        params = rule_catalogue().rule("XS-GEO-002").params
        out = {}
        for i, raw in enumerate(self.document.features):
            if i in self.geometry_problems:
                continue
            reason = _degenerate(raw, params["min_length_m"], params["min_area_m2"])
            if reason:
                out[i] = reason
        return out

    @cached_property
    def sound(self) -> dict[int, BaseGeometry]:
        """Geometries that are whole and not degenerate: what the geometric rules look at."""
        return {i: g for i, g in self.geometries.items() if i not in self.degenerate}

    @cached_property
    def index_of(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, raw in enumerate(self.document.features):
            out.setdefault(raw.id, i)
        return out

    @cached_property
    def grade(self) -> AccuracyGrade | None:
        try:
            return accuracy_grade(self.document.header.accuracy_grade or "")
        except KeyError:
            return None

    @cached_property
    def crs(self) -> pyproj.CRS | None:
        """The header CRS when it is a projected CRS in metres, else None (XS-CRS-001)."""
        return _projected_crs(self.document.header.crs)

    def finding(
        self, rule_id: str, message: str, raw: RawFeature | None = None, xy: Any = None
    ) -> Finding:
        rule = rule_catalogue().rule(rule_id)
        x = y = None
        if xy is not None:
            x, y = float(xy[0]), float(xy[1])
        elif raw is not None:
            geometry = self.geometries.get(self.index_of.get(raw.id, -1))
            if geometry is not None:
                x, y = _location(geometry)
        return Finding(
            rule_id,
            rule.severity,
            rule.clause,
            message,
            feature_id=None if raw is None else raw.id,
            layer=None if raw is None else raw.layer,
            line=None if raw is None else raw.line,
            x=x,
            y=y,
        )

    def features(self, *layers: str) -> Iterator[tuple[int, RawFeature]]:
        for i, raw in enumerate(self.document.features):
            if raw.layer in layers:
                yield i, raw


def _location(geometry: BaseGeometry) -> tuple[float | None, float | None]:
    """The anchor point in plan, or the first vertex when the geometry is degenerate."""
    try:
        x, y, _ = anchor_point(geometry)
    except (ValueError, shapely.errors.GEOSException):
        x = y = math.nan
    if not (math.isfinite(x) and math.isfinite(y)):
        coords = shapely.get_coordinates(geometry)
        if not len(coords):
            return None, None
        x, y = coords[0]
    return float(x), float(y)


def _projected_crs(text: str | None) -> pyproj.CRS | None:
    if not text:
        return None
    try:
        crs = pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError:
        return None
    if not crs.is_projected:
        return None
    units = {a.unit_name for a in crs.axis_info}
    return crs if units <= {"metre", "meter"} else None


def _degenerate(raw: RawFeature, min_length_m: float, min_area_m2: float) -> str:
    rings = [np.asarray(r, dtype=float).reshape(-1, 3) for r in raw.rings]
    if raw.geometry == "line":
        xyz = rings[0]
        if len(xyz) < 2 or len(np.unique(xyz, axis=0)) < 2:
            return "a line needs at least 2 distinct vertices"
        length = float(np.linalg.norm(np.diff(xyz, axis=0), axis=1).sum())
        if length < min_length_m:
            return f"line is {length:.3g} m long (< {min_length_m} m)"
        return ""
    if raw.geometry == "polygon":
        for ring in rings:
            if len(ring) < 4:
                return f"a ring has {len(ring)} positions (< 4)"
            if not np.array_equal(ring[0], ring[-1]):
                return "a ring is not closed (first and last positions differ)"
        area = abs(float(shapely.area(Polygon(rings[0][:, :2]))))
        if area < min_area_m2:
            return f"polygon area is {area:.3g} m² (< {min_area_m2} m²)"
    return ""


def _real(raw: RawFeature, name: str) -> float | None:
    text = raw.attributes.get(name)
    return None if text is None else float(text)


# ------------------------------------------------------------------------------------ the checks


def check_version(ctx: Context) -> Iterator[Finding]:
    header = ctx.document.header
    allowed = rule_catalogue().rule("XS-VER-001").params["format_versions"]
    if header.format_version not in allowed:
        yield ctx.finding(
            "XS-VER-001",
            f"format version {header.format_version!r} is not one of {', '.join(allowed)}",
        )
    if header.map_version is not None and not re.fullmatch(r"[1-9][0-9]*", header.map_version):
        yield ctx.finding(
            "XS-VER-001", f"map version {header.map_version!r} is not a positive integer"
        )


def check_crs_declared(ctx: Context) -> Iterator[Finding]:
    text = ctx.document.header.crs
    if not text:
        yield ctx.finding("XS-CRS-001", "no CRS declared in the header")
    elif ctx.crs is None:
        yield ctx.finding(
            "XS-CRS-001", f"CRS {text!r} is not understood or not a projected CRS in metres"
        )


def check_crs_cgcs2000(ctx: Context) -> Iterator[Finding]:
    if ctx.crs is None:
        return
    params = rule_catalogue().rule("XS-CRS-002").params
    epsg = ctx.crs.to_epsg(min_confidence=70)
    if epsg is None or not params["epsg_min"] <= epsg <= params["epsg_max"]:
        yield ctx.finding(
            "XS-CRS-002",
            f"CRS {ctx.crs.name!r} is not a CGCS2000 3-degree Gauss-Krüger zone",
        )


def check_height_datum(ctx: Context) -> Iterator[Finding]:
    datum = (ctx.document.header.height_datum or "").strip()
    if not datum or datum.lower() == "unknown":
        yield ctx.finding("XS-CRS-003", f"height datum not declared ({datum or 'absent'})")


def check_grade_declared(ctx: Context) -> Iterator[Finding]:
    grade = ctx.document.header.accuracy_grade
    if ctx.grade is None:
        known = ", ".join(code_lists()["accuracy_grades"].codes)
        what = "no accuracy grade declared" if grade is None else f"unknown grade {grade!r}"
        yield ctx.finding("XS-ACC-001", f"{what} (known grades: {known})")


def check_feature_accuracy(ctx: Context) -> Iterator[Finding]:
    grade = ctx.grade
    if grade is None:
        return
    for _, raw in ctx.features(*(e.layer for e in LAYER_ENCODINGS)):
        value = _real(raw, "accuracyM")
        if value is None:
            continue
        if not (math.isfinite(value) and value >= 0):
            yield ctx.finding("XS-ACC-002", f"accuracy estimate {value} m is not a valid 1σ", raw)
        elif grade.absolute_sigma * value > grade.absolute_m:
            yield ctx.finding(
                "XS-ACC-002",
                f"accuracy estimate {value:g} m (1σ) is {grade.absolute_sigma * value:g} m at "
                f"{grade.absolute_sigma}σ, beyond grade {grade.code}'s {grade.absolute_m:g} m",
                raw,
            )


def check_ids_unique(ctx: Context) -> Iterator[Finding]:
    seen: dict[str, RawFeature] = {}
    for raw in ctx.document.features:
        if raw.id in seen:
            first = seen[raw.id]
            yield ctx.finding(
                "XS-ID-001",
                f"ID {raw.id!r} already used by a feature of layer {first.layer!r} "
                f"(line {first.line})",
                raw,
            )
        else:
            seen[raw.id] = raw


def check_ids_well_formed(ctx: Context) -> Iterator[Finding]:
    suffix = rule_catalogue().rule("XS-ID-002").params["suffix_pattern"]
    for encoding in LAYER_ENCODINGS:
        pattern = re.compile(f"{re.escape(encoding.feature_type.id_prefix)}-{suffix}")
        for _, raw in ctx.features(encoding.layer):
            if not pattern.fullmatch(raw.id):
                yield ctx.finding(
                    "XS-ID-002",
                    f"ID {raw.id!r} is not '{encoding.feature_type.id_prefix}-' followed by "
                    f"{suffix}",
                    raw,
                )


def check_codes(ctx: Context) -> Iterator[Finding]:
    lists = code_lists()
    for encoding in LAYER_ENCODINGS:
        coded = [a for a in encoding.attributes if a.kind == "enum"]
        for _, raw in ctx.features(encoding.layer):
            for a in coded:
                value = raw.attributes.get(a.xml)
                if value is not None and value not in lists[a.codelist]:
                    yield ctx.finding(
                        "XS-COD-001",
                        f"{a.xml} {value!r} is not in code list {a.codelist} "
                        f"({', '.join(lists[a.codelist].codes)})",
                        raw,
                    )


def check_coordinates(ctx: Context) -> Iterator[Finding]:
    for i, reason in ctx.geometry_problems.items():
        yield ctx.finding("XS-GEO-001", reason, ctx.document.features[i])


def check_degenerate(ctx: Context) -> Iterator[Finding]:
    for i, reason in ctx.degenerate.items():
        yield ctx.finding("XS-GEO-002", reason, ctx.document.features[i])


def check_self_intersection(ctx: Context) -> Iterator[Finding]:
    for i, geometry in ctx.sound.items():
        raw = ctx.document.features[i]
        plan = shapely.force_2d(geometry)
        if isinstance(plan, LineString) and not plan.is_simple:
            yield ctx.finding("XS-GEO-003", "line intersects itself in plan", raw)
        elif isinstance(plan, Polygon) and not plan.is_valid:
            reason = shapely.is_valid_reason(plan)
            yield ctx.finding("XS-GEO-003", f"polygon is not valid in plan: {reason}", raw)


def check_width_count(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("lanes"):
        n_widths = len(raw.lists["widths"])
        n_vertices = len(raw.rings[0]) // 3 if raw.rings else 0
        if n_widths != n_vertices:
            yield ctx.finding(
                "XS-ATT-001", f"{n_widths} widths for {n_vertices} centreline vertices", raw
            )


def check_lane_widths(ctx: Context) -> Iterator[Finding]:
    params = rule_catalogue().rule("XS-ATT-002").params
    low, high = params["min_m"], params["max_m"]
    for _, raw in ctx.features("lanes"):
        outside = [w for w in raw.lists["widths"] if not low <= w <= high]
        if outside:
            yield ctx.finding(
                "XS-ATT-002",
                f"{len(outside)} lane width(s) outside {low}-{high} m, e.g. {outside[0]:g} m",
                raw,
            )


_POSITIVE = {
    "lane_boundaries": ("widthM", "dashLengthM", "gapLengthM"),
    "stop_lines": ("widthM",),
    "poles": ("heightM", "radiusM"),
    "signs": ("widthM", "heightM"),
}
_NON_NEGATIVE = {"road_edges": ("heightM",)}


def check_numeric_ranges(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features(*(e.layer for e in LAYER_ENCODINGS)):
        problems = []
        confidence = _real(raw, "confidence")
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            problems.append(f"confidence {confidence} outside [0, 1]")
        for name in _POSITIVE.get(raw.layer, ()):
            value = _real(raw, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                problems.append(f"{name} {value} is not greater than 0")
        for name in _NON_NEGATIVE.get(raw.layer, ()):
            value = _real(raw, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} {value} is negative")
        facing = _real(raw, "facingDeg") if raw.layer == "signs" else None
        if facing is not None and not 0.0 <= facing < 360.0:
            problems.append(f"facingDeg {facing} outside [0, 360)")
        for problem in problems:
            yield ctx.finding("XS-ATT-003", problem, raw)


def _near_any(value: float, allowed: list[float], tolerance: float) -> bool:
    return any(abs(value - a) <= tolerance for a in allowed)


def _marking(code: str | None) -> Mapping[str, Any] | None:
    for e in code_lists()["marking_kinds"].entries:
        if e.code == code:
            return e.extra
    return None


def check_marking_widths(ctx: Context) -> Iterator[Finding]:
    params = rule_catalogue().rule("XS-ATT-004").params
    tolerance = params["tolerance_m"]
    for _, raw in ctx.features("lane_boundaries", "stop_lines"):
        if raw.layer == "lane_boundaries":
            marking = _marking(raw.attributes.get("marking"))
            if marking is None or not marking["painted"]:
                continue
            allowed = params["lane_line_m"]
        else:
            allowed = params["stop_line_m"]
        width = _real(raw, "widthM")
        if width is None or not (math.isfinite(width) and width > 0):
            continue  # XS-ATT-003
        if not _near_any(width, allowed, tolerance):
            yield ctx.finding(
                "XS-ATT-004",
                f"painted width {width:g} m is not one of {allowed} m (±{tolerance} m)",
                raw,
            )


def check_dash_patterns(ctx: Context) -> Iterator[Finding]:
    params = rule_catalogue().rule("XS-ATT-005").params
    for _, raw in ctx.features("lane_boundaries"):
        marking = _marking(raw.attributes.get("marking"))
        if marking is None:
            continue  # XS-COD-001
        dash, gap = _real(raw, "dashLengthM"), _real(raw, "gapLengthM")
        if not marking["dashed"]:
            if dash is not None or gap is not None:
                yield ctx.finding(
                    "XS-ATT-005", "a marking without dashes gives a dash or gap length", raw
                )
            continue
        if dash is None or gap is None:
            yield ctx.finding("XS-ATT-005", "a dashed marking gives no dash and gap length", raw)
            continue
        if not all(math.isfinite(v) and v > 0 for v in (dash, gap)):
            continue  # XS-ATT-003
        tol = params["tolerance"]
        if not any(
            abs(dash - d) <= tol * d and abs(gap - g) <= tol * g for d, g in params["patterns_m"]
        ):
            yield ctx.finding(
                "XS-ATT-005",
                f"dash pattern {dash:g} m / {gap:g} m is not 2 m / 4 m or 6 m / 9 m (±10 %)",
                raw,
            )


def check_sign_shapes(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("signs"):
        code, shape = raw.attributes.get("class"), raw.attributes.get("shape")
        try:
            typical = sign_class(code or "").shape
        except KeyError:
            continue  # XS-COD-001
        if typical and shape in code_lists()["sign_shapes"] and shape != typical:
            yield ctx.finding(
                "XS-ATT-006", f"a {code} sign is typically a {typical}, not a {shape}", raw
            )


def _layer_of(ctx: Context, ref: str) -> str | None:
    raw = ctx.by_id.get(ref)
    return None if raw is None else raw.layer


def check_boundary_refs(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("lanes"):
        for name in ("leftBoundary", "rightBoundary"):
            ref = raw.attributes.get(name)
            if ref is not None and _layer_of(ctx, ref) != "lane_boundaries":
                yield ctx.finding("XS-REF-001", f"{name} {ref!r} is not a lane boundary", raw)


def _lane_links(raw: RawFeature) -> Iterator[tuple[str, str]]:
    for ref in raw.refs.get("predecessor", ()):
        yield "predecessor", ref
    for ref in raw.refs.get("successor", ()):
        yield "successor", ref
    for name in ("leftNeighbour", "rightNeighbour"):
        ref = raw.attributes.get(name)
        if ref is not None:
            yield name, ref


def check_lane_refs(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("lanes"):
        for name, ref in _lane_links(raw):
            if _layer_of(ctx, ref) != "lanes":
                yield ctx.finding("XS-REF-002", f"{name} {ref!r} is not a lane", raw)


def check_pole_refs(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("signs"):
        ref = raw.attributes.get("pole")
        if ref is not None and _layer_of(ctx, ref) != "poles":
            yield ctx.finding("XS-REF-003", f"pole {ref!r} is not a pole", raw)


def check_junction_refs(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("junctions"):
        for ref in raw.refs["lane"]:
            if _layer_of(ctx, ref) != "lanes":
                yield ctx.finding("XS-REF-004", f"lane {ref!r} is not a lane", raw)
    for _, raw in ctx.features("lanes"):
        ref = raw.attributes.get("junction")
        if ref is not None and _layer_of(ctx, ref) != "junctions":
            yield ctx.finding("XS-REF-004", f"junction {ref!r} is not a junction", raw)


def check_links_mutual(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("lanes"):
        for name, back in (("successor", "predecessor"), ("predecessor", "successor")):
            for ref in raw.refs[name]:
                other = ctx.by_id.get(ref)
                if other is None or other.layer != "lanes":
                    continue  # XS-REF-002
                if raw.id not in other.refs[back]:
                    yield ctx.finding(
                        "XS-TOP-001",
                        f"{name} {ref!r} does not list this lane as its {back}",
                        raw,
                    )


def check_neighbours_mutual(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("lanes"):
        for name, back in (
            ("rightNeighbour", "leftNeighbour"),
            ("leftNeighbour", "rightNeighbour"),
        ):
            ref = raw.attributes.get(name)
            other = ctx.by_id.get(ref) if ref is not None else None
            if other is None or other.layer != "lanes":
                continue
            if other.attributes.get(back) != raw.id:
                yield ctx.finding(
                    "XS-TOP-002", f"{name} {ref!r} does not name this lane as its {back}", raw
                )


def check_continuity(ctx: Context) -> Iterator[Finding]:
    tolerance = rule_catalogue().rule("XS-TOP-003").params["tolerance_m"]
    for i, raw in ctx.features("lanes"):
        geometry = ctx.sound.get(i)
        if geometry is None:
            continue
        end = np.asarray(geometry.coords[-1])
        for ref in raw.refs["successor"]:
            j = ctx.index_of.get(ref)
            successor = ctx.sound.get(j) if j is not None else None
            if successor is None or ctx.document.features[j].layer != "lanes":
                continue
            gap = float(np.linalg.norm(np.asarray(successor.coords[0]) - end))
            if gap > tolerance:
                yield ctx.finding(
                    "XS-TOP-003",
                    f"successor {ref!r} starts {gap:.3f} m from this lane's end "
                    f"(tolerance {tolerance} m)",
                    raw,
                    xy=end,
                )


def check_junction_membership(ctx: Context) -> Iterator[Finding]:
    for _, raw in ctx.features("junctions"):
        for ref in raw.refs["lane"]:
            lane = ctx.by_id.get(ref)
            if lane is None or lane.layer != "lanes":
                continue  # XS-REF-004
            if lane.attributes.get("junction") != raw.id:
                yield ctx.finding(
                    "XS-TOP-004", f"lists lane {ref!r}, which does not name this junction", raw
                )
    for _, raw in ctx.features("lanes"):
        ref = raw.attributes.get("junction")
        junction = ctx.by_id.get(ref) if ref is not None else None
        if junction is None or junction.layer != "junctions":
            continue
        if raw.id not in junction.refs["lane"]:
            yield ctx.finding(
                "XS-TOP-004", f"names junction {ref!r}, which does not list this lane", raw
            )


# ------------------------------------------------------------------------------------------ tiles


def _interleave(x: int, y: int, bits: int) -> int:
    out = 0
    for i in range(bits):
        out |= ((x >> i) & 1) << (2 * i)
        out |= ((y >> i) & 1) << (2 * i + 1)
    return out


def nds_packed_tile_id(lon_deg: float, lat_deg: float, level: int = 13) -> int:
    """The NDS.Live packed tile ID of the tile holding (lon, lat) at ``level`` (0-15).

    Tiles are 180/2^level degrees; x has level+1 bits and y level bits (two's complement), and
    ``packed = morton(x, y) + (1 << (16 + level))``.

    >>> nds_packed_tile_id(0.0, 0.0, 0)
    65536
    >>> nds_packed_tile_id(120.36, 31.59, 13).bit_length() - 1 - 16
    13
    """
    x = math.floor(lon_deg / 360.0 * 2**32)
    y = math.floor(lat_deg / 360.0 * 2**32)
    tx = (x >> (31 - level)) & ((1 << (level + 1)) - 1)
    ty = (y >> (31 - level)) & ((1 << level) - 1)
    return _interleave(tx, ty, level + 1) + (1 << (16 + level))


def check_tile(ctx: Context) -> Iterator[Finding]:
    tile = ctx.document.header.tile_id
    if tile is None:
        return
    level = rule_catalogue().rule("XS-TIL-001").params["level"]
    if tile <= 0 or tile.bit_length() - 1 - 16 != level:
        yield ctx.finding("XS-TIL-001", f"tile ID {tile} is not a packed level-{level} tile ID")
        return
    if ctx.crs is None:
        return  # XS-CRS-001
    to_lonlat = pyproj.Transformer.from_crs(ctx.crs, "EPSG:4326", always_xy=True)
    for i, geometry in ctx.geometries.items():
        x, y, _ = anchor_point(geometry)
        lon, lat = to_lonlat.transform(x, y)
        own = nds_packed_tile_id(lon, lat, level)
        if own != tile:
            raw = ctx.document.features[i]
            yield ctx.finding(
                "XS-TIL-001", f"anchor lies in tile {own}, not in the file's tile {tile}", raw
            )


# --------------------------------------------------------------------------------- truth accuracy


def _check_points(layered: Iterable[tuple[str, BaseGeometry]]) -> dict[str, np.ndarray]:
    """layer -> (n, 2) plan coordinates of the check points (line vertices and points)."""
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in TRUTH_LAYERS}
    for layer, geometry in layered:
        if isinstance(geometry, LineString | Point):
            out[layer].append(shapely.get_coordinates(geometry))
    return {k: np.concatenate(v) if v else np.empty((0, 2)) for k, v in out.items()}


def _truth_pieces(truth: MapModel, layer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's truth points and line segments (2D), so nearest queries stay cheap, with
    flags marking the first and last segment of each line."""
    pieces, first, last = [], [], []
    for f in truth.layer(layer):
        g = f.geometry
        if isinstance(g, Point):
            pieces.append(shapely.points([shapely.get_coordinates(g)[0]]))
            n = 1
        elif isinstance(g, LineString):
            xy = shapely.get_coordinates(g)
            pieces.append(shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1)))
            n = len(xy) - 1
        else:
            continue
        flags = np.zeros(n, dtype=bool)
        first.append(flags.copy())
        last.append(flags.copy())
        first[-1][0] = last[-1][-1] = True
    if not pieces:
        return np.empty(0, dtype=object), np.empty(0, dtype=bool), np.empty(0, dtype=bool)
    return np.concatenate(pieces), np.concatenate(first), np.concatenate(last)


def _truth_matches(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Check points of the file, their matched truth positions ((n, 2) each), layer indices,
    and the number of candidate check points (those inside the truth's extent).

    A line vertex is matched to the nearest point of the nearest truth line of its layer (so only
    its error across the line is measured), a point to the nearest truth point of its layer.
    """
    assert ctx.truth is not None and ctx.grade is not None
    radius = (
        rule_catalogue().rule("XS-ACC-003").params["match_radius_factor"] * ctx.grade.absolute_m
    )
    file_points = _check_points(
        (ctx.document.features[i].layer, g)
        for i, g in ctx.sound.items()
        if ctx.document.features[i].layer in TRUTH_LAYERS
    )
    found, truth_xy, layers = [], [], []
    candidates = 0
    for layer in TRUTH_LAYERS:
        points = file_points[layer]
        truth, starts, ends = _truth_pieces(ctx.truth, layer)
        if not len(points) or not len(truth):
            continue
        x0, y0, x1, y1 = shapely.total_bounds(truth)
        inside = (
            (points[:, 0] >= x0 - radius)
            & (points[:, 0] <= x1 + radius)
            & (points[:, 1] >= y0 - radius)
            & (points[:, 1] <= y1 + radius)
        )
        candidates += int(inside.sum())
        tree = shapely.STRtree(truth)
        query = shapely.points(points)
        (qi, ti), _ = tree.query_nearest(query, max_distance=radius, return_distance=True)
        qi, nearest = np.unique(qi, return_index=True)
        ti = ti[nearest]
        geoms = truth[ti]
        on_truth = np.empty((len(qi), 2))
        keep = np.ones(len(qi), dtype=bool)
        is_line = np.array([isinstance(g, LineString) for g in geoms], dtype=bool)
        if is_line.any():
            lines = geoms[is_line]
            at = shapely.line_locate_point(lines, query[qi][is_line])
            on_truth[is_line] = shapely.get_coordinates(shapely.line_interpolate_point(lines, at))
            # beyond a truth line's end only the overshoot would be measured: not a check point
            overshoot = (starts[ti][is_line] & (at <= 1e-9)) | (
                ends[ti][is_line] & (at >= shapely.length(lines) - 1e-9)
            )
            keep[np.flatnonzero(is_line)[overshoot]] = False
        if (~is_line).any():
            on_truth[~is_line] = shapely.get_coordinates(geoms[~is_line])
        found.append(points[qi][keep])
        truth_xy.append(on_truth[keep])
        layers.append(np.full(int(keep.sum()), TRUTH_LAYERS.index(layer)))
    if not found:
        return np.empty((0, 2)), np.empty((0, 2)), np.empty(0, dtype=int), candidates
    return (
        np.concatenate(found),
        np.concatenate(truth_xy),
        np.concatenate(layers),
        candidates,
    )


def _truth_statistics(ctx: Context) -> dict[str, Any] | None:
    if ctx.truth is None or ctx.grade is None:
        return None
    if "matched" in ctx.statistics:
        return ctx.statistics
    from scipy.spatial import cKDTree

    points, truth, layer_index, candidates = _truth_matches(ctx)
    errors = points - truth
    stats: dict[str, Any] = {
        "grade": ctx.grade.code,
        "candidates": candidates,
        "matched": len(points),
    }
    if len(points):
        radial = np.hypot(errors[:, 0], errors[:, 1])
        stats["absolute_rmse_m"] = float(np.sqrt(np.mean(radial**2)))
        worst = int(np.argmax(radial))
        stats["absolute_worst_xy"] = (float(points[worst, 0]), float(points[worst, 1]))
        pair_distance = rule_catalogue().rule("XS-ACC-004").params["pair_distance_m"]
        # pairs of check points of the same layer (so that line vertices, whose along-line
        # error is not measured, are compared with like ones): each with its 10 nearest
        squares, pairs = 0.0, 0
        for layer in np.unique(layer_index):
            members = np.flatnonzero(layer_index == layer)
            k = min(len(members), 11)
            if k < 2:
                continue
            distance, neighbour = cKDTree(points[members]).query(
                points[members], k=k, distance_upper_bound=pair_distance
            )
            i, j = np.nonzero(np.isfinite(distance[:, 1:]))
            j = neighbour[:, 1:][i, j]
            keep = i < j
            i, j = members[i[keep]], members[j[keep]]
            squares += float(np.sum(np.sum((errors[i] - errors[j]) ** 2, axis=1)))
            pairs += len(i)
        if pairs:
            stats["relative_pairs"] = pairs
            stats["relative_rmse_m"] = math.sqrt(squares / pairs)
    ctx.statistics.update(stats)
    return ctx.statistics


def _assessable(stats: Mapping[str, Any]) -> str:
    """Why the accuracy cannot be assessed from these statistics ("" when it can)."""
    params = rule_catalogue().rule("XS-ACC-005").params
    matched, candidates = stats["matched"], stats["candidates"]
    if matched < params["min_points"]:
        return f"only {matched} check points matched the truth (< {params['min_points']})"
    if matched < params["min_matched_fraction"] * candidates:
        return (
            f"only {matched} of the {candidates} check points inside the truth's extent matched "
            f"it (< {params['min_matched_fraction']:.0%}): the map is far from the truth"
        )
    return ""


def _enough_points(ctx: Context) -> bool:
    stats = _truth_statistics(ctx)
    return stats is not None and not _assessable(stats)


def check_absolute_accuracy(ctx: Context) -> Iterator[Finding]:
    if not _enough_points(ctx):
        return
    stats, grade = ctx.statistics, ctx.grade
    value = grade.absolute_sigma * stats["absolute_rmse_m"]
    stats["absolute_m"] = value
    if value > grade.absolute_m:
        yield ctx.finding(
            "XS-ACC-003",
            f"absolute error {value:.3f} m ({grade.absolute_sigma}σ, RMSE "
            f"{stats['absolute_rmse_m']:.3f} m over {stats['matched']} check points) exceeds "
            f"grade {grade.code}'s {grade.absolute_m:g} m",
            xy=stats["absolute_worst_xy"],
        )


def check_relative_accuracy(ctx: Context) -> Iterator[Finding]:
    if not _enough_points(ctx) or "relative_rmse_m" not in ctx.statistics:
        return
    stats, grade = ctx.statistics, ctx.grade
    value = grade.relative_sigma * stats["relative_rmse_m"]
    stats["relative_m"] = value
    if value > grade.relative_m:
        yield ctx.finding(
            "XS-ACC-004",
            f"relative error {value:.3f} m ({grade.relative_sigma}σ, RMSE "
            f"{stats['relative_rmse_m']:.3f} m over {stats['relative_pairs']} point pairs) "
            f"exceeds grade {grade.code}'s {grade.relative_m:g} m",
            xy=stats["absolute_worst_xy"],
        )


def check_truth_sample_size(ctx: Context) -> Iterator[Finding]:
    stats = _truth_statistics(ctx)
    if stats is None:
        return
    reason = _assessable(stats)
    if reason:
        yield ctx.finding(
            "XS-ACC-005", f"{reason}; the accuracy grade could not be assessed statistically"
        )


RULE_CHECKS: dict[str, Callable[[Context], Iterator[Finding]]] = {
    "XS-VER-001": check_version,
    "XS-CRS-001": check_crs_declared,
    "XS-CRS-002": check_crs_cgcs2000,
    "XS-CRS-003": check_height_datum,
    "XS-ACC-001": check_grade_declared,
    "XS-ACC-002": check_feature_accuracy,
    "XS-ACC-003": check_absolute_accuracy,
    "XS-ACC-004": check_relative_accuracy,
    "XS-ACC-005": check_truth_sample_size,
    "XS-TIL-001": check_tile,
    "XS-ID-001": check_ids_unique,
    "XS-ID-002": check_ids_well_formed,
    "XS-COD-001": check_codes,
    "XS-GEO-001": check_coordinates,
    "XS-GEO-002": check_degenerate,
    "XS-GEO-003": check_self_intersection,
    "XS-ATT-001": check_width_count,
    "XS-ATT-002": check_lane_widths,
    "XS-ATT-003": check_numeric_ranges,
    "XS-ATT-004": check_marking_widths,
    "XS-ATT-005": check_dash_patterns,
    "XS-ATT-006": check_sign_shapes,
    "XS-REF-001": check_boundary_refs,
    "XS-REF-002": check_lane_refs,
    "XS-REF-003": check_pole_refs,
    "XS-REF-004": check_junction_refs,
    "XS-TOP-001": check_links_mutual,
    "XS-TOP-002": check_neighbours_mutual,
    "XS-TOP-003": check_continuity,
    "XS-TOP-004": check_junction_membership,
}


def run_rules(ctx: Context) -> tuple[list[Finding], tuple[str, ...]]:
    """Run every semantic rule of the catalogue in catalogue order; (findings, rule IDs run).

    Rules that need truth run only when ``ctx.truth`` is set.
    """
    findings: list[Finding] = []
    ran = []
    for rule in rule_catalogue().rules:
        if rule.id == SCHEMA_RULE or (rule.needs_truth and ctx.truth is None):
            continue
        findings.extend(RULE_CHECKS[rule.id](ctx))
        ran.append(rule.id)
    return findings, tuple(ran)
