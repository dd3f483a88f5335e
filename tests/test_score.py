"""Scoring (qa/score.py, hdmap score) against analytically known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely import LineString, Point, Polygon

from flows.cli.main import main
from formats.gpkg import read_gpkg, write_gpkg
from pipeline.errors import CRSError
from pipeline.model import Color, MapModel, MarkingKind, SignClass, SignShape
from qa.accuracy_record import (
    TARGETS,
    BuildOutput,
    RunRecord,
    headline,
    render_record,
    run_record,
)
from qa.score import (
    LINEAR_LAYERS,
    format_table,
    match_points,
    score_maps,
)
from tests.common import E0, MODELS, N0, sample_model

SCENES = Path(__file__).parents[1] / "data_samples" / "scenes"
TRUTHS = {k: SCENES / k / "truth.gpkg" for k in ("urban", "arterial", "highway")}


def _truth(kind: str) -> MapModel:
    path = TRUTHS[kind]
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return read_gpkg(path)


# fixture factories: the shared models and the committed simulated truths
FIXTURES = {**MODELS, **{k: (lambda k=k: _truth(k)) for k in TRUTHS}}
NON_EMPTY = {k: v for k, v in FIXTURES.items() if k != "empty"}


def _shift_line(line: LineString, d: float) -> LineString:
    """``line`` moved ``d`` metres to its left, perpendicular to its local direction."""
    xyz = shapely.get_coordinates(line, include_z=True)
    t = np.gradient(xyz[:, :2], axis=0)
    t /= np.linalg.norm(t, axis=1)[:, None]
    xyz[:, :2] += d * np.column_stack([-t[:, 1], t[:, 0]])
    return LineString(xyz)


def _shift_lines(model: MapModel, d: float) -> MapModel:
    return model.replace(
        **{
            name: tuple(f.replace(geometry=_shift_line(f.geometry, d)) for f in model.layer(name))
            for name in LINEAR_LAYERS
        }
    )


# ----------------------------------------------------------------------------------------------
# identity and shifts


@pytest.mark.parametrize("make_model", NON_EMPTY.values(), ids=NON_EMPTY.keys())
def test_identity_scores_perfectly(make_model):
    model = make_model()
    report = score_maps(model, model)
    for name in LINEAR_LAYERS:
        s = report.layer(name)
        if not model.layer(name):
            assert s.buffers[0].f1 is None
            continue
        assert [b.f1 for b in s.buffers] == pytest.approx([1.0, 1.0])
        assert s.rms_offset_m == pytest.approx(0.0, abs=1e-9)
    lb = report.layer("lane_boundaries")
    assert lb.kind_accuracy == 1.0 and lb.color_accuracy == 1.0
    lanes = report.layer("lanes")
    assert lanes.width_rms_m == pytest.approx(0.0, abs=1e-9)
    assert lanes.truth_edges == lanes.pred_edges
    if lanes.truth_edges:  # the highway has no lane graph
        assert lanes.edge_precision == 1.0 and lanes.edge_recall == 1.0
    else:
        assert lanes.edge_precision is None and lanes.edge_recall is None
    for name in ("poles", "signs", "road_arrows"):
        s = report.layer(name)
        if model.layer(name):
            assert (s.precision, s.recall, s.rmse_2d_m) == (1.0, 1.0, 0.0)
    if model.crosswalks:
        assert report.layer("crosswalks").iou_union == pytest.approx(1.0)
        assert report.layer("crosswalks").mean_best_iou == pytest.approx(1.0)


def test_shift_of_sample_lines_is_exact():
    model = sample_model()
    report = score_maps(model, _shift_lines(model, 0.15))
    for name in LINEAR_LAYERS:
        s = report.layer(name)
        assert s.at(0.10).f1 == pytest.approx(0.0, abs=1e-9), name
        assert s.at(0.20).f1 == pytest.approx(1.0, abs=1e-9), name
        assert s.rms_offset_m == pytest.approx(0.15, abs=1e-9), name
    # attributes still compare on the matched length; the lane graph survives the shift
    assert report.layer("lane_boundaries").kind_accuracy == 1.0
    lanes = report.layer("lanes")
    assert lanes.width_rms_m == pytest.approx(0.0, abs=1e-9)
    assert (lanes.edge_precision, lanes.edge_recall) == (1.0, 1.0)


@pytest.mark.parametrize("kind", TRUTHS)
def test_shift_of_simulated_truth(kind):
    model = _truth(kind)
    report = score_maps(model, _shift_lines(model, 0.15))
    for name in ("lane_boundaries", "road_edges", "lanes"):
        s = report.layer(name)
        if not model.layer(name):
            continue
        # junction connectors start together, so a shifted one may touch a sibling: "about" 0
        assert s.at(0.10).f1 < 0.03, name
        assert s.at(0.20).f1 > 0.99, name
        assert s.rms_offset_m == pytest.approx(0.15, abs=0.003), name


# ----------------------------------------------------------------------------------------------
# point layers


@pytest.mark.parametrize("make_model", NON_EMPTY.values(), ids=NON_EMPTY.keys())
def test_deleting_half_the_poles(make_model):
    model = make_model()
    if len(model.poles) % 2:
        model = model.replace(poles=model.poles[:-1])
    half = model.replace(poles=model.poles[::2])
    s = score_maps(model, half, layers=["poles"]).layer("poles")
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert s.f1 == pytest.approx(2 / 3)


def test_pole_offsets_heights_and_match_radius():
    model = sample_model()
    a, b = model.poles

    def moved(p, dx, dz=0.0):
        g = p.geometry
        return Point(g.x + dx, g.y, g.z + dz)

    pred = model.replace(
        poles=(a.replace(geometry=moved(a, 0.3, 0.4), height_m=a.height_m + 0.4), b)
    )
    s = score_maps(model, pred, layers=["poles"]).layer("poles")
    assert s.matched == 2
    assert s.rmse_2d_m == pytest.approx(math.sqrt(0.09 / 2))
    assert s.rmse_3d_m == pytest.approx(math.sqrt(0.25 / 2))
    assert s.height_rms_m == pytest.approx(math.sqrt(0.16 / 2))
    far = model.replace(poles=(a.replace(geometry=moved(a, 0.6)), b))
    s = score_maps(model, far, layers=["poles"]).layer("poles")
    assert (s.matched, s.precision, s.recall) == (1, 0.5, 0.5)


def test_one_to_one_matching_is_optimal_not_greedy():
    # greedy nearest would pair truth 0 with pred 0 (0.3 m) and leave truth 1 unmatched
    truth = np.array([[0.0, 0.0], [0.6, 0.0]])
    pred = np.array([[0.3, 0.0], [-0.4, 0.0]])
    assert sorted(match_points(truth, pred, 0.5)) == [(0, 1), (1, 0)]


def test_sign_shape_and_class_accuracy():
    model = sample_model()
    stop, warning = model.signs
    pred = model.replace(
        signs=(stop.replace(shape=SignShape.CIRCLE), warning.replace(sign_class=SignClass.UNKNOWN))
    )
    s = score_maps(model, pred, layers=["signs"]).layer("signs")
    assert (s.shape_accuracy, s.class_accuracy) == (0.5, 0.5)


def test_arrow_kind_and_centroid_radius():
    model = sample_model()
    polygon_arrow, point_arrow = model.road_arrows
    g = point_arrow.geometry
    pred = model.replace(
        road_arrows=(
            polygon_arrow.replace(kind=polygon_arrow.kind.__class__("left")),
            point_arrow.replace(geometry=Point(g.x + 0.8, g.y, g.z)),
        )
    )
    s = score_maps(model, pred, layers=["road_arrows"]).layer("road_arrows")
    assert (s.matched, s.kind_accuracy) == (2, 0.5)
    assert s.rmse_2d_m == pytest.approx(math.sqrt(0.64 / 2))
    pred = model.replace(road_arrows=(point_arrow.replace(geometry=Point(g.x + 1.2, g.y, g.z)),))
    s = score_maps(model, pred, layers=["road_arrows"]).layer("road_arrows")
    assert (s.matched, s.precision, s.recall) == (0, 0.0, 0.0)


# ----------------------------------------------------------------------------------------------
# attributes of linear layers


def test_marking_kind_and_colour_accuracy_are_length_weighted():
    model = sample_model()
    south, east_div, centre, west_div, north = model.lane_boundaries  # all 40 m long
    pred = model.replace(
        lane_boundaries=(
            south.replace(color=Color.UNKNOWN),  # unknown counts as wrong
            east_div.replace(marking=MarkingKind.SOLID),
            centre,
            west_div.replace(marking=MarkingKind.SOLID),
            north.replace(color=Color.WHITE),  # truth colour unknown: not judged
        )
    )
    s = score_maps(model, pred, layers=["lane_boundaries"]).layer("lane_boundaries")
    assert s.kind_accuracy == pytest.approx(120 / 200)
    assert s.color_accuracy == pytest.approx(120 / 160)
    assert s.color_unknown_share == pytest.approx(40 / 200)
    # half of one line dropped: the remaining half is all that is judged on that line
    half = LineString(list(east_div.geometry.coords)[:3])  # x = 0..20 m
    pred = model.replace(
        lane_boundaries=(south, east_div.replace(geometry=half, marking=MarkingKind.SOLID), centre)
    )
    s = score_maps(model, pred, layers=["lane_boundaries"]).layer("lane_boundaries")
    assert s.kind_accuracy == pytest.approx(80 / 100)
    # the round buffer cap reaches 0.10 m past the end of the half line
    assert s.at(0.10).completeness == pytest.approx(100.1 / 200)
    assert s.at(0.10).correctness == pytest.approx(1.0)


def test_virtual_boundaries_are_left_out_unless_asked():
    model = sample_model()
    virtual = model.lane_boundaries[0].replace(
        id="lb-virtual",
        geometry=_shift_line(model.lane_boundaries[0].geometry, -3.0),
        marking=MarkingKind.VIRTUAL,
    )
    truth = model.replace(lane_boundaries=(*model.lane_boundaries, virtual))
    s = score_maps(truth, model, layers=["lane_boundaries"]).layer("lane_boundaries")
    assert s.at(0.10).completeness == 1.0 and s.truth_count == 5
    s = score_maps(truth, model, layers=["lane_boundaries"], include_virtual_boundaries=True)
    assert s.layer("lane_boundaries").at(0.10).completeness == pytest.approx(200 / 240)


def test_road_edge_kind_and_curb_height():
    model = sample_model()
    curb, pavement = model.road_edges
    pred = model.replace(road_edges=(curb.replace(height_m=curb.height_m + 0.03), pavement))
    s = score_maps(model, pred, layers=["road_edges"]).layer("road_edges")
    assert s.curb_height_rms_m == pytest.approx(0.03)
    assert s.kind_accuracy == 1.0
    pred = model.replace(road_edges=(curb.replace(kind=pavement.kind), pavement))
    s = score_maps(model, pred, layers=["road_edges"]).layer("road_edges")
    assert s.kind_accuracy == pytest.approx(0.5)
    assert s.curb_height_rms_m is None  # no matched pred curb left


def test_lane_widths_and_graph():
    model = sample_model()
    lanes = model.lanes
    wider = tuple(ln.replace(widths_m=tuple(w + 0.05 for w in ln.widths_m)) for ln in lanes)
    s = score_maps(model, model.replace(lanes=wider), layers=["lanes"]).layer("lanes")
    assert s.width_rms_m == pytest.approx(0.05)
    # sample graph: east_inner -> connector (successor and predecessor say the same edge)
    east_inner, east_outer, west_inner, west_outer, connector = lanes
    wrong = (
        east_inner.replace(successors=()),
        east_outer.replace(successors=(connector.id,)),
        west_inner,
        west_outer,
        connector.replace(predecessors=()),
    )
    s = score_maps(model, model.replace(lanes=wrong), layers=["lanes"]).layer("lanes")
    assert (s.truth_edges, s.pred_edges, s.edge_precision, s.edge_recall) == (1, 1, 0.0, 0.0)


# ----------------------------------------------------------------------------------------------
# polygons


def test_crosswalk_shrunk_to_known_fraction():
    model = sample_model()
    (xw,) = model.crosswalks
    x0, y0, _, y1 = xw.geometry.bounds  # 4 m along the road, 14 m across
    z = xw.geometry.exterior.coords[0][2]
    shrunk = Polygon([(x0, y0, z), (x0 + 1.0, y0, z), (x0 + 1.0, y1, z), (x0, y1, z)])
    pred = model.replace(crosswalks=(xw.replace(geometry=shrunk),))
    s = score_maps(model, pred, layers=["crosswalks"]).layer("crosswalks")
    assert s.iou_union == pytest.approx(0.25)
    assert s.best_iou == pytest.approx((0.25,))
    split = (
        xw.replace(geometry=shrunk),
        xw.replace(id="xw-2", geometry=shapely.affinity.translate(shrunk, 2.0)),
    )
    s = score_maps(model, model.replace(crosswalks=split), layers=["crosswalks"]).layer(
        "crosswalks"
    )
    assert s.iou_union == pytest.approx(0.5)  # together they cover half
    assert s.mean_best_iou == pytest.approx(0.25)  # each alone a quarter


# ----------------------------------------------------------------------------------------------
# empty maps


def test_empty_truth_and_pred():
    empty = MODELS["empty"]()
    report = score_maps(empty, empty)
    for s in report.scores:
        d = report.to_dict()["layers"][s.layer]
        assert all(
            v is None for k, v in d.items() if k in ("f1", "precision", "recall", "iou_union")
        )
    lb = report.layer("lane_boundaries")
    assert lb.buffers[0].completeness is None and lb.rms_offset_m is None
    text = format_table(report)
    assert "lane_boundaries" in text and "crosswalks" in text and " - " in text
    json.dumps(report.to_dict(), allow_nan=False)


def test_empty_pred_and_empty_truth_against_a_full_map():
    full, empty = sample_model(), MODELS["empty"]()
    missed = score_maps(full, empty)
    lb = missed.layer("lane_boundaries").at(0.10)
    assert (lb.completeness, lb.correctness, lb.f1) == (0.0, None, 0.0)
    poles = missed.layer("poles")
    assert (poles.precision, poles.recall, poles.f1, poles.rmse_2d_m) == (None, 0.0, 0.0, None)
    assert missed.layer("crosswalks").iou_union == 0.0
    assert missed.layer("crosswalks").best_iou == (0.0,)
    invented = score_maps(empty, full)
    lb = invented.layer("lane_boundaries").at(0.20)
    assert (lb.completeness, lb.correctness, lb.f1) == (None, 0.0, 0.0)
    assert invented.layer("signs").precision == 0.0 and invented.layer("signs").f1 == 0.0
    assert invented.layer("crosswalks").mean_best_iou is None
    for r in (missed, invented):
        json.dumps(r.to_dict(), allow_nan=False)
        assert format_table(r)


# ----------------------------------------------------------------------------------------------
# CRS and the command line


def test_crs_mismatch_is_refused():
    model = sample_model()
    with pytest.raises(CRSError, match="different CRSs"):
        score_maps(model, model.replace(crs="EPSG:32650"))


def test_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="junctions"):
        score_maps(sample_model(), sample_model(), layers=["junctions"])


def test_cli_prints_table_and_writes_json(tmp_path, capsys):
    model = sample_model()
    truth, pred, out = tmp_path / "truth.gpkg", tmp_path / "pred.gpkg", tmp_path / "s" / "r.json"
    write_gpkg(model, truth)
    write_gpkg(model.replace(poles=model.poles[:1]), pred)
    code = main(["score", "--truth", str(truth), "--pred", str(pred), "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "lane_boundaries" in text and "poles" in text
    data = json.loads(out.read_text())
    assert data["layers"]["poles"]["recall"] == 0.5
    assert data["layers"]["lane_boundaries"]["buffers"][0]["f1"] == 1.0
    assert not list(out.parent.glob(".*part*"))  # atomic: no temp file left
    code = main(["score", "--truth", str(truth), "--pred", str(pred), "--layers", "signs"])
    assert code == 0 and "poles" not in capsys.readouterr().out


def test_cli_bad_input_exits_3(tmp_path, capsys):
    model = sample_model()
    truth, other = tmp_path / "truth.gpkg", tmp_path / "other.gpkg"
    write_gpkg(model, truth)
    write_gpkg(model.replace(crs="EPSG:32650", lane_boundaries=(), lanes=(), junctions=()), other)
    assert main(["score", "--truth", str(truth), "--pred", str(other)]) == 3
    err = capsys.readouterr().err
    assert "different CRSs" in err and len(err.strip().splitlines()) == 1
    assert main(["score", "--truth", str(truth), "--pred", str(tmp_path / "x.txt")]) == 3
    assert "unknown map format" in capsys.readouterr().err
    assert main(["score", "--truth", str(tmp_path / "missing.gpkg"), "--pred", str(truth)]) == 3


def test_sample_fixture_geometry_assumptions():
    # the analytic answers above rely on these facts of tests.common.sample_model
    model = sample_model()
    assert all(b.geometry.length == pytest.approx(40.0) for b in model.lane_boundaries)
    assert model.crosswalks[0].geometry.bounds[0] == pytest.approx(E0 + 41.0)
    assert model.poles[0].geometry.y == pytest.approx(N0 - 8.6)


# ----------------------------------------------------------------------------------------------
# the accuracy record, with a fake builder (truth perturbed) standing in for the extraction


def _fake_builder(folder: Path) -> BuildOutput:
    """Truth with every line 0.05 m to its left and every other pole missing."""
    truth = read_gpkg(folder / "truth.gpkg")
    pred = _shift_lines(truth, 0.05).replace(poles=truth.poles[::2])
    return BuildOutput(pred, {"fake_shift_m": 0.05}, {"fake": 0.01}, ("fake warning",))


def _fake_run(kind: str, variant: str = "baseline") -> RunRecord:
    truth = _truth(kind)
    built = _fake_builder(TRUTHS[kind].parent)
    return RunRecord(
        kind, 101, variant, None, 120.0, 1000, {"profile_rate_hz": 200.0}, truth.counts(),
        built, score_maps(truth, built.model), 1.0, 2.0, 0.5,
    )  # fmt: skip


def test_record_renders_targets_runs_and_degradation():
    runs = [_fake_run("urban"), _fake_run("highway")]
    degraded = [_fake_run("urban", "range noise x2")]
    text = render_record(runs, degraded, command="cmd", generated="2026-01-01 00:00 UTC")
    assert text.startswith("# Accuracy record\n")
    assert "Generated by `cmd` on 2026-01-01 00:00 UTC" in text
    # the fake is off by 0.05 m: F1 at 0.10 m stays 1, the RMS target (0.03 m) fails
    row = next(ln for ln in text.splitlines() if ln.startswith("| lane boundaries RMS offset"))
    assert row.count("0.050 ✗") == 2
    row = next(ln for ln in text.splitlines() if ln.startswith("| poles recall"))
    assert "0.455 ✗" in row or "0.500 ✗" in row
    row = next(ln for ln in text.splitlines() if ln.startswith("| stop lines F1"))
    assert row.rstrip(" |").endswith("-")  # the highway has no stop lines: undefined, not 0
    assert "### urban, seed 101" in text and "### highway, seed 101" in text
    assert '"fake_shift_m": 0.05' in text and "fake warning" in text
    assert "paint more worn" in text and "no wear knob" in text
    assert "| measure | baseline | range noise x2 |" in text
    assert render_record(runs).count("Not run") == 1


def test_headline_values_follow_the_report():
    run = _fake_run("arterial")
    values = headline(run.report)
    assert values["lane boundaries F1 @0.10 m"] == pytest.approx(1.0)
    assert values["lane boundaries RMS offset m"] == pytest.approx(0.05, abs=0.002)
    assert values["poles recall"] == pytest.approx(0.5)
    assert {t.label for t in TARGETS} == set(values)


@pytest.mark.slow
def test_record_end_to_end_with_simulated_scene(tmp_path):
    runs, degraded = run_record(
        ["highway"], [101], builder=_fake_builder, workdir=tmp_path, quick=True
    )
    assert [r.variant for r in runs] == ["baseline"]
    assert [r.variant for r in degraded] == ["range noise x2", "density halved"]
    base, noisy, sparse = runs[0], *degraded
    assert noisy.scanner["range_noise_m"] == 2 * base.scanner["range_noise_m"]
    assert sparse.scanner["profile_rate_hz"] == base.scanner["profile_rate_hz"] / 2
    assert sparse.points < 0.6 * base.points
    assert base.report.layer("lane_boundaries").at(0.10).f1 == pytest.approx(1.0)
    assert not list(tmp_path.iterdir())  # the temporary surveys are gone
    text = render_record(runs, degraded)
    assert "### highway, seed 101" in text and "density halved" in text


def test_cli_layer_choices_match_the_scorer():
    from flows.cli.score import LAYERS
    from qa.score import SCORED_LAYERS

    assert LAYERS == SCORED_LAYERS


def test_stacked_sign_panels_pair_by_height():
    model = sample_model()
    stop, warning = model.signs
    g = stop.geometry
    upper = warning.replace(geometry=Point(g.x, g.y, g.z + 0.9))  # second panel on the pole
    truth = model.replace(signs=(stop, upper))
    pred = model.replace(
        signs=(
            upper.replace(geometry=Point(g.x + 0.05, g.y, g.z + 0.95)),
            stop.replace(geometry=Point(g.x - 0.05, g.y, g.z - 0.05)),
        )
    )
    s = score_maps(truth, pred, layers=["signs"]).layer("signs")
    assert (s.matched, s.class_accuracy, s.shape_accuracy) == (2, 1.0, 1.0)
    assert s.rmse_3d_m == pytest.approx(math.hypot(0.05, 0.05))


def _box(x0: float, x1: float) -> Polygon:
    """A 2D box over the sample road from x0 to x1 metres east of E0."""
    return shapely.box(E0 + x0, N0 - 20.0, E0 + x1, N0 + 20.0)


def test_region_scores_only_what_lies_inside():
    model = sample_model()
    region = _box(0.0, 20.0)
    halves = tuple(
        b.replace(geometry=LineString(list(b.geometry.coords)[:3])) for b in model.lane_boundaries
    )
    pred = model.replace(lane_boundaries=halves, poles=model.poles[:1])
    everywhere = score_maps(model, pred)
    inside = score_maps(model, pred, region=region)
    assert everywhere.layer("lane_boundaries").at(0.10).completeness == pytest.approx(0.5, 1e-2)
    lb = inside.layer("lane_boundaries")
    assert lb.at(0.10).completeness == pytest.approx(1.0)
    assert lb.truth_length_m == pytest.approx(100.0) and lb.truth_count == 5
    assert everywhere.layer("poles").recall == 0.5
    assert inside.layer("poles").recall == 1.0 and inside.layer("poles").truth_count == 1
    xw = inside.layer("crosswalks")  # the crosswalk lies beyond x = 40 m
    assert (xw.truth_count, xw.iou_union) == (0, None)
    lanes = inside.layer("lanes")  # clipped lanes keep their widths and links
    assert lanes.width_rms_m == pytest.approx(0.0, abs=1e-9)
    assert lanes.truth_count == 4 and lanes.at(0.20).f1 == pytest.approx(1.0)
    # a region cutting the crosswalk in half still gives IoU 1 for an exact prediction
    cut = score_maps(model, model, region=_box(43.0, 60.0), layers=["crosswalks"])
    assert cut.layer("crosswalks").iou_union == pytest.approx(1.0)


def test_cli_region(tmp_path, capsys):
    model = sample_model()
    truth, pred, out = tmp_path / "t.gpkg", tmp_path / "p.gpkg", tmp_path / "r.json"
    write_gpkg(model, truth)
    write_gpkg(model.replace(poles=model.poles[:1]), pred)
    wkt = tmp_path / "region.wkt"
    wkt.write_text(_box(0.0, 20.0).wkt)
    for region in (_box(0.0, 20.0).wkt, str(wkt)):
        args = ["score", "--truth", str(truth), "--pred", str(pred), "--json", str(out)]
        assert main([*args, "--region", region]) == 0
        assert json.loads(out.read_text())["layers"]["poles"]["recall"] == 1.0
    capsys.readouterr()
    assert main(["score", "--truth", str(truth), "--pred", str(pred), "--region", "nonsense"]) == 3
    assert "--region" in capsys.readouterr().err
    assert (
        main(["score", "--truth", str(truth), "--pred", str(pred), "--region", "POINT (1 2)"]) == 3
    )
