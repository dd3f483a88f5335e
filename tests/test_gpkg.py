"""GeoPackage format: lossless, deterministic, atomic, contract-conformant, strict on bad input."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyogrio.errors
import pyogrio.raw
import pytest
import shapely
from shapely import LineString, Point

from formats import gpkg
from formats.gpkg import read_gpkg, write_gpkg
from pipeline.crs import LOCAL_CRS_WKT
from pipeline.errors import CRSError, FormatError, HDMapIOError
from pipeline.model import Lane, MapModel, Pole
from tests.common import MODELS, SURVEY_ID, sample_model

parametrize_models = pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())

# The contract, spelled out here independently of formats.gpkg: layer -> (type, columns).
COMMON = ["id", "confidence", "accuracy_m", "survey_id", "method"]
EXPECTED_LAYERS = {
    "lane_boundaries": (
        "LineString Z",
        ["marking", "color", "width_m", "dash_length_m", "gap_length_m"],
    ),
    "lanes": (
        "LineString Z",
        [
            "width_m",
            "left_boundary",
            "right_boundary",
            "widths_m",
            "direction",
            "predecessors",
            "successors",
            "left_neighbour",
            "right_neighbour",
            "junction",
        ],
    ),
    "road_edges": ("LineString Z", ["kind", "height_m"]),
    "stop_lines": ("LineString Z", ["width_m"]),
    "crosswalks": ("Polygon Z", []),
    "road_arrows": ("Unknown", ["kind"]),
    "poles": ("Point Z", ["height_m", "radius_m"]),
    "signs": ("Point Z", ["class", "shape", "facing_deg", "width_m", "height_m", "pole"]),
    "junctions": ("Polygon Z", ["lanes"]),
}
REAL_COLUMNS = {
    "confidence",
    "accuracy_m",
    "width_m",
    "dash_length_m",
    "gap_length_m",
    "height_m",
    "radius_m",
    "facing_deg",
}


@pytest.fixture
def sample_gpkg(tmp_path: Path) -> Path:
    path = tmp_path / "features.gpkg"
    write_gpkg(sample_model(), path)
    return path


def _copy_layers(src: Path, dst: Path, *, skip_layers=(), edit=None) -> None:
    """Rewrite ``src`` layer by layer with geopandas (as another tool would), optionally editing."""
    for name in pyogrio.list_layers(src)[:, 0]:
        if name in skip_layers:
            continue
        frame = gpd.read_file(src, layer=name)
        if edit is not None:
            frame = edit(name, frame)
        pyogrio.write_dataframe(frame, dst, layer=name, driver="GPKG")


def _sql(path: Path, statement: str, *params: object) -> None:
    """Run one attribute UPDATE on a GeoPackage with plain sqlite3.

    GDAL's R-tree triggers call ST_* functions that plain sqlite3 lacks; they only run when a
    geometry changes, which these edits never do, so stand-ins that are never called suffice.
    """
    db = sqlite3.connect(path)
    try:
        for name in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):
            db.create_function(name, 1, lambda _blob: 0)
        with db:
            assert db.execute(statement, params).rowcount > 0
    finally:
        db.close()


# ------------------------------------------------------------------------------------ round trip


@parametrize_models
def test_round_trip_is_exact(make_model, tmp_path):
    model = make_model()
    path = tmp_path / "m.gpkg"
    write_gpkg(model, path)
    back = read_gpkg(path)
    assert back == model
    assert back.counts() == model.counts()
    for a, b in zip(back.features(), model.features(), strict=True):
        # bit-for-bit coordinates, Z included (shapely equality alone is not the point here)
        ca = shapely.get_coordinates(a.geometry, include_z=True)
        cb = shapely.get_coordinates(b.geometry, include_z=True)
        assert ca.tobytes() == cb.tobytes()
        assert struct.pack("<d", a.confidence) == struct.pack("<d", b.confidence)


def test_awkward_values_survive(sample_gpkg):
    back = read_gpkg(sample_gpkg)
    by_id = back.by_id()
    original = sample_model()
    divider = original.lane_boundaries[1]
    assert by_id[divider.id].confidence == 0.1 + 0.2 != 0.3
    assert by_id[divider.id].accuracy_m == 1e-12
    assert by_id[original.lanes[0].id].widths_m[1] == 3.4999999999999996
    assert back.lane_boundaries[0].geometry.coords[0][0] == 534000.123456789
    assert back.name == "西山 sample road"
    assert back.lanes[4].left_boundary is None and back.lanes[4].junction == back.junctions[0].id
    assert back.signs[1].pole is None and back.signs[0].pole == back.poles[1].id
    assert isinstance(back.road_arrows[1].geometry, Point)


@parametrize_models
def test_rewrite_is_byte_identical(make_model, tmp_path):
    model = make_model()
    first, second = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    write_gpkg(model, first)
    write_gpkg(model, second)  # GDAL stamps milliseconds: without the fix these would differ
    assert first.read_bytes() == second.read_bytes()
    write_gpkg(read_gpkg(first), second)  # read back and rewritten: still the same bytes
    assert first.read_bytes() == second.read_bytes()
    with sqlite3.connect(first) as db:
        stamps = {row[0] for row in db.execute("SELECT last_change FROM gpkg_contents")}
    assert stamps == {gpkg.FIXED_TIMESTAMP}


def test_write_restores_gdal_date_option(tmp_path):
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
    write_gpkg(sample_model(), tmp_path / "m.gpkg")
    assert pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") is None


def test_empty_map_level_strings_round_trip(tmp_path):
    model = MapModel("EPSG:4549", height_datum="", name="")
    write_gpkg(model, tmp_path / "m.gpkg")
    assert read_gpkg(tmp_path / "m.gpkg") == model


def test_wkt_crs_round_trips_verbatim(tmp_path):
    model = sample_model().replace(crs=LOCAL_CRS_WKT)
    path = tmp_path / "local.gpkg"
    write_gpkg(model, path)
    assert read_gpkg(path) == model
    assert pyogrio.read_info(path, layer="poles")["crs"] is not None


def test_unknown_crs_is_refused_before_writing(tmp_path):
    path = tmp_path / "m.gpkg"
    with pytest.raises(CRSError, match="not understood"):
        write_gpkg(MapModel("EPSG:999999"), path)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------- contract


@parametrize_models
def test_layers_types_and_columns_follow_the_contract(make_model, tmp_path):
    path = tmp_path / "m.gpkg"
    model = make_model()
    write_gpkg(model, path)
    layers = dict(pyogrio.list_layers(path))
    assert set(layers) == {*EXPECTED_LAYERS, "map_info"}
    for name, (geometry_type, extra) in EXPECTED_LAYERS.items():
        info = pyogrio.read_info(path, layer=name)
        assert layers[name] == info["geometry_type"] == geometry_type, name
        assert set(info["fields"]) == set(COMMON) | set(extra), name
        assert info["features"] == len(model.layer(name))
        for field, dtype in zip(info["fields"], info["dtypes"], strict=True):
            assert dtype == ("float64" if field in REAL_COLUMNS else "object"), (name, field)
    assert layers["map_info"] is None


def test_geometries_are_3d_and_in_epsg_4549(sample_gpkg):
    for name in EXPECTED_LAYERS:
        _, _, geometry, _ = pyogrio.raw.read(sample_gpkg, layer=name)
        geoms = shapely.from_wkb(geometry)
        assert len(geoms) and shapely.has_z(geoms).all(), name
        assert pyogrio.read_info(sample_gpkg, layer=name)["crs"] == "EPSG:4549"
    kinds = set(
        shapely.get_type_id(shapely.from_wkb(pyogrio.raw.read(sample_gpkg, layer="road_arrows")[2]))
    )
    assert kinds == {0, 3}  # a Point and a Polygon in one layer
    with sqlite3.connect(sample_gpkg) as db:
        org = db.execute(
            "SELECT s.organization, s.organization_coordsys_id FROM gpkg_geometry_columns g "
            "JOIN gpkg_spatial_ref_sys s ON g.srs_id = s.srs_id WHERE g.table_name = 'poles'"
        ).fetchone()
        z_flags = dict(db.execute("SELECT table_name, z FROM gpkg_geometry_columns"))
    assert org == ("EPSG", 4549)
    assert z_flags.pop("road_arrows") == 2 and set(z_flags.values()) == {1}


def test_empty_model_still_has_every_layer_and_map_info(tmp_path):
    path = tmp_path / "empty.gpkg"
    write_gpkg(MapModel("EPSG:4549", height_datum="d", name=""), path)
    assert pyogrio.read_info(path, layer="signs")["features"] == 0
    _, _, _, (keys, values) = pyogrio.raw.read(path, layer="map_info")
    info = dict(zip(keys, values, strict=True))
    assert info == {
        "format": "hdmap-gpkg",
        "format_version": "1",
        "crs": "EPSG:4549",
        "height_datum": "d",
        "name": "",
    }
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT z FROM gpkg_geometry_columns WHERE table_name='road_arrows'"
        ).fetchone() == (2,)


def test_nulls_stay_null_and_lists_are_json(sample_gpkg):
    with sqlite3.connect(sample_gpkg) as db:
        rows = db.execute(
            "SELECT accuracy_m, typeof(accuracy_m), widths_m, predecessors FROM lanes ORDER BY fid"
        ).fetchall()
        pole = db.execute("SELECT pole FROM signs ORDER BY fid").fetchall()
    assert rows[0][:2] == (0.08, "real") and rows[1][:2] == (None, "null")
    assert rows[1][2] == "[3.5, 3.5, 3.45, 3.4, 3.35]" and rows[0][3] == "[]"
    assert pole[1] == (None,)


# -------------------------------------------------------------------------- files by other tools


def test_reads_a_file_without_map_info_or_extra_columns(sample_gpkg, tmp_path):
    contract = {
        name: {"id", "confidence", "geometry", *extra[:2]}
        for name, (_, extra) in EXPECTED_LAYERS.items()
    }
    contract["lanes"] = {
        "id",
        "confidence",
        "geometry",
        "width_m",
        "left_boundary",
        "right_boundary",
    }
    contract["signs"] = {"id", "confidence", "geometry", "class", "shape", "facing_deg"}
    other = tmp_path / "other.gpkg"
    _copy_layers(
        sample_gpkg,
        other,
        skip_layers={"map_info", "junctions"},
        edit=lambda name, frame: frame[[c for c in frame if c in contract[name]]],
    )
    model = read_gpkg(other)
    assert model.crs == "EPSG:4549" and model.height_datum == "unknown"
    assert model.junctions == () and len(model.lanes) == 5
    lane = model.lanes[1]
    original = sample_model().lanes[1]
    assert lane.widths_m == (original.width_m,) * len(original.geometry.coords)
    assert lane.provenance.survey_id == "unknown" and lane.predecessors == ()
    assert model.signs[0].width_m == 0.8 and model.signs[0].pole is None


def test_duplicate_ids_across_layers_name_the_file(tmp_path):
    model = sample_model()
    path = tmp_path / "dup.gpkg"
    write_gpkg(model, path)
    _sql(path, "UPDATE poles SET id = ? WHERE fid = 1", model.signs[0].id)
    with pytest.raises(FormatError, match=r"dup\.gpkg: duplicate feature id"):
        read_gpkg(path)


# ------------------------------------------------------------------------------------ bad files


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match=r"nope\.gpkg: no such file"):
        read_gpkg(tmp_path / "nope.gpkg")


def test_text_file(tmp_path):
    path = tmp_path / "notes.gpkg"
    path.write_text("hello\n")
    with pytest.raises(FormatError, match=r"notes\.gpkg: not a GeoPackage \(not an SQLite"):
        read_gpkg(path)


def test_sqlite_that_is_not_a_geopackage(tmp_path):
    path = tmp_path / "plain.gpkg"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (a INTEGER)")
    with pytest.raises(FormatError, match=r"plain\.gpkg: "):
        read_gpkg(path)


def test_missing_layer(sample_gpkg, tmp_path):
    path = tmp_path / "no_poles.gpkg"
    _copy_layers(sample_gpkg, path, skip_layers={"poles"})
    with pytest.raises(FormatError, match=r"no_poles\.gpkg: missing layer 'poles'"):
        read_gpkg(path)


def test_missing_column(sample_gpkg, tmp_path):
    path = tmp_path / "no_marking.gpkg"
    _copy_layers(
        sample_gpkg,
        path,
        edit=lambda name, frame: (
            frame.drop(columns="marking") if name == "lane_boundaries" else frame
        ),
    )
    with pytest.raises(
        FormatError, match=r"no_marking\.gpkg: layer 'lane_boundaries': missing column 'marking'"
    ):
        read_gpkg(path)


def test_unknown_enum_value_names_layer_feature_and_value(sample_gpkg):
    sign_id = sample_model().signs[1].id
    _sql(sample_gpkg, "UPDATE signs SET class = 'purple' WHERE id = ?", sign_id)
    with pytest.raises(FormatError) as caught:
        read_gpkg(sample_gpkg)
    message = str(caught.value)
    assert message.startswith(f"{sample_gpkg}: layer 'signs': feature {sign_id}: ")
    assert "'purple'" in message and "prohibition" in message


def test_null_in_a_required_column(sample_gpkg):
    _sql(sample_gpkg, "UPDATE poles SET confidence = NULL")
    with pytest.raises(FormatError, match=r"layer 'poles': feature pole-\w+: column 'confidence'"):
        read_gpkg(sample_gpkg)


def test_bad_json_list(sample_gpkg):
    _sql(sample_gpkg, "UPDATE lanes SET successors = 'lane-a, lane-b'")
    with pytest.raises(FormatError, match=r"layer 'lanes': .*'successors'.*not a JSON list"):
        read_gpkg(sample_gpkg)


def test_2d_layer_is_refused(sample_gpkg, tmp_path):
    path = tmp_path / "flat.gpkg"
    _copy_layers(
        sample_gpkg,
        path,
        edit=lambda name, frame: (
            frame.set_geometry(shapely.force_2d(frame.geometry.values))
            if name == "road_edges"
            else frame
        ),
    )
    assert pyogrio.read_info(path, layer="road_edges")["geometry_type"] == "LineString"
    with pytest.raises(
        FormatError, match=r"layer 'road_edges': geometry type LineString, expected LineString Z"
    ):
        read_gpkg(path)


def test_wrong_geometry_in_a_generic_layer_names_the_feature(tmp_path):
    model = sample_model()
    path = tmp_path / "m.gpkg"
    write_gpkg(model, path)
    arrow = model.road_arrows[0]
    line = LineString([(534000.0, 3496000.0, 5.0), (534001.0, 3496000.0, 5.0)])
    _, _, geometry, data = pyogrio.raw.read(path, layer="road_arrows")
    geometry[0] = shapely.to_wkb(line, output_dimension=3)
    fields = pyogrio.read_info(path, layer="road_arrows")["fields"]
    pyogrio.raw.write(
        path,
        geometry,
        data,
        fields,
        layer="road_arrows",
        driver="GPKG",
        geometry_type="Unknown",
        crs="EPSG:4549",
    )
    with pytest.raises(FormatError, match=rf"feature {arrow.id}: geometry LineString Z, expected"):
        read_gpkg(path)


def test_newer_format_version_is_refused(sample_gpkg):
    _sql(sample_gpkg, "UPDATE map_info SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(FormatError, match="format_version '99' is not supported"):
        read_gpkg(sample_gpkg)


def test_lane_width_fallback_and_error(tmp_path):
    lane = Lane.create(LineString([(0, 0, 1), (10, 0, 1)]), (3.0, 3.25), survey_id="s")
    path = tmp_path / "lane.gpkg"
    write_gpkg(MapModel("EPSG:4549", lanes=[lane]), path)
    _sql(path, "UPDATE lanes SET widths_m = NULL")
    assert read_gpkg(path).lanes[0].widths_m == (3.125, 3.125)
    _sql(path, "UPDATE lanes SET width_m = NULL")
    with pytest.raises(FormatError, match="neither widths_m nor width_m"):
        read_gpkg(path)


# ------------------------------------------------------------------------------------ atomicity


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "features.gpkg"
    write_gpkg(MapModel("EPSG:4549"), path)
    before = path.read_bytes()
    real_write = pyogrio.raw.write

    def failing_write(target, *args, layer=None, **kwargs):
        if layer == "signs":
            raise pyogrio.errors.DataSourceError("disk on fire")
        return real_write(target, *args, layer=layer, **kwargs)

    monkeypatch.setattr(pyogrio.raw, "write", failing_write)
    with pytest.raises(
        HDMapIOError, match=r"features\.gpkg: cannot write GeoPackage: disk on fire"
    ):
        write_gpkg(sample_model(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["features.gpkg"]
    assert pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") is None


def test_overwrite_replaces_the_content(tmp_path):
    path = tmp_path / "features.gpkg"
    write_gpkg(sample_model(), path)
    pole = Pole.create(Point(1.0, 2.0, 3.0), 5.0, 0.1, survey_id=SURVEY_ID)
    write_gpkg(MapModel("EPSG:4549", poles=[pole]), path)
    assert read_gpkg(path).counts() == {**{k: 0 for k in EXPECTED_LAYERS}, "poles": 1}
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["features.gpkg"])
