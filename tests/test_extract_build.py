"""End-to-end extraction: ``hdmap build`` on the urban sample scored against its truth, and bad
input (too few points, no road, no markings) giving an empty map and warnings, never a crash.

The accuracy checks are floors at the figures reached on the committed urban sample, below the
issue's targets where those are not reached yet (see the comments); they catch regressions.
"""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pytest

from flows.cli.main import main
from formats.gpkg import read_gpkg
from pipeline.extract import extract_map, extract_points
from pipeline.model import MarkingKind
from pipeline.survey import PointChunk
from qa.score import score_maps

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "scenes"


@pytest.fixture(scope="module")
def urban_build(tmp_path_factory):
    scene = SAMPLES / "urban"
    out = tmp_path_factory.mktemp("build") / "urban"
    code = main(
        [
            "build",
            str(scene / "survey.laz"),
            "--out",
            str(out),
            "--trajectory",
            str(scene / "trajectory.csv"),
            "--ortho",
            str(scene / "ortho.tif"),
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def urban_report(urban_build):
    truth = read_gpkg(SAMPLES / "urban" / "truth.gpkg")
    pred = read_gpkg(urban_build / "features.gpkg")
    return score_maps(truth, pred)


def test_build_writes_features_and_manifest(urban_build):
    manifest = json.loads((urban_build / "manifest.json").read_text())
    roles = {i["role"] for i in manifest["inputs"]}
    assert roles == {"survey", "trajectory", "ortho"}
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert manifest["software"]["name"] == "xishan-hdmap"
    assert manifest["feature_counts"]["lane_boundaries"] > 0
    assert "paint_threshold" in manifest["parameters"]
    assert manifest["parameters"]["options"]["markings"]["cell_m"] == 0.05
    assert set(manifest["timings_s"]) >= {"read", "ground", "intensity", "markings", "lanes"}
    assert manifest["warnings"] == []
    model = read_gpkg(urban_build / "features.gpkg")
    assert model.counts() == manifest["feature_counts"]
    assert not list(urban_build.glob("*.part*"))


def test_urban_lane_boundaries(urban_report):
    lb = urban_report.layer("lane_boundaries")
    f1_10 = lb.buffers[0].f1
    # target F1 >= 0.97 at 0.10 m; reached 0.857: the far curb-side solid line (13 m from the
    # scanner, grazing scan lines) is sampled over a fifth of its length only
    assert f1_10 >= 0.84
    assert lb.buffers[0].correctness >= 0.98
    assert lb.rms_offset_m <= 0.03  # target 0.03 m, reached 0.021
    assert lb.kind_accuracy >= 0.98  # target 0.98, reached 0.995
    assert lb.color_accuracy >= 0.98  # target 0.98 with ortho, reached 1.0


def test_urban_stop_lines_crosswalks_arrows(urban_report):
    assert urban_report.layer("stop_lines").buffers[1].f1 >= 0.95  # target 0.95, reached 0.989
    assert urban_report.layer("crosswalks").mean_best_iou >= 0.90  # target 0.90, reached 0.979
    arrows = urban_report.layer("road_arrows")
    assert arrows.recall == 1.0 and arrows.precision == 1.0
    # target kind accuracy 0.90; reached 5 of 6 (a far arrow is seen only in part)
    assert arrows.kind_accuracy >= 0.8


def test_urban_lanes(urban_report):
    lanes = urban_report.layer("lanes")
    # target centreline F1 0.95 at 0.20 m; reached 0.85 (the far lanes lack their outer line)
    assert lanes.buffers[1].f1 >= 0.83
    assert lanes.width_rms_m <= 0.05  # target 0.05 m, reached 0.020
    assert lanes.edge_precision == 1.0  # every predicted graph edge is right (recall 0.8)


def test_urban_double_yellow_found(urban_build):
    model = read_gpkg(urban_build / "features.gpkg")
    doubles = [b for b in model.lane_boundaries if b.marking == MarkingKind.DOUBLE_SOLID]
    assert doubles and all(b.color.value == "yellow" for b in doubles)
    dashed = [b for b in model.lane_boundaries if b.marking == MarkingKind.DASHED]
    assert dashed
    for b in dashed:
        assert 1.5 <= b.dash_length_m <= 2.5 and 3.5 <= b.gap_length_m <= 4.5  # 2 m / 4 m


# bad input


def _write_las(path: Path, xyz: np.ndarray, intensity: np.ndarray | None = None) -> Path:
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.offsets = xyz.min(axis=0)
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if intensity is not None:
        las.intensity = intensity
    las.gps_time = np.arange(len(xyz)) * 1e-4
    las.write(path)
    return path


def test_few_hundred_points_give_an_empty_map_and_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(1)
    xyz = rng.uniform([0, 0, 0], [20, 10, 0.02], (300, 3)) + np.array([500000.0, 3000000.0, 5.0])
    las = _write_las(tmp_path / "tiny.las", xyz, rng.integers(100, 2000, 300).astype(np.uint16))
    code = main(["build", str(las), "--out", str(tmp_path / "out"), "--crs", "EPSG:4549"])
    assert code == 0
    assert "too few" in capsys.readouterr().err
    model = read_gpkg(tmp_path / "out" / "features.gpkg")
    assert model.is_empty
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["warnings"] and manifest["feature_counts"]["lane_boundaries"] == 0


def test_no_road_surface_gives_a_warning(tmp_path):
    rng = np.random.default_rng(2)
    # a cloud of foliage: no flat ground anywhere
    xyz = rng.uniform([0, 0, 0], [30, 30, 15], (20_000, 3)) + np.array([500000.0, 3000000.0, 0.0])
    las = _write_las(tmp_path / "trees.las", xyz, rng.integers(100, 2000, 20_000).astype(np.uint16))
    result = extract_map([las], crs="EPSG:4549")
    assert result.model.is_empty
    assert any("no road surface" in w for w in result.warnings)


def test_road_without_markings_gives_a_warning(tmp_path):
    rng = np.random.default_rng(3)
    xy = rng.uniform([0, 0], [40, 12], (60_000, 2))
    z = 0.01 * xy[:, 1] + rng.normal(0, 0.005, len(xy))
    xyz = np.column_stack([xy, z]) + np.array([500000.0, 3000000.0, 5.0])
    intensity = (1000 * rng.lognormal(0, 0.15, len(xy))).astype(np.uint16)
    las = _write_las(tmp_path / "plain.las", xyz, intensity)
    result = extract_map([las], crs="EPSG:4549")
    assert result.model.lane_boundaries == ()
    assert any("no lane markings" in w for w in result.warnings)


def test_points_without_intensity_give_a_warning():
    rng = np.random.default_rng(4)
    xy = rng.uniform([0, 0], [40, 12], (20_000, 2))
    points = PointChunk(np.column_stack([xy, np.zeros(len(xy))]))
    result = extract_points(points, crs="EPSG:4549", survey_id="t")
    assert result.model.is_empty
    assert any("no intensity" in w for w in result.warnings)


def test_urban_without_trajectory_or_ortho():
    scene = SAMPLES / "urban"
    result = extract_map([scene / "survey.laz"])
    assert any("no trajectory" in w for w in result.warnings)
    assert any("colours are unknown" in w for w in result.warnings)
    assert all(b.color.value == "unknown" for b in result.model.lane_boundaries)
    report = score_maps(read_gpkg(scene / "truth.gpkg"), result.model)
    lb = report.layer("lane_boundaries")
    # the principal-axis frame and scan-angle normalisation reach F1 0.858 at 0.20 m here
    assert lb.buffers[1].f1 >= 0.83
    assert lb.kind_accuracy >= 0.98
    assert report.layer("crosswalks").mean_best_iou >= 0.9


@pytest.mark.slow
def test_fresh_urban_seed(tmp_path):
    """A scene the other tests never see (about 30 s: simulation plus extraction)."""
    from data_samples.simulator.simulate import simulate

    simulate("urban", 90210, tmp_path, length_m=100.0)
    from pipeline.ortho import read_ortho

    ortho = read_ortho(tmp_path / "ortho.tif", dst_crs="EPSG:4549")
    result = extract_map(
        [tmp_path / "survey.laz"], trajectory=tmp_path / "trajectory.csv", ortho=ortho
    )
    report = score_maps(read_gpkg(tmp_path / "truth.gpkg"), result.model)
    lb = report.layer("lane_boundaries")
    assert lb.buffers[1].f1 >= 0.8
    assert lb.color_accuracy >= 0.98
    assert report.layer("crosswalks").mean_best_iou >= 0.85
    assert report.layer("stop_lines").buffers[1].f1 >= 0.8


def test_synthetic_road_with_point_rgb_colours():
    """Two solid lines on a plane, colours from point RGB (no ortho, no trajectory)."""
    rng = np.random.default_rng(5)
    xy = np.mgrid[0:40:0.04, -2:6:0.04].reshape(2, -1).T
    on_white = np.abs(xy[:, 1] - 0.0) <= 0.075
    on_yellow = np.abs(xy[:, 1] - 3.5) <= 0.075
    intensity = 1000 * rng.lognormal(0, 0.15, len(xy))
    intensity[on_white | on_yellow] *= 7.0
    rgb = np.tile(np.array([70, 70, 72], np.uint16), (len(xy), 1))
    rgb[on_white] = (235, 235, 230)
    rgb[on_yellow] = (235, 190, 40)
    xyz = np.column_stack([xy + np.array([500000.0, 3000000.0]), np.full(len(xy), 5.0)])
    points = PointChunk(xyz, intensity=intensity.astype(np.uint16), rgb=rgb * 256)
    result = extract_points(points, crs="EPSG:4549", survey_id="synthetic")
    lines = sorted(result.model.lane_boundaries, key=lambda b: b.geometry.centroid.y)
    assert [b.color.value for b in lines] == ["white", "yellow"]
    assert all(b.marking == MarkingKind.SOLID for b in lines)
    assert all(abs(b.geometry.length - 40.0) < 0.3 for b in lines)
    ys = [b.geometry.centroid.y - 3000000.0 for b in lines]
    assert ys == pytest.approx([0.0, 3.5], abs=0.02)
    assert len(result.model.lanes) == 1
    assert result.model.lanes[0].width_m == pytest.approx(3.5, abs=0.03)
