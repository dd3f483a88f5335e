"""The conformance validator: one crafted defect per catalogue rule fires exactly that rule."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import shapely
from lxml import etree

from data_samples.simulator.scenes import build_scene
from flows.cli.main import main
from formats.localstd import write_localstd
from pipeline.model import MapModel, anchor_point
from qa.report import render_html
from qa.rules import RULE_CHECKS, SCHEMA_RULE, nds_packed_tile_id
from qa.validate import read_truth, validate_file, validation_stamp
from standards import NAMESPACE, rule_catalogue
from tests.common import MODELS, sample_model

NS = f"{{{NAMESPACE}}}"
MISSING_LANE = "lane-0000000000000000"

# --------------------------------------------------------------------------- the crafted defects

M = sample_model()
EAST_INNER, EAST_OUTER, WEST_INNER, WEST_OUTER, CONNECTOR = (ln.id for ln in M.lanes)
SOUTH_EDGE_LINE, EAST_DIVIDER = M.lane_boundaries[0].id, M.lane_boundaries[1].id
LIGHT_POLE = M.poles[0].id  # not referenced by any sign
STOP_SIGN = M.signs[0].id
CURB = M.road_edges[0].id
STOP_LINE = M.stop_lines[0].id
JUNCTION = M.junctions[0].id


def _element(root: etree._Element, fid: str) -> etree._Element:
    (element,) = root.xpath("//*[@id=$fid]", fid=fid)
    return element


def _set(fid: str, **attributes: str) -> Callable[[etree._Element], None]:
    def change(root):
        for name, value in attributes.items():
            _element(root, fid).set(name, value)

    return change


def _unset(fid: str, name: str) -> Callable[[etree._Element], None]:
    return lambda root: _element(root, fid).attrib.pop(name)


def _header_text(tag: str, text: str) -> Callable[[etree._Element], None]:
    def change(root):
        root.find(f"{NS}header/{NS}{tag}").text = text

    return change


def _child_text(fid: str, tag: str, edit: Callable[[str], str]) -> Callable[[etree._Element], None]:
    def change(root):
        child = _element(root, fid).find(f"{NS}{tag}")
        child.text = edit(child.text)

    return change


def _duplicate(fid: str) -> Callable[[etree._Element], None]:
    def change(root):
        element = _element(root, fid)
        element.getparent().append(copy.deepcopy(element))

    return change


def _add_ref(fid: str, tag: str, ref: str, after: str) -> Callable[[etree._Element], None]:
    def change(root):
        anchor = _element(root, fid).find(f"{NS}{after}")
        anchor.addnext(etree.Element(f"{NS}{tag}", ref=ref))

    return change


def _remove_child(fid: str, tag: str) -> Callable[[etree._Element], None]:
    def change(root):
        element = _element(root, fid)
        element.remove(element.find(f"{NS}{tag}"))

    return change


def _bow_tie(text: str) -> str:
    v = [float(x) for x in text.split()]
    x0, y0, z0 = v[0:3]
    points = [(x0, y0), (x0 + 10, y0), (x0 + 5, y0 - 1), (x0 + 5, y0 + 1)]
    return " ".join(f"{x!r} {y!r} {z0!r}" for x, y in points)


def _collapse(text: str) -> str:
    v = text.split()
    return " ".join(v[0:3] + v[0:3])


def _shift(dx: float, dy: float) -> Callable[[MapModel], MapModel]:
    return lambda model: _move(model, lambda xy: xy + np.array([dx, dy]))


def _move(model: MapModel, how: Callable[[np.ndarray], np.ndarray], layers=None) -> MapModel:
    changes = {}
    for name in layers or model.counts():
        changes[name] = tuple(
            f.replace(geometry=_plan_transform(f.geometry, how)) for f in model.layer(name)
        )
    return model.replace(**changes)


def _plan_transform(geometry, how: Callable[[np.ndarray], np.ndarray]):
    """Apply ``how`` to the plan coordinates, keeping z."""
    return shapely.transform(
        geometry, lambda c: np.column_stack([how(c[:, :2]), c[:, 2]]), include_z=True
    )


def _noise(model: MapModel) -> MapModel:
    rng = np.random.default_rng(0)
    return _move(
        model,
        lambda xy: xy + rng.normal(0.0, 0.1, xy.shape),
        ("lane_boundaries", "road_edges", "poles", "signs"),
    )


def _shift_connector(model: MapModel) -> MapModel:
    lanes = tuple(
        ln.replace(geometry=_plan_transform(ln.geometry, lambda xy: xy + np.array([0.0, 1.0])))
        if ln.id == CONNECTOR
        else ln
        for ln in model.lanes
    )
    return model.replace(lanes=lanes)


def _poles_only(model: MapModel) -> MapModel:
    return MapModel(model.crs, height_datum=model.height_datum, poles=model.poles)


#: rule ID -> (XML edit, model edit, truth edit, writer keywords); one defect each.
DEFECTS: dict[str, tuple] = {
    "XS-SCH-001": (lambda r: r.find(f"{NS}header").append(etree.Element(f"{NS}x")), None, None, {}),
    "XS-VER-001": (lambda r: r.set("formatVersion", "2.0"), None, None, {}),
    "XS-CRS-001": (_header_text("crs", "EPSG:4326"), None, None, {}),
    "XS-CRS-002": (_header_text("crs", "EPSG:32651"), None, None, {}),
    "XS-CRS-003": (_header_text("heightDatum", "unknown"), None, None, {}),
    "XS-ACC-001": (None, None, None, {"accuracy_grade": "C"}),
    "XS-ACC-002": (_set(LIGHT_POLE, accuracyM="0.3"), None, None, {}),
    "XS-ACC-003": (None, _shift(0.4, 0.3), sample_model, {}),
    "XS-ACC-004": (None, _noise, sample_model, {}),
    "XS-ACC-005": (None, None, lambda: _poles_only(sample_model()), {}),
    "XS-TIL-001": (None, None, None, {"tile_id": 1 << 29}),
    "XS-ID-001": (_duplicate(LIGHT_POLE), None, None, {}),
    "XS-ID-002": (_set(LIGHT_POLE, id="Pole_1"), None, None, {}),
    "XS-COD-001": (_set(EAST_DIVIDER, marking="zigzag"), None, None, {}),
    "XS-GEO-001": (
        _child_text(LIGHT_POLE, "point", lambda t: "NaN " + t.split(" ", 1)[1]),
        None,
        None,
        {},
    ),
    "XS-GEO-002": (_child_text(STOP_LINE, "line", _collapse), None, None, {}),
    "XS-GEO-003": (_child_text(CURB, "line", _bow_tie), None, None, {}),
    "XS-ATT-001": (
        _child_text(EAST_OUTER, "widths", lambda t: t.rsplit(" ", 1)[0]),
        None,
        None,
        {},
    ),
    "XS-ATT-002": (
        _child_text(EAST_OUTER, "widths", lambda t: "5.0 " + t.split(" ", 1)[1]),
        None,
        None,
        {},
    ),
    "XS-ATT-003": (_set(LIGHT_POLE, radiusM="-0.1"), None, None, {}),
    "XS-ATT-004": (_set(SOUTH_EDGE_LINE, widthM="0.3"), None, None, {}),
    "XS-ATT-005": (_set(EAST_DIVIDER, dashLengthM="3.0", gapLengthM="3.0"), None, None, {}),
    "XS-ATT-006": (_set(STOP_SIGN, shape="circle"), None, None, {}),
    "XS-REF-001": (_set(EAST_INNER, leftBoundary="lb-0000000000000000"), None, None, {}),
    "XS-REF-002": (_add_ref(EAST_INNER, "predecessor", MISSING_LANE, "widths"), None, None, {}),
    "XS-REF-003": (_set(STOP_SIGN, pole="pole-0000000000000000"), None, None, {}),
    "XS-REF-004": (_add_ref(JUNCTION, "lane", MISSING_LANE, "polygon"), None, None, {}),
    "XS-TOP-001": (_remove_child(CONNECTOR, "predecessor"), None, None, {}),
    "XS-TOP-002": (_unset(EAST_OUTER, "leftNeighbour"), None, None, {}),
    "XS-TOP-003": (None, _shift_connector, None, {}),
    "XS-TOP-004": (_unset(CONNECTOR, "junction"), None, None, {}),
}


def _crafted(tmp_path: Path, rule_id: str) -> tuple[Path, MapModel | None]:
    xml_edit, model_edit, make_truth, keywords = DEFECTS[rule_id]
    model = sample_model()
    if model_edit is not None:
        model = model_edit(model)
    path = tmp_path / f"{rule_id}.xsmap.xml"
    write_localstd(model, path, **keywords)
    if xml_edit is not None:
        tree = etree.parse(str(path))
        xml_edit(tree.getroot())
        tree.write(str(path), xml_declaration=True, encoding="UTF-8")
    return path, None if make_truth is None else make_truth()


def test_every_rule_has_a_check_and_a_crafted_defect():
    ids = set(rule_catalogue().ids)
    assert set(RULE_CHECKS) | {SCHEMA_RULE} == ids
    assert set(DEFECTS) == ids


@pytest.mark.parametrize("rule_id", list(DEFECTS))
def test_crafted_defect_fires_exactly_its_rule(tmp_path, rule_id):
    path, truth = _crafted(tmp_path, rule_id)
    report = validate_file(path, truth=truth)
    assert report.fired == {rule_id}, [f.message for f in report.findings]
    rule = rule_catalogue().rule(rule_id)
    assert report.conforms == (rule.severity == "warning")
    finding = report.findings[0]
    assert (finding.clause, finding.severity) == (rule.clause, rule.severity)


@pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
def test_conforming_files_have_no_findings(tmp_path, make_model):
    path = tmp_path / "map.xsmap.xml"
    model = make_model()
    write_localstd(model, path)
    report = validate_file(path, truth=None if model.is_empty else model)
    assert report.findings == ()
    assert report.conforms
    assert SCHEMA_RULE in report.rules_run
    assert ("XS-ACC-003" in report.rules_run) == (not model.is_empty)


def test_findings_name_feature_and_location(tmp_path):
    path, _ = _crafted(tmp_path, "XS-ATT-003")
    (finding,) = validate_file(path).findings
    pole = M.by_id()[LIGHT_POLE]
    assert finding.feature_id == LIGHT_POLE and finding.layer == "poles"
    assert (finding.x, finding.y) == pytest.approx(anchor_point(pole.geometry)[:2])
    assert finding.line > 1


def test_accuracy_statistics_are_reported(tmp_path):
    path, truth = _crafted(tmp_path, "XS-ACC-003")
    report = validate_file(path, truth=truth)
    # line vertices measure only the error across their line: between 0.3 and |(0.4, 0.3)|
    assert 0.3 <= report.accuracy["absolute_rmse_m"] <= 0.5
    assert report.accuracy["absolute_m"] == pytest.approx(2 * report.accuracy["absolute_rmse_m"])
    assert report.accuracy["relative_rmse_m"] == pytest.approx(0.0, abs=1e-6)
    assert report.accuracy["matched"] >= 20


def test_map_too_far_from_truth_cannot_pass(tmp_path):
    truth = build_scene("urban", 1).truth
    path = tmp_path / "far.xsmap.xml"
    write_localstd(_shift(2.0, 2.0)(truth), path)
    report = validate_file(path, truth=truth)
    assert report.fired == {"XS-ACC-005"} and not report.conforms
    assert report.accuracy["matched"] < report.accuracy["candidates"] / 2
    assert "inside the truth's extent" in report.findings[0].message


def test_correct_tile_passes(tmp_path):
    import pyproj

    x, y, _ = anchor_point(M.poles[0].geometry)
    lon, lat = pyproj.Transformer.from_crs(M.crs, "EPSG:4326", always_xy=True).transform(x, y)
    tile = nds_packed_tile_id(lon, lat, 13)
    path = tmp_path / "tile.xsmap.xml"
    write_localstd(M, path, tile_id=tile)
    assert validate_file(path).findings == ()


@pytest.mark.parametrize(
    ("level", "packed"),
    [(11, 134390589), (12, 269126903), (13, 539636700), (14, 1084804976)],
)
def test_nds_packed_tile_id_matches_a_published_test_vector(level, packed):
    # a point near Barcelona given in NDS units (2^32 per 360 degrees), as in the public
    # nds-tiles test suite (rondiplomatico/nds-tiles, NDSTileTest.testFromCoordinateWorks)
    lon, lat = 24772607 * 360 / 2**32, 493486079 * 360 / 2**32
    assert nds_packed_tile_id(lon, lat, level) == packed


def test_nds_packed_tile_ids_follow_the_layout():
    # level 13: tiles of 180/2^13 degrees, level bit at 16 + 13
    tile = nds_packed_tile_id(120.36, 31.59, 13)
    assert tile >> (16 + 13) == 1
    edge = 180.0 / 2**13
    assert nds_packed_tile_id(120.36 + edge, 31.59, 13) != tile
    assert nds_packed_tile_id(120.36 + edge / 1000, 31.59 + edge / 1000, 13) == tile
    # two's complement: level 0 has a 1-bit x and no y; level 1 a 2-bit x and a 1-bit y
    assert nds_packed_tile_id(-0.001, -0.001, 0) == (1 << 16) + 1
    assert nds_packed_tile_id(-0.001, -0.001, 1) == (1 << 17) + 0b111


def test_stamp_and_json_report(tmp_path):
    path, _ = _crafted(tmp_path, "XS-ATT-004")
    report = validate_file(path, today=dt.date(2026, 11, 25))
    assert report.stamp["result"] == "conforms"  # warnings allowed
    assert report.stamp == validation_stamp(report.findings, dt.date(2026, 11, 25))
    assert report.stamp["catalogueVersion"] == rule_catalogue().version
    assert report.stamp["warnings"] == 1 and report.stamp["errors"] == 0
    document = json.loads(json.dumps(report.to_dict()))
    assert document["findings"][0]["rule"] == "XS-ATT-004"


def test_write_validated_embeds_its_own_stamp(tmp_path):
    from formats.localstd import read_document, read_localstd
    from qa.validate import write_validated

    path = tmp_path / "map.xsmap.xml"
    report = write_validated(M, path, today=dt.date(2026, 11, 25))
    assert dict(read_document(path).header.stamp) == {k: str(v) for k, v in report.stamp.items()}
    assert read_localstd(path) == M
    again = validate_file(path, today=dt.date(2026, 11, 25))
    assert again.findings == () and again.stamp == report.stamp


def test_html_report_lists_findings_with_a_map(tmp_path):
    path, _ = _crafted(tmp_path, "XS-REF-003")
    page = render_html(validate_file(path))
    assert "XS-REF-003" in page and STOP_SIGN in page and "6.8" in page
    assert "data:image/png;base64," in page


# ------------------------------------------------------------------------------------------ CLI


def test_cli_exit_status_and_reports(tmp_path, capsys):
    good = tmp_path / "good.xsmap.xml"
    write_localstd(M, good)
    html, report_json = tmp_path / "r.html", tmp_path / "r.json"
    assert main(["validate", str(good), "--report", str(html), "--json", str(report_json)]) == 0
    assert json.loads(report_json.read_text())["conforms"] is True
    assert "conforms" in html.read_text()

    warned, _ = _crafted(tmp_path, "XS-ATT-006")
    assert main(["validate", str(warned)]) == 0
    broken, _ = _crafted(tmp_path, "XS-REF-001")
    assert main(["validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "XS-REF-001 error [clause 6.3]" in out


def test_cli_truth_from_geopackage(tmp_path):
    from formats.gpkg import write_gpkg

    truth = tmp_path / "truth.gpkg"
    write_gpkg(sample_model(), truth)
    assert read_truth(truth) == sample_model()
    path, _ = _crafted(tmp_path, "XS-ACC-003")
    assert main(["validate", str(path), "--truth", str(truth)]) == 1
    good = tmp_path / "good.xsmap.xml"
    write_localstd(M, good)
    assert main(["validate", str(good), "--truth", str(truth)]) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"<xsmap><header>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    ],
    ids=["malformed", "external-entity"],
)
def test_cli_unreadable_files_exit_2(tmp_path, capsys, content):
    path = tmp_path / "bad.xsmap.xml"
    path.write_bytes(content)
    start = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    assert time.perf_counter() - start < 2.0
    err = capsys.readouterr().err.strip()
    assert err.startswith("hdmap validate: cannot read:") and "\n" not in err


def test_cli_size_limit_and_missing_file_exit_2(tmp_path, capsys):
    good = tmp_path / "good.xsmap.xml"
    write_localstd(M, good)
    assert main(["validate", str(good), "--max-bytes", "100"]) == 2
    assert "limit" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "absent.xsmap.xml")]) == 2


@pytest.mark.slow
def test_validating_a_5_km_survey_map_takes_under_10_s():
    from tests.bench.validate_bench import measure_validation

    figures = measure_validation(5000.0)
    assert figures["conforms"] and figures["findings"] == 0
    assert figures["seconds"] < 10.0 and figures["seconds_with_truth"] < 10.0
