"""Poles: vertical pole-like objects above the ground, told apart from trees, cars and people.

Every step works on grids and numpy arrays (metres in a projected CRS), never on a point-wise
neighbourhood search over the whole cloud:

1. :func:`height_above_ground`: each point's height above a low point of its ``ground_cell_m``
   cell's 3 x 3 neighbourhood (the road, a sidewalk or the verge alike).
2. :func:`pole_seeds`: points between ``seed_min_m`` and ``seed_max_m`` above the ground are cut
   into horizontal slices ``slice_m`` thick; in each slice a ``cell_m`` occupancy grid is split
   into 8-connected components (:func:`grid_components`). A component at most ``max_width_m``
   wide holding at least ``min_slice_points`` points is a thin section; thin sections stacked at
   one place over at least ``min_stack_m`` of height are a seed. A car is too wide in every slice.
3. :func:`fit_pole`: around a seed, the slices whose core (points near the axis) has no
   neighbours in a ring around it are the bare shaft; a circle fitted to their points
   (:func:`fit_circle`) gives the axis and the radius, a line through the slice centres the tilt.
   The base is the lowest ground beside the axis, the top the end of the continuous column of
   core points (a panel or a lamp head on the pole continues it). What hangs on the column
   outside the core must be thin (a panel, a lamp head): a thick attached mass is a tree's crown.
   Shorter than ``min_height_m`` is a person or a post, not a pole.

>>> z = np.arange(0.0, 6.0, 0.05)
>>> a = np.linspace(0, 2 * np.pi, 16, endpoint=False)
>>> shaft = np.array([(0.08 * np.cos(t), 0.08 * np.sin(t), h) for h in z for t in a])
>>> ground = np.column_stack([np.mgrid[-3:3:0.1, -3:3:0.1].reshape(2, -1).T, np.zeros(3600)])
>>> poles = find_poles(np.vstack([shaft, ground]))
>>> len(poles), round(poles[0].height_m, 1), round(poles[0].radius_m, 2)
(1, 6.0, 0.08)
>>> find_poles(np.empty((0, 3)))
[]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

__all__ = [
    "PoleFit",
    "PoleOptions",
    "find_poles",
    "find_sparse_poles",
    "fit_circle",
    "fit_pole",
    "grid_components",
    "height_above_ground",
    "point_density",
    "pole_seeds",
]


@dataclass(frozen=True, slots=True)
class PoleOptions:
    """Pole detection parameters (metres unless named otherwise).

    ``ground_cell_m``: ground grid (see :func:`height_above_ground`).
    ``seed_min_m``/``seed_max_m``: height band searched for thin sections; ``slice_m``: slice
    thickness; ``cell_m``: occupancy cell in a slice; ``max_width_m``: widest thin section (a
    pole is at most about 0.3 m across); ``min_slice_points``: fewest points of a thin section;
    ``min_stack_m``: least height of stacked thin sections at one place.
    ``max_radius_m``: largest pole radius; ``min_circle_points``: fewer shaft points (airborne
    data) give the axis as their median instead of a fitted circle; ``core_margin_m``: points
    within the radius plus this belong to the shaft; ``ring_m``: a shaft slice has (almost) no
    points between the core and this distance from the axis; ``object_radius_m``: reach of the
    objects attached to a pole.
    ``max_gap_m``: longest vertical gap in the column (occlusion) below its top.
    ``min_height_m``: shortest pole (people are shorter). ``max_tilt_deg``: largest lean.
    ``crown_thickness_m``: attached points whose thinnest spread (1-sigma) is at least this are a
    tree crown, not a panel or lamp head, when they also surround the axis over ``crown_sectors``
    adjacent sectors of 30°; ``min_crown_points``: fewer points never are.
    ``merge_m``: poles closer than this are one.

    Sparse (airborne) surveys, whose densest tenth of 1 m cells holds fewer than
    ``sparse_density`` points per m2, show a pole as a few points in a vertical string: there
    (:func:`find_sparse_poles`) the points at least 1 m above the ground are joined in
    ``sparse_cell_m`` cells, and a group at most ``sparse_max_width_m`` across, spanning at
    least ``sparse_min_span_m`` of height and reaching ``sparse_min_height_m`` is a pole.
    """

    ground_cell_m: float = 1.0
    seed_min_m: float = 0.3
    seed_max_m: float = 3.0
    slice_m: float = 0.25
    cell_m: float = 0.1
    max_width_m: float = 0.5
    min_slice_points: int = 2
    min_stack_m: float = 0.75
    max_radius_m: float = 0.2
    min_circle_points: int = 12
    core_margin_m: float = 0.1
    ring_m: float = 0.5
    object_radius_m: float = 2.5
    max_gap_m: float = 1.0
    min_height_m: float = 2.2
    max_tilt_deg: float = 10.0
    crown_thickness_m: float = 0.08
    min_crown_points: int = 30
    crown_sectors: int = 4
    merge_m: float = 0.5
    sparse_density: float = 150.0
    sparse_cell_m: float = 0.5
    sparse_max_width_m: float = 1.5
    sparse_min_span_m: float = 2.0
    sparse_min_height_m: float = 3.0


@dataclass(frozen=True, slots=True)
class PoleFit:
    """A detected pole: axis ``x``, ``y`` and base height ``z`` (metres, the survey CRS), its
    ``height_m`` above the base, ``radius_m``, lean ``tilt_deg``, the number of shaft ``points``
    and a ``confidence`` in [0, 1]."""

    x: float
    y: float
    z: float
    height_m: float
    radius_m: float
    tilt_deg: float
    points: int
    confidence: float


def grid_components(cells: np.ndarray) -> np.ndarray:
    """Connected components of occupied grid cells: ``cells`` (n, d) holds integer cell indices
    in any number of dimensions (repeats allowed); cells touching by a face, edge or corner are
    joined. Returns each row's component label (n,), numbered from 0.

    A sparse method: memory follows the occupied cells, not the grid's extent.

    >>> grid_components(np.array([[0, 0], [1, 1], [5, 5], [0, 0]])).tolist()
    [0, 0, 1, 0]
    >>> grid_components(np.empty((0, 3), np.int64)).shape
    (0,)
    """
    cells = np.asarray(cells, dtype=np.int64)
    if len(cells) == 0:
        return np.zeros(0, np.int64)
    ucells, inverse = np.unique(cells, axis=0, return_inverse=True)
    lo = ucells.min(axis=0) - 1
    dims = tuple(int(v) for v in ucells.max(axis=0) - lo + 2)
    keys = np.ravel_multi_index(tuple((ucells - lo).T), dims)  # sorted, as ucells is
    ndim = ucells.shape[1]
    offsets = np.array(np.meshgrid(*[[-1, 0, 1]] * ndim, indexing="ij")).reshape(ndim, -1).T
    # half of the offsets: each neighbour pair once
    offsets = offsets[[tuple(o) > (0,) * ndim for o in offsets]]
    rows, cols = [np.arange(len(ucells))], [np.arange(len(ucells))]
    for off in offsets:
        nkeys = np.ravel_multi_index(tuple((ucells - lo + off).T), dims)
        pos = np.clip(np.searchsorted(keys, nkeys), 0, len(keys) - 1)
        hit = keys[pos] == nkeys
        rows.append(np.flatnonzero(hit))
        cols.append(pos[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(len(ucells), len(ucells)))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)[inverse.ravel()]


def height_above_ground(
    xyz: np.ndarray, cell_m: float = 1.0, rank: int = 2, reach_m: float = 3.0, step_m: float = 0.5
) -> np.ndarray:
    """Height (metres) of each point of ``xyz`` (n, 3 metres) above the local ground.

    A cell's ground is its point of ``rank`` from the bottom (0 the lowest), so that a few low
    outliers (multipath, a pulse that hit nothing) do not sink it; cells of ``rank`` points or
    fewer hold no ground. The local ground is the lowest in the 3 x 3 neighbourhood; where that
    is more than ``step_m`` above the lowest within ``reach_m`` (a tree crown or a car roof
    hiding the ground under it), the latter; where there is none, the point's own cell's
    lowest point.

    >>> xyz = np.array([[0.5, 0.5, 1.0], [0.6, 0.5, 3.0], [1.5, 0.5, 2.0], [9.6, 0.5, 2.5]])
    >>> height_above_ground(xyz, rank=0).tolist()
    [0.0, 2.0, 1.0, 0.0]
    >>> height_above_ground(np.array([[0.5, 0.5, -9.0]] + [[0.5, 0.5, 1.0]] * 3))[1:].tolist()
    [0.0, 0.0, 0.0]
    >>> height_above_ground(np.empty((0, 3))).shape
    (0,)
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) == 0:
        return np.zeros(0)
    ij = np.floor((xyz[:, :2] - xyz[:, :2].min(axis=0)) / cell_m).astype(np.int64)
    shape = (int(ij[:, 0].max()) + 1, int(ij[:, 1].max()) + 1)
    key = ij[:, 0] * shape[1] + ij[:, 1]
    order = np.lexsort((xyz[:, 2], key))
    skey = key[order]
    starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
    counts = np.diff(np.r_[starts, len(skey)])
    lowest = np.full(shape[0] * shape[1], np.inf)
    lowest[skey[starts]] = xyz[order[starts], 2]
    grid = np.full(shape[0] * shape[1], np.inf)
    ok = counts > rank
    grid[skey[starts[ok]]] = xyz[order[starts[ok] + rank], 2]
    grid = grid.reshape(shape)
    near = ndimage.minimum_filter(grid, size=3, mode="constant", cval=np.inf)
    k = 2 * max(1, round(reach_m / cell_m)) + 1
    wide = ndimage.minimum_filter(grid, size=k, mode="constant", cval=np.inf)
    with np.errstate(invalid="ignore"):  # empty cells: inf - inf
        ground = np.where(near - wide > step_m, wide, near).ravel()
    ground = np.where(np.isfinite(ground), ground, lowest)
    return xyz[:, 2] - ground[key]


def pole_seeds(
    xyz: np.ndarray, height: np.ndarray, options: PoleOptions | None = None
) -> np.ndarray:
    """Candidate pole axes (k, 2 metres): places where thin sections (see the module docstring)
    stack over at least ``min_stack_m`` between ``seed_min_m`` and ``seed_max_m`` above the
    ground. ``height`` is each point's height above the ground (:func:`height_above_ground`).

    >>> pole_seeds(np.empty((0, 3)), np.empty(0)).shape
    (0, 2)
    """
    o = options or PoleOptions()
    band = np.flatnonzero((height >= o.seed_min_m) & (height < o.seed_max_m))
    if len(band) == 0:
        return np.empty((0, 2))
    k = np.floor((height[band] - o.seed_min_m) / o.slice_m).astype(np.int64)
    ij = np.floor(xyz[band, :2] / o.cell_m).astype(np.int64)
    cells = np.column_stack([k, ij])
    ucells, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    per_cell = np.bincount(inverse, minlength=len(ucells))
    # components within each slice: the slice index as a far-apart coordinate keeps them apart
    spaced = ucells.copy()
    spaced[:, 0] *= 3
    labels = grid_components(spaced)
    n_lab = int(labels.max()) + 1
    count = np.bincount(labels, weights=per_cell, minlength=n_lab)
    lo_i = np.full(n_lab, np.iinfo(np.int64).max)
    hi_i = np.full(n_lab, np.iinfo(np.int64).min)
    lo_j, hi_j = lo_i.copy(), hi_i.copy()
    np.minimum.at(lo_i, labels, ucells[:, 1])
    np.maximum.at(hi_i, labels, ucells[:, 1])
    np.minimum.at(lo_j, labels, ucells[:, 2])
    np.maximum.at(hi_j, labels, ucells[:, 2])
    width = np.maximum(hi_i - lo_i + 1, hi_j - lo_j + 1) * o.cell_m
    thin = (width <= o.max_width_m) & (count >= o.min_slice_points)
    if not thin.any():
        return np.empty((0, 2))
    sx = np.bincount(labels, weights=(ucells[:, 1] + 0.5) * o.cell_m * per_cell, minlength=n_lab)
    sy = np.bincount(labels, weights=(ucells[:, 2] + 0.5) * o.cell_m * per_cell, minlength=n_lab)
    slice_of = np.zeros(n_lab, np.int64)
    slice_of[labels] = ucells[:, 0]
    ids = np.flatnonzero(thin)
    centres = np.column_stack([sx[ids] / count[ids], sy[ids] / count[ids]])
    # thin sections of one pole lie within a few centimetres of each other across slices
    group_m = 0.3
    group = grid_components(np.floor(centres / group_m).astype(np.int64))
    need = max(1, round(o.min_stack_m / o.slice_m))
    seeds = []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if len(np.unique(slice_of[ids[members]])) >= need:
            seeds.append(np.median(centres[members], axis=0))
    return np.array(seeds).reshape(-1, 2)


def fit_circle(
    xy: np.ndarray, radius_range: tuple[float, float] = (0.0, np.inf)
) -> tuple[float, float, float, float]:
    """Least-squares circle through the 2D points ``xy`` (metres): ``(cx, cy, radius, rms)``.

    An algebraic fit refined by Gauss-Newton on the geometric distances; when the radius falls
    outside ``radius_range`` (a short noisy arc) the centre is fitted again with the radius held
    at the nearest bound. Fewer than three points give NaNs.

    >>> a = np.linspace(0, np.pi, 20)  # half a circle
    >>> arc = np.column_stack([1 + 0.1 * np.cos(a), 2 + 0.1 * np.sin(a)])
    >>> [round(v, 3) for v in fit_circle(arc)]
    [1.0, 2.0, 0.1, 0.0]
    >>> fit_circle(np.empty((0, 2)))[2]
    nan
    """
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 3:
        return (np.nan, np.nan, np.nan, np.nan)
    mean = xy.mean(axis=0)
    p = xy - mean
    a = np.column_stack([2 * p, np.ones(len(p))])
    sol, *_ = np.linalg.lstsq(a, (p**2).sum(axis=1), rcond=None)
    c = sol[:2]
    r = float(np.sqrt(max(sol[2] + c @ c, 1e-12)))
    c, r = _refine_circle(p, c, r, free_radius=True)
    lo, hi = radius_range
    if not (lo <= r <= hi) or not np.isfinite(r):
        r = float(np.clip(r if np.isfinite(r) else lo, lo, hi))
        start = p.mean(axis=0) if not np.all(np.isfinite(c)) else c
        c, r = _refine_circle(p, start, r, free_radius=False)
    d = np.hypot(p[:, 0] - c[0], p[:, 1] - c[1]) - r
    return (float(c[0] + mean[0]), float(c[1] + mean[1]), float(r), float(np.sqrt(np.mean(d**2))))


def _refine_circle(
    p: np.ndarray, c: np.ndarray, r: float, free_radius: bool, iterations: int = 20
) -> tuple[np.ndarray, float]:
    c = np.asarray(c, dtype=np.float64).copy()
    for _ in range(iterations):
        dx, dy = p[:, 0] - c[0], p[:, 1] - c[1]
        d = np.maximum(np.hypot(dx, dy), 1e-9)
        res = d - r
        jac = [-dx / d, -dy / d] + ([-np.ones(len(d))] if free_radius else [])
        step, *_ = np.linalg.lstsq(np.column_stack(jac), -res, rcond=None)
        c += step[:2]
        if free_radius:
            r += float(step[2])
        if np.abs(step).max() < 1e-7:
            break
    return c, float(r)


def fit_pole(
    xyz: np.ndarray, height: np.ndarray, seed_xy: np.ndarray, options: PoleOptions | None = None
) -> PoleFit | None:
    """Fit one pole around ``seed_xy`` from the points ``xyz`` (n, 3 metres) near it (within
    ``object_radius_m``) and their ``height`` above the ground; None when the column is not a
    pole (too short, leaning, too thin a shaft or a tree's crown on top).

    >>> fit_pole(np.empty((0, 3)), np.empty(0), np.zeros(2)) is None
    True
    """
    o = options or PoleOptions()
    if len(xyz) == 0:
        return None
    centre = np.asarray(seed_xy, dtype=np.float64)[:2]
    core_r = o.max_radius_m + o.core_margin_m
    # a robust start: the median over the shaft slices of each slice's median position (the
    # narrow bottom of a panel may pass for a shaft slice)
    d = np.hypot(xyz[:, 0] - centre[0], xyz[:, 1] - centre[1])
    shaft = _shaft_mask(d, height, core_r, o)
    if shaft.sum() < 3 * o.min_slice_points:
        return None
    k = np.floor(height[shaft] / o.slice_m).astype(np.int64)
    per_slice = np.array([np.median(xyz[shaft][k == v, :2], axis=0) for v in np.unique(k)])
    centre = np.median(per_slice, axis=0)
    radius = float("nan")
    for _ in range(2):
        d = np.hypot(xyz[:, 0] - centre[0], xyz[:, 1] - centre[1])
        shaft = _shaft_mask(d, height, core_r, o)
        if shaft.sum() < 3 * o.min_slice_points:
            return None
        if shaft.sum() < o.min_circle_points:
            # too few points for a circle (airborne data): the axis is their median
            centre = np.median(xyz[shaft, :2], axis=0)
            spread = np.hypot(*(xyz[shaft, :2] - centre).T)
            radius = float(np.clip(np.median(spread), 0.02, o.max_radius_m))
            continue
        cx, cy, radius, _ = _robust_circle(xyz[shaft, :2], (0.01, o.max_radius_m))
        if not np.isfinite(cx):
            return None
        centre = np.array([cx, cy])
        core_r = radius + o.core_margin_m
    d = np.hypot(xyz[:, 0] - centre[0], xyz[:, 1] - centre[1])
    shaft = _shaft_mask(d, height, core_r, o)
    slices = np.floor(height[shaft] / o.slice_m).astype(np.int64)
    if len(np.unique(slices)) < max(1, round(o.min_stack_m / o.slice_m)):
        return None
    # a noisy arc seen from one side fits a too large circle too, centred too far back: the
    # shaft's width across the view then gives the radius
    width_r = _half_width(xyz[shaft, :2])
    if radius > 1.3 * width_r and shaft.sum() >= o.min_circle_points:
        radius = float(np.clip(width_r, 0.01, o.max_radius_m))
        cx, cy, _, _ = fit_circle(xyz[shaft, :2], (radius, radius))
        if np.isfinite(cx):
            centre = np.array([cx, cy])
            d = np.hypot(xyz[:, 0] - centre[0], xyz[:, 1] - centre[1])
    tilt = _tilt_deg(xyz[shaft], slices)
    if tilt > o.max_tilt_deg:
        return None
    # base: the ground beside the axis, or the ground grid when the foot is hidden
    near = d < max(0.5, core_r + 0.2)
    if np.any(near) and float(np.quantile(height[near], 0.01)) < o.seed_min_m:
        base = float(np.quantile(xyz[near, 2], 0.01))
    else:
        base = float(np.median(xyz[shaft, 2] - height[shaft]))
    # top: the column of core points upward from the shaft, across gaps up to max_gap_m
    core = np.flatnonzero(d < core_r + o.core_margin_m)
    zc = np.sort(xyz[core, 2])
    start = np.searchsorted(zc, float(np.median(xyz[shaft, 2])))
    gaps = np.flatnonzero(np.diff(zc[start:]) > o.max_gap_m)
    end = start + int(gaps[0]) if len(gaps) else len(zc) - 1
    # a stray point above the top (an outlier) has no neighbour within 0.25 m below it
    while end > start and zc[end] - zc[end - 1] > 0.25:
        end -= 1
    top = float(zc[end])
    h = top - base
    if h < o.min_height_m:
        return None
    if _crowned(xyz, d, core_r, base, top, o):
        return None
    n_slices = len(np.unique(slices))
    conf = float(np.clip(0.5 + 0.05 * n_slices, 0.5, 0.95))
    return PoleFit(
        float(centre[0]),
        float(centre[1]),
        base,
        float(h),
        float(radius),
        float(tilt),
        int(shaft.sum()),
        round(conf, 3),
    )


def _robust_circle(
    xy: np.ndarray, radius_range: tuple[float, float], inlier_m: float = 0.02, trials: int = 200
) -> tuple[float, float, float, float]:
    """:func:`fit_circle` on the largest consensus set: circles through random point triples with
    a radius in ``radius_range`` (RANSAC, a fixed seed) keep the points within ``inlier_m``; the
    narrow bottom of a panel or a cable passing by does not pull the axis off."""
    if len(xy) < 3:
        return fit_circle(xy, radius_range)
    rng = np.random.default_rng(len(xy))
    p = xy - xy.mean(axis=0)
    tri = rng.integers(0, len(p), size=(trials, 3))
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    # circumcentres of the triples
    den = 2 * (
        a[:, 0] * (b[:, 1] - c[:, 1])
        + b[:, 0] * (c[:, 1] - a[:, 1])
        + c[:, 0] * (a[:, 1] - b[:, 1])
    )
    ok = np.abs(den) > 1e-12
    sa, sb, sc = (a**2).sum(1), (b**2).sum(1), (c**2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / den
        uy = (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / den
    r = np.hypot(a[:, 0] - ux, a[:, 1] - uy)
    ok &= (r >= radius_range[0]) & (r <= radius_range[1])
    if not ok.any():
        return fit_circle(xy, radius_range)
    ux, uy, r = ux[ok], uy[ok], r[ok]
    res = np.abs(np.hypot(p[:, 0, None] - ux[None], p[:, 1, None] - uy[None]) - r[None])
    best = int(np.argmax((res <= inlier_m).sum(axis=0)))
    keep = res[:, best] <= inlier_m
    if keep.sum() < 3:
        return fit_circle(xy, radius_range)
    return fit_circle(xy[keep], radius_range)


def _half_width(xy: np.ndarray) -> float:
    """Half the extent (2 %-98 %) of 2D points along their principal axis (metres): the
    radius of a shaft seen over at least half its circumference."""
    if len(xy) < 3:
        return float("inf")
    c = xy - xy.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov(c.T))
    proj = c @ vecs[:, 1]
    return float(np.quantile(proj, 0.98) - np.quantile(proj, 0.02)) / 2


def _shaft_mask(d: np.ndarray, height: np.ndarray, core_r: float, o: PoleOptions) -> np.ndarray:
    """Core points (within ``core_r`` of the axis, above ``seed_min_m``) of the slices whose
    ring out to ``ring_m`` is (almost) empty: the bare shaft."""
    core = (d < core_r) & (height >= o.seed_min_m)
    ring = (d >= core_r + 0.05) & (d < o.ring_m)
    k = np.floor(height / o.slice_m).astype(np.int64)
    kmax = int(k.max()) + 1 if len(k) else 1
    n_core = np.bincount(k[core], minlength=kmax)
    n_ring = np.bincount(k[ring & (k >= 0)], minlength=kmax)
    bare = (n_core >= o.min_slice_points) & (n_ring <= np.maximum(1, 0.1 * n_core))
    return core & bare[np.clip(k, 0, kmax - 1)]


def _tilt_deg(pts: np.ndarray, slices: np.ndarray) -> float:
    """Lean (degrees from vertical) of the line through the shaft slices' centres."""
    ks = np.unique(slices)
    if len(ks) < 3:
        return 0.0
    centres = np.array([pts[slices == k].mean(axis=0) for k in ks])
    z = centres[:, 2] - centres[:, 2].mean()
    if np.ptp(z) < 0.5:
        return 0.0
    slope = np.array([np.polyfit(z, centres[:, i], 1)[0] for i in (0, 1)])
    return float(np.degrees(np.arctan(np.hypot(*slope))))


def _crowned(
    xyz: np.ndarray, d: np.ndarray, core_r: float, base: float, top: float, o: PoleOptions
) -> bool:
    """True when a tree crown sits on the column: the points off the core within
    ``object_radius_m`` of the axis, from 0.5 m below the column's top to ``object_radius_m``
    above it, are at least ``min_crown_points``, spread at least ``crown_thickness_m``
    (1-sigma) in their thinnest direction (a panel or a lamp head is thin) and surround the
    axis over at least ``crown_sectors`` adjacent 30° sectors (a panel fills two opposite ones,
    a neighbouring tree's crown reaching over a pole two or three)."""
    z = xyz[:, 2]
    sel = (d >= core_r + 0.1) & (d < o.object_radius_m) & (z > top - 0.5)
    sel &= (z < top + o.object_radius_m) & (z > base + o.seed_min_m)
    if sel.sum() < o.min_crown_points:
        return False
    pts = xyz[sel]
    # stray points (outliers, a far branch) must not make a panel look thick: trim the farthest
    far = np.linalg.norm(pts - np.median(pts, axis=0), axis=1)
    pts = pts[far <= np.quantile(far, 0.9)]
    spread = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(pts.T)), 0.0))
    if spread[0] < o.crown_thickness_m or spread[2] < 0.3:
        return False
    centre = xyz[d < core_r, :2].mean(axis=0) if np.any(d < core_r) else pts[:, :2].mean(axis=0)
    angle = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    full = np.histogram(angle, bins=12, range=(-np.pi, np.pi))[0] >= max(3, 0.02 * len(pts))
    # the longest run of occupied sectors, around the circle
    run = longest = 0
    for v in np.r_[full, full]:
        run = run + 1 if v else 0
        longest = max(longest, run)
    return bool(min(longest, 12) >= o.crown_sectors)


def find_poles(
    xyz: np.ndarray, options: PoleOptions | None = None, height: np.ndarray | None = None
) -> list[PoleFit]:
    """Poles among the points ``xyz`` (n, 3 metres; ground and objects alike), ordered by x.

    ``height`` (n,) above the ground is computed with :func:`height_above_ground` when not given.
    A sparse (airborne) survey goes to :func:`find_sparse_poles`.
    """
    o = options or PoleOptions()
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) == 0:
        return []
    if height is None:
        height = height_above_ground(xyz, o.ground_cell_m)
    if point_density(xyz) < o.sparse_density:
        return find_sparse_poles(xyz, height, o)
    seeds = pole_seeds(xyz, height, o)
    if len(seeds) == 0:
        return []
    # the neighbourhoods of the seeds only (grid cells as large as the reach): a tree over the
    # few points near any seed
    cell = np.floor(xyz[:, :2] / o.object_radius_m).astype(np.int64)
    around = np.floor(seeds / o.object_radius_m).astype(np.int64)
    around = (around[:, None, :] + np.mgrid[-1:2, -1:2].reshape(2, -1).T[None]).reshape(-1, 2)
    big = 1 << 31
    local = np.flatnonzero(
        np.isin(cell[:, 0] * big + cell[:, 1], around[:, 0] * big + around[:, 1])
    )
    tree = cKDTree(xyz[local, :2])
    fits: list[PoleFit] = []
    for seed in seeds:
        idx = local[tree.query_ball_point(seed, o.object_radius_m)]
        fit = fit_pole(xyz[idx], height[idx], seed, o)
        if fit is not None:
            fits.append(fit)
    # one pole seeded twice (two stacks split by a panel): keep the better-sampled fit
    fits.sort(key=lambda f: -f.points)
    kept: list[PoleFit] = []
    for f in fits:
        if all(np.hypot(f.x - k.x, f.y - k.y) >= o.merge_m for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: (f.x, f.y))


def point_density(xyz: np.ndarray, quantile: float = 0.9) -> float:
    """Points per m2 in the densest cells: the ``quantile`` of the counts of the occupied 1 m
    cells (a mobile survey holds thousands near the vehicle, an airborne one tens).

    >>> point_density(np.zeros((5, 3)))
    5.0
    >>> point_density(np.empty((0, 3)))
    0.0
    """
    if len(xyz) == 0:
        return 0.0
    cells = np.floor(np.asarray(xyz)[:, :2]).astype(np.int64)
    cells -= cells.min(axis=0)
    _, counts = np.unique(
        cells[:, 0] * (int(cells[:, 1].max()) + 1) + cells[:, 1], return_counts=True
    )
    return float(np.quantile(counts, quantile))


def find_sparse_poles(
    xyz: np.ndarray, height: np.ndarray, options: PoleOptions | None = None
) -> list[PoleFit]:
    """Poles in a sparse (airborne) survey: isolated narrow strings of points standing at least
    1 m above the ground (see :class:`PoleOptions`, ``sparse_*``), ordered by x. The axis is
    the median of the string's lower half (a lamp head leans over the road); the radius is not
    measurable and is given as 0.1 m, the confidence as 0.5.

    >>> string = np.column_stack([np.zeros(6), np.zeros(6), np.arange(1.0, 7.0)])
    >>> ground = np.column_stack([np.mgrid[-3:3:0.25, -3:3:0.25].reshape(2, -1).T, np.zeros(576)])
    >>> [round(p.height_m, 1) for p in find_sparse_poles(np.vstack([string, ground]),
    ...                                                    np.r_[string[:, 2], np.zeros(576)])]
    [6.0]
    """
    o = options or PoleOptions()
    sel = np.flatnonzero(np.asarray(height) >= 1.0)
    if len(sel) == 0:
        return []
    labels = grid_components(np.floor(xyz[sel, :2] / o.sparse_cell_m).astype(np.int64))
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    out = []
    for group in np.split(order, cuts):
        idx = sel[group]
        h = height[idx]
        if len(idx) < 3 or float(np.ptp(xyz[idx, :2], axis=0).max()) > o.sparse_max_width_m:
            continue
        if float(np.ptp(h)) < o.sparse_min_span_m or float(h.max()) < o.sparse_min_height_m:
            continue
        low = idx[h <= np.median(h)]
        x, y = np.median(xyz[low, :2], axis=0)
        base = float(np.median(xyz[idx, 2] - h))
        top = float(xyz[idx, 2].max())
        out.append(PoleFit(float(x), float(y), base, top - base, 0.1, 0.0, len(idx), 0.5))
    return sorted(out, key=lambda f: (f.x, f.y))
