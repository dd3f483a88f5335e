"""Road-surface segmentation: which points lie on the drivable road surface.

A grid of local lowest points (``cell_m`` squares) is the ground estimate. Neighbouring cells are
joined when their lowest points differ by at most ``max_step_m``: a curb face (10-20 cm) or a
car body breaks the join, while slope and crown (a few centimetres per cell) do not. The road is
the joined region under the trajectory (or the largest region when no trajectory is given), and a
point is on the road surface when it lies within ``height_tolerance_m`` of its cell's ground.

>>> xy = np.mgrid[0:10:0.05, 0:6:0.05].reshape(2, -1).T
>>> z = np.where(xy[:, 1] > 4.0, 0.15, 0.0)  # a curb at y = 4 m
>>> mask = road_surface_mask(np.column_stack([xy, z]), GroundOptions(cell_m=0.25))
>>> bool(mask[xy[:, 1] < 3.9].all()), bool(mask[xy[:, 1] > 4.1].any())
(True, False)
>>> road_surface_mask(np.empty((0, 3))).shape
(0,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "GroundOptions",
    "derive_cell_m",
    "ground_height",
    "lateral_road_mask",
    "road_surface_mask",
]


@dataclass(frozen=True, slots=True)
class GroundOptions:
    """Road-surface segmentation parameters (metres).

    ``cell_m``: ground grid cell; None derives it from the point density (``points_per_cell``
    points at the median density, clamped to 0.15-1.0 m): small enough to keep a line 0.1 m from a
    curb apart from the curb face. ``max_step_m``: largest height change between neighbouring road
    cells (below a curb). ``height_tolerance_m``: how far above its cell's lowest point a point may
    be and still count as surface. ``flat_window_m``: points up to this height above a cell's
    lowest point decide whether the cell is flat (its height range at most ``max_step_m``).
    ``row_m``/``max_jump_m``: with a road frame, cells are rows ``row_m`` long across the road,
    grown outward from the trajectory and jumping over at most ``max_jump_m`` of empty or
    non-flat cells or cells more than ``object_step_m`` above the road (a parked car) to
    surface at the same height; a smaller step (a curb) stops the row, and so does a climb of
    more than ``max_step_m`` plus ``max_cross_slope`` (road cross-fall) over 0.5 m.
    ``seed_radius_m``: cells within this distance of the trajectory seed the road.
    """

    cell_m: float | None = None
    points_per_cell: float = 10.0
    max_step_m: float = 0.06
    height_tolerance_m: float = 0.08
    seed_radius_m: float = 3.0
    flat_window_m: float = 0.5
    row_m: float = 0.5
    max_cross_slope: float = 0.06
    object_step_m: float = 0.3
    max_jump_m: float = 3.0


def derive_cell_m(xyz: np.ndarray, points_per_cell: float = 20.0) -> float:
    """A ground cell size (metres) holding about ``points_per_cell`` points at the survey's
    median density (measured on a 1 m grid), clamped to 0.15-1.0 m.

    >>> derive_cell_m(np.empty((0, 3)))
    0.5
    """
    if len(xyz) == 0:
        return 0.5
    cells = np.floor(xyz[:, :2]).astype(np.int64)
    _, counts = np.unique(cells[:, 0] * 2_000_003 + cells[:, 1], return_counts=True)
    density = float(np.median(counts))
    return float(np.clip(np.sqrt(points_per_cell / max(density, 1e-9)), 0.15, 1.0))


def _cell_ids(xy: np.ndarray, cell_m: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    ij = np.floor((xy - xy.min(axis=0)) / cell_m).astype(np.int64)
    shape = (int(ij[:, 0].max()) + 1, int(ij[:, 1].max()) + 1)
    return ij, ij[:, 0] * shape[1] + ij[:, 1], shape


def ground_height(xyz: np.ndarray, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point: its cell's flat index and the cell's lowest z (metres), as two (n,) arrays."""
    _, flat, shape = _cell_ids(xyz[:, :2], cell_m)
    low = np.full(shape[0] * shape[1], np.inf)
    np.minimum.at(low, flat, xyz[:, 2])
    return flat, low[flat]


def road_surface_mask(
    xyz: np.ndarray,
    options: GroundOptions | None = None,
    trajectory_xy: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean (n,) mask of the points of ``xyz`` (n, 3 metres) on the road surface.

    ``trajectory_xy`` (m, 2) metres in the same CRS seeds the road; without it the largest
    connected ground region is taken.
    """
    options = options or GroundOptions()
    n = len(xyz)
    if n == 0:
        return np.zeros(0, dtype=bool)
    cell_m = options.cell_m or derive_cell_m(xyz, options.points_per_cell)
    origin = xyz[:, :2].min(axis=0)
    _, flat, shape = _cell_ids(xyz[:, :2], cell_m)
    ncell = shape[0] * shape[1]
    low = np.full(ncell, np.inf)
    np.minimum.at(low, flat, xyz[:, 2])
    occupied = np.isfinite(low)
    # a cell holding a curb face or a car's side is not flat: it cannot join the road
    flat_cell = occupied & _flat_cells(flat, xyz[:, 2] - low[flat], ncell, options)
    grid = np.where(flat_cell, low, np.nan).reshape(shape)
    rows, cols = [], []
    for di, dj in ((1, 0), (0, 1)):
        a = grid[: shape[0] - di, : shape[1] - dj]
        b = grid[di:, dj:]
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= options.max_step_m)
        ia, ja = np.nonzero(ok)
        rows.append(ia * shape[1] + ja)
        cols.append((ia + di) * shape[1] + ja + dj)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(ncell, ncell))
    _, label = connected_components(graph, directed=False)
    road_labels: np.ndarray
    if trajectory_xy is not None and len(trajectory_xy):
        seeds = _seed_cells(np.asarray(trajectory_xy)[:, :2], origin, cell_m, shape, options)
        seeds = seeds[flat_cell[seeds]]
        road_labels = np.unique(label[seeds]) if len(seeds) else np.empty(0, np.int64)
        # a seed region much smaller than the largest is a car roof or noise, not the road
        sizes = np.bincount(label[flat_cell], minlength=label.max() + 1)
        if len(road_labels):
            road_labels = road_labels[sizes[road_labels] >= 0.2 * sizes[road_labels].max()]
    else:
        road_labels = np.empty(0, np.int64)
    if len(road_labels) == 0:
        sizes = np.bincount(label[flat_cell], minlength=label.max() + 1)
        road_labels = np.array([int(np.argmax(sizes))])
    road_cell = np.isin(label, road_labels) & flat_cell
    return road_cell[flat] & (xyz[:, 2] - low[flat] <= options.height_tolerance_m)


def _flat_cells(flat: np.ndarray, dz: np.ndarray, ncell: int, options: GroundOptions) -> np.ndarray:
    """Cells where fewer than 2 points (and under 10 %) stand between ``max_step_m`` and
    ``flat_window_m`` above the lowest: isolated outliers do not spoil a flat cell."""
    total = np.bincount(flat, minlength=ncell)
    raised = (dz > options.max_step_m) & (dz < options.flat_window_m)
    high = np.bincount(flat[raised], minlength=ncell)
    return (high < 2) | (high < 0.1 * total)


def _seed_cells(
    traj_xy: np.ndarray,
    origin: np.ndarray,
    cell_m: float,
    shape: tuple[int, int],
    options: GroundOptions,
) -> np.ndarray:
    steps = max(1, int(np.ceil(options.seed_radius_m / cell_m)))
    base = np.floor((traj_xy - origin) / cell_m).astype(np.int64)
    offs = np.arange(-steps, steps + 1)
    di, dj = np.meshgrid(offs, offs, indexing="ij")
    near = (di**2 + dj**2) * cell_m**2 <= options.seed_radius_m**2
    cand = (base[:, None, :] + np.stack([di[near], dj[near]], axis=1)[None]).reshape(-1, 2)
    inside = (
        (cand[:, 0] >= 0) & (cand[:, 0] < shape[0]) & (cand[:, 1] >= 0) & (cand[:, 1] < shape[1])
    )
    cand = cand[inside]
    return np.unique(cand[:, 0] * shape[1] + cand[:, 1])


def lateral_road_mask(
    s: np.ndarray,
    t: np.ndarray,
    z: np.ndarray,
    options: GroundOptions | None = None,
) -> np.ndarray:
    """Road-surface mask (n,) from points in a road frame: ``s`` along and ``t`` across the
    trajectory (metres, trajectory at t = 0) and ``z`` heights (metres).

    Each row across the road is grown from t = 0 outward on both sides while neighbouring flat
    cells step by at most ``max_step_m``; a curb stops it, a parked car is jumped over when the
    surface beyond is at the road's height. Rows without a flat cell near the trajectory are
    empty.

    >>> t = np.tile(np.arange(-6, 6, 0.05), 40); s = np.repeat(np.arange(0, 4, 0.1), 240)
    >>> z = np.where(t < -3.0, 0.12, 0.0)
    >>> m = lateral_road_mask(s, t, z, GroundOptions(cell_m=0.25))
    >>> bool(m[t > -2.9].all()), bool(m[t < -3.1].any())
    (True, False)
    """
    options = options or GroundOptions()
    n = len(z)
    if n == 0:
        return np.zeros(0, dtype=bool)
    cell_m = options.cell_m or derive_cell_m(np.column_stack([s, t, z]), options.points_per_cell)
    si = np.floor((s - s.min()) / options.row_m).astype(np.int64)
    t_lim = np.abs(t).max() + cell_m
    ti = np.floor((t + t_lim) / cell_m).astype(np.int64)
    shape = (int(si.max()) + 1, int(ti.max()) + 1)
    flat = si * shape[1] + ti
    low = np.full(shape[0] * shape[1], np.inf)
    np.minimum.at(low, flat, z)
    ok = np.isfinite(low) & _flat_cells(flat, z - low[flat], shape[0] * shape[1], options)
    grid = np.where(ok, low, np.nan).reshape(shape)
    road = np.zeros(shape, dtype=bool)
    centre = int(np.floor(t_lim / cell_m))
    seed_cells = max(1, int(np.ceil(options.seed_radius_m / cell_m)))
    max_jump = max(1, int(np.round(options.max_jump_m / cell_m)))
    rows = np.arange(shape[0])
    accepted = np.full(shape, np.nan)
    back = max(2, round(0.5 / cell_m))  # compare with the road 0.5 m back too
    climb = options.max_step_m + options.max_cross_slope * back * cell_m
    for direction in (1, -1):
        # start at the flat cell nearest t = 0 within the seed radius
        last_z = np.full(shape[0], np.nan)
        last_j = np.full(shape[0], -1)
        for k in range(seed_cells):
            j = centre + direction * k
            if not 0 <= j < shape[1]:
                break
            take = np.isnan(last_z) & np.isfinite(grid[:, j])
            last_z[take] = grid[take, j]
            last_j[take] = j
        alive = np.isfinite(last_z)
        road[rows[alive], last_j[alive]] = True
        accepted[rows[alive], last_j[alive]] = last_z[alive]
        j = centre
        while alive.any():
            j += direction
            if not 0 <= j < shape[1]:
                break
            col = grid[:, j]
            with np.errstate(invalid="ignore"):
                cont = alive & np.isfinite(col) & (np.abs(col - last_z) <= options.max_step_m)
                jb = j - direction * back
                if 0 <= jb < shape[1]:
                    ref = accepted[:, jb]
                    # a curb face sampled by sparse scan lines climbs in small steps
                    cont &= np.isnan(ref) | (np.abs(col - ref) <= climb)
            cont &= (j - last_j) * direction > 0
            road[cont, j] = True
            accepted[cont, j] = col[cont]
            last_z[cont] = col[cont]
            last_j[cont] = j
            # a curb-like step stops the row; a higher one is an object (car) to jump over
            with np.errstate(invalid="ignore"):
                curb_like = np.abs(col - last_z) <= options.object_step_m
            stopped = alive & np.isfinite(col) & ~cont & curb_like & ((j - last_j) * direction > 0)
            too_far = np.abs(j - last_j) > max_jump
            alive &= ~(stopped & (np.abs(j - last_j) <= 1)) & ~too_far
    return road.ravel()[flat] & (z - low[flat] <= options.height_tolerance_m)
