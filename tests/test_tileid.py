"""NDS.Live packed tile IDs: equal to the ndslive-math reference, hand-derived vectors, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import TileError
from tiles.tileid import (
    DEFAULT_LEVEL,
    MAX_TILES,
    packed_tile_id,
    packed_tile_ids,
    parse_tile_id,
    tile_bounds,
    tile_level,
    tiles_in_bbox,
)

LEVELS = range(16)
# the edges of the lon/lat domain and values around 0 and the tile edges
EDGE_LON = [-180.0, 180.0, 0.0, -0.0, 1e-300, -1e-300, 179.99999999, -179.99999999, 90.0, -90.0]
EDGE_LAT = [-90.0, 90.0, 0.0, -0.0, -1e-300, 1e-300, 89.99999999, -89.99999999, 45.0, -45.0]


def _points(level: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(level)
    lon = np.concatenate([EDGE_LON, rng.uniform(-180, 180, n)])
    lat = np.concatenate([EDGE_LAT, rng.uniform(-90, 90, n)])
    # points exactly on tile edges of this level and one NDS unit either side of them
    edge = 180.0 / 2**level
    k = rng.integers(-(2**level), 2**level, 200)
    unit = 360.0 / 2**32
    on = np.clip(k * edge, -180, 180)
    lon = np.concatenate([lon, on, np.clip(on - unit, -180, 180), np.clip(on + unit, -180, 180)])
    lat_on = np.clip((k // 2) * edge, -90, 90)
    lat = np.concatenate([lat, lat_on, np.clip(lat_on - unit, -90, 90), lat_on])
    return lon, lat


@pytest.mark.parametrize("level", LEVELS)
def test_packed_tile_ids_equal_the_ndslive_reference(level):
    ndslive = pytest.importorskip("ndslive.math")
    lon, lat = _points(level)
    ours = packed_tile_ids(lon, lat, level)
    ref = [
        ndslive.PackedTileId.from_wgs84(a, b, level).value for a, b in zip(lon, lat, strict=True)
    ]
    assert ours.dtype == np.int64 and ours.shape == lon.shape
    assert ours.tolist() == ref
    scalar = [
        packed_tile_id(float(a), float(b), level) for a, b in zip(lon[:50], lat[:50], strict=True)
    ]
    assert scalar == ref[:50]


@pytest.mark.parametrize("level", LEVELS)
def test_levels_and_bounds_equal_the_ndslive_reference(level):
    ndslive = pytest.importorskip("ndslive.math")
    lon, lat = _points(level, 300)
    for tile in sorted(set(packed_tile_ids(lon, lat, level).tolist())):
        ref = ndslive.PackedTileId(tile)
        assert tile_level(tile) == ref.level() == level
        west, south, east, north = tile_bounds(tile)
        assert (west, east) == (ref.south_west_wgs84()[0], ref.north_east_wgs84()[0])
        if level > 0:  # the reference puts the level-0 row at latitude 0..180
            assert (south, north) == (ref.south_west_wgs84()[1], ref.north_east_wgs84()[1])
        assert parse_tile_id(str(tile)) == tile


@pytest.mark.parametrize("level", LEVELS)
def test_points_lie_in_the_bounds_of_their_tile(level):
    rng = np.random.default_rng(100 + level)
    lon, lat = rng.uniform(-179.9, 179.9, 300), rng.uniform(-89.9, 89.9, 300)
    for a, b, tile in zip(lon, lat, packed_tile_ids(lon, lat, level).tolist(), strict=True):
        west, south, east, north = tile_bounds(tile)
        assert west <= a < east and south <= b < north
        assert east - west == north - south == 180.0 / 2**level


def _interleave(x: int, y: int, bits: int) -> int:
    return sum(((x >> i) & 1) << (2 * i) | ((y >> i) & 1) << (2 * i + 1) for i in range(bits))


def test_hand_derived_vectors():
    # level 15 at (-0.001, -0.001): x = floor(-0.001 / 360 * 2^32) = -11931, whose top 16 bits in
    # two's complement are all 1, likewise the top 15 of y: morton = 2^31 - 1, packed = 2^32 - 1,
    # which is -1 as int32
    assert packed_tile_id(-0.001, -0.001, 15) == -1
    # level 15 at the origin: morton 0, packed 2^31 = -2^31 as int32
    assert packed_tile_id(0.0, 0.0, 15) == -(2**31)
    assert tile_bounds(-(2**31)) == (0.0, 0.0, 180 / 2**15, 180 / 2**15)
    # level 15 in Xishan: column floor(120.36 / (180 / 2^15)) = 21910, row floor(31.59 / ...) = 5750
    assert (int(120.36 / (180 / 2**15)), int(31.59 / (180 / 2**15))) == (21910, 5750)
    assert packed_tile_id(120.36, 31.59, 15) == _interleave(21910, 5750, 16) + 2**31 - 2**32
    # level 13: column 5477, row 1437, interleaved, plus the level bit 2^29
    assert (int(120.36 / (180 / 2**13)), int(31.59 / (180 / 2**13))) == (5477, 1437)
    assert packed_tile_id(120.36, 31.59, 13) == _interleave(5477, 1437, 14) + 2**29 == 557029043
    # level 0: two tiles, west half x = 1
    assert packed_tile_id(-0.001, 45.0, 0) == 65537 and packed_tile_id(0.0, -45.0, 0) == 65536
    assert tile_bounds(65536) == (0.0, -90.0, 180.0, 90.0)
    # level 1: x = 0b11 (lon -90..0), y = 0b1 (lat -90..0) -> morton 0b111
    assert packed_tile_id(-0.001, -0.001, 1) == (1 << 17) + 0b111


@pytest.mark.parametrize(
    ("level", "packed"),
    [(11, 134390589), (12, 269126903), (13, 539636700), (14, 1084804976)],
)
def test_published_vectors(level, packed):
    # a point near Barcelona in NDS units, from the public nds-tiles test suite
    lon, lat = 24772607 * 360 / 2**32, 493486079 * 360 / 2**32
    assert packed_tile_id(lon, lat, level) == packed


def test_default_level_is_13():
    assert DEFAULT_LEVEL == 13
    assert tile_level(packed_tile_id(120.36, 31.59)) == 13


def test_neighbours_are_distinct_tiles_one_edge_apart():
    tile = packed_tile_id(120.36, 31.59, 13)
    west, south, east, north = tile_bounds(tile)
    assert packed_tile_id(east, south, 13) != tile  # east edge belongs to the neighbour
    assert packed_tile_id(west, north, 13) != tile
    assert packed_tile_id(west, south, 13) == tile  # south-west corner belongs to the tile
    assert tile_bounds(packed_tile_id(east, south, 13))[0] == east


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(float("nan"), 0.0), (0.0, float("inf")), (180.0001, 0.0), (0.0, -90.5), (31.59, 120.36)],
)
def test_positions_off_the_globe_are_refused(lon, lat):
    with pytest.raises(TileError):
        packed_tile_id(lon, lat)
    with pytest.raises(TileError):
        packed_tile_ids(np.array([0.0, lon]), np.array([0.0, lat]), 13)


@pytest.mark.parametrize("level", [-1, 16, 1.5, True, "13", None])
def test_bad_levels_are_refused(level):
    with pytest.raises(TileError):
        packed_tile_ids(np.zeros(1), np.zeros(1), level)
    with pytest.raises(TileError):
        tiles_in_bbox(0, 0, 0.01, 0.01, level)


def test_vector_input_checks():
    with pytest.raises(TileError, match="latitudes"):
        packed_tile_ids(np.zeros(3), np.zeros(2), 13)
    with pytest.raises(TileError):
        packed_tile_id("120", 31.0)
    assert packed_tile_ids(np.empty((0,)), np.empty((0,)), 13).tolist() == []
    grid = packed_tile_ids(np.full((2, 3), 120.36), np.full((2, 3), 31.59), 13)
    assert grid.shape == (2, 3) and len(set(grid.ravel().tolist())) == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1.5",
        "545554681.0",
        "+545554681",
        " 545554681",
        "545554681\n",
        "0545554681",
        "-0",
        "0x20840000",
        "545_554_681",
        "\u0665\u0664\u0665",  # Arabic-Indic digits int() would accept
        "65535",  # no level bit
        "0",
        "2147483648",  # level 15 written unsigned
        "4294967295",
        "-2147483649",
        "99999999999",
        "9" * 10_000,  # absurd length
        str((1 << 29) + (1 << 27)),  # level 13 with a bit between morton and level bit
        str((1 << 16) + 2),  # level 0 has a 1-bit morton number
    ],
)
def test_parse_tile_id_refuses(text):
    with pytest.raises(TileError):
        parse_tile_id(text)


@pytest.mark.parametrize("value", [545554681, None, b"545554681", 5.0])
def test_parse_tile_id_wants_text(value):
    with pytest.raises(TileError, match="text"):
        parse_tile_id(value)


def test_parse_tile_id_accepts_every_level():
    for tile in (65536, 65537, -1, -(2**31), (1 << 30) + (1 << 29) - 1, 557029043):
        assert parse_tile_id(str(tile)) == tile


@pytest.mark.parametrize("value", [True, 1.0, 65535, 2**31, -(2**31) - 1, (1 << 29) + (1 << 27)])
def test_tile_level_and_bounds_refuse_bad_ids(value):
    with pytest.raises(TileError):
        tile_level(value)
    with pytest.raises(TileError):
        tile_bounds(value)


def test_tiles_in_bbox_of_one_tile_is_that_tile():
    tile = packed_tile_id(120.36, 31.59, 15)
    assert tiles_in_bbox(*tile_bounds(tile), 15) == [tile]
    assert tiles_in_bbox(120.36, 31.59, 120.36, 31.59, 15) == [tile]  # a point
    west, south, east, north = tile_bounds(tile)
    assert len(tiles_in_bbox(west, south, east + 1e-9, north, 15)) == 2
    assert len(tiles_in_bbox(west - 1e-9, south - 1e-9, east, north, 15)) == 4


def test_tiles_in_bbox_whole_world_and_edges():
    assert tiles_in_bbox(-180, -90, 180, 90, 0) == [65536, 65537]
    assert len(tiles_in_bbox(-180, -90, 180, 90, 3)) == 16 * 8
    assert len(tiles_in_bbox(180, 90, 180, 90, 13)) == 1


@pytest.mark.parametrize("level", [1, 8, 13, 15])
def test_tiles_in_bbox_equals_the_ndslive_reference(level):
    ndslive = pytest.importorskip("ndslive.math")
    rng = np.random.default_rng(level)
    edge = 180 / 2**level
    for _ in range(30):
        w, s = rng.uniform(-170, 170), rng.uniform(-80, 80)
        e, n = min(w + rng.uniform(0, 5 * edge), 180), min(s + rng.uniform(0, 5 * edge), 90)
        ref = ndslive.get_tile_ids_for_bounding_box(
            int(np.floor(w / 360 * 2**32)),
            int(np.floor(s / 180 * 2**31)),
            int(np.ceil(e / 360 * 2**32)) - 1,
            int(np.ceil(n / 180 * 2**31)) - 1,
            level,
        )
        assert tiles_in_bbox(w, s, e, n, level) == sorted({t.value for t in ref})


@pytest.mark.parametrize(
    "box",
    [
        (10.0, 0.0, 9.0, 1.0),  # west > east (antimeridian boxes are two queries)
        (0.0, 1.0, 1.0, 0.0),
        (-181.0, 0.0, 0.0, 1.0),
        (0.0, 0.0, 180.5, 1.0),
        (0.0, -91.0, 1.0, 0.0),
        (0.0, 0.0, 1.0, 90.1),
        (float("nan"), 0.0, 1.0, 1.0),
        (0.0, 0.0, float("inf"), 1.0),
        ("0", 0.0, 1.0, 1.0),
        (True, 0.0, 1.0, 1.0),
    ],
)
def test_bad_boxes_are_refused(box):
    with pytest.raises(TileError):
        tiles_in_bbox(*box, 13)


def test_tiles_in_bbox_is_capped():
    edge = 180 / 2**13
    w, s = tile_bounds(packed_tile_id(120.0, 31.0, 13))[:2]  # on tile edges
    # 64 x 64 tiles is exactly the default cap; one more column is too many
    assert len(tiles_in_bbox(w, s, w + 64 * edge, s + 64 * edge, 13)) == MAX_TILES == 4096
    with pytest.raises(TileError, match="more than the limit of 4096"):
        tiles_in_bbox(w, s, w + 65 * edge, s + 64 * edge, 13)
    with pytest.raises(TileError, match="limit of 3"):
        tiles_in_bbox(w, s, w + 2 * edge, s + 2 * edge, 13, max_tiles=3)
    with pytest.raises(TileError):
        tiles_in_bbox(-180, -90, 180, 90, 15)
