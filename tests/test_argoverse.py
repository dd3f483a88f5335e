"""Argoverse 2 vector maps in the layer contract (formats/argoverse.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyproj
import pytest

from formats.argoverse import find_log_maps, read_argoverse_map
from formats.gpkg import read_gpkg, write_gpkg
from pipeline.crs import local_crs
from pipeline.errors import FormatError, HDMapIOError
from pipeline.model import Color, MarkingKind
from qa.score import score_maps

AV2 = Path(__file__).parents[1] / ".." / "shared" / "real_data" / "argoverse2_pittsburgh"


def _pts(*xy: tuple[float, float], z: float = 10.0) -> list[dict[str, float]]:
    return [{"x": x, "y": y, "z": z} for x, y in xy]


def _segment(sid, left, right, lmark, rmark, succ=(), pred=(), lnb=None, rnb=None):
    return {
        "id": sid,
        "is_intersection": False,
        "lane_type": "VEHICLE",
        "left_lane_boundary": _pts(*left),
        "left_lane_mark_type": lmark,
        "right_lane_boundary": _pts(*right),
        "right_lane_mark_type": rmark,
        "successors": list(succ),
        "predecessors": list(pred),
        "left_neighbor_id": lnb,
        "right_neighbor_id": rnb,
    }


def _tiny_map(tmp_path: Path) -> Path:
    """Two 20 m lanes side by side heading east (3.5 m and 3.0 m wide) sharing a dashed line,
    a successor lane, one link to a segment outside the file, and a 4 x 10 m crossing."""
    a = _segment(
        1, [(0, 3.5), (20, 3.5)], [(0, 0), (10, 0), (20, 0)], "DOUBLE_SOLID_YELLOW",
        "DASHED_WHITE", succ=(3, 999), rnb=2,
    )  # fmt: skip
    b = _segment(
        2, [(0, 0), (10, 0), (20, 0)], [(0, -3), (20, -3)], "DASHED_WHITE", "SOLID_WHITE", lnb=1
    )
    c = _segment(3, [(20, 3.5), (40, 3.5)], [(20, 0), (40, 0)], "NONE", "NONE", pred=(1,))
    data = {
        "lane_segments": {"1": a, "2": b, "3": c},
        "pedestrian_crossings": {
            "7": {"id": 7, "edge1": _pts((41, -3), (41, 7)), "edge2": _pts((45, -3), (45, 7))}
        },
        "drivable_areas": {},
    }
    path = tmp_path / "map" / "log_map_archive_tiny____PIT_city_1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


def test_tiny_map_converts_exactly(tmp_path):
    path = _tiny_map(tmp_path)
    assert find_log_maps(tmp_path) == [path]
    m = read_argoverse_map(path)
    assert pyproj.CRS(m.crs) == local_crs()
    # 6 sides, the shared dashed line once, the successor's two virtual lines: 5 boundaries
    kinds = sorted((b.marking.value, b.color.value) for b in m.lane_boundaries)
    assert kinds == sorted(
        [
            ("double_solid", "yellow"),
            ("dashed", "white"),
            ("solid", "white"),
            ("virtual", "unknown"),
            ("virtual", "unknown"),
        ]
    )
    lanes = {tuple(round(v, 2) for v in ln.geometry.coords[0][:2]): ln for ln in m.lanes}
    a, b = lanes[(0.0, 1.75)], lanes[(0.0, -1.5)]
    assert a.widths_m == pytest.approx((3.5,) * len(a.widths_m))
    assert b.widths_m == pytest.approx((3.0,) * len(b.widths_m))
    assert a.geometry.length == pytest.approx(20.0) and len(a.geometry.coords) == 21
    assert a.right_boundary == b.left_boundary  # the shared dashed line
    c = next(ln for ln in m.lanes if ln.geometry.coords[0][0] == pytest.approx(20.0))
    assert a.successors == (c.id,) and c.predecessors == (a.id,)  # 999 is not in the file
    assert a.right_neighbour == b.id and b.left_neighbour == a.id
    (xw,) = m.crosswalks
    assert xw.geometry.is_valid and xw.geometry.area == pytest.approx(40.0)


def test_tiny_map_scores_against_itself_in_the_local_frame(tmp_path):
    m = read_argoverse_map(_tiny_map(tmp_path))
    other = m.replace(crs=local_crs().to_wkt())  # as a survey read with --crs local names it
    r = score_maps(m, other)
    assert r.layer("lane_boundaries").at(0.10).f1 == 1.0
    assert r.layer("lane_boundaries").truth_count == 3  # the virtual ones are left out
    assert (r.layer("lanes").edge_precision, r.layer("lanes").edge_recall) == (1.0, 1.0)
    assert r.layer("crosswalks").iou_union == pytest.approx(1.0)


def test_bad_files(tmp_path):
    with pytest.raises(HDMapIOError, match="no such file"):
        read_argoverse_map(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="not JSON"):
        read_argoverse_map(bad)
    bad.write_text(json.dumps({"something": 1}))
    with pytest.raises(FormatError, match="lane_segments"):
        read_argoverse_map(bad)
    bad.write_text(json.dumps({"lane_segments": {"1": {"id": 1}}}))
    with pytest.raises(FormatError, match="lane segment 1"):
        read_argoverse_map(bad)


def _real_maps() -> list[Path]:
    maps = find_log_maps(AV2)
    if not maps:
        pytest.skip(f"no Argoverse 2 log maps under {AV2}")
    return maps


@pytest.mark.realdata
def test_real_maps_are_plausible_and_valid():
    for path in _real_maps():
        raw = json.loads(path.read_text())
        m = read_argoverse_map(path)
        n_segments = len(raw["lane_segments"])
        assert len(m.lanes) == n_segments
        # shared boundaries are written once: fewer lines than sides, more than one per lane
        assert n_segments < len(m.lane_boundaries) < 2 * n_segments
        assert len(m.crosswalks) == len(raw["pedestrian_crossings"]) > 0
        painted = [b for b in m.lane_boundaries if b.marking is not MarkingKind.VIRTUAL]
        assert len(painted) >= 40
        assert {b.color for b in painted} <= {Color.WHITE, Color.YELLOW}
        ids = {f.id for f in m.features()}
        for lane in m.lanes:
            assert lane.geometry.is_valid and lane.geometry.length > 0.05
            assert all(1.0 < w < 15.0 and math.isfinite(w) for w in lane.widths_m)
            links = [*lane.successors, *lane.predecessors, lane.left_boundary, lane.right_boundary]
            assert all(x in ids for x in links if x is not None)
        for xw in m.crosswalks:
            assert xw.geometry.is_valid and 10.0 < xw.geometry.area < 400.0
        # successors in the file give graph edges
        assert sum(len(ln.successors) for ln in m.lanes) > n_segments / 2


@pytest.mark.realdata
def test_real_maps_round_trip_through_geopackage(tmp_path):
    for k, path in enumerate(_real_maps()):
        m = read_argoverse_map(path)
        out = tmp_path / f"av2_{k}.gpkg"
        write_gpkg(m, out)
        back = read_gpkg(out)
        assert back == m
        assert score_maps(m, back).layer("lane_boundaries").at(0.10).f1 == 1.0


def test_hdmap_score_reads_an_argoverse_map(tmp_path, capsys):
    from flows.cli.main import main

    path = _tiny_map(tmp_path)
    pred = tmp_path / "features.gpkg"
    m = read_argoverse_map(path)
    write_gpkg(m.replace(crs=local_crs().to_wkt(), crosswalks=()), pred)
    out = tmp_path / "score.json"
    assert main(["score", "--truth", str(path), "--pred", str(pred), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["layers"]["lane_boundaries"]["buffers"][0]["f1"] == 1.0
    assert data["layers"]["crosswalks"]["iou_union"] == 0.0
    assert "crosswalks" in capsys.readouterr().out
