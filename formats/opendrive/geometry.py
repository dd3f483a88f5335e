"""OpenDRIVE geometry: plan-view records, cubic polynomials, and fitting them to measured lines.

A :class:`PlanGeometry` is one ``<geometry>`` record of a ``<planView>``: its start ``s`` (metres
along the road), start pose ``x``, ``y`` (metres, map CRS) and ``hdg`` (radians counter-clockwise
from +x), ``length`` and a shape: ``line``, ``arc``, ``spiral``, ``poly3`` (deprecated) or
``paramPoly3``. Lines, arcs and spirals are evaluated by :class:`pipeline.refline.ReferenceLine`;
the polynomial shapes here. :class:`PlanView` evaluates a whole record list at any ``s``.

For writing, :func:`fit_plan_view` fits a measured polyline with ``paramPoly3`` pieces
(``pRange="normalized"``) that pass through chosen vertices with shared tangents, so the line is
continuous in position and heading; :func:`fit_cubic_pieces` fits a profile (lane width,
elevation) with continuous cubic pieces ``a + b ds + c ds^2 + d ds^3``.

>>> view = PlanView((PlanGeometry(0.0, 0.0, 0.0, 0.0, 10.0, "line"),))
>>> x, y, hdg = view.evaluate(np.array([4.0]))
>>> float(x[0]), float(y[0]), float(hdg[0])
(4.0, 0.0, 0.0)
>>> PlanView(()).length
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial.legendre import leggauss

from pipeline.refline import Arc, Line, ReferenceLine, Spiral

__all__ = [
    "Cubic",
    "PlanGeometry",
    "PlanView",
    "cubic_value",
    "fit_cubic_pieces",
    "fit_plan_view",
]

_GL_X, _GL_W = leggauss(16)


@dataclass(frozen=True, slots=True)
class Cubic:
    """``a + b*ds + c*ds^2 + d*ds^3`` for ``ds = s - s0`` (OpenDRIVE's polynomial records)."""

    s0: float
    a: float
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0

    def __call__(self, s: np.ndarray) -> np.ndarray:
        ds = np.asarray(s, dtype=float) - self.s0
        return self.a + ds * (self.b + ds * (self.c + ds * self.d))

    def derivative(self, s: np.ndarray) -> np.ndarray:
        ds = np.asarray(s, dtype=float) - self.s0
        return self.b + ds * (2.0 * self.c + ds * 3.0 * self.d)


def cubic_value(
    pieces: tuple[Cubic, ...] | list[Cubic], s: np.ndarray, default: float = 0.0
) -> np.ndarray:
    """Evaluate a list of cubic records (sorted by ``s0``): each holds from its ``s0`` to the next.

    >>> cubic_value([Cubic(0.0, 1.0, 1.0), Cubic(2.0, 5.0)], np.array([1.0, 3.0])).tolist()
    [2.0, 5.0]
    >>> cubic_value([], np.array([1.0]), default=0.5).tolist()
    [0.5]
    """
    s = np.asarray(s, dtype=float)
    out = np.full(s.shape, float(default))
    if not pieces:
        return out
    starts = np.array([p.s0 for p in pieces])
    idx = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(pieces) - 1)
    for i in np.unique(idx):
        sel = idx == i
        out[sel] = pieces[i](s[sel])
    return out


@dataclass(frozen=True, slots=True)
class PlanGeometry:
    """One ``<geometry>`` record. ``params`` holds the shape's attributes by their OpenDRIVE names.

    ``kind`` is ``line``, ``arc`` (``curvature``), ``spiral`` (``curvStart``, ``curvEnd``),
    ``poly3`` (``a``..``d``) or ``paramPoly3`` (``aU``..``dV`` and ``pRange``).
    """

    s: float
    x: float
    y: float
    hdg: float
    length: float
    kind: str
    params: tuple[tuple[str, float | str], ...] = ()
    _cache: list = field(default_factory=list, repr=False, compare=False)

    def param(self, name: str, default: float = 0.0) -> float:
        for key, value in self.params:
            if key == name:
                return float(value)
        return default

    def evaluate(self, ds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (m) and heading (rad) at distances ``ds`` from the record's start."""
        ds = np.clip(np.asarray(ds, dtype=float), 0.0, self.length)
        if self.kind in ("line", "arc", "spiral"):
            if not self._cache:
                if self.kind == "line":
                    seg = Line(self.length)
                elif self.kind == "arc":
                    seg = Arc(self.length, self.param("curvature"))
                else:
                    seg = Spiral(self.length, self.param("curvStart"), self.param("curvEnd"))
                self._cache.append(ReferenceLine(self.x, self.y, self.hdg, (seg,)))
            x, y, hdg, _ = self._cache[0].evaluate(ds)
            return x, y, hdg
        if self.kind == "paramPoly3":
            normalized = dict(self.params).get("pRange", "normalized") == "normalized"
            p = ds / self.length if normalized and self.length > 0 else ds
            u, v, du, dv = self._uv(p)
        elif self.kind == "poly3":
            u = self._poly3_u(ds)
            v = self.param("a") + u * (
                self.param("b") + u * (self.param("c") + u * self.param("d"))
            )
            du = np.ones_like(u)
            dv = self.param("b") + u * (2 * self.param("c") + 3 * self.param("d") * u)
        else:
            raise ValueError(f"unknown plan-view geometry {self.kind!r}")
        c, s = math.cos(self.hdg), math.sin(self.hdg)
        x = self.x + u * c - v * s
        y = self.y + u * s + v * c
        return x, y, self.hdg + np.arctan2(dv, du)

    def _uv(self, p: np.ndarray):
        a = [self.param(k) for k in ("aU", "bU", "cU", "dU")]
        b = [self.param(k) for k in ("aV", "bV", "cV", "dV")]
        u = a[0] + p * (a[1] + p * (a[2] + p * a[3]))
        v = b[0] + p * (b[1] + p * (b[2] + p * b[3]))
        du = a[1] + p * (2 * a[2] + 3 * a[3] * p)
        dv = b[1] + p * (2 * b[2] + 3 * b[3] * p)
        return u, v, du, dv

    def _poly3_u(self, ds: np.ndarray) -> np.ndarray:
        """Local u reached after arc length ``ds`` along ``v(u)`` (table of 0.05 m steps)."""
        if not self._cache:
            b, c, d = self.param("b"), self.param("c"), self.param("d")
            u_end = self.length * 1.5 + 1.0
            u = np.linspace(0.0, u_end, max(2, int(u_end / 0.05) + 1))
            slope = b + u * (2 * c + 3 * d * u)
            speed = np.sqrt(1.0 + slope * slope)
            arc = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(u))])
            self._cache.append((arc, u))
        arc, u = self._cache[0]
        return np.interp(ds, arc, u)


@dataclass(frozen=True, slots=True)
class PlanView:
    """A road's reference line: its ``<geometry>`` records in order of ``s``."""

    records: tuple[PlanGeometry, ...]
    _index: list = field(default_factory=list, repr=False, compare=False)

    @property
    def length(self) -> float:
        """The end ``s`` of the last record, metres."""
        return self.records[-1].s + self.records[-1].length if self.records else 0.0

    def evaluate(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (m) and heading (rad) at ``s`` (clipped to the line)."""
        s = np.asarray(s, dtype=float)
        x = np.zeros(s.shape)
        y = np.zeros(s.shape)
        hdg = np.zeros(s.shape)
        if not self.records:
            return x, y, hdg
        starts = np.array([r.s for r in self.records])
        idx = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(self.records) - 1)
        for i in np.unique(idx):
            sel = idx == i
            rec = self.records[i]
            x[sel], y[sel], hdg[sel] = rec.evaluate(s[sel] - rec.s)
        return x, y, hdg

    def offset_points(self, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points at ``s`` with lateral offset ``t`` (metres, left positive)."""
        x, y, hdg = self.evaluate(s)
        return x - t * np.sin(hdg), y + t * np.cos(hdg)

    def project(
        self, px: np.ndarray, py: np.ndarray, step_m: float = 0.25
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest (s, t) of points on this line (dense sampling, then Newton refinement)."""
        px = np.atleast_1d(np.asarray(px, dtype=float))
        py = np.atleast_1d(np.asarray(py, dtype=float))
        if not self._index or self._index[0][0] != step_m:
            from scipy.spatial import cKDTree

            n = max(2, math.ceil(self.length / step_m) + 1)
            grid = np.linspace(0.0, self.length, n)
            gx, gy, _ = self.evaluate(grid)
            self._index[:] = [(step_m, grid, cKDTree(np.column_stack([gx, gy])))]
        _, grid, tree = self._index[0]
        _, nearest = tree.query(np.column_stack([px, py]))
        s = grid[nearest]
        for _ in range(5):
            rx, ry, hdg = self.evaluate(s)
            along = (px - rx) * np.cos(hdg) + (py - ry) * np.sin(hdg)
            s = np.clip(s + along, 0.0, self.length)
        rx, ry, hdg = self.evaluate(s)
        t = -(px - rx) * np.sin(hdg) + (py - ry) * np.cos(hdg)
        return s, t


# --- fitting -----------------------------------------------------------------------------------


def _tangents(points: np.ndarray) -> np.ndarray:
    """Unit tangents at polyline vertices from 3-point non-uniform differences."""
    n = len(points)
    if n == 2:
        d = points[1] - points[0]
        return np.tile(d / np.linalg.norm(d), (2, 1))
    h = np.linalg.norm(np.diff(points, axis=0), axis=1)
    tan = np.zeros_like(points)
    h1, h2 = h[:-1, None], h[1:, None]
    p0, p1, p2 = points[:-2], points[1:-1], points[2:]
    tan[1:-1] = (h1 * h1 * (p2 - p1) + h2 * h2 * (p1 - p0)) / (h1 * h2 * (h1 + h2))
    a, b = h[0], h[1]
    tan[0] = (
        (-(2 * a + b) / (a * (a + b))) * points[0]
        + ((a + b) / (a * b)) * points[1]
        - (a / (b * (a + b))) * points[2]
    )
    a, b = h[-1], h[-2]
    tan[-1] = (
        ((2 * a + b) / (a * (a + b))) * points[-1]
        - ((a + b) / (a * b)) * points[-2]
        + (a / (b * (a + b))) * points[-3]
    )
    return tan / np.linalg.norm(tan, axis=1)[:, None]


def _hermite_local(p0, p1, t0, t1) -> tuple[float, tuple[float, ...]]:
    """Heading and (aU..dU, aV..dV) of the cubic from p0 to p1 with unit tangents t0, t1."""
    m = float(np.linalg.norm(p1 - p0))
    c2 = 3 * (p1 - p0) - 2 * m * t0 - m * t1
    c3 = 2 * (p0 - p1) + m * t0 + m * t1
    hdg = math.atan2(t0[1], t0[0])
    cos, sin = math.cos(hdg), math.sin(hdg)

    def local(vec):
        return vec[0] * cos + vec[1] * sin, -vec[0] * sin + vec[1] * cos

    cu, cv = local(c2)
    du, dv = local(c3)
    return hdg, (0.0, m, cu, du, 0.0, 0.0, cv, dv)


def _arc_length(coef: tuple[float, ...]) -> float:
    """Integrated arc length of a normalised paramPoly3 over p in [0, 1] (4 x 16-point Gauss)."""
    _, bu, cu, du, _, bv, cv, dv = coef
    total = 0.0
    for k in range(4):
        p = (k + 0.5 * (1.0 + _GL_X)) / 4.0
        ddu = bu + p * (2 * cu + 3 * du * p)
        ddv = bv + p * (2 * cv + 3 * dv * p)
        total += float(np.sum(_GL_W * np.hypot(ddu, ddv))) / 8.0
    return total


def _piece_points(p0, hdg, coef, n: int) -> np.ndarray:
    p = np.linspace(0.0, 1.0, n)
    _, bu, cu, du, _, bv, cv, dv = coef
    u = p * (bu + p * (cu + p * du))
    v = p * (bv + p * (cv + p * dv))
    c, s = math.cos(hdg), math.sin(hdg)
    return np.column_stack([p0[0] + u * c - v * s, p0[1] + u * s + v * c])


def _distance_to_piece(p0, hdg: float, coef, targets: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distance of points to a paramPoly3 piece, by Newton steps on the curve parameter."""
    _, bu, cu, du, _, bv, cv, dv = coef
    c, s = math.cos(hdg), math.sin(hdg)
    d = targets - p0
    qu, qv = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    p = p.copy()
    for _ in range(8):
        u = p * (bu + p * (cu + p * du))
        v = p * (bv + p * (cv + p * dv))
        u1, v1 = bu + p * (2 * cu + 3 * du * p), bv + p * (2 * cv + 3 * dv * p)
        u2, v2 = 2 * cu + 6 * du * p, 2 * cv + 6 * dv * p
        ru, rv = u - qu, v - qv
        f = ru * u1 + rv * v1
        fp = u1 * u1 + v1 * v1 + ru * u2 + rv * v2
        p = np.clip(p - f / np.where(np.abs(fp) > 1e-12, fp, 1e-12), 0.0, 1.0)
    u = p * (bu + p * (cu + p * du))
    v = p * (bv + p * (cv + p * dv))
    return np.hypot(u - qu, v - qv)


def fit_plan_view(
    points: np.ndarray, tolerance_m: float = 0.002, max_piece_m: float = 200.0
) -> tuple[PlanGeometry, ...]:
    """Fit normalised ``paramPoly3`` records through a polyline's vertices (metres).

    Each piece runs between two vertices with the tangents estimated there, so consecutive
    pieces share end point and heading; pieces grow while every vertex in between stays within
    ``tolerance_m`` of the curve. ``s`` of each record is the sum of the previous lengths.

    >>> recs = fit_plan_view(np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0]]))
    >>> len(recs), recs[0].kind, round(recs[0].length, 9)
    (1, 'paramPoly3', 10.0)
    >>> fit_plan_view(np.zeros((1, 2)))
    ()
    """
    pts = np.asarray(points, dtype=float)[:, :2]
    if len(pts) >= 2:
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
        pts = pts[keep]
    if len(pts) < 2:
        return ()
    tan = _tangents(pts)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])

    def piece(i: int, j: int):
        hdg, coef = _hermite_local(pts[i], pts[j], tan[i], tan[j])
        return hdg, coef

    def ok(i: int, j: int) -> bool:
        if cum[j] - cum[i] > max_piece_m:
            return False
        if j == i + 1:
            return True
        hdg, coef = piece(i, j)
        p = (cum[i + 1 : j] - cum[i]) / (cum[j] - cum[i])
        dist = _distance_to_piece(pts[i], hdg, coef, pts[i + 1 : j], p)
        return bool(np.max(dist) <= tolerance_m)

    records: list[PlanGeometry] = []
    s = 0.0
    i = 0
    last = len(pts) - 1
    while i < last:
        if ok(i, last):
            j = last
        else:
            lo, hi = i + 1, last  # ok(lo) holds, ok(hi) fails
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if ok(i, mid):
                    lo = mid
                else:
                    hi = mid
            j = lo
        hdg, coef = piece(i, j)
        length = _arc_length(coef)
        names = ("aU", "bU", "cU", "dU", "aV", "bV", "cV", "dV")
        params = (*zip(names, coef, strict=True), ("pRange", "normalized"))
        records.append(
            PlanGeometry(s, float(pts[i][0]), float(pts[i][1]), hdg, length, "paramPoly3", params)
        )
        s += length
        i = j
    return tuple(records)


def fit_cubic_pieces(
    s: np.ndarray, values: np.ndarray, tolerance: float = 0.002, max_piece_m: float = 1e9
) -> tuple[Cubic, ...]:
    """Continuous cubic pieces through ``(s, values)`` within ``tolerance`` (same unit as values).

    The first piece starts at ``s[0]`` with the first value; each next piece starts where the
    previous one ends (continuous in value). Pieces grow greedily (bisection on the end sample).

    >>> p = fit_cubic_pieces(np.array([0.0, 1.0, 2.0]), np.array([3.5, 3.5, 3.5]))
    >>> [(c.s0, round(c.a, 12), round(c.b, 12)) for c in p]
    [(0.0, 3.5, 0.0)]
    >>> fit_cubic_pieces(np.array([]), np.array([]))
    ()
    """
    s = np.asarray(s, dtype=float)
    v = np.asarray(values, dtype=float)
    if len(s) == 0:
        return ()
    if len(s) == 1 or s[-1] - s[0] <= 1e-9:
        return (Cubic(float(s[0]), float(v[0])),)

    def fit(i: int, j: int, a: float):
        ds = s[i : j + 1] - s[i]
        dv = v[i : j + 1] - a
        deg = min(3, j - i)
        cols = np.column_stack([ds ** (k + 1) for k in range(deg)])
        coef, *_ = np.linalg.lstsq(cols, dv, rcond=None)
        coef = np.concatenate([coef, np.zeros(3 - deg)])
        resid = np.abs(cols @ coef[:deg] - dv).max() if len(ds) else 0.0
        return coef, resid

    pieces: list[Cubic] = []
    i, a = 0, float(v[0])
    last = len(s) - 1
    while i < last:
        coef, resid = fit(i, last, a)
        if resid <= tolerance and s[last] - s[i] <= max_piece_m:
            j = last
        else:
            lo, hi = i + 1, last
            while hi - lo > 1:
                mid = (lo + hi) // 2
                _, r2 = fit(i, mid, a)
                if r2 <= tolerance and s[mid] - s[i] <= max_piece_m:
                    lo = mid
                else:
                    hi = mid
            j = lo
            coef, resid = fit(i, j, a)
        piece = Cubic(float(s[i]), a, float(coef[0]), float(coef[1]), float(coef[2]))
        pieces.append(piece)
        a = float(piece(np.array(s[j])))
        i = j
    return tuple(pieces)
