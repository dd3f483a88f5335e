"""Tile encoding: lossless round trip, one owner per feature, crossing references, deterministic
bytes across processes, local changes stay local, and safe decoding of hostile bytes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from shapely import LineString, Point, Polygon

from formats.localstd import FILE_SUFFIX
from pipeline.errors import CRSError, FormatError, TileError
from pipeline.model import (
    Color,
    Crosswalk,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    anchor_point,
)
from tests.common import CRS, MODELS, sample_model
from tiles.encode import (
    DENSIFY_M,
    MAX_TILE_BYTES,
    assemble,
    content_hash,
    decode_tile,
    encode_tiles,
    feature_tiles,
    gunzip_bytes,
    gzip_bytes,
)
from tiles.tileid import packed_tile_id, packed_tile_ids, tile_bounds

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LEVEL = 15  # tiles of about 520 m x 610 m here, so a small model spans several
SURVEY = "tiles-test"
TO_XY = pyproj.Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
TO_LONLAT = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _xy(lon: float, lat: float) -> tuple[float, float]:
    x, y = TO_XY.transform(lon, lat)
    return float(x), float(y)


def _tile_of_xy(x: float, y: float, level: int = LEVEL) -> int:
    return packed_tile_id(*TO_LONLAT.transform(x, y), level)


def _boundary(name: str, coords) -> LaneBoundary:
    line = LineString([(x, y, 5.0) for x, y in coords])
    return LaneBoundary.create(line, MarkingKind.SOLID, Color.WHITE, survey_id=name)


def crossing_model() -> tuple[MapModel, dict[str, object]]:
    """Features around one level-15 tile T in Xishan, built to cross its edges, with the tiles
    each one must own and cross (``expect``: id -> (owner, crossed others))."""
    tile = packed_tile_id(120.36, 31.59, LEVEL)
    west, south, east, north = tile_bounds(tile)
    edge = east - west
    mid_lat = (south + north) / 2
    ex, ey = _xy(east, mid_lat)  # a point on T's east edge
    cx, cy = _xy(east, north)  # T's north-east corner
    t_east = packed_tile_id(east + edge / 2, mid_lat, LEVEL)
    t_north = packed_tile_id(west + edge / 2, north + edge / 2, LEVEL)
    t_ne = packed_tile_id(east + edge / 2, north + edge / 2, LEVEL)
    t_west = packed_tile_id(west - edge / 2, mid_lat, LEVEL)
    expect: dict[str, tuple[int, set[int]]] = {}

    # 300 m line across T's east edge, midpoint 50 m west of it: owned by T, crosses T-east
    across = _boundary("across", [(ex - 200 + 30 * i, ey) for i in range(11)])
    expect[across.id] = (tile, {t_east})
    # 42 m line, two vertices, cutting T's north-east corner through T-east only:
    # from 20 m west, 26 m south of the corner to 10 m east, 4 m north; it meets x = corner 6 m
    # south of it, so it passes through T-east, not T-north
    corner = _boundary("corner", [(cx - 20, cy - 26), (cx + 10, cy + 4)])
    expect[corner.id] = (tile, {t_east, t_ne})
    # two vertices in the centres of T-west and T-east: T in between holds no vertex
    xw, yw = _xy(west - edge / 2, mid_lat)
    xe, ye = _xy(east + edge / 2, mid_lat)
    long_line = _boundary("long", [(xw, yw), (xe, ye)])
    expect[long_line.id] = (tile, {t_west, t_east})
    # poles: one in T, one in T-north, one in T-east
    poles = []
    for name, (lon, lat), owner in (
        ("p-t", (west + edge / 3, south + edge / 3), tile),
        ("p-n", (west + edge / 2, north + edge / 4), t_north),
        ("p-e", (east + edge / 4, mid_lat), t_east),
    ):
        x, y = _xy(lon, lat)
        pole = Pole.create(Point(x, y, 5.0), 6.0, 0.1, survey_id=name)
        poles.append(pole)
        expect[pole.id] = (owner, set())
    # a crosswalk straddling T's north edge: centroid 3 m south of it
    nx_, ny_ = _xy(west + edge / 2, north)
    crosswalk = Crosswalk.create(
        Polygon([(nx_ - 4, ny_ - 9, 5), (nx_ + 4, ny_ - 9, 5), (nx_ + 4, ny_ + 3, 5),
                 (nx_ - 4, ny_ + 3, 5)]),
        survey_id="xw",
    )  # fmt: skip
    expect[crosswalk.id] = (tile, {t_north})
    model = MapModel.from_features(
        CRS,
        [across, corner, long_line, *poles, crosswalk],
        height_datum="1985 National Height Datum",
        name="crossing",
    )
    return model, {"tile": tile, "expect": expect}


def _sorted(model: MapModel) -> list:
    return sorted(model.features(), key=lambda f: f.id)


def _decoded(tiles):
    return {t: decode_tile(e.data) for t, e in tiles.items()}


# ------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("level", [13, 15])
@pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
def test_round_trip_gives_back_the_features(make_model, level):
    model = make_model()
    tiles = encode_tiles(model, level=level)
    if model.is_empty:
        assert tiles == {}
        assert assemble([], crs=model.crs) == MapModel(model.crs)
        return
    back = assemble(t.data for t in tiles.values())
    assert _sorted(back) == _sorted(model)
    for a, b in zip(_sorted(back), _sorted(model), strict=True):
        assert a.geometry.wkb == b.geometry.wkb  # bit-exact
    assert (back.crs, back.height_datum, back.name) == (model.crs, model.height_datum, model.name)


def test_round_trip_over_several_tiles():
    model, _ = crossing_model()
    tiles = encode_tiles(model, level=LEVEL)
    assert len(tiles) >= 4
    assert _sorted(assemble(t.data for t in tiles.values())) == _sorted(model)


@pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
def test_every_feature_is_owned_by_exactly_one_tile_the_one_of_its_anchor(make_model):
    model = make_model()
    for level in (13, 15):
        tiles = encode_tiles(model, level=level)
        owners: dict[str, list[int]] = {}
        for tile_id, tile in _decoded(tiles).items():
            assert tile.tile_id == tile_id
            assert tiles[tile_id].owned == sum(tile.model.counts().values())
            assert tiles[tile_id].crossing == len(tile.crossing)
            for f in tile.model.features():
                owners.setdefault(f.id, []).append(tile_id)
        assert sorted(owners) == sorted(f.id for f in model.features())
        for f in model.features():
            assert owners[f.id] == [_tile_of_xy(*anchor_point(f.geometry)[:2], level)]


def test_tile_content_is_canonical_and_has_no_version_or_date():
    model = sample_model()
    shuffled = MapModel.from_features(
        model.crs,
        reversed(list(model.features())),
        height_datum=model.height_datum,
        name=model.name,
    )
    (tile,) = encode_tiles(model).values()
    (again,) = encode_tiles(shuffled).values()
    assert tile.data == again.data  # feature order in the model does not matter
    xml = gzip.decompress(tile.data)
    assert b"mapVersion" not in xml and b"validationStamp" not in xml and b"date" not in xml
    decoded = decode_tile(tile.data).model
    for layer in decoded.counts():
        ids = [f.id for f in decoded.layer(layer)]
        assert ids == sorted(ids)


# -------------------------------------------------------------------------------------- crossing


def test_crossing_references_are_right():
    model, facts = crossing_model()
    tiles = encode_tiles(model, level=LEVEL)
    decoded = _decoded(tiles)
    layers = {f.id: f.layer for f in model.features()}
    found_owner = {f.id: t for t, d in decoded.items() for f in d.model.features()}
    found_crossed: dict[str, set[int]] = {}
    for tile_id, d in decoded.items():
        for layer, fid in d.crossing:
            assert layers[fid] == layer
            found_crossed.setdefault(fid, set()).add(tile_id)
    for fid, (owner, crossed) in facts["expect"].items():
        assert found_owner[fid] == owner, fid
        assert found_crossed.get(fid, set()) == crossed, fid
    assert feature_tiles(model, level=LEVEL) == {
        fid: (owner, tuple(sorted(crossed))) for fid, (owner, crossed) in facts["expect"].items()
    }
    # references are sorted by layer, then ID
    for d in decoded.values():
        order = [(list(model.counts()).index(layer), fid) for layer, fid in d.crossing]
        assert order == sorted(order)


def test_crossed_tiles_cover_every_point_of_the_geometry():
    """Sampled densely, every point of each line and polygon lies in its owner or crossed tiles,
    and a polygon bigger than a tile lists the tiles it covers without a vertex in them."""
    tile = packed_tile_id(120.36, 31.59, LEVEL)
    west, south, _, _ = tile_bounds(tile)
    x0, y0 = _xy(west - 0.0001, south - 0.0002)
    # 1.6 km x 1.5 km square, 4 vertices: covers whole tiles with no vertex in them
    square = Crosswalk.create(
        Polygon([(x0, y0, 5), (x0 + 1600, y0, 5), (x0 + 1600, y0 + 1500, 5), (x0, y0 + 1500, 5)]),
        survey_id="big",
    )
    wiggle = _boundary(
        "wiggle", [(x0 + 37 * i, y0 + 300 * np.sin(i / 5.0) + 700) for i in range(40)]
    )
    model = MapModel.from_features(CRS, [square, wiggle])
    membership = feature_tiles(model, level=LEVEL)
    for f in (square, wiggle):
        owner, crossed = membership[f.id]
        allowed = {owner, *crossed}
        if isinstance(f.geometry, Polygon):
            xs, ys = np.meshgrid(np.arange(x0, x0 + 1600, 10.0), np.arange(y0, y0 + 1500, 10.0))
            xs, ys = xs.ravel(), ys.ravel()
        else:
            pts = shapely.line_interpolate_point(f.geometry, np.arange(0, f.geometry.length, 2.0))
            xs, ys = shapely.get_x(pts), shapely.get_y(pts)
        lon, lat = TO_LONLAT.transform(xs, ys)
        sampled = set(packed_tile_ids(np.asarray(lon), np.asarray(lat), LEVEL).tolist())
        assert sampled <= allowed
        assert len(allowed - sampled) <= 2  # only slivers between samples may be missed
    owner, crossed = membership[square.id]
    assert len(crossed) >= 8  # about 3 x 3 tiles and more


def test_densify_step_is_short_enough_for_level_15_tiles():
    # the corner test above relies on segments much shorter than a tile's 520 m width
    assert DENSIFY_M <= 50.0


# ----------------------------------------------------------------------------------- determinism


_HASHES_SCRIPT = """
import json
from tests.common import sample_model
from tests.test_tiles_encode import crossing_model
from tiles.encode import encode_tiles
out = {}
for name, model in (("sample", sample_model()), ("crossing", crossing_model()[0])):
    for level in (13, 15):
        tiles = encode_tiles(model, level=level)
        out[f"{name}-{level}"] = {str(t): e.sha256 for t, e in tiles.items()}
print(json.dumps(out, sort_keys=True))
"""


def _hashes_here() -> dict:
    out = {}
    for name, model in (("sample", sample_model()), ("crossing", crossing_model()[0])):
        for level in (13, 15):
            tiles = encode_tiles(model, level=level)
            out[f"{name}-{level}"] = {str(t): e.sha256 for t, e in tiles.items()}
    return out


def test_encoding_twice_gives_the_same_bytes():
    model, _ = crossing_model()
    first, second = encode_tiles(model, level=LEVEL), encode_tiles(model, level=LEVEL)
    assert first == second
    for tile in first.values():
        assert tile.sha256 == content_hash(tile.data)
        assert len(tile.sha256) == 64 and tile.sha256 == tile.sha256.lower()


@pytest.mark.slow
def test_other_processes_with_other_hash_seeds_give_the_same_hashes():
    here = _hashes_here()
    for seed in ("1", "4242"):
        proc = subprocess.run(
            [sys.executable, "-c", _HASHES_SCRIPT],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
            check=True,
        )
        assert json.loads(proc.stdout) == here


def test_gzip_header_is_fixed():
    (tile,) = encode_tiles(sample_model()).values()
    data = tile.data
    assert data[:4] == b"\x1f\x8b\x08\x00"  # deflate, no flags: no file name, no comment
    assert data[4:8] == b"\x00\x00\x00\x00"  # modification time 0
    assert data[9] == 255  # OS unknown, not the platform's
    assert gzip.decompress(data) == gunzip_bytes(data)


# ------------------------------------------------------------------------------ local changes


def _changed(before: dict, after: dict) -> set[int]:
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}


def test_changing_a_pole_changes_only_its_tile():
    model, facts = crossing_model()
    before = {t: e.sha256 for t, e in encode_tiles(model, level=LEVEL).items()}
    for pole in model.poles:
        taller = model.replace(
            poles=tuple(p.replace(height_m=9.5) if p is pole else p for p in model.poles)
        )
        after = {t: e.sha256 for t, e in encode_tiles(taller, level=LEVEL).items()}
        assert _changed(before, after) == {facts["expect"][pole.id][0]}


def test_changing_a_crossing_line_changes_only_its_tiles():
    model, _ = crossing_model()
    before = {t: e.sha256 for t, e in encode_tiles(model, level=LEVEL).items()}
    membership = feature_tiles(model, level=LEVEL)
    for line in model.lane_boundaries:
        moved = line.replace(geometry=shapely.affinity.translate(line.geometry, 0.0, 0.5))
        changed_model = model.replace(
            lane_boundaries=tuple(moved if b is line else b for b in model.lane_boundaries)
        )
        after = {t: e.sha256 for t, e in encode_tiles(changed_model, level=LEVEL).items()}
        owner, crossed = membership[line.id]
        new_owner, new_crossed = feature_tiles(changed_model, level=LEVEL)[line.id]
        changed = _changed(before, after)
        assert owner in changed
        assert changed <= {owner, new_owner, *crossed, *new_crossed}
        # a reference names only the feature: tiles crossed before and after stay identical
        assert not changed & (set(crossed) & set(new_crossed))


def test_removing_the_only_feature_of_a_tile_removes_the_tile():
    model, facts = crossing_model()
    pole = next(p for p in model.poles if facts["expect"][p.id][0] != facts["tile"])
    before = encode_tiles(model, level=LEVEL)
    after = encode_tiles(
        model.replace(poles=tuple(p for p in model.poles if p is not pole)), level=LEVEL
    )
    owner = facts["expect"][pole.id][0]
    if before[owner].owned == 1 and before[owner].crossing == 0:
        assert owner not in after
    assert set(after) <= set(before)


# ---------------------------------------------------------------------------- schema, validator


def test_tile_content_is_a_valid_local_standard_tile_file(tmp_path):
    from qa.validate import validate_file

    model, _ = crossing_model()
    for tile_id, tile in encode_tiles(model, level=13).items():
        path = tmp_path / f"{tile_id}{FILE_SUFFIX}"
        path.write_bytes(gunzip_bytes(tile.data))
        report = validate_file(path)
        # references to features in other tiles may dangle (XS-REF); the file is schema-valid and
        # every anchor lies in its declared tile
        assert not report.fired & {"XS-SCH-001", "XS-TIL-001"}, report.findings


def test_crossing_references_round_trip_through_the_local_standard():
    from formats.localstd import read_document_bytes, to_xml_bytes

    model = sample_model()
    refs = (("lane_boundaries", "lb-1"), ("road_arrows", "arrow-2"), ("junctions", "junction-3"))
    xml = to_xml_bytes(model, tile_id=557029043, crossing=refs)
    assert b'<ref layer="roadArrows" id="arrow-2"/>' in xml
    document = read_document_bytes(xml, "tile")
    assert document.crossing == refs and document.header.tile_id == 557029043
    # without references the element is left out: other files keep their bytes
    assert b"crossingFeatures" not in to_xml_bytes(model, tile_id=557029043)
    assert read_document_bytes(to_xml_bytes(model)).crossing == ()
    with pytest.raises(ValueError, match="no layer 'roads'"):
        to_xml_bytes(model, crossing=[("roads", "r-1")])


# ------------------------------------------------------------------------------- hostile bytes


def _xml_tile(xml: bytes) -> bytes:
    return gzip_bytes(xml)


def test_bytes_that_are_not_gzip_are_refused():
    with pytest.raises(TileError, match="not gzip"):
        decode_tile(b"<xsmap/>", source="tile 9")
    with pytest.raises(TileError, match=r"^tile 9: "):
        decode_tile(b"", source="tile 9")
    with pytest.raises(TileError):
        decode_tile("text")  # type: ignore[arg-type]


def test_corrupt_truncated_and_trailing_gzip_is_refused():
    (tile,) = encode_tiles(sample_model()).values()
    with pytest.raises(TileError, match=r"truncated|corrupt"):
        decode_tile(tile.data[: len(tile.data) // 2])
    with pytest.raises(TileError, match="corrupt"):
        decode_tile(tile.data[:10] + bytes(len(tile.data) - 10))
    with pytest.raises(TileError, match="after the end"):
        decode_tile(tile.data + b"junk")
    with pytest.raises(TileError, match="after the end"):
        decode_tile(tile.data + tile.data)  # a second gzip member


def test_gzip_bomb_is_refused_without_expanding_it():
    # 300 MiB of zeros compress to 1.3 MiB; decoding stops at the 256 MiB limit
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(300)) + compressor.flush()
    assert len(bomb) < 2 << 20 and MAX_TILE_BYTES == 256 << 20
    with pytest.raises(TileError, match="gzip bomb"):
        decode_tile(bomb)
    with pytest.raises(TileError, match="more than 1000 bytes"):
        decode_tile(gzip_bytes(bytes(1001)), max_bytes=1000)


def test_gzip_that_is_not_a_tile_is_refused():
    with pytest.raises(FormatError, match="not well-formed XML"):
        decode_tile(_xml_tile(b"\x89PNG\r\n\x1a\n"))
    with pytest.raises(FormatError, match="DOCTYPE"):
        decode_tile(_xml_tile(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'))
    with pytest.raises(FormatError, match="XSD"):
        decode_tile(_xml_tile(b'<xsmap xmlns="urn:db3202:hdmap:xsmap:1.0"/>'))
    (tile,) = encode_tiles(sample_model()).values()
    xml = gunzip_bytes(tile.data)
    head, _, rest = xml.partition(b"<tileId>")
    _, _, tail = rest.partition(b"</tileId>")
    with pytest.raises(TileError, match="no tileId"):
        decode_tile(_xml_tile(head + tail))
    with pytest.raises(TileError, match="level bit"):
        decode_tile(_xml_tile(head + b"<tileId>5</tileId>" + tail))
    with pytest.raises(FormatError, match="XSD"):
        bad_ref = xml.replace(
            b"</junctions>",
            b'</junctions><crossingFeatures><ref layer="x" id="a"/></crossingFeatures>',
        )
        decode_tile(_xml_tile(bad_ref))


# -------------------------------------------------------------------------------------- assemble


def test_assemble_refuses_mixed_maps_and_repeated_tiles():
    model, _ = crossing_model()
    tiles = encode_tiles(model, level=LEVEL)
    first, second = list(tiles)[:2]
    with pytest.raises(TileError, match="given twice"):
        assemble([tiles[first].data, tiles[first].data])
    other = encode_tiles(model.replace(name="another map"), level=LEVEL)
    with pytest.raises(TileError, match="differ"):
        assemble([tiles[first].data, other[second].data])
    with pytest.raises(TileError, match="crs="):
        assemble([])


def test_a_local_crs_cannot_be_tiled():
    from pipeline.crs import LOCAL_CRS_WKT

    model = MapModel.from_features(LOCAL_CRS_WKT, sample_model().features())
    with pytest.raises(CRSError, match="cannot be tiled"):
        encode_tiles(model)
    assert encode_tiles(MapModel(LOCAL_CRS_WKT)) == {}


def test_coordinates_off_the_globe_are_a_tile_error():
    pole = Pole.create(Point(1e12, 1e12, 0.0), 6.0, 0.1, survey_id="far")
    with pytest.raises(TileError, match="no WGS84 position"):
        encode_tiles(MapModel(CRS, poles=[pole]))


# ------------------------------------------------------------------------------------ benchmark


@pytest.mark.slow
def test_encoding_a_5_km_survey_map_is_fast():
    from tests.bench.tiles_bench import measure_tiles

    figures = measure_tiles(5000.0)
    assert figures["tiles"] >= 2 and figures["features"] > 100
    assert figures["seconds"] < 10.0
