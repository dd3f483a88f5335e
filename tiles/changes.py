"""Change detection between two map versions, and the merge that makes the next published map.

:func:`compare_maps` matches the features of an OLD and a NEW map (same projected CRS, metres)
layer by layer by their geometry, never by their IDs (two surveys give different IDs), and reports
atomic changes in the ArgoTweak taxonomy (:data:`CHANGE_TYPES`) as :class:`ChangeRecord` values.

Matching, per layer kind (all distances planimetric, 2D, unless named 3D):

- points (``poles``, ``signs``; ``road_arrows`` by centroid): one to one within the layer's match
  distance by the Hungarian method (:func:`qa.score.match_points`), run per cluster of candidates
  that an STRtree finds, so a district map stays cheap. Signs use the 3D distance (panels stacked
  on one pole) and also compare class and shape (``type_changed``) and facing (a turned panel is a
  ``geometry_changed``); arrows compare their kind.
- polygons (``crosswalks``, ``junctions``): one to one by centroid distance within the match
  distance plus overlap (cost: centroid distance / match distance + 1 - IoU); changed when the
  IoU falls below ``min_iou``, or when the centroid moved beyond the threshold and the smaller
  polygon lies less than ``min_cover`` inside the other (a partly extracted crosswalk moves its
  centroid but stays inside the whole one).
- lines (``lane_boundaries``, ``lanes``, ``road_edges``, ``stop_lines``): both maps' lines are cut
  into pieces of at most ``piece_m``; each piece finds the nearest roughly parallel line of the
  other map within the match distance (candidates from a grid hash of piece midpoints; a piece
  beyond that line's end counts as overhang, not as a displacement). Two lines are linked when the
  length they share covers at least ``link_share`` of either, and linked lines form groups, so that
  a line split differently by two extractions (one solid line where there were a dashed and a solid
  piece) is one group with at most one record per change type, never a deletion plus an insertion.
  Per group: ``geometry_changed`` when a stretch of at least ``min(displaced_length_m, half the
  matched length)`` lies farther than the layer's change threshold from the other map's lines, or
  when a stretch of a side no line of the other map lies beside is at least ``extent_m`` long and
  ``extent_share`` of the side (a line extended or cut back; two extractions of one road differ by a
  few dashes); ``marking_changed`` (lane boundaries: marking kind, or colour when both are known)
  and ``type_changed`` (road-edge kind) when the attribute differs over at least ``min(min_length_m,
  half the matched length)``; lanes also get ``type_changed`` when their travel direction flips, and
  ``connectivity_changed`` when their predecessors, successors or neighbours (mapped through the
  matched groups, links to deleted or inserted lanes left out) differ.

Unmatched OLD features are ``deleted``, unmatched NEW ones ``inserted``. Records of a group with
several features on a side list them all in ``details["old_ids"]`` / ``details["new_ids"]``.
The defaults of :class:`ChangeTolerances` keep two surveys of an unchanged road free of records
(extraction noise is a few centimetres, line ends vary by a few metres) and still find a stop
line moved 1 m, a pole moved 3 m, a repainted lane line and an added or removed sign. Heights are
not compared for lines and polygons (only a sign panel's 3D position).

:func:`merge_maps` builds the next map: unchanged features keep their OLD record, changed and
inserted ones come from NEW, deleted ones are dropped, and references are rewritten to the IDs
that survive. An unchanged line group also comes from NEW when keeping it would leave the merged
map different from NEW: a NEW line split elsewhere ran on beside a dropped OLD piece
(:class:`LineSupport`), or a kept lane would need several neighbours. So
``compare_maps(merge_maps(old, new, c), new)`` has no records, and publishing the same map twice
makes no new version. :func:`changes_geojson` / :func:`write_changes_geojson` give the records as
RFC 7946 GeoJSON in WGS84.

>>> from tests.common import empty_model, sample_model
>>> compare_maps(sample_model(), sample_model()).records
()
>>> old = sample_model()
>>> new = old.replace(poles=old.poles[:1])
>>> [(r.change, r.layer) for r in compare_maps(old, new).records]
[('deleted', 'poles')]
>>> compare_maps(empty_model(), empty_model()).records
()
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyproj
import shapely
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import LineString

from pipeline.errors import CRSError, FormatError
from pipeline.files import write_json
from pipeline.model import LAYERS, Feature, Junction, Lane, MapModel, Sign, anchor_point
from qa.score import match_points, same_crs

__all__ = [
    "CHANGE_TYPES",
    "DEFAULT_CHANGE_M",
    "DEFAULT_MATCH_M",
    "LINE_LAYERS",
    "POINT_LAYERS",
    "POLYGON_LAYERS",
    "ChangeRecord",
    "ChangeTolerances",
    "LineSupport",
    "MapComparison",
    "changes_geojson",
    "compare_maps",
    "merge_maps",
    "write_changes_geojson",
]

CHANGE_TYPES = (
    "inserted",
    "deleted",
    "geometry_changed",
    "marking_changed",
    "type_changed",
    "connectivity_changed",
)
LINE_LAYERS = ("lane_boundaries", "lanes", "road_edges", "stop_lines")
POINT_LAYERS = ("poles", "signs", "road_arrows")
POLYGON_LAYERS = ("crosswalks", "junctions")

#: layer -> match distance (metres): farther apart, two features are not the same one
DEFAULT_MATCH_M: Mapping[str, float] = {
    "lane_boundaries": 1.0,
    "lanes": 1.5,
    "road_edges": 1.0,
    "stop_lines": 4.0,
    "crosswalks": 4.0,
    "road_arrows": 2.0,
    "poles": 5.0,
    "signs": 2.0,
    "junctions": 10.0,
}
#: layer -> geometry-change threshold (metres): a matched feature moved farther has changed
DEFAULT_CHANGE_M: Mapping[str, float] = {
    "lane_boundaries": 0.3,
    "lanes": 0.5,
    "road_edges": 0.3,
    "stop_lines": 0.3,
    "crosswalks": 0.5,
    "road_arrows": 0.5,
    "poles": 0.3,
    "signs": 0.3,
    "junctions": 1.0,
}
_ROUND = 4  # decimals kept in anchors and details (0.1 mm, 0.0001 degree)
_INFEASIBLE = 1e9


# ----------------------------------------------------------------------------------------------
# value types


def _json_safe(value: Any) -> Any:
    """Plain JSON values: tuples become lists, enums their value, numpy scalars Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One atomic change of one feature (or one group of split or merged line pieces).

    ``feature_id`` is the NEW ID, or the OLD one for ``deleted``; ``anchor`` is a point of the
    change (x, y, z in the maps' CRS, metres); ``details`` holds JSON values only.

    >>> r = ChangeRecord("deleted", "poles", "pole-1", "pole-1", None, (1.0, 2.0, 3.0))
    >>> ChangeRecord.from_dict(r.to_dict()) == r
    True
    """

    change: str
    layer: str
    feature_id: str
    old_id: str | None
    new_id: str | None
    anchor: tuple[float, float, float]
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.change not in CHANGE_TYPES:
            raise ValueError(f"unknown change type {self.change!r}")
        if self.layer not in LAYERS:
            raise ValueError(f"unknown layer {self.layer!r}")
        anchor = tuple(float(v) for v in self.anchor)
        if len(anchor) != 3 or not all(math.isfinite(v) for v in anchor):
            raise ValueError(f"anchor must be three finite numbers, got {self.anchor!r}")
        object.__setattr__(self, "anchor", anchor)
        object.__setattr__(self, "details", _json_safe(dict(self.details)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the store and the service keep records in this form)."""
        return {
            "change": self.change,
            "layer": self.layer,
            "feature_id": self.feature_id,
            "old_id": self.old_id,
            "new_id": self.new_id,
            "anchor": list(self.anchor),
            "details": _json_safe(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChangeRecord:
        """The record :meth:`to_dict` gave; :class:`~pipeline.errors.FormatError` if malformed."""
        try:
            return cls(
                str(data["change"]),
                str(data["layer"]),
                str(data["feature_id"]),
                None if data.get("old_id") is None else str(data["old_id"]),
                None if data.get("new_id") is None else str(data["new_id"]),
                tuple(data["anchor"]),
                dict(data.get("details") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"not a change record: {exc}") from None


@dataclass(frozen=True)
class ChangeTolerances:
    """Match distances and change thresholds (metres unless named otherwise).

    ``match_m`` and ``change_m`` override :data:`DEFAULT_MATCH_M` / :data:`DEFAULT_CHANGE_M` per
    layer; the other fields apply to the line layers (see the module docstring) and to signs
    (``facing_deg``) and polygons (``min_iou``, ``min_cover``).

    >>> t = ChangeTolerances(match_m={"stop_lines": 5.0})
    >>> t.match("stop_lines"), t.match("poles"), t.change("poles")
    (5.0, 5.0, 0.3)
    """

    match_m: Mapping[str, float] = field(default_factory=dict)
    change_m: Mapping[str, float] = field(default_factory=dict)
    piece_m: float = 1.0  # lines are compared in pieces this long
    parallel_deg: float = 30.0  # a piece pairs with a line within this angle
    link_share: float = 0.5  # share of a line's length that links it to another
    min_length_m: float = 5.0  # least changed length of a marking or kind (or half the line)
    displaced_length_m: float = 2.0  # least displaced length of a line (or half the line)
    extent_m: float = 10.0  # least length of a line group without counterpart ...
    extent_share: float = 0.3  # ... that is also this share of the group's length on its side
    facing_deg: float = 30.0  # least turn of a sign panel, degrees
    min_iou: float = 0.5  # polygons overlapping less have changed ...
    min_cover: float = 0.9  # ... and so have moved ones whose smaller one lies less inside

    def __post_init__(self) -> None:
        for name, defaults in (("match_m", DEFAULT_MATCH_M), ("change_m", DEFAULT_CHANGE_M)):
            given = dict(getattr(self, name))
            unknown = sorted(set(given) - set(defaults))
            if unknown:
                raise ValueError(f"{name}: unknown layers {unknown}")
            merged = {**defaults, **{k: float(v) for k, v in given.items()}}
            if not all(v > 0 for v in merged.values()):
                raise ValueError(f"{name}: every distance must be positive")
            object.__setattr__(self, name, merged)
        if not self.piece_m > 0 or not 0 < self.link_share <= 1:
            raise ValueError("piece_m must be positive and link_share in (0, 1]")

    def match(self, layer: str) -> float:
        """Match distance of ``layer``, metres."""
        return self.match_m[layer]

    def change(self, layer: str) -> float:
        """Geometry-change threshold of ``layer``, metres."""
        return self.change_m[layer]


@dataclass(frozen=True, slots=True)
class LineSupport:
    """A line group that is unchanged partly thanks to OLD lines outside it.

    Two extractions split a line at different places: a NEW line of the group (``new_ids``) may
    run on beside an OLD line of another group, or beside an OLD line that was deleted, and those
    pieces count as covered. When :func:`merge_maps` drops such an OLD line, the group's OLD lines
    (``old_ids``) alone may no longer cover its NEW lines, and the merged map would then differ
    from NEW (a stretch of lane missing). ``lost`` gives, per supporting OLD ID, the length
    (metres) of the group's NEW pieces that lie beside it, as four figures: the pieces that would
    then lie beside no line of the group, that would lie beside one, that would lie beside one
    farther than the change threshold, and beside one of another marking or kind. The other fields
    are the group's NEW-side figures and limits of :func:`compare_maps` (metres).

    >>> s = LineSupport("lanes", ("o1",), ("n1",), {"o2": (20.0, 0.0, 0.0, 0.0)},
    ...                 unmatched_m=0.0, unmatched_limit_m=15.0, matched_m=30.0)
    >>> s.breaks(set()), s.breaks({"o2"})
    (False, True)
    """

    layer: str
    old_ids: tuple[str, ...]
    new_ids: tuple[str, ...]
    lost: Mapping[str, tuple[float, float, float, float]]
    unmatched_m: float = 0.0  # NEW length beside no OLD line
    unmatched_limit_m: float = math.inf  # ... at which the group has changed
    matched_m: float = 0.0  # NEW length beside an OLD line of the group
    displaced_m: float = 0.0  # ... of it farther than the change threshold
    displaced_limit_m: float = math.inf  # the tolerance's displaced_length_m
    differ_m: float = 0.0  # ... of it of another marking or kind
    differ_limit_m: float = math.inf  # the tolerance's min_length_m (inf: no attribute)

    def breaks(self, dropped: Collection[str]) -> bool:
        """Whether the group would have changed with the OLD lines ``dropped`` gone (an upper
        bound: a piece left beside no line of the group counts as uncovered)."""
        gone, near, far, differ = (
            sum(v[k] for x, v in self.lost.items() if x in dropped) for k in range(4)
        )
        if not (gone or near):
            return False
        eps = 1e-6  # sums in another order than compare_maps adds them
        matched = self.matched_m + near
        return (
            self.unmatched_m + gone >= self.unmatched_limit_m - eps
            or self.displaced_m + far >= min(self.displaced_limit_m, 0.5 * matched) - eps > 0
            or self.differ_m + differ >= min(self.differ_limit_m, 0.5 * matched) - eps > 0
        )


@dataclass(frozen=True, slots=True)
class MapComparison:
    """The records of :func:`compare_maps`, sorted by layer, change type and feature ID, and the
    matched features (NEW ID -> OLD ID; a NEW line matched to several OLD pieces names the one it
    shares most length with). ``groups`` gives, for a NEW line of a group with several OLD lines
    (split differently), every OLD ID of its group; :func:`merge_maps` uses it to link the right
    piece. ``supports`` lists the line groups that rely on OLD lines outside them
    (:class:`LineSupport`); :func:`merge_maps` takes such a group from NEW when it drops them."""

    records: tuple[ChangeRecord, ...]
    matches: Mapping[str, str]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    supports: tuple[LineSupport, ...] = ()

    @property
    def unchanged(self) -> bool:
        return not self.records

    def counts(self) -> dict[tuple[str, str], int]:
        """(change type, layer) -> number of records.

        >>> MapComparison((), {}).counts()
        {}
        """
        out: dict[tuple[str, str], int] = defaultdict(int)
        for r in self.records:
            out[(r.change, r.layer)] += 1
        return dict(out)


# ----------------------------------------------------------------------------------------------
# entry point


def compare_maps(
    old: MapModel, new: MapModel, tolerances: ChangeTolerances = ChangeTolerances()
) -> MapComparison:
    """Every change from ``old`` to ``new`` (both in one projected CRS, metres).

    Raises :class:`~pipeline.errors.CRSError` when the CRSs differ. See the module docstring.

    >>> from shapely import Point
    >>> from tests.common import sample_model
    >>> m = sample_model()
    >>> moved = m.poles[0].replace(geometry=Point(m.poles[0].geometry.x + 0.5,
    ...                                            m.poles[0].geometry.y, m.poles[0].geometry.z))
    >>> (r,) = compare_maps(m, m.replace(poles=(moved, m.poles[1]))).records
    >>> r.change, r.details["displacement_m"]
    ('geometry_changed', 0.5)
    """
    if not same_crs(old.crs, new.crs):
        raise CRSError(
            f"the maps are in different CRSs: old {_short(old.crs)}, new {_short(new.crs)}"
        )
    records: list[ChangeRecord] = []
    matches: dict[str, str] = {}
    groups: dict[str, tuple[str, ...]] = {}
    supports: list[LineSupport] = []
    for layer in LAYERS:
        o, n = old.layer(layer), new.layer(layer)
        if not o and not n:
            continue
        if layer in LINE_LAYERS:
            recs, pairs, multi, support = _compare_lines(layer, o, n, tolerances)
            groups.update(multi)
            supports += support
        elif layer in POINT_LAYERS:
            recs, pairs = _compare_points(layer, o, n, tolerances)
        else:
            recs, pairs = _compare_polygons(layer, o, n, tolerances)
        records += recs
        matches.update(pairs)
    order = {name: i for i, name in enumerate(LAYERS)}
    kinds = {name: i for i, name in enumerate(CHANGE_TYPES)}
    records.sort(key=lambda r: (order[r.layer], kinds[r.change], r.feature_id, r.old_id or ""))
    return MapComparison(tuple(records), matches, groups, tuple(supports))


def _short(crs: str) -> str:
    try:
        c = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        return crs[:60]
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name


def _r(value: float) -> float:
    return round(float(value), _ROUND)


def _record(
    change: str,
    layer: str,
    old: Feature | None,
    new: Feature | None,
    details: Mapping[str, Any] | None = None,
    anchor: Sequence[float] | None = None,
) -> ChangeRecord:
    ref = new if new is not None else old
    assert ref is not None
    xyz = anchor_point(ref.geometry) if anchor is None else anchor
    return ChangeRecord(
        change,
        layer,
        ref.id,
        None if old is None else old.id,
        None if new is None else new.id,
        tuple(_r(v) for v in xyz),
        dict(details or {}),
    )


def _clusters(n_old: int, n_new: int, pairs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected (old indices, new indices) sets of a bipartite graph given as (old, new) rows;
    features without any pair are left out."""
    if len(pairs) == 0:
        return []
    rows, cols = pairs[:, 0], pairs[:, 1] + n_old
    size = n_old + n_new
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    used = np.zeros(size, dtype=bool)
    used[rows] = used[cols] = True
    out = []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        members = members[used[members]]
        if len(members):
            out.append((members[members < n_old], members[members >= n_old] - n_old))
    return out


# ----------------------------------------------------------------------------------------------
# points


def _xyz(features: Sequence[Feature]) -> np.ndarray:
    return np.array([anchor_point(f.geometry) for f in features], dtype=float).reshape(-1, 3)


def _candidates(old_xy: np.ndarray, new_xy: np.ndarray, radius_m: float) -> np.ndarray:
    """(old index, new index) rows of the points within ``radius_m`` of each other (2D)."""
    if not len(old_xy) or not len(new_xy):
        return np.zeros((0, 2), dtype=int)
    tree = shapely.STRtree(shapely.points(old_xy))
    new_i, old_i = tree.query(shapely.points(new_xy), predicate="dwithin", distance=radius_m)
    return np.column_stack([old_i, new_i]).astype(int)


def _match_point_sets(old_xyz: np.ndarray, new_xyz: np.ndarray, radius_m: float) -> list:
    """One-to-one (old, new) pairs: :func:`qa.score.match_points` per cluster of candidates."""
    pairs = []
    cand = _candidates(old_xyz[:, :2], new_xyz[:, :2], radius_m)
    for oi, ni in _clusters(len(old_xyz), len(new_xyz), cand):
        for a, b in match_points(old_xyz[oi], new_xyz[ni], radius_m):
            pairs.append((int(oi[a]), int(ni[b])))
    return sorted(pairs)


def _facing_turn(a_deg: float, b_deg: float) -> float:
    """Smallest angle between two azimuths, degrees."""
    return abs((b_deg - a_deg + 180.0) % 360.0 - 180.0)


def _compare_points(
    layer: str, old: Sequence[Feature], new: Sequence[Feature], tol: ChangeTolerances
) -> tuple[list[ChangeRecord], dict[str, str]]:
    oxyz, nxyz = _xyz(old), _xyz(new)
    if layer != "signs":  # poles by their foot, arrows by centroid: planimetric cost only
        oxyz, nxyz = oxyz.copy(), nxyz.copy()
        oxyz[:, 2] = nxyz[:, 2] = 0.0
    pairs = _match_point_sets(oxyz, nxyz, tol.match(layer))
    full_o, full_n = _xyz(old), _xyz(new)
    records: list[ChangeRecord] = []
    matches: dict[str, str] = {}
    for i, j in pairs:
        o, n = old[i], new[j]
        matches[n.id] = o.id
        vec = full_n[j] - full_o[i]
        dist = float(np.linalg.norm(vec if layer == "signs" else vec[:2]))
        geo: dict[str, Any] = {}
        if dist > tol.change(layer):
            geo = {"displacement_m": _r(dist), "vector_m": [_r(v) for v in vec]}
        if isinstance(o, Sign) and isinstance(n, Sign):
            turn = _facing_turn(o.facing_deg, n.facing_deg)
            if turn > tol.facing_deg:
                geo.setdefault("displacement_m", _r(dist))
                geo["facing_deg"] = {"old": _r(o.facing_deg), "new": _r(n.facing_deg)}
        if geo:
            records.append(_record("geometry_changed", layer, o, n, geo))
        kinds = _point_kinds(o, n)
        if kinds:
            old_k = {k: v[0] for k, v in kinds.items()}
            new_k = {k: v[1] for k, v in kinds.items()}
            records.append(_record("type_changed", layer, o, n, {"old": old_k, "new": new_k}))
    paired_o = {i for i, _ in pairs}
    paired_n = {j for _, j in pairs}
    records += [_record("deleted", layer, f, None) for i, f in enumerate(old) if i not in paired_o]
    records += [_record("inserted", layer, None, f) for j, f in enumerate(new) if j not in paired_n]
    return records, matches


def _point_kinds(old: Feature, new: Feature) -> dict[str, tuple[Any, Any]]:
    """Attribute -> (old, new) for the kind attributes that differ (an unknown class is no
    evidence of a change)."""
    out: dict[str, tuple[Any, Any]] = {}
    if isinstance(old, Sign) and isinstance(new, Sign):
        if "unknown" not in (old.sign_class, new.sign_class) and old.sign_class != new.sign_class:
            out["sign_class"] = (old.sign_class.value, new.sign_class.value)
        if old.shape != new.shape:
            out["shape"] = (old.shape.value, new.shape.value)
    elif hasattr(old, "kind") and old.kind != new.kind:  # road arrows
        out["kind"] = (old.kind.value, new.kind.value)
    return out


# ----------------------------------------------------------------------------------------------
# polygons


def _cover(a: Any, b: Any) -> float:
    """Share of the smaller polygon's area inside the other polygon."""
    smaller = min(float(shapely.area(a)), float(shapely.area(b)))
    return float(shapely.area(shapely.intersection(a, b))) / smaller if smaller > 0 else 0.0


def _iou(a: Any, b: Any) -> float:
    union = float(shapely.area(shapely.union(a, b)))
    return float(shapely.area(shapely.intersection(a, b))) / union if union > 0 else 0.0


def _compare_polygons(
    layer: str, old: Sequence[Feature], new: Sequence[Feature], tol: ChangeTolerances
) -> tuple[list[ChangeRecord], dict[str, str]]:
    radius = tol.match(layer)
    o2 = shapely.force_2d(np.array([f.geometry for f in old], dtype=object))
    n2 = shapely.force_2d(np.array([f.geometry for f in new], dtype=object))
    oxyz, nxyz = _xyz(old), _xyz(new)
    cand = _candidates(oxyz[:, :2], nxyz[:, :2], radius)
    pairs: list[tuple[int, int, float]] = []
    for oi, ni in _clusters(len(old), len(new), cand):
        d = np.hypot(*(oxyz[oi, None, :2] - nxyz[None, ni, :2]).transpose(2, 0, 1))
        iou = np.array([[_iou(o2[a], n2[b]) for b in ni] for a in oi])
        cost = np.where(d <= radius, d / radius + 1.0 - iou, _INFEASIBLE)
        rows, cols = linear_sum_assignment(cost)
        pairs += [
            (int(oi[r]), int(ni[c]), float(iou[r, c])) for r, c in zip(rows, cols, strict=True)
            if d[r, c] <= radius
        ]  # fmt: skip
    records: list[ChangeRecord] = []
    matches: dict[str, str] = {}
    for i, j, iou in sorted(pairs):
        o, n = old[i], new[j]
        matches[n.id] = o.id
        vec = nxyz[j] - oxyz[i]
        dist = float(np.hypot(vec[0], vec[1]))
        # one extraction may miss part of a crosswalk: its centroid moves, but the smaller
        # polygon still lies within the larger one
        cover = _cover(o2[i], n2[j])
        if (dist > tol.change(layer) and cover < tol.min_cover) or iou < tol.min_iou:
            details = {
                "displacement_m": _r(dist),
                "vector_m": [_r(v) for v in vec],
                "iou": _r(iou),
                "cover": _r(cover),
            }
            records.append(_record("geometry_changed", layer, o, n, details))
    paired_o = {i for i, _, _ in pairs}
    paired_n = {j for _, j, _ in pairs}
    records += [_record("deleted", layer, f, None) for i, f in enumerate(old) if i not in paired_o]
    records += [_record("inserted", layer, None, f) for j, f in enumerate(new) if j not in paired_n]
    return records, matches


# ----------------------------------------------------------------------------------------------
# lines


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Lines cut into short straight pieces: start, vector, length, owner, unit tangent, midpoint
    position along the owner, and whether the piece starts or ends its owner."""

    start: np.ndarray  # (n, 2)
    vector: np.ndarray  # (n, 2)
    length: np.ndarray
    owner: np.ndarray
    along: np.ndarray  # distance of the midpoint along its owner (2D), metres
    first: np.ndarray  # bool: the owner's first piece
    last: np.ndarray  # bool: the owner's last piece
    mid: np.ndarray  # (n, 2)
    tangent: np.ndarray  # (n, 2) unit vectors


def _pieces(lines: np.ndarray, step: float) -> _Pieces:
    if not len(lines):
        z2, z1 = np.zeros((0, 2)), np.zeros(0)
        no = np.zeros(0, dtype=bool)
        return _Pieces(z2, z2, z1, np.zeros(0, dtype=int), z1, no, no, z2, z2)
    coords, index = shapely.get_coordinates(shapely.segmentize(lines, step), return_index=True)
    same = index[1:] == index[:-1]
    a, b, owner = coords[:-1][same], coords[1:][same], index[:-1][same]
    seg = b - a
    length = np.hypot(seg[:, 0], seg[:, 1])
    keep = length > 0
    a, seg, length, owner = a[keep], seg[keep], length[keep], owner[keep]
    end = np.cumsum(length)
    first = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, dtype=bool)
    last = np.r_[owner[1:] != owner[:-1], True] if len(owner) else np.zeros(0, dtype=bool)
    start_of_owner = np.maximum.accumulate(np.where(first, end - length, 0.0))
    along = end - length / 2 - start_of_owner
    tangent = seg / length[:, None]
    return _Pieces(a, seg, length, owner, along, first, last, a + seg / 2, tangent)


@dataclass(frozen=True, slots=True)
class _Near:
    """Per piece: the nearest parallel line of the other map (-1: none), distance, whether the
    piece lies beside it (not beyond its end), and the signed cosine between their directions."""

    line: np.ndarray
    dist: np.ndarray
    beside: np.ndarray
    cos: np.ndarray


def _grid_pairs(
    query: np.ndarray, points: np.ndarray, cell: float
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, point index) of every point in the 3 x 3 grid cells around each query
    point (cells ``cell`` metres wide): a superset of the pairs closer than ``cell``."""
    qc = np.floor(query / cell).astype(np.int64)
    pc = np.floor(points / cell).astype(np.int64)
    lo_xy = np.minimum(qc.min(axis=0), pc.min(axis=0)) - 1
    span_y = int(max(qc[:, 1].max(), pc[:, 1].max()) - lo_xy[1]) + 2
    key = (pc[:, 0] - lo_xy[0]) * span_y + (pc[:, 1] - lo_xy[1])
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    src, dst = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            k = (qc[:, 0] + dx - lo_xy[0]) * span_y + (qc[:, 1] + dy - lo_xy[1])
            lo = np.searchsorted(sorted_key, k, "left")
            count = np.searchsorted(sorted_key, k, "right") - lo
            total = int(count.sum())
            if not total:
                continue
            run_start = np.repeat(np.cumsum(count) - count, count)
            src.append(np.repeat(np.arange(len(query)), count))
            dst.append(order[np.repeat(lo, count) + np.arange(total) - run_start])
    if not src:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    return np.concatenate(src), np.concatenate(dst)


def _nearest(pieces: _Pieces, other: _Pieces, radius: float, tol: ChangeTolerances) -> _Near:
    """For each piece, the nearest roughly parallel line among the ``other`` pieces' owners.

    Candidates come from a grid hash of the other pieces' midpoints; the distance to each
    candidate piece (a straight segment) is computed in numpy.
    """
    n = len(pieces.length)
    line = np.full(n, -1)
    dist = np.full(n, np.inf)
    beside = np.zeros(n, dtype=bool)
    cos = np.zeros(n)
    if not n or not len(other.length):
        return _Near(line, dist, beside, cos)
    mid = pieces.mid
    # a piece within ``radius`` of a segment has its midpoint within one grid cell of the
    # segment's midpoint (segments are at most piece_m long)
    src, dst = _grid_pairs(mid, other.mid, radius + tol.piece_m)
    if not len(src):
        return _Near(line, dist, beside, cos)
    # the midpoints' distance first: most grid pairs are farther apart than the radius
    gap = mid[src] - other.mid[dst]
    near = np.hypot(gap[:, 0], gap[:, 1]) <= radius + tol.piece_m / 2
    src, dst = src[near], dst[near]
    rel = mid[src] - other.start[dst]
    vec = other.vector[dst]
    u = (rel[:, 0] * vec[:, 0] + rel[:, 1] * vec[:, 1]) / other.length[dst] ** 2
    off = rel - np.clip(u, 0.0, 1.0)[:, None] * vec
    d = np.hypot(off[:, 0], off[:, 1])
    t = other.tangent[dst]
    mine = pieces.tangent[src]
    c = t[:, 0] * mine[:, 0] + t[:, 1] * mine[:, 1]
    ok = (d <= radius) & (np.abs(c) >= math.cos(math.radians(tol.parallel_deg)))
    src, dst, u, off, d, t, c = src[ok], dst[ok], u[ok], off[ok], d[ok], t[ok], c[ok]
    # beyond the other line's end: the offset from its end point runs mostly along it
    beyond = ((u < 0) & other.first[dst]) | ((u > 1) & other.last[dst])
    along_off = np.abs(off[:, 0] * t[:, 0] + off[:, 1] * t[:, 1])
    across_off = np.abs(off[:, 0] * t[:, 1] - off[:, 1] * t[:, 0])
    is_beside = ~(beyond & (along_off > across_off))
    owner = other.owner[dst]
    # pieces beside a line beat overhangs, then the nearest line wins
    order = np.lexsort((d, ~is_beside, src))
    src, owner, d, c, is_beside = src[order], owner[order], d[order], c[order], is_beside[order]
    first = np.r_[True, src[1:] != src[:-1]] if len(src) else np.zeros(0, dtype=bool)
    src, owner, d, c, is_beside = src[first], owner[first], d[first], c[first], is_beside[first]
    line[src], dist[src], beside[src], cos[src] = owner, d, is_beside, c
    return _Near(line, dist, beside, cos)


def _pair_sums(
    a: np.ndarray, b: np.ndarray, w: np.ndarray, nb: int
) -> dict[tuple[int, int], float]:
    """Sum of ``w`` per (a, b) pair."""
    if not len(a):
        return {}
    keys, inverse = np.unique(a * nb + b, return_inverse=True)
    sums = np.bincount(inverse, weights=w)
    return {(int(k // nb), int(k % nb)): float(v) for k, v in zip(keys, sums, strict=True)}


#: line layer -> the change type of its attribute (None: no attribute compared piece by piece)
_LINE_ATTRS: dict[str, str | None] = {
    "lane_boundaries": "marking_changed",
    "road_edges": "type_changed",
    "stop_lines": None,
    "lanes": None,
}


def _piece_differ(
    layer: str,
    mine: Sequence[Feature],
    theirs: Sequence[Feature],
    own: np.ndarray,
    other: np.ndarray,
) -> np.ndarray:
    """Per piece: its owner's attribute differs from that of the nearest line of the other map
    (a lane-boundary colour only when both are known)."""
    out = np.zeros(len(own), dtype=bool)
    ok = other >= 0
    o, t = own[ok], other[ok]
    if layer == "lane_boundaries":
        m1 = np.array([f.marking.value for f in mine] or [""])
        m2 = np.array([f.marking.value for f in theirs] or [""])
        c1 = np.array([f.color.value for f in mine] or [""])
        c2 = np.array([f.color.value for f in theirs] or [""])
        known = (c1[o] != "unknown") & (c2[t] != "unknown")
        out[ok] = (m1[o] != m2[t]) | (known & (c1[o] != c2[t]))
    elif layer == "road_edges":
        k1 = np.array([f.kind.value for f in mine] or [""])
        k2 = np.array([f.kind.value for f in theirs] or [""])
        out[ok] = k1[o] != k2[t]
    return out


def _attr_details(layer: str, f: Feature) -> dict[str, Any]:
    if layer == "lane_boundaries":
        return {"marking": f.marking.value, "color": f.color.value}
    return {"kind": f.kind.value}


@dataclass(slots=True)
class _Side:
    """One map's pieces of one line group, with their match to the other map's lines."""

    pieces: _Pieces
    near: _Near
    idx: np.ndarray  # piece indices in the group
    matched: np.ndarray  # bool per idx: beside a line of the same group
    differ: np.ndarray  # bool per piece (all pieces): attribute differs from the nearest line


def _compare_lines(
    layer: str, old: Sequence[Feature], new: Sequence[Feature], tol: ChangeTolerances
) -> tuple[list[ChangeRecord], dict[str, str], dict[str, tuple[str, ...]], list[LineSupport]]:
    radius, threshold = tol.match(layer), tol.change(layer)
    o2 = shapely.force_2d(np.array([f.geometry for f in old], dtype=object))
    n2 = shapely.force_2d(np.array([f.geometry for f in new], dtype=object))
    po, pn = _pieces(o2, tol.piece_m), _pieces(n2, tol.piece_m)
    near_o, near_n = _nearest(po, pn, radius, tol), _nearest(pn, po, radius, tol)
    no, nn = len(old), len(new)
    len_o, len_n = shapely.length(o2), shapely.length(n2)

    # shared length per (old, new) pair, measured from both sides
    mo = (near_o.line >= 0) & near_o.beside
    mn = (near_n.line >= 0) & near_n.beside
    ov_o = _pair_sums(po.owner[mo], near_o.line[mo], po.length[mo], max(nn, 1))
    ov_n = _pair_sums(near_n.line[mn], pn.owner[mn], pn.length[mn], max(nn, 1))
    links = []
    for key in sorted(set(ov_o) | set(ov_n)):
        i, j = key
        a, b = ov_o.get(key, 0.0), ov_n.get(key, 0.0)
        share = max(a / len_o[i] if len_o[i] else 0.0, b / len_n[j] if len_n[j] else 0.0)
        if share >= tol.link_share and max(a, b) >= 2 * tol.piece_m:
            links.append(key)
    # identical geometries always link (also degenerate lines without pieces)
    wkb_new = defaultdict(list)
    for j, g in enumerate(n2):
        wkb_new[shapely.to_wkb(g)].append(j)
    for i, g in enumerate(o2):
        links += [(i, j) for j in wkb_new.get(shapely.to_wkb(g), ())]
    pairs = np.array(sorted(set(links)), dtype=int).reshape(-1, 2)
    groups = _clusters(no, nn, pairs)

    group_o = np.full(no, -1)
    group_n = np.full(nn, -1)
    for g, (oi, ni) in enumerate(groups):
        group_o[oi], group_n[ni] = g, g
    piece_go = group_o[po.owner] if len(po.owner) else np.zeros(0, dtype=int)
    piece_gn = group_n[pn.owner] if len(pn.owner) else np.zeros(0, dtype=int)
    in_o = mo & (piece_go >= 0) & (group_n[np.maximum(near_o.line, 0)] == piece_go) if nn else mo
    in_n = mn & (piece_gn >= 0) & (group_o[np.maximum(near_n.line, 0)] == piece_gn) if no else mn
    idx_o = _split_by(piece_go, len(groups))
    idx_n = _split_by(piece_gn, len(groups))

    differ_o = _piece_differ(layer, old, new, po.owner, near_o.line)
    differ_n = _piece_differ(layer, new, old, pn.owner, near_n.line)
    records: list[ChangeRecord] = []
    matches: dict[str, str] = {}
    overlap = defaultdict(float)
    for key, v in ov_o.items():
        overlap[key] += v
    for key, v in ov_n.items():
        overlap[key] += v
    mains: list[tuple[int, int]] = []
    multi: dict[str, tuple[str, ...]] = {}
    supports: list[LineSupport] = []
    for g, (oi, ni) in enumerate(groups):
        so = _Side(po, near_o, idx_o[g], in_o[idx_o[g]], differ_o)
        sn = _Side(pn, near_n, idx_n[g], in_n[idx_n[g]], differ_n)
        best = {int(j): max(oi, key=lambda i: (overlap.get((int(i), int(j)), 0.0), -i)) for j in ni}
        for j, i in best.items():
            matches[new[j].id] = old[int(i)].id
            if len(oi) > 1:
                multi[new[j].id] = tuple(sorted(old[int(k)].id for k in oi))
        main_j, main_i = max(
            ((j, int(i)) for j, i in best.items()),
            key=lambda p: (overlap.get((p[1], p[0]), 0.0), -p[0]),
        )
        mains.append((main_i, main_j))
        ids = {}
        if len(oi) > 1 or len(ni) > 1:
            ids = {
                "old_ids": sorted(old[int(i)].id for i in oi),
                "new_ids": sorted(new[int(j)].id for j in ni),
            }
        rec = _line_geometry_change(layer, old, new, so, sn, main_i, main_j, threshold, tol, ids)
        if rec:
            records.append(rec)
        if _LINE_ATTRS[layer]:
            rec = _line_attribute_change(layer, old, new, so, sn, ids, tol)
            if rec:
                records.append(rec)
        if layer == "lanes":
            rec = _lane_direction_change(old[main_i], new[main_j], sn, main_i, main_j, ids)
            if rec:
                records.append(rec)
        support = _line_support(layer, old, new, oi, ni, so, sn, tol)
        if support is not None:
            supports.append(support)
    if layer == "lanes":
        records += _connectivity_changes(old, new, groups, group_o, group_n, matches, mains)
    records += [_record("deleted", layer, f, None) for i, f in enumerate(old) if group_o[i] < 0]
    records += [_record("inserted", layer, None, f) for j, f in enumerate(new) if group_n[j] < 0]
    return records, matches, multi, supports


def _split_by(labels: np.ndarray, n: int) -> list[np.ndarray]:
    """Indices of ``labels`` per label 0..n-1 (negative labels left out)."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels[labels >= 0], minlength=n) if n else np.zeros(0, dtype=int)
    skip = int(np.sum(labels < 0))
    return np.split(order[skip:], np.cumsum(counts)[:-1]) if n else []


def _stretch_anchor(line: LineString, along: np.ndarray) -> tuple[float, float, float]:
    """The 3D point of ``line`` halfway between the first and last of ``along`` (metres)."""
    s = (float(along.min()) + float(along.max())) / 2
    return anchor_point(shapely.line_interpolate_point(line, s))


def _covered(side: _Side) -> np.ndarray:
    """Per piece of the group: beside some line of the other map."""
    return (side.near.line[side.idx] >= 0) & side.near.beside[side.idx]


def _subset(pieces: _Pieces, idx: np.ndarray) -> _Pieces:
    """The pieces ``idx`` (owners keep their indices)."""
    return _Pieces(*(getattr(pieces, f.name)[idx] for f in dataclasses.fields(_Pieces)))


def _line_support(
    layer: str,
    old: Sequence[Feature],
    new: Sequence[Feature],
    oi: np.ndarray,
    ni: np.ndarray,
    so: _Side,
    sn: _Side,
    tol: ChangeTolerances,
) -> LineSupport | None:
    """The group's reliance on OLD lines outside it (:class:`LineSupport`), None when none.

    A NEW piece beside an OLD line of another group (or of none) is covered; were that line gone,
    it would lie beside the nearest line of its own group, or beside none. Only the NEW side
    changes when :func:`merge_maps` drops OLD lines: the OLD side is compared with NEW either way.
    """
    k = sn.idx
    cross = k[(sn.near.line[k] >= 0) & sn.near.beside[k] & ~sn.matched]
    if not len(cross):
        return None
    radius, threshold = tol.match(layer), tol.change(layer)
    fallback = _nearest(_subset(sn.pieces, cross), _subset(so.pieces, so.idx), radius, tol)
    near = (fallback.line >= 0) & fallback.beside
    far = near & (fallback.dist > threshold)
    differ = near & _piece_differ(layer, new, old, sn.pieces.owner[cross], fallback.line)
    w = sn.pieces.length[cross]
    lost: dict[str, list[float]] = {}
    for x in np.unique(sn.near.line[cross]):
        at = sn.near.line[cross] == x
        lost[old[int(x)].id] = [float(w[at & m].sum()) for m in (~near, near, far, differ)]
    m = sn.idx[sn.matched]
    wm = sn.pieces.length[m]
    total = float(sn.pieces.length[k].sum())
    attr = _LINE_ATTRS[layer] is not None
    return LineSupport(
        layer,
        tuple(sorted(old[int(i)].id for i in oi)),
        tuple(sorted(new[int(j)].id for j in ni)),
        {x: tuple(v) for x, v in sorted(lost.items())},
        unmatched_m=float(sn.pieces.length[k[~_covered(sn)]].sum()),
        unmatched_limit_m=max(tol.extent_m, tol.extent_share * total),
        matched_m=float(wm.sum()),
        displaced_m=float(wm[sn.near.dist[m] > threshold].sum()),
        displaced_limit_m=tol.displaced_length_m,
        differ_m=float(wm[sn.differ[m]].sum()) if attr else 0.0,
        differ_limit_m=tol.min_length_m if attr else math.inf,
    )


def _line_geometry_change(
    layer: str,
    old: Sequence[Feature],
    new: Sequence[Feature],
    so: _Side,
    sn: _Side,
    main_i: int,
    main_j: int,
    threshold: float,
    tol: ChangeTolerances,
    ids: Mapping[str, Any],
) -> ChangeRecord | None:
    flagged = False
    dists, weights = [], []
    displaced_len = {}
    for name, side in (("old", so), ("new", sn)):
        k = side.idx[side.matched]
        d, w = side.near.dist[k], side.pieces.length[k]
        dists.append(d)
        weights.append(w)
        displaced_len[name] = float(w[d > threshold].sum())
        if displaced_len[name] >= min(tol.displaced_length_m, 0.5 * float(w.sum())) > 0:
            flagged = True
    # length no line of the other map lies beside (pieces beside a line of another group, where
    # two extractions split a line at different places, are covered all the same)
    unmatched = {
        name: float(side.pieces.length[side.idx[~_covered(side)]].sum())
        for name, side in (("old", so), ("new", sn))
    }
    for name, side in (("old", so), ("new", sn)):
        total = float(side.pieces.length[side.idx].sum())
        if unmatched[name] >= max(tol.extent_m, tol.extent_share * total):
            flagged = True
    if not flagged:
        return None
    d, w = np.concatenate(dists), np.concatenate(weights)
    mean = float(np.average(d, weights=w)) if w.sum() > 0 else 0.0
    details = {
        "displacement_m": _r(mean),
        "max_displacement_m": _r(d.max()) if len(d) else 0.0,
        "displaced_length_m": _r(max(displaced_len.values())),
        "unmatched_length_m": {k: _r(v) for k, v in unmatched.items()},
        **ids,
    }
    k = sn.idx[sn.matched]
    k = k[(sn.pieces.owner[k] == main_j) & (sn.near.dist[k] > threshold)]
    anchor = _stretch_anchor(new[main_j].geometry, sn.pieces.along[k]) if len(k) else None
    return _record("geometry_changed", layer, old[main_i], new[main_j], details, anchor)


def _line_attribute_change(
    layer: str,
    old: Sequence[Feature],
    new: Sequence[Feature],
    so: _Side,
    sn: _Side,
    ids: Mapping[str, Any],
    tol: ChangeTolerances,
) -> ChangeRecord | None:
    by_pair: dict[tuple[int, int], float] = defaultdict(float)
    flagged = False
    changed_len = 0.0
    for side in (so, sn):
        k = side.idx[side.matched]
        differ = side.differ[k]
        w = side.pieces.length[k]
        length = float(w[differ].sum())
        changed_len = max(changed_len, length)
        if length >= min(tol.min_length_m, 0.5 * float(w.sum())) > 0:
            flagged = True
        own, other = side.pieces.owner[k][differ], side.near.line[k][differ]
        pairs = (own, other) if side is so else (other, own)
        for key, v in _pair_sums(*pairs, w[differ], max(len(new), 1)).items():
            by_pair[key] += v
    if not flagged:
        return None
    (i, j) = max(by_pair, key=lambda p: (by_pair[p], -p[0], -p[1]))
    k = sn.idx[sn.matched]
    k = k[sn.differ[k] & (sn.pieces.owner[k] == j)]
    anchor = _stretch_anchor(new[j].geometry, sn.pieces.along[k]) if len(k) else None
    details = {
        "old": _attr_details(layer, old[i]),
        "new": _attr_details(layer, new[j]),
        "changed_length_m": _r(changed_len),
        **ids,
    }
    return _record(_LINE_ATTRS[layer], layer, old[i], new[j], details, anchor)


def _effective_direction(lane: Lane, reversed_: bool) -> str:
    d = lane.direction.value
    if reversed_ and d != "both":
        return "backward" if d == "forward" else "forward"
    return d


def _lane_direction_change(
    old: Lane, new: Lane, sn: _Side, main_i: int, main_j: int, ids: Mapping[str, Any]
) -> ChangeRecord | None:
    k = sn.idx[sn.matched]
    k = k[(sn.pieces.owner[k] == main_j) & (sn.near.line[k] == main_i)]
    if not len(k):
        return None
    reversed_ = float(np.sum(sn.near.cos[k] * sn.pieces.length[k])) < 0
    if _effective_direction(new, reversed_) == old.direction.value:
        return None
    details = {
        "old": {"direction": old.direction.value},
        "new": {"direction": new.direction.value},
        "reversed": bool(reversed_),
        **ids,
    }
    return _record("type_changed", "lanes", old, new, details)


_LINK_FIELDS = ("predecessors", "successors", "left_neighbour", "right_neighbour")


def _links(feature: Feature, name: str) -> tuple[str, ...]:
    value = getattr(feature, name)
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _connectivity_changes(
    old: Sequence[Lane],
    new: Sequence[Lane],
    groups: list[tuple[np.ndarray, np.ndarray]],
    group_o: np.ndarray,
    group_n: np.ndarray,
    matches: Mapping[str, str],
    mains: Sequence[tuple[int, int]],
) -> list[ChangeRecord]:
    """Lane groups whose links to other matched groups differ between the maps."""
    go = {f.id: int(group_o[i]) for i, f in enumerate(old)}
    gn = {f.id: int(group_n[j]) for j, f in enumerate(new)}
    records = []
    for g, (oi, ni) in enumerate(groups):
        changed: dict[str, dict[str, list[str]]] = {}
        for name in _LINK_FIELDS:
            o_ids = {
                r for i in oi for r in _links(old[int(i)], name) if go.get(r, -1) not in (-1, g)
            }
            n_ids = {
                r for j in ni for r in _links(new[int(j)], name) if gn.get(r, -1) not in (-1, g)
            }
            if {go[r] for r in o_ids} != {gn[r] for r in n_ids}:
                changed[name] = {
                    "old": sorted(o_ids),
                    "new": sorted(matches.get(r, r) for r in n_ids),
                }
        if not changed:
            continue
        main_i, main_j = mains[g]
        details: dict[str, Any] = dict(changed)
        if len(oi) > 1 or len(ni) > 1:
            details["old_ids"] = sorted(old[int(i)].id for i in oi)
            details["new_ids"] = sorted(new[int(j)].id for j in ni)
        records.append(_record("connectivity_changed", "lanes", old[main_i], new[main_j], details))
    return records


# ----------------------------------------------------------------------------------------------
# merge


#: feature type -> its fields that reference other features (by ID)
_REFERENCE_FIELDS: dict[type, tuple[str, ...]] = {
    Lane: (
        "left_boundary",
        "right_boundary",
        "predecessors",
        "successors",
        "left_neighbour",
        "right_neighbour",
        "junction",
    ),
    Sign: ("pole",),
    Junction: ("lanes",),
}


def _rewrite(feature: Feature, resolve: Callable[[str, str], Sequence[str]]) -> Feature:
    """``feature`` with every reference passed through ``resolve(field, id)`` -> the IDs it
    becomes (none: dropped; a single link takes the first); the same object when nothing
    changes."""
    changes: dict[str, Any] = {}
    for name in _REFERENCE_FIELDS.get(type(feature), ()):
        value = getattr(feature, name)
        if isinstance(value, tuple):
            mapped = tuple(dict.fromkeys(x for r in value for x in resolve(name, r)))
        elif value is not None:
            got = resolve(name, value)
            mapped = got[0] if got else None
        else:
            continue
        if mapped != value:
            changes[name] = mapped
    return dataclasses.replace(feature, **changes) if changes else feature


def _adopted(
    counterparts: Sequence[Feature], taken: set[str], name: str, owns: Callable[[str], bool]
) -> list[str]:
    """The references of ``counterparts`` in field ``name`` that point to ``taken`` features
    that ``owns`` gives to the feature at hand."""
    refs = dict.fromkeys(r for c in counterparts for r in _links(c, name) if r in taken)
    return [r for r in refs if owns(r)]


def _adopt(
    feature: Feature,
    counterparts: Sequence[Feature],
    taken: set[str],
    owns: Callable[[str], bool] = lambda ref: True,
) -> Feature:
    """``feature`` with the references of its ``counterparts`` that point to ``taken`` features
    (and that ``owns`` gives to it) added where it has none of its own (lists are extended, empty
    single links filled)."""
    changes: dict[str, Any] = {}
    for name in _REFERENCE_FIELDS.get(type(feature), ()) if counterparts else ():
        mine = getattr(feature, name)
        extra = _adopted(counterparts, taken, name, owns)
        if not extra:
            continue
        if isinstance(mine, tuple):
            merged = tuple(dict.fromkeys((*mine, *extra)))
            if merged != mine:
                changes[name] = merged
        elif mine is None:
            changes[name] = extra[0]
    return dataclasses.replace(feature, **changes) if changes else feature


def _nearest_id(to: Feature, candidates: Iterable[str], by_id: Mapping[str, Feature]) -> str:
    """The candidate whose geometry lies nearest (2D) to ``to``'s; ties by ID."""
    return min(
        candidates, key=lambda c: (float(shapely.distance(to.geometry, by_id[c].geometry)), c)
    )


class _Merge:
    """Which OLD features are kept and which NEW ones taken, and how references resolve."""

    def __init__(
        self,
        old: MapModel,
        new: MapModel,
        comparison: MapComparison,
        drop_old: set[str],
        take_new: set[str],
        replacements: Mapping[str, set[str]],
        by_id: tuple[Mapping[str, Feature], Mapping[str, Feature]],
    ) -> None:
        self.comparison = comparison
        self.replacements = replacements
        self.old_by_id, self.new_by_id = by_id
        self.kept = [f for f in old.features() if f.id not in drop_old]
        self.kept_ids = {f.id for f in self.kept}
        self.taken = [f for f in new.features() if f.id in take_new]
        self.taken_ids = {f.id for f in self.taken}
        self.counterparts: dict[str, list[Feature]] = defaultdict(list)  # kept OLD -> its NEW
        for f in new.features():
            if f.id not in self.taken_ids:
                for o in self.group_of(f.id):
                    if o in self.kept_ids:
                        self.counterparts[o].append(f)

    def group_of(self, new_id: str) -> tuple[str, ...]:
        """The OLD IDs matched to the NEW feature ``new_id`` (its line group)."""
        c = self.comparison
        return c.groups.get(new_id) or ((c.matches[new_id],) if new_id in c.matches else ())

    def resolve_old(self, f: Feature) -> Callable[[str, str], Sequence[str]]:
        """Resolver of a kept OLD feature's references: kept targets stay; a dropped one becomes
        the NEW features replacing it that ``f``'s NEW counterparts link (or else the nearest)."""

        def resolve(name: str, ref: str) -> Sequence[str]:
            if ref in self.kept_ids:
                return (ref,)
            candidates = self.replacements.get(ref, set()) & self.taken_ids
            if not candidates:
                return ()
            via = [
                x
                for c in self.counterparts.get(f.id, ())
                for x in _links(c, name)
                if x in candidates
            ]
            return tuple(dict.fromkeys(via)) or (_nearest_id(f, candidates, self.new_by_id),)

        return resolve

    def resolve_new(self, f: Feature) -> Callable[[str, str], Sequence[str]]:
        """Resolver of a taken NEW feature's references: taken targets stay; one matched to kept
        OLD features becomes that one (the nearest of several)."""

        def resolve(name: str, ref: str) -> Sequence[str]:
            if ref in self.taken_ids:
                return (ref,)
            candidates = [o for o in self.group_of(ref) if o in self.kept_ids]
            if len(candidates) <= 1:
                return tuple(candidates)
            return (_nearest_id(f, candidates, self.old_by_id),)

        return resolve

    def split_link(self, f: Feature) -> bool:
        """Whether a neighbour of the kept lane ``f`` would have to name several lanes: its NEW
        counterparts (pieces split elsewhere) have different replaced or inserted neighbours, or
        one besides its own kept neighbour, which one OLD record cannot say. (Boundaries, a
        junction and a sign's pole are single links too, but :func:`compare_maps` does not
        compare them.)"""
        if not isinstance(f, Lane):
            return False
        resolve, owns = self.resolve_old(f), self.owns(f)
        counterparts = self.counterparts.get(f.id, ())
        for name in ("left_neighbour", "right_neighbour"):
            value = getattr(f, name)
            mine = resolve(name, value) if value is not None else ()
            if len({*mine, *_adopted(counterparts, self.taken_ids, name, owns)}) > 1:
                return True
        return False

    def split_target(self, f: Feature) -> str | None:
        """For a taken NEW lane ``f`` whose neighbour is matched to several kept OLD lanes (split
        elsewhere), one of them: its single ``*_neighbour`` can name only one, so that lane's
        group has to come from NEW too. None otherwise."""
        if not isinstance(f, Lane):
            return None
        for name in ("left_neighbour", "right_neighbour"):
            ref = getattr(f, name)
            if ref is not None and ref not in self.taken_ids:
                candidates = sorted(o for o in self.group_of(ref) if o in self.kept_ids)
                if len(candidates) > 1:
                    return candidates[0]
        return None

    def owns(self, f: Feature) -> Callable[[str], bool]:
        """Whether the kept ``f`` is, of the kept OLD features of its group, the one nearest to a
        taken NEW feature: a link of the group's NEW features to it goes to that one alone (the
        lane piece it touches, not every piece of a lane split elsewhere)."""
        kept: list[str] = []

        def owns(ref: str) -> bool:
            if not kept:
                kept.extend(o for o in self.group_ids(f.id)[0] if o in self.kept_ids)
            if len(kept) <= 1:
                return True
            return _nearest_id(self.new_by_id[ref], kept, self.old_by_id) == f.id

        return owns

    def group_ids(self, old_id: str) -> tuple[set[str], set[str]]:
        """(OLD IDs, NEW IDs) of the line group of the kept OLD feature ``old_id``."""
        news = {c.id for c in self.counterparts.get(old_id, ())}
        olds = {old_id} | {o for n in news for o in self.group_of(n)}
        return olds, news


def merge_maps(old: MapModel, new: MapModel, comparison: MapComparison) -> MapModel:
    """The next published map: OLD where nothing changed, NEW where something did.

    Features named by a record come from NEW (changed, inserted) or are dropped (deleted, and the
    OLD side of a change); every other OLD feature is kept exactly as it was, and every other NEW
    feature is dropped (it is matched to an OLD one, ``comparison.matches``). References between
    features (lane boundaries, neighbours, predecessors and successors, junctions, a sign's pole)
    are rewritten to the IDs that survive (a reference to a line replaced by several pieces goes
    to the piece the NEW map links, or else the nearest one), or dropped when their target is
    gone; a kept feature also gains the links its NEW counterpart has to inserted or changed
    features (a lane that now leads into an inserted lane).

    Two extractions split lines at different places, so a line group no record names comes from
    NEW as well when keeping it would make the merged map differ from NEW: when it relied on OLD
    lines now dropped (``comparison.supports``: the dropped OLD piece covered the rest of the
    group's NEW line), or when its OLD lane would need one neighbour where its NEW pieces have
    several (the neighbouring lane was replaced by pieces split elsewhere). Hence
    ``compare_maps(merge_maps(old, new, c), new)`` has no records. CRS, height datum and name come
    from NEW.

    >>> from tests.common import sample_model
    >>> m = sample_model()
    >>> merge_maps(m, m, compare_maps(m, m)) == m
    True
    """
    drop_old: set[str] = set()
    take_new: set[str] = set()
    replacements: dict[str, set[str]] = defaultdict(set)  # dropped OLD id -> NEW ids taken
    for r in comparison.records:
        olds = {i for i in (r.old_id, *r.details.get("old_ids", ())) if i is not None}
        news = {i for i in (r.new_id, *r.details.get("new_ids", ())) if i is not None}
        drop_old |= olds
        take_new |= news
        for i in olds:
            replacements[i] |= news
    # groups that cannot stay as they were once others are replaced, until none is left
    pending = list(comparison.supports)
    by_id = (old.by_id(), new.by_id())
    while True:
        plan = _Merge(old, new, comparison, drop_old, take_new, replacements, by_id)
        grow = [(set(s.old_ids), set(s.new_ids)) for s in pending if s.breaks(drop_old)]
        grow += [plan.group_ids(f.id) for f in plan.kept if plan.split_link(f)]
        grow += [plan.group_ids(o) for o in map(plan.split_target, plan.taken) if o is not None]
        if not grow:
            break
        for olds, news in grow:
            drop_old |= olds
            take_new |= news
            for i in olds:
                replacements[i] |= news
        pending = [s for s in pending if drop_old.isdisjoint(s.old_ids)]
    features = [
        _adopt(
            _rewrite(f, plan.resolve_old(f)),
            plan.counterparts.get(f.id, ()),
            plan.taken_ids,
            plan.owns(f),
        )
        for f in plan.kept
    ]
    features += [_rewrite(f, plan.resolve_new(f)) for f in plan.taken]
    return MapModel.from_features(
        new.crs, _by_layer(features), height_datum=new.height_datum, name=new.name
    )


def _by_layer(features: Iterable[Feature]) -> list[Feature]:
    """Features ordered by layer (kept OLD ones first within a layer, then NEW ones)."""
    order = {name: i for i, name in enumerate(LAYERS)}
    return sorted(features, key=lambda f: order[f.layer])


# ----------------------------------------------------------------------------------------------
# GeoJSON


def _to_wgs84(crs: str) -> pyproj.Transformer:
    try:
        source = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(f"cannot read the map CRS: {exc}") from None
    if source.is_compound:
        source = source.sub_crs_list[0]
    if source.is_engineering or source.datum is None:
        raise CRSError(
            f"{_short(crs)} has no geodetic datum: the changes cannot be placed in WGS84"
        )
    return pyproj.Transformer.from_crs(source, "EPSG:4326", always_xy=True)


def changes_geojson(records: Iterable[ChangeRecord], crs: str) -> dict[str, Any]:
    """The records as an RFC 7946 FeatureCollection: one Point per record at its anchor in WGS84
    lon/lat degrees; properties ``change``, ``layer``, ``feature_id``, ``old_id``, ``new_id``,
    ``details`` and ``anchor`` (x, y, z in ``crs``, metres). Raises
    :class:`~pipeline.errors.CRSError` when ``crs`` cannot be transformed to WGS84.

    >>> changes_geojson([], "EPSG:4549")
    {'type': 'FeatureCollection', 'features': []}
    >>> r = ChangeRecord("inserted", "poles", "pole-1", None, "pole-1", (534000, 3496000, 5))
    >>> changes_geojson([r], "EPSG:4549")["features"][0]["geometry"]["coordinates"]
    [120.35821313, 31.58597781]
    """
    records = list(records)
    features = []
    if records:
        transformer = _to_wgs84(crs)
        xy = np.array([r.anchor[:2] for r in records], dtype=float)
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
            raise CRSError(f"anchors cannot be transformed from {_short(crs)} to WGS84")
        for r, x, y in zip(records, np.atleast_1d(lon), np.atleast_1d(lat), strict=True):
            d = r.to_dict()
            props = {k: d[k] for k in ("change", "layer", "feature_id", "old_id", "new_id")}
            props["details"] = d["details"]
            props["anchor"] = d["anchor"]
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Point",
                        "coordinates": [round(float(x), 8), round(float(y), 8)],
                    },
                    "properties": props,
                }
            )
    return {"type": "FeatureCollection", "features": features}


def write_changes_geojson(
    records: Iterable[ChangeRecord], crs: str, path: str | os.PathLike[str]
) -> None:
    """Write :func:`changes_geojson` to ``path`` atomically (UTF-8 JSON)."""
    write_json(path, changes_geojson(records, crs))
