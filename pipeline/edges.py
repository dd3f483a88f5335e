"""Road edges from survey points in a road frame: curbs, barriers and pavement edges.

Everything is worked on profiles in the (s, t) frame of :mod:`pipeline.roadframe` (metres; ``s``
along the trajectory, ``t`` across it, positive to the left). Points are binned into slices
``slice_m`` long and bins ``bin_m`` wide across; a bin's ground is its lowest point (the second
lowest when the lowest is an isolated low outlier). Three detectors look at each slice:

- **curb**: a height step of ``curb_min_m``-``curb_max_m`` between two flat surfaces, each a line
  fitted over ``window_m`` of bins on its side (residual RMS within the noise, gentle slope). The
  step height is the difference of the two fitted levels at the step, so cross-fall and noise
  do not bias it; the position is where the points split best into low and high ones (the
  face, or the edge of the top where the face is hidden). Profiles are also cut along ``s``
  (slices across the road) to find curbs across it, such as the ends of sidewalks at a junction.
- **barrier**: a vertical object ``barrier_min_m``-``barrier_max_m`` high above the ground beside
  it, at most ``barrier_max_width_m`` wide, with nothing tall standing in it, that continues along
  the road for ``barrier_min_length_m`` (poles, people and cars do not). Its face towards the
  road is the edge; a barrier whose top is seen wider than ``double_face_m`` (a median wall, two
  guard rails back to back) has a second face on its far side, and so has a free-standing solid
  wall with the ground seen again beyond it (a median whose top is out of sight), at
  ``median_width_m``.
- **pavement edge**: where neither stands, the end of the paved surface: a step of the median
  log intensity of the ground points, with a line fitted on each side (the fall-off with range
  is no step), kept where no curb lies between it and the trajectory and no barrier beyond it;
  the outermost on each side.

Hits of one kind are linked along the road across gaps up to ``link_gap_m`` (occlusions),
smoothed, and written as :class:`EdgeLine` (frame coordinates) and then as
:class:`~pipeline.model.RoadEdge` records (map coordinates), with the measured curb step height
and a confidence from the share of slices that saw the edge.

>>> t = np.tile(np.arange(-3.99, 4.0, 0.02), 200); s = np.repeat(np.arange(0.0, 20.0, 0.1), 400)
>>> z = np.where(t > 2.0, 0.15, 0.0)  # a 0.15 m curb at t = 2 m
>>> [(e.kind.value, round(e.height_m, 2), round(float(e.t.mean()), 2))
...  for e in find_road_edges(s, t, z)]
[('curb', 0.15, 2.0)]
>>> find_road_edges(np.empty(0), np.empty(0), np.empty(0))
[]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import minimum_filter1d
from shapely import LineString

from pipeline.model import RoadEdge, RoadEdgeKind
from pipeline.roadframe import RoadFrame

__all__ = [
    "EdgeHits",
    "EdgeLine",
    "EdgeOptions",
    "barrier_hits",
    "curb_hits",
    "derive_slice_m",
    "edges_along_line",
    "find_road_edges",
    "link_hits",
    "pavement_hits",
    "road_edge_features",
    "road_edges",
]


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    """Road-edge extraction parameters (metres unless named otherwise).

    ``slice_m``: length of a profile slice along the road; None derives it from the point
    density (:func:`derive_slice_m`). ``bin_m``: profile bin across the road. ``window_m``: the
    flat surface fitted on each side of a step, widened up to ``max_window_m`` where it holds
    fewer than ``min_window_bins`` occupied bins (far from the scanner).
    ``curb_min_m``/``curb_max_m``: curb step heights; ``flat_rms_m``: largest residual RMS of a
    flat side (raised to 2.5 times the survey's own noise when that is larger);
    ``max_slope``: steepest flat side. ``barrier_min_m``/``barrier_max_m``: barrier top above the
    ground beside it; ``barrier_max_width_m``: widest barrier; ``double_face_m``: a barrier seen
    at least this wide has a far face too; ``median_width_m``: the width given to a free-standing
    solid wall whose top is not seen (a median: its far face is an edge of the other
    carriageway); ``barrier_min_length_m``: shortest barrier.
    ``pave_slice_m``: slice length for the pavement edge (intensity and density need more
    points); ``pave_contrast``: smallest step of the median log intensity at a pavement edge;
    ``pave_min_length_m``: shortest pavement edge.
    ``curb_min_length_m``: shortest curb. ``link_gap_m``: longest gap bridged along an edge
    (an occlusion); ``link_offset_m``: lateral tolerance when linking slices (at least a tenth
    of the slice length); ``min_coverage``: share of its slices an edge must be seen in (and
    at least three).
    ``smooth_m``: Gaussian smoothing of an edge along the road; ``vertex_step_m``: vertex
    spacing of the output lines. ``max_offset_m``: points farther from the trajectory are
    ignored. ``transverse``: also look for curbs across the road.
    """

    slice_m: float | None = None
    bin_m: float = 0.05
    window_m: float = 1.0
    max_window_m: float = 3.0
    min_window_bins: int = 3
    curb_min_m: float = 0.06
    curb_max_m: float = 0.30
    flat_rms_m: float = 0.02
    max_slope: float = 0.12
    barrier_min_m: float = 0.3
    barrier_max_m: float = 1.5
    barrier_max_width_m: float = 1.0
    double_face_m: float = 0.2
    median_width_m: float = 0.6
    barrier_min_length_m: float = 6.0
    pave_slice_m: float = 2.0
    pave_contrast: float = 0.5
    pave_min_length_m: float = 10.0
    curb_min_length_m: float = 2.0
    link_gap_m: float = 10.0
    link_offset_m: float = 0.15
    min_coverage: float = 0.3
    smooth_m: float = 1.0
    vertex_step_m: float = 1.0
    max_offset_m: float = 40.0
    transverse: bool = True


@dataclass(frozen=True, slots=True)
class EdgeHits:
    """Edge positions found in single profiles, as parallel (n,) arrays (metres).

    ``along`` is the slice centre and ``across`` the edge position in the profile's direction;
    ``z`` the ground at the foot of the edge; ``height`` the curb step or barrier top above the
    ground; ``facing`` +1 when the road (the low side) lies towards larger ``across``, -1
    otherwise; ``far`` the far face of a barrier (NaN when it has none or it was not seen);
    ``wall`` 1 for a free-standing solid wall whose top was not seen (0 otherwise).
    """

    along: np.ndarray
    across: np.ndarray
    z: np.ndarray
    height: np.ndarray
    facing: np.ndarray
    far: np.ndarray = field(default_factory=lambda: np.empty(0))
    wall: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        if len(self.far) != len(self.along):
            object.__setattr__(self, "far", np.full(len(self.along), np.nan))
        if len(self.wall) != len(self.along):
            object.__setattr__(self, "wall", np.zeros(len(self.along)))

    def __len__(self) -> int:
        return len(self.along)

    def take(self, index: np.ndarray) -> EdgeHits:
        return EdgeHits(
            self.along[index],
            self.across[index],
            self.z[index],
            self.height[index],
            self.facing[index],
            self.far[index],
            self.wall[index],
        )

    @staticmethod
    def empty() -> EdgeHits:
        e = np.empty(0)
        return EdgeHits(e, e, e, e, e, e, e)


@dataclass(frozen=True, slots=True, eq=False)
class EdgeLine:
    """One road edge in the road frame: vertices ``s``, ``t``, ``z`` (metres), its kind, the curb
    step or barrier height (metres, None for a pavement edge) and a confidence in [0, 1]."""

    kind: RoadEdgeKind
    s: np.ndarray
    t: np.ndarray
    z: np.ndarray
    height_m: float | None
    confidence: float

    @property
    def length_m(self) -> float:
        return float(np.hypot(np.diff(self.s), np.diff(self.t)).sum())


def derive_slice_m(along: np.ndarray, across: np.ndarray) -> float:
    """A slice length (metres) for the point density: 0.5 m for mobile-mapping densities,
    longer for sparse (airborne) data so that a slice holds some 40 points per metre across,
    at most 3 m. Density is the median over occupied 1 m cells.

    >>> derive_slice_m(np.empty(0), np.empty(0))
    0.5
    >>> rng = np.random.default_rng(0)
    >>> derive_slice_m(*rng.uniform(0, 50, (2, 40_000)))  # 16 points per m2
    2.5
    """
    if len(along) == 0:
        return 0.5
    cells = np.floor(along).astype(np.int64) * 2_000_003 + np.floor(across).astype(np.int64)
    _, counts = np.unique(cells, return_counts=True)
    density = float(np.median(counts))
    return float(np.clip(np.ceil(40.0 / max(density, 1e-9) * 2) / 2, 0.5, 3.0))


# ----------------------------------------------------------------------------------------------
# profiles


def _finite(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays as float64, without the entries where any of them is NaN or infinite."""
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(a) for a in out])
    return tuple(a[ok] for a in out)


@dataclass(frozen=True, slots=True, eq=False)
class _Profiles:
    """Points in slices (rows, ``slice_m`` along) and bins (columns, ``bin_m`` across)."""

    a0: float
    c0: float
    slice_m: float
    bin_m: float
    across: np.ndarray  # (n,) per point
    z: np.ndarray
    row: np.ndarray
    col: np.ndarray
    order: np.ndarray  # point indices sorted by row, then column, then z
    row_start: np.ndarray  # (rows + 1,) offsets into order
    ground: np.ndarray  # (rows, cols) ground height per bin, NaN where empty
    zref: np.ndarray  # (rows,) a reference height per row (fits work relative to it)

    @property
    def shape(self) -> tuple[int, int]:
        return self.ground.shape  # type: ignore[return-value]

    def along_of(self, row: int) -> float:
        return self.a0 + (row + 0.5) * self.slice_m

    def across_of(self, col: np.ndarray) -> np.ndarray:
        """The across position (metres) of the lower edge of bin ``col``."""
        return self.c0 + np.asarray(col) * self.bin_m

    def points(self, row: int) -> np.ndarray:
        return self.order[self.row_start[row] : self.row_start[row + 1]]


def _profiles(
    along: np.ndarray, across: np.ndarray, z: np.ndarray, slice_m: float, bin_m: float
) -> _Profiles:
    a0 = float(np.floor(along.min() / slice_m) * slice_m)
    c0 = float(np.floor(across.min() / bin_m) * bin_m)
    row = ((along - a0) / slice_m).astype(np.int64)
    col = ((across - c0) / bin_m).astype(np.int64)
    rows, cols = int(row.max()) + 1, int(col.max()) + 1
    key = row * cols + col
    order = _sort_by(key, z)
    ks = key[order]
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    count = np.diff(np.r_[start, len(ks)])
    low = z[order[start]]
    # an isolated lowest point (a pulse come back late) gives way to the second lowest
    second = np.where(count >= 3, z[order[np.minimum(start + 1, len(ks) - 1)]], low)
    low = np.where(second - low > 0.05, second, low)
    ground = np.full(rows * cols, np.nan)
    ground[ks[start]] = low
    ground = ground.reshape(rows, cols)
    row_start = np.searchsorted(ks // cols, np.arange(rows + 1))
    zref = np.zeros(rows)
    has = np.isfinite(ground).any(axis=1)
    zref[has] = np.nanmedian(ground[has], axis=1)
    return _Profiles(a0, c0, slice_m, bin_m, across, z, row, col, order, row_start, ground, zref)


def _nanmedian_windows(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Per bin, the median of the finite values in bins [j + lo, j + hi) of its row (NaN when
    there are none)."""
    cols = values.shape[1]
    pad_l, pad_r = max(0, -lo), max(0, hi)
    padded = np.pad(values, ((0, 0), (pad_l, pad_r)), constant_values=np.nan)
    win = np.sort(sliding_window_view(padded, hi - lo, axis=1)[:, pad_l + lo : pad_l + lo + cols])
    n = np.isfinite(win).sum(axis=2)  # NaNs sort last
    a = np.take_along_axis(win, np.maximum(n - 1, 0)[..., None] // 2, axis=2)[..., 0]
    b = np.take_along_axis(win, (n // 2)[..., None], axis=2)[..., 0]
    return np.where(n > 0, (a + b) / 2, np.nan)


def _clean_ground(g: np.ndarray, bin_m: float, curb_max_m: float, noise: float) -> np.ndarray:
    """Bin ground heights (rows, cols) without objects and spikes (metres).

    A bin more than ``curb_max_m`` above the lowest bin within 1 m holds only an object (a car
    body, foliage over an unseen ground); a bin off the medians of both its left and its right
    neighbours (0.25 m each) by more than four times the ``noise`` is a spike (a wheel, a
    pole's foot).
    """
    reach = max(1, round(1.0 / bin_m))
    filled = np.where(np.isfinite(g), g, np.inf)
    low = minimum_filter1d(filled, 2 * reach + 1, axis=1, mode="constant", cval=np.inf)
    with np.errstate(invalid="ignore"):
        g = np.where(g > low + curb_max_m + 0.05, np.nan, g)
    k = max(2, round(0.25 / bin_m))
    left = _nanmedian_windows(g, -k, 0)
    right = _nanmedian_windows(g, 1, k + 1)
    tol = max(0.03, 4.0 * noise)
    with np.errstate(invalid="ignore"):
        spike = (np.abs(g - left) > tol) & (np.abs(g - right) > tol)
    return np.where(spike, np.nan, g)


def _sort_by(key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices sorting by integer ``key``, then by ``value`` (to 0.1 mm): one integer sort,
    much faster than a lexsort."""
    q = np.round((value - value.min()) * 1e4).astype(np.int64)
    span = int(q.max()) + 1 if len(q) else 1
    if key.max(initial=0) < np.iinfo(np.int64).max // span:
        return np.argsort(key * span + q)
    return np.lexsort((value, key))


def _window_sums(values: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative sums along columns (with a leading zero) of n, x, x2, v, xv, v2 over the
    finite entries of ``values`` (rows, cols); ``x`` (cols,) are the bin centres."""
    ok = np.isfinite(values)
    v = np.where(ok, values, 0.0)
    xx = np.where(ok, x[None, :], 0.0)
    terms = (ok * 1.0, xx, xx * xx, v, v * xx, v * v)
    pad = np.zeros((values.shape[0], 1))
    return tuple(np.concatenate([pad, np.cumsum(term, axis=1)], axis=1) for term in terms)


def _line_fit(
    sums: tuple[np.ndarray, ...], lo: np.ndarray, hi: np.ndarray, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares lines over the columns [lo, hi) of every row (``lo``, ``hi``: (rows, k)
    column indices, ``at``: (k,) positions): bins used, level at ``at``, slope and residual
    RMS, each (rows, k)."""
    n, sx, sxx, sv, sxv, svv = (
        np.take_along_axis(s, hi, axis=1) - np.take_along_axis(s, lo, axis=1) for s in sums
    )
    with np.errstate(all="ignore"):
        den = n * sxx - sx * sx
        slope = np.where(den > 1e-9, (n * sxv - sx * sv) / den, 0.0)
        icpt = (sv - slope * sx) / n
        ss = svv - icpt * sv - slope * sxv
        rms = np.sqrt(np.maximum(ss, 0.0) / n)
        level = icpt + slope * at
    return n, level, slope, rms


def _steps(
    values: np.ndarray,
    x0: float,
    bin_m: float,
    window_bins: int,
    gap_bins: int,
    min_bins: int = 0,
    max_window_bins: int = 0,
) -> tuple[np.ndarray, ...]:
    """Lines fitted to ``values`` (rows, cols) on both sides of every bin boundary k (between
    bins k-1 and k), ``gap_bins`` left out on each side: boundary positions (cols + 1,), and
    for the inner (lower k) and outer side: bins used, level at the boundary, slope, RMS.

    A side spans ``window_bins``, widened up to ``max_window_bins`` where it holds fewer than
    ``min_bins`` occupied bins (sparse data far from the scanner)."""
    rows, cols = values.shape
    x = x0 + (np.arange(cols) + 0.5) * bin_m
    sums = _window_sums(values, x)
    k = np.arange(cols + 1)
    at = x0 + k * bin_m
    in_hi = np.broadcast_to(np.clip(k - gap_bins, 0, cols), (rows, cols + 1))
    out_lo = np.broadcast_to(np.clip(k + gap_bins, 0, cols), (rows, cols + 1))
    in_lo = np.clip(in_hi - window_bins, 0, cols)
    out_hi = np.clip(out_lo + window_bins, 0, cols)
    occ = np.isfinite(values)
    if min_bins > 0 and max_window_bins > window_bins and occ.any():
        # the column of the min_bins-th occupied bin before in_hi / from out_lo on
        cum = sums[0].astype(np.int64)  # occupied bins in [0, k)
        flat = np.flatnonzero(occ)
        first = np.r_[0, np.cumsum(occ.sum(axis=1))]
        r = np.arange(rows)[:, None]
        rank = np.take_along_axis(cum, in_hi, axis=1) - min_bins
        ok = rank >= 0
        pos = flat[np.clip(first[:-1, None] + rank, 0, max(len(flat) - 1, 0))] - r * cols
        wide = np.where(ok, pos, 0)
        in_lo = np.maximum(np.minimum(in_lo, wide), in_hi - max_window_bins).clip(0, cols)
        rank = np.take_along_axis(cum, out_lo, axis=1) + min_bins - 1
        ok = rank < (first[1:] - first[:-1])[:, None]
        pos = flat[np.clip(first[:-1, None] + rank, 0, max(len(flat) - 1, 0))] - r * cols + 1
        wide = np.where(ok, pos, cols)
        out_hi = np.minimum(np.maximum(out_hi, wide), out_lo + max_window_bins).clip(0, cols)
    inner = _line_fit(sums, in_lo, in_hi, at)
    outer = _line_fit(sums, out_lo, out_hi, at)
    return (at, *inner, *outer)


def _best_per_run(
    rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, reach: int, runs: bool = False
) -> Any:
    """Indices of the least-cost entry of each run of (row, col) entries whose columns lie
    within ``reach`` of the previous one in the same row (entries sorted by row, then col);
    with ``runs`` also the run number of every entry."""
    if len(rows) == 0:
        empty = np.empty(0, np.int64)
        return (empty, empty) if runs else empty
    new = np.r_[True, (np.diff(rows) != 0) | (np.diff(cols) > reach)]
    run = np.cumsum(new) - 1
    order = np.lexsort((cost, run))
    best = order[np.r_[True, run[order][1:] != run[order][:-1]]]
    return (best, run) if runs else best


# ----------------------------------------------------------------------------------------------
# curbs


def curb_hits(
    along: np.ndarray,
    across: np.ndarray,
    z: np.ndarray,
    options: EdgeOptions | None = None,
    *,
    slice_m: float | None = None,
) -> EdgeHits:
    """Curb steps in the profiles across ``along``: one hit per slice and step (metres).

    ``across`` is the profile direction (``t`` for curbs along the road, ``s`` for curbs across
    it). A step is kept when its height is within ``curb_min_m``-``curb_max_m`` and both sides
    are flat (see :class:`EdgeOptions`); ``facing`` points to the low side.

    >>> c = np.tile(np.arange(0.01, 3.0, 0.02), 10); a = np.repeat(np.arange(0.0, 1.0, 0.1), 150)
    >>> h = curb_hits(a, c, np.where(c > 1.5, 0.12, 0.0), EdgeOptions(slice_m=0.5))
    >>> h.across.round(2).tolist(), h.height.round(3).tolist(), h.facing.tolist()
    ([1.5, 1.5], [0.12, 0.12], [-1.0, -1.0])
    >>> len(curb_hits(np.empty(0), np.empty(0), np.empty(0)))
    0
    """
    o = options or EdgeOptions()
    along, across, z = _finite(along, across, z)
    if len(along) < 10:
        return EdgeHits.empty()
    sm = slice_m or o.slice_m or derive_slice_m(along, across)
    return _curb_hits(_profiles(along, across, z, sm, o.bin_m), o)


_BLOCK_ROWS = 128  # profiles are worked in blocks: memory stays bounded on long surveys
_BLOCK_COLS = 2048


def _curb_hits(p: _Profiles, o: EdgeOptions) -> EdgeHits:
    rows, cols = p.shape
    g_all = p.ground - p.zref[:, None]
    d = np.abs(np.diff(g_all, axis=1))
    d = d[np.isfinite(d)]
    # the survey's own noise: the robust spread of neighbouring bins' height differences
    noise = float(1.4826 * np.median(d) / np.sqrt(2)) if d.size else 0.0
    reach = round(o.max_window_m / o.bin_m) + round(1.25 / o.bin_m) + 2  # windows and cleaning
    out: list[tuple[float, float, float, float, float]] = []
    for r0 in range(0, rows, _BLOCK_ROWS):
        for c0 in range(0, cols, _BLOCK_COLS):
            lo, hi = max(0, c0 - reach), min(cols, c0 + _BLOCK_COLS + reach)
            block = g_all[r0 : r0 + _BLOCK_ROWS, lo:hi]
            out += _curb_block(p, block, r0, lo, (c0 - lo, c0 + _BLOCK_COLS - lo), noise, o)
    if not out:
        return EdgeHits.empty()
    arr = np.array(out)
    return EdgeHits(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4])


def _curb_block(
    p: _Profiles,
    block: np.ndarray,
    r0: int,
    c_off: int,
    core: tuple[int, int],
    noise: float,
    o: EdgeOptions,
) -> list[tuple[float, float, float, float, float]]:
    """Curb hits in rows ``r0``... and columns ``c_off``... of the profiles (``block`` is their
    ground relative to each row's reference); only boundaries within ``core`` (block columns)
    count, the rest is context for the windows."""
    if not np.isfinite(block).any():
        return []
    g = _clean_ground(block, o.bin_m, o.curb_max_m, noise)
    wb = max(2, round(o.window_m / o.bin_m))
    x0 = p.c0 + c_off * o.bin_m
    at, n_in, lv_in, sl_in, rms_in, n_out, lv_out, sl_out, rms_out = _steps(
        g, x0, o.bin_m, wb, 1, o.min_window_bins, round(o.max_window_m / o.bin_m)
    )
    k = np.arange(g.shape[1] + 1)
    enough = (n_in >= o.min_window_bins) & (n_out >= o.min_window_bins)
    enough &= (k >= core[0]) & (k < core[1])
    if not enough.any():
        return []
    flat_rms = max(o.flat_rms_m, 2.5 * noise)
    step = lv_out - lv_in
    with np.errstate(invalid="ignore"):
        ok = (
            enough
            & (np.abs(step) >= o.curb_min_m)
            & (np.abs(step) <= o.curb_max_m)
            & (rms_in <= flat_rms)
            & (rms_out <= flat_rms)
            & (np.abs(sl_in) <= o.max_slope)
            & (np.abs(sl_out) <= o.max_slope)
        )
    r_idx, k_idx = np.nonzero(ok)
    best, run = _best_per_run(r_idx, k_idx, (rms_in + rms_out)[r_idx, k_idx], 2, runs=True)
    # a run spans the boundaries with clean sides: the face, or the shadow behind a curb
    first = np.r_[0, np.flatnonzero(np.diff(run)) + 1]
    last = np.r_[first[1:] - 1, len(run) - 1]
    out = []
    for j, (r, kk) in enumerate(zip(r_idx[best], k_idx[best], strict=True)):
        row = r0 + int(r)
        lo, hi = lv_in[r, kk], lv_out[r, kk]
        facing = -1.0 if lo < hi else 1.0  # the low side is the road
        low = min(lo, hi) + p.zref[row]
        h = abs(hi - lo)
        span = (float(at[k_idx[first[j]]]), float(at[k_idx[last[j]]]))
        # half-way between the two fitted surfaces: above it a point is on the high side
        x_at, mid = float(at[kk]), (lo + hi) / 2 + p.zref[row]
        slope = (sl_in[r, kk] + sl_out[r, kk]) / 2
        pos = _face_position(p, row, span, (x_at, mid, slope), h, facing)
        if pos is not None:
            out.append((p.along_of(row), pos, low, h, facing))
    return out


def _face_position(
    p: _Profiles,
    row: int,
    span: tuple[float, float],
    mid: tuple[float, float, float],
    height: float,
    facing: float,
) -> float | None:
    """Where the step found between ``span`` (metres) in ``row`` lies.

    The points within 0.5 m are labelled high or low (above or below the line ``mid`` = (x0,
    z0, slope) half-way between the two fitted surfaces). Where the scanner hit the face, a
    2 cm column holds both high and low points (or points half-way up): the face is there.
    Otherwise the points are split where the fewest fall on the wrong side; the edge is the
    first high point, moved towards the low side by half the gap to the last low point, at
    most half the spacing of the high points (the curb's top is sampled every so often; its
    face may be hidden, the road before it in its shadow). None when the points do not show
    the step there.
    """
    idx = p.points(row)
    u = p.across[idx]
    idx = idx[(u >= span[0] - 0.5) & (u <= span[1] + 0.5)]
    u = p.across[idx]
    dz = p.z[idx] - (mid[1] + mid[2] * (u - mid[0]))
    keep = np.abs(dz) < height  # not objects, not stray returns
    u, dz = u[keep], dz[keep]
    high = dz > 0.0
    n_high = int(high.sum())
    if n_high == 0 or n_high == len(u):
        return None
    face = u[np.abs(dz) < 0.25 * height]
    if len(face) >= 3 and np.subtract(*np.quantile(face, [0.75, 0.25])) <= 0.05:
        return float(np.median(face))  # points half-way up, in one column
    cell = np.floor(u / 0.02).astype(np.int64)
    cell -= cell.min()
    nh = np.bincount(cell, high)
    nl = np.bincount(cell, ~high)
    mixed = np.flatnonzero((nh >= 2) & (nl >= 2))
    if len(mixed):  # the foot and the top of the face in one column
        c = mixed[np.argmax(np.minimum(nh, nl)[mixed])]
        return float(np.median(u[cell == c]))
    sign = -facing  # work with the low side towards smaller values
    order = np.argsort(sign * u, kind="stable")
    v, high = sign * u[order], high[order]
    # split before k: points [0, k) low, [k, n) high; errors = high before + low after
    errors = np.r_[0, np.cumsum(high)] + np.r_[np.cumsum((~high)[::-1])[::-1], 0]
    k = int(np.flatnonzero(errors == errors.min())[-1])
    if k == 0 or k == len(v) or errors[k] > 0.5 * min(n_high, len(v) - n_high):
        return None
    tops = np.unique(np.round(v[k:], 3))[:5]
    spacing = float(np.median(np.diff(tops))) if len(tops) >= 2 else 0.0
    edge = v[k] - 0.5 * min(max(v[k] - v[k - 1], 0.0), spacing)
    return float(sign * edge)


# ----------------------------------------------------------------------------------------------
# barriers


def barrier_hits(
    along: np.ndarray,
    across: np.ndarray,
    z: np.ndarray,
    options: EdgeOptions | None = None,
    *,
    slice_m: float | None = None,
) -> EdgeHits:
    """Barrier sections in the profiles across ``along`` (metres): per slice, each group of
    bins holding points ``barrier_min_m``-``barrier_max_m`` above the ground beside them, at
    most ``barrier_max_width_m`` wide and with nothing taller in it. ``across`` of a hit is the
    face towards ``across`` = 0 (the trajectory), ``far`` the other face when the group is at
    least ``double_face_m`` wide, ``height`` the top above the ground.

    >>> c = np.tile(np.arange(-2.99, 3.0, 0.02), 10); a = np.repeat(np.arange(0.0, 1.0, 0.1), 300)
    >>> wall = (c > 2.0) & (c < 2.4)
    >>> h = barrier_hits(a, c, np.where(wall, 0.8, 0.0), EdgeOptions(slice_m=0.5))
    >>> h.across.round(2).tolist(), h.far.round(2).tolist(), h.height.round(2).tolist()
    ([2.01, 2.01], [2.39, 2.39], [0.8, 0.8])
    """
    o = options or EdgeOptions()
    along, across, z = _finite(along, across, z)
    if len(along) < 10:
        return EdgeHits.empty()
    sm = slice_m or o.slice_m or derive_slice_m(along, across)
    return _barrier_hits(_profiles(along, across, z, sm, o.bin_m), o)


def _barrier_hits(p: _Profiles, o: EdgeOptions) -> EdgeHits:
    rows, cols = p.shape
    reach = max(1, round(1.0 / o.bin_m))  # the ground beside: lowest within 1 m
    ground = np.where(np.isfinite(p.ground), p.ground, np.inf)
    ref = minimum_filter1d(ground, 2 * reach + 1, axis=1, mode="constant", cval=np.inf)
    hz = p.z - ref[p.row, p.col]
    flat = p.row * cols + p.col
    band = (hz >= 0.2) & (hz <= o.barrier_max_m + 0.15)
    tall = (hz > o.barrier_max_m + 0.3) & (hz < 4.0)
    n_band = np.bincount(flat[band], minlength=rows * cols).reshape(rows, cols)
    n_tall = np.bincount(flat[tall], minlength=rows * cols).reshape(rows, cols)
    obj = n_band >= 2
    max_gap = max(1, round(0.6 / o.bin_m))
    out = []
    for r in np.flatnonzero(obj.any(axis=1)):
        cs = np.flatnonzero(obj[r])
        splits = np.flatnonzero(np.diff(cs) > max_gap) + 1
        pts = p.points(int(r))
        pts = pts[band[pts]]
        for grp in np.split(cs, splits):
            lo, hi = int(grp[0]), int(grp[-1])
            if n_tall[r, max(lo - 2, 0) : hi + 3].sum() >= 2:
                continue  # a pole, a tree, a person or a truck stands in it
            sel = pts[(p.col[pts] >= lo) & (p.col[pts] <= hi)]
            if len(sel) < 3:
                continue
            u, h = p.across[sel], hz[sel]
            top = float(np.quantile(h, 0.95))
            us = np.sort(u)  # the second outermost points: one stray point does not count
            u0, u1 = float(us[1]), float(us[-2])
            if not o.barrier_min_m <= top <= o.barrier_max_m or u1 - u0 > o.barrier_max_width_m:
                continue
            # the face towards across = 0 is the road edge; the other is the far face
            near, far = (u0, u1) if (u0 + u1) / 2 > 0 else (u1, u0)
            facing = -1.0 if near == u0 else 1.0
            foot = float(ref[r, lo if facing < 0 else hi])
            seen = u1 - u0 >= o.double_face_m
            solid = float(np.quantile(h, 0.05)) <= 0.3  # its face reaches the ground
            if seen and solid:
                # the top of a wall is sampled every few decimetres across: its edge lies on
                # average half a sample spacing beyond the last sample
                lines_u = np.unique(np.round(u[h >= top - 0.05], 2))
                cut = np.flatnonzero(np.diff(lines_u) > 0.05) + 1
                centres = [float(g.mean()) for g in np.split(lines_u, cut)]
                if len(centres) >= 2:
                    far += -facing * 0.5 * float(np.median(np.diff(centres)))
            # a solid wall standing free: beyond it the ground is seen again near the road's
            # height (a median, not a retaining wall)
            wall = 0.0
            if not seen and solid:
                c = p.across_of(np.arange(cols)) + o.bin_m / 2
                away = (c - far) * -facing
                beyond = (away > 0.5) & (away < 25.0) & (np.abs(p.ground[r] - foot) <= 0.5)
                wall = float(beyond.any())
            out.append((p.along_of(int(r)), near, foot, top, facing, far if seen else np.nan, wall))
    if not out:
        return EdgeHits.empty()
    arr = np.array(out)
    return EdgeHits(*(arr[:, k] for k in range(7)))


# ----------------------------------------------------------------------------------------------
# pavement edges


def _group_median(key: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Median of ``values`` per integer ``key`` in [0, size) (NaN for keys without values)."""
    out = np.full(size, np.nan)
    if len(key) == 0:
        return out
    order = _sort_by(key, values)
    ks, vs = key[order], values[order]
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    count = np.diff(np.r_[start, len(ks)])
    lo = vs[start + (count - 1) // 2]
    hi = vs[start + count // 2]
    out[ks[start]] = (lo + hi) / 2
    return out


def pavement_hits(
    along: np.ndarray,
    across: np.ndarray,
    z: np.ndarray,
    intensity: np.ndarray,
    options: EdgeOptions | None = None,
) -> EdgeHits:
    """Changes of surface material across the road (metres): per ``pave_slice_m`` slice, steps
    of at least ``pave_contrast`` in the median log intensity of the ground points (at most
    0.1 m above the lowest within 1 m) of 0.1 m bins, with a line fitted on each side over
    ``window_m`` (so the smooth fall-off with range is not a step). Bins brighter than their
    1 m neighbourhood by 0.4 (paint) are left out. ``facing`` points to ``across`` = 0;
    ``height`` is the contrast (log intensity, positive when the outer side is brighter).

    >>> c = np.tile(np.arange(-5.99, 6.0, 0.02), 40); a = np.repeat(np.arange(0.0, 4.0, 0.1), 600)
    >>> h = pavement_hits(a, c, np.zeros_like(c), np.where(c < -4.0, 2500.0, 1000.0))
    >>> h.across.round(1).tolist(), h.facing.tolist()
    ([-4.0, -4.0], [1.0, 1.0])
    """
    o = options or EdgeOptions()
    along, across, z, intensity = _finite(along, across, z, intensity)
    if len(along) < 100:
        return EdgeHits.empty()
    bin_m = 0.1
    a0 = float(np.floor(along.min() / o.pave_slice_m) * o.pave_slice_m)
    c0 = float(np.floor(across.min() / bin_m) * bin_m)
    row = ((along - a0) / o.pave_slice_m).astype(np.int64)
    col = ((across - c0) / bin_m).astype(np.int64)
    rows, cols = int(row.max()) + 1, int(col.max()) + 1
    key = row * cols + col
    low = np.full(rows * cols, np.inf)
    np.minimum.at(low, key, z)
    ref = minimum_filter1d(low.reshape(rows, cols), 21, axis=1, mode="constant", cval=np.inf)
    ground = z - ref.ravel()[key] <= 0.1  # not cars, people or the top of a curb
    value = np.log1p(np.maximum(np.asarray(intensity, dtype=np.float64)[ground], 0.0))
    med = _group_median(key[ground], value, rows * cols).reshape(rows, cols)
    # paint and other narrow bright things: brighter than the bins around them
    around = _nanmedian_windows(med, -10, 11)
    with np.errstate(invalid="ignore"):
        med = np.where(med > around + 0.4, np.nan, med)
    wb = max(3, round(o.window_m / bin_m))
    at, n_in, lv_in, _, rms_in, n_out, lv_out, _, rms_out = _steps(med, c0, bin_m, wb, 1)
    step = lv_out - lv_in
    need = max(4, wb // 2)
    with np.errstate(invalid="ignore"):
        ok = (n_in >= need) & (n_out >= need) & (np.abs(step) >= o.pave_contrast)
        ok &= np.abs(step) >= 2.0 * np.maximum(rms_in, rms_out)
        score = np.abs(step) / (0.05 + rms_in + rms_out)
    r_idx, k_idx = np.nonzero(ok)
    if len(r_idx) == 0:
        return EdgeHits.empty()
    # one edge per metre: a window reaching across the edge makes a weaker, rougher step; the
    # boundaries scoring nearly as well as the best one straddle the edge: take their middle
    sc = score[r_idx, k_idx]
    best, run = _best_per_run(r_idx, k_idx, -sc, wb, runs=True)
    good = sc >= 0.8 * sc[best][run]
    mid = np.bincount(run[good], at[k_idx[good]], len(best)) / np.bincount(
        run[good], None, len(best)
    )
    r_idx, k_idx = r_idx[best], k_idx[best]
    pos = mid
    facing = np.where(pos > 0, -1.0, 1.0)
    contrast = step[r_idx, k_idx] * -facing  # outer minus inner
    return EdgeHits(
        a0 + (r_idx + 0.5) * o.pave_slice_m, pos, np.full(len(pos), np.nan), contrast, facing
    )


# ----------------------------------------------------------------------------------------------
# linking and lines


def link_hits(
    hits: EdgeHits, options: EdgeOptions | None = None, *, offset_m: float | None = None
) -> list[np.ndarray]:
    """Chain hits along ``along`` into tracks (index arrays, ordered along): a hit joins the
    track whose last hit faces the same way, lies at most ``link_gap_m`` back and within
    ``offset_m`` (default ``link_offset_m``; plus 2 % of the gap) across; otherwise it starts
    a track.

    >>> h = EdgeHits(np.array([0.0, 0.5, 1.0, 1.0]), np.array([2.0, 2.05, 2.02, 5.0]),
    ...              np.zeros(4), np.zeros(4), np.ones(4))
    >>> [t.tolist() for t in link_hits(h)]
    [[0, 1, 2], [3]]
    """
    o = options or EdgeOptions()
    offset = o.link_offset_m if offset_m is None else offset_m
    order = np.lexsort((hits.across, hits.along))
    tracks: list[list[int]] = []
    last_a: list[float] = []
    last_c: list[float] = []
    face: list[float] = []
    for i in order:
        a, c, f = float(hits.along[i]), float(hits.across[i]), float(hits.facing[i])
        best, best_d = -1, np.inf
        for k in range(len(tracks)):
            gap = a - last_a[k]
            if face[k] != f or gap <= 1e-9 or gap > o.link_gap_m:
                continue
            d = abs(c - last_c[k])
            if d <= offset + 0.02 * gap and d < best_d:
                best, best_d = k, d
        if best < 0:
            tracks.append([int(i)])
            last_a.append(a)
            last_c.append(c)
            face.append(f)
        else:
            tracks[best].append(int(i))
            last_a[best], last_c[best] = a, c
    return [np.array(t, dtype=np.int64) for t in tracks]


def _smooth(a: np.ndarray, v: np.ndarray, at: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local linear fit of v(a) evaluated at ``at``; plain interpolation where
    the hits are too far away for the weights to hold."""
    d = at[:, None] - a[None, :]
    w = np.exp(-0.5 * (d / sigma) ** 2)
    sw = w.sum(axis=1)
    out = np.interp(at, a, v)
    ok = sw > 1e-3
    if not ok.any():
        return out
    w, d, sw = w[ok], d[ok], sw[ok]
    m1 = (w * d).sum(axis=1) / sw
    m2 = (w * d * d).sum(axis=1) / sw
    vm = (w * v[None, :]).sum(axis=1) / sw
    vd = (w * d * v[None, :]).sum(axis=1) / sw
    var = m2 - m1 * m1
    slope = np.where(var > 1e-6, (vd - m1 * vm) / np.maximum(var, 1e-6), 0.0)
    out[ok] = vm - slope * m1
    return out


def _track_line(
    a: np.ndarray,
    c: np.ndarray,
    z: np.ndarray,
    slice_m: float,
    kind: RoadEdgeKind,
    height: float | None,
    transverse: bool,
    o: EdgeOptions,
) -> EdgeLine | None:
    """A smoothed line through one track's hits (``a`` along, ``c`` across, ``z`` foot)."""
    if len(a) >= 5:  # drop hits off the running median (a car's side, a stray step)
        k = np.arange(len(a))
        win = np.clip(k[:, None] + np.arange(-2, 3)[None, :], 0, len(a) - 1)
        keep = np.abs(c - np.median(c[win], axis=1)) <= 0.1
        a, c, z = a[keep], c[keep], z[keep]
    if len(a) < 2:
        return None
    a0, a1 = float(a[0]) - slice_m / 2, float(a[-1]) + slice_m / 2
    n = max(2, int(np.ceil((a1 - a0) / o.vertex_step_m)) + 1)
    av = np.linspace(a0, a1, n)
    cv = _smooth(a, c, av, o.smooth_m)
    zok = np.isfinite(z)
    zv = _smooth(a[zok], z[zok], av, o.smooth_m) if zok.sum() >= 2 else np.zeros(n)
    slices = len(np.unique(np.floor(a / slice_m)))
    coverage = min(1.0, slices / max(1.0, (a1 - a0) / slice_m))
    conf = round(float(np.clip(0.4 + 0.55 * coverage, 0.0, 0.95)), 3)
    s, t = (cv, av) if transverse else (av, cv)
    return EdgeLine(kind, s, t, zv, height, conf)


def _lines(
    hits: EdgeHits,
    kind: RoadEdgeKind,
    slice_m: float,
    min_length: float,
    o: EdgeOptions,
    *,
    transverse: bool = False,
    use_far: bool = False,
    offset_m: float | None = None,
) -> list[EdgeLine]:
    out = []
    for idx in link_hits(hits, o, offset_m=offset_m):
        a = hits.along[idx]
        span = a[-1] - a[0] + slice_m
        if span < min_length or len(idx) < max(3, o.min_coverage * span / slice_m):
            continue
        h = hits.height[idx]
        height = None if kind is RoadEdgeKind.PAVEMENT_EDGE else round(float(np.median(h)), 3)
        if kind is RoadEdgeKind.BARRIER and np.subtract(*np.quantile(h, [0.9, 0.1])) > 0.3:
            continue  # a barrier's top is level; a row of cars' is not
        line = _track_line(a, hits.across[idx], hits.z[idx], slice_m, kind, height, transverse, o)
        if line is not None:
            out.append(line)
        if not use_far:
            continue
        near, facing, far = hits.across[idx], hits.facing[idx], hits.far[idx]
        seen = np.isfinite(far)
        line = None
        if seen.mean() >= 0.5:
            # the top is sampled a few times across only: the widest view comes nearest to it
            width = float(np.quantile(np.abs(far[seen] - near[seen]), 0.9))
            line = _track_line(a, near - facing * width, hits.z[idx], slice_m, kind, height,
                               False, o)  # fmt: skip
        elif hits.wall[idx].mean() >= 0.5:
            # a median wall whose top is out of sight: its far face at the nominal width
            far = near - facing * o.median_width_m
            line = _track_line(a, far, hits.z[idx], slice_m, kind, height, False, o)
            if line is not None:
                line = dataclasses.replace(line, confidence=round(0.8 * line.confidence, 3))
        if line is not None:
            out.append(line)
    return out


def _join_corner(cross: EdgeLine, lines: list[EdgeLine], reach: float) -> EdgeLine:
    """A curb across the road (``cross``) extended at its inner end to a curb along the road
    that ends beside it: the slice next to the corner holds road points and shows no step."""
    k = 0 if abs(cross.t[0]) < abs(cross.t[-1]) else -1
    s_end, t_end = float(cross.s[k]), float(cross.t[k])
    for line in lines:
        if line.kind is not RoadEdgeKind.CURB or np.ptp(line.s) < 1.0:
            continue
        for j in (0, -1):
            t_line = float(line.t[j])
            gap = abs(t_end) - abs(t_line)
            if (
                abs(float(line.s[j]) - s_end) <= 1.5 * reach
                and np.sign(t_line) == np.sign(t_end)
                and 0.0 < gap <= 2.0 * reach
            ):
                extra = (np.array([s_end]), np.array([t_line]), cross.z[[k]])
                if k == 0:
                    arrays = [
                        np.r_[e, a] for e, a in zip(extra, (cross.s, cross.t, cross.z), strict=True)
                    ]
                else:
                    arrays = [
                        np.r_[a, e] for e, a in zip(extra, (cross.s, cross.t, cross.z), strict=True)
                    ]
                return EdgeLine(cross.kind, *arrays, cross.height_m, cross.confidence)
    return cross


_PRIORITY = {RoadEdgeKind.BARRIER: 0, RoadEdgeKind.CURB: 1, RoadEdgeKind.PAVEMENT_EDGE: 2}


def _dedupe(lines: list[EdgeLine], tolerance_m: float = 0.3, min_m: float = 2.0) -> list[EdgeLine]:
    """Lines along the road without their parts that run within ``tolerance_m`` of a line kept
    before them (pieces shorter than ``min_m`` are dropped): barriers first (a guard rail's
    foot may look like a curb), then curbs, then pavement edges, longer lines first within a
    kind (a track split in two overlaps itself)."""
    order = sorted(lines, key=lambda ln: (_PRIORITY[ln.kind], -ln.length_m))
    kept: list[EdgeLine] = []
    for line in order:
        if np.ptp(line.s) < 1.0:  # across the road: kept as it is
            kept.append(line)
            continue
        close = np.zeros(len(line.s), dtype=bool)
        for other in kept:
            if np.ptp(other.s) >= 1.0:
                with np.errstate(invalid="ignore"):
                    close |= np.abs(_t_at(other, line.s) - line.t) <= tolerance_m
        if not close.any():
            kept.append(line)
            continue
        cut = np.flatnonzero(np.diff(close.astype(np.int8))) + 1
        for piece in np.split(np.arange(len(line.s)), cut):
            if close[piece[0]] or len(piece) < 2 or np.ptp(line.s[piece]) < min_m:
                continue
            kept.append(
                EdgeLine(line.kind, line.s[piece], line.t[piece], line.z[piece], line.height_m,
                         line.confidence)
            )  # fmt: skip
    return kept


def _t_at(line: EdgeLine, s: np.ndarray) -> np.ndarray:
    """The line's ``t`` at stations ``s`` (NaN outside its extent)."""
    t = np.interp(s, line.s, line.t)
    return np.where((s >= line.s[0]) & (s <= line.s[-1]), t, np.nan)


def _pavement_lines(hits: EdgeHits, found: list[EdgeLine], o: EdgeOptions) -> list[EdgeLine]:
    """Pavement edges where no curb or barrier is the edge: hits beyond a curb (sidewalk and
    verge), inside a barrier farther out (lane paint) or within 1 m of either are dropped; of
    the remaining lines on one side, the outermost is kept where they overlap."""
    if len(hits) == 0:
        return []
    s, t = hits.along, hits.across
    keep = np.ones(len(hits), dtype=bool)
    for line in found:
        if np.ptp(line.s) < 1.0:  # a curb across the road
            continue
        tl = _t_at(line, s)
        with np.errstate(invalid="ignore"):
            same_side = np.sign(tl) == np.sign(t)
            near = np.abs(tl - t) <= 1.0
            beyond_curb = same_side & (np.abs(t) > np.abs(tl)) & (line.kind is RoadEdgeKind.CURB)
            inside_barrier = (
                same_side & (np.abs(t) < np.abs(tl)) & (line.kind is RoadEdgeKind.BARRIER)
            )
        keep &= ~(near | beyond_curb | inside_barrier)
    # bins of 0.1 m and intensity noise scatter these hits more than steps in height
    lines = _lines(hits.take(np.flatnonzero(keep)), RoadEdgeKind.PAVEMENT_EDGE, o.pave_slice_m,
                   o.pave_min_length_m, o, offset_m=2 * o.link_offset_m)  # fmt: skip
    out = []
    for line in lines:
        side = np.sign(np.median(line.t))
        covered = False
        for other in lines:
            if other is line or np.sign(np.median(other.t)) != side:
                continue
            to = _t_at(other, line.s)
            with np.errstate(invalid="ignore"):
                outer = np.abs(to) > np.abs(line.t) + 0.5
            if outer.mean() >= 0.5:
                covered = True
                break
        if not covered:
            out.append(line)
    return out


# ----------------------------------------------------------------------------------------------
# the stage


def find_road_edges(
    s: np.ndarray,
    t: np.ndarray,
    z: np.ndarray,
    intensity: np.ndarray | None = None,
    options: EdgeOptions | None = None,
) -> list[EdgeLine]:
    """Road edges from points in a road frame: ``s`` along, ``t`` across the trajectory and
    ``z`` height (metres, all points of the survey, not only the road surface); ``intensity``
    (raw, any scale) finds pavement edges, which are not searched without it.

    Returns curbs (along and across the road), barriers and pavement edges as frame lines; see
    the module docstring for the methods and :class:`EdgeOptions` for the parameters.
    """
    o = options or EdgeOptions()
    s, t, z = (np.asarray(v, dtype=np.float64) for v in (s, t, z))
    keep = np.isfinite(s) & np.isfinite(t) & np.isfinite(z) & (np.abs(t) <= o.max_offset_m)
    if keep.sum() < 100:
        return []
    s, t, z = s[keep], t[keep], z[keep]
    slice_m = o.slice_m or derive_slice_m(s, t)
    along = _profiles(s, t, z, slice_m, o.bin_m)
    # sparse points (long slices) place an edge less precisely in each slice
    offset = max(o.link_offset_m, 0.1 * slice_m)
    lines = _lines(_curb_hits(along, o), RoadEdgeKind.CURB, slice_m, o.curb_min_length_m, o,
                   offset_m=offset)  # fmt: skip
    if o.transverse:
        cross = curb_hits(t, s, z, o, slice_m=slice_m)
        cross_lines = _lines(cross, RoadEdgeKind.CURB, slice_m, o.curb_min_length_m, o,
                             transverse=True, offset_m=offset)  # fmt: skip
        lines += [_join_corner(c, lines, slice_m) for c in cross_lines]
    lines += _lines(_barrier_hits(along, o), RoadEdgeKind.BARRIER, slice_m,
                    o.barrier_min_length_m, o, use_far=True, offset_m=offset)  # fmt: skip
    if intensity is not None and np.any(intensity):
        pave = pavement_hits(s, t, z, np.asarray(intensity)[keep], o)
        lines += _pavement_lines(pave, lines, o)
    return _dedupe(lines)


def road_edge_features(
    lines: list[EdgeLine], frame: RoadFrame, *, survey_id: str
) -> list[RoadEdge]:
    """The frame lines as :class:`~pipeline.model.RoadEdge` records in the frame's map CRS
    (metres); curbs carry their step height, barriers their top height above the ground.

    >>> frame = RoadFrame.from_xy(np.array([[0.0, 0.0], [10.0, 0.0]]))
    >>> line = EdgeLine(RoadEdgeKind.CURB, np.array([0.0, 10.0]), np.array([-2.0, -2.0]),
    ...                 np.zeros(2), 0.15, 0.9)
    >>> [(e.kind.value, e.height_m, e.geometry.length) for e in
    ...  road_edge_features([line], frame, survey_id="s")]
    [('curb', 0.15, 10.0)]
    >>> road_edge_features([], frame, survey_id="s")
    []
    """
    out: list[RoadEdge] = []
    ids: set[str] = set()
    for line in lines:
        x, y = frame.to_xy(line.s, line.t)
        geom = LineString(np.column_stack([x, y, line.z]))
        if geom.length < 0.5:
            continue
        extra: tuple[object, ...] = (line.kind.value,)
        while True:  # two edges may share an anchor cell (the faces of a thin wall)
            edge = RoadEdge.create(
                geom,
                line.kind,
                survey_id=survey_id,
                method=f"edges.{line.kind.value}",
                id_extra=extra,
                confidence=line.confidence,
                height_m=line.height_m,
            )
            if edge.id not in ids:
                break
            extra = (*extra, len(out))
        ids.add(edge.id)
        out.append(edge)
    return out


def road_edges(
    s: np.ndarray,
    t: np.ndarray,
    z: np.ndarray,
    intensity: np.ndarray | None,
    frame: RoadFrame,
    *,
    survey_id: str,
    options: EdgeOptions | None = None,
) -> list[RoadEdge]:
    """:func:`find_road_edges` then :func:`road_edge_features`: the stage as extraction calls
    it (points in ``frame``'s road frame, metres)."""
    lines = find_road_edges(s, t, z, intensity, options)
    return road_edge_features(lines, frame, survey_id=survey_id)


def edges_along_line(
    xyz: np.ndarray,
    line_xy: np.ndarray,
    *,
    survey_id: str,
    half_width_m: float = 4.0,
    intensity: np.ndarray | None = None,
    options: EdgeOptions | None = None,
) -> list[RoadEdge]:
    """Road edges within ``half_width_m`` of a given line, such as the boundary of a road
    polygon from a map: the points ``xyz`` (n, 3) and the line ``line_xy`` (m, 2) are metres in
    one projected CRS. The frame follows the line (lightly smoothed), so an edge on the line
    lies at t = 0; only points beside the line's extent are used.

    >>> rng = np.random.default_rng(0)
    >>> xy = rng.uniform(0, 30, (20_000, 2))
    >>> z = np.where(xy[:, 1] > 10.0, 0.12, 0.0)  # a curb along y = 10 m
    >>> edges = edges_along_line(np.column_stack([xy, z]), np.array([[0, 10.0], [30, 10.0]]),
    ...                          survey_id="s")
    >>> [(e.kind.value, round(e.height_m, 2)) for e in edges]
    [('curb', 0.12)]
    >>> edges_along_line(np.empty((0, 3)), np.array([[0, 0.0], [1, 0.0]]), survey_id="s")
    []
    """
    frame = RoadFrame.from_xy(np.asarray(line_xy, dtype=np.float64), smooth_m=0.5)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    s, t = frame.project(xyz[:, 0], xyz[:, 1])
    near = (s >= 0.0) & (s <= frame.length) & (np.abs(t) <= half_width_m)
    inten = None if intensity is None else np.asarray(intensity)[near]
    lines = find_road_edges(s[near], t[near], xyz[near, 2], inten, options)
    return road_edge_features(lines, frame, survey_id=survey_id)
