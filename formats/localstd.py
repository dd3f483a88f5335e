"""The local-standard exchange format (DB3202/T XXXX—2026 clause 8): one UTF-8 XML ``*.xsmap.xml``.

An XML encoding of the canonical :class:`~pipeline.model.MapModel`, valid against
``standards/xsd/xsmap-1.0.xsd``: a header (name, CRS, height datum, accuracy grade, optional tile
ID and validation stamp) and one container per layer, in the order of
:data:`pipeline.model.LAYERS`. :data:`LAYER_ENCODINGS` lists every element and attribute. A tile
file (clause 5.3) may end with ``crossingFeatures``, references to features owned by other tiles
that cross this one, ``<ref layer="laneBoundaries" id=".."/>`` (the layer's container element);
they are read into :attr:`LocalStdDocument.crossing`.

- Every model field is written, so ``read_localstd(write_localstd(m)) == m`` exactly: floats are
  written with ``repr`` (shortest text that round-trips bit for bit), ``None`` is an absent
  attribute, coordinates are ``x y z`` triplets in one whitespace-separated list per line or ring.
- Writing is deterministic (layers, features and attributes in a fixed order: the same model gives
  the same bytes; features keep the model's order, which is part of the model) and atomic.
- Reading is safe: the file size is checked before anything is read (:data:`DEFAULT_MAX_BYTES`),
  the XML parser resolves no entities, loads no DTD and touches no network, and any DOCTYPE is
  refused, so external entities and entity-expansion bombs fail fast with a :class:`FormatError`.

>>> import tempfile, pathlib
>>> from pipeline.model import MapModel, Pole
>>> from shapely import Point
>>> path = pathlib.Path(tempfile.mkdtemp()) / "map.xsmap.xml"
>>> pole = Pole.create(Point(534000.1, 3496000.2, 5.0), 6.5, 0.08, survey_id="s1")
>>> model = MapModel("EPSG:4549", height_datum="1985 National Height Datum", poles=[pole])
>>> write_localstd(model, path)
>>> read_localstd(path) == model
True
>>> write_localstd(MapModel("EPSG:4549"), path)  # the empty map
>>> read_localstd(path).is_empty
True
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import shapely
from lxml import etree
from shapely import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from formats.xmlsafe import MAX_XML_BYTES, parse_xml, parse_xml_bytes, safe_parser
from pipeline.errors import FormatError, HDMapIOError
from pipeline.files import atomic_path
from pipeline.model import (
    ArrowKind,
    Color,
    Crosswalk,
    Direction,
    Feature,
    Junction,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    Provenance,
    RoadArrow,
    RoadEdge,
    RoadEdgeKind,
    Sign,
    SignClass,
    SignShape,
    StopLine,
)
from standards import FILE_SUFFIX, FORMAT_VERSION, NAMESPACE, XSD_PATH

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FILE_SUFFIX",
    "LAYER_ENCODINGS",
    "Attribute",
    "Header",
    "LayerEncoding",
    "LocalStdDocument",
    "RawFeature",
    "document_from_tree",
    "load_xml",
    "model_from_document",
    "raw_geometry",
    "read_document",
    "read_document_bytes",
    "read_localstd",
    "read_localstd_bytes",
    "schema",
    "schema_errors",
    "to_xml_bytes",
    "write_localstd",
]

#: Files larger than this are refused before reading (512 MiB).
DEFAULT_MAX_BYTES = MAX_XML_BYTES
_NS = f"{{{NAMESPACE}}}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One XML attribute of a feature element: its name, the model attribute and its kind.

    ``kind`` is ``"text"``, ``"real"`` or ``"enum"`` (then ``enum`` is the model's StrEnum and
    ``codelist`` the name of the standard's code list holding the same values).
    """

    xml: str
    attr: str
    kind: str = "text"
    enum: type[StrEnum] | None = None
    codelist: str = ""


@dataclass(frozen=True, slots=True)
class LayerEncoding:
    """How one layer is encoded: container and feature elements, geometry element, attributes.

    ``geometry`` is ``"line"``, ``"point"``, ``"polygon"`` or ``"point|polygon"``; ``lists`` maps
    child elements holding number lists to model attributes, ``refs`` maps repeated ``<x ref=""/>``
    children to tuple-of-ID model attributes.
    """

    layer: str
    container: str
    element: str
    feature_type: type[Feature]
    geometry: str
    attributes: tuple[Attribute, ...]
    lists: tuple[tuple[str, str], ...] = ()
    refs: tuple[tuple[str, str], ...] = ()


_COMMON_AFTER = (
    Attribute("confidence", "confidence", "real"),
    Attribute("accuracyM", "accuracy_m", "real"),
)

LAYER_ENCODINGS: tuple[LayerEncoding, ...] = (
    LayerEncoding(
        "lane_boundaries",
        "laneBoundaries",
        "laneBoundary",
        LaneBoundary,
        "line",
        (
            Attribute("marking", "marking", "enum", MarkingKind, "marking_kinds"),
            Attribute("color", "color", "enum", Color, "colors"),
            Attribute("widthM", "width_m", "real"),
            Attribute("dashLengthM", "dash_length_m", "real"),
            Attribute("gapLengthM", "gap_length_m", "real"),
        ),
    ),
    LayerEncoding(
        "lanes",
        "lanes",
        "lane",
        Lane,
        "line",
        (
            Attribute("direction", "direction", "enum", Direction, "lane_directions"),
            Attribute("leftBoundary", "left_boundary"),
            Attribute("rightBoundary", "right_boundary"),
            Attribute("leftNeighbour", "left_neighbour"),
            Attribute("rightNeighbour", "right_neighbour"),
            Attribute("junction", "junction"),
        ),
        lists=(("widths", "widths_m"),),
        refs=(("predecessor", "predecessors"), ("successor", "successors")),
    ),
    LayerEncoding(
        "road_edges",
        "roadEdges",
        "roadEdge",
        RoadEdge,
        "line",
        (
            Attribute("kind", "kind", "enum", RoadEdgeKind, "road_edge_kinds"),
            Attribute("heightM", "height_m", "real"),
        ),
    ),
    LayerEncoding(
        "stop_lines",
        "stopLines",
        "stopLine",
        StopLine,
        "line",
        (Attribute("widthM", "width_m", "real"),),
    ),
    LayerEncoding("crosswalks", "crosswalks", "crosswalk", Crosswalk, "polygon", ()),
    LayerEncoding(
        "road_arrows",
        "roadArrows",
        "roadArrow",
        RoadArrow,
        "point|polygon",
        (Attribute("kind", "kind", "enum", ArrowKind, "arrow_kinds"),),
    ),
    LayerEncoding(
        "poles",
        "poles",
        "pole",
        Pole,
        "point",
        (Attribute("heightM", "height_m", "real"), Attribute("radiusM", "radius_m", "real")),
    ),
    LayerEncoding(
        "signs",
        "signs",
        "sign",
        Sign,
        "point",
        (
            Attribute("class", "sign_class", "enum", SignClass, "sign_classes"),
            Attribute("shape", "shape", "enum", SignShape, "sign_shapes"),
            Attribute("facingDeg", "facing_deg", "real"),
            Attribute("widthM", "width_m", "real"),
            Attribute("heightM", "height_m", "real"),
            Attribute("pole", "pole"),
        ),
    ),
    LayerEncoding(
        "junctions", "junctions", "junction", Junction, "polygon", (), refs=(("lane", "lanes"),)
    ),
)
_BY_ELEMENT = {e.element: e for e in LAYER_ENCODINGS}
_CONTAINER_OF_LAYER = {e.layer: e.container for e in LAYER_ENCODINGS}
_LAYER_OF_CONTAINER = {e.container: e.layer for e in LAYER_ENCODINGS}


@dataclass(frozen=True, slots=True)
class Header:
    """The map-level fields of a file. Absent values are None (``name`` is "" when absent)."""

    format_version: str
    map_version: str | None = None
    name: str = ""
    crs: str | None = None
    height_datum: str | None = None
    accuracy_grade: str | None = None
    tile_id: int | None = None
    stamp: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RawFeature:
    """A feature element as read, before any value is checked (what the validator works on).

    ``attributes`` holds the XML attributes as text; ``geometry`` is ``"line"``, ``"point"`` or
    ``"polygon"`` with ``rings`` the numbers of its line, point, or exterior then interior rings;
    ``lists`` and ``refs`` hold the number-list and reference children; ``line`` is the source line.
    """

    layer: str
    id: str
    line: int
    attributes: Mapping[str, str]
    geometry: str
    rings: tuple[tuple[float, ...], ...]
    lists: Mapping[str, tuple[float, ...]]
    refs: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class LocalStdDocument:
    """A parsed file: its path, header and raw features in file order.

    ``crossing`` holds a tile file's references to features of other tiles crossing it, as
    ``(layer, feature id)`` with the model's layer names (``"lanes"``), in file order.
    """

    path: str
    header: Header
    features: tuple[RawFeature, ...]
    crossing: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------------------- writing


def write_localstd(
    model: MapModel,
    path: str | os.PathLike[str],
    *,
    accuracy_grade: str = "A",
    tile_id: int | None = None,
    map_version: int | None = None,
    stamp: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` to ``path`` (conventionally ``map.xsmap.xml``), replaced atomically.

    ``accuracy_grade`` is the grade claimed (a code of the standard's accuracy-grade list);
    ``tile_id`` an NDS.Live packed level-13 tile ID when the file holds one tile; ``map_version``
    the map version; ``stamp`` a validation stamp (see :func:`qa.validate.validation_stamp`).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "map.xsmap.xml"
    >>> write_localstd(MapModel("EPSG:4549"), path)
    >>> path.read_bytes()[:38]
    b"<?xml version='1.0' encoding='UTF-8'?>"
    """
    data = to_xml_bytes(
        model, accuracy_grade=accuracy_grade, tile_id=tile_id, map_version=map_version, stamp=stamp
    )
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise HDMapIOError(f"cannot write the local-standard file: {exc}", path=path) from exc


_STAMP_KEYS = (
    "validator",
    "validatorVersion",
    "catalogueVersion",
    "date",
    "result",
    "errors",
    "warnings",
)


def to_xml_bytes(
    model: MapModel,
    *,
    accuracy_grade: str = "A",
    tile_id: int | None = None,
    map_version: int | None = None,
    stamp: Mapping[str, Any] | None = None,
    crossing: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The file's bytes for ``model`` (UTF-8 XML with a declaration), see :func:`write_localstd`.

    ``crossing`` lists ``(layer, feature id)`` of features owned by other tiles that cross this
    tile (layer names as in :data:`pipeline.model.LAYERS`); they are written in the given order
    in a final ``crossingFeatures`` element, which is left out when there are none.

    >>> b"<lanes/>" in to_xml_bytes(MapModel("EPSG:4549"))
    True
    >>> b'<ref layer="poles" id="pole-1"/>' in to_xml_bytes(
    ...     MapModel("EPSG:4549"), tile_id=545554681, crossing=[("poles", "pole-1")])
    True
    """
    root = etree.Element(_NS + "xsmap", nsmap={None: NAMESPACE})
    root.set("formatVersion", FORMAT_VERSION)
    if map_version is not None:
        root.set("mapVersion", str(int(map_version)))
    header = etree.SubElement(root, _NS + "header")
    etree.SubElement(header, _NS + "name").text = model.name
    etree.SubElement(header, _NS + "crs").text = model.crs
    etree.SubElement(header, _NS + "heightDatum").text = model.height_datum
    etree.SubElement(header, _NS + "accuracy").set("grade", accuracy_grade)
    if tile_id is not None:
        etree.SubElement(header, _NS + "tileId").text = str(int(tile_id))
    if stamp is not None:
        element = etree.SubElement(header, _NS + "validationStamp")
        for key in _STAMP_KEYS:
            element.set(key, str(stamp[key]))
    for encoding in LAYER_ENCODINGS:
        container = etree.SubElement(root, _NS + encoding.container)
        for feature in model.layer(encoding.layer):
            _write_feature(container, encoding, feature)
    crossing = tuple(crossing)
    if crossing:
        element = etree.SubElement(root, _NS + "crossingFeatures")
        for layer, fid in crossing:
            if layer not in _CONTAINER_OF_LAYER:
                raise ValueError(f"crossing reference {fid!r}: no layer {layer!r}")
            ref = etree.SubElement(element, _NS + "ref")
            ref.set("layer", _CONTAINER_OF_LAYER[layer])
            ref.set("id", fid)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(value)


def _numbers(values: Sequence[float]) -> str:
    return " ".join(_number(v) for v in values)


def _coords(geometry: BaseGeometry) -> str:
    values = shapely.get_coordinates(geometry, include_z=True).ravel().tolist()
    if all(map(math.isfinite, values)):  # always, for model geometries: the fast path
        return " ".join(map(repr, values))
    return _numbers(values)


def _write_feature(container: etree._Element, encoding: LayerEncoding, feature: Feature) -> None:
    element = etree.SubElement(container, _NS + encoding.element)
    element.set("id", feature.id)
    for a in (*encoding.attributes, *_COMMON_AFTER):
        value = getattr(feature, a.attr)
        if value is None:
            continue
        element.set(a.xml, _number(value) if a.kind == "real" else str(value))
    element.set("surveyId", feature.provenance.survey_id)
    element.set("method", feature.provenance.method)
    geometry = feature.geometry
    if isinstance(geometry, Polygon):
        polygon = etree.SubElement(element, _NS + "polygon")
        etree.SubElement(polygon, _NS + "exterior").text = _coords(geometry.exterior)
        for ring in geometry.interiors:
            etree.SubElement(polygon, _NS + "interior").text = _coords(ring)
    else:
        tag = "point" if isinstance(geometry, Point) else "line"
        etree.SubElement(element, _NS + tag).text = _coords(geometry)
    for tag, attr in encoding.lists:
        etree.SubElement(element, _NS + tag).text = _numbers(getattr(feature, attr))
    for tag, attr in encoding.refs:
        for ref in getattr(feature, attr):
            etree.SubElement(element, _NS + tag).set("ref", ref)


# --------------------------------------------------------------------------------------- reading


def load_xml(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> etree._ElementTree:
    """Parse ``path`` safely: size checked first, no DTD, no entities, no network, no DOCTYPE.

    Raises :class:`~pipeline.errors.HDMapIOError` when the file cannot be opened and
    :class:`~pipeline.errors.FormatError` when it is too big, not well-formed or has a DOCTYPE.

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.xsmap.xml"
    >>> _ = bad.write_text("<xsmap>")
    >>> load_xml(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.FormatError: .../bad.xsmap.xml: not well-formed XML: ...
    """
    return parse_xml(path, max_bytes=max_bytes, doctype_refusal=_DOCTYPE_MESSAGE)


_DOCTYPE_MESSAGE = (
    "DOCTYPE declarations are not allowed (clause 8.4: entity definitions, external entities "
    "and DTDs are refused)"
)


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The exchange format's XSD (``standards/xsd/xsmap-1.0.xsd``), compiled once."""
    return etree.XMLSchema(etree.parse(str(XSD_PATH), safe_parser()))


def schema_errors(tree: etree._ElementTree) -> list[tuple[int, str]]:
    """``(line, message)`` for every XSD violation of ``tree``; empty when the file is valid."""
    checker = schema()
    if checker.validate(tree):
        return []
    return [(e.line, e.message) for e in checker.error_log]


def read_document(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> LocalStdDocument:
    """Parse and schema-check ``path``; the raw features are not checked further.

    Raises :class:`~pipeline.errors.FormatError` at the first schema violation.
    """
    return _valid_document(load_xml(path, max_bytes=max_bytes), path)


def _valid_document(tree: etree._ElementTree, path: str | os.PathLike[str]) -> LocalStdDocument:
    errors = schema_errors(tree)
    if errors:
        line, message = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FormatError(f"line {line}: not valid against the XSD: {message}{more}", path=path)
    return document_from_tree(tree, path)


def read_localstd(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> MapModel:
    """Read a local-standard file into the canonical model.

    Raises :class:`~pipeline.errors.FormatError` naming the file (and layer and feature ID) when
    the file is too big, malformed, not valid against the XSD, or holds a value the model cannot
    take (an unknown code, a width list of the wrong length, a 2D or non-finite coordinate...).
    The accuracy grade, tile ID and stamp are in :func:`read_document`'s header.
    """
    return model_from_document(read_document(path, max_bytes=max_bytes))


def read_document_bytes(
    data: bytes, source: str = "<bytes>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> LocalStdDocument:
    """:func:`read_document` for a file held in memory (a tile, an upload); ``source`` names it.

    >>> read_document_bytes(to_xml_bytes(MapModel("EPSG:4549"), tile_id=65536)).header.tile_id
    65536
    >>> read_document_bytes(b"GIF89a", source="upload")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.FormatError: upload: not well-formed XML: ...
    """
    tree = parse_xml_bytes(data, path=source, max_bytes=max_bytes, doctype_refusal=_DOCTYPE_MESSAGE)
    return _valid_document(tree, source)


def read_localstd_bytes(
    data: bytes, source: str = "<bytes>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> MapModel:
    """:func:`read_localstd` for a file held in memory; ``source`` names it in errors.

    >>> read_localstd_bytes(to_xml_bytes(MapModel("EPSG:4549"))).is_empty
    True
    """
    return model_from_document(read_document_bytes(data, source=source, max_bytes=max_bytes))


def _floats(text: str | None) -> tuple[float, ...]:
    return tuple(float(v) for v in (text or "").split())


def document_from_tree(tree: etree._ElementTree, path: str | os.PathLike[str]) -> LocalStdDocument:
    """The header and raw features of a schema-valid tree."""
    root = tree.getroot()
    head = root.find(_NS + "header")

    def text(tag: str) -> str | None:
        element = head.find(_NS + tag) if head is not None else None
        return None if element is None else (element.text or "")

    accuracy = head.find(_NS + "accuracy") if head is not None else None
    stamp = head.find(_NS + "validationStamp") if head is not None else None
    tile = text("tileId")
    header = Header(
        format_version=root.get("formatVersion", ""),
        map_version=root.get("mapVersion"),
        name=text("name") or "",
        crs=text("crs"),
        height_datum=text("heightDatum"),
        accuracy_grade=None if accuracy is None else accuracy.get("grade"),
        tile_id=None if tile is None else int(tile),
        stamp=None if stamp is None else MappingProxyType(dict(stamp.attrib)),
    )
    features = []
    for encoding in LAYER_ENCODINGS:
        container = root.find(_NS + encoding.container)
        if container is None:
            continue
        for element in container.iterchildren(_NS + encoding.element):
            features.append(_raw_feature(encoding, element))
    crossing = root.find(_NS + "crossingFeatures")
    refs = () if crossing is None else crossing.iterchildren(_NS + "ref")
    return LocalStdDocument(
        str(path),
        header,
        tuple(features),
        tuple((_LAYER_OF_CONTAINER[r.get("layer")], r.get("id", "")) for r in refs),
    )


def _raw_feature(encoding: LayerEncoding, element: etree._Element) -> RawFeature:
    geometry, rings = "", ()
    polygon = element.find(_NS + "polygon")
    if polygon is not None:
        geometry = "polygon"
        rings = tuple(_floats(ring.text) for ring in polygon)
    else:
        for tag in ("line", "point"):
            child = element.find(_NS + tag)
            if child is not None:
                geometry, rings = tag, (_floats(child.text),)
    lists = {tag: _floats(element.findtext(_NS + tag)) for tag, _ in encoding.lists}
    refs = {
        tag: tuple(c.get("ref", "") for c in element.iterchildren(_NS + tag))
        for tag, _ in encoding.refs
    }
    return RawFeature(
        layer=encoding.layer,
        id=element.get("id", ""),
        line=element.sourceline or 0,
        attributes=MappingProxyType(dict(element.attrib)),
        geometry=geometry,
        rings=rings,
        lists=MappingProxyType(lists),
        refs=MappingProxyType(refs),
    )


def raw_geometry(raw: RawFeature) -> BaseGeometry:
    """The shapely geometry of a raw feature; ValueError when its coordinates cannot make one."""
    rings = []
    for numbers in raw.rings:
        if len(numbers) % 3:
            raise ValueError(f"{len(numbers)} numbers are not x y z triplets")
        rings.append([numbers[i : i + 3] for i in range(0, len(numbers), 3)])
    if raw.geometry == "point":
        if len(rings[0]) != 1:
            raise ValueError(f"a point needs one x y z triplet, got {len(rings[0])}")
        return Point(rings[0][0])
    if raw.geometry == "line":
        if len(rings[0]) < 2:
            raise ValueError(f"a line needs at least 2 positions, got {len(rings[0])}")
        return LineString(rings[0])
    if any(len(r) < 4 for r in rings):
        raise ValueError("a polygon ring needs at least 4 positions")
    return Polygon(rings[0], rings[1:])


def model_from_document(document: LocalStdDocument) -> MapModel:
    """The canonical model of a parsed file; FormatError names the feature and the problem."""
    path = document.path
    header = document.header
    if header.format_version != FORMAT_VERSION:
        raise FormatError(
            f"format version {header.format_version!r} is not supported (this reader knows "
            f"{FORMAT_VERSION!r})",
            path=path,
        )
    if not header.crs:
        raise FormatError("header: no crs", path=path)
    features = [_feature(path, raw) for raw in document.features]
    try:
        return MapModel.from_features(
            header.crs,
            features,
            height_datum=header.height_datum or "unknown",
            name=header.name,
        )
    except FormatError as exc:
        raise FormatError(str(exc), path=path) from None


def _feature(path: str, raw: RawFeature) -> Feature:
    encoding = next(e for e in LAYER_ENCODINGS if e.layer == raw.layer)
    where = f"layer {raw.layer!r}: feature {raw.id or '(no id)'} (line {raw.line})"
    try:
        geometry = raw_geometry(raw)
        kwargs: dict[str, Any] = {}
        for a in (*encoding.attributes, *_COMMON_AFTER):
            text = raw.attributes.get(a.xml)
            if text is None:
                continue
            kwargs[a.attr] = _value(a, text)
        for tag, attr in encoding.lists:
            kwargs[attr] = raw.lists[tag]
        for tag, attr in encoding.refs:
            kwargs[attr] = raw.refs[tag]
        provenance = Provenance(raw.attributes["surveyId"], raw.attributes["method"])
        return encoding.feature_type(geometry=geometry, id=raw.id, provenance=provenance, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise FormatError(f"{where}: {exc}", path=path) from None


def _value(a: Attribute, text: str) -> Any:
    if a.kind == "real":
        return float(text)
    if a.kind == "enum":
        try:
            return a.enum(text)
        except ValueError:
            allowed = ", ".join(e.value for e in a.enum)
            raise ValueError(f"unknown {a.xml} {text!r} (expected one of: {allowed})") from None
    return text
