"""Survey preview: a top-down PNG of a point cloud's intensity, with map features drawn on top.

Points arrive in chunks and are binned into one raster as they come (only the raster is kept, so
memory is bounded by the image size, not the survey size). Each cell shows the mean intensity
of its points, or the point count when the survey has no intensity, stretched between the 2nd
and 98th percentile to grey; cells without points get the distinct colour :data:`EMPTY_RGB`.
The automatic cell size starts from :func:`choose_pixel_m` (long side at most 4000 cells, no
finer than 5 cm), then merges blocks of cells of sparse clouds (:func:`merge_sparse_cells`).

The PNG is the raster, north up, its top-left corner at ``(bounds_xy[0], bounds_xy[3])`` (see
:attr:`PreviewResult.bounds_xy`); each cell of ``pixel_m`` metres is drawn as ``scale`` x
``scale`` image pixels, ``scale`` being the whole number that brings a small raster's long side
to at least :data:`MIN_IMAGE_SIDE_PX` (so that labels stay legible). The title and CRS label,
the legend and a scale bar in metres are drawn inside the image. A survey without a single
point inside the bounds gives a valid image of :data:`EMPTY_RGB` (with the
overlay, if any) and ``points == 0``: an empty preview is an answer, not an error.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "preview.png"
>>> xyz = np.array([[0.5, 0.5, 5.0], [9.5, 4.5, 5.0]])
>>> result = render_preview([(xyz, np.array([10, 200]))], (0.0, 0.0, 10.0, 5.0), out)
>>> (result.width_px, result.height_px, result.scale, result.pixel_m, result.points)
(1000, 500, 5, 0.05, 2)
>>> render_preview([], (0.0, 0.0, 10.0, 5.0), out).points  # nothing inside: an empty image
0
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.offsetbox import AnchoredText
from matplotlib.patches import Patch
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from pipeline.files import atomic_path
from pipeline.model import Color, MapModel, MarkingKind, RoadEdgeKind

__all__ = [
    "EMPTY_RGB",
    "LIMIT_SIDE_PX",
    "MAX_SIDE_PX",
    "MIN_IMAGE_SIDE_PX",
    "MIN_PIXEL_M",
    "PreviewGrid",
    "PreviewRaster",
    "PreviewResult",
    "choose_pixel_m",
    "grey_image",
    "merge_sparse_cells",
    "rasterize",
    "render_preview",
]

MAX_SIDE_PX = 4000  # automatic pixel size: the long side is at most this many pixels
MIN_PIXEL_M = 0.05  # ... and the pixels no finer than this
LIMIT_SIDE_PX = 20000  # an explicit pixel size may not make a side longer than this
MIN_IMAGE_SIDE_PX = 1000  # smaller rasters are enlarged (whole cells) to at least this
EMPTY_RGB = (34, 40, 70)  # cells without points: dark slate blue, never a grey
STRETCH_PERCENTILES = (2.0, 98.0)
POINTS_PER_CELL = 4.0  # automatic cells are merged until occupied ones hold this many points
MIN_MERGED_SIDE = 200  # ... but not below this many cells on the long side
_MERGE_FACTORS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64)
DPI = 100

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class PreviewGrid:
    """The raster: top-left corner ``(minx, maxy)`` in metres, square pixels of ``pixel_m``."""

    minx: float
    maxy: float
    pixel_m: float
    width_px: int
    height_px: int

    @classmethod
    def from_bounds(cls, bounds_xy: Bounds, pixel_m: float | None = None) -> PreviewGrid:
        """The grid covering ``bounds_xy`` (minx, miny, maxx, maxy metres).

        ``pixel_m`` None chooses one (:func:`choose_pixel_m`). Raises ValueError on inverted or
        non-finite bounds, or an explicit ``pixel_m`` that would exceed :data:`LIMIT_SIDE_PX`.

        >>> PreviewGrid.from_bounds((0, 0, 10, 5), 0.5)
        PreviewGrid(minx=0.0, maxy=5.0, pixel_m=0.5, width_px=20, height_px=10)
        """
        minx, miny, maxx, maxy = (float(v) for v in bounds_xy)
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
            raise ValueError(f"bounds {bounds_xy} are not finite")
        if maxx <= minx or maxy <= miny:
            raise ValueError(f"bounds {bounds_xy} are empty or inverted (minx, miny, maxx, maxy)")
        if pixel_m is None:
            pixel_m = choose_pixel_m(bounds_xy)
        elif not (math.isfinite(pixel_m) and pixel_m > 0):
            raise ValueError(f"pixel size {pixel_m} m must be positive")
        width = max(1, math.ceil((maxx - minx) / pixel_m - 1e-9))
        height = max(1, math.ceil((maxy - miny) / pixel_m - 1e-9))
        if max(width, height) > LIMIT_SIDE_PX:
            raise ValueError(
                f"pixel size {pixel_m:g} m gives a {width} x {height} px image; at most "
                f"{LIMIT_SIDE_PX} px per side: choose a larger pixel size"
            )
        return cls(minx, maxy, float(pixel_m), width, height)

    @property
    def bounds_xy(self) -> Bounds:
        """The area the image covers (minx, miny, maxx, maxy), at least the requested bounds."""
        return (
            self.minx,
            self.maxy - self.height_px * self.pixel_m,
            self.minx + self.width_px * self.pixel_m,
            self.maxy,
        )

    def cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell index (row-major, row 0 at the top) of the points inside, and their mask.

        >>> PreviewGrid(0.0, 2.0, 1.0, 2, 2).cells(np.array([[0.5, 1.5], [1.5, 0.5], [5.0, 5.0]]))
        (array([0, 3]), array([ True,  True, False]))
        """
        minx, miny, maxx, maxy = self.bounds_xy
        x, y = xy[:, 0], xy[:, 1]
        inside = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)  # NaN is never inside
        col = np.minimum(((x[inside] - minx) / self.pixel_m).astype(np.int64), self.width_px - 1)
        row = np.minimum(((maxy - y[inside]) / self.pixel_m).astype(np.int64), self.height_px - 1)
        return row * self.width_px + col, inside


@dataclass(frozen=True, slots=True, eq=False)
class PreviewRaster:
    """Per-cell sums on a grid: point ``counts`` (h, w), intensity ``sums`` (None when no point
    had intensity) and ``weighed`` (points that had intensity; None when all had)."""

    grid: PreviewGrid
    counts: np.ndarray
    sums: np.ndarray | None
    weighed: np.ndarray | None
    points: int

    @property
    def shading(self) -> str:
        """``"intensity"`` (mean per cell) or ``"point count"``."""
        return "point count" if self.sums is None else "intensity"

    @property
    def values(self) -> np.ndarray:
        """(h, w) float64: mean intensity (or point count) per cell, NaN where no point fell."""
        counts = self.counts
        if self.sums is None:
            return np.where(counts > 0, counts.astype(np.float64), np.nan)
        divisor = counts if self.weighed is None else self.weighed
        values = np.full(counts.shape, np.nan)
        np.divide(self.sums, divisor, out=values, where=divisor > 0)
        if self.weighed is not None and np.any(divisor > 0):
            values[(counts > 0) & (divisor == 0)] = np.nanmin(values)  # no intensity: darkest
        return values

    def merged(self, factor: int) -> PreviewRaster:
        """The raster with ``factor`` x ``factor`` blocks of cells merged into one.

        >>> grid = PreviewGrid(0.0, 2.0, 1.0, 2, 2)
        >>> r = rasterize([(np.array([[0.5, 0.5, 0], [1.5, 1.5, 0]]), np.array([10, 30]))], grid)
        >>> r.merged(2).values.tolist(), r.merged(2).grid.pixel_m
        ([[20.0]], 2.0)
        """
        if factor == 1:
            return self
        g = self.grid
        height, width = -(-g.height_px // factor), -(-g.width_px // factor)

        def pool(cells: np.ndarray | None) -> np.ndarray | None:
            if cells is None:
                return None
            padded = np.zeros((height * factor, width * factor), dtype=cells.dtype)
            padded[: g.height_px, : g.width_px] = cells
            return padded.reshape(height, factor, width, factor).sum(axis=(1, 3), dtype=cells.dtype)

        grid = PreviewGrid(g.minx, g.maxy, round(g.pixel_m * factor, 12), width, height)
        return PreviewRaster(
            grid, pool(self.counts), pool(self.sums), pool(self.weighed), self.points
        )


def merge_sparse_cells(
    raster: PreviewRaster,
    points_per_cell: float = POINTS_PER_CELL,
    min_side: int = MIN_MERGED_SIDE,
) -> PreviewRaster:
    """Merge blocks of cells until occupied cells hold ``points_per_cell`` points on average,
    so that sparse clouds do not come out as speckle; the long side keeps at least
    ``min_side`` cells and blocks are at most 64 x 64.

    >>> grid = PreviewGrid(0.0, 4.0, 1.0, 4, 4)
    >>> xyz = np.array([[x + 0.5, y + 0.5, 0.0] for x in range(4) for y in range(4)])
    >>> merge_sparse_cells(rasterize([(xyz, None)], grid), min_side=2).grid.pixel_m
    2.0
    >>> merge_sparse_cells(rasterize([], grid)).grid.pixel_m  # nothing to merge
    1.0
    """
    occupied = int(np.count_nonzero(raster.counts))
    long_side = max(raster.grid.width_px, raster.grid.height_px)
    chosen = raster
    for factor in _MERGE_FACTORS:
        if factor > 1 and -(-long_side // factor) < min_side:
            break
        chosen = raster.merged(factor)
        occupied = int(np.count_nonzero(chosen.counts))
        if not occupied or raster.points / occupied >= points_per_cell:
            break
    return chosen


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """The written PNG and its geometry: image pixel ``(0, 0)`` is the north-west corner.

    ``width_px`` x ``height_px`` is the PNG's size; ``pixel_m`` the raster cell size in metres,
    each cell drawn as ``scale`` x ``scale`` image pixels (one image pixel is
    ``pixel_m / scale`` metres); ``bounds_xy`` the area covered (minx, miny, maxx, maxy).
    """

    path: Path
    width_px: int
    height_px: int
    pixel_m: float
    points: int
    shading: str
    bounds_xy: Bounds
    scale: int


def choose_pixel_m(
    bounds_xy: Bounds, max_side_px: int = MAX_SIDE_PX, min_pixel_m: float = MIN_PIXEL_M
) -> float:
    """The pixel size (metres) that fits the long side into ``max_side_px``, never below
    ``min_pixel_m``, rounded up to two significant digits.

    >>> choose_pixel_m((0, 0, 2000, 300))
    0.5
    >>> choose_pixel_m((0, 0, 2149, 10))
    0.54
    >>> choose_pixel_m((0, 0, 20, 10))  # small areas stop at 5 cm
    0.05
    """
    span = max(float(bounds_xy[2]) - float(bounds_xy[0]), float(bounds_xy[3]) - float(bounds_xy[1]))
    pixel = span / max_side_px
    if pixel <= min_pixel_m:
        return min_pixel_m
    step = 10.0 ** (math.floor(math.log10(pixel)) - 1)
    return round(math.ceil(pixel / step - 1e-9) * step, 12)


def rasterize(
    chunks: Iterable[tuple[np.ndarray, np.ndarray | None]], grid: PreviewGrid
) -> PreviewRaster:
    """Bin chunks of points ((n, 3) metres, intensity (n,) or None) into ``grid``, one at a time.

    Mean intensity per cell when any chunk has intensity, else the point count per cell.

    >>> grid = PreviewGrid(0.0, 1.0, 1.0, 2, 1)
    >>> r = rasterize([(np.array([[0.2, 0.5, 0], [0.7, 0.5, 0]]), np.array([10, 30]))], grid)
    >>> r.values.tolist(), r.shading, r.points
    ([[20.0, nan]], 'intensity', 2)
    >>> rasterize([], grid).values.tolist()
    [[nan, nan]]
    """
    size = grid.width_px * grid.height_px
    counts = np.zeros(size, dtype=np.uint32)
    sums: np.ndarray | None = None  # float32 intensity sums, allocated at the first intensity
    weighed: np.ndarray | None = None  # points with intensity, only when some chunks lack it
    points = 0
    for xyz, intensity in chunks:
        xyz = np.asarray(xyz)
        if xyz.ndim != 2 or xyz.shape[1] < 2:
            raise ValueError(f"a chunk's xyz must be (n, 3), not {xyz.shape}")
        if intensity is not None and len(intensity) != len(xyz):
            raise ValueError(f"{len(intensity)} intensities for {len(xyz)} points")
        index, inside = grid.cells(xyz)
        if index.size == 0:
            continue
        if intensity is None:
            if sums is not None and weighed is None:
                weighed = counts.copy()
        else:
            if sums is None:
                sums = np.zeros(size, dtype=np.float32)
                if points:
                    weighed = np.zeros(size, dtype=np.uint32)
            _add(sums, index, np.asarray(intensity)[inside].astype(np.float64))
            if weighed is not None:
                _add(weighed, index)
        _add(counts, index)
        points += int(index.size)

    shape = (grid.height_px, grid.width_px)
    return PreviewRaster(
        grid,
        counts.reshape(shape),
        None if sums is None else sums.reshape(shape),
        None if weighed is None else weighed.reshape(shape),
        points,
    )


def _add(target: np.ndarray, index: np.ndarray, weights: np.ndarray | None = None) -> None:
    """target[index] += weights (or 1), binning only the span of cells this chunk touches."""
    lo, hi = int(index.min()), int(index.max())
    binned = np.bincount(index - lo, weights=weights, minlength=hi - lo + 1)
    target[lo : hi + 1] += binned.astype(target.dtype, copy=False)


def grey_image(
    values: np.ndarray,
    percentiles: tuple[float, float] = STRETCH_PERCENTILES,
    empty_rgb: tuple[int, int, int] = EMPTY_RGB,
) -> np.ndarray:
    """(h, w, 3) uint8: values stretched between two percentiles to grey, NaN cells ``empty_rgb``.

    >>> grey_image(np.array([[0.0, 50.0, 100.0, np.nan]]), (0, 100))[0].tolist()
    [[0, 0, 0], [127, 127, 127], [255, 255, 255], [34, 40, 70]]
    """
    filled = np.isfinite(values)
    rgb = np.empty((*values.shape, 3), dtype=np.uint8)
    rgb[...] = np.asarray(empty_rgb, dtype=np.uint8)
    if filled.any():
        low, high = np.percentile(values[filled], percentiles)
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = np.clip((values[filled] - low) * scale, 0, 255)
        if high <= low:
            grey[:] = 160  # one value everywhere: a uniform light grey
        rgb[filled] = np.rint(grey).astype(np.uint8)[:, None]
    return rgb


def render_preview(
    chunks: Iterable[tuple[np.ndarray, np.ndarray | None]],
    bounds_xy: Bounds,
    out_png: str | os.PathLike[str],
    *,
    pixel_m: float | None = None,
    overlay: MapModel | None = None,
    title: str = "",
    crs_label: str = "",
) -> PreviewResult:
    """Render the points of ``chunks`` inside ``bounds_xy`` (metres, minx, miny, maxx, maxy) to
    the PNG ``out_png`` (written atomically), with ``overlay``'s features drawn on top.

    ``chunks`` yields ``(xyz, intensity)``: (n, 3) float metres and (n,) values or None.
    ``pixel_m`` is the raster cell size in metres; None chooses it: :func:`choose_pixel_m` for
    the binning, then :func:`merge_sparse_cells` so that sparse clouds give solid cells.
    ``overlay`` must be in the same CRS as the points (only coordinates are drawn; nothing is
    reprojected). ``title`` and ``crs_label`` are printed top left with the cell size and the
    point count.
    Raises ValueError on bad bounds or pixel size (see :meth:`PreviewGrid.from_bounds`).
    """
    raster = rasterize(chunks, PreviewGrid.from_bounds(bounds_xy, pixel_m))
    if pixel_m is None:
        raster = merge_sparse_cells(raster)
    grid = raster.grid
    rgb = grey_image(raster.values)

    scale = _enlargement(grid)
    width_px, height_px = grid.width_px * scale, grid.height_px * scale
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    minx, miny, maxx, maxy = grid.bounds_xy
    axes.imshow(rgb, extent=(minx, maxx, miny, maxy), origin="upper", interpolation="nearest")
    axes.set_xlim(minx, maxx)
    axes.set_ylim(miny, maxy)
    axes.set_axis_off()
    font = float(np.clip(min(width_px, height_px) / 40, 6, 11))

    handles = _draw_overlay(axes, overlay) if overlay is not None else []
    if np.isnan(raster.values).any():
        handles.append(Patch(color=np.asarray(EMPTY_RGB) / 255, label="no points"))
    if handles:
        legend = axes.legend(
            handles=handles,
            loc="upper right",
            fontsize=font * 0.85,
            facecolor="black",
            framealpha=0.6,
            edgecolor="none",
            labelcolor="white",
        )
        legend.set_zorder(10)

    lines = [title] if title else []
    details = [crs_label] if crs_label else []
    details.append(f"{grid.pixel_m:g} m cells")
    details.append(f"{raster.points:,} points ({raster.shading})" if raster.points else "no points")
    lines.append(" · ".join(details))
    label = AnchoredText(
        "\n".join(lines),
        loc="upper left",
        prop={"size": font, "color": "white"},
        frameon=True,
        pad=0.4,
        borderpad=0.5,
    )
    label.patch.set_facecolor("black")
    label.patch.set_alpha(0.6)
    label.patch.set_edgecolor("none")
    label.set_zorder(10)
    axes.add_artist(label)
    _add_scale_bar(axes, grid, scale, font)

    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return PreviewResult(
        Path(out_png),
        width_px,
        height_px,
        grid.pixel_m,
        raster.points,
        raster.shading,
        grid.bounds_xy,
        scale,
    )


def _enlargement(grid: PreviewGrid) -> int:
    """Image pixels per cell: enough for :data:`MIN_IMAGE_SIDE_PX`, within :data:`MAX_SIDE_PX`."""
    long_side = max(grid.width_px, grid.height_px)
    return max(1, min(math.ceil(MIN_IMAGE_SIDE_PX / long_side), MAX_SIDE_PX // long_side))


def _nice_length(span_m: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``span_m``."""
    power = 10.0 ** math.floor(math.log10(span_m))
    return max(m * power for m in (1, 2, 5) if m * power <= span_m)


def _add_scale_bar(axes, grid: PreviewGrid, scale: int, font: float) -> None:
    length = _nice_length(grid.width_px * grid.pixel_m / 5)
    text = f"{length:g} m" if length >= 1 else f"{length * 100:g} cm"
    bar = AnchoredSizeBar(
        axes.transData,
        length,
        text,
        loc="lower left",
        pad=0.4,
        borderpad=0.6,
        sep=3,
        color="white",
        frameon=True,
        size_vertical=grid.pixel_m / scale * 3,
        fontproperties={"size": font},
    )
    bar.patch.set_facecolor("black")
    bar.patch.set_alpha(0.6)
    bar.patch.set_edgecolor("none")
    bar.set_zorder(10)
    axes.add_artist(bar)


# Overlay styles: colour by paint colour, line style by marking.
_PAINT = {Color.WHITE: "#00e5ff", Color.YELLOW: "#ffd000", Color.UNKNOWN: "#c58cff"}
_MARKING = {
    MarkingKind.SOLID: ("-", 1.4),
    MarkingKind.DASHED: ((0, (4, 3)), 1.4),
    MarkingKind.DOUBLE_SOLID: ("-", 2.8),
    MarkingKind.SOLID_DASHED: ("-.", 1.4),
    MarkingKind.DASHED_SOLID: ("-.", 1.4),
    MarkingKind.CURB: (":", 1.6),
    MarkingKind.VIRTUAL: ((0, (1, 3)), 1.0),
}
_EDGE = {
    RoadEdgeKind.CURB: ("#ff6a00", "-", 2.0),
    RoadEdgeKind.BARRIER: ("#ff1493", "-", 2.0),
    RoadEdgeKind.PAVEMENT_EDGE: ("#ffb000", (0, (5, 2)), 1.6),
}


def _xy_paths(geometry) -> list[np.ndarray]:
    """2D coordinate arrays of a line, or a polygon's rings."""
    if isinstance(geometry, shapely.Polygon):
        rings = [geometry.exterior, *geometry.interiors]
        return [np.asarray(r.coords)[:, :2] for r in rings]
    return [np.asarray(geometry.coords)[:, :2]]


def _draw_lines(
    axes, geometries, label: str, color: str, style, width: float, handles: list, zorder: float = 3
) -> None:
    from matplotlib.collections import LineCollection

    paths = [p for g in geometries for p in _xy_paths(g)]
    if not paths:
        return
    axes.add_collection(
        LineCollection(paths, colors=color, linestyles=style, linewidths=width, zorder=zorder)
    )
    handles.append(Line2D([], [], color=color, linestyle=style, linewidth=width, label=label))


def _draw_points(
    axes, geometries, label: str, color: str, marker: str, size: float, handles: list
) -> None:
    if not geometries:
        return
    xy = np.array([(g.x, g.y) for g in geometries])
    style = {
        "color": color,
        "marker": marker,
        "markersize": size,
        "markeredgecolor": "black",
        "markeredgewidth": 0.6,
        "linestyle": "none",
    }
    axes.plot(xy[:, 0], xy[:, 1], zorder=5, **style)
    handles.append(Line2D([], [], label=label, **style))


def _draw_overlay(axes, model: MapModel) -> list:
    """Draw the map's layers; return the legend handles, one per drawn style."""
    handles: list = []
    _draw_lines(
        axes,
        [j.geometry for j in model.junctions],
        "junction",
        "#ffffff",
        (0, (2, 2)),
        0.8,
        handles,
        zorder=2,
    )
    _draw_lines(
        axes,
        [lane.geometry for lane in model.lanes],
        "lane centreline",
        "#9d9dff",
        (0, (1, 2)),
        0.8,
        handles,
        zorder=2,
    )
    groups: dict[tuple[MarkingKind, Color], list] = {}
    for b in model.lane_boundaries:
        groups.setdefault((b.marking, b.color), []).append(b.geometry)
    for (marking, color), geometries in sorted(groups.items()):
        style, width = _MARKING[marking]
        name = marking.value.replace("_", " ")
        _draw_lines(
            axes, geometries, f"{name} {color.value} line", _PAINT[color], style, width, handles
        )
    for kind, (color, style, width) in _EDGE.items():
        edges = [e.geometry for e in model.road_edges if e.kind is kind]
        _draw_lines(axes, edges, kind.value.replace("_", " "), color, style, width, handles)
    _draw_lines(
        axes, [s.geometry for s in model.stop_lines], "stop line", "#ff2d2d", "-", 2.6, handles
    )
    _draw_lines(
        axes, [c.geometry for c in model.crosswalks], "crosswalk", "#39ff14", "-", 1.4, handles
    )
    polygons = [a.geometry for a in model.road_arrows if isinstance(a.geometry, shapely.Polygon)]
    _draw_lines(axes, polygons, "road arrow", "#ff4dff", "-", 1.2, handles)
    points = [a.geometry for a in model.road_arrows if isinstance(a.geometry, shapely.Point)]
    _draw_points(axes, points, "road arrow (position)", "#ff4dff", "^", 6, handles)
    _draw_points(axes, [p.geometry for p in model.poles], "pole", "#ffd400", "o", 6, handles)
    _draw_points(axes, [s.geometry for s in model.signs], "sign", "#ff3b6b", "s", 6, handles)
    return handles
