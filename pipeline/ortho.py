"""Orthophotos: read a GeoTIFF (optionally reprojected into the survey CRS) and sample its colours.

An :class:`Ortho` holds the colour bands only: an alpha band, a nodata value or an internal mask
in the file all become the boolean ``valid`` array (True where a pixel has data), so no caller
needs to know which of the three the file used. Reprojection uses bilinear resampling for the
bands and nearest for the mask.

>>> import affine
>>> ortho = Ortho(np.full((1, 2, 2), 7, np.uint8), affine.Affine(0.5, 0, 100, 0, -0.5, 201),
...               pyproj.CRS("EPSG:32611"), np.ones((2, 2), bool))
>>> ortho.bounds
(100.0, 200.0, 101.0, 201.0)
>>> sample_rgb(ortho, np.array([100.2, 99.0]), np.array([200.7, 200.7])).tolist()
[[7.0, 7.0, 7.0], [nan, nan, nan]]
>>> sample_rgb(ortho, np.array([]), np.array([])).shape
(0, 3)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import affine
import numpy as np
import pyproj
import rasterio
import rasterio.crs
import rasterio.errors
import rasterio.warp
import rasterio.windows
from pyproj.exceptions import CRSError as PyprojCRSError
from rasterio.enums import ColorInterp, Resampling

from pipeline.errors import CRSError, OrthoError

__all__ = ["Ortho", "OrthoInfo", "read_ortho", "read_ortho_info", "sample_rgb"]

_SUPPORTED_DTYPES = ("uint8", "uint16")


@dataclass(frozen=True, slots=True, eq=False)
class Ortho:
    """A georeferenced image.

    ``image`` is (bands, height, width) uint8 or uint16 without any alpha band; ``transform``
    maps (col, row) pixel corners to map coordinates in ``crs``; ``valid`` (height, width) bool is
    True where a pixel holds data (from the file's alpha band, nodata value or mask, and False
    outside the source footprint after reprojection).
    """

    image: np.ndarray
    transform: affine.Affine
    crs: pyproj.CRS
    valid: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[1])

    @property
    def width(self) -> int:
        return int(self.image.shape[2])

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in CRS units (metres for a projected CRS)."""
        return (
            float(np.hypot(self.transform.a, self.transform.d)),
            float(np.hypot(self.transform.b, self.transform.e)),
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the image's outer pixel edges, in ``crs`` units."""
        return _corner_bounds(self.transform, self.width, self.height)


def sample_rgb(ortho: Ortho, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-pixel colour at map coordinates ``x``, ``y`` (in ``ortho.crs``), as (n, 3) float64.

    Outside the image or on an invalid pixel the row is NaN. A single-band (panchromatic) image
    gives its value in all three columns; of more than three bands the first three are used.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    out = np.full((x.size, 3), np.nan)
    if x.size == 0:
        return out
    inverse = ~ortho.transform
    cols, rows = inverse @ (x, y)
    cols = np.floor(np.asarray(cols)).astype(np.int64)
    rows = np.floor(np.asarray(rows)).astype(np.int64)
    inside = (cols >= 0) & (cols < ortho.width) & (rows >= 0) & (rows < ortho.height)
    hit = np.flatnonzero(inside)
    hit = hit[ortho.valid[rows[hit], cols[hit]]]
    bands = [0, 0, 0] if ortho.image.shape[0] < 3 else [0, 1, 2]
    for k, band in enumerate(bands):
        out[hit, k] = ortho.image[band, rows[hit], cols[hit]]
    return out


@dataclass(frozen=True, slots=True)
class OrthoInfo:
    """What a GeoTIFF's metadata says, without reading its pixels (see :func:`read_ortho_info`).

    ``bands`` counts colour bands (alpha excluded); ``pixel_size`` and ``bounds`` are in ``crs``
    units (degrees for a geographic CRS).
    """

    path: Path
    width: int
    height: int
    bands: int
    dtype: str
    crs: pyproj.CRS
    transform: affine.Affine
    has_alpha: bool
    nodata: float | None

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in CRS units."""
        t = self.transform
        return (float(np.hypot(t.a, t.d)), float(np.hypot(t.b, t.e)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the image's outer pixel edges, in ``crs`` units."""
        return _corner_bounds(self.transform, self.width, self.height)


def read_ortho_info(path: str | os.PathLike[str]) -> OrthoInfo:
    """Check the GeoTIFF ``path`` as :func:`read_ortho` does and describe it, reading no pixels.

    >>> read_ortho_info("no/such.tif")
    Traceback (most recent call last):
    ...
    pipeline.errors.OrthoError: no/such.tif: no such file
    """
    path = _existing(path)
    try:
        with rasterio.open(path) as src:
            crs, colour_bands = _check_source(src, path)
            return OrthoInfo(
                path=path,
                width=src.width,
                height=src.height,
                bands=len(colour_bands),
                dtype=src.dtypes[0],
                crs=crs,
                transform=src.transform,
                has_alpha=len(colour_bands) < src.count,
                nodata=src.nodata,
            )
    except rasterio.errors.RasterioError as exc:
        raise OrthoError(f"not a readable GeoTIFF ({_one_line(exc)})", path=path) from None


def read_ortho(
    path: str | os.PathLike[str],
    dst_crs: pyproj.CRS | str | None = None,
    resolution_m: float | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> Ortho:
    """Read the GeoTIFF ``path``; reproject it into ``dst_crs`` when that differs from its CRS.

    ``resolution_m`` sets the output pixel size (in ``dst_crs`` units, or the file's units when
    ``dst_crs`` is None); by default GDAL's suggested resolution keeps about the source's pixel
    count. ``bounds`` (minx, miny, maxx, maxy in ``dst_crs``, or the file's CRS) reads only the
    part of the image covering them, which keeps memory small for large orthophotos.

    Raises :class:`~pipeline.errors.OrthoError` naming the file when it is missing, not a raster,
    has no CRS, an unsupported data type, or does not overlap ``bounds``.

    >>> read_ortho("no/such.tif")
    Traceback (most recent call last):
    ...
    pipeline.errors.OrthoError: no/such.tif: no such file
    """
    path = _existing(path)
    try:
        with rasterio.open(path) as src:
            return _read(src, path, dst_crs, resolution_m, bounds)
    except rasterio.errors.RasterioError as exc:
        raise OrthoError(f"not a readable GeoTIFF ({_one_line(exc)})", path=path) from None


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise OrthoError("no such file" if not path.exists() else "not a file", path=path)
    return path


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _corner_bounds(
    transform: affine.Affine, width: int, height: int
) -> tuple[float, float, float, float]:
    corners = [transform @ c for c in ((0, 0), (width, 0), (0, height), (width, height))]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    return (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))


def _read(
    src: rasterio.DatasetReader,
    path: Path,
    dst_crs: pyproj.CRS | str | None,
    resolution_m: float | None,
    bounds: tuple[float, float, float, float] | None,
) -> Ortho:
    src_crs, colour_bands = _check_source(src, path)
    try:
        target = src_crs if dst_crs is None else pyproj.CRS.from_user_input(dst_crs)
    except PyprojCRSError:
        raise CRSError(
            f"target CRS {dst_crs!r} is not a CRS pyproj understands", path=path
        ) from None

    window = None
    if bounds is not None:
        src_bounds = (
            bounds
            if target == src_crs
            else rasterio.warp.transform_bounds(_rio_crs(target), src.crs, *bounds, densify_pts=21)
        )
        full = rasterio.windows.Window(0, 0, src.width, src.height)
        try:
            window = (
                rasterio.windows.from_bounds(*src_bounds, transform=src.transform)
                .round_offsets(op="floor")
                .round_lengths(op="ceil")
                .intersection(full)
            )
        except rasterio.errors.WindowError:
            raise OrthoError(f"does not overlap the requested bounds {bounds}", path=path) from None
        if window.width <= 0 or window.height <= 0:
            raise OrthoError(f"does not overlap the requested bounds {bounds}", path=path)

    image = src.read(colour_bands, window=window)
    valid = src.dataset_mask(window=window) > 0
    transform = src.window_transform(window) if window is not None else src.transform
    if target == src_crs and resolution_m is None:
        return Ortho(image, transform, src_crs, valid)

    height, width = image.shape[1:]
    left, top = transform @ (0, 0)
    right, bottom = transform @ (width, height)
    dst_transform, dst_width, dst_height = rasterio.warp.calculate_default_transform(
        src.crs,
        _rio_crs(target),
        width,
        height,
        left=min(left, right),
        bottom=min(top, bottom),
        right=max(left, right),
        top=max(top, bottom),
        resolution=resolution_m,
    )
    nodata = src.nodata if src.nodata is not None else 0
    dst_image = np.full((image.shape[0], dst_height, dst_width), nodata, dtype=image.dtype)
    dst_valid = np.zeros((dst_height, dst_width), dtype=np.uint8)
    common = {
        "src_transform": transform,
        "src_crs": src.crs,
        "dst_transform": dst_transform,
        "dst_crs": _rio_crs(target),
    }
    rasterio.warp.reproject(
        image,
        dst_image,
        src_nodata=src.nodata,
        dst_nodata=nodata,
        resampling=Resampling.bilinear,
        **common,
    )
    rasterio.warp.reproject(
        valid.astype(np.uint8), dst_valid, dst_nodata=0, resampling=Resampling.nearest, **common
    )
    return Ortho(dst_image, dst_transform, target, dst_valid > 0)


def _check_source(src: rasterio.DatasetReader, path: Path) -> tuple[pyproj.CRS, list[int]]:
    """The file's CRS and its colour bands (1-based, alpha excluded); OrthoError if unusable."""
    if src.crs is None:
        raise OrthoError("has no CRS (no GeoTIFF georeferencing keys)", path=path)
    dtypes = set(src.dtypes)
    if not dtypes <= set(_SUPPORTED_DTYPES) or len(dtypes) != 1:
        raise OrthoError(
            f"data type {', '.join(sorted(dtypes))} not supported (expected uint8 or uint16)",
            path=path,
        )
    colour_bands = [
        i + 1 for i, interp in enumerate(src.colorinterp) if interp != ColorInterp.alpha
    ] or [1]
    return pyproj.CRS.from_wkt(src.crs.to_wkt()), colour_bands


def _rio_crs(crs: pyproj.CRS) -> rasterio.crs.CRS:
    return rasterio.crs.CRS.from_wkt(crs.to_wkt())
