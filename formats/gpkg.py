"""GeoPackage: the canonical :class:`~pipeline.model.MapModel` as one ``.gpkg`` file, losslessly.

One layer per feature class, named as :data:`pipeline.model.LAYERS`, in the model's CRS with 3D
geometries (the contract of ARCHITECTURE.md section 4); every other model field is an extra column,
so ``read_gpkg(write_gpkg(m)) == m`` exactly. Map-level fields live in the attribute table
``map_info`` (``key``, ``value``). :data:`LAYER_SCHEMAS` lists every layer, column and type.

- Every layer is written, even when empty, so consumers always find all of them.
- Floats are IEEE doubles (``REAL``) and round-trip bit for bit; lists (lane widths, lane links)
  are JSON text; ``None`` is SQL ``NULL``.
- Writing is deterministic: the same model gives a byte-identical file (the GeoPackage
  ``last_change`` timestamps are fixed to :data:`FIXED_TIMESTAMP`), and atomic.
- ``road_arrows`` holds polygons and points, so its declared type is the generic ``GEOMETRY`` with
  ``z = 2`` ("Z optional": GDAL's reading of a generic ``Z``-mandatory layer breaks pyogrio);
  every geometry written in it is 3D all the same.
- :func:`read_gpkg` also reads files made by other tools: ``map_info`` may be absent (the CRS then
  comes from the layers' spatial reference, provenance defaults to ``"unknown"``), ``junctions``
  may be absent, and columns beyond the contract ones are optional with the model's defaults.

>>> import tempfile, pathlib
>>> from pipeline.model import MapModel, Pole
>>> from shapely import Point
>>> path = pathlib.Path(tempfile.mkdtemp()) / "features.gpkg"
>>> model = MapModel("EPSG:4549", poles=[Pole.create(Point(534000.1, 3496000.2, 5.0), 6.5, 0.08,
...                                                  survey_id="s1")])
>>> write_gpkg(model, path)
>>> read_gpkg(path) == model
True
>>> write_gpkg(MapModel("EPSG:4549"), path)  # empty layers are still written
>>> read_gpkg(path).is_empty
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.errors
import pyogrio.raw
import pyproj
import shapely

from pipeline.errors import CRSError, FormatError, HDMapIOError
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

__all__ = [
    "FIXED_TIMESTAMP",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LAYER_SCHEMAS",
    "MAP_INFO_LAYER",
    "Column",
    "LayerSchema",
    "read_gpkg",
    "write_gpkg",
]

FORMAT_NAME = "hdmap-gpkg"
FORMAT_VERSION = "1"
MAP_INFO_LAYER = "map_info"
#: Written as every ``gpkg_contents.last_change`` so that files are byte-reproducible.
FIXED_TIMESTAMP = "2000-01-01T00:00:00.000Z"
UNKNOWN = "unknown"

_PYOGRIO_ERRORS = (
    pyogrio.errors.DataSourceError,
    pyogrio.errors.DataLayerError,
    pyogrio.errors.FieldError,
    pyogrio.errors.GeometryError,
    pyogrio.errors.FeatureError,
    pyogrio.errors.CRSError,
)


@dataclass(frozen=True, slots=True)
class Column:
    """One attribute column of a layer.

    ``kind`` is ``"text"``, ``"real"`` (float64), ``"text_list"`` or ``"real_list"`` (JSON lists
    stored as text). ``attr`` is the model attribute it holds (``survey_id`` and ``method`` are
    the feature's provenance). ``required`` columns must exist in a file being read (the contract
    columns); a column with ``read=False`` is derived (written for users, not read back).
    """

    name: str
    kind: str
    attr: str
    enum: type[StrEnum] | None = None
    required: bool = False
    read: bool = True


@dataclass(frozen=True, slots=True)
class LayerSchema:
    """A layer: its name, feature class, declared geometry type (pyogrio's name) and columns."""

    name: str
    feature_type: type[Feature]
    geometry_type: str
    columns: tuple[Column, ...]
    required: bool = True  # a contract layer: a file without it is refused

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _common(*contract: Column) -> tuple[Column, ...]:
    return (
        Column("id", "text", "id", required=True),
        *contract,
        Column("confidence", "real", "confidence", required=True),
        Column("accuracy_m", "real", "accuracy_m"),
        Column("survey_id", "text", "survey_id"),
        Column("method", "text", "method"),
    )


LAYER_SCHEMAS: tuple[LayerSchema, ...] = (
    LayerSchema(
        "lane_boundaries",
        LaneBoundary,
        "LineString Z",
        (
            *_common(
                Column("marking", "text", "marking", MarkingKind, required=True),
                Column("color", "text", "color", Color, required=True),
            ),
            Column("width_m", "real", "width_m"),
            Column("dash_length_m", "real", "dash_length_m"),
            Column("gap_length_m", "real", "gap_length_m"),
        ),
    ),
    LayerSchema(
        "lanes",
        Lane,
        "LineString Z",
        (
            *_common(
                Column("width_m", "real", "width_m", required=True, read=False),  # mean width
                Column("left_boundary", "text", "left_boundary", required=True),
                Column("right_boundary", "text", "right_boundary", required=True),
            ),
            Column("widths_m", "real_list", "widths_m"),
            Column("direction", "text", "direction", Direction),
            Column("predecessors", "text_list", "predecessors"),
            Column("successors", "text_list", "successors"),
            Column("left_neighbour", "text", "left_neighbour"),
            Column("right_neighbour", "text", "right_neighbour"),
            Column("junction", "text", "junction"),
        ),
    ),
    LayerSchema(
        "road_edges",
        RoadEdge,
        "LineString Z",
        (
            *_common(Column("kind", "text", "kind", RoadEdgeKind, required=True)),
            Column("height_m", "real", "height_m"),
        ),
    ),
    LayerSchema(
        "stop_lines",
        StopLine,
        "LineString Z",
        (*_common(), Column("width_m", "real", "width_m")),
    ),
    LayerSchema("crosswalks", Crosswalk, "Polygon Z", _common()),
    LayerSchema(
        "road_arrows",
        RoadArrow,
        "Unknown",
        _common(Column("kind", "text", "kind", ArrowKind, required=True)),
    ),
    LayerSchema(
        "poles",
        Pole,
        "Point Z",
        _common(
            Column("height_m", "real", "height_m", required=True),
            Column("radius_m", "real", "radius_m", required=True),
        ),
    ),
    LayerSchema(
        "signs",
        Sign,
        "Point Z",
        (
            *_common(
                Column("class", "text", "sign_class", SignClass, required=True),
                Column("shape", "text", "shape", SignShape, required=True),
                Column("facing_deg", "real", "facing_deg", required=True),
            ),
            Column("width_m", "real", "width_m"),
            Column("height_m", "real", "height_m"),
            Column("pole", "text", "pole"),
        ),
    ),
    LayerSchema(
        "junctions",
        Junction,
        "Polygon Z",
        (*_common(), Column("lanes", "text_list", "lanes")),
        required=False,
    ),
)

# Layer types accepted when reading: the declared type, or a generic layer checked per feature.
_ACCEPTED_TYPES: dict[str, frozenset[str]] = {
    s.name: frozenset({s.geometry_type, "Unknown"})
    | (frozenset({"Polygon Z", "Point Z"}) if s.name == "road_arrows" else frozenset())
    for s in LAYER_SCHEMAS
}


# --------------------------------------------------------------------------------------- writing


def write_gpkg(model: MapModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to the GeoPackage ``path`` (replaced atomically), every layer in its CRS.

    The same model always gives the same bytes. Raises :class:`~pipeline.errors.CRSError` when
    ``model.crs`` is not understood and :class:`~pipeline.errors.HDMapIOError` when GDAL cannot
    write the file; any previous file at ``path`` is then left as it was.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.gpkg"
    >>> write_gpkg(MapModel("EPSG:4549"), path)
    >>> sorted(pyogrio.list_layers(path)[:, 0])[:3]
    ['crosswalks', 'junctions', 'lane_boundaries']
    """
    srs = _layer_srs(model.crs, path)
    with atomic_path(path) as tmp:
        try:
            with _fixed_gdal_timestamp():
                for schema in LAYER_SCHEMAS:
                    _write_layer(tmp, schema, model.layer(schema.name), srs)
                _write_map_info(tmp, model)
            _declare_optional_z(tmp)
        except (*_PYOGRIO_ERRORS, sqlite3.Error) as exc:
            raise HDMapIOError(f"cannot write GeoPackage: {exc}", path=path) from exc


def _layer_srs(crs: str, path: str | os.PathLike[str]) -> str:
    """The SRS handed to GDAL: ``EPSG:n`` when the CRS is exactly an EPSG one, else its WKT."""
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(f"the map's CRS {crs!r} is not understood: {exc}", path=path) from exc
    epsg = parsed.to_epsg(min_confidence=100)
    return f"EPSG:{epsg}" if epsg is not None else parsed.to_wkt()


@contextlib.contextmanager
def _fixed_gdal_timestamp() -> Iterator[None]:
    """Make GDAL stamp :data:`FIXED_TIMESTAMP` instead of the clock (process-wide while open)."""
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_TIMESTAMP})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def _write_layer(path: Path, schema: LayerSchema, features: Sequence[Feature], srs: str) -> None:
    geometry = np.empty(len(features), dtype=object)
    geometry[:] = shapely.to_wkb([f.geometry for f in features], output_dimension=3)
    field_data = [_column_array(c, [_value(f, c) for f in features]) for c in schema.columns]
    pyogrio.raw.write(
        path,
        geometry,
        field_data,
        list(schema.column_names),
        layer=schema.name,
        driver="GPKG",
        geometry_type=schema.geometry_type,
        crs=srs,
        encoding="UTF-8",
        promote_to_multi=False,
    )


def _value(feature: Feature, column: Column) -> Any:
    if column.attr in ("survey_id", "method"):
        return getattr(feature.provenance, column.attr)
    return getattr(feature, column.attr)


def _column_array(column: Column, values: list[Any]) -> np.ndarray:
    if column.kind == "real":
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    if column.kind == "text":
        out[:] = [None if v is None else str(v) for v in values]
    else:  # JSON lists; float repr round-trips exactly
        convert = float if column.kind == "real_list" else str
        out[:] = [json.dumps([convert(x) for x in v]) for v in values]
    return out


def _write_map_info(path: Path, model: MapModel) -> None:
    items = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "crs": model.crs,
        "height_datum": model.height_datum,
        "name": model.name,
    }
    keys = np.empty(len(items), dtype=object)
    keys[:] = list(items)
    values = np.empty(len(items), dtype=object)
    values[:] = list(items.values())
    pyogrio.raw.write(
        path,
        None,
        [keys, values],
        ["key", "value"],
        layer=MAP_INFO_LAYER,
        driver="GPKG",
        encoding="UTF-8",
    )


def _declare_optional_z(path: Path) -> None:
    """Mark generic layers "Z optional" even when empty (GDAL says "Z prohibited" until written)."""
    generic = [s.name for s in LAYER_SCHEMAS if s.geometry_type == "Unknown"]
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "UPDATE gpkg_geometry_columns SET z = 2 WHERE table_name = ? AND z = 0",
                [(name,) for name in generic],
            )
    finally:
        connection.close()


# --------------------------------------------------------------------------------------- reading


def read_gpkg(path: str | os.PathLike[str]) -> MapModel:
    """Read a GeoPackage written by :func:`write_gpkg` (or by another tool, see the module notes).

    Raises :class:`~pipeline.errors.FormatError` naming the file when it is missing or not a
    GeoPackage, and naming the layer (and column or feature id) when a contract layer or column
    is missing, a geometry has the wrong type or is 2D, or a value is not in its code list;
    :class:`~pipeline.errors.CRSError` when no CRS can be found.

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "notes.gpkg"
    >>> _ = bad.write_text("not a database")
    >>> read_gpkg(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.FormatError: .../notes.gpkg: not a GeoPackage (not an SQLite database)
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # GDAL's chatter
            layer_types = {str(name): gtype for name, gtype in pyogrio.list_layers(path)}
        first = next(iter(layer_types), None)
        driver = pyogrio.read_info(path, layer=first)["driver"] if first else None
    except _PYOGRIO_ERRORS as exc:
        raise FormatError(f"not a readable GeoPackage: {exc}", path=path) from exc
    if driver != "GPKG":
        raise FormatError("not a GeoPackage (an SQLite database without GeoPackage tables)", path)
    info = _read_map_info(path) if MAP_INFO_LAYER in layer_types else {}
    version = info.get("format_version", FORMAT_VERSION)
    if info.get("format", FORMAT_NAME) == FORMAT_NAME and version != FORMAT_VERSION:
        raise FormatError(
            f"map_info: format_version {version!r} is not supported (this reader knows "
            f"{FORMAT_VERSION!r})",
            path,
        )
    layer_crs: str | None = None
    features: list[Feature] = []
    for schema in LAYER_SCHEMAS:
        layer_features, srs = _read_layer(path, schema, layer_types)
        features.extend(layer_features)
        layer_crs = layer_crs or srs
    crs = info.get("crs") or layer_crs
    if not crs:
        raise CRSError("no CRS: no map_info crs and no spatial reference on the layers", path)
    try:
        return MapModel.from_features(
            crs,
            features,
            height_datum=info.get("height_datum", UNKNOWN),
            name=info.get("name", ""),
        )
    except FormatError as exc:  # duplicate ids across layers
        raise FormatError(str(exc), path) from exc


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FormatError("no such file", path)
    if path.is_dir():
        raise FormatError("is a directory, not a GeoPackage", path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise HDMapIOError(f"cannot open: {exc.strerror}", path) from exc
    if head != b"SQLite format 3\x00":
        raise FormatError("not a GeoPackage (not an SQLite database)", path)


def _read_map_info(path: Path) -> dict[str, str]:
    try:
        meta, _, _, data = pyogrio.raw.read(path, layer=MAP_INFO_LAYER, read_geometry=False)
    except _PYOGRIO_ERRORS as exc:
        raise FormatError(f"layer 'map_info' is unreadable: {exc}", path) from exc
    columns = dict(zip(list(meta["fields"]), data, strict=True))
    for name in ("key", "value"):
        if name not in columns:
            raise FormatError(f"layer 'map_info': missing column {name!r}", path)
    return {
        str(k): ("" if v is None else str(v))
        for k, v in zip(columns["key"], columns["value"], strict=True)
        if k is not None
    }


def _read_layer(
    path: Path, schema: LayerSchema, layer_types: dict[str, str | None]
) -> tuple[list[Feature], str | None]:
    """The layer's features and its SRS (``"EPSG:n"`` or WKT, None when it has none)."""
    name = schema.name
    if name not in layer_types:
        if schema.required:
            raise FormatError(f"missing layer {name!r}", path)
        return [], None
    declared = layer_types[name]
    if declared not in _ACCEPTED_TYPES[name]:
        raise FormatError(
            f"layer {name!r}: geometry type {declared or 'none (attribute table)'}, "
            f"expected {_expected(schema)}",
            path,
        )
    try:
        info = pyogrio.read_info(path, layer=name)
        present = set(info["fields"])
        for column in schema.columns:
            if column.required and column.name not in present:
                raise FormatError(f"layer {name!r}: missing column {column.name!r}", path)
        wanted = [c.name for c in schema.columns if c.name in present]
        meta, _, geometry, data = pyogrio.raw.read(path, layer=name, columns=wanted)
    except _PYOGRIO_ERRORS as exc:
        raise FormatError(f"layer {name!r} is unreadable: {exc}", path) from exc
    columns = dict(zip(list(meta["fields"]), data, strict=True))
    features = [
        _feature(path, schema, i, wkb, {name: values[i] for name, values in columns.items()})
        for i, wkb in enumerate(geometry)
    ]
    return features, info["crs"]


def _expected(schema: LayerSchema) -> str:
    return "Polygon Z or Point Z" if schema.name == "road_arrows" else schema.geometry_type


_NO_DEFAULT = object()


def _field_default(cls: type[Feature], attr: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == attr:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return _NO_DEFAULT


def _feature(path: Path, schema: LayerSchema, index: int, wkb: Any, row: dict[str, Any]) -> Feature:
    name, cls = schema.name, schema.feature_type
    fid = _parse_text(row.get("id"))
    where = f"layer {name!r}: feature {fid}" if fid else f"layer {name!r}: feature #{index + 1}"
    if not fid:
        raise FormatError(f"{where} has no id", path)
    if wkb is None:
        raise FormatError(f"{where} has no geometry", path)
    geometry = shapely.from_wkb(wkb)
    if not isinstance(geometry, cls.geometry_types) or not geometry.has_z:
        kind = geometry.geom_type + (" Z" if geometry.has_z else "")
        raise FormatError(f"{where}: geometry {kind}, expected {_expected(schema)}", path)

    values: dict[str, Any] = {}
    for column in schema.columns:
        if column.name == "id":
            continue
        raw = row.get(column.name)
        try:
            values[column.name] = _parse(raw, column)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"{where}: {exc}", path) from exc

    kwargs: dict[str, Any] = {}
    for column in schema.columns:
        if column.name == "id" or not column.read or column.attr in ("survey_id", "method"):
            continue
        value = values[column.name]
        if value is None and cls is Lane and column.attr == "widths_m":
            value = _uniform_widths(values.get("width_m"), geometry)
            if value is None:
                raise FormatError(f"{where}: neither widths_m nor width_m is set", path)
        if value is None:
            default = _field_default(cls, column.attr)
            if default is _NO_DEFAULT or (column.required and default is not None):
                raise FormatError(f"{where}: column {column.name!r} is empty", path)
            continue
        kwargs[column.attr] = value
    provenance = Provenance(values.get("survey_id") or UNKNOWN, values.get("method") or UNKNOWN)
    try:
        return cls(geometry=geometry, id=fid, provenance=provenance, **kwargs)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: {exc}", path) from exc


def _uniform_widths(width: float | None, geometry: shapely.LineString) -> tuple[float, ...] | None:
    return None if width is None else (width,) * len(geometry.coords)


def _parse(raw: Any, column: Column) -> Any:
    """A file value as the model wants it (None for NULL); ValueError names the column."""
    if column.kind == "real":
        return _parse_real(raw, column.name)
    if column.kind == "text":
        text = _parse_text(raw)
        if text is None or column.enum is None:
            return text
        try:
            return column.enum(text)
        except ValueError:
            allowed = ", ".join(e.value for e in column.enum)
            raise ValueError(
                f"unknown {column.name} value {text!r} (expected one of: {allowed})"
            ) from None
    text = _parse_text(raw)
    if text is None:
        return None
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list):
        raise ValueError(f"column {column.name!r}: {text!r} is not a JSON list")
    if column.kind == "real_list":
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
            raise ValueError(f"column {column.name!r}: {text!r} is not a list of numbers")
        return tuple(float(x) for x in items)
    if not all(isinstance(x, str) for x in items):
        raise ValueError(f"column {column.name!r}: {text!r} is not a list of strings")
    return tuple(items)


def _parse_text(raw: Any) -> str | None:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    return raw if isinstance(raw, str) else str(raw)


def _parse_real(raw: Any, name: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise ValueError(f"column {name!r}: {raw!r} is not a number") from None
    value = float(raw)
    return None if math.isnan(value) else value
