"""Tile encoding: a :class:`~pipeline.model.MapModel` cut into deterministic, gzip'd NDS.Live tiles.

Each feature is owned by the tile holding its anchor point (:func:`pipeline.model.anchor_point`,
taken in the model's projected CRS, metres, then converted to WGS84 lon/lat): a point's position, a
line's midpoint, a polygon's centroid. Every other tile its geometry crosses lists it as a foreign
reference. To find those tiles, lines and polygon rings are densified to steps of at most
:data:`DENSIFY_M` metres in the projected CRS, converted to lon/lat and tested against the tile
squares, so a line that cuts a tile's corner between two vertices is found too. Tiles are
half-open (see :mod:`tiles.tileid`).

A tile's content is the local-standard XML (``formats.localstd.to_xml_bytes``, clause 5.3 of the
standard) of the features it owns, features sorted by ID within each layer, with the header's
``tileId`` and a final ``crossingFeatures`` element holding the foreign references sorted by layer
and ID; the map's name, CRS and height datum are in the header, no map version and no date. It is
gzip'd with a fixed header (modification time 0, no file name, OS "unknown"), so the same content
always gives the same bytes and the same SHA-256 (:func:`content_hash`), in any process.

>>> from pipeline.model import MapModel, Pole
>>> from shapely import Point
>>> pole = Pole.create(Point(534000.0, 3496000.0, 5.0), 6.5, 0.08, survey_id="s1")
>>> tiles = encode_tiles(MapModel("EPSG:4549", poles=[pole]))
>>> [(t.owned, t.crossing) for t in tiles.values()]
[(1, 0)]
>>> assemble(t.data for t in tiles.values()).poles == (pole,)
True
>>> encode_tiles(MapModel("EPSG:4549"))  # the empty map has no tiles
{}
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyproj
import shapely
from pyproj.exceptions import CRSError as PyprojCRSError
from shapely import Point

from formats.localstd import model_from_document, read_document_bytes, to_xml_bytes
from formats.xmlsafe import MAX_XML_BYTES
from pipeline.crs import map_crs
from pipeline.errors import CRSError, TileError
from pipeline.model import LAYERS, Feature, MapModel, anchor_point
from tiles.tileid import (
    DEFAULT_LEVEL,
    _check_level,
    _index_ranges,
    _pack,
    packed_tile_ids,
    tile_bounds,
    tile_level,
)

__all__ = [
    "DENSIFY_M",
    "MAX_TILE_BYTES",
    "DecodedTile",
    "EncodedTile",
    "assemble",
    "content_hash",
    "decode_tile",
    "encode_tiles",
    "feature_tiles",
    "gunzip_bytes",
    "gzip_bytes",
]

#: Longest step, metres in the model's CRS, between the points tested for crossing tiles.
DENSIFY_M = 50.0
#: A tile is refused when it decompresses to more than this many bytes (256 MiB).
MAX_TILE_BYTES = 256 * 1024 * 1024
_GZIP_LEVEL = 6
# RFC 1952 header: magic, deflate, no flags, mtime 0, no extra flags, OS 255 ("unknown").
# Written by hand because gzip.compress/zlib put the platform's OS byte in it.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_LAYER_ORDER = {name: i for i, name in enumerate(LAYERS)}


@dataclass(frozen=True, slots=True)
class EncodedTile:
    """One tile: its packed ID, gzip'd content, the content's SHA-256 (lowercase hex) and counts.

    ``owned`` is the number of features the tile holds, ``crossing`` the number of features of
    other tiles it references because their geometry crosses it.
    """

    tile_id: int
    data: bytes
    sha256: str
    owned: int
    crossing: int


@dataclass(frozen=True, slots=True)
class DecodedTile:
    """A decoded tile: its ID, the features it owns and ``(layer, feature id)`` it references."""

    tile_id: int
    model: MapModel
    crossing: tuple[tuple[str, str], ...]


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip of ``data``: modification time 0, no file name, OS byte 255.

    >>> gzip_bytes(b"") == gzip_bytes(b"")
    True
    >>> import gzip; gzip.decompress(gzip_bytes(b"tile"))
    b'tile'
    """
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    body = compressor.compress(data) + compressor.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return _GZIP_HEADER + body + trailer


def gunzip_bytes(data: bytes, *, max_bytes: int = MAX_XML_BYTES, source: str = "data") -> bytes:
    """The decompressed bytes of one gzip stream; TileError when ``data`` is not gzip, is
    truncated or corrupt, has bytes after the stream, or decompresses to more than ``max_bytes``
    (a gzip bomb is stopped after ``max_bytes`` bytes, not expanded).

    >>> gunzip_bytes(gzip_bytes(b"abc"))
    b'abc'
    >>> gunzip_bytes(b"<xsmap/>", source="tile 7")
    Traceback (most recent call last):
    ...
    pipeline.errors.TileError: tile 7: not gzip data (it does not start with the gzip magic bytes)
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TileError(f"gzip data must be bytes, not {type(data).__name__}", path=source)
    data = bytes(data)
    if data[:2] != b"\x1f\x8b":
        raise TileError("not gzip data (it does not start with the gzip magic bytes)", path=source)
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise TileError(f"corrupt gzip data ({exc})", path=source) from None
    if len(out) > max_bytes:
        raise TileError(
            f"gzip data expands to more than {max_bytes} bytes; refused (gzip bomb?)", path=source
        )
    if not inflater.eof:
        raise TileError("truncated gzip data", path=source)
    if inflater.unused_data:
        raise TileError(
            f"{len(inflater.unused_data)} bytes after the end of the gzip stream", path=source
        )
    return out


def content_hash(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data`` (a tile's gzip bytes).

    >>> content_hash(b"")
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return hashlib.sha256(data).hexdigest()


def _to_lonlat(crs: str) -> pyproj.Transformer:
    """Transformer from the horizontal part of ``crs`` to WGS84 lon/lat (always_xy)."""
    try:
        horizontal = pyproj.CRS(map_crs(pyproj.CRS(crs)))
    except PyprojCRSError as exc:
        raise CRSError(f"the map's CRS {crs!r} is not understood: {exc}") from None
    if not (horizontal.is_projected or horizontal.is_geographic) or horizontal.is_engineering:
        raise CRSError(
            f"the map's CRS {horizontal.name!r} is not tied to the Earth; it cannot be tiled"
        )
    return pyproj.Transformer.from_crs(horizontal, "EPSG:4326", always_xy=True)


def _lonlat(transformer: pyproj.Transformer, xy: np.ndarray, what: str) -> np.ndarray:
    lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
    out = np.column_stack([np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)])
    bad = ~(np.isfinite(out).all(axis=1) & (np.abs(out[:, 0]) <= 180) & (np.abs(out[:, 1]) <= 90))
    if bad.any():
        x, y = xy[np.flatnonzero(bad)[0]]
        raise TileError(f"{what}: ({x!r}, {y!r}) has no WGS84 position; wrong CRS?")
    return out


def _crossed(lonlat: np.ndarray, is_polygon: np.ndarray, level: int) -> list[set[int]]:
    """Tiles whose square meets each lon/lat geometry (vertices' tiles, plus interiors met)."""
    coords, index = shapely.get_coordinates(lonlat, return_index=True)
    tiles = packed_tile_ids(coords[:, 0], coords[:, 1], level)
    out: list[set[int]] = [set() for _ in range(len(lonlat))]
    for g, t in np.unique(np.column_stack([index, tiles]), axis=0).tolist():
        out[g].add(t)
    # candidate squares: each segment's box (short segments: one tile, or 2x2 across an edge),
    # and a polygon's whole box (a polygon may cover a tile without a vertex in it)
    same = index[1:] == index[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    owner = index[:-1][same]
    bounds = shapely.bounds(lonlat[is_polygon])
    owner = np.concatenate([owner, np.flatnonzero(is_polygon)])
    west = np.concatenate([np.minimum(a[:, 0], b[:, 0]), bounds[:, 0]])
    south = np.concatenate([np.minimum(a[:, 1], b[:, 1]), bounds[:, 1]])
    east = np.concatenate([np.maximum(a[:, 0], b[:, 0]), bounds[:, 2]])
    north = np.concatenate([np.maximum(a[:, 1], b[:, 1]), bounds[:, 3]])
    x0, y0, x1, y1 = _index_ranges(west, south, east, north, level)
    wide = np.flatnonzero((x0 != x1) | (y0 != y1))
    pairs: set[tuple[int, int]] = set()
    for i in wide.tolist():
        tx, ty = np.meshgrid(np.arange(x0[i], x1[i] + 1), np.arange(y0[i], y1[i] + 1))
        g = int(owner[i])
        for t in _pack(tx.ravel(), ty.ravel(), level).tolist():
            if t not in out[g]:
                pairs.add((g, t))
    if pairs:
        ordered = sorted(pairs)
        geoms = lonlat[[g for g, _ in ordered]]
        boxes = shapely.box(*np.array([tile_bounds(t) for _, t in ordered]).T)
        hits = shapely.relate_pattern(geoms, boxes, "T********")  # interiors meet
        for (g, t), hit in zip(ordered, hits.tolist(), strict=True):
            if hit:
                out[g].add(t)
    return out


def feature_tiles(
    model: MapModel, *, level: int = DEFAULT_LEVEL
) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Feature ID -> (owning tile, other tiles its geometry crosses, ascending) at ``level``.

    Raises :class:`~pipeline.errors.CRSError` when the model's CRS is not tied to the Earth (a
    local engineering frame) and TileError when a coordinate has no WGS84 position.

    >>> feature_tiles(MapModel("EPSG:4549"))
    {}
    """
    level = _check_level(level)
    features: list[Feature] = list(model.features())
    if not features:
        return {}
    transformer = _to_lonlat(model.crs)
    anchors = np.array([anchor_point(f.geometry)[:2] for f in features], dtype=float)
    lonlat = _lonlat(transformer, anchors, "feature anchor")
    owners = packed_tile_ids(lonlat[:, 0], lonlat[:, 1], level).tolist()
    crossed: list[set[int]] = [set() for _ in features]
    extended = np.array([not isinstance(f.geometry, Point) for f in features])
    if extended.any():
        geoms = shapely.segmentize(
            np.array([f.geometry for f in features], dtype=object)[extended], DENSIFY_M
        )
        xy = shapely.get_coordinates(geoms)
        converted = _lonlat(transformer, xy, "feature vertex")
        flat = shapely.set_coordinates(shapely.force_2d(geoms), converted)
        kinds = shapely.get_type_id(flat) == shapely.GeometryType.POLYGON
        for i, tiles in zip(np.flatnonzero(extended), _crossed(flat, kinds, level), strict=True):
            crossed[i] = tiles
    return {
        f.id: (owner, tuple(sorted(crossed[i] - {owner})))
        for i, (f, owner) in enumerate(zip(features, owners, strict=True))
    }


def encode_tiles(model: MapModel, *, level: int = DEFAULT_LEVEL) -> dict[int, EncodedTile]:
    """The tiles of ``model`` at ``level``, by packed tile ID (ascending); {} for an empty map.

    A tile exists when it owns a feature or a feature of another tile crosses it. See the module
    docstring for ownership, content and determinism; errors as :func:`feature_tiles`.
    """
    membership = feature_tiles(model, level=level)
    owned: dict[int, list[Feature]] = {}
    refs: dict[int, list[tuple[str, str]]] = {}
    for f in model.features():
        owner, others = membership[f.id]
        owned.setdefault(owner, []).append(f)
        for t in others:
            refs.setdefault(t, []).append((f.layer, f.id))
    tiles: dict[int, EncodedTile] = {}
    for tile_id in sorted(owned.keys() | refs.keys()):
        features = sorted(owned.get(tile_id, ()), key=lambda f: f.id)
        crossing = sorted(refs.get(tile_id, ()), key=lambda r: (_LAYER_ORDER[r[0]], r[1]))
        part = MapModel.from_features(
            model.crs, features, height_datum=model.height_datum, name=model.name
        )
        data = gzip_bytes(to_xml_bytes(part, tile_id=tile_id, crossing=crossing))
        tiles[tile_id] = EncodedTile(
            tile_id, data, content_hash(data), owned=len(features), crossing=len(crossing)
        )
    return tiles


def decode_tile(
    data: bytes, *, source: str = "tile", max_bytes: int = MAX_TILE_BYTES
) -> DecodedTile:
    """The tile ID, owned features and foreign references of one tile's gzip bytes.

    Raises TileError when ``data`` is not gzip, is corrupt or expands beyond ``max_bytes``, or the
    content declares no valid ``tileId``; FormatError when the content is not well-formed XML, not
    valid against the schema, or holds values the model refuses. ``source`` names the tile in
    messages.

    >>> decode_tile(gzip_bytes(b"not xml"), source="tile 1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.FormatError: tile 1: not well-formed XML: ...
    """
    xml = gunzip_bytes(data, max_bytes=max_bytes, source=source)
    document = read_document_bytes(xml, source, max_bytes=max_bytes)
    tile_id = document.header.tile_id
    if tile_id is None:
        raise TileError("the content declares no tileId; it is not a tile", path=source)
    try:
        tile_level(tile_id)
    except TileError as exc:
        raise TileError(str(exc), path=source) from None
    return DecodedTile(tile_id, model_from_document(document), document.crossing)


def assemble(tiles: Iterable[bytes], *, crs: str | None = None) -> MapModel:
    """One map from several tiles' gzip bytes: the union of the features they own.

    Features are sorted by ID within each layer. All tiles must share CRS, height datum and name
    (else TileError), and no tile may come twice. With no tiles the map is empty and takes ``crs``
    (TileError when it is not given).

    >>> assemble([], crs="EPSG:4549").is_empty
    True
    """
    features: list[Feature] = []
    header: tuple[str, str, str] | None = None
    seen: set[int] = set()
    for i, data in enumerate(tiles):
        tile = decode_tile(data, source=f"tile #{i}")
        m = tile.model
        if tile.tile_id in seen:
            raise TileError(f"tile {tile.tile_id} is given twice")
        seen.add(tile.tile_id)
        if header is None:
            header = (m.crs, m.height_datum, m.name)
        elif (m.crs, m.height_datum, m.name) != header:
            got = (m.crs, m.height_datum, m.name)
            raise TileError(
                f"tile {tile.tile_id}: CRS, height datum and name {got!r} differ from the "
                f"other tiles' {header!r}"
            )
        features.extend(m.features())
    if header is None:
        if crs is None:
            raise TileError("no tiles to assemble (give crs= to get an empty map)")
        return MapModel(crs)
    features.sort(key=lambda f: f.id)
    return MapModel.from_features(header[0], features, height_datum=header[1], name=header[2])
