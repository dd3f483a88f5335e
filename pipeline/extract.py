"""Extraction: survey points to a map of lane boundaries, lanes, stop lines, crosswalks, arrows,
poles and signs.

The plain call chain of the stages in :mod:`pipeline.stages`: read the points, build the road
frame from the trajectory, segment the road surface, find poles and signs beside it (they need
neither the road nor its paint), normalise intensity, find paint, vectorise markings and derive
lanes. Every stage is a pure function of arrays, so a block-wise driver can
reuse them. Bad input that still reads (no road, no paint, a few hundred points) gives an empty or
partial map and a warning, never an exception.

>>> ExtractOptions().markings.cell_m
0.05
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from shapely import LineString, MultiPoint, Polygon

from pipeline.crs import height_datum, map_crs
from pipeline.edges import EdgeOptions, road_edges
from pipeline.ground import GroundOptions, derive_cell_m, lateral_road_mask, road_surface_mask
from pipeline.intensity import (
    IntensityOptions,
    fit_intensity_curve,
    normalise_intensity,
    scanner_range,
)
from pipeline.lanes import (
    FrameLine,
    LaneOptions,
    LanePiece,
    junction_lanes,
    lane_graph,
    lane_pieces,
)
from pipeline.markings import (
    BoundaryRun,
    MarkingOptions,
    PaintPiece,
    arrow_kind,
    chain_pieces,
    classify_chain,
    double_kind,
    paint_pieces,
    paint_threshold,
    pair_double_lines,
    yellowness,
)
from pipeline.markings import (
    _describe as _describe_points,
)
from pipeline.model import (
    Color,
    Crosswalk,
    Direction,
    Feature,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    Provenance,
    RoadArrow,
    RoadEdge,
    Sign,
    SignClass,
    SignShape,
    StopLine,
)
from pipeline.ortho import Ortho, sample_rgb
from pipeline.poles import PoleOptions, find_poles, height_above_ground, point_density
from pipeline.roadframe import RoadFrame
from pipeline.signs import Panel, SignOptions, colour_name, find_signs, link_poles, sign_class
from pipeline.survey import PointChunk, read_info, read_points, survey_files
from pipeline.trajectory import Trajectory, read_trajectory

__all__ = ["ExtractOptions", "ExtractionResult", "extract_map", "extract_points"]

MIN_POINTS = 1000  # fewer points than this cannot hold a road
MIN_ROAD_POINTS = 500


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """Options of every stage (see each Options class for its defaults, in metres)."""

    ground: GroundOptions = field(default_factory=GroundOptions)
    intensity: IntensityOptions = field(default_factory=IntensityOptions)
    markings: MarkingOptions = field(default_factory=MarkingOptions)
    lanes: LaneOptions = field(default_factory=LaneOptions)
    poles: PoleOptions = field(default_factory=PoleOptions)
    signs: SignOptions = field(default_factory=SignOptions)
    edges: EdgeOptions = field(default_factory=EdgeOptions)


@dataclass(frozen=True, slots=True)
class ExtractionResult:
    """The extracted map (survey CRS), warnings, effective parameters and stage timings (s)."""

    model: MapModel
    warnings: list[str]
    parameters: dict[str, Any]
    timings: dict[str, float]


def survey_lineage(paths: Sequence[str | os.PathLike[str]]) -> str:
    """A short lineage id: the first 12 hex digits of the SHA-256 over the files' contents."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:12]


def extract_map(
    survey_paths: Sequence[str | os.PathLike[str]],
    *,
    crs: str | None = None,
    trajectory: str | os.PathLike[str] | Trajectory | None = None,
    ortho: Ortho | None = None,
    options: ExtractOptions | None = None,
) -> ExtractionResult:
    """Extract a map from the LAS/LAZ ``survey_paths`` (metres in the survey CRS, or ``crs``).

    ``trajectory`` (a CSV path or a :class:`Trajectory`) seeds the road and gives scanner ranges;
    ``ortho`` (already in the survey CRS) gives paint colours. Unreadable files raise
    :class:`~pipeline.errors.SurveyError`; a survey without road or paint gives warnings.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    files = survey_files(survey_paths)
    info = read_info(files[0], crs=crs)
    chunks = [read_points(p, crs=crs) for p in files]
    points = PointChunk.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    traj = read_trajectory(trajectory) if isinstance(trajectory, str | os.PathLike) else trajectory
    timings["read"] = time.perf_counter() - t0
    result = extract_points(
        points,
        crs=map_crs(info.crs),
        survey_id=survey_lineage(files),
        trajectory=traj,
        ortho=ortho,
        options=options,
    )
    result.timings.update({"read": timings["read"]})
    # the model's CRS is the horizontal part; heights are above the survey's vertical datum
    model = result.model.replace(height_datum=height_datum(info.crs))
    return dataclasses.replace(result, model=model)


def extract_points(
    points: PointChunk,
    *,
    crs: str,
    survey_id: str,
    trajectory: Trajectory | None = None,
    ortho: Ortho | None = None,
    options: ExtractOptions | None = None,
) -> ExtractionResult:
    """The stage chain on points already in memory (metres in ``crs``).

    >>> r = extract_points(PointChunk(np.zeros((10, 3))), crs="EPSG:4549", survey_id="x")
    >>> r.model.is_empty, r.warnings[0]
    (True, 'only 10 points: too few to hold a road; the map is empty')
    """
    options = options or ExtractOptions()
    warnings: list[str] = []
    timings: dict[str, float] = {}
    params: dict[str, Any] = {"options": asdict(options)}
    empty = MapModel(crs)
    poles: list[Pole] = []
    edges: list[RoadEdge] = []
    signs: list[Sign] = []

    def done(model: MapModel) -> ExtractionResult:
        if poles or signs:
            model = model.replace(poles=tuple(poles), signs=tuple(signs))
        if edges:
            model = model.replace(road_edges=tuple(edges))
        return ExtractionResult(model, warnings, params, timings)

    n = len(points)
    if n < MIN_POINTS:
        warnings.append(f"only {n} points: too few to hold a road; the map is empty")
        return done(empty)
    xyz = points.xyz
    clock = time.perf_counter()

    # road frame
    if trajectory is not None and len(trajectory) >= 2:
        frame = RoadFrame.from_xy(trajectory.xyz[:, :2])
    else:
        warnings.append("no trajectory: the road frame is the points' principal axis")
        frame = _principal_frame(xyz)
    s, t = frame.project(xyz[:, 0], xyz[:, 1])
    timings["frame"] = time.perf_counter() - clock

    # road surface
    clock = time.perf_counter()
    g = options.ground
    if g.cell_m is None:
        g = replace(g, cell_m=derive_cell_m(xyz, g.points_per_cell))
    params["ground_cell_m"] = round(g.cell_m, 3)
    if trajectory is not None:
        road = lateral_road_mask(s, t, xyz[:, 2], g)
    else:
        road = road_surface_mask(xyz, g)
    timings["ground"] = time.perf_counter() - clock
    params["road_points"] = int(road.sum())

    # poles and signs beside the road
    found = _poles_and_signs(points, frame, trajectory, ortho, survey_id, options, timings, params)
    poles += found[0]
    signs += found[1]
    warnings += found[2]

    # road edges: curbs, barriers, pavement edges (they need no paint; intensity is optional)
    clock = time.perf_counter()
    edges += road_edges(s, t, xyz[:, 2], points.intensity, frame, survey_id=survey_id,
                        options=options.edges)  # fmt: skip
    timings["edges"] = time.perf_counter() - clock
    if road.sum() < MIN_ROAD_POINTS:
        warnings.append(f"no road surface found ({int(road.sum())} surface points); map is empty")
        return done(empty)

    # intensity
    clock = time.perf_counter()
    if points.intensity is None or not np.any(points.intensity[road]):
        warnings.append("the survey has no intensity: no markings can be found")
        return done(empty)
    ridx = np.flatnonzero(road)
    if trajectory is not None and points.gps_time is not None:
        cov = scanner_range(xyz[ridx], points.gps_time[ridx], trajectory.gps_time, trajectory.xyz)
        params["intensity_covariate"] = "range_m"
    elif points.scan_angle_deg is not None:
        cov = np.abs(points.scan_angle_deg[ridx]).astype(np.float64)
        params["intensity_covariate"] = "abs_scan_angle_deg"
    else:
        cov = np.zeros(len(ridx))
        params["intensity_covariate"] = "none"
        warnings.append("no trajectory, GPS time or scan angle: intensity is not normalised")
    curve = fit_intensity_curve(cov, points.intensity[ridx], options.intensity)
    norm = normalise_intensity(points.intensity[ridx], cov, curve)
    mo = options.markings
    threshold = mo.threshold or paint_threshold(norm)
    params["paint_threshold"] = round(float(threshold), 3)
    paint = norm >= threshold
    timings["intensity"] = time.perf_counter() - clock
    params["paint_points"] = int(paint.sum())

    # markings
    clock = time.perf_counter()
    rs, rt, rz = s[ridx], t[ridx], xyz[ridx, 2]
    rxy = xyz[ridx, :2]
    pieces = paint_pieces(rs, rt, paint, mo)
    lines, bars, stripes, blobs = _sort_pieces(pieces, mo)
    # stop lines first: a worn bar may be a row of small transverse bits
    bar_bits = [p for p in blobs if p.angle_deg >= 45.0 or p.length_m <= 0.6]
    stop_bars, used_bits = _merge_bars(bars, bar_bits, rs, rt)
    blobs = [p for p in blobs if id(p) not in used_bits]
    zebra_groups, lines, blobs = _zebra_groups(stripes, lines, blobs)
    arrows_pre, lines = _split_arrows(lines + blobs, rs, rt)
    surface = _SurfaceGrid(rs, rt)
    runs = chain_pieces(lines, mo)
    parts: list[BoundaryRun] = []
    for run in runs:
        visible = [
            surface.visible(a.s1, b.s0, a.t_at(a.s1), b.t_at(b.s0))
            for a, b in zip(run.pieces[:-1], run.pieces[1:], strict=True)
        ]
        for part in classify_chain(run, visible, mo):
            if part.length_m >= mo.min_chain_m or len(part.pieces) >= 2:
                parts.append(part)
    kept = {id(p) for part in parts for p in part.pieces}
    blobs = arrows_pre + _group_blobs([p for p in lines if id(p) not in kept], rs, rt)
    paired = pair_double_lines(parts, mo)
    colour_of = _colour_source(points, ridx, ortho)
    if colour_of is None:
        warnings.append("no orthophoto or point RGB: marking colours are unknown")
    boundaries: list[LaneBoundary] = []
    frame_lines: list[FrameLine] = []
    yellow_t: list[float] = []
    double_t: list[float] = []
    for left, right in paired:
        fl = _frame_line(left, right, rs, rt, rz, mo)
        if fl is None:
            continue
        kind = left.marking if right is None else double_kind(left.marking, right.marking)
        idx = left.index if right is None else np.r_[left.index, right.index]
        color = _colour(colour_of, idx, rxy)
        x, y = frame.to_xy(fl.s, fl.t)
        geom = LineString(np.column_stack([x, y, fl.z]))
        pattern = left if right is None else (left if left.marking == MarkingKind.DASHED else right)
        dashed = kind != MarkingKind.SOLID and kind != MarkingKind.DOUBLE_SOLID
        occluded = left.occluded_m + (right.occluded_m if right else 0.0)
        conf = float(np.clip(0.95 - 0.5 * occluded / max(fl.s[-1] - fl.s[0], 1.0), 0.3, 0.95))
        b = LaneBoundary.create(
            geom,
            kind,
            color,
            survey_id=survey_id,
            method="markings.lane_boundaries",
            confidence=round(conf, 3),
            width_m=0.15,
            dash_length_m=pattern.dash_length_m if dashed else None,
            gap_length_m=pattern.gap_length_m if dashed else None,
        )
        boundaries.append(b)
        frame_lines.append(FrameLine(b.id, fl.s, fl.t, fl.z))
        if right is not None:
            double_t.append(float(np.median(fl.t)))
        if color == Color.YELLOW:
            yellow_t.append(float(np.median(fl.t)))
    stop_lines = [_stop_line(p, xyz[ridx], survey_id) for p in stop_bars]
    crosswalks = _crosswalks(zebra_groups, xyz[ridx], survey_id)
    centre_lines = double_t or yellow_t
    centre_t = float(np.median(centre_lines)) if centre_lines else None
    # an arrow lies inside a lane: a blob on a boundary is worn line paint
    blobs = [p for p in blobs if _off_boundaries(p, frame_lines, 0.6)]
    arrows = [_arrow(p, rs, rt, xyz[ridx], centre_t, survey_id) for p in blobs]
    timings["markings"] = time.perf_counter() - clock

    clock = time.perf_counter()
    lane_list = lane_pieces(frame_lines, options.lanes)
    lane_list += junction_lanes(lane_list, options.lanes)
    lane_graph(lane_list, centre_t, options.lanes)
    lanes = _lane_features(lane_list, frame, survey_id)
    timings["lanes"] = time.perf_counter() - clock
    if not boundaries:
        warnings.append("no lane markings found")
    features: list[Feature] = [*boundaries, *lanes, *stop_lines, *crosswalks, *arrows]
    return done(MapModel.from_features(crs, _unique(features)))


def _poles_and_signs(
    points: PointChunk,
    frame: RoadFrame,
    trajectory: Trajectory | None,
    ortho: Ortho | None,
    survey_id: str,
    options: ExtractOptions,
    timings: dict[str, float],
    params: dict[str, Any],
) -> tuple[list[Pole], list[Sign], list[str]]:
    """Poles (:mod:`pipeline.poles`) and sign panels (:mod:`pipeline.signs`) linked to them.

    A panel faces where the scanner saw it from (trajectory and GPS time), else the traffic of
    its side of the road (right-hand traffic along the road frame). A circle's colour comes from
    the point RGB or, where the orthophoto sees the panel, from it."""
    xyz = points.xyz
    warnings: list[str] = []
    clock = time.perf_counter()
    height = height_above_ground(xyz, options.poles.ground_cell_m)
    density = point_density(xyz)
    params["point_density_m2"] = round(density, 1)
    params["pole_method"] = "sparse" if density < options.poles.sparse_density else "mobile"
    fits = find_poles(xyz, options.poles, height=height)
    poles = [
        Pole.create(
            shapely.Point(f.x, f.y, f.z),
            round(f.height_m, 3),
            round(f.radius_m, 3),
            survey_id=survey_id,
            method="poles.find_poles",
            confidence=f.confidence,
        )
        for f in fits
    ]
    timings["poles"] = time.perf_counter() - clock
    params["poles"] = len(poles)

    clock = time.perf_counter()
    so = options.signs
    above = np.flatnonzero(height >= so.min_height_m)
    panels: list[Panel] = []
    if points.intensity is not None and len(above):
        covariate = viewer = None
        if trajectory is not None and len(trajectory) >= 2 and points.gps_time is not None:
            t_above = points.gps_time[above]
            viewer = np.column_stack(
                [np.interp(t_above, trajectory.gps_time, trajectory.xyz[:, k]) for k in range(3)]
            )
            covariate = np.linalg.norm(xyz[above] - viewer, axis=1)
        elif points.scan_angle_deg is not None:
            covariate = np.abs(points.scan_angle_deg[above]).astype(np.float64)
        panels = find_signs(
            xyz[above],
            height[above],
            points.intensity[above],
            covariate=covariate,
            viewer=viewer,
            face_hint=None if viewer is not None else _traffic_facing(frame),
            poles=fits,
            options=so,
        )
    links = link_poles(panels, fits, so)
    signs: list[Sign] = []
    unknown = 0
    for panel, k in zip(panels, links, strict=True):
        rgb = None
        if panel.shape == SignShape.CIRCLE:
            rgb = _panel_colours(points, above[panel.index], panel, ortho)
        cls = sign_class(panel.shape, rgb)
        unknown += cls == SignClass.UNKNOWN
        signs.append(
            Sign.create(
                shapely.Point(*panel.centre),
                cls,
                panel.shape,
                panel.facing_deg,
                survey_id=survey_id,
                method="signs.panel_backs" if panel.seen_from_back else "signs.retroreflective",
                confidence=0.6 if panel.seen_from_back else 0.9,
                width_m=panel.width_m,
                height_m=panel.height_m,
                pole=poles[k].id if k is not None else None,
            )
        )
    timings["signs"] = time.perf_counter() - clock
    params["signs"] = len(signs)
    params["signs_class_unknown"] = unknown
    if not poles and not signs:
        warnings.append("no vertical objects found: the map has no poles or signs")
    elif unknown and ortho is None and points.rgb is None:
        warnings.append(
            f"no orthophoto or point RGB: {unknown} circular sign(s) have class unknown"
        )
    return poles, signs, warnings


def _traffic_facing(frame: RoadFrame) -> Any:
    """Face hint without a trajectory: a sign right of the frame's direction faces against it
    (toward the traffic driving on the right), one left of it faces along it."""

    def hint(centre: np.ndarray) -> np.ndarray:
        s, t = frame.project(np.array([centre[0]]), np.array([centre[1]]))
        tangent = frame.heading_at(s)[0]
        return -tangent if t[0] < 0 else tangent

    return hint


def _panel_colours(
    points: PointChunk, index: np.ndarray, panel: Panel, ortho: Ortho | None
) -> np.ndarray | None:
    """Colours (m, 3) of a panel's face: its points' RGB, or the orthophoto along its footprint
    when the ortho sees it (a colour there that the ground 0.6 m in front and behind lacks); None
    when neither shows the face (a true ortho looks straight down on a vertical panel's edge)."""
    if points.rgb is not None and np.any(points.rgb[index]):
        return points.rgb[index].astype(np.float64)
    if ortho is None:
        return None
    xy = points.xyz[index, :2]
    foot = sample_rgb(ortho, xy[:, 0], xy[:, 1])
    name = colour_name(foot)
    if name is None:
        return None
    n = np.array(panel.normal[:2]) / max(float(np.hypot(*panel.normal[:2])), 1e-12)
    around = np.vstack([sample_rgb(ortho, *(xy + k * 0.6 * n).T) for k in (-1.0, 1.0)])
    return foot if colour_name(around) != name else None


def _unique(features: list[Feature]) -> list[Feature]:
    seen: set[str] = set()
    out = []
    for f in features:
        if f.id not in seen:
            seen.add(f.id)
            out.append(f)
    return out


def _principal_frame(xyz: np.ndarray) -> RoadFrame:
    xy = xyz[:, :2]
    centre = xy.mean(axis=0)
    sample = xy[:: max(1, len(xy) // 100_000)] - centre
    _, vecs = np.linalg.eigh(sample.T @ sample)
    axis = vecs[:, 1]
    proj = sample @ axis
    ends = np.array([centre + proj.min() * axis, centre + proj.max() * axis])
    return RoadFrame.from_xy(ends, smooth_m=0.0)


def _split_arrows(
    pieces: list[PaintPiece], rs: np.ndarray, rt: np.ndarray
) -> tuple[list[PaintPiece], list[PaintPiece]]:
    """Arrows among line pieces and blobs: groups (see :func:`_group_blobs`) at least 0.3 m wide
    across the road that fill under 60 % of their box (a dash or a double line fills more)."""
    groups = _group_blobs(pieces, rs, rt, keep_members=True)
    arrows, used = [], set()
    for piece, members in groups:
        t_extent = float(np.ptp(rt[piece.index]))
        s_extent = float(np.ptp(rs[piece.index]))
        fill = piece.area_m2 / max(t_extent * s_extent, 1e-6)
        if t_extent >= 0.3 and fill < 0.6:
            arrows.append(piece)
            used.update(id(p) for p in members)
    rest = [p for p in pieces if id(p) not in used]
    return arrows, [p for p in rest if p.width_m <= 0.3 and p.angle_deg <= 15.0]


def _group_blobs(
    pieces: list[PaintPiece], rs: np.ndarray, rt: np.ndarray, keep_members: bool = False
) -> list[Any]:
    """Merge pieces up to 8 m long whose (s, t) boxes come within 0.3 m (an arrow split by
    wear into shaft and heads) and keep groups shaped like an arrow: 1.5-8 m long, 0.3-3 m2 of
    paint."""
    pieces = [p for p in pieces if p.length_m <= 8.0 and p.area_m2 <= 3.0]
    boxes = [(p.s0, p.s1, float(rt[p.index].min()), float(rt[p.index].max())) for p in pieces]
    parent = list(range(len(pieces)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a in range(len(pieces)):
        for b in range(a + 1, len(pieces)):
            ba, bb = boxes[a], boxes[b]
            if (
                ba[0] - 0.3 <= bb[1]
                and bb[0] - 0.3 <= ba[1]
                and ba[2] - 0.3 <= bb[3]
                and bb[2] - 0.3 <= ba[3]
            ):
                parent[root(a)] = root(b)
    groups: dict[int, list[PaintPiece]] = {}
    for k, p in enumerate(pieces):
        groups.setdefault(root(k), []).append(p)
    out = []
    for g in groups.values():
        idx = np.concatenate([p.index for p in g])
        area = sum(p.area_m2 for p in g)
        piece = _describe_points(idx, rs[idx], rt[idx], area)
        if 0.3 <= area <= 3.0 and 1.5 <= piece.length_m <= 8.0 and piece.angle_deg <= 30:
            out.append((piece, g) if keep_members else piece)
    return out


def _off_boundaries(piece: PaintPiece, lines: list[FrameLine], clearance_m: float) -> bool:
    """True when ``piece``'s centre is at least ``clearance_m`` from every boundary beside it or
    ending within 6 m of it (worn paint at a line's end)."""
    for line in lines:
        beside = line.s[0] - 6.0 <= piece.s_mid <= line.s[-1] + 6.0
        if beside and abs(float(line.t_at(piece.s_mid)) - piece.t_mid) < clearance_m:
            return False
    return True


def _fill_ratio(p: PaintPiece) -> float:
    return p.area_m2 / max(p.length_m * p.width_m, 1e-6)


def _sort_pieces(
    pieces: list[PaintPiece], mo: MarkingOptions
) -> tuple[list[PaintPiece], list[PaintPiece], list[PaintPiece], list[PaintPiece]]:
    """Split pieces into lane-line pieces, stop-line bars, zebra stripes and the rest."""
    lines, bars, stripes, blobs = [], [], [], []
    for p in pieces:
        fill = _fill_ratio(p)
        if (
            p.width_m <= mo.line_max_width_m
            and p.angle_deg <= mo.parallel_deg
            and p.length_m >= 0.3
        ):
            lines.append(p)
        elif p.width_m <= mo.bar_max_width_m and fill >= 0.6 and p.length_m >= 1.5:
            if p.angle_deg >= mo.transverse_deg:
                bars.append(p)
            elif p.angle_deg <= mo.parallel_deg:
                stripes.append(p)
        else:
            blobs.append(p)
    return lines, bars, stripes, blobs


class _SurfaceGrid:
    """Occupancy of road-surface points on a 0.25 m (s) x 0.05 m (t) grid, for gap checks."""

    def __init__(self, s: np.ndarray, t: np.ndarray, ds: float = 0.25, dt: float = 0.05):
        self.ds, self.dt = ds, dt
        self.s0, self.t0 = float(s.min()), float(t.min())
        i = ((s - self.s0) / ds).astype(np.int64)
        j = ((t - self.t0) / dt).astype(np.int64)
        self.grid = np.zeros((int(i.max()) + 1, int(j.max()) + 1), dtype=bool)
        self.grid[i, j] = True

    def visible(self, s_a: float, s_b: float, t_a: float, t_b: float) -> bool:
        """True when at least half of the gap from (s_a, t_a) to (s_b, t_b) shows surface."""
        if s_b - s_a < 2 * self.ds:
            return True
        ss = np.arange(s_a + self.ds, s_b - self.ds / 2, self.ds)
        tt = np.interp(ss, [s_a, s_b], [t_a, t_b])
        i = ((ss - self.s0) / self.ds).astype(np.int64)
        hits = np.zeros(len(ss), dtype=bool)
        j = ((tt - self.t0) / self.dt).astype(np.int64)
        ok = (i >= 0) & (i < self.grid.shape[0]) & (j >= 0) & (j < self.grid.shape[1])
        hits[ok] = self.grid[i[ok], j[ok]]
        return bool(hits.mean() >= 0.5)


def _run_profile(
    run: BoundaryRun, rs: np.ndarray, rt: np.ndarray, rz: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned (s, t, z) of a run's paint points: robust lateral means per ``step`` of s."""
    idx = run.index
    s, t, z = rs[idx], rt[idx], rz[idx]
    bins = np.floor((s - run.s0) / step).astype(np.int64)
    out_s, out_t, out_z = [], [], []
    order = np.argsort(bins, kind="stable")
    cut = np.flatnonzero(np.diff(bins[order])) + 1
    for grp in np.split(order, cut):
        if grp.size < 3:
            continue
        tm = np.median(t[grp])
        keep = grp[np.abs(t[grp] - tm) < 0.12]
        if keep.size < 3:
            continue
        out_s.append(float(s[keep].mean()))
        out_t.append(float(t[keep].mean()))
        out_z.append(float(np.median(z[keep])))
    return np.asarray(out_s), np.asarray(out_t), np.asarray(out_z)


def _frame_line(
    left: BoundaryRun,
    right: BoundaryRun | None,
    rs: np.ndarray,
    rt: np.ndarray,
    rz: np.ndarray,
    mo: MarkingOptions,
) -> FrameLine | None:
    step = mo.vertex_step_m
    prof = [_run_profile(r, rs, rt, rz, step) for r in (left, right) if r is not None]
    if any(len(p[0]) < 2 for p in prof):
        return None
    s0 = min(r.s0 for r in (left, right) if r is not None)
    s1 = max(r.s1 for r in (left, right) if r is not None)
    n = max(2, int(np.ceil((s1 - s0) / step)) + 1)
    s = np.linspace(s0, s1, n)
    t = np.mean([np.interp(s, p[0], p[1]) for p in prof], axis=0)
    z = np.mean([np.interp(s, p[0], p[2]) for p in prof], axis=0)
    return FrameLine("", s, t, z)


def _colour_source(points: PointChunk, ridx: np.ndarray, ortho: Ortho | None) -> Any:
    if ortho is not None:
        return ("ortho", ortho)
    if points.rgb is not None and np.any(points.rgb[ridx]):
        return ("rgb", points.rgb[ridx].astype(np.float64))
    return None


def _colour(source: Any, idx: np.ndarray, rxy: np.ndarray) -> Color:
    """Paint colour of road points ``idx``: yellow when blue is well below red and green (see
    :func:`pipeline.markings.yellowness`), white when it is not, unknown without colour data or
    between the two."""
    if source is None or len(idx) == 0:
        return Color.UNKNOWN
    idx = idx[:: max(1, len(idx) // 3000)]
    if source[0] == "ortho":
        rgb = sample_rgb(source[1], rxy[idx, 0], rxy[idx, 1])
    else:
        rgb = source[1][idx]
    y = yellowness(rgb)
    if not np.isfinite(y):
        return Color.UNKNOWN
    if y >= 0.35:
        return Color.YELLOW
    if y <= 0.2:
        return Color.WHITE
    return Color.UNKNOWN


def _merge_bars(
    bars: list[PaintPiece], bits: list[PaintPiece], rs: np.ndarray, rt: np.ndarray
) -> tuple[list[PaintPiece], set[int]]:
    """Join bar pieces of one stop line broken by wear or occlusion (at most 0.3 m apart along
    and 1.5 m apart across the road), and the short transverse ``bits`` (a far end seen by few
    scan lines, a worn bar) that continue a bar or line up into one. Returns the bars and the ids
    of the bits used."""
    real = {id(p) for p in bars}
    groups: list[list[PaintPiece]] = []
    for p in sorted([*bars, *bits], key=lambda p: p.t_mid):
        for g in groups:
            q = g[-1]
            t_gap = float(rt[p.index].min() - rt[q.index].max())
            if min(p.s1, q.s1) - max(p.s0, q.s0) > -0.3 and t_gap <= 1.5:
                g.append(p)
                break
        else:
            groups.append([p])
    # a group holds a whole bar, or spans 2.5 m across the road in at least three bits
    groups = [
        g
        for g in groups
        if any(id(p) in real for p in g)
        or (len(g) >= 3 and np.ptp(rt[np.concatenate([p.index for p in g])]) >= 2.5)
    ]
    used = {id(p) for g in groups for p in g}
    out = []
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            continue
        idx = np.concatenate([p.index for p in g])
        out.append(_describe_points(idx, rs[idx], rt[idx], sum(p.area_m2 for p in g)))
    return out, used


def _stop_line(p: PaintPiece, xyz: np.ndarray, survey_id: str) -> StopLine:
    pts = xyz[p.index]
    centre = pts.mean(axis=0)
    d = pts[:, :2] - centre[:2]
    _, vecs = np.linalg.eigh(d.T @ d)
    axis = vecs[:, 1]
    along = d @ axis
    a, b = np.quantile(along, [0.005, 0.995])
    across = d @ vecs[:, 0]
    width = float(np.quantile(across, 0.98) - np.quantile(across, 0.02))
    ends = [centre[:2] + a * axis, centre[:2] + b * axis]
    geom = LineString([(*ends[0], centre[2]), (*ends[1], centre[2])])
    return StopLine.create(
        geom,
        survey_id=survey_id,
        method="markings.stop_lines",
        confidence=0.9,
        width_m=round(width, 2),
    )


def _zebra_groups(
    stripes: list[PaintPiece], lines: list[PaintPiece], others: list[PaintPiece]
) -> tuple[list[list[PaintPiece]], list[PaintPiece], list[PaintPiece]]:
    """Group parallel stripes side by side (overlapping in s, <= 4 m apart across) into
    crosswalks of at least three stripes; line pieces spanning the same s-range as a group (far
    stripes seen by few scan lines look thin) join it, and other pieces inside a group's area are
    dropped (worn stripe fragments). Returns the groups, the other lines and the other pieces."""
    stripes = sorted(stripes, key=lambda p: p.t_mid)
    groups: list[list[PaintPiece]] = []
    for p in stripes:
        for g in groups:
            q = g[-1]
            overlap = min(p.s1, q.s1) - max(p.s0, q.s0)
            # side by side; a stripe hidden by a car may leave a wider gap across
            if overlap > 0.5 * min(p.s1 - p.s0, q.s1 - q.s0) and p.t_mid - q.t_mid <= 4.0:
                g.append(p)
                break
        else:
            groups.append([p])
    groups = [g for g in groups if len(g) >= 3]
    boxes = [
        (
            float(np.median([q.s0 for q in g])) - 0.6,
            float(np.median([q.s1 for q in g])) + 0.6,
            min(q.t_mid for q in g) - 1.0,
            max(q.t_mid for q in g) + 1.0,
        )
        for g in groups
    ]

    def inside(p: PaintPiece, across: bool = True) -> int | None:
        for k, (a, b, lo, hi) in enumerate(boxes):
            if p.s0 >= a and p.s1 <= b and (not across or lo <= p.t_mid <= hi):
                return k
        return None

    rest = []
    for p in lines:
        k = inside(p, across=False)
        if k is None:
            rest.append(p)
        else:
            groups[k].append(p)
    return groups, rest, [p for p in others if inside(p) is None]


def _crosswalks(groups: list[list[PaintPiece]], xyz: np.ndarray, survey_id: str) -> list[Crosswalk]:
    """One crosswalk polygon per stripe group: the oriented rectangle around its paint."""
    out = []
    for g in groups:
        idx = np.concatenate([p.index for p in g])
        pts = xyz[idx[:: max(1, len(idx) // 20000)]]
        rect = MultiPoint(pts[:, :2]).minimum_rotated_rectangle
        if not isinstance(rect, Polygon):
            continue
        z = float(np.median(pts[:, 2]))
        ring = [(x, y, z) for x, y in rect.exterior.coords]
        out.append(
            Crosswalk.create(
                Polygon(ring), survey_id=survey_id, method="markings.crosswalks", confidence=0.9
            )
        )
    return out


def _arrow(
    p: PaintPiece,
    rs: np.ndarray,
    rt: np.ndarray,
    xyz: np.ndarray,
    centre_t: float | None,
    survey_id: str,
) -> RoadArrow:
    idx = p.index
    backward = centre_t is not None and p.t_mid > centre_t
    sign = -1.0 if backward else 1.0
    kind, conf = arrow_kind(sign * rs[idx], sign * rt[idx])
    pts = xyz[idx[:: max(1, len(idx) // 5000)]]
    hull = shapely.concave_hull(MultiPoint(pts[:, :2]), ratio=0.1)
    if not isinstance(hull, Polygon) or hull.is_empty:
        hull = MultiPoint(pts[:, :2]).convex_hull
    z = float(np.median(pts[:, 2]))
    if isinstance(hull, Polygon):
        geom: Any = Polygon([(x, y, z) for x, y in hull.exterior.coords])
    else:
        c = pts.mean(axis=0)
        geom = shapely.Point(c[0], c[1], z)
    return RoadArrow.create(
        geom, kind, survey_id=survey_id, method="markings.road_arrows", confidence=round(conf, 3)
    )


def _lane_features(pieces: list[LanePiece], frame: RoadFrame, survey_id: str) -> list[Lane]:
    geoms = []
    for p in pieces:
        x, y = frame.to_xy(p.s, p.t)
        coords = np.column_stack([x, y, p.z])
        widths = p.width
        if p.backward:
            coords, widths = coords[::-1], widths[::-1]
        geoms.append((LineString(coords), tuple(float(w) for w in widths)))
    ids = [Lane.create(g, w, survey_id=survey_id, method="lanes.lanes").id for g, w in geoms]
    lanes = []
    for k, (p, (g, w)) in enumerate(zip(pieces, geoms, strict=True)):
        left, right = (p.right, p.left) if p.backward else (p.left, p.right)
        left, right = left or None, right or None
        lanes.append(
            Lane(
                g,
                w,
                id=ids[k],
                provenance=Provenance(survey_id, "lanes.lanes"),
                confidence=0.9,
                left_boundary=left,
                right_boundary=right,
                direction=Direction.FORWARD,
                predecessors=tuple(ids[i] for i in p.predecessors),
                successors=tuple(ids[i] for i in p.successors),
                left_neighbour=ids[p.left_neighbour] if p.left_neighbour is not None else None,
                right_neighbour=ids[p.right_neighbour] if p.right_neighbour is not None else None,
            )
        )
    return lanes
