"""The simulated roads: urban junction approach, curved arterial and highway, with exact truth.

:func:`build_scene` lays out a road in the (s, t) frame of a reference line (lines, arcs and
clothoids from :mod:`pipeline.refline`), then produces the
:class:`~data_samples.simulator.scene.Scene`
the scanner drives through: ground and object meshes in local metres, painted patches, the drive
path and the ground truth as a :class:`~pipeline.model.MapModel` in EPSG:4549 (CGCS2000 3-degree
Gauss-Kruger, CM 120E; x easting, y northing), placed in Xishan district, Wuxi.

Marking rules (GB 5768.3 as commonly applied): 0.15 m lines; double yellow centre line (two
0.15 m lines 0.15 m apart); white dashed lane lines, 2 m / 4 m below 60 km/h design speed and
6 m / 9 m from 60 km/h; lane lines solid over the last 30-50 m before a stop line (the guide-lane
zone) with guide arrows; 0.4 m stop line; zebra stripes 0.45 m wide with 0.6 m gaps.

Everything random is drawn from ``numpy.random.default_rng(seed)`` and recorded in
``Scene.metadata``, so a (kind, seed, length) triple always gives the same scene and IDs.

>>> sorted(KINDS)
['arterial', 'highway', 'urban']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely import LineString, Point, Polygon

from data_samples.simulator import meshes
from data_samples.simulator.markings import (
    arrow_outline,
    dash_intervals,
    map_polygon,
    solid_pieces,
    st_rectangle,
)
from data_samples.simulator.scene import DrivePath, PaintPatch, Scene, Surface
from pipeline.model import (
    ArrowKind,
    Color,
    Crosswalk,
    Direction,
    Junction,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    RoadArrow,
    RoadEdge,
    RoadEdgeKind,
    Sign,
    SignClass,
    SignShape,
    StopLine,
    feature_id,
)
from pipeline.refline import Arc, Line, ReferenceLine, Segment, Spiral

__all__ = [
    "CRS",
    "DEFAULT_LENGTH_M",
    "HEIGHT_DATUM",
    "KINDS",
    "MIN_LENGTH_M",
    "SPEED_MPS",
    "RoadFrame",
    "build_scene",
    "road_frame",
    "scene_origin",
    "sign_panel_surfaces",
    "sign_size",
]

KINDS: tuple[str, ...] = ("urban", "arterial", "highway")
DEFAULT_LENGTH_M: dict[str, float] = {"urban": 120.0, "arterial": 220.0, "highway": 250.0}
MIN_LENGTH_M: dict[str, float] = {"urban": 90.0, "arterial": 90.0, "highway": 60.0}
SPEED_MPS: dict[str, float] = {"urban": 7.0, "arterial": 9.0, "highway": 15.0}
CRS = "EPSG:4549"
HEIGHT_DATUM = "Yellow Sea 1985 height"  # EPSG:5737, the 1985 National Height Datum
BASE_LON_LAT = (120.36, 31.59)  # Xishan district, Wuxi

LINE_W = 0.15  # lane-line width, m
DOUBLE_GAP = 0.15  # clear gap between the two lines of a double centre line, m
STOP_W = 0.4
STRIPE_W, STRIPE_GAP = 0.45, 0.6
S_STEP = 0.5  # mesh and paint sampling along s, m (chord error < 2 mm for radii >= 16 m)
TRUTH_STEP = 1.0  # boundary vertex spacing, m
LANE_STEP = 2.0  # lane centreline vertex spacing, m
PATH_STEP = 0.05

_SIGN_RGB = {
    SignClass.WARNING: (240, 200, 30),
    SignClass.PROHIBITION: (200, 30, 35),
    SignClass.STOP: (200, 30, 35),
    SignClass.YIELD: (210, 45, 45),
    SignClass.MANDATORY: (30, 80, 180),
}
_WHITE = (240, 240, 240)
_CAR_COLOURS = [
    (120, 30, 30),
    (30, 40, 110),
    (200, 200, 205),
    (25, 25, 28),
    (150, 150, 155),
    (90, 20, 20),
]


@lru_cache(maxsize=1)
def _lonlat_to_gk() -> Transformer:
    return Transformer.from_crs("EPSG:4326", CRS, always_xy=True)


def scene_origin(kind: str, seed: int, height_m: float = 5.0) -> tuple[float, float, float]:
    """The EPSG:4549 (easting, northing, height) of a scene's local origin, near 120.36E 31.59N.

    Kinds sit 1.5 km apart east-west and seeds on a 200 m x 250 m grid, so scenes rarely overlap.

    >>> e, n, h = scene_origin("urban", 0)
    >>> 530_000 < e < 540_000 and 3_490_000 < n < 3_500_000
    True
    """
    x, y = _lonlat_to_gk().transform(*BASE_LON_LAT)
    dx = (KINDS.index(kind) - 1) * 1500.0 + (seed % 7) * 200.0 - 600.0
    dy = ((seed // 7) % 11) * 250.0 - 1250.0
    return (round(x + dx, 3), round(y + dy, 3), round(height_m, 3))


# --------------------------------------------------------------------------- reference lines


def _truncate(segments: list[Segment], length_m: float) -> list[Segment]:
    out: list[Segment] = []
    total = 0.0
    for seg in segments:
        if total + seg.length >= length_m - 1e-9:
            rest = length_m - total
            if rest > 1e-6:
                if isinstance(seg, Line):
                    out.append(Line(rest))
                elif isinstance(seg, Arc):
                    out.append(Arc(rest, seg.curvature))
                else:
                    out.append(Spiral(rest, seg.curv_start, seg.curv_start + seg.curv_rate * rest))
            return out
        out.append(seg)
        total += seg.length
    return out


def _bend(
    rng: np.random.Generator,
    budget_m: float,
    lead: tuple[float, float],
    spiral: tuple[float, float],
    radius: tuple[float, float],
    arc: tuple[float, float],
) -> tuple[list[Segment], dict]:
    """line -> clothoid -> arc -> clothoid, scaled to fit ``budget_m``; the rest is a straight."""
    lead_m, spiral_m = rng.uniform(*lead), rng.uniform(*spiral)
    radius_m, arc_m = rng.uniform(*radius), rng.uniform(*arc)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    total = lead_m + 2 * spiral_m + arc_m
    scale = min(1.0, budget_m / total) if budget_m > 0 else 0.0
    info = {
        "lead_m": lead_m * scale,
        "spiral_m": spiral_m * scale,
        "radius_m": radius_m,
        "arc_m": arc_m * scale,
        "turn": "left" if sign > 0 else "right",
    }
    if scale < 0.3:
        return [], {"bend": None}
    k = sign / radius_m
    segs: list[Segment] = [
        Line(lead_m * scale),
        Spiral(spiral_m * scale, 0.0, k),
        Arc(arc_m * scale, k),
        Spiral(spiral_m * scale, k, 0.0),
    ]
    return segs, {"bend": info}


def _highway_line(rng: np.random.Generator, length_m: float) -> tuple[list[Segment], dict]:
    segs: list[Segment] = [Line(rng.uniform(20.0, 60.0))]
    total = segs[0].length
    curves = []
    sign = 1.0 if rng.random() < 0.5 else -1.0
    while total < length_m:
        spiral_m, arc_m = rng.uniform(60.0, 120.0), rng.uniform(60.0, 200.0)
        radius_m, line_m = rng.uniform(600.0, 1500.0), rng.uniform(50.0, 200.0)
        k = sign / radius_m
        segs += [Spiral(spiral_m, 0.0, k), Arc(arc_m, k), Spiral(spiral_m, k, 0.0), Line(line_m)]
        curves.append(
            {
                "radius_m": radius_m,
                "spiral_m": spiral_m,
                "arc_m": arc_m,
                "turn": "left" if sign > 0 else "right",
            }
        )
        total += 2 * spiral_m + arc_m + line_m
        sign = -sign
    return _truncate(segs, length_m), {"curves": curves}


# --------------------------------------------------------------------------- the builder


@dataclass
class _Run:
    """One lane-boundary marking over [s0, s1] at lateral offset t."""

    key: tuple  # (direction, index, section)
    s0: float
    s1: float
    t: float
    marking: MarkingKind
    color: Color
    digitise: int  # +1 along s, -1 against
    dash: tuple[float, float] | None = None
    phase: float = 0.0
    feature: LaneBoundary | None = None


class _World:
    """Accumulates surfaces, paint and truth for one scene (internal, mutable while building)."""

    def __init__(self, kind: str, seed: int, length_m: float):
        self.kind, self.seed, self.length = kind, seed, length_m
        self.rng = np.random.default_rng(seed)
        self.survey_id = f"truth-{kind}-{seed}"
        self.meta: dict = {"kind": kind, "seed": seed, "length_m": length_m}
        self.surfaces: list[Surface] = []
        self.paint: list[PaintPatch] = []
        self.features: list = []
        self.runs: list[_Run] = []

    # ---- coordinates
    def z_pav(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Pavement height (local m): grade along s, crown falling to the edges, level beyond."""
        return self.grade * np.asarray(s) - self.cross * np.minimum(np.abs(t), self.t_flat)

    def local_st(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        x, y = self.line.offset_points(s, t)
        return np.column_stack([x, y])

    def crs_line(self, s: np.ndarray, t: np.ndarray, dz: float = 0.0) -> LineString:
        x, y = self.line.offset_points(s, t)
        z = self.z_pav(s, t) + dz
        ox, oy, oz = self.origin
        return LineString(np.column_stack([x + ox, y + oy, z + oz]))

    def crs_polygon(self, polygon_st: Polygon) -> tuple[Polygon, Polygon]:
        """(local 2D polygon, CRS 3D polygon) of an (s, t) polygon."""
        dense = np.asarray(shapely.segmentize(polygon_st, S_STEP).exterior.coords)
        x, y = self.line.offset_points(dense[:, 0], dense[:, 1])
        z = self.z_pav(dense[:, 0], dense[:, 1])
        ox, oy, oz = self.origin
        return Polygon(np.column_stack([x, y])), Polygon(np.column_stack([x + ox, y + oy, z + oz]))

    def crs_point(self, x: float, y: float, z: float) -> Point:
        ox, oy, oz = self.origin
        return Point(x + ox, y + oy, z + oz)

    def wear(self) -> float:
        return float(
            self.rng.uniform(0.0, 0.2) if self.rng.random() < 0.9 else self.rng.uniform(0.2, 0.6)
        )

    def create(self, cls, geometry, *args, extra: tuple = (), **kwargs):
        f = cls.create(
            geometry, *args, survey_id=self.survey_id, method="simulated", id_extra=extra, **kwargs
        )
        self.features.append(f)
        return f

    def add_surface(
        self, name: str, material: str, mesh: meshes.Mesh, rgb=None, feature_id=None
    ) -> None:
        v, t = mesh
        self.surfaces.append(Surface(name, material, v, t, rgb=rgb, feature_id=feature_id))

    def s_grid(self, s0: float, s1: float, step: float = S_STEP, t: float = 0.0) -> np.ndarray:
        """Stations over [s0, s1] so that points at offset ``t`` are at most ``step`` apart."""
        step = step / (1.0 + abs(t) * self.k_max)
        n = max(1, math.ceil((s1 - s0) / step - 1e-9))
        return np.linspace(s0, s1, n + 1)


def _t_grid(t0: float, t1: float, step: float, must: tuple[float, ...] = ()) -> np.ndarray:
    n = max(1, math.ceil(abs(t1 - t0) / step - 1e-9))
    t = np.concatenate(
        [np.linspace(t0, t1, n + 1), [m for m in must if min(t0, t1) < m < max(t0, t1)]]
    )
    return np.unique(np.round(t, 9))


# --------------------------------------------------------------------------- cross sections


def _plan(w: _World) -> None:
    """Draw every cross-section and layout parameter for the kind; record them in metadata."""
    rng, kind, L = w.rng, w.kind, w.length
    m = w.meta
    if kind == "highway":
        w.n_lanes = int(rng.integers(3, 5))
        w.lane_w = 3.75
        w.design_speed = 100 if rng.random() < 0.5 else 120
        w.median = "barrier"
        w.barrier_half = rng.uniform(0.25, 0.3)
        w.barrier_h = rng.uniform(0.8, 0.9)
        w.t_in = w.barrier_half + rng.uniform(0.5, 0.75)
        w.shoulder = rng.uniform(2.5, 3.0)
        w.outer = "guardrail" if rng.random() < 0.5 else "pavement_edge"
        w.median_kind = "concrete" if rng.random() < 0.6 else "guardrail"
        if w.median_kind == "guardrail":
            w.barrier_h = GUARDRAIL_H
        w.t_edge = w.t_in + w.n_lanes * w.lane_w
        w.t_curb = w.t_edge + LINE_W / 2 + w.shoulder  # the pavement edge
        w.t_flat = w.t_curb
        w.t_outer = w.t_curb + rng.uniform(8.0, 12.0)
        w.curb_h = 0.0
        m.update(
            median_barrier=w.median_kind,
            outer_edge=w.outer,
            shoulder_m=w.shoulder,
            barrier_height_m=w.barrier_h,
            barrier_half_width_m=w.barrier_half,
        )
    else:
        w.n_lanes = int(rng.integers(2, 4))
        w.lane_w = float(rng.uniform(3.0, 3.5))
        w.design_speed = 50 if kind == "urban" else (50 if rng.random() < 0.5 else 60)
        w.median = "barrier" if (kind == "arterial" and rng.random() < 0.5) else "double_yellow"
        if w.median == "barrier":
            w.barrier_half = rng.uniform(0.2, 0.25)
            w.barrier_h = rng.uniform(0.5, 0.7)
            w.t_in = w.barrier_half + rng.uniform(0.4, 0.6)
            m.update(barrier_height_m=w.barrier_h, barrier_half_width_m=w.barrier_half)
        else:
            w.t_in = 0.0
        w.t_edge = w.t_in + w.n_lanes * w.lane_w
        w.t_curb = w.t_edge + LINE_W / 2 + rng.uniform(0.25, 0.45)
        w.t_flat = w.t_curb
        w.curb_h = float(rng.uniform(0.10, 0.20))
        w.sidewalk = float(rng.uniform(3.0, 4.0))
        w.t_outer = w.t_curb + w.sidewalk + rng.uniform(4.0, 6.0)
        m.update(curb_height_m=w.curb_h, sidewalk_width_m=w.sidewalk)
    w.dash = (6.0, 9.0) if w.design_speed >= 60 else (2.0, 4.0)
    w.cross = float(rng.uniform(0.015, 0.02))
    w.grade = float(rng.uniform(0.0, 0.02) * (1 if rng.random() < 0.5 else -1))
    height = float(rng.uniform(4.0, 6.0))
    w.origin = scene_origin(kind, w.seed, height)
    hdg0 = float(rng.uniform(-math.pi, math.pi))
    m.update(
        lanes_per_direction=w.n_lanes,
        lane_width_m=w.lane_w,
        design_speed_kmh=w.design_speed,
        dash_m=w.dash[0],
        gap_m=w.dash[1],
        median=w.median,
        inner_line_offset_m=w.t_in,
        edge_line_offset_m=w.t_edge,
        road_edge_offset_m=w.t_curb,
        cross_slope=w.cross,
        grade=w.grade,
        origin=list(w.origin),
        heading0_rad=hdg0,
        crs=CRS,
    )

    w.junction = kind in ("urban", "arterial")
    if w.junction:
        w.J = float(rng.uniform(16.0, 22.0))
        exit_len = float(rng.uniform(22.0, 28.0) if kind == "urban" else rng.uniform(18.0, 24.0))
        w.cw = float(rng.uniform(4.0, 6.0))
        stop_gap = float(rng.uniform(1.0, 2.0))
        w.gz_fwd, w.gz_bwd = float(rng.uniform(30.0, 50.0)), float(rng.uniform(30.0, 50.0))
        w.arrow_len = 6.0 if w.design_speed >= 60 else float(rng.choice([4.5, 6.0]))
        min_len = exit_len + w.J + 2 * w.cw + 25.0
        if min_len > L:
            raise ValueError(f"{kind} scene needs length_m >= {min_len:.0f}, got {L}")
        w.s_j1 = L - exit_len
        w.s_j0 = w.s_j1 - w.J
        w.s_xa = (w.s_j0 - 1.0 - w.cw, w.s_j0 - 1.0)
        w.s_stop_a = w.s_xa[0] - stop_gap - STOP_W / 2
        w.s_a_end = w.s_stop_a - STOP_W / 2
        w.s_xb = (w.s_j1 + 1.0, w.s_j1 + 1.0 + w.cw)
        w.s_stop_b = w.s_xb[1] + stop_gap + STOP_W / 2
        w.s_b0 = w.s_stop_b + STOP_W / 2
        tail = L - w.s_a_end + 30.0
        if kind == "urban":
            segs, info = _bend(rng, L - tail, (8.0, 15.0), (8.0, 12.0), (150.0, 400.0), (8.0, 15.0))
        else:
            segs, info = _bend(
                rng, L - tail, (10.0, 20.0), (20.0, 35.0), (150.0, 400.0), (25.0, 50.0)
            )
        used = sum(sg.length for sg in segs)
        segs.append(Line(L - used))
        m.update(info)
        m.update(
            junction_length_m=w.J,
            exit_length_m=exit_len,
            crosswalk_length_m=w.cw,
            stop_gap_m=stop_gap,
            guide_zone_m=[w.gz_fwd, w.gz_bwd],
            arrow_length_m=w.arrow_len,
            stop_line_s_m=[w.s_stop_a, w.s_stop_b],
            junction_s_m=[w.s_j0, w.s_j1],
        )
    else:
        segs, info = _highway_line(rng, L)
        m.update(info)
    w.line = ReferenceLine(0.0, 0.0, hdg0, tuple(segs))
    w.k_max = max(
        [abs(sg.curvature) for sg in segs if isinstance(sg, Arc)]
        + [max(abs(sg.curv_start), abs(sg.curv_end)) for sg in segs if isinstance(sg, Spiral)]
        + [0.0]
    )
    m["segments"] = [type(sg).__name__ for sg in segs]
    m["reference_line"] = {
        "x0": 0.0,
        "y0": 0.0,
        "hdg0": hdg0,
        "segments": [
            {"type": type(sg).__name__.lower(), **{f: float(getattr(sg, f)) for f in sg.__slots__}}
            for sg in segs
        ],
    }


# --------------------------------------------------------------------------- markings and lanes


def _sections(w: _World) -> list[tuple[str, float, float]]:
    if w.junction:
        return [("A", 0.0, w.s_a_end), ("B", w.s_b0, w.length)]
    return [("A", 0.0, w.length)]


def _guide_parts(
    w: _World, direction: str, section: str, a: float, b: float
) -> list[tuple[float, float, MarkingKind]]:
    """Lane-line pieces over [a, b]: solid in the guide-lane zone before a stop line, else dashed.

    A dashed remainder shorter than 2 m is absorbed into the solid zone, so no stub is left.
    """
    lo = hi = None
    if w.junction and direction == "fwd" and section == "A":
        lo, hi = b - w.gz_fwd, b
    elif w.junction and direction == "bwd" and section == "B":
        lo, hi = a, a + w.gz_bwd
    if lo is None:
        return [(a, b, MarkingKind.DASHED)]
    lo, hi = (a if lo < a + 2.0 else lo), (b if hi > b - 2.0 else hi)
    parts = [(a, lo, MarkingKind.DASHED), (lo, hi, MarkingKind.SOLID), (hi, b, MarkingKind.DASHED)]
    return [p for p in parts if p[1] - p[0] > 1e-9]


def _plan_runs(w: _World) -> None:
    n, lw = w.n_lanes, w.lane_w
    for sec, a, b in _sections(w):
        if w.median == "double_yellow":
            w.runs.append(
                _Run(("both", 0, sec), a, b, 0.0, MarkingKind.DOUBLE_SOLID, Color.YELLOW, +1)
            )
        else:
            w.runs.append(_Run(("fwd", 0, sec), a, b, -w.t_in, MarkingKind.SOLID, Color.YELLOW, +1))
            w.runs.append(_Run(("bwd", 0, sec), a, b, w.t_in, MarkingKind.SOLID, Color.YELLOW, -1))
        for direction, side, dig in (("fwd", -1.0, +1), ("bwd", 1.0, -1)):
            parts = _guide_parts(w, direction, sec, a, b)
            for k in range(1, n):
                t = side * (w.t_in + k * lw)
                phase = float(w.rng.uniform(0.0, sum(w.dash)))
                for s0, s1, mk in parts:
                    dash = w.dash if mk == MarkingKind.DASHED else None
                    w.runs.append(
                        _Run((direction, k, sec), s0, s1, t, mk, Color.WHITE, dig, dash, phase)
                    )
            w.runs.append(
                _Run(
                    (direction, n, sec), a, b, side * w.t_edge, MarkingKind.SOLID, Color.WHITE, dig
                )
            )


def _emit_runs(w: _World) -> None:
    """Truth boundary and paint patches for every run."""
    for run in w.runs:
        s = w.s_grid(run.s0, run.s1, TRUTH_STEP, run.t)
        if run.digitise < 0:
            s = s[::-1]
        geom = w.crs_line(s, np.full(len(s), run.t))
        kwargs = {"width_m": LINE_W}
        if run.dash:
            kwargs.update(dash_length_m=run.dash[0], gap_length_m=run.dash[1])
        run.feature = w.create(
            LaneBoundary,
            geom,
            run.marking,
            run.color,
            extra=(run.marking.value, run.color.value),
            **kwargs,
        )
        _paint_run(w, run, wear=None)


def _paint_run(w: _World, run: _Run, wear: float | None) -> list[PaintPatch]:
    material = "paint_yellow" if run.color == Color.YELLOW else "paint_white"
    if run.marking == MarkingKind.DASHED:
        pieces = [
            (a, b, run.t) for a, b in dash_intervals(run.s0, run.s1, *run.dash, phase_m=run.phase)
        ]
    elif run.marking == MarkingKind.DOUBLE_SOLID:
        off = (LINE_W + DOUBLE_GAP) / 2
        pieces = [(a, b, run.t + o) for o in (-off, off) for a, b in solid_pieces(run.s0, run.s1)]
    else:
        pieces = [(a, b, run.t) for a, b in solid_pieces(run.s0, run.s1)]
    out = []
    for a, b, t in pieces:
        poly = map_polygon(w.line, st_rectangle(a, b, t - LINE_W / 2, t + LINE_W / 2))
        out.append(PaintPatch(poly, material, w.wear() if wear is None else wear, run.feature.id))
    w.paint.extend(out)
    return out


def _boundary_at(w: _World, direction: str, index: int, section: str, s_mid: float) -> str:
    for run in w.runs:
        d, k, sec = run.key
        if k == index and sec == section and d in (direction, "both") and run.s0 <= s_mid <= run.s1:
            return run.feature.id
    raise AssertionError(f"no boundary {direction} {index} {section} at s={s_mid}")


def _lane_record(
    w: _World,
    direction: str,
    k: int,
    s0: float,
    s1: float,
    extra: tuple,
    left: str | None,
    right: str | None,
    junction: str | None = None,
) -> Lane:
    side = -1.0 if direction == "fwd" else 1.0
    t = side * (w.t_in + (k + 0.5) * w.lane_w)
    s = w.s_grid(s0, s1, LANE_STEP, t)
    if direction == "bwd":
        s = s[::-1]
    geom = w.crs_line(s, np.full(len(s), t))
    return Lane.create(
        geom,
        tuple([w.lane_w] * len(s)),
        survey_id=w.survey_id,
        method="simulated",
        id_extra=extra,
        left_boundary=left,
        right_boundary=right,
        direction=Direction.FORWARD,
        junction=junction,
    )


def _build_lanes(w: _World, junction_id: str | None) -> list[Lane]:
    """Lanes per direction, section and guide-zone piece, plus straight junction connectors."""
    rows = []  # (direction, section, piece order in travel, k, Lane)
    for sec, a, b in _sections(w):
        for direction in ("fwd", "bwd"):
            pieces = [(p0, p1) for p0, p1, _ in _guide_parts(w, direction, sec, a, b)]
            if direction == "bwd":
                pieces = pieces[::-1]
            for order, (s0, s1) in enumerate(pieces):
                mid = 0.5 * (s0 + s1)
                for k in range(w.n_lanes):
                    left = _boundary_at(w, direction, k, sec, mid)
                    right = _boundary_at(w, direction, k + 1, sec, mid)
                    lane = _lane_record(
                        w, direction, k, s0, s1, (direction, k, sec, order), left, right
                    )
                    rows.append(
                        {"dir": direction, "sec": sec, "order": order, "k": k, "lane": lane}
                    )
    if w.junction:
        for direction in ("fwd", "bwd"):
            for k in range(w.n_lanes):
                lane = _lane_record(
                    w, direction, k, w.s_a_end, w.s_b0, (direction, k, "J"), None, None, junction_id
                )
                rows.append({"dir": direction, "sec": "J", "order": 0, "k": k, "lane": lane})
    # travel sequence per direction: list of (sec, order) groups
    groups: dict[str, list[tuple[str, int]]] = {}
    for direction in ("fwd", "bwd"):
        secs = ["A", "J", "B"] if w.junction else ["A"]
        if direction == "bwd":
            secs = secs[::-1]
        seq = []
        for sec in secs:
            orders = sorted({r["order"] for r in rows if r["dir"] == direction and r["sec"] == sec})
            seq += [(sec, o) for o in orders]
        groups[direction] = seq
    by_key = {(r["dir"], r["sec"], r["order"], r["k"]): r["lane"] for r in rows}
    lanes = []
    for r in rows:
        d, sec, order, k = r["dir"], r["sec"], r["order"], r["k"]
        seq = groups[d]
        pos = seq.index((sec, order))
        pred = by_key.get((d, *seq[pos - 1], k)) if pos > 0 else None
        succ = by_key.get((d, *seq[pos + 1], k)) if pos + 1 < len(seq) else None
        left_n = by_key.get((d, sec, order, k - 1))
        right_n = by_key.get((d, sec, order, k + 1))
        lanes.append(
            r["lane"].replace(
                predecessors=(pred.id,) if pred else (),
                successors=(succ.id,) if succ else (),
                left_neighbour=left_n.id if left_n else None,
                right_neighbour=right_n.id if right_n else None,
            )
        )
    w.features.extend(lanes)
    return lanes


def _stop_and_crosswalk(w: _World) -> None:
    if not w.junction:
        return
    inner = w.t_in + (LINE_W + DOUBLE_GAP / 2 if w.median == "double_yellow" else LINE_W / 2)
    outer = w.t_edge + LINE_W / 2
    for direction, s_stop in (("fwd", w.s_stop_a), ("bwd", w.s_stop_b)):
        side = -1.0 if direction == "fwd" else 1.0
        t = np.array([side * inner, side * outer])
        s = np.full(2, s_stop)
        geom = w.crs_line(s, t)
        f = w.create(StopLine, geom, width_m=STOP_W, extra=(direction,))
        rect = st_rectangle(s_stop - STOP_W / 2, s_stop + STOP_W / 2, min(t), max(t))
        w.paint.append(PaintPatch(map_polygon(w.line, rect), "paint_white", w.wear(), f.id))
    edge = w.t_curb - 0.3
    pitch = STRIPE_W + STRIPE_GAP
    n = int((2 * edge + STRIPE_GAP) // pitch)
    t_first = -(n * pitch - STRIPE_GAP) / 2
    for name, (x0, x1) in (("A", w.s_xa), ("B", w.s_xb)):
        outline_st = st_rectangle(x0, x1, t_first, t_first + n * pitch - STRIPE_GAP)
        f = w.create(Crosswalk, w.crs_polygon(outline_st)[1], extra=(name,))
        for i in range(n):
            t0 = t_first + i * pitch
            rect = st_rectangle(x0, x1, t0, t0 + STRIPE_W)
            w.paint.append(PaintPatch(map_polygon(w.line, rect), "paint_white", w.wear(), f.id))


def _arrows(w: _World) -> None:
    if not w.junction:
        return
    n = w.n_lanes
    kinds = []
    for k in range(n):
        if k == 0:
            kinds.append(
                ArrowKind.LEFT if (n > 2 and w.rng.random() < 0.5) else ArrowKind.STRAIGHT_LEFT
            )
        elif k == n - 1:
            kinds.append(ArrowKind.STRAIGHT_RIGHT if w.rng.random() < 0.5 else ArrowKind.RIGHT)
        else:
            kinds.append(ArrowKind.STRAIGHT)
    w.meta["arrow_kinds"] = [k.value for k in kinds]
    La = w.arrow_len
    for direction in ("fwd", "bwd"):
        side = -1.0 if direction == "fwd" else 1.0
        if direction == "fwd":
            tips = [w.s_a_end - 4.0, w.s_a_end - 4.0 - 25.0]
            zone = (w.s_a_end - w.gz_fwd, w.s_a_end)
        else:
            tips = [w.s_b0 + 4.0, w.s_b0 + 4.0 + 25.0]
            zone = (w.s_b0, min(w.length, w.s_b0 + w.gz_bwd))
        for j, tip in enumerate(tips):
            tail = tip - La if direction == "fwd" else tip + La
            if not (zone[0] + 0.5 <= min(tip, tail) and max(tip, tail) <= zone[1] - 0.5) and j > 0:
                continue
            if not (min(tip, tail) >= 0.5 and max(tip, tail) <= w.length - 0.5):
                continue
            for k, kind in enumerate(kinds):
                t_c = side * (w.t_in + (k + 0.5) * w.lane_w)
                shape = np.asarray(arrow_outline(kind, La).exterior.coords)
                # arrow coords (a forward, b left) -> (s, t): fwd lanes run +s, bwd lanes run -s
                st = np.column_stack([tail - side * shape[:, 0], t_c - side * shape[:, 1]])
                local, crs = w.crs_polygon(Polygon(st))
                f = w.create(RoadArrow, crs, kind, extra=(direction, k, j))
                w.paint.append(PaintPatch(local, "paint_white", w.wear(), f.id))


# --------------------------------------------------------------------------- ground and edges


def _ground(w: _World) -> None:
    L = w.length
    s_all = w.s_grid(0.0, L)
    crown = (0.0, w.t_in, -w.t_in, w.t_edge, -w.t_edge)
    t_road = _t_grid(-w.t_curb, w.t_curb, 1.0, crown)
    w.add_surface("road", "asphalt", meshes.st_grid(w.line, s_all, t_road, w.z_pav))
    if w.kind == "highway":
        _highway_sides(w, s_all)
        return
    top = lambda s, t: w.z_pav(s, np.full_like(s, w.t_curb)) + w.curb_h  # noqa: E731
    blocks = [("A", 0.0, w.s_j0), ("B", w.s_j1, L)]
    # junction: the cross road, level beyond the main road's curb lines
    s_j = w.s_grid(w.s_j0, w.s_j1)
    for side in (-1.0, 1.0):
        t = _t_grid(side * w.t_curb, side * w.t_outer, 1.0)
        w.add_surface(
            f"cross-road-{'right' if side < 0 else 'left'}",
            "asphalt",
            meshes.st_grid(w.line, s_j, t, w.z_pav),
        )
    for name, s0, s1 in blocks:
        s = w.s_grid(s0, s1)
        for side in (-1.0, 1.0):
            label = f"{name}-{'right' if side < 0 else 'left'}"
            t_walk = _t_grid(side * w.t_curb, side * (w.t_curb + w.sidewalk), 1.0)
            t_grass = _t_grid(side * (w.t_curb + w.sidewalk), side * w.t_outer, 1.5)
            w.add_surface(f"sidewalk-{label}", "concrete", meshes.st_grid(w.line, s, t_walk, top))
            w.add_surface(f"grass-{label}", "grass", meshes.st_grid(w.line, s, t_grass, top))
            # curb face at the road edge, facing the road
            tc = np.full(len(s), side * w.t_curb)
            foot = np.column_stack([w.local_st(s, tc), w.z_pav(s, tc)])
            head = np.column_stack([foot[:, :2], top(s, tc)])
            if side < 0:  # right curb: faces +t, i.e. right of travel along -s
                face = meshes.vertical_strip(foot[::-1], head[::-1])
            else:
                face = meshes.vertical_strip(foot, head)
            w.add_surface(f"curb-{label}", "concrete", face)
            w.create(
                RoadEdge, w.crs_line(s, tc), RoadEdgeKind.CURB, height_m=w.curb_h, extra=(label,)
            )
            # end face towards the junction (cross-road curb)
            s_end = s1 if name == "A" else s0
            t_end = _t_grid(side * w.t_curb, side * w.t_outer, 1.0)
            se = np.full(len(t_end), s_end)
            foot = np.column_stack([w.local_st(se, t_end), w.z_pav(se, t_end)])
            head = np.column_stack([foot[:, :2], top(se, t_end)])
            # the face must look towards the junction: +s for block A, -s for block B
            toward_plus_s = name == "A"
            along_plus_t = t_end[-1] > t_end[0]
            # a strip faces the right of its traversal; traversing +t faces +s
            if toward_plus_s != along_plus_t:
                foot, head = foot[::-1], head[::-1]
            w.add_surface(f"curb-end-{label}", "concrete", meshes.vertical_strip(foot, head))
            order = np.argsort(np.abs(t_end))
            w.create(
                RoadEdge,
                w.crs_line(se[order], t_end[order]),
                RoadEdgeKind.CURB,
                height_m=w.curb_h,
                extra=(label, "cross"),
            )
    # junction truth polygon
    rect = st_rectangle(w.s_j0, w.s_j1, -w.t_curb, w.t_curb)
    w.junction_polygon = w.crs_polygon(rect)[1]
    if w.median == "barrier":
        for s0, s1 in ((0.0, w.s_a_end - 3.0), (w.s_b0 + 3.0, L)):
            if s1 - s0 > 2.0:
                _median_barrier(w, s0, s1, "barrier_concrete")


def _median_barrier(w: _World, s0: float, s1: float, material: str) -> None:
    s = w.s_grid(s0, s1)
    hb, h = w.barrier_half, w.barrier_h
    prof_t = np.array([-hb, hb, hb, -hb])

    def prof_z(ss: np.ndarray, tt: np.ndarray, i: int) -> np.ndarray:
        base = w.z_pav(ss, tt)
        return base if i in (0, 1) else w.z_pav(ss, np.zeros_like(ss)) + h

    w.add_surface(
        f"median-barrier-{s0:.0f}", material, meshes.swept_profile(w.line, s, prof_t, prof_z)
    )
    for side in (-1.0, 1.0):
        t = np.full(len(s), side * hb)
        w.create(
            RoadEdge,
            w.crs_line(s, t),
            RoadEdgeKind.BARRIER,
            height_m=round(h, 3),
            extra=("median", side, s0),
        )


GUARDRAIL_H = 0.75  # top of the W-beam above the ground, m
GUARDRAIL_BEAM = (0.45, 0.08)  # beam bottom above the ground and beam depth, m


def _guardrail(
    w: _World, s: np.ndarray, t_face: float, away: float, label: str, posts: bool = True
) -> None:
    """A W-beam guardrail (a 0.3 m tall beam box) whose road-side face is at ``t_face``.

    ``away`` (+1 or -1) is the t direction from the face into the rail; posts (0.1 m square)
    stand behind the beam every 4 m. The ground under the rail is the pavement height at ``t_face``.
    """
    bottom, depth = GUARDRAIL_BEAM
    prof_t = np.array([t_face, t_face + away * depth, t_face + away * depth, t_face])

    def beam_z(ss: np.ndarray, tt: np.ndarray, i: int) -> np.ndarray:
        ground = w.z_pav(ss, np.full_like(ss, t_face))
        return ground + (bottom if i in (0, 1) else GUARDRAIL_H)

    w.add_surface(
        f"guardrail-{label}", "guardrail", meshes.swept_profile(w.line, s, prof_t, beam_z)
    )
    if not posts:
        return
    sp = np.arange(s[0] + 2.0, s[-1] - 1.0, 4.0)
    t_post = t_face + away * (depth + 0.05)
    xy = w.local_st(sp, np.full(len(sp), t_post))
    hdg = w.line.evaluate(sp)[2]
    z = w.z_pav(sp, np.full(len(sp), t_face))
    boxes = [
        meshes.box((px, py), pz - 0.05, 0.1, 0.1, GUARDRAIL_H + 0.05, ph)
        for (px, py), pz, ph in zip(xy, z, hdg, strict=True)
    ]
    if boxes:
        w.add_surface(f"guardrail-posts-{label}", "guardrail", meshes.merge(boxes))


def _highway_sides(w: _World, s_all: np.ndarray) -> None:
    slope = 0.04
    w.t_flat = w.t_curb

    def grass_z(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        return w.z_pav(s, t) - slope * np.maximum(np.abs(t) - w.t_curb, 0.0)

    for side in (-1.0, 1.0):
        label = "right" if side < 0 else "left"
        t = _t_grid(side * w.t_curb, side * w.t_outer, 2.0)
        w.add_surface(f"grass-{label}", "grass", meshes.st_grid(w.line, s_all, t, grass_z))
        tc = np.full(len(s_all), side * w.t_curb)
        if w.outer == "guardrail":
            _guardrail(w, s_all, side * w.t_curb, side, label)
            w.create(
                RoadEdge,
                w.crs_line(s_all, tc),
                RoadEdgeKind.BARRIER,
                height_m=GUARDRAIL_H,
                extra=(label,),
            )
        else:
            w.create(RoadEdge, w.crs_line(s_all, tc), RoadEdgeKind.PAVEMENT_EDGE, extra=(label,))
    if w.median_kind == "guardrail":
        hb = w.barrier_half
        _guardrail(w, s_all, -hb, +1.0, "median-right", posts=False)
        _guardrail(w, s_all, hb, -1.0, "median-left", posts=True)  # shared posts near the axis
        for side in (-1.0, 1.0):
            t = np.full(len(s_all), side * hb)
            w.create(
                RoadEdge,
                w.crs_line(s_all, t),
                RoadEdgeKind.BARRIER,
                height_m=GUARDRAIL_H,
                extra=("median", side, 0.0),
            )
    else:
        _median_barrier(w, 0.0, w.length, "barrier_concrete")


# --------------------------------------------------------------------------- objects


def _ground_z(w: _World, s: float, t: float) -> float:
    """Height of the ground (sidewalk top, verge or pavement) at (s, t), local metres."""
    sa, ta = np.array([s]), np.array([t])
    if w.kind == "highway":
        zz = w.z_pav(sa, ta) - 0.04 * max(abs(t) - w.t_curb, 0.0)
        return float(zz[0])
    in_junction = w.s_j0 <= s <= w.s_j1
    if abs(t) > w.t_curb and not in_junction:
        return float(w.z_pav(sa, np.array([w.t_curb]))[0] + w.curb_h)
    return float(w.z_pav(sa, ta)[0])


def _pole(
    w: _World, s: float, t: float, height: float, radius: float, role: str, lamp_arm: bool = False
) -> Pole:
    ((x, y),) = w.local_st(np.array([s]), np.array([t]))
    z = _ground_z(w, s, t)
    f = w.create(Pole, w.crs_point(x, y, z), round(height, 3), round(radius, 3), extra=(role,))
    w.add_surface(
        f"pole-{f.id}", "pole_metal", meshes.cylinder(x, y, z, radius, height, 16), feature_id=f.id
    )
    if lamp_arm:
        hdg = float(w.line.evaluate(np.array([s]))[2][0])
        toward_road = -math.copysign(1.0, t)
        nx, ny = -math.sin(hdg) * toward_road, math.cos(hdg) * toward_road
        head = meshes.box(
            (x + nx * 0.6, y + ny * 0.6), z + height - 0.15, 1.2, 0.25, 0.15, math.atan2(ny, nx)
        )
        w.add_surface(f"lamp-head-{f.id}", "pole_metal", head, feature_id=f.id)
    return f


def _sign_outline(shape: SignShape, width: float, height: float) -> np.ndarray:
    if shape == SignShape.CIRCLE:
        a = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        return np.column_stack([np.cos(a) * width / 2, np.sin(a) * height / 2])
    if shape == SignShape.OCTAGON:
        a = np.linspace(0, 2 * math.pi, 8, endpoint=False) + math.pi / 8
        r = width / 2 / math.cos(math.pi / 8)
        return np.column_stack([np.cos(a) * r, np.sin(a) * r])
    if shape == SignShape.TRIANGLE:
        return np.array([(-width / 2, -height / 2), (width / 2, -height / 2), (0.0, height / 2)])
    if shape == SignShape.INVERTED_TRIANGLE:
        return np.array([(-width / 2, height / 2), (0.0, -height / 2), (width / 2, height / 2)])
    return np.array(
        [
            (-width / 2, -height / 2),
            (width / 2, -height / 2),
            (width / 2, height / 2),
            (-width / 2, height / 2),
        ]
    )


def sign_size(shape: SignShape, size_m: float) -> tuple[float, float]:
    """(width, height) of a panel of nominal size ``size_m`` (diameter, side, width)."""
    if shape in (SignShape.TRIANGLE, SignShape.INVERTED_TRIANGLE):
        return size_m, size_m * math.sqrt(3) / 2
    return size_m, size_m


def _sign(
    w: _World,
    pole: Pole,
    s: float,
    t: float,
    radius: float,
    sign_class: SignClass,
    shape: SignShape,
    width: float,
    height: float,
    centre_h: float,
    faces_travel: bool,
    rgb: tuple[int, int, int] | None = None,
    role: str = "",
) -> Sign:
    """A panel on ``pole`` at (s, t), facing oncoming surveyed traffic unless ``faces_travel``."""
    hdg = float(w.line.evaluate(np.array([s]))[2][0])
    yaw = math.radians(float(w.rng.uniform(-5.0, 5.0)))
    face = hdg + yaw + (0.0 if faces_travel else math.pi)
    nx, ny = math.cos(face), math.sin(face)
    ((x, y),) = w.local_st(np.array([s]), np.array([t]))
    z = _ground_z(w, s, t) + centre_h
    cx, cy = x + nx * (radius + 0.03), y + ny * (radius + 0.03)
    facing_deg = math.degrees(math.atan2(nx, ny)) % 360.0
    f = w.create(
        Sign,
        w.crs_point(cx, cy, z),
        sign_class,
        shape,
        round(facing_deg, 4),
        width_m=round(width, 3),
        height_m=round(height, 3),
        pole=pole.id,
        extra=(role,),
    )
    w.surfaces.extend(sign_panel_surfaces(f, (cx, cy, z), (nx, ny), rgb))
    return f


def sign_panel_surfaces(
    sign: Sign,
    centre: tuple[float, float, float],
    normal_xy: tuple[float, float],
    rgb: tuple[int, int, int] | None = None,
) -> list[Surface]:
    """The face and back sheets of ``sign``'s panel centred at ``centre`` (local m), facing
    ``normal_xy``.

    A prohibition circle gets a red ring around a white disc (two coplanar, non-overlapping sheets);
    other faces take ``rgb`` or their class colour.
    """
    shape, width, height = sign.shape, sign.width_m, sign.height_m
    outline = _sign_outline(shape, width, height)
    colour = rgb or _SIGN_RGB.get(sign.sign_class, _WHITE)
    front, back = meshes.panel(centre, normal_xy, outline)
    out = []
    if sign.sign_class == SignClass.PROHIBITION and shape == SignShape.CIRCLE:
        inner = outline * 0.78
        k = len(outline)
        i = np.arange(k)
        j = (i + 1) % k
        ring_tri = np.concatenate(
            [np.column_stack([i, j, j + k]), np.column_stack([i, j + k, i + k])]
        )
        ring_v = meshes.panel(centre, normal_xy, np.vstack([outline, inner]))[0][0]
        disc = meshes.panel(centre, normal_xy, inner)[0]
        out.append(
            Surface(
                f"sign-{sign.id}-ring",
                "sign_face",
                ring_v,
                ring_tri.astype(np.int32),
                rgb=colour,
                feature_id=sign.id,
            )
        )
        out.append(
            Surface(f"sign-{sign.id}-face", "sign_face", *disc, rgb=_WHITE, feature_id=sign.id)
        )
    else:
        out.append(
            Surface(f"sign-{sign.id}-face", "sign_face", *front, rgb=colour, feature_id=sign.id)
        )
    out.append(Surface(f"sign-{sign.id}-back", "sign_back", *back, feature_id=sign.id))
    return out


def _free_slots(
    w: _World,
    ranges: list[tuple[float, float]],
    spacing: float,
    taken: list[float],
    clearance: float,
    at_least_one: bool = False,
) -> list[float]:
    """Stations about ``spacing`` apart within ``ranges``, ``clearance`` away from ``taken``.

    With ``at_least_one``, a short scene still gets one station: the free one farthest from
    everything taken.
    """
    out = []
    for a, b in ranges:
        s = a + w.rng.uniform(0.0, spacing / 2)
        while s <= b:
            if all(abs(s - q) >= clearance for q in taken + out):
                out.append(float(s))
            s += spacing + w.rng.uniform(-1.0, 1.0)
    if not out and at_least_one:
        grid = np.concatenate([np.arange(a, b + 1e-9, 0.5) for a, b in ranges if b >= a] or [[]])
        if len(grid):
            dist = np.min(np.abs(grid[:, None] - np.asarray(taken or [-1e9])[None, :]), axis=1)
            if dist.max() >= clearance:
                out.append(float(grid[int(np.argmax(dist))]))
    return out


def _urban_objects(w: _World) -> None:
    rng = w.rng
    t_pole = w.t_curb + 0.5
    walk_ranges = [(2.0, w.s_xa[0] - 1.5), (w.s_xb[1] + 1.5, w.length - 2.0)]
    taken: list[float] = []
    # signs facing the surveyed traffic on the right sidewalk of the approach
    catalogue = [
        (SignClass.GUIDE, SignShape.RECTANGLE),
        (SignClass.WARNING, SignShape.TRIANGLE),
        (SignClass.PROHIBITION, SignShape.CIRCLE),
        (SignClass.MANDATORY, SignShape.CIRCLE),
        (SignClass.YIELD, SignShape.INVERTED_TRIANGLE),
        (SignClass.STOP, SignShape.OCTAGON),
    ]
    a, b = 5.0, w.s_xa[0] - 3.0
    n_fit = max(1, min(len(catalogue), int((b - a) // 8.0) + 1))
    positions = np.linspace(a, b, n_fit) + rng.uniform(-1.0, 1.0, n_fit)
    signs_meta = []
    for (cls, shape), s in zip(catalogue[:n_fit], positions, strict=True):
        if cls == SignClass.GUIDE:
            width, height = rng.uniform(2.0, 2.5), rng.uniform(1.2, 1.5)
            centre_h, radius = rng.uniform(3.5, 4.2), rng.uniform(0.10, 0.13)
            rgb = (30, 70, 160)
        else:
            width, height = sign_size(shape, rng.uniform(0.6, 0.9))
            centre_h, radius, rgb = rng.uniform(2.0, 3.0), rng.uniform(0.05, 0.07), None
        pole_h = max(3.0, centre_h + height / 2 + 0.05)
        # a wide guide panel stands back so that it overhangs the road by at most 0.3 m
        t_sign = max(t_pole, w.t_curb + width / 2 - 0.3)
        pole = _pole(w, float(s), -t_sign, pole_h, radius, f"sign-{cls.value}")
        _sign(
            w,
            pole,
            float(s),
            -t_sign,
            radius,
            cls,
            shape,
            width,
            height,
            centre_h,
            False,
            rgb,
            cls.value,
        )
        taken.append(float(s))
        signs_meta.append({"class": cls.value, "s_m": float(s)})
    # one warning sign for the opposite traffic on the left sidewalk of section B or A
    s_far = float(rng.uniform(10.0, max(11.0, w.s_xa[0] - 10.0)))
    width, height = sign_size(SignShape.TRIANGLE, rng.uniform(0.7, 0.9))
    pole = _pole(w, s_far, t_pole, max(3.0, 2.6 + height / 2 + 0.05), 0.06, "sign-far")
    _sign(
        w,
        pole,
        s_far,
        t_pole,
        0.06,
        SignClass.WARNING,
        SignShape.TRIANGLE,
        width,
        height,
        2.6,
        True,
        None,
        "far",
    )
    signs_meta.append({"class": "warning", "s_m": s_far, "faces": "opposite traffic"})
    w.meta["signs"] = signs_meta
    # street lights on both sidewalks
    spacing = float(rng.uniform(28.0, 36.0))
    lamps = []
    for side in (-1.0, 1.0):
        side_taken = taken if side < 0 else [s_far]
        for s in _free_slots(w, walk_ranges, spacing, side_taken, 3.0, at_least_one=True):
            _pole(
                w,
                s,
                side * t_pole,
                float(rng.uniform(8.0, 10.0)),
                float(rng.uniform(0.08, 0.12)),
                f"lamp-{side}",
                lamp_arm=True,
            )
            lamps.append((side, s))
    w.meta["lamp_spacing_m"] = spacing
    # trees at the back of the sidewalks
    trees = 0
    t_tree = w.t_curb + w.sidewalk - 0.9
    for side in (-1.0, 1.0):
        near = [s for sd, s in lamps if sd == side] + (taken if side < 0 else [s_far])
        for s in _free_slots(w, walk_ranges, float(rng.uniform(8.0, 10.0)), near, 2.5):
            ((x, y),) = w.local_st(np.array([s]), np.array([side * t_tree]))
            z = _ground_z(w, s, side * t_tree)
            trunk_h, r = rng.uniform(2.0, 3.0), rng.uniform(0.10, 0.15)
            rad = (rng.uniform(1.5, 2.2), rng.uniform(1.5, 2.2), rng.uniform(1.2, 1.8))
            w.add_surface(
                f"tree-trunk-{trees}", "tree_trunk", meshes.cylinder(x, y, z, r, trunk_h + 0.3, 12)
            )
            w.add_surface(
                f"tree-foliage-{trees}",
                "foliage",
                meshes.ellipsoid((x, y, z + trunk_h + rad[2] * 0.8), rad),
            )
            trees += 1
    w.meta["trees"] = trees


def _people_and_cars(w: _World) -> None:
    rng = w.rng
    people = []
    # on the sidewalks
    for i in range(int(rng.integers(2, 4))):
        s = float(rng.uniform(3.0, w.s_xa[0] - 2.0))
        side = -1.0 if rng.random() < 0.5 else 1.0
        t = side * (w.t_curb + rng.uniform(1.2, w.sidewalk - 1.5))
        people.append((s, t, f"walk-{i}"))
    # on crosswalk A
    for i in range(int(rng.integers(1, 3))):
        s = float(rng.uniform(w.s_xa[0] + 0.5, w.s_xa[1] - 0.5))
        t = float(rng.uniform(0.5, w.t_curb - 1.0))  # on the opposite half, clear of the vehicle
        people.append((s, t, f"cross-{i}"))
    for s, t, name in people:
        ((x, y),) = w.local_st(np.array([s]), np.array([t]))
        z = _ground_z(w, s, t)
        w.add_surface(
            f"person-{name}",
            "person",
            meshes.box((x, y), z, 0.35, 0.5, rng.uniform(1.6, 1.8), rng.uniform(-math.pi, math.pi)),
        )
    w.meta["pedestrians"] = len(people)
    if w.kind != "urban":
        w.meta["parked_cars"] = 0
        return
    parked_side = "near" if rng.random() < 0.5 else "far"
    side = -1.0 if parked_side == "near" else 1.0
    t_car = side * (w.t_curb - 1.1)
    a, b = 4.0, w.s_a_end - w.gz_fwd - 4.0 if parked_side == "near" else w.s_a_end - 8.0
    n_cars = int(rng.integers(2, 5))
    s = a
    cars = 0
    for _ in range(n_cars):
        s += rng.uniform(3.0, 6.0)
        if s + 4.5 > b:
            break
        centre = s + 2.25
        ((x, y),) = w.local_st(np.array([centre]), np.array([t_car]))
        hdg = float(w.line.evaluate(np.array([centre]))[2][0]) + (0.0 if side < 0 else math.pi)
        z = float(w.z_pav(np.array([centre]), np.array([t_car]))[0])
        length, width = rng.uniform(4.3, 4.8), rng.uniform(1.75, 1.85)
        c, sn = math.cos(hdg), math.sin(hdg)
        parts = [
            meshes.box((x, y), z + 0.3, length, width, 0.75, hdg),
            meshes.box(
                (x - 0.2 * c, y - 0.2 * sn), z + 1.05, length * 0.55, width * 0.9, 0.45, hdg
            ),
        ]
        for da in (-0.35, 0.35):
            for db in (-0.38, 0.38):
                wx = x + da * length * c - db * width * sn
                wy = y + da * length * sn + db * width * c
                parts.append(meshes.box((wx, wy), z, 0.6, 0.2, 0.3, hdg))
        colour = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
        w.add_surface(f"car-{cars}", "car_body", meshes.merge(parts), rgb=colour)
        cars += 1
        s += length
    w.meta.update(parked_cars=cars, parked_side=parked_side)


def _highway_objects(w: _World) -> None:
    rng = w.rng
    t_pole = w.t_curb + (1.0 if w.outer == "guardrail" else 1.5)
    taken: list[float] = []
    signs = []
    # guide signs every ~400 m and speed limits every ~300 m, on the right verge
    guide_s = list(np.arange(rng.uniform(30.0, 80.0), w.length - 10.0, 400.0))
    limit_s = list(np.arange(rng.uniform(100.0, 180.0), w.length - 10.0, 300.0))
    if not limit_s:
        limit_s = [w.length * 0.6]
    for s in guide_s:
        width, height = rng.uniform(3.0, 4.0), rng.uniform(2.0, 2.5)
        centre_h, radius = rng.uniform(3.5, 4.5), rng.uniform(0.12, 0.15)
        t_sign = w.t_curb + 0.5 + width / 2  # the panel clear of the pavement
        pole = _pole(w, float(s), -t_sign, centre_h + height / 2 + 0.05, radius, "guide")
        _sign(
            w,
            pole,
            float(s),
            -t_sign,
            radius,
            SignClass.GUIDE,
            SignShape.RECTANGLE,
            width,
            height,
            centre_h,
            False,
            (20, 120, 60),
            "guide",
        )
        taken.append(float(s))
        signs.append({"class": "guide", "s_m": float(s)})
    for s in limit_s:
        if any(abs(s - q) < 10 for q in taken):
            s = s + 15.0 if s + 15.0 < w.length - 3.0 else s - 15.0
        d = rng.uniform(1.0, 1.2)
        centre_h, radius = rng.uniform(2.5, 3.0), rng.uniform(0.06, 0.08)
        pole = _pole(w, float(s), -t_pole, max(3.0, centre_h + d / 2 + 0.05), radius, "limit")
        _sign(
            w,
            pole,
            float(s),
            -t_pole,
            radius,
            SignClass.PROHIBITION,
            SignShape.CIRCLE,
            d,
            d,
            centre_h,
            False,
            None,
            "limit",
        )
        taken.append(float(s))
        signs.append({"class": "prohibition", "s_m": float(s)})
    w.meta["signs"] = signs
    spacing = min(float(rng.uniform(35.0, 45.0)), (w.length - 10.0) / 2.2)  # >= 2 per side
    n_lamps = 0
    for side in (-1.0, 1.0):
        lamp_range = [(min(5.0, w.length / 4), w.length - min(5.0, w.length / 4))]
        for s in _free_slots(
            w, lamp_range, spacing, taken if side < 0 else [], 4.0, at_least_one=True
        ):
            _pole(
                w,
                s,
                side * t_pole,
                float(rng.uniform(9.0, 10.0)),
                float(rng.uniform(0.09, 0.13)),
                f"lamp-{side}",
                lamp_arm=True,
            )
            n_lamps += 1
    w.meta.update(lamp_spacing_m=spacing, lamps=n_lamps, parked_cars=0, pedestrians=0)


# --------------------------------------------------------------------------- drive path


def _drive_path(w: _World) -> DrivePath:
    rng = w.rng
    if w.kind == "urban" and w.meta.get("parked_side") == "near":
        k = w.n_lanes - 2
    elif w.kind == "highway":
        k = int(rng.integers(1, w.n_lanes))
    else:
        k = w.n_lanes - 1 if rng.random() < 0.6 else w.n_lanes - 2
    t = -(w.t_in + (k + 0.5) * w.lane_w)
    w.meta["drive_lane_index"] = k
    w.meta["drive_lane_offset_m"] = t
    s_ref = w.s_grid(0.0, w.length, PATH_STEP / 2)
    x, y = w.line.offset_points(s_ref, np.full(len(s_ref), t))
    z = w.z_pav(s_ref, np.full(len(s_ref), t))
    d = np.concatenate(
        [[0.0], np.cumsum(np.sqrt(np.diff(x) ** 2 + np.diff(y) ** 2 + np.diff(z) ** 2))]
    )
    s_path = np.arange(0.0, d[-1] + 1e-9, PATH_STEP)
    s_at = np.interp(s_path, d, s_ref)
    x, y = w.line.offset_points(s_at, np.full(len(s_at), t))
    z = w.z_pav(s_at, np.full(len(s_at), t))
    hdg = w.line.evaluate(s_at)[2]
    hdg = np.mod(hdg + math.pi, 2 * math.pi) - math.pi
    return DrivePath(np.column_stack([x, y, z]), hdg, s_path)


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True, slots=True)
class RoadFrame:
    """A scene's road frame: reference line, pavement height model and EPSG:4549 origin (metres)."""

    line: ReferenceLine
    origin: tuple[float, float, float]
    grade: float
    cross_slope: float
    level_beyond_m: float  # |t| beyond which the pavement is level across

    def z(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Pavement height in local metres at (s, t)."""
        return self.grade * np.asarray(s) - self.cross_slope * np.minimum(
            np.abs(t), self.level_beyond_m
        )


def road_frame(kind: str, seed: int, length_m: float | None = None) -> RoadFrame:
    """The road frame :func:`build_scene` uses for (kind, seed, length), without building the scene.

    >>> frame = road_frame("urban", 3)
    >>> round(frame.line.length, 6)
    120.0
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of: {', '.join(KINDS)}")
    w = _World(kind, seed, float(DEFAULT_LENGTH_M[kind] if length_m is None else length_m))
    _plan(w)
    return RoadFrame(w.line, w.origin, w.grade, w.cross, w.t_flat)


def build_scene(kind: str, seed: int, length_m: float | None = None) -> Scene:
    """Build a simulated road scene of ``kind`` ("urban", "arterial", "highway") from ``seed``.

    ``length_m`` overrides the default length (urban 120 m, arterial 220 m, highway 250 m).
    Geometry is in local metres about ``Scene.origin`` (EPSG:4549); the truth model is in EPSG:4549.

    >>> build_scene("rural", 0)
    Traceback (most recent call last):
    ...
    ValueError: unknown scene kind 'rural'; choose one of: urban, arterial, highway
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of: {', '.join(KINDS)}")
    length = float(DEFAULT_LENGTH_M[kind] if length_m is None else length_m)
    if not math.isfinite(length) or length < MIN_LENGTH_M[kind]:
        raise ValueError(f"{kind} scene needs length_m >= {MIN_LENGTH_M[kind]:.0f}, got {length_m}")
    w = _World(kind, seed, length)
    _plan(w)
    _plan_runs(w)
    _emit_runs(w)
    _ground(w)
    _stop_and_crosswalk(w)
    _arrows(w)
    junction_id = None
    if w.junction:
        # the junction record lists its lanes, and they name it: derive its id first
        junction_id = feature_id(Junction.id_prefix, w.junction_polygon, w.survey_id)
    lanes = _build_lanes(w, junction_id)
    if w.junction:
        connectors = tuple(ln.id for ln in lanes if ln.junction == junction_id)
        j = Junction(
            w.junction_polygon, id=junction_id, lanes=connectors, provenance=lanes[0].provenance
        )
        w.features.append(j)
    if w.kind == "highway":
        _highway_objects(w)
    else:
        _urban_objects(w)
        _people_and_cars(w)
    path = _drive_path(w)
    speed = SPEED_MPS[kind]
    w.meta["speed_mps"] = speed
    truth = MapModel.from_features(
        CRS, w.features, height_datum=HEIGHT_DATUM, name=f"simulated {kind} road, seed {seed}"
    )
    w.meta["triangles"] = int(sum(len(s.triangles) for s in w.surfaces))
    return Scene(
        kind=kind,
        seed=seed,
        crs=CRS,
        origin=w.origin,
        surfaces=tuple(w.surfaces),
        paint=tuple(w.paint),
        drive_path=path,
        truth=truth,
        speed_mps=speed,
        metadata=w.meta,
    )
