"""Road-marking shapes in the (s, t) frame of a reference line: lines, dashes, bars and arrows.

Shapes are built in (s, t) metres (s along the line, t to the left) and mapped through the
:class:`~pipeline.refline.ReferenceLine` into local x, y. Dimensions follow GB 5768.3 as commonly
applied: 0.15 m lane lines, 2 m / 4 m dashes below 60 km/h design speed and 6 m / 9 m above,
0.15 m between the lines of a double centre line, 0.45 m zebra stripes with 0.6 m gaps.

>>> dash_intervals(0.0, 20.0, 2.0, 4.0, phase_m=0.0)
[(0.0, 2.0), (6.0, 8.0), (12.0, 14.0), (18.0, 20.0)]
>>> dash_intervals(5.0, 5.0, 2.0, 4.0)
[]
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import shapely
import shapely.affinity
from shapely import LineString, Polygon
from shapely.geometry.polygon import orient

from pipeline.model import ArrowKind
from pipeline.refline import ReferenceLine

__all__ = [
    "arrow_outline",
    "dash_intervals",
    "map_polygon",
    "solid_pieces",
    "st_rectangle",
]


def dash_intervals(
    s_start: float,
    s_end: float,
    dash_m: float,
    gap_m: float,
    phase_m: float = 0.0,
    min_piece_m: float = 0.3,
) -> list[tuple[float, float]]:
    """The painted (s0, s1) intervals of a dashed line over [s_start, s_end].

    The pattern starts ``phase_m`` metres into a dash-gap cycle at ``s_start``; pieces cut shorter
    than ``min_piece_m`` at either end are dropped.
    """
    if s_end - s_start <= 0:
        return []
    period = dash_m + gap_m
    out = []
    k0 = s_start - phase_m
    n = math.ceil((s_end - k0) / period) + 1
    for i in range(n):
        a, b = k0 + i * period, k0 + i * period + dash_m
        a, b = max(a, s_start), min(b, s_end)
        if b - a >= min_piece_m - 1e-9:
            out.append((a, b))
    return out


def solid_pieces(
    s_start: float, s_end: float, max_piece_m: float = 20.0
) -> list[tuple[float, float]]:
    """A solid line split into equal pieces of at most ``max_piece_m``.

    >>> solid_pieces(0.0, 30.0)
    [(0.0, 15.0), (15.0, 30.0)]
    >>> solid_pieces(3.0, 3.0)
    []
    """
    if s_end - s_start <= 0:
        return []
    n = max(1, math.ceil((s_end - s_start) / max_piece_m - 1e-9))
    edges = np.linspace(s_start, s_end, n + 1)
    return [(float(a), float(b)) for a, b in itertools.pairwise(edges)]


def st_rectangle(s0: float, s1: float, t0: float, t1: float, step_m: float = 0.5) -> Polygon:
    """A rectangle in (s, t), densified along s so it maps through a curved line faithfully.

    >>> st_rectangle(0.0, 1.0, -0.1, 0.1).bounds
    (0.0, -0.1, 1.0, 0.1)
    """
    n = max(1, math.ceil((s1 - s0) / step_m))
    s = np.linspace(s0, s1, n + 1)
    right = np.column_stack([s, np.full(n + 1, t0)])
    left = np.column_stack([s[::-1], np.full(n + 1, t1)])
    return Polygon(np.vstack([right, left]))


def map_polygon(line: ReferenceLine, polygon_st: Polygon, step_m: float = 0.5) -> Polygon:
    """Map an (s, t) polygon into local x, y through ``line`` (edges densified to ``step_m``)."""
    dense = shapely.segmentize(polygon_st, step_m)

    def ring(coords: np.ndarray) -> np.ndarray:
        x, y = line.offset_points(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    exterior = ring(np.asarray(dense.exterior.coords))
    holes = [ring(np.asarray(h.coords)) for h in dense.interiors]
    return Polygon(exterior, holes)


def _head(tip: np.ndarray, direction: np.ndarray, length: float, half_width: float) -> Polygon:
    d = direction / np.linalg.norm(direction)
    n = np.array([-d[1], d[0]])
    base = tip - d * length
    return Polygon([base + n * half_width, tip, base - n * half_width])


def arrow_outline(kind: ArrowKind, length_m: float) -> Polygon:
    """A guide arrow's outline in arrow coordinates: a from tail (0) to tip (length), b to the left.

    Proportions after GB 5768.3: head about a quarter of the length and 0.6 m wide (scaled with
    the length relative to 6 m), shaft 0.2 m wide.

    >>> p = arrow_outline(ArrowKind.STRAIGHT, 6.0)
    >>> [round(v, 2) for v in p.bounds]
    [0.0, -0.3, 6.0, 0.3]
    """
    f = length_m / 6.0
    hw, head_len, head_hw = 0.1 * max(f, 0.75), 1.6 * f, 0.3 * max(f, 0.75)
    shaft_end = length_m - head_len
    straight = LineString([(0, 0), (shaft_end + 0.01, 0)]).buffer(hw, cap_style="flat")
    straight = straight.union(
        _head(np.array([length_m, 0.0]), np.array([1.0, 0.0]), head_len, head_hw)
    )
    start = np.array([0.35 * length_m, 0.0])
    bend = np.array([0.55 * length_m, 0.0])
    tip = np.array([0.55 * length_m + 0.9 * f, 1.1 * f])
    d = tip - bend
    stem_end = tip - d / np.linalg.norm(d) * (0.7 * f)
    branch = LineString([start, bend, stem_end + d / np.linalg.norm(d) * 0.01]).buffer(
        hw, cap_style="flat", join_style="mitre"
    )
    branch = branch.union(_head(tip, d, 0.7 * f, head_hw * 0.9))
    tail = LineString([(0, 0), (0.35 * length_m + 0.01, 0)]).buffer(hw, cap_style="flat")
    if kind == ArrowKind.STRAIGHT:
        shape = straight
    elif kind in (ArrowKind.LEFT, ArrowKind.RIGHT):
        shape = tail.union(branch)
    elif kind in (ArrowKind.STRAIGHT_LEFT, ArrowKind.STRAIGHT_RIGHT):
        shape = straight.union(branch)
    else:
        raise ValueError(f"arrow kind {kind} is not drawn by the simulator")
    if kind in (ArrowKind.RIGHT, ArrowKind.STRAIGHT_RIGHT):
        shape = shapely.affinity.scale(shape, 1.0, -1.0, origin=(0, 0))
    shape = shapely.simplify(shape, 1e-4)
    if not isinstance(shape, Polygon):
        shape = max(shape.geoms, key=lambda g: g.area)
    return orient(Polygon(shape.exterior), 1.0)
