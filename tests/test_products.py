"""Every build product written from one model: present, readable, consistent and reproducible."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from flows.products import PRODUCT_NAMES, write_products
from formats.gpkg import read_gpkg
from formats.localstd import read_localstd
from formats.opendrive import read_opendrive
from formats.opendrive.validate import qc_venv, validate_schema
from tests.conftest import SAMPLES

TODAY = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def urban_truth():
    path = SAMPLES / "urban" / "truth.gpkg"
    if not path.exists():
        pytest.skip("committed samples are absent")
    return read_gpkg(path)


def test_products_read_back_as_the_model(urban_truth, tmp_path: Path) -> None:
    products = write_products(urban_truth, tmp_path, today=TODAY)
    assert {p.relative_to(tmp_path).as_posix() for p in products.paths.values()} == set(
        PRODUCT_NAMES.values()
    )
    assert read_gpkg(products.paths["gpkg"]) == urban_truth
    assert read_localstd(products.paths["localstd"]) == urban_truth
    odr = read_opendrive(products.paths["opendrive"])
    assert len(odr.lanes) >= len(urban_truth.lanes) > 0
    assert {b.marking for b in urban_truth.lane_boundaries} <= {
        b.marking for b in odr.lane_boundaries
    }
    assert products.validation.conforms
    report = json.loads(products.paths["qa_json"].read_text())
    assert report["validation"]["stamp"]["result"] == "conforms"
    assert report["feature_counts"] == urban_truth.counts()
    assert report["export_warnings"]["opendrive"] == products.export_warnings["opendrive"]
    html = products.paths["qa_html"].read_text()
    assert "OpenDRIVE 1.7 export" in html and "Validation report" in html
    if (qc_venv() / "bin" / "python").exists():
        assert validate_schema(products.paths["opendrive"], "1.7") == []


def test_same_model_and_date_give_the_same_bytes(urban_truth, tmp_path: Path) -> None:
    a = write_products(urban_truth, tmp_path / "a", today=TODAY)
    b = write_products(urban_truth, tmp_path / "b", today=TODAY)
    for key in PRODUCT_NAMES:
        assert a.paths[key].read_bytes() == b.paths[key].read_bytes(), key


def test_a_map_without_lanes_still_gets_its_other_products(tmp_path: Path) -> None:
    from pipeline.model import MapModel

    empty = MapModel("EPSG:4549", height_datum="Yellow Sea 1985 height")
    products = write_products(empty, tmp_path, today=TODAY)
    assert "opendrive" not in products.paths and not (tmp_path / "map.xodr").exists()
    assert any("map.xodr not written" in w for w in products.export_warnings["opendrive"])
    assert products.validation.conforms
    assert read_gpkg(products.paths["gpkg"]).is_empty


@pytest.mark.slow
@pytest.mark.parametrize("scene", ["urban", "arterial", "highway"])
def test_every_committed_sample_builds_to_a_conforming_map(scene: str, tmp_path: Path) -> None:
    from flows.cli.main import main

    folder = SAMPLES / scene
    if not folder.is_dir():
        pytest.skip("committed samples are absent")
    args = ["build", str(folder / "survey.laz"), "--out", str(tmp_path)]
    args += ["--trajectory", str(folder / "trajectory.csv"), "--ortho", str(folder / "ortho.tif")]
    assert main(args) == 0
    report = json.loads((tmp_path / "qa" / "report.json").read_text())
    assert report["validation"]["errors"] == 0, report["validation"]["findings"]
    assert report["validation"]["stamp"]["result"] == "conforms"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["validation_stamp"] == report["validation"]["stamp"]
    assert read_localstd(tmp_path / "map.xsmap.xml").height_datum == "Yellow Sea 1985 height"
