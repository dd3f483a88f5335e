"""Block processing: a survey of any size in bounded memory (issue 9).

The survey is cut into blocks along the trajectory (or, without one, along the points' principal
axis): block ``k`` *owns* the stretch ``core_s0 <= s < core_s1`` of the path and reads the points
within ``half_width_m`` of the path over the core plus ``overlap_m`` on each side. Each block is
read with chunked I/O (:func:`read_block`, or once for all blocks with :func:`split_into_blocks`),
extracted on its own (:func:`extract_block`, the stage chain of :func:`pipeline.extract.
extract_points`) and the block maps are stitched (:func:`stitch`): point-like features are kept by
the block owning their anchor; lines are cut where the path's core boundaries cross them and joined
end to end across those cuts, so a lane boundary crossing ten blocks comes out as one feature.

Positions along the path ``s`` are metres from the trajectory's start (negative before it); the
path is the trajectory resampled every metre and smoothed, extended by ``half_width_m`` beyond
both ends, so every point within ``half_width_m`` of the drive lies in some block. A point belongs
to the block whose path its nearest path point falls on: neighbouring blocks share their cut, so
nothing is lost or kept twice at a block edge.

Every step is a pure function of picklable values (:class:`Block`, :class:`~pipeline.survey.
PointChunk`, :class:`~pipeline.model.MapModel`), so a flow can run one task per block, as
:func:`extract_map_blocked` does in sequence: :func:`plan_blocks`; :func:`split_into_blocks`
gathering :class:`CellCounts` in the same pass (every block must use the one ground cell of the
survey, ``ExtractOptions.ground.cell_m``, as a single build does); per block :func:`read_block`
and :func:`extract_block`; then :func:`stitch` with the lane options.

>>> traj = Trajectory(np.array([0.0, 10.0]), np.array([[0.0, 0, 0], [100.0, 0, 0]]))
>>> [(b.core_s0, b.core_s1) for b in plan_blocks(None, traj, block_length_m=50.0)]
[(-60.0, 50.0), (50.0, 160.0)]
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import struct
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import shapely
from scipy.spatial import ConvexHull, QhullError, cKDTree
from shapely import LineString, Polygon

from pipeline.crs import height_datum, map_crs
from pipeline.errors import SurveyError
from pipeline.extract import ExtractionResult, ExtractOptions, extract_points, survey_lineage
from pipeline.files import atomic_path
from pipeline.lanes import LaneOptions, LanePiece, junction_lanes
from pipeline.model import Feature, Lane, MapModel, anchor_point, feature_id
from pipeline.ortho import Ortho
from pipeline.roadframe import RoadFrame
from pipeline.survey import (
    DEFAULT_CHUNK_POINTS,
    PointChunk,
    iter_chunks,
    read_info,
    survey_files,
)
from pipeline.trajectory import Trajectory, read_trajectory

__all__ = [
    "CUT_LAYERS",
    "DEFAULT_BLOCK_LENGTH_M",
    "DEFAULT_HALF_WIDTH_M",
    "DEFAULT_OVERLAP_M",
    "JOIN_M",
    "Block",
    "CellCounts",
    "extract_block",
    "extract_map_blocked",
    "plan_blocks",
    "read_block",
    "split_into_blocks",
    "stitch",
]

DEFAULT_BLOCK_LENGTH_M = 150.0
DEFAULT_OVERLAP_M = 25.0
#: Points farther than this from the trajectory are outside every block (metres).
DEFAULT_HALF_WIDTH_M = 60.0
#: Layers whose lines are cut at the core boundaries and joined across them; every other layer is
#: kept by the block owning its anchor point (:func:`pipeline.model.anchor_point`).
CUT_LAYERS = ("lane_boundaries", "road_edges", "lanes")
#: Two line ends at one cut continue each other when at most this far apart (metres, 2D).
JOIN_M = 0.5
#: A cut piece shorter than this that joins nothing is an edge artefact and is dropped (metres).
STUB_M = 0.5
PATH_STEP_M = 1.0  # path vertex spacing
PATH_SMOOTH_M = 2.0  # Gaussian sigma of the path smoothing (metres of arc length)
TRAJECTORY_MARGIN_M = 20.0  # trajectory kept beyond a block's read interval
_JOIN_COS = math.cos(math.radians(30.0))  # joined ends agree in direction within 30 degrees
_ANCHOR_MATCH_M = 1.0  # a reference to a feature another block kept: its twin within this
_BISECT_STEPS = 48
# what laspy and its LAZ backends raise on corrupt or truncated content
_READ_ERRORS = (
    laspy.errors.LaspyException,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    RuntimeError,
)


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a survey (metres in the survey CRS).

    ``s0``..``s1`` is the read interval along the path and ``core_s0``..``core_s1`` the core the
    block owns (the read interval is the core plus ``overlap_m`` on both sides, within the path);
    ``first``/``last`` blocks also own everything before/after the path's ends. ``path`` is the
    path's 2D polyline over ``s0``..``s1`` (its first vertex at ``s0``), ``polygon`` the read
    region: the points within ``half_width_m`` of ``path``. ``gps_time_range`` (seconds) bounds
    the trajectory poses the block's extraction uses (None for a block planned without one).
    """

    index: int
    s0: float
    s1: float
    core_s0: float
    core_s1: float
    overlap_m: float
    half_width_m: float
    path: LineString = field(repr=False)
    polygon: Polygon = field(repr=False)
    first: bool = False
    last: bool = False
    gps_time_range: tuple[float, float] | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the read region, metres."""
        return tuple(float(v) for v in self.polygon.bounds)  # type: ignore[return-value]

    @property
    def core_length_m(self) -> float:
        return self.core_s1 - self.core_s0

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Position ``s`` (metres along the path) of the path point nearest to each (x, y);
        points beyond the block's path get the position of its nearer end.

        >>> b = plan_blocks(None, Trajectory(np.array([0.0, 1.0]), np.array([[0.0, 0, 0],
        ...     [100.0, 0, 0]])), block_length_m=200.0)[0]
        >>> b.locate(np.array([10.0, 500.0]), np.array([5.0, 0.0])).tolist()
        [10.0, 160.0]
        >>> b.locate(np.array([]), np.array([])).tolist()
        []
        """
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return np.empty(0)
        pts = shapely.points(x, np.asarray(y, dtype=np.float64))
        return self.s0 + shapely.line_locate_point(self.path, pts)

    def in_core(self, s: np.ndarray) -> np.ndarray:
        """Boolean mask: positions ``s`` (metres) that this block owns."""
        s = np.asarray(s, dtype=np.float64)
        inside = np.ones(s.shape, dtype=bool)
        if not self.first:
            inside &= s >= self.core_s0
        if not self.last:
            inside &= s < self.core_s1
        return inside


# planning


def plan_blocks(
    survey: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    trajectory: Trajectory | str | os.PathLike[str] | None = None,
    *,
    block_length_m: float = DEFAULT_BLOCK_LENGTH_M,
    overlap_m: float = DEFAULT_OVERLAP_M,
    half_width_m: float = DEFAULT_HALF_WIDTH_M,
    crs: str | None = None,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
) -> list[Block]:
    """Blocks covering the survey: cores of at most ``block_length_m`` metres along the path,
    each read with ``overlap_m`` more on both sides (metres in the survey CRS).

    With a ``trajectory`` (of at least two distinct positions) the path is the trajectory and the
    survey files are only used, when given, to drop blocks outside their header bounds. Without
    one, one streamed pass over ``survey`` gives the points' principal axis and extent (the path
    is that axis; ``half_width_m`` becomes the points' extent across it) and ``crs`` is the
    survey's ``--crs`` option.

    >>> plan_blocks(None, None)
    Traceback (most recent call last):
    ...
    ValueError: a block plan needs a trajectory or survey files
    """
    if not block_length_m > 0 or not overlap_m >= 0 or not half_width_m > 0:
        raise ValueError(
            "block_length_m and half_width_m must be positive and overlap_m not negative"
        )
    if isinstance(trajectory, str | os.PathLike):
        trajectory = read_trajectory(trajectory)
    files = [] if survey is None else survey_files(_as_list(survey))
    path = _trajectory_path(trajectory, half_width_m) if trajectory is not None else None
    if path is None:
        if not files:
            raise ValueError("a block plan needs a trajectory or survey files")
        path, half_width_m = _axis_path(files, crs, chunk_points)
    xy, s, u = path
    start, end = 0.0, float(s[-2])  # trajectory (or axis) ends; the path extends beyond both
    n = max(1, math.ceil((end - start) / block_length_m - 1e-9))
    cuts = (
        [float(s[0])]
        + [round(start + k * (end - start) / n, 3) for k in range(1, n)]
        + [float(s[-1])]
    )
    survey_boxes = [_header_box(f, crs) for f in files] if trajectory is not None else []
    blocks: list[Block] = []
    for k in range(n):
        a, b = max(cuts[k] - overlap_m, float(s[0])), min(cuts[k + 1] + overlap_m, float(s[-1]))
        piece = _sub_path(xy, s, a, b)
        # the read region; a 1 cm simpler outline tests points faster
        polygon = piece.simplify(0.01).buffer(half_width_m, cap_style="flat", quad_segs=4)
        if survey_boxes and not any(polygon.intersects(box) for box in survey_boxes):
            continue
        times = None
        if trajectory is not None and u is not None:
            times = _time_range(trajectory, s, u, a, b)
        blocks.append(
            Block(
                index=len(blocks),
                s0=a,
                s1=b,
                core_s0=cuts[k],
                core_s1=cuts[k + 1],
                overlap_m=float(overlap_m),
                half_width_m=float(half_width_m),
                path=piece,
                polygon=polygon,
                first=k == 0,
                last=k == n - 1,
                gps_time_range=times,
            )
        )
    return blocks


def _as_list(survey: Any) -> list[Any]:
    return [survey] if isinstance(survey, str | os.PathLike) else list(survey)


def _trajectory_path(
    traj: Trajectory, extend_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The trajectory resampled every metre and smoothed (``xy``), its positions ``s`` (metres
    from the first pose) and the raw trajectory arc length ``u`` at each vertex, extended by
    ``extend_m`` beyond both ends along the end tangents. None for a standing trajectory."""
    xy = np.asarray(traj.xyz[:, :2], dtype=np.float64)
    if len(xy) < 2 or not np.any(np.hypot(*np.diff(xy, axis=0).T) > 1e-6):
        return None
    frame = RoadFrame.from_xy(xy, step_m=PATH_STEP_M, smooth_m=PATH_SMOOTH_M)
    u_end = float(np.hypot(*np.diff(xy, axis=0).T).sum())
    u = np.linspace(0.0, u_end, len(frame.s))  # the raw arc length each vertex was sampled at
    t0, t1 = frame.tangent[0], frame.tangent[-1]
    dense = np.vstack([frame.xy[0] - extend_m * t0, frame.xy, frame.xy[-1] + extend_m * t1])
    s = np.r_[-extend_m, frame.s, frame.s[-1] + extend_m]
    return dense, s, np.r_[-extend_m, u, u_end + extend_m]


def _axis_path(
    files: Sequence[Path], crs: str | None, chunk_points: int
) -> tuple[tuple[np.ndarray, np.ndarray, None], float]:
    """The points' principal axis as a path (one streamed pass: moments and convex hulls), and
    the half width covering every point across it (metres)."""
    origin: np.ndarray | None = None
    count = 0
    sums = np.zeros(5)
    hulls: list[np.ndarray] = []
    for path in files:
        for chunk in iter_chunks(path, crs, chunk_points):
            xy = chunk.xyz[:, :2]
            if origin is None:
                origin = xy[0].copy()
            d = xy - origin
            count += len(d)
            x, y = d[:, 0], d[:, 1]
            sums += [x.sum(), y.sum(), x @ x, x @ y, y @ y]
            hulls.append(_hull(d))
    if origin is None or count == 0:
        raise SurveyError("holds no points", path=files[0])
    mean = sums[:2] / count
    cov = np.array([[sums[2], sums[3]], [sums[3], sums[4]]]) / count - np.outer(mean, mean)
    _, vecs = np.linalg.eigh(cov)
    axis = vecs[:, 1]
    if axis[np.argmax(np.abs(axis))] < 0:
        axis = -axis  # a deterministic direction
    pts = np.vstack(hulls) - mean
    along = pts @ axis
    across = pts @ np.array([-axis[1], axis[0]])
    lo = float(along.min())
    hi = max(float(along.max()), lo + 0.1)
    base = origin + mean
    xy = np.array(
        [base + (lo - 1.0) * axis, base + lo * axis, base + hi * axis, base + (hi + 1.0) * axis]
    )
    s = np.array([-1.0, 0.0, hi - lo, hi - lo + 1.0])
    return (xy, s, None), float(np.abs(across).max()) + 1.0


def _hull(d: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of 2D points (the extreme points when they are collinear)."""
    if len(d) < 4:
        return d
    try:
        return d[ConvexHull(d).vertices]
    except QhullError:
        return d[[d[:, 0].argmin(), d[:, 0].argmax(), d[:, 1].argmin(), d[:, 1].argmax()]]


def _sub_path(xy: np.ndarray, s: np.ndarray, a: float, b: float) -> LineString:
    """The 2D path between positions ``a`` < ``b`` (metres), vertices kept as they are."""
    inner = (s > a) & (s < b)
    pa = [np.interp(a, s, xy[:, 0]), np.interp(a, s, xy[:, 1])]
    pb = [np.interp(b, s, xy[:, 0]), np.interp(b, s, xy[:, 1])]
    return LineString(np.vstack([pa, xy[inner], pb]))


def _time_range(
    traj: Trajectory, s: np.ndarray, u: np.ndarray, a: float, b: float
) -> tuple[float, float]:
    """GPS times (s) of the trajectory poses from ``a - margin`` to ``b + margin`` metres."""
    ua = float(np.interp(a, s, u)) - TRAJECTORY_MARGIN_M
    ub = float(np.interp(b, s, u)) + TRAJECTORY_MARGIN_M
    pose_u = np.r_[0.0, np.cumsum(np.hypot(*np.diff(traj.xyz[:, :2], axis=0).T))]
    i0 = int(np.searchsorted(pose_u, ua, side="left"))
    i1 = int(np.searchsorted(pose_u, ub, side="right")) - 1
    i0, i1 = min(max(i0, 0), len(pose_u) - 1), min(max(i1, 0), len(pose_u) - 1)
    return float(traj.gps_time[i0]), float(traj.gps_time[max(i0, i1)])


def _header_box(path: Path, crs: str | None) -> Polygon:
    b = read_info(path, crs).bounds
    return shapely.box(b[0], b[1], b[3], b[4])


# reading


def read_block(
    files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    block: Block,
    *,
    crs: str | None = None,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
) -> PointChunk:
    """The points of ``files`` inside ``block``'s read region (metres in the survey CRS).

    Chunks are streamed (:func:`pipeline.survey.iter_chunks`) and only the block's points are
    kept, so memory follows the block, not the files; files whose header bounds miss the block
    are skipped unread. Each call reads the files again: see :func:`split_into_blocks`.

    >>> block = plan_blocks(None, Trajectory(np.array([0.0, 1.0]), np.array([[0.0, 0, 0],
    ...     [50.0, 0, 0]])))[0]
    >>> len(read_block([], block))
    0
    """
    minx, miny, maxx, maxy = block.bounds
    shapely.prepare(block.polygon)
    parts: list[PointChunk] = []
    for path in survey_files(_as_list(files)):
        b = read_info(path, crs).bounds
        if b[0] > maxx or b[3] < minx or b[1] > maxy or b[4] < miny:
            continue
        for chunk in iter_chunks(path, crs, chunk_points):
            idx = _inside(block, chunk.xyz[:, 0], chunk.xyz[:, 1])
            if idx.size:
                parts.append(_take(chunk, idx))
    if not parts:
        return PointChunk(np.empty((0, 3)))
    return parts[0] if len(parts) == 1 else PointChunk.concatenate(parts)


def _inside(block: Block, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points (x, y) in the block's read region (its boundary included)."""
    minx, miny, maxx, maxy = block.bounds
    idx = np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
    if idx.size:
        idx = idx[shapely.intersects_xy(block.polygon, x[idx], y[idx])]
    return idx


def _take(chunk: PointChunk, idx: np.ndarray) -> PointChunk:
    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[idx]

    return PointChunk(
        chunk.xyz[idx],
        pick(chunk.intensity),
        pick(chunk.gps_time),
        pick(chunk.scan_angle_deg),
        pick(chunk.rgb),
    )


class CellCounts:
    """Points per 1 m x 1 m cell of a whole survey, gathered chunk by chunk.

    Memory follows the occupied cells (16 bytes each: a 10 km corridor 80 m wide is 13 MB), not
    the points. :meth:`ground_cell_m` gives the ground cell a single build would derive from all
    points (:func:`pipeline.ground.derive_cell_m`), so every block uses the same one.

    >>> counts = CellCounts()
    >>> counts.add(np.array([0.5, 0.6, 1.5]), np.array([0.5, 0.5, 0.5]))
    >>> counts.cells, counts.median()
    (2, 1.5)
    >>> CellCounts().ground_cell_m()
    0.5
    """

    def __init__(self) -> None:
        self.ids = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    @property
    def cells(self) -> int:
        return int(self.ids.size)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Count points (x, y) metres."""
        if np.size(x) == 0:
            return
        ix = np.floor(np.asarray(x)).astype(np.int64)
        iy = np.floor(np.asarray(y)).astype(np.int64)
        new, n = np.unique((ix << 32) | (iy & 0xFFFFFFFF), return_counts=True)
        ids, inverse = np.unique(np.r_[self.ids, new], return_inverse=True)
        self.counts = np.bincount(inverse, weights=np.r_[self.counts, n]).astype(np.int64)
        self.ids = ids

    def median(self) -> float:
        """Median points per occupied cell (0 when empty)."""
        return float(np.median(self.counts)) if self.counts.size else 0.0

    def ground_cell_m(self, points_per_cell: float = 10.0) -> float:
        """Ground cell size (metres) holding about ``points_per_cell`` points at the median
        density, clamped to 0.15-1.0 m, as :func:`pipeline.ground.derive_cell_m` derives it."""
        if not self.counts.size:
            return 0.5
        density = self.median()
        return float(np.clip(np.sqrt(points_per_cell / max(density, 1e-9)), 0.15, 1.0))


def split_into_blocks(
    files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    blocks: Sequence[Block],
    out_dir: str | os.PathLike[str],
    *,
    crs: str | None = None,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
    max_open: int = 16,
    compress: bool = True,
    on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict[int, list[Path]]:
    """Stream the survey once and write each block's points to its own LAZ files in ``out_dir``
    (LAS without ``compress``: four times the disk, written and read several times faster).

    Returns the files of each block index that holds points (``block-00003-0.laz`` holds block
    3's points of the first survey file). The files keep the source's point format, scales,
    offsets and CRS records, so :func:`read_block` (or :func:`pipeline.survey.read_points`) reads
    them cheaply. At most ``max_open`` writers are open at once (a block's file is reopened to
    append); every file is written atomically. ``on_chunk(x, y)`` is called with the coordinates
    (metres) of every chunk read, to gather survey-wide figures in the same pass (see
    :class:`CellCounts`).

    >>> blocks = plan_blocks(None, Trajectory(np.array([0.0, 1.0]), np.array([[0.0, 0, 0],
    ...     [50.0, 0, 0]])))
    >>> split_into_blocks([], blocks, tempfile.mkdtemp())
    {}
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[int, list[Path]] = {}
    for b in blocks:
        shapely.prepare(b.polygon)
    for k, path in enumerate(survey_files(_as_list(files))):
        info = read_info(path, crs)
        hb = info.bounds
        candidates = [
            b
            for b in blocks
            if not (
                b.bounds[0] > hb[3]
                or b.bounds[2] < hb[0]
                or b.bounds[1] > hb[4]
                or b.bounds[3] < hb[1]
            )
        ]
        with contextlib.ExitStack() as stack:
            temp: dict[int, Path] = {}
            writers: OrderedDict[int, Any] = OrderedDict()
            try:
                with laspy.open(path) as reader:
                    header = reader.header
                    read = 0
                    try:
                        for record in reader.chunk_iterator(chunk_points):
                            if len(record) == 0:
                                break
                            x = np.asarray(record.x, dtype=np.float64) * info.xy_factor
                            y = np.asarray(record.y, dtype=np.float64) * info.xy_factor
                            read += len(record)
                            if on_chunk is not None:
                                on_chunk(x, y)
                            for b in candidates:
                                idx = _inside(b, x, y)
                                if idx.size == 0:
                                    continue
                                if b.index not in temp:
                                    suffix = ".laz" if compress else ".las"
                                    target = out_dir / f"block-{b.index:05d}-{k}{suffix}"
                                    temp[b.index] = stack.enter_context(atomic_path(target))
                                    written.setdefault(b.index, []).append(target)
                                writer = _writer(writers, temp, b.index, header, max_open, compress)
                                _write(writer, record[idx])
                    except _READ_ERRORS as exc:
                        raise SurveyError(
                            f"corrupt or truncated point data after {read} points ({exc})",
                            path=path,
                        ) from None
            finally:
                for w in writers.values():
                    w.close()
    return written


def _writer(
    writers: OrderedDict[int, Any],
    temp: dict[int, Path],
    index: int,
    header: laspy.LasHeader,
    max_open: int,
    compress: bool,
) -> Any:
    """The open writer of block ``index``, opening (or reopening to append) it in LRU order."""
    if index in writers:
        writers.move_to_end(index)
        return writers[index]
    while len(writers) >= max(1, max_open):
        _, oldest = writers.popitem(last=False)
        oldest.close()
    path = temp[index]
    if path.exists():
        writer = laspy.open(path, mode="a")
    else:
        writer = laspy.open(path, mode="w", header=copy.deepcopy(header), do_compress=compress)
    writers[index] = writer
    return writer


def _write(writer: Any, record: laspy.ScaleAwarePointRecord) -> None:
    if isinstance(writer, laspy.LasWriter):
        writer.write_points(record)
    else:
        writer.append_points(record)


# extraction


def extract_block(
    points: PointChunk,
    block: Block,
    *,
    crs: str,
    survey_id: str,
    trajectory: Trajectory | None = None,
    ortho: Ortho | None = None,
    options: ExtractOptions | None = None,
) -> ExtractionResult:
    """Extract one block's map from its ``points`` (metres in ``crs``) with
    :func:`pipeline.extract.extract_points`, the trajectory clipped to the block.

    Returns the whole :class:`~pipeline.extract.ExtractionResult` (model, warnings, parameters,
    timings); feature IDs derive from ``survey_id`` as in a single build.

    >>> block = plan_blocks(None, Trajectory(np.array([0.0, 1.0]), np.array([[0.0, 0, 0],
    ...     [50.0, 0, 0]])))[0]
    >>> r = extract_block(PointChunk(np.zeros((10, 3))), block, crs="EPSG:4549", survey_id="s")
    >>> r.model.is_empty, r.warnings
    (True, ['only 10 points: too few to hold a road; the map is empty'])
    """
    return extract_points(
        points,
        crs=crs,
        survey_id=survey_id,
        trajectory=_clip_trajectory(trajectory, block),
        ortho=ortho,
        options=options,
    )


def _clip_trajectory(traj: Trajectory | None, block: Block) -> Trajectory | None:
    if traj is None:
        return None
    if block.gps_time_range is not None:
        t0, t1 = block.gps_time_range
        keep = (traj.gps_time >= t0) & (traj.gps_time <= t1)
    else:  # a block planned without the trajectory: the poses inside its (widened) region
        region = block.polygon.buffer(TRAJECTORY_MARGIN_M)
        keep = shapely.intersects_xy(region, traj.xyz[:, 0], traj.xyz[:, 1])
    if keep.sum() < 2:
        return None

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    return Trajectory(
        traj.gps_time[keep],
        traj.xyz[keep],
        pick(traj.roll_deg),
        pick(traj.pitch_deg),
        pick(traj.heading_deg),
    )


# stitching


@dataclass(slots=True, eq=False)
class _Piece:
    """A line feature of one block cut to the block's core: ``coords`` (n, 3), per-vertex
    ``widths`` (lanes), and the cut positions its ends lie on (None: the feature's own end)."""

    pos: int  # position of its block in the stitch input
    feature: Feature
    coords: np.ndarray
    widths: np.ndarray | None
    head_cut: float | None
    tail_cut: float | None
    whole: bool  # the feature lies in the core entirely

    @property
    def length(self) -> float:
        return float(np.hypot(*np.diff(self.coords[:, :2], axis=0).T).sum())


def stitch(
    blocks_and_models: Sequence[tuple[Block, MapModel]],
    *,
    lane_options: LaneOptions | None = None,
) -> MapModel:
    """One map from the maps of the blocks of one plan (metres in their common CRS).

    Point-like features (poles, signs, arrows, stop lines, crosswalks, junctions) are kept by the
    block owning their anchor point. Lines (lane boundaries, road edges, lane centrelines) are cut
    to each block's core and the pieces joined end to end across each cut when they continue each
    other: ends within :data:`JOIN_M`, the same kind (marking and colour, edge kind, lane
    boundaries), directions within 30 degrees. Joined lines get IDs from their new geometry
    (:func:`pipeline.model.feature_id`); references between features (lane boundaries, lane
    graph, a sign's pole) are carried over to the stitched features. Lanes through junctions (no
    boundaries, up to ``lane_options.max_junction_m`` long: longer than a block's overlap) are
    made again from the stitched lanes with :func:`pipeline.lanes.junction_lanes`.

    >>> stitch([])
    Traceback (most recent call last):
    ...
    ValueError: nothing to stitch
    """
    if not blocks_and_models:
        raise ValueError("nothing to stitch")
    first = blocks_and_models[0][1]

    # point-like features: the block owning the anchor keeps them
    kept: list[Feature] = []
    dropped: list[dict[str, Feature]] = []
    for block, model in blocks_and_models:
        lost: dict[str, Feature] = {}
        feats = [f for name in model.counts() if name not in CUT_LAYERS for f in model.layer(name)]
        if feats:
            anchors = np.array([anchor_point(f.geometry)[:2] for f in feats])
            own = block.in_core(block.locate(anchors[:, 0], anchors[:, 1]))
            for f, keep in zip(feats, own, strict=True):
                if keep:
                    kept.append(f)
                else:
                    lost[f.id] = f
        dropped.append(lost)
    kept = _unique(kept)
    twins = _Twins(kept)
    new_id: list[dict[str, str]] = [{} for _ in blocks_and_models]
    refs = _ref_resolver(new_id, {f.id for f in kept}, dropped, twins)

    # lines: cut, join, renamed (lanes after the boundaries they refer to)
    lines: list[tuple[Feature, list[_Piece]]] = []
    taken: set[str] = {f.id for f in kept}
    for layer in CUT_LAYERS:
        pieces = [
            p
            for pos, (block, model) in enumerate(blocks_and_models)
            for p in _cut(block, pos, [f for f in model.layer(layer) if not _in_junction(f)])
        ]
        compatible = _lane_rule(refs) if layer == "lanes" else _same_kind
        for chain in _join(pieces, compatible):
            cut = len(chain) > 1 or not chain[0].whole
            if cut and sum(p.length for p in chain) < STUB_M:
                continue  # a sliver at a cut: the line ends there in the other block
            feature = _chain_feature(chain)
            if feature.id not in taken:  # the same line twice (one 0.1 m cell): keep the first
                taken.add(feature.id)
                lines.append((feature, chain))
            for p in sorted(chain, key=lambda p: p.length):
                new_id[p.pos][p.feature.id] = feature.id

    # references
    pos_of = {id(f): pos for pos, (_, m) in enumerate(blocks_and_models) for f in m.features()}
    out: list[Feature] = []
    for f in kept:
        out.append(_resolve_refs(f, [(pos_of[id(f)], f, 1.0)], refs))
    for feature, chain in lines:
        sources = sorted(((p.pos, p.feature, p.length) for p in chain), key=lambda x: -x[2])
        out.append(_resolve_refs(feature, sources, refs))
    out += _junction_lanes(out, [b for b, _ in blocks_and_models], lane_options or LaneOptions())
    out = _symmetric_lane_graph(out)
    return MapModel.from_features(first.crs, out, height_datum=first.height_datum, name=first.name)


def _in_junction(f: Feature) -> bool:
    """A lane through a junction: it has no boundaries (:func:`pipeline.lanes.junction_lanes`)."""
    return isinstance(f, Lane) and f.left_boundary is None and f.right_boundary is None


def _path_frame(blocks: Sequence[Block]) -> RoadFrame | None:
    """The road frame along the whole path of a plan, from the core parts of its blocks."""
    parts = []
    for b in sorted(blocks, key=lambda b: b.core_s0):
        xy = shapely.get_coordinates(b.path)
        s = b.s0 + np.r_[0.0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
        keep = b.in_core(s)
        keep[[0, -1]] |= [b.first, b.last]
        parts.append(xy[keep])
    xy = np.vstack(parts) if parts else np.empty((0, 2))
    try:
        return RoadFrame.from_xy(xy, smooth_m=0.0)
    except ValueError:
        return None


def _junction_lanes(
    features: list[Feature], blocks: Sequence[Block], options: LaneOptions
) -> list[Lane]:
    """Lanes through junctions between the stitched lanes (:func:`pipeline.lanes.junction_lanes`
    in the frame of the whole path), linked to the lanes they join, with their neighbours."""
    lanes = [f for f in features if isinstance(f, Lane)]
    frame = _path_frame(blocks) if lanes else None
    if frame is None:
        return []
    pieces = []
    for f in lanes:
        c = shapely.get_coordinates(f.geometry, include_z=True)
        s, t = frame.project(c[:, 0], c[:, 1])
        w = np.asarray(f.widths_m, dtype=np.float64)
        backward = s[-1] < s[0]
        order = np.argsort(s, kind="stable")
        pieces.append(LanePiece("", "", s[order], t[order], c[order, 2], w[order], backward))
    made = junction_lanes(pieces, options)
    head = {(float(p.s[0]), float(p.t[0])): k for k, p in enumerate(pieces)}
    tail = {(float(p.s[-1]), float(p.t[-1])): k for k, p in enumerate(pieces)}
    survey_id = lanes[0].provenance.survey_id
    out: list[Lane] = []
    info = []
    for j in made:
        a = tail.get((float(j.s[0]), float(j.t[0])))
        b = head.get((float(j.s[-1]), float(j.t[-1])))
        if a is None or b is None or pieces[a].backward != pieces[b].backward:
            continue
        backward = pieces[a].backward
        x, y = frame.to_xy(j.s, j.t)
        coords, widths = np.column_stack([x, y, j.z]), j.width
        if backward:
            coords, widths = coords[::-1], widths[::-1]
        first, last = (lanes[b].id, lanes[a].id) if backward else (lanes[a].id, lanes[b].id)
        lane = Lane.create(
            LineString(coords),
            tuple(float(w) for w in widths),
            survey_id=survey_id,
            method="lanes.lanes",
            confidence=0.9,
            predecessors=(first,),
            successors=(last,),
        )
        out.append(lane)
        info.append((j, backward))
    # neighbours: junction lanes side by side, about a lane width apart (as lanes.lane_graph)
    pairs = []
    for i, (p, bp) in enumerate(info):
        for k, (q, bq) in enumerate(info):
            if i == k or bp != bq:
                continue
            overlap = min(p.s[-1], q.s[-1]) - max(p.s[0], q.s[0])
            gap = float(np.median(q.t) - np.median(p.t))
            w = float(np.median(p.width))
            if overlap > 1.0 and 0.5 * w < gap < 1.5 * w:
                pairs.append((-overlap, i, k))  # q is on p's +t side
    plus: dict[int, int] = {}
    minus: dict[int, int] = {}
    for _, i, k in sorted(pairs):
        if i not in plus and k not in minus:
            plus[i], minus[k] = k, i
    for i, lane in enumerate(out):
        left, right = plus.get(i), minus.get(i)
        if info[i][1]:  # travelling against s: +t is on the right
            left, right = right, left
        out[i] = lane.replace(
            left_neighbour=out[left].id if left is not None else None,
            right_neighbour=out[right].id if right is not None else None,
        )
    return out


def _unique(features: Iterable[Feature]) -> list[Feature]:
    seen: set[str] = set()
    out = []
    for f in features:
        if f.id not in seen:
            seen.add(f.id)
            out.append(f)
    return out


class _Twins:
    """Kept point-like features by layer, to find the twin of one another block dropped."""

    def __init__(self, kept: list[Feature]):
        self.by_layer: dict[str, tuple[cKDTree, list[Feature]]] = {}
        groups: dict[str, list[Feature]] = {}
        for f in kept:
            groups.setdefault(f.layer, []).append(f)
        for layer, feats in groups.items():
            xy = np.array([anchor_point(f.geometry)[:2] for f in feats])
            self.by_layer[layer] = (cKDTree(xy), feats)

    def of(self, f: Feature) -> str | None:
        entry = self.by_layer.get(f.layer)
        if entry is None:
            return None
        d, i = entry[0].query(anchor_point(f.geometry)[:2])
        return entry[1][int(i)].id if d <= _ANCHOR_MATCH_M else None


def _ref_resolver(
    new_id: list[dict[str, str]],
    kept: set[str],
    dropped: list[dict[str, Feature]],
    twins: _Twins,
) -> Any:
    """``resolve(pos, old_id)``: the stitched ID standing for a feature of block ``pos``: a
    line's stitched line, a kept point-like feature itself, a dropped one's twin, else None."""

    def resolve(pos: int, old: str) -> str | None:
        if old in new_id[pos]:
            return new_id[pos][old]
        if old in dropped[pos]:
            return twins.of(dropped[pos][old])
        return old if old in kept else None

    return resolve


def _resolve_refs(
    feature: Feature, sources: list[tuple[int, Feature, float]], resolve: Any
) -> Feature:
    """``feature`` with every reference field resolved from its source features (longest first):
    a single reference from the first source that resolves, a tuple as the ordered union."""
    changes: dict[str, Any] = {}
    for fld in dataclasses.fields(feature):
        if fld.name in ("id", "geometry", "provenance"):
            continue
        values = [(pos, getattr(src, fld.name)) for pos, src, _ in sources]
        if all(v is None or v == () for _, v in values):
            continue
        if all(_is_ref(v) for _, v in values if v is not None):
            found = None
            for pos, v in values:
                if v is not None and (r := resolve(pos, v)) is not None and r != feature.id:
                    found = r
                    break
            changes[fld.name] = found
        elif all(isinstance(v, tuple) and all(_is_ref(x) for x in v) for _, v in values):
            union: list[str] = []
            for pos, v in values:
                for x in v:
                    r = resolve(pos, x)
                    if r is not None and r != feature.id and r not in union:
                        union.append(r)
            changes[fld.name] = tuple(union)
    return feature.replace(**changes) if changes else feature


def _is_ref(value: Any) -> bool:
    """True for a feature ID (``prefix-`` and 16 hex digits), not for an enum value or name."""
    if not isinstance(value, str) or isinstance(value, Enum):
        return False
    prefix, _, digest = value.partition("-")
    return bool(prefix) and len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)


def _symmetric_lane_graph(features: list[Feature]) -> list[Feature]:
    """Lanes whose successors and predecessors mirror each other (the union of both)."""
    lanes = {f.id: f for f in features if isinstance(f, Lane)}
    succ: dict[str, list[str]] = {k: list(f.successors) for k, f in lanes.items()}
    pred: dict[str, list[str]] = {k: list(f.predecessors) for k, f in lanes.items()}
    for k, f in lanes.items():
        for s in f.successors:
            if s in lanes and k not in pred[s]:
                pred[s].append(k)
        for p in f.predecessors:
            if p in lanes and k not in succ[p]:
                succ[p].append(k)
    left, right = _mutual_neighbours(lanes)
    out = []
    for f in features:
        if isinstance(f, Lane):
            s = tuple(x for x in succ[f.id] if x in lanes)
            p = tuple(x for x in pred[f.id] if x in lanes)
            changes = {
                k: v
                for k, v, old in (
                    ("successors", s, f.successors),
                    ("predecessors", p, f.predecessors),
                    ("left_neighbour", left[f.id], f.left_neighbour),
                    ("right_neighbour", right[f.id], f.right_neighbour),
                )
                if v != old
            }
            if changes:
                f = f.replace(**changes)
        out.append(f)
    return out


def _mutual_neighbours(
    lanes: dict[str, Lane],
) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """Left and right neighbours made mutual: A right of B iff B left of A.

    A one-sided link fills the empty side; a link the other lane contradicts (it names a
    different neighbour) is dropped on both sides, since two stitched blocks disagree there.
    """
    left = {k: f.left_neighbour if f.left_neighbour in lanes else None for k, f in lanes.items()}
    right = {k: f.right_neighbour if f.right_neighbour in lanes else None for k, f in lanes.items()}
    for k in sorted(lanes):
        r = right[k]
        if r is not None:
            if left[r] is None:
                left[r] = k
            elif left[r] != k:
                right[k] = None
        lt = left[k]
        if lt is not None:
            if right[lt] is None:
                right[lt] = k
            elif right[lt] != k:
                left[k] = None
    # a second pass removes links whose partner was dropped after they were filled
    for k in sorted(lanes):
        if right[k] is not None and left[right[k]] != k:
            right[k] = None
        if left[k] is not None and right[left[k]] != k:
            left[k] = None
    return left, right


def _cut(block: Block, pos: int, features: Sequence[Feature]) -> list[_Piece]:
    """The pieces of line ``features`` inside ``block``'s core, cut exactly where the core's
    boundaries cross them (found by bisection on the path position)."""
    if not features:
        return []
    coords = [shapely.get_coordinates(f.geometry, include_z=True) for f in features]
    sizes = np.array([len(c) for c in coords])
    allc = np.vstack(coords)
    s_all = block.locate(allc[:, 0], allc[:, 1])
    ins_all = block.in_core(s_all)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    # every segment whose ends lie on either side of a core boundary
    seg = np.flatnonzero(ins_all[:-1] != ins_all[1:])
    seg = seg[~np.isin(seg + 1, starts)]  # not across two features
    frac = _bisect(block, allc[seg, :2], allc[seg + 1, :2], ins_all[seg])
    cross = dict(zip(seg.tolist(), frac.tolist(), strict=True))
    pieces: list[_Piece] = []
    for f, c, a in zip(features, coords, starts, strict=True):
        ins = ins_all[a : a + len(c)]
        if not ins.any():
            continue
        widths = np.asarray(f.widths_m, dtype=np.float64) if isinstance(f, Lane) else None
        if ins.all():
            pieces.append(_Piece(pos, f, c, widths, None, None, True))
            continue
        s = s_all[a : a + len(c)]
        run: list[np.ndarray] = []
        wrun: list[float] = []
        head: float | None = None
        for i in range(len(c)):
            if ins[i]:
                run.append(c[i])
                if widths is not None:
                    wrun.append(float(widths[i]))
            if i + 1 < len(c) and ins[i] != ins[i + 1]:
                t = cross[a + i]
                p = c[i] + t * (c[i + 1] - c[i])
                w = None if widths is None else float(widths[i] + t * (widths[i + 1] - widths[i]))
                outside = s[i + 1] if ins[i] else s[i]
                cut = block.core_s0 if outside < block.core_s0 else block.core_s1
                if ins[i]:  # leaving the core
                    run.append(p)
                    if w is not None:
                        wrun.append(w)
                    _add_piece(pieces, pos, f, run, wrun, head, cut)
                    run, wrun, head = [], [], None
                else:  # entering it
                    run, wrun, head = [p], ([] if w is None else [w]), cut
        if run:
            _add_piece(pieces, pos, f, run, wrun, head, None)
    return pieces


def _add_piece(
    pieces: list[_Piece],
    pos: int,
    f: Feature,
    run: list[np.ndarray],
    wrun: list[float],
    head: float | None,
    tail: float | None,
) -> None:
    c = np.array(run)
    w = np.array(wrun) if wrun else None
    keep = np.r_[True, np.hypot(*np.diff(c[:, :2], axis=0).T) > 1e-9]
    c = c[keep]
    if w is not None:
        w = w[keep]
    if len(c) >= 2:
        pieces.append(_Piece(pos, f, c, w, head, tail, False))


def _bisect(block: Block, p0: np.ndarray, p1: np.ndarray, inside0: np.ndarray) -> np.ndarray:
    """Fractions along segments p0->p1 where the block's core boundary crosses them. Both blocks
    beside a boundary take the same steps (their predicates are complements), so they find the
    same point."""
    lo = np.zeros(len(p0))
    hi = np.ones(len(p0))
    if len(p0) == 0:
        return lo
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        q = p0 + mid[:, None] * (p1 - p0)
        same = block.in_core(block.locate(q[:, 0], q[:, 1])) == inside0
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def _same_kind(a: _Piece, b: _Piece) -> bool:
    """Pieces of one kind: equal enum attributes, a colour ``unknown`` matching any colour."""
    fa, fb = a.feature, b.feature
    for fld in dataclasses.fields(fa):
        va, vb = getattr(fa, fld.name), getattr(fb, fld.name)
        if isinstance(va, Enum) and va != vb and "unknown" not in (va.value, vb.value):
            return False
    return True


def _lane_rule(resolve: Any) -> Any:
    """Lane pieces continue each other with the same boundaries (where both are known)."""

    def compatible(a: _Piece, b: _Piece) -> bool:
        fa, fb = a.feature, b.feature
        if fa.direction != fb.direction:  # type: ignore[attr-defined]
            return False
        for name in ("left_boundary", "right_boundary"):
            ra, rb = getattr(fa, name), getattr(fb, name)
            ra = resolve(a.pos, ra) if ra else None
            rb = resolve(b.pos, rb) if rb else None
            if ra is not None and rb is not None and ra != rb:
                return False
        return True

    return compatible


def _join(pieces: list[_Piece], compatible: Any) -> list[list[_Piece]]:
    """Chains of pieces: the tail of one joined to the head of a piece of another block cut at
    the same position, nearest pairs first. Unjoined pieces are chains of one."""
    tails: dict[float, list[int]] = {}
    heads: dict[float, list[int]] = {}
    for i, p in enumerate(pieces):
        if p.tail_cut is not None:
            tails.setdefault(p.tail_cut, []).append(i)
        if p.head_cut is not None:
            heads.setdefault(p.head_cut, []).append(i)
    pairs = []
    for cut, ti in tails.items():
        for i in ti:
            a = pieces[i]
            for j in heads.get(cut, ()):
                b = pieces[j]
                if a.pos == b.pos or i == j:
                    continue
                d = float(np.hypot(*(a.coords[-1, :2] - b.coords[0, :2])))
                if d > JOIN_M or not compatible(a, b):
                    continue
                if float(_direction(a.coords, True) @ _direction(b.coords, False)) < _JOIN_COS:
                    continue
                pairs.append((d, i, j))
    nxt: dict[int, int] = {}
    prv: dict[int, int] = {}
    for _, i, j in sorted(pairs):
        if i not in nxt and j not in prv:
            nxt[i], prv[j] = j, i
    chains = []
    seen: set[int] = set()
    for i in range(len(pieces)):
        if i in prv or i in seen:
            continue
        chain = []
        while i is not None and i not in seen:
            seen.add(i)
            chain.append(pieces[i])
            i = nxt.get(i)
        chains.append(chain)
    for i in range(len(pieces)):  # a closed ring of pieces (never along a path): break it
        if i not in seen:
            chain = []
            while i is not None and i not in seen:
                seen.add(i)
                chain.append(pieces[i])
                i = nxt.get(i)
            chains.append(chain)
    return chains


def _direction(coords: np.ndarray, at_tail: bool, reach_m: float = 1.0) -> np.ndarray:
    """Unit 2D direction of travel at a line's tail (or head), over about ``reach_m``."""
    xy = coords[:, :2] if at_tail else coords[::-1, :2]
    end = xy[-1]
    for k in range(len(xy) - 2, -1, -1):
        if np.hypot(*(end - xy[k])) >= reach_m or k == 0:
            v = end - xy[k]
            break
    v = v if at_tail else -v
    n = float(np.hypot(*v))
    return v / n if n > 0 else np.zeros(2)


def _chain_feature(chain: list[_Piece]) -> Feature:
    """The feature of a chain of pieces: joined geometry (a joint at the midpoint of the two
    ends), merged attributes and an ID from the new geometry."""
    if len(chain) == 1 and chain[0].whole:
        return chain[0].feature
    coords = chain[0].coords
    widths = chain[0].widths
    for p in chain[1:]:
        joint = 0.5 * (coords[-1] + p.coords[0])
        coords = np.vstack([coords[:-1], joint, p.coords[1:]])
        if widths is not None and p.widths is not None:
            wj = 0.5 * (widths[-1] + p.widths[0])
            widths = np.r_[widths[:-1], wj, p.widths[1:]]
    base = max(chain, key=lambda p: p.length).feature
    geom = LineString(coords)
    changes = _merged_attributes(chain)
    if widths is not None:
        changes["widths_m"] = tuple(round(float(w), 3) for w in widths)
    fid = feature_id(base.id_prefix, geom, base.provenance.survey_id)
    return base.replace(geometry=geom, id=fid, **changes)


def _merged_attributes(chain: list[_Piece]) -> dict[str, Any]:
    """Attributes of joined pieces: numbers length-weighted (None left out), other values from
    the greatest length (a known value before ``unknown``); references are resolved later."""
    weights = np.array([max(p.length, 1e-6) for p in chain])
    out: dict[str, Any] = {}
    for fld in dataclasses.fields(chain[0].feature):
        if fld.name in ("id", "geometry", "provenance", "widths_m"):
            continue
        values = [getattr(p.feature, fld.name) for p in chain]
        if all(v == values[0] for v in values):
            continue
        numeric = [
            (v, w)
            for v, w in zip(values, weights, strict=True)
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if numeric and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            vs, ws = np.array([v for v, _ in numeric], float), np.array([w for _, w in numeric])
            out[fld.name] = round(float(vs @ ws / ws.sum()), 3)
            continue
        score: dict[Any, float] = {}
        for v, w in zip(values, weights, strict=True):
            if _is_ref(v) or isinstance(v, tuple):
                break  # references: resolved from the pieces later
            known = not (isinstance(v, Enum) and v.value == "unknown") and v is not None
            score[v] = score.get(v, 0.0) + w + (1e12 if known else 0.0)
        else:
            out[fld.name] = max(score, key=lambda v: score[v])
    return out


# the whole chain


def extract_map_blocked(
    survey_paths: Sequence[str | os.PathLike[str]],
    *,
    crs: str | None = None,
    trajectory: str | os.PathLike[str] | Trajectory | None = None,
    ortho: Ortho | None = None,
    options: ExtractOptions | None = None,
    block_length_m: float = DEFAULT_BLOCK_LENGTH_M,
    overlap_m: float = DEFAULT_OVERLAP_M,
    half_width_m: float = DEFAULT_HALF_WIDTH_M,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
    work_dir: str | os.PathLike[str] | None = None,
) -> ExtractionResult:
    """:func:`pipeline.extract.extract_map` block by block: plan, split the survey into block
    files (one streamed pass into uncompressed LAS files in a temporary folder under ``work_dir``,
    about 40 bytes per point), then read, extract and stitch the blocks one after the other.
    Memory follows the block size, not the survey. Every block uses the ground cell a single
    build would derive from all points (:class:`CellCounts`) unless ``options`` fix one.

    Returns the same :class:`~pipeline.extract.ExtractionResult`: warnings of every block merged
    (prefixed with the blocks they came from unless all had them), stage timings summed (plus
    ``plan``, ``split`` and ``stitch``), numeric parameters as the median over the blocks, and
    the blocks under ``parameters["blocks"]``.

    >>> extract_map_blocked([])
    Traceback (most recent call last):
    ...
    pipeline.errors.SurveyError: no survey files given
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    options = options or ExtractOptions()
    files = survey_files(survey_paths)
    if not files:
        raise SurveyError("no survey files given")
    info = read_info(files[0], crs=crs)
    traj = read_trajectory(trajectory) if isinstance(trajectory, str | os.PathLike) else trajectory
    blocks = plan_blocks(
        files,
        traj,
        block_length_m=block_length_m,
        overlap_m=overlap_m,
        half_width_m=half_width_m,
        crs=crs,
        chunk_points=chunk_points,
    )
    lineage = survey_lineage(files)
    model_crs = map_crs(info.crs)
    timings["plan"] = time.perf_counter() - clock
    results: list[ExtractionResult] = []
    with tempfile.TemporaryDirectory(prefix="hdmap-blocks-", dir=work_dir) as tmp:
        clock = time.perf_counter()
        counts = CellCounts()
        parts = split_into_blocks(
            files,
            blocks,
            tmp,
            crs=crs,
            chunk_points=chunk_points,
            compress=False,
            on_chunk=counts.add,
        )
        if options.ground.cell_m is None:  # one ground cell for the survey, as a single build
            cell = counts.ground_cell_m(options.ground.points_per_cell)
            options = dataclasses.replace(
                options, ground=dataclasses.replace(options.ground, cell_m=cell)
            )
        timings["split"] = time.perf_counter() - clock
        for block in blocks:
            clock = time.perf_counter()
            own = parts.get(block.index, [])
            points = read_block(own, block, crs=crs) if own else PointChunk(np.empty((0, 3)))
            timings["read"] = timings.get("read", 0.0) + time.perf_counter() - clock
            results.append(
                extract_block(
                    points,
                    block,
                    crs=model_crs,
                    survey_id=lineage,
                    trajectory=traj,
                    ortho=ortho,
                    options=options,
                )
            )
            del points
            for path in own:
                path.unlink()
    clock = time.perf_counter()
    model = stitch(
        [(b, r.model) for b, r in zip(blocks, results, strict=True)],
        lane_options=options.lanes,
    )
    model = model.replace(height_datum=height_datum(info.crs))
    timings["stitch"] = time.perf_counter() - clock
    for r in results:
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    params = _merged_parameters(blocks, results)
    return ExtractionResult(model, _merged_warnings(blocks, results), params, timings)


def _merged_warnings(blocks: Sequence[Block], results: Sequence[ExtractionResult]) -> list[str]:
    where: dict[str, list[int]] = {}
    for b, r in zip(blocks, results, strict=True):
        for w in r.warnings:
            where.setdefault(w, [])
            if b.index not in where[w]:
                where[w].append(b.index)
    out = []
    for w, idx in where.items():
        if len(idx) == len(blocks):
            out.append(w)
        else:
            label = "block" if len(idx) == 1 else "blocks"
            out.append(f"{label} {_ranges(idx)} of {len(blocks)}: {w}")
    return out


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``"0-2, 5, 7-8"``.

    >>> _ranges([0, 1, 2, 5, 7, 8]), _ranges([])
    ('0-2, 5, 7-8', '')
    """
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _merged_parameters(
    blocks: Sequence[Block], results: Sequence[ExtractionResult]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    per_block = []
    for b, r in zip(blocks, results, strict=True):
        per_block.append(
            {
                "index": b.index,
                "core_m": [round(b.core_s0, 3), round(b.core_s1, 3)],
                **{k: v for k, v in r.parameters.items() if k != "options"},
            }
        )
        if "options" in r.parameters:
            params.setdefault("options", r.parameters["options"])
    keys = {k for entry in per_block for k in entry if k not in ("index", "core_m")}
    for k in sorted(keys):
        values = [entry[k] for entry in per_block if k in entry]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            params[k] = round(float(np.median(values)), 3)
        else:
            params[k] = max(set(map(str, values)), key=[str(v) for v in values].count)
    params["blocks"] = {
        "count": len(blocks),
        "block_length_m": round(blocks[0].core_length_m, 3) if blocks else None,
        "overlap_m": blocks[0].overlap_m if blocks else None,
        "half_width_m": blocks[0].half_width_m if blocks else None,
        "along": "trajectory" if blocks and blocks[0].gps_time_range else "principal axis",
        "per_block": per_block,
    }
    return params
