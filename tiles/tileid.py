"""NDS.Live packed tile IDs: the delivery grid of the versioned tiles (WGS84 lon/lat degrees).

At level ``L`` (0-15) a tile is ``180 / 2**L`` degrees square (level 13: 0.02197 degrees, about
2.4 km north-south). A longitude becomes the NDS coordinate ``floor(lon / 360 * 2**32)`` (a signed
32-bit integer) and a latitude ``floor(lat / 180 * 2**31)`` (signed 31-bit); the tile's ``x`` is
the top ``L + 1`` bits of the first in two's complement, its ``y`` the top ``L`` bits of the
second, and ``packed = morton(x, y) + 2**(16 + L)``, with x bit ``i`` at bit ``2i`` and y bit
``i`` at bit ``2i + 1``. The value is a signed 32-bit integer, so level-15 IDs are negative.
This is the layout of the ``ndslive-math`` reference (``ndslive.math.PackedTileId.from_wgs84``,
including its normalisation at +180 degrees and +90 degrees); the tests compare against it.

Tiles are half-open: a point on a tile's west or south edge belongs to it, a point on its east or
north edge to the neighbour. Everything is vectorised with numpy; nothing here needs
``ndslive-math`` at run time.

>>> packed_tile_id(0.0, 0.0, 0)
65536
>>> tile = packed_tile_id(120.36, 31.59)
>>> tile_level(tile), tile == parse_tile_id(str(tile))
(13, True)
>>> w, s, e, n = tile_bounds(tile)
>>> w <= 120.36 < e and s <= 31.59 < n
True
>>> packed_tile_ids(np.array([]), np.array([]), 13).tolist()  # the empty case
[]
>>> tiles_in_bbox(120.36, 31.59, 120.36, 31.59) == [tile]
True
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from pipeline.errors import TileError

__all__ = [
    "DEFAULT_LEVEL",
    "MAX_LEVEL",
    "MAX_TILES",
    "packed_tile_id",
    "packed_tile_ids",
    "parse_tile_id",
    "tile_bounds",
    "tile_level",
    "tiles_in_bbox",
]

#: The level of the delivery grid (NDS.Live level 13, the grid lines of HERE's level-14 HD tiles).
DEFAULT_LEVEL = 13
MAX_LEVEL = 15
#: Default cap on the number of tiles :func:`tiles_in_bbox` enumerates.
MAX_TILES = 4096

# ndslive.math.Wgs84 normalisation constants (the 2**n - 1 denominators are deliberate there)
_LON_DELTA = 360 / (2**32 - 1)
_LAT_DELTA = 180 / (2**31 - 1)
_DIGITS = re.compile(r"-?[0-9]{1,10}", re.ASCII)


def _check_level(level: object) -> int:
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise TileError(f"tile level must be an integer 0-{MAX_LEVEL}, not {level!r}")
    if not 0 <= int(level) <= MAX_LEVEL:
        raise TileError(f"tile level {level} is outside 0-{MAX_LEVEL}")
    return int(level)


def _lonlat_arrays(lon_deg: object, lat_deg: object) -> tuple[np.ndarray, np.ndarray]:
    """Float64 arrays of equal shape; TileError on non-finite or out-of-range values."""
    try:
        lon = np.asarray(lon_deg, dtype=np.float64)
        lat = np.asarray(lat_deg, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TileError(f"longitudes and latitudes must be numbers: {exc}") from None
    if lon.shape != lat.shape:
        raise TileError(f"{lon.shape} longitudes but {lat.shape} latitudes")
    bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        first = (float(lon.ravel()[i]), float(lat.ravel()[i]))
        raise TileError(
            f"{int(bad.sum())} position(s) outside lon [-180, 180], lat [-90, 90] degrees or "
            f"not finite, first {first!r} (lon/lat order?)"
        )
    return lon, lat


def _nds_x(lon: np.ndarray) -> np.ndarray:
    """NDS longitude (int64 in [-2**31, 2**31)) as ndslive.math.Wgs84 computes it."""
    x = np.fmod(lon, 360.0)
    x = np.where(np.abs(x - (180.0 - _LON_DELTA)) < _LON_DELTA, 180.0 - _LON_DELTA, x)
    x = np.where(x >= 180.0, x - 360.0, np.where(x < -180.0, x + 360.0, x))
    return np.floor((x / 360.0) * 2**32).astype(np.int64)


def _nds_y(lat: np.ndarray) -> np.ndarray:
    """NDS latitude (int64 in [-2**30, 2**30)) as ndslive.math.Wgs84 computes it."""
    top = 90.0 - _LAT_DELTA
    y = np.where(np.abs(lat - top) < _LAT_DELTA, top, lat)
    y = np.where(y > top, top, np.where(y < -90.0, -90.0, y))
    return np.floor((y / 180.0) * 2**31).astype(np.int64)


def _spread(v: np.ndarray) -> np.ndarray:
    """Move bit i of 16-bit values to bit 2i."""
    v = v.astype(np.uint64)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
    v = (v | (v << np.uint64(1))) & np.uint64(0x55555555)
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread`: bit 2i to bit i."""
    v = v.astype(np.uint64) & np.uint64(0x55555555)
    v = (v | (v >> np.uint64(1))) & np.uint64(0x33333333)
    v = (v | (v >> np.uint64(2))) & np.uint64(0x0F0F0F0F)
    v = (v | (v >> np.uint64(4))) & np.uint64(0x00FF00FF)
    v = (v | (v >> np.uint64(8))) & np.uint64(0x0000FFFF)
    return v.astype(np.int64)


def _pack(tx: np.ndarray, ty: np.ndarray, level: int) -> np.ndarray:
    """Packed IDs (int64 holding signed int32 values) of tile columns ``tx`` and rows ``ty``."""
    tx = np.asarray(tx, dtype=np.int64) & ((1 << (level + 1)) - 1)
    ty = np.asarray(ty, dtype=np.int64) & ((1 << level) - 1)
    morton = (_spread(tx) | (_spread(ty) << np.uint64(1))).astype(np.int64)
    packed = morton + (1 << (16 + level))
    return packed - (1 << 32) if level == MAX_LEVEL else packed


def packed_tile_ids(lon_deg: np.ndarray, lat_deg: np.ndarray, level: int) -> np.ndarray:
    """Packed tile IDs (int64 array of the shape of the input) of WGS84 lon/lat degrees.

    Raises :class:`~pipeline.errors.TileError` for a bad level, arrays of different shapes, or any
    position outside lon [-180, 180], lat [-90, 90] or not finite.

    >>> packed_tile_ids(np.array([-0.001, 120.36]), np.array([-0.001, 31.59]), 1).tolist()
    [131079, 131073]
    >>> packed_tile_ids(np.array([]), np.array([]), 15).dtype
    dtype('int64')
    """
    level = _check_level(level)
    lon, lat = _lonlat_arrays(lon_deg, lat_deg)
    shift = 31 - level
    tx = (_nds_x(lon) & 0xFFFFFFFF) >> shift
    ty = (_nds_y(lat) & 0x7FFFFFFF) >> shift
    return _pack(tx, ty, level)


def packed_tile_id(lon_deg: float, lat_deg: float, level: int = DEFAULT_LEVEL) -> int:
    """The packed ID of the tile at ``level`` holding the WGS84 point (``lon_deg``, ``lat_deg``).

    >>> packed_tile_id(-0.001, -0.001, 0), packed_tile_id(-0.001, -0.001, 15)
    (65537, -1)
    >>> packed_tile_id(31.59, 120.36)
    Traceback (most recent call last):
    ...
    pipeline.errors.TileError: 1 position(s) outside lon [-180, 180], lat [-90, 90] degrees or \
not finite, first (31.59, 120.36) (lon/lat order?)
    """
    for v in (lon_deg, lat_deg):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TileError(f"longitude and latitude must be real numbers, not {v!r}")
    return int(packed_tile_ids(np.float64(lon_deg), np.float64(lat_deg), level))


def _check_tile_id(tile_id: object) -> tuple[int, int]:
    """``(level, morton number)`` of a valid packed tile ID; TileError otherwise."""
    if isinstance(tile_id, bool) or not isinstance(tile_id, numbers.Integral):
        raise TileError(f"a tile ID is an integer, not {tile_id!r}")
    value = int(tile_id)
    if not -(2**31) <= value < 2**31:
        raise TileError(f"tile ID {value} is outside the signed 32-bit range")
    if value < 0:  # the level bit of level 15 is the sign bit
        return MAX_LEVEL, value + 2**31
    if value < 1 << 16:
        raise TileError(f"tile ID {value} has no level bit (packed IDs are >= 65536 or < 0)")
    level = value.bit_length() - 17
    if level == MAX_LEVEL:
        raise TileError(
            f"tile ID {value} is a level-15 ID written unsigned; level-15 IDs are negative "
            f"(signed 32-bit): {value - 2**32}"
        )
    morton = value - (1 << (16 + level))
    if morton >> (2 * level + 1):
        raise TileError(
            f"tile ID {value} is not a packed tile ID: bits between its level-{level} "
            f"morton number ({2 * level + 1} bits) and its level bit are set"
        )
    return level, morton


def tile_level(tile_id: int) -> int:
    """The level (0-15) of a packed tile ID; TileError when ``tile_id`` is not one.

    >>> tile_level(65536), tile_level(-1)
    (0, 15)
    """
    return _check_tile_id(tile_id)[0]


def tile_bounds(tile_id: int) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` WGS84 degrees of a tile (west and south edges inclusive).

    The two level-0 tiles span all latitudes (-90 to 90).

    >>> tile_bounds(65537)
    (-180.0, -90.0, 0.0, 90.0)
    >>> tile_bounds(131079)
    (-90.0, -90.0, 0.0, 0.0)
    """
    level, morton = _check_tile_id(tile_id)
    m = np.array([morton], dtype=np.int64)
    tx, ty = int(_compact(m)[0]), int(_compact(m >> 1)[0])
    shift = 31 - level
    x, y = tx << shift, ty << shift
    x -= 2**32 if x >= 2**31 else 0
    y -= 2**31 if y >= 2**30 else 0
    size = 180.0 / 2**level
    west = x * 360.0 / 2**32
    if level == 0:
        return (west, -90.0, west + size, 90.0)
    south = y * 180.0 / 2**31
    return (west, south, west + size, south + size)


def parse_tile_id(text: str) -> int:
    """The packed tile ID written in ``text`` (canonical decimal, as in a URL path).

    Refuses anything else with a TileError: non-strings, signs, spaces, leading zeros, other
    digits than ASCII, values outside int32, level 15 written unsigned, stray bits.

    >>> parse_tile_id("545554681")
    545554681
    >>> parse_tile_id("0x10000")
    Traceback (most recent call last):
    ...
    pipeline.errors.TileError: '0x10000' is not a tile ID (a decimal integer)
    """
    if not isinstance(text, str):
        raise TileError(f"a tile ID is given as text, not {type(text).__name__}")
    if len(text) > 11 or not _DIGITS.fullmatch(text) or str(int(text)) != text:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise TileError(f"{shown!r} is not a tile ID (a decimal integer)")
    value = int(text)
    _check_tile_id(value)
    return value


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TileError(f"bounding box {name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise TileError(f"bounding box {name} is not finite ({value})")
    return value


def _index_ranges(
    west: np.ndarray, south: np.ndarray, east: np.ndarray, north: np.ndarray, level: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signed tile column and row ranges (inclusive) meeting half-open boxes, vectorised."""
    shift = 31 - level
    x0 = np.minimum(_nds_x(west), 2**31 - 1)
    y0 = np.minimum(_nds_y(south), 2**30 - 1)
    x1 = np.ceil((np.asarray(east, dtype=np.float64) / 360.0) * 2**32).astype(np.int64) - 1
    y1 = np.ceil((np.asarray(north, dtype=np.float64) / 180.0) * 2**31).astype(np.int64) - 1
    x1 = np.clip(x1, x0, 2**31 - 1)
    y1 = np.clip(y1, y0, 2**30 - 1)
    return x0 >> shift, y0 >> shift, x1 >> shift, y1 >> shift


def tiles_in_bbox(
    west: float,
    south: float,
    east: float,
    north: float,
    level: int = DEFAULT_LEVEL,
    *,
    max_tiles: int = MAX_TILES,
) -> list[int]:
    """Packed IDs (ascending) of the tiles meeting the WGS84 box, degrees.

    A tile whose west or south edge lies on the box's east or north edge is not included (tiles are
    half-open); a box of zero width or height gives the tiles holding its edge. Raises TileError for
    a box outside lon [-180, 180], lat [-90, 90], ``west > east`` or ``south > north`` (boxes
    across the antimeridian are two queries), or covering more than ``max_tiles`` tiles.

    >>> len(tiles_in_bbox(120.0, 31.0, 120.1, 31.05, 13))
    20
    >>> tiles_in_bbox(-180, -90, 180, 90, 13)
    Traceback (most recent call last):
    ...
    pipeline.errors.TileError: the bounding box covers 134217728 level-13 tiles, more than the \
limit of 4096
    """
    level = _check_level(level)
    w, s, e, n = (
        _real(k, v)
        for k, v in zip(("west", "south", "east", "north"), (west, south, east, north), strict=True)
    )
    if not (-180.0 <= w <= 180.0 and -180.0 <= e <= 180.0):
        raise TileError(f"bounding box longitudes {w}, {e} are outside [-180, 180] degrees")
    if not (-90.0 <= s <= 90.0 and -90.0 <= n <= 90.0):
        raise TileError(f"bounding box latitudes {s}, {n} are outside [-90, 90] degrees")
    if w > e:
        raise TileError(f"bounding box west {w} is east of its east {e} (west,south,east,north)")
    if s > n:
        raise TileError(f"bounding box south {s} is north of its north {n} (west,south,east,north)")
    x0, y0, x1, y1 = (int(v) for v in _index_ranges(*(np.float64(v) for v in (w, s, e, n)), level))
    nx, ny = min(x1 - x0 + 1, 2 ** (level + 1)), min(y1 - y0 + 1, 2**level)
    if nx * ny > max_tiles:
        raise TileError(
            f"the bounding box covers {nx * ny} level-{level} tiles, more than the limit of "
            f"{max_tiles}"
        )
    tx, ty = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
    return sorted({int(t) for t in _pack(tx.ravel(), ty.ravel(), level)})
