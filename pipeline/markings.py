"""Road markings from normalised intensity: paint detection, pieces, lane boundaries, stop lines,
crosswalks and arrows, all worked in the (s, t) road frame of :mod:`pipeline.roadframe`.

Paint is the road-surface points whose normalised intensity stands out of the asphalt
distribution (:func:`paint_threshold`). Paint points are rasterised at ``cell_m`` in (s, t),
joined into connected components (:func:`paint_pieces`) and each component is described by its
length, width and angle to the road. Thin pieces along the road are chained into lane boundaries
across dash gaps and occlusions (:func:`chain_pieces`); the chain's visible gaps give the dash
pattern; parallel chains 0.2-0.45 m apart make a double line. Wide bars across the road are stop
lines, wide stripes along it grouped in a row are a zebra crosswalk, and compact blobs are arrows.

>>> paint_threshold(np.ones(0, np.float32))
2.5
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pipeline.model import ArrowKind, MarkingKind

__all__ = [
    "BoundaryRun",
    "MarkingOptions",
    "PaintPiece",
    "arrow_kind",
    "chain_pieces",
    "classify_chain",
    "paint_pieces",
    "paint_threshold",
    "pair_double_lines",
    "yellowness",
]


@dataclass(frozen=True, slots=True)
class MarkingOptions:
    """Marking extraction parameters (metres unless named otherwise).

    ``cell_m``: paint raster cell. ``threshold``: normalised-intensity threshold for paint, None
    derives it from the road's intensity distribution. ``line_max_width_m``: widest lane line
    piece; ``bar_max_width_m``: widest stop-line bar or zebra stripe. ``lateral_tolerance_m``: how
    far a piece may sit from the extrapolated chain. ``max_bridge_m``: longest gap bridged (dash
    gap or occlusion). ``min_gap_m``: shorter visible gaps are worn paint, not a dash gap.
    ``double_spacing_m``: centre spacing range of the two lines of a double line.
    ``parallel_deg``/``transverse_deg``: angle to the road of line pieces / stop lines.
    ``fill_s_m``/``fill_t_m``: reach of the fill across empty cells (see :func:`paint_pieces`);
    ``bar_run_m``: paint runs across the road at least this long are bars.
    ``max_dash_m``: longer strokes are solid lines. ``max_bridge_single_m``: a run of a single
    piece bridges at most this far (an arrow shaft must not reach the next arrow).
    ``min_chain_m``: shorter chains are dropped. ``vertex_step_m``: vertex spacing of boundaries.
    """

    cell_m: float = 0.05
    threshold: float | None = None
    line_max_width_m: float = 0.3
    bar_max_width_m: float = 0.65
    lateral_tolerance_m: float = 0.12
    max_bridge_m: float = 25.0
    min_gap_m: float = 2.0
    double_spacing_m: tuple[float, float] = (0.2, 0.45)
    parallel_deg: float = 15.0
    transverse_deg: float = 60.0
    min_chain_m: float = 3.0
    vertex_step_m: float = 1.0
    min_piece_points: int = 15
    max_dash_m: float = 10.0
    max_bridge_single_m: float = 12.0
    fill_s_m: float = 0.15
    fill_t_m: float = 0.35
    bar_run_m: float = 1.2


@dataclass(frozen=True, slots=True, eq=False)
class PaintPiece:
    """One connected paint component: its point indices and shape in the (s, t) frame.

    ``s0``/``s1`` the extent along the road, ``t_mid`` the mean lateral offset, ``slope``
    dt/ds, ``length_m``/``width_m`` along/across its own major axis, ``angle_deg`` the angle of its
    major axis to the road (0 along, 90 across), ``area_m2`` the painted cell area.
    """

    index: np.ndarray
    s0: float
    s1: float
    s_mid: float
    t_mid: float
    slope: float
    length_m: float
    width_m: float
    angle_deg: float
    area_m2: float

    def t_at(self, s: float | np.ndarray) -> float | np.ndarray:
        return self.t_mid + self.slope * (np.asarray(s) - self.s_mid)

    @property
    def kind(self) -> str:
        return ""


def paint_threshold(normalised: np.ndarray) -> float:
    """Paint threshold on normalised intensity (asphalt about 1): the asphalt log-median plus
    six robust sigmas (MAD), at least 2.0; 2.5 when there are too few points to tell.

    >>> rng = np.random.default_rng(0)
    >>> asphalt = np.exp(rng.normal(0.0, 0.15, 10000))
    >>> 2.0 <= paint_threshold(asphalt) < 3.0
    True
    """
    values = np.asarray(normalised, dtype=np.float64)
    values = values[values > 0]
    if values.size < 100:
        return 2.5
    logs = np.log(values)
    med = float(np.median(logs))
    sigma = 1.4826 * float(np.median(np.abs(logs - med)))
    return float(max(np.exp(med + 6.0 * sigma), 2.0))


def paint_pieces(
    s: np.ndarray, t: np.ndarray, paint: np.ndarray, options: MarkingOptions | None = None
) -> list[PaintPiece]:
    """Connected paint components among road points (s, t) (metres); ``paint`` marks paint.

    Points are rasterised at ``cell_m``. Cells holding no point at all (between scan lines, which
    spread far apart at grazing range) are filled when paint lies on both sides within
    ``fill_s_m`` along or ``fill_t_m`` across the road through empty cells only, so a cell that
    saw asphalt never joins two pieces (the two lines of a double line stay apart). Cells in a
    paint run longer than ``bar_run_m`` across the road form bars (stop lines), labelled apart from
    the lines that end on them.

    >>> s = np.repeat(np.arange(0, 2, 0.02), 8); t = np.tile(np.linspace(-0.07, 0.07, 8), 100)
    >>> [round(p.length_m, 1) for p in paint_pieces(s, t, np.ones(800, bool))]
    [2.0]
    >>> paint_pieces(np.empty(0), np.empty(0), np.empty(0, bool))
    []
    """
    options = options or MarkingOptions()
    if not np.any(paint):
        return []
    c = options.cell_m
    s_min, t_min = float(s.min()), float(t.min())
    i = np.floor((s - s_min) / c).astype(np.int64) + 1
    j = np.floor((t - t_min) / c).astype(np.int64) + 1
    shape = (int(i.max()) + 2, int(j.max()) + 2)
    seen = np.zeros(shape, dtype=bool)
    seen[i, j] = True
    count = np.zeros(shape, dtype=np.int32)
    np.add.at(count, (i[paint], j[paint]), 1)
    total = np.zeros(shape, dtype=np.int32)
    np.add.at(total, (i, j), 1)
    grid = (count > 0) & (2 * count >= total)
    empty = ~seen
    filled = grid.copy()
    for axis, reach_m in ((0, options.fill_s_m), (1, options.fill_t_m)):
        steps = max(1, round(reach_m / c))
        filled |= empty & _reach(grid, empty, axis, steps, 1) & _reach(grid, empty, axis, steps, -1)
    bars = _long_runs(filled, max(2, round(options.bar_run_m / c)))
    pieces = []
    for part in (bars, filled & ~bars):
        labels, n = ndimage.label(part, structure=np.ones((3, 3), bool))
        lab = labels[i, j]
        lab[~paint] = 0
        cell_count = np.bincount(labels.ravel(), minlength=n + 1)
        order = np.argsort(lab, kind="stable")
        bounds = np.searchsorted(lab[order], np.arange(1, n + 2))
        for k in range(n):
            members = order[bounds[k] : bounds[k + 1]]
            if members.size < options.min_piece_points:
                continue
            area = float(cell_count[k + 1]) * c * c
            pieces.append(_describe(members, s[members], t[members], area))
    return pieces


def _reach(grid: np.ndarray, empty: np.ndarray, axis: int, steps: int, sign: int) -> np.ndarray:
    """Cells reached from paint within ``steps`` cells in one direction through empty cells."""
    out = grid.copy()
    front = grid.copy()
    for _ in range(steps):
        front = np.roll(front, sign, axis=axis) & empty
        if not front.any():
            break
        out |= front
    return out


def _long_runs(grid: np.ndarray, min_cells: int) -> np.ndarray:
    """Cells of ``grid`` in a run of at least ``min_cells`` True cells along axis 1."""
    padded = np.pad(grid, ((0, 0), (1, 1))).astype(np.int8)
    d = np.diff(padded, axis=1)
    out = np.zeros_like(grid)
    for row in np.flatnonzero(grid.any(axis=1)):
        starts = np.flatnonzero(d[row] == 1)
        ends = np.flatnonzero(d[row] == -1)
        for a, b in zip(starts, ends, strict=True):
            if b - a >= min_cells:
                out[row, a:b] = True
    return out


def _describe(index: np.ndarray, s: np.ndarray, t: np.ndarray, area: float) -> PaintPiece:
    sm, tm = float(s.mean()), float(t.mean())
    d = np.column_stack([s - sm, t - tm])
    cov = d.T @ d / max(len(d) - 1, 1)
    _, v = np.linalg.eigh(cov)
    major = v[:, 1]
    along = d @ major
    across = d @ v[:, 0]
    length = float(np.ptp(along)) if len(d) > 1 else 0.0
    width = float(np.quantile(across, 0.98) - np.quantile(across, 0.02)) if len(d) > 1 else 0.0
    angle = float(np.degrees(np.arctan2(abs(major[1]), abs(major[0]))))
    fit = np.ptp(s) > 1e-6 and angle < 45
    slope = float(np.polyfit(s - sm, t, 1)[0]) if fit else 0.0
    return PaintPiece(
        index=index,
        s0=float(s.min()),
        s1=float(s.max()),
        s_mid=sm,
        t_mid=tm,
        slope=slope,
        length_m=length,
        width_m=width,
        angle_deg=angle,
        area_m2=area,
    )


@dataclass(slots=True, eq=False)
class BoundaryRun:
    """A chain of line pieces along one boundary, digitised with increasing s."""

    pieces: list[PaintPiece] = field(default_factory=list)
    marking: MarkingKind = MarkingKind.SOLID
    dash_length_m: float | None = None
    gap_length_m: float | None = None
    occluded_m: float = 0.0  # length bridged over gaps without any surface points
    s_start: float | None = None  # set where a dashed part meets a solid one
    s_end: float | None = None

    @property
    def s0(self) -> float:
        return self.pieces[0].s0 if self.s_start is None else self.s_start

    @property
    def s1(self) -> float:
        return self.pieces[-1].s1 if self.s_end is None else self.s_end

    @property
    def length_m(self) -> float:
        return self.s1 - self.s0

    def t_at(self, s: float) -> float:
        """Lateral offset of the run at ``s``, from the nearest piece's line."""
        best = min(self.pieces, key=lambda p: max(p.s0 - s, s - p.s1, 0.0))
        return float(best.t_at(min(max(s, best.s0), best.s1)))

    @property
    def t_mean(self) -> float:
        w = np.array([p.s1 - p.s0 + 1e-3 for p in self.pieces])
        return float(np.average([p.t_mid for p in self.pieces], weights=w))

    @property
    def index(self) -> np.ndarray:
        return np.concatenate([p.index for p in self.pieces])


def chain_pieces(
    pieces: list[PaintPiece], options: MarkingOptions | None = None
) -> list[BoundaryRun]:
    """Chain line pieces (thin, along the road) into runs: each next piece starts after the
    run's end, within ``max_bridge_m``, and within ``lateral_tolerance_m`` of the run's line.

    >>> mk = lambda a, b, t: _describe(np.arange(3), np.array([a, b, b]), np.array([t, t, t]), 0.1)
    >>> runs = chain_pieces([mk(0, 2, 0.0), mk(6, 8, 0.02), mk(6, 8, 3.5)])
    >>> [len(r.pieces) for r in runs]
    [2, 1]
    >>> chain_pieces([])
    []
    """
    options = options or MarkingOptions()
    runs: list[BoundaryRun] = []
    for piece in sorted(pieces, key=lambda p: p.s0):
        best, best_err = None, options.lateral_tolerance_m
        for run in runs:
            tail = run.pieces[-1]
            gap = piece.s0 - tail.s1
            reach = options.max_bridge_m if len(run.pieces) > 1 else options.max_bridge_single_m
            if gap < -0.5 or gap > reach:
                continue
            err = abs(float(tail.t_at(piece.s0)) - float(piece.t_at(piece.s0)))
            # a long bridge extrapolates the tail's slope poorly: use the tail's end offset too
            err = min(err, abs(float(tail.t_at(tail.s1)) - float(piece.t_at(piece.s0))))
            if err < best_err:
                best, best_err = run, err
        if best is None:
            runs.append(BoundaryRun([piece]))
        else:
            best.pieces.append(piece)
    return runs


def classify_chain(
    run: BoundaryRun,
    visible_gap: list[bool],
    options: MarkingOptions | None = None,
) -> list[BoundaryRun]:
    """Split a run where its pattern changes and set each part's kind and dash pattern.

    ``visible_gap[k]`` tells whether the gap after piece k showed road surface (a real gap) or
    not (an occlusion, bridged). Gaps shorter than ``min_gap_m`` are ignored (worn paint).

    >>> mk = lambda a, b: _describe(np.arange(3), np.array([a, b, b]), np.zeros(3), 0.1)
    >>> run = BoundaryRun([mk(0, 2), mk(6, 8), mk(12, 14)])
    >>> part = classify_chain(run, [True, True])[0]
    >>> part.marking.value, part.dash_length_m, part.gap_length_m
    ('dashed', 2.0, 4.0)
    """
    options = options or MarkingOptions()
    # merge pieces across short or occluded gaps into strokes
    strokes: list[list[PaintPiece]] = [[run.pieces[0]]]
    real_gap: list[float] = []
    occluded = 0.0
    for k, piece in enumerate(run.pieces[1:]):
        gap = piece.s0 - strokes[-1][-1].s1
        if gap < options.min_gap_m or not visible_gap[k]:
            if gap >= options.min_gap_m:
                occluded += gap
            strokes[-1].append(piece)
        else:
            real_gap.append(gap)
            strokes.append([piece])
    lengths = [st[-1].s1 - st[0].s0 for st in strokes]
    if len(strokes) == 1:
        return [BoundaryRun(run.pieces, MarkingKind.SOLID, occluded_m=occluded)]
    long_stroke = options.max_dash_m
    parts: list[BoundaryRun] = []
    current: list[list[PaintPiece]] = []
    current_gaps: list[float] = []

    def flush() -> None:
        if not current:
            return
        pieces = [p for st in current for p in st]
        if len(current) == 1:
            parts.append(BoundaryRun(pieces, MarkingKind.SOLID))
        else:
            ls = [st[-1].s1 - st[0].s0 for st in current]
            core = ls[1:-1] if len(ls) > 2 else ls
            parts.append(
                BoundaryRun(
                    pieces,
                    MarkingKind.DASHED,
                    dash_length_m=round(float(np.median(core)), 2),
                    gap_length_m=round(float(np.median(current_gaps)), 2),
                )
            )

    for k, st in enumerate(strokes):
        if lengths[k] >= long_stroke:
            flush()
            current, current_gaps = [st], []
            flush()
            current = []
        else:
            if current and k > 0:
                current_gaps.append(real_gap[k - 1])
            current.append(st)
    flush()
    # a dashed part ends where the next solid part begins (and starts where a solid one ends)
    for a, b in itertools.pairwise(parts):
        if a.marking == MarkingKind.DASHED:
            a.s_end = b.s0
        elif b.marking == MarkingKind.DASHED:
            b.s_start = a.s1
    return parts


def pair_double_lines(
    runs: list[BoundaryRun], options: MarkingOptions | None = None
) -> list[tuple[BoundaryRun, BoundaryRun | None]]:
    """Pair parallel runs ``double_spacing_m`` apart that overlap along most of their length.

    Each result is (left, right) by lateral offset (right None for a single line).
    """
    options = options or MarkingOptions()
    lo, hi = options.double_spacing_m
    used: set[int] = set()
    out: list[tuple[BoundaryRun, BoundaryRun | None]] = []
    order = sorted(range(len(runs)), key=lambda k: -runs[k].length_m)
    for a in order:
        if a in used:
            continue
        ra = runs[a]
        best = None
        for b in order:
            if b == a or b in used:
                continue
            rb = runs[b]
            overlap = min(ra.s1, rb.s1) - max(ra.s0, rb.s0)
            if overlap < 0.5 * min(ra.length_m, rb.length_m):
                continue
            mid = 0.5 * (max(ra.s0, rb.s0) + min(ra.s1, rb.s1))
            gap = abs(ra.t_at(mid) - rb.t_at(mid))
            if lo <= gap <= hi:
                best = b
                break
        used.add(a)
        if best is None:
            out.append((ra, None))
            continue
        used.add(best)
        rb = runs[best]
        left, right = (ra, rb) if ra.t_mean > rb.t_mean else (rb, ra)
        out.append((left, right))
    return out


def double_kind(left: MarkingKind, right: MarkingKind) -> MarkingKind:
    """Kind of a double line from its left and right lines (digitising direction).

    >>> double_kind(MarkingKind.SOLID, MarkingKind.DASHED).value
    'solid_dashed'
    """
    if left == MarkingKind.SOLID and right == MarkingKind.SOLID:
        return MarkingKind.DOUBLE_SOLID
    if left == MarkingKind.SOLID:
        return MarkingKind.SOLID_DASHED
    if right == MarkingKind.SOLID:
        return MarkingKind.DASHED_SOLID
    return MarkingKind.DASHED


def yellowness(rgb: np.ndarray) -> float:
    """Median blue deficit of colours (n, 3): near 0 for white or grey, near 0.8 for yellow
    paint; NaN when no colour is known.

    >>> round(yellowness(np.array([[235.0, 190.0, 40.0]])), 2), yellowness(np.array([[9.0, 9, 9]]))
    (0.81, 0.0)
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    rgb = rgb[np.all(np.isfinite(rgb), axis=1)] if rgb.size else rgb.reshape(0, 3)
    if len(rgb) == 0:
        return float("nan")
    rg = 0.5 * (rgb[:, 0] + rgb[:, 1])
    return float(np.median(1.0 - rgb[:, 2] / np.maximum(rg, 1e-9)))


def arrow_kind(u: np.ndarray, v: np.ndarray) -> tuple[ArrowKind, float]:
    """Arrow kind from its paint points: ``u`` along the travel direction, ``v`` to the left
    (metres, any origin). Returns the kind and a confidence in [0, 1].

    The shaft is the lateral median of the rear half; paint reaching well left or right of it in
    the front half is a turn head, paint at the very front on the shaft a straight head.

    >>> u = np.linspace(0, 5, 200); v = np.zeros(200)
    >>> arrow_kind(u, v)[0].value
    'straight'
    """
    if len(u) < 10:
        return ArrowKind.STRAIGHT, 0.2
    u0, u1 = float(np.quantile(u, 0.01)), float(np.quantile(u, 0.99))
    length = max(u1 - u0, 1e-6)
    rel = (u - u0) / length
    rear = rel < 0.3
    shaft = float(np.median(v[rear])) if np.any(rear) else float(np.median(v))
    dv = v - shaft
    reach = 0.12 * length  # beyond a straight head's half-width (about 0.07 of the length)
    left = float(np.mean(dv > reach))
    right = float(np.mean(dv < -reach))
    tip = rel > 0.85
    straight_tip = bool(np.any(tip)) and float(np.mean(np.abs(dv[tip]) < reach)) > 0.7
    has_left, has_right = left > 0.03, right > 0.03
    if has_left and not has_right:
        kind = ArrowKind.STRAIGHT_LEFT if straight_tip else ArrowKind.LEFT
    elif has_right and not has_left:
        kind = ArrowKind.STRAIGHT_RIGHT if straight_tip else ArrowKind.RIGHT
    else:
        kind = ArrowKind.STRAIGHT
    margin = abs(left - right)
    return kind, float(np.clip(0.5 + margin * 3.0, 0.0, 1.0))
