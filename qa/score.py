"""Scoring a predicted map against a truth map, layer by layer (issues 3 and 4).

All measures are planimetric (2D, metres in the maps' common projected CRS) unless named 3D.
A ratio whose denominator is zero is ``None`` (shown as ``-`` in the table, ``null`` in JSON);
F1 is 0 when one side is 0 and the other undefined (an empty pred against a non-empty truth, or
the reverse), and ``None`` only when both layers are empty.

Linear layers (``lane_boundaries``, ``road_edges``, ``stop_lines``, ``lanes`` centrelines):

- completeness at buffer *b*: share of truth length within *b* of any pred line; correctness: share
  of pred length within *b* of any truth line; F1 their harmonic mean (round buffers).
- RMS offset: pred lines densified to <= 0.5 m; the 2D distance of each vertex to the nearest truth
  line, over the vertices within the largest buffer.
- attributes on matched length: pred lines are cut into pieces <= 0.5 m; a piece is matched when
  its midpoint lies within the largest buffer of truth; it is compared with the nearest truth
  feature and weighted by its length. Lane-boundary colour: a pred ``unknown`` counts as wrong;
  truth pieces whose colour is ``unknown`` are left out. Virtual lane boundaries (no paint) are
  left out of ``lane_boundaries`` on both sides unless ``include_virtual_boundaries``.
- lanes: width RMS error between pred widths at the pred vertices (matched ones) and the truth
  width interpolated at the nearest position of the nearest truth centreline; the lane graph: each
  pred lane is mapped to the truth lane its centreline overlaps most (length within the largest
  buffer); an edge (successor, or reversed predecessor) is correct when the mapped truth lanes
  have it. Edges between two pred lanes mapped to the same truth lane (a split lane) are left out.

Point layers (``poles``, ``signs``) are matched one to one within ``point_match_m`` (2D) by the
Hungarian method (``scipy.optimize.linear_sum_assignment``: the most pairs within the radius,
then the least total 3D distance, so that panels stacked on one pole pair by height; greedy
nearest matching would lose pairs in clusters). ``road_arrows`` are matched the same way by centroid
within ``arrow_match_m`` (1.0 m). Crosswalks get the IoU of the union of pred polygons with the
union of truth polygons, and each truth crosswalk its best IoU with one pred polygon.

>>> from tests.common import empty_model, sample_model
>>> report = score_maps(sample_model(), sample_model())
>>> report.layer("lane_boundaries").buffers[0].f1, report.layer("poles").recall
(1.0, 1.0)
>>> score_maps(empty_model(), empty_model()).layer("poles").precision is None
True
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
import shapely
from scipy.optimize import linear_sum_assignment
from shapely import LineString, Point
from shapely.geometry.base import BaseGeometry

from pipeline.errors import CRSError
from pipeline.files import write_json
from pipeline.model import Feature, MapModel, MarkingKind, RoadEdgeKind

__all__ = [
    "LINEAR_LAYERS",
    "POINT_LAYERS",
    "POLYGON_LAYERS",
    "SCORED_LAYERS",
    "BufferScore",
    "LinearScore",
    "PointScore",
    "PolygonScore",
    "ScoreReport",
    "ScoreTable",
    "format_table",
    "match_points",
    "same_crs",
    "score_maps",
    "score_tables",
    "write_json_report",
]

LINEAR_LAYERS = ("lane_boundaries", "road_edges", "stop_lines", "lanes")
POINT_LAYERS = ("poles", "signs", "road_arrows")
POLYGON_LAYERS = ("crosswalks",)
SCORED_LAYERS = LINEAR_LAYERS + POINT_LAYERS + POLYGON_LAYERS
DENSIFY_M = 0.5  # densification step for offsets and attribute pieces, metres
_INFEASIBLE = 1e9  # assignment cost of a pair farther apart than the match radius


@dataclass(frozen=True, slots=True)
class BufferScore:
    """Length-based completeness, correctness and F1 within one buffer width (metres)."""

    buffer_m: float
    completeness: float | None
    correctness: float | None
    f1: float | None


@dataclass(frozen=True, slots=True)
class LinearScore:
    """Scores of one linear layer; attribute fields are ``None`` where they do not apply."""

    layer: str
    truth_count: int
    pred_count: int
    truth_length_m: float
    pred_length_m: float
    buffers: tuple[BufferScore, ...]
    rms_offset_m: float | None
    matched_vertices: int
    matched_length_m: float = 0.0  # pred length matched for the attribute measures
    kind_accuracy: float | None = None  # marking kind (lane boundaries) or edge kind
    color_accuracy: float | None = None
    color_unknown_share: float | None = None  # share of matched pred length with colour unknown
    curb_height_rms_m: float | None = None
    width_rms_m: float | None = None
    truth_edges: int | None = None
    pred_edges: int | None = None
    edge_precision: float | None = None
    edge_recall: float | None = None

    def at(self, buffer_m: float) -> BufferScore:
        """The scores at one buffer width (metres)."""
        for b in self.buffers:
            if math.isclose(b.buffer_m, buffer_m):
                return b
        raise KeyError(f"{self.layer} was not scored at a {buffer_m} m buffer")


@dataclass(frozen=True, slots=True)
class PointScore:
    """Scores of one point layer (arrows: by centroid) after one-to-one matching."""

    layer: str
    truth_count: int
    pred_count: int
    matched: int
    match_radius_m: float
    precision: float | None
    recall: float | None
    f1: float | None
    rmse_2d_m: float | None
    rmse_3d_m: float | None = None
    height_rms_m: float | None = None  # poles: pole height error
    shape_accuracy: float | None = None  # signs
    class_accuracy: float | None = None  # signs (pred "unknown" counts as wrong)
    kind_accuracy: float | None = None  # road arrows


@dataclass(frozen=True, slots=True)
class PolygonScore:
    """Polygon overlap of one polygon layer (crosswalks)."""

    layer: str
    truth_count: int
    pred_count: int
    iou_union: float | None
    mean_best_iou: float | None
    best_iou: tuple[float, ...]  # per truth polygon, in truth order


LayerScore = LinearScore | PointScore | PolygonScore


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """Every layer's score, in :data:`SCORED_LAYERS` order (only the layers asked for)."""

    crs: str
    line_buffers_m: tuple[float, ...]
    point_match_m: float
    arrow_match_m: float
    scores: tuple[LayerScore, ...]

    def layer(self, name: str) -> Any:
        """The score of layer ``name`` (a :class:`LinearScore`, :class:`PointScore` or
        :class:`PolygonScore`)."""
        for s in self.scores:
            if s.layer == name:
                return s
        raise KeyError(f"layer {name!r} was not scored")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: NaN and infinities become ``None``.

        >>> from tests.common import empty_model
        >>> score_maps(empty_model(), empty_model()).to_dict()["layers"]["poles"]["recall"] is None
        True
        """
        return {
            "crs": self.crs,
            "line_buffers_m": list(self.line_buffers_m),
            "point_match_m": self.point_match_m,
            "arrow_match_m": self.arrow_match_m,
            "layers": {
                s.layer: {"type": _kind_of(s), **_clean(dataclasses.asdict(s))} for s in self.scores
            },
        }


def _kind_of(score: LayerScore) -> str:
    return {LinearScore: "linear", PointScore: "point", PolygonScore: "polygon"}[type(score)]


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "layer"}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------------------------
# entry point


def same_crs(a: str, b: str) -> bool:
    """Whether two CRS strings (anything pyproj reads) name the same CRS.

    >>> same_crs("EPSG:4549", "EPSG:4549"), same_crs("EPSG:4549", "EPSG:32650")
    (True, False)
    """
    if a == b:
        return True
    try:
        return pyproj.CRS.from_user_input(a).equals(
            pyproj.CRS.from_user_input(b), ignore_axis_order=True
        )
    except pyproj.exceptions.CRSError:
        return False


def score_maps(
    truth: MapModel,
    pred: MapModel,
    *,
    line_buffers_m: Sequence[float] = (0.10, 0.20),
    point_match_m: float = 0.5,
    arrow_match_m: float = 1.0,
    layers: Sequence[str] | None = None,
    include_virtual_boundaries: bool = False,
    region: BaseGeometry | None = None,
) -> ScoreReport:
    """Score ``pred`` against ``truth`` (both in the same projected CRS, metres).

    ``line_buffers_m`` are the buffer widths of the linear layers (metres), ``point_match_m`` the
    match radius of poles and signs, ``arrow_match_m`` that of road-arrow centroids; ``layers``
    restricts the scoring to some of :data:`SCORED_LAYERS`. ``region`` (a 2D polygon in the maps'
    CRS) scores only what lies inside it: lines and polygons are clipped to it, points (arrow
    centroids) outside it are left out; use it when the truth covers more than was surveyed.
    See the module docstring for every definition. Raises :class:`~pipeline.errors.CRSError`
    when the two CRSs differ.

    >>> from tests.common import sample_model
    >>> m = sample_model()
    >>> r = score_maps(m, m.replace(poles=m.poles[:1]))
    >>> r.layer("poles").precision, r.layer("poles").recall
    (1.0, 0.5)
    """
    if not same_crs(truth.crs, pred.crs):
        raise CRSError(
            f"the maps are in different CRSs: truth {_short(truth.crs)}, pred {_short(pred.crs)}"
        )
    buffers = tuple(sorted(float(b) for b in line_buffers_m))
    if not buffers or buffers[0] <= 0:
        raise ValueError("line_buffers_m needs at least one positive buffer width")
    chosen = SCORED_LAYERS if layers is None else tuple(layers)
    unknown = [n for n in chosen if n not in SCORED_LAYERS]
    if unknown:
        raise ValueError(f"cannot score layers {unknown}; choose from {', '.join(SCORED_LAYERS)}")
    scores: list[LayerScore] = []
    for name in SCORED_LAYERS:
        if name not in chosen:
            continue
        t, p = truth.layer(name), pred.layer(name)
        if name == "lane_boundaries" and not include_virtual_boundaries:
            t = tuple(f for f in t if f.marking is not MarkingKind.VIRTUAL)
            p = tuple(f for f in p if f.marking is not MarkingKind.VIRTUAL)
        if name in LINEAR_LAYERS:
            scores.append(_score_linear(name, t, p, buffers, region))
        elif name == "road_arrows":
            scores.append(_score_points(name, t, p, arrow_match_m, region))
        elif name in POINT_LAYERS:
            scores.append(_score_points(name, t, p, point_match_m, region))
        else:
            scores.append(_score_polygons(name, t, p, region))
    return ScoreReport(
        truth.crs, buffers, float(point_match_m), float(arrow_match_m), tuple(scores)
    )


def _short(crs: str) -> str:
    try:
        c = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        return crs[:60]
    epsg = c.to_epsg()
    return f"EPSG:{epsg} ({c.name})" if epsg else c.name


# ----------------------------------------------------------------------------------------------
# small numeric helpers


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _f1(a: float | None, b: float | None) -> float | None:
    """Harmonic mean; 0 when one side is 0 and the other undefined (nothing found, or only
    false finds), ``None`` when neither is defined."""
    if a is None or b is None:
        return 0.0 if (a, b) in ((0.0, None), (None, 0.0)) else None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _rms(errors: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    errors = np.asarray(errors, dtype=float)
    if errors.size == 0:
        return None
    if weights is None:
        return float(np.sqrt(np.mean(errors**2)))
    total = float(np.sum(weights))
    return float(np.sqrt(np.sum(weights * errors**2) / total)) if total > 0 else None


def _weighted_share(hit: np.ndarray, weights: np.ndarray) -> float | None:
    return _ratio(float(np.sum(weights[hit])), float(np.sum(weights)))


# ----------------------------------------------------------------------------------------------
# linear layers


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Pred lines cut into short pieces: midpoints, lengths, owning feature, nearest truth."""

    mid: np.ndarray  # (n, 2)
    length: np.ndarray  # (n,)
    owner: np.ndarray  # index into the pred features
    matched: np.ndarray  # bool: midpoint within the largest buffer of truth
    nearest: np.ndarray  # index into the truth features (valid where matched)


def _lines_2d(features: Sequence[Feature]) -> np.ndarray:
    return shapely.force_2d(np.array([f.geometry for f in features], dtype=object))


def _clip(
    features: Sequence[Feature], region: BaseGeometry | None
) -> tuple[list[Feature], np.ndarray, np.ndarray]:
    """The features that reach into ``region``, their 2D geometries clipped to it, and unclipped."""
    full = _lines_2d(features)
    if region is None:
        return list(features), full, full
    clipped = shapely.intersection(full, region)
    keep = ~shapely.is_empty(clipped) & (shapely.area(clipped) + shapely.length(clipped) > 0)
    return [f for f, k in zip(features, keep, strict=True) if k], clipped[keep], full[keep]


def _score_linear(
    name: str,
    truth: Sequence[Feature],
    pred: Sequence[Feature],
    buffers: tuple[float, ...],
    region: BaseGeometry | None = None,
) -> LinearScore:
    truth, t2, t_full = _clip(truth, region)
    pred, p2, p_full = _clip(pred, region)
    t_len, p_len = float(shapely.length(t2).sum()), float(shapely.length(p2).sum())
    t_union = shapely.union_all(t2) if len(t2) else None
    p_union = shapely.union_all(p2) if len(p2) else None
    rows = []
    for b in buffers:
        completeness = correctness = None
        if len(t2):
            covered = 0.0 if p_union is None else _length_within(t2, p_union, b)
            completeness = _ratio(covered, t_len)
        if len(p2):
            covered = 0.0 if t_union is None else _length_within(p2, t_union, b)
            correctness = _ratio(covered, p_len)
        rows.append(BufferScore(b, completeness, correctness, _f1(completeness, correctness)))
    b_max = buffers[-1]

    rms, n_vertices = None, 0
    if len(p2) and len(t2):
        verts = shapely.get_coordinates(shapely.segmentize(p2, DENSIFY_M))
        d = shapely.distance(shapely.points(verts), t_union)
        near = d <= b_max
        n_vertices = int(near.sum())
        rms = _rms(d[near])

    pieces = _pieces(t2, p2, b_max)
    score = LinearScore(
        name,
        len(truth),
        len(pred),
        t_len,
        p_len,
        tuple(rows),
        rms,
        n_vertices,
        matched_length_m=float(pieces.length[pieces.matched].sum()),
    )
    if name == "lane_boundaries":
        return _boundary_attributes(score, truth, pred, pieces)
    if name == "road_edges":
        return _edge_attributes(score, truth, pred, pieces)
    if name == "lanes":
        return _lane_attributes(score, truth, pred, (t2, t_full), (p2, p_full), b_max, region)
    return score


def _length_within(lines: np.ndarray, other: Any, buffer_m: float) -> float:
    zone = shapely.buffer(other, buffer_m)
    shapely.prepare(zone)
    return float(shapely.length(shapely.intersection(lines, zone)).sum())


def _pieces(t2: np.ndarray, p2: np.ndarray, b_max: float) -> _Pieces:
    mids, lengths, owners = [], [], []
    for i, line in enumerate(p2):
        for part in shapely.get_parts(shapely.segmentize(line, DENSIFY_M)):
            xy = shapely.get_coordinates(part)
            if len(xy) < 2:
                continue
            mids.append((xy[1:] + xy[:-1]) / 2)
            lengths.append(np.hypot(*(xy[1:] - xy[:-1]).T))
            owners.append(np.full(len(xy) - 1, i))
    if not mids:
        z = np.zeros(0)
        return _Pieces(np.zeros((0, 2)), z, z.astype(int), z.astype(bool), z.astype(int))
    mid, length, owner = np.concatenate(mids), np.concatenate(lengths), np.concatenate(owners)
    matched = np.zeros(len(mid), bool)
    nearest = np.full(len(mid), -1)
    if len(t2):
        tree = shapely.STRtree(t2)
        (src, dst), dist = tree.query_nearest(
            shapely.points(mid), max_distance=b_max, return_distance=True, all_matches=False
        )
        ok = dist <= b_max
        matched[src[ok]] = True
        nearest[src[ok]] = dst[ok]
    return _Pieces(mid, length, owner, matched, nearest)


def _boundary_attributes(
    score: LinearScore, truth: Sequence[Feature], pred: Sequence[Feature], pieces: _Pieces
) -> LinearScore:
    m = pieces.matched
    if not m.any():
        return score
    w = pieces.length[m]
    pk = np.array([pred[i].marking for i in pieces.owner[m]], dtype=object)
    tk = np.array([truth[i].marking for i in pieces.nearest[m]], dtype=object)
    pc = np.array([str(pred[i].color) for i in pieces.owner[m]])
    tc = np.array([str(truth[i].color) for i in pieces.nearest[m]])
    judged = tc != "unknown"
    return dataclasses.replace(
        score,
        kind_accuracy=_weighted_share(pk == tk, w),
        color_accuracy=_weighted_share((pc == tc)[judged], w[judged]),
        color_unknown_share=_weighted_share(pc == "unknown", w),
    )


def _edge_attributes(
    score: LinearScore, truth: Sequence[Feature], pred: Sequence[Feature], pieces: _Pieces
) -> LinearScore:
    m = pieces.matched
    if not m.any():
        return score
    w = pieces.length[m]
    owners, nearest = pieces.owner[m], pieces.nearest[m]
    kind_ok = np.array(
        [pred[i].kind == truth[j].kind for i, j in zip(owners, nearest, strict=True)]
    )
    errors, weights = [], []
    for k, (i, j) in enumerate(zip(owners, nearest, strict=True)):
        p, t = pred[i], truth[j]
        if (
            p.kind is RoadEdgeKind.CURB
            and t.kind is RoadEdgeKind.CURB
            and p.height_m is not None
            and t.height_m is not None
        ):
            errors.append(p.height_m - t.height_m)
            weights.append(w[k])
    return dataclasses.replace(
        score,
        kind_accuracy=_weighted_share(kind_ok, w),
        curb_height_rms_m=_rms(np.array(errors), np.array(weights)),
    )


def _lane_attributes(
    score: LinearScore,
    truth: Sequence[Feature],
    pred: Sequence[Feature],
    truth_lines: tuple[np.ndarray, np.ndarray],
    pred_lines: tuple[np.ndarray, np.ndarray],
    b_max: float,
    region: BaseGeometry | None,
) -> LinearScore:
    (t2, t_full), (p2, p_full) = truth_lines, pred_lines
    width_rms = None
    if len(t2) and len(p2):
        tree = shapely.STRtree(t2)
        errors = []
        for lane, line in zip(pred, p_full, strict=True):
            xy = shapely.get_coordinates(line)  # one width per vertex of the unclipped line
            (src, dst), _ = tree.query_nearest(
                shapely.points(xy), max_distance=b_max, return_distance=True, all_matches=False
            )
            for k, j in zip(src, dst, strict=True):
                if region is None or shapely.intersects_xy(region, *xy[k]):
                    errors.append(lane.widths_m[k] - _width_at(truth[j], t_full[j], xy[k]))
        width_rms = _rms(np.array(errors))
    truth_index = {f.id: i for i, f in enumerate(truth)}
    pred_index = {f.id: i for i, f in enumerate(pred)}
    truth_edges = _edges(truth, truth_index)
    pred_edges = _edges(pred, pred_index)
    mapping = _map_lanes(t2, p2, b_max)
    judged = [(a, b) for a, b in pred_edges if not (a in mapping and mapping.get(b) == mapping[a])]
    correct = [e for e in judged if (mapping.get(e[0]), mapping.get(e[1])) in truth_edges]
    hit = {(mapping[a], mapping[b]) for a, b in correct}
    return dataclasses.replace(
        score,
        width_rms_m=width_rms,
        truth_edges=len(truth_edges),
        pred_edges=len(judged),
        edge_precision=_ratio(len(correct), len(judged)),
        edge_recall=_ratio(len(hit & truth_edges), len(truth_edges)),
    )


def _width_at(lane: Feature, line2d: LineString, xy: np.ndarray) -> float:
    """The truth lane's width (metres) at the centreline position nearest to ``xy``."""
    coords = shapely.get_coordinates(line2d)
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])
    s = shapely.line_locate_point(line2d, Point(xy))
    return float(np.interp(s, along, np.asarray(lane.widths_m, dtype=float)))


def _edges(lanes: Sequence[Feature], index: dict[str, int]) -> set[tuple[int, int]]:
    """Lane-graph edges (from, to) by lane index: successors and reversed predecessors."""
    edges = set()
    for i, lane in enumerate(lanes):
        edges |= {(i, index[s]) for s in lane.successors if s in index}
        edges |= {(index[p], i) for p in lane.predecessors if p in index}
    return edges


def _map_lanes(t2: np.ndarray, p2: np.ndarray, b_max: float) -> dict[int, int]:
    """pred lane index -> the truth lane index its centreline overlaps most (within b_max)."""
    if not len(t2) or not len(p2):
        return {}
    zones = shapely.buffer(t2, b_max)
    tree = shapely.STRtree(zones)
    pairs = tree.query(p2, predicate="intersects")
    best: dict[int, tuple[float, int]] = {}
    for i, j in pairs.T:
        overlap = float(shapely.length(shapely.intersection(p2[i], zones[j])))
        if overlap > 0 and overlap > best.get(int(i), (0.0, -1))[0]:
            best[int(i)] = (overlap, int(j))
    return {i: j for i, (_, j) in best.items()}


# ----------------------------------------------------------------------------------------------
# point layers


def _anchor_xyz(feature: Feature) -> tuple[float, float, float]:
    g = feature.geometry
    if isinstance(g, Point):
        return (g.x, g.y, g.z if g.has_z else 0.0)
    c = g.centroid
    z = float(shapely.get_coordinates(g, include_z=True)[:, 2].mean())
    return (c.x, c.y, z)


def match_points(
    truth_xyz: np.ndarray, pred_xyz: np.ndarray, radius_m: float
) -> list[tuple[int, int]]:
    """One-to-one (truth index, pred index) pairs within ``radius_m`` in 2D (metres): the most
    pairs, then the least total distance over all given axes (so 3D input pairs stacked sign
    panels by height), by the Hungarian method.

    >>> match_points(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.9, 0.0], [0.1, 0.0]]), 0.5)
    [(0, 1), (1, 0)]
    >>> match_points(np.zeros((0, 2)), np.array([[0.0, 0.0]]), 0.5)
    []
    """
    if len(truth_xyz) == 0 or len(pred_xyz) == 0:
        return []
    delta = truth_xyz[:, None, :] - pred_xyz[None, :, :]
    d2 = np.hypot(delta[..., 0], delta[..., 1])
    cost = np.where(d2 <= radius_m, np.linalg.norm(delta, axis=2), _INFEASIBLE)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if d2[r, c] <= radius_m]


def _score_points(
    name: str,
    truth: Sequence[Feature],
    pred: Sequence[Feature],
    radius_m: float,
    region: BaseGeometry | None = None,
) -> PointScore:
    if region is not None:
        truth = [f for f in truth if shapely.intersects_xy(region, *_anchor_xyz(f)[:2])]
        pred = [f for f in pred if shapely.intersects_xy(region, *_anchor_xyz(f)[:2])]
    txyz = np.array([_anchor_xyz(f) for f in truth], dtype=float).reshape(-1, 3)
    pxyz = np.array([_anchor_xyz(f) for f in pred], dtype=float).reshape(-1, 3)
    pairs = match_points(txyz, pxyz, radius_m)
    n = len(pairs)
    precision = _ratio(n, len(pred))
    recall = _ratio(n, len(truth))
    ti = np.array([i for i, _ in pairs], dtype=int)
    pi = np.array([j for _, j in pairs], dtype=int)
    diff = pxyz[pi] - txyz[ti]
    score = PointScore(
        name,
        len(truth),
        len(pred),
        n,
        float(radius_m),
        precision,
        recall,
        _f1(precision, recall),
        _rms(np.hypot(diff[:, 0], diff[:, 1])),
        _rms(np.linalg.norm(diff, axis=1)) if name != "road_arrows" else None,
    )
    if not pairs:
        return score
    matched = [(truth[i], pred[j]) for i, j in pairs]
    if name == "poles":
        return dataclasses.replace(
            score, height_rms_m=_rms(np.array([p.height_m - t.height_m for t, p in matched]))
        )
    if name == "signs":
        return dataclasses.replace(
            score,
            shape_accuracy=float(np.mean([p.shape == t.shape for t, p in matched])),
            class_accuracy=float(np.mean([p.sign_class == t.sign_class for t, p in matched])),
        )
    if name == "road_arrows":
        return dataclasses.replace(
            score, kind_accuracy=float(np.mean([p.kind == t.kind for t, p in matched]))
        )
    return score


# ----------------------------------------------------------------------------------------------
# polygon layers


def _iou(a: Any, b: Any) -> float:
    union = shapely.area(shapely.union(a, b))
    return float(shapely.area(shapely.intersection(a, b)) / union) if union > 0 else 0.0


def _score_polygons(
    name: str,
    truth: Sequence[Feature],
    pred: Sequence[Feature],
    region: BaseGeometry | None = None,
) -> PolygonScore:
    truth, t2, _ = _clip(truth, region)
    pred, p2, _ = _clip(pred, region)
    iou_union = None
    if len(t2) or len(p2):
        iou_union = _iou(shapely.union_all(t2), shapely.union_all(p2))
    best = tuple(max((_iou(t, p) for p in p2), default=0.0) for t in t2)
    mean_best = float(np.mean(best)) if best else None
    return PolygonScore(name, len(truth), len(pred), iou_union, mean_best, best)


# ----------------------------------------------------------------------------------------------
# output


def _fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(".", "", 1).isdigit()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    left = [k == 0 or not all(_numeric(r[k]) for r in rows) for k in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if lj else c.rjust(w) for c, w, lj in zip(cells, widths, left, strict=True)
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """One table of a report: a title, column heads, rows of formatted cells and notes."""

    title: str
    head: list[str]
    rows: list[list[str]]
    notes: tuple[str, ...] = ()


def score_tables(report: ScoreReport) -> list[ScoreTable]:
    """The report as tables, one per layer type; ``-`` marks an undefined value.

    :func:`format_table` renders them as text, the accuracy record as Markdown.
    """
    tables: list[ScoreTable] = []
    linear = [s for s in report.scores if isinstance(s, LinearScore)]
    if linear:
        head = ["layer", "truth", "pred", "truth m", "pred m"]
        for b in report.line_buffers_m:
            head += [f"C@{b:.2f}", f"K@{b:.2f}", f"F1@{b:.2f}"]
        head += ["RMS m", "kind", "colour", "other"]
        rows = []
        for s in linear:
            row = [s.layer, _fmt(s.truth_count), _fmt(s.pred_count)]
            row += [_fmt(s.truth_length_m, 1), _fmt(s.pred_length_m, 1)]
            for b in s.buffers:
                row += [_fmt(b.completeness), _fmt(b.correctness), _fmt(b.f1)]
            row += [_fmt(s.rms_offset_m), _fmt(s.kind_accuracy), _fmt(s.color_accuracy)]
            other = []
            if s.layer == "road_edges":
                other.append(f"curb height RMS {_fmt(s.curb_height_rms_m)} m")
            if s.layer == "lanes":
                other.append(f"width RMS {_fmt(s.width_rms_m)} m")
                other.append(
                    f"edges P {_fmt(s.edge_precision)} R {_fmt(s.edge_recall)} "
                    f"({_fmt(s.pred_edges)} pred, {_fmt(s.truth_edges)} truth)"
                )
            if s.layer == "lane_boundaries" and s.color_unknown_share:
                other.append(f"colour unknown on {_fmt(s.color_unknown_share)} of matched length")
            rows.append([*row, "; ".join(other) or "-"])
        notes = ()
        if any(s.layer in ("lane_boundaries", "road_edges") for s in linear):
            notes = (
                "kind/colour: length-weighted on matched pred length; a pred colour 'unknown' "
                "counts as wrong, a truth colour 'unknown' is not judged; virtual boundaries "
                "left out",
            )
        title = "Linear layers (length-based; C completeness, K correctness, F1 at each buffer m)"
        tables.append(ScoreTable(title, head, rows, notes))
    points = [s for s in report.scores if isinstance(s, PointScore)]
    if points:
        head = ["layer", "truth", "pred", "matched", "radius m", "precision", "recall", "F1"]
        head += ["RMSE 2D m", "RMSE 3D m", "height RMS m", "shape", "class", "kind"]
        rows = [
            [
                s.layer, _fmt(s.truth_count), _fmt(s.pred_count), _fmt(s.matched),
                _fmt(s.match_radius_m, 2), _fmt(s.precision), _fmt(s.recall), _fmt(s.f1),
                _fmt(s.rmse_2d_m), _fmt(s.rmse_3d_m), _fmt(s.height_rms_m),
                _fmt(s.shape_accuracy), _fmt(s.class_accuracy), _fmt(s.kind_accuracy),
            ]
            for s in points
        ]  # fmt: skip
        tables.append(
            ScoreTable("Point layers (one-to-one matching; arrows by centroid)", head, rows)
        )
    polygons = [s for s in report.scores if isinstance(s, PolygonScore)]
    if polygons:
        head = ["layer", "truth", "pred", "IoU of unions", "mean best IoU", "worst best IoU"]
        rows = [
            [
                s.layer, _fmt(s.truth_count), _fmt(s.pred_count), _fmt(s.iou_union),
                _fmt(s.mean_best_iou), _fmt(min(s.best_iou) if s.best_iou else None),
            ]
            for s in polygons
        ]  # fmt: skip
        tables.append(ScoreTable("Polygon layers", head, rows))
    return tables


def format_table(report: ScoreReport) -> str:
    """The report as plain-text tables (one per layer type); ``-`` marks an undefined value.

    >>> from tests.common import sample_model
    >>> text = format_table(score_maps(sample_model(), sample_model(), layers=["poles"]))
    >>> text.splitlines()[3].split()[:8]
    ['poles', '2', '2', '2', '0.50', '1.000', '1.000', '1.000']
    >>> text.splitlines()[3].split()[-3:]  # signs' shape and class, arrows' kind: not poles'
    ['-', '-', '-']
    """
    out: list[str] = []
    for table in score_tables(report):
        out += [table.title, *_table(table.head, table.rows), *table.notes, ""]
    return "\n".join(out).rstrip("\n")


def write_json_report(report: ScoreReport, path: str | os.PathLike[str]) -> None:
    """Write :meth:`ScoreReport.to_dict` as indented JSON, atomically."""
    write_json(path, report.to_dict())
