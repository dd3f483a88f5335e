"""``hdmap diff`` through the real entry point (a subprocess): good runs, GeoJSON, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from shapely.affinity import translate

from formats.gpkg import write_gpkg
from formats.localstd import write_localstd
from pipeline.model import MapModel
from tests.common import sample_model
from tests.conftest import PROJECT_ROOT

REQUIRED = {"change", "layer", "feature_id", "details", "old_id", "new_id"}


def hdmap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _edited(m: MapModel) -> MapModel:
    """One pole moved 0.5 m, one sign removed."""
    pole = m.poles[0]
    moved = pole.replace(geometry=translate(pole.geometry, xoff=0.5))
    return m.replace(poles=(moved, *m.poles[1:]), signs=m.signs[:1])


@pytest.fixture
def maps(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.gpkg", tmp_path / "new.gpkg"
    write_gpkg(sample_model(), old)
    write_gpkg(_edited(sample_model()), new)
    return old, new


def test_good_run_prints_the_table_and_writes_geojson(maps, tmp_path):
    old, new = maps
    out = tmp_path / "out" / "changes.geojson"
    result = hdmap("diff", old, new, "-o", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("layer"))
    assert header.split() == [
        "layer",
        "inserted",
        "deleted",
        "geometry",
        "marking",
        "type",
        "connectivity",
        "total",
    ]
    rows = {
        line.split()[0]: line.split()[1:]
        for line in lines
        if line.startswith(("poles", "signs", "total"))
    }
    assert rows["poles"] == ["0", "0", "1", "0", "0", "0", "1"]
    assert rows["signs"] == ["0", "1", "0", "0", "0", "0", "1"]
    assert rows["total"][-1] == "2"
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == 2
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert 120.0 < lon < 121.0 and 31.0 < lat < 32.0
        assert set(feature["properties"]) >= REQUIRED
    changes = {(f["properties"]["change"], f["properties"]["layer"]) for f in doc["features"]}
    assert changes == {("geometry_changed", "poles"), ("deleted", "signs")}
    moved = next(f for f in doc["features"] if f["properties"]["layer"] == "poles")
    assert moved["properties"]["details"]["displacement_m"] == pytest.approx(0.5)


def test_json_output_holds_the_records(maps):
    old, new = maps
    result = hdmap("diff", old, new, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["count"] == len(doc["records"]) == 2
    assert all(REQUIRED | {"anchor"} <= set(r) for r in doc["records"])


def test_maps_in_two_formats_of_one_model_have_no_changes(tmp_path):
    gpkg, xml = tmp_path / "a.gpkg", tmp_path / "a.xsmap.xml"
    write_gpkg(sample_model(), gpkg)
    write_localstd(sample_model(), xml)
    result = hdmap("diff", gpkg, xml)
    assert result.returncode == 0, result.stderr
    assert "0 changes" in result.stdout


def test_truth_maps_of_the_changed_sample(samples_dir, tmp_path):
    out = tmp_path / "changes.geojson"
    result = hdmap(
        "diff",
        samples_dir / "urban" / "truth.gpkg",
        samples_dir / "urban_changed" / "truth.gpkg",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "5 changes" in result.stdout
    assert len(json.loads(out.read_text())["features"]) == 5


def _one_line_naming(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 3, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_exits_3(maps, tmp_path):
    old, _ = maps
    missing = tmp_path / "missing.gpkg"
    _one_line_naming(hdmap("diff", old, missing), missing)


def test_wrong_file_type_exits_3(maps, tmp_path):
    old, _ = maps
    notes = tmp_path / "notes.txt"
    notes.write_text("not a map")
    _one_line_naming(hdmap("diff", notes, old), notes)
    fake = tmp_path / "fake.gpkg"
    fake.write_text("not a database")
    _one_line_naming(hdmap("diff", old, fake), fake)


def test_maps_in_different_crs_exit_3(maps, tmp_path):
    old, _ = maps
    other = tmp_path / "utm.gpkg"
    write_gpkg(sample_model().replace(crs="EPSG:32650"), other)
    result = hdmap("diff", old, other)
    _one_line_naming(result, other)
    assert "EPSG:32650" in result.stderr and "EPSG:4549" in result.stderr


def test_usage_errors_exit_2(maps):
    old, _ = maps
    assert hdmap("diff", old).returncode == 2
    assert hdmap("diff").returncode == 2
    assert hdmap("diff", old, old, "--bogus").returncode == 2
