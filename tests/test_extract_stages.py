"""Unit tests of the extraction stages on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ground import GroundOptions, lateral_road_mask, road_surface_mask
from pipeline.intensity import fit_intensity_curve, normalise_intensity, scanner_range
from pipeline.lanes import FrameLine, junction_lanes, lane_graph, lane_pieces
from pipeline.markings import (
    MarkingOptions,
    arrow_kind,
    chain_pieces,
    classify_chain,
    paint_pieces,
    paint_threshold,
    pair_double_lines,
    yellowness,
)
from pipeline.model import ArrowKind, MarkingKind
from pipeline.roadframe import RoadFrame
from pipeline.stages import STAGES, default_options, stage


def _grid(x0, x1, y0, y1, step=0.05):
    xy = np.mgrid[x0:x1:step, y0:y1:step].reshape(2, -1).T
    return xy


# ground


def test_ground_mask_plane_with_curb_and_box():
    xy = _grid(0, 20, -4, 8)
    z = 0.01 * xy[:, 0] + 0.02 * np.abs(xy[:, 1] - 2.0) * -1  # slope and crown
    curb = xy[:, 1] > 6.0
    z = np.where(curb, z + 0.15, z)
    box = (xy[:, 0] > 8) & (xy[:, 0] < 12) & (xy[:, 1] > 0.5) & (xy[:, 1] < 2.5)
    z = np.where(box, z + 1.4, z)  # a car roof
    xyz = np.column_stack([xy, z])
    traj = np.column_stack([np.linspace(0, 20, 50), np.full(50, -2.0)])
    mask = road_surface_mask(xyz, GroundOptions(cell_m=0.25), traj)
    road = ~curb & ~box
    assert mask[road & (xy[:, 1] < 5.5) & ~_near_box(xy)].mean() > 0.98
    assert not mask[curb & (xy[:, 1] > 6.3)].any()
    assert not mask[box].any()


def _near_box(xy):
    return (xy[:, 0] > 7.5) & (xy[:, 0] < 12.5) & (xy[:, 1] > 0) & (xy[:, 1] < 3)


def test_lateral_mask_stops_at_curb_and_jumps_a_car():
    xy = _grid(0, 10, -6, 8)
    s, t = xy[:, 0], xy[:, 1]
    z = -0.02 * np.abs(t - 1.0)  # crown
    curb = t < -4.0
    z = np.where(curb, z + 0.15, z)
    car = (t > 3.0) & (t < 4.8)
    z = np.where(car, z + 1.2, z)
    mask = lateral_road_mask(s, t, z, GroundOptions(cell_m=0.25))
    assert mask[(t > -3.8) & (t < 2.8)].mean() > 0.98
    assert not mask[curb & (t < -4.2)].any()
    assert not mask[car].any()
    assert mask[(t > 5.1) & (t < 7.5)].mean() > 0.9  # the road beyond the parked car


def test_ground_masks_empty():
    assert road_surface_mask(np.empty((0, 3))).shape == (0,)
    assert lateral_road_mask(np.empty(0), np.empty(0), np.empty(0)).shape == (0,)


# intensity


def test_intensity_normalisation_flattens_range_falloff():
    rng = np.random.default_rng(3)
    r = rng.uniform(2.0, 25.0, 50_000)
    asphalt = 1500.0 * (5.0 / np.maximum(r, 5.0)) ** 1.5 * rng.lognormal(0, 0.15, r.size)
    paint = rng.random(r.size) < 0.05
    raw = np.where(paint, asphalt * 7.0, asphalt)
    curve = fit_intensity_curve(r, raw)
    norm = normalise_intensity(raw, r, curve)
    near, far = r < 5, r > 15
    # raw asphalt differs by a factor ~5 between near and far; normalised by under 10 %
    assert np.median(raw[near & ~paint]) / np.median(raw[far & ~paint]) > 4
    ratio = np.median(norm[near & ~paint]) / np.median(norm[far & ~paint])
    assert 0.9 < ratio < 1.1
    thr = paint_threshold(norm)
    assert (norm[paint] >= thr).mean() > 0.95
    assert (norm[~paint] >= thr).mean() < 0.01


def test_scanner_range_interpolates_trajectory():
    rng = scanner_range(
        np.array([[10.0, 3.0, 0.0]]),
        np.array([1.0]),
        np.array([0.0, 2.0]),
        np.array([[0.0, 0.0, 2.0], [20.0, 0.0, 2.0]]),
    )
    assert rng[0] == pytest.approx(np.sqrt(9 + 4))


# markings


def _dashed_line(dash, gap, length, t0=0.0, width=0.15, spacing=0.02):
    s_all, t_all = [], []
    s = 0.0
    while s < length:
        ss = np.arange(s, min(s + dash, length), spacing)
        tt = np.arange(-width / 2, width / 2 + 1e-9, spacing)
        a, b = np.meshgrid(ss, tt)
        s_all.append(a.ravel())
        t_all.append(b.ravel() + t0)
        s += dash + gap
    return np.concatenate(s_all), np.concatenate(t_all)


def _with_asphalt(s, t, s_range, t_range, spacing=0.05):
    a = _grid(s_range[0], s_range[1], t_range[0], t_range[1], spacing)
    ss = np.r_[s, a[:, 0]]
    tt = np.r_[t, a[:, 1]]
    paint = np.r_[np.ones(len(s), bool), np.zeros(len(a), bool)]
    return ss, tt, paint


def test_dashed_line_vectorises_to_dash_and_gap_lengths():
    s, t = _dashed_line(6.0, 9.0, 80.0, t0=1.8)
    ss, tt, paint = _with_asphalt(s, t, (0, 80), (1.0, 2.6))
    pieces = paint_pieces(ss, tt, paint)
    assert len(pieces) == 6
    runs = chain_pieces(pieces)
    assert len(runs) == 1
    visible = [True] * (len(runs[0].pieces) - 1)
    parts = classify_chain(runs[0], visible)
    assert len(parts) == 1
    assert parts[0].marking == MarkingKind.DASHED
    assert parts[0].dash_length_m == pytest.approx(6.0, abs=0.1)
    assert parts[0].gap_length_m == pytest.approx(9.0, abs=0.1)


def test_occluded_gap_is_bridged_as_solid():
    s, t = _dashed_line(30.0, 5.0, 65.0)  # a solid line with a 5 m hole hidden by a car
    pieces = paint_pieces(s, t, np.ones(len(s), bool))
    runs = chain_pieces(pieces)
    assert len(runs) == 1
    parts = classify_chain(runs[0], [False])  # no surface seen in the gap
    assert [p.marking for p in parts] == [MarkingKind.SOLID]
    assert parts[0].occluded_m == pytest.approx(5.0, abs=0.1)


def test_dashed_then_solid_splits_at_the_change():
    s1, t1 = _dashed_line(2.0, 4.0, 20.0)
    s2, t2 = _dashed_line(30.0, 1.0, 30.0)
    s = np.r_[s1, s2 + 24.0]
    t = np.r_[t1, t2]
    runs = chain_pieces(paint_pieces(s, t, np.ones(len(s), bool)))
    assert len(runs) == 1
    parts = classify_chain(runs[0], [True] * (len(runs[0].pieces) - 1))
    assert [p.marking for p in parts] == [MarkingKind.DASHED, MarkingKind.SOLID]
    assert parts[0].s1 == pytest.approx(parts[1].s0)


def test_double_line_stays_two_lines_and_pairs():
    s1, t1 = _dashed_line(40.0, 1.0, 40.0, t0=0.0)
    s2, t2 = _dashed_line(2.0, 4.0, 40.0, t0=0.30)
    s, t, paint = _with_asphalt(np.r_[s1, s2], np.r_[t1, t2], (0, 40), (-0.5, 0.8), 0.02)
    pieces = paint_pieces(s, t, paint)
    runs = chain_pieces(pieces)
    assert len(runs) == 2
    parts = []
    for run in runs:
        parts += classify_chain(run, [True] * (len(run.pieces) - 1))
    pairs = pair_double_lines(parts)
    assert len(pairs) == 1
    left, right = pairs[0]
    assert left.marking == MarkingKind.DASHED and right.marking == MarkingKind.SOLID
    assert left.t_mean > right.t_mean


def test_stop_bar_is_split_from_the_lines_ending_on_it():
    s1, t1 = _dashed_line(20.0, 1.0, 20.0, t0=0.0)
    bar = _grid(20.0, 20.4, -0.2, 3.5, 0.02)
    s = np.r_[s1, bar[:, 0]]
    t = np.r_[t1, bar[:, 1]]
    pieces = paint_pieces(s, t, np.ones(len(s), bool))
    bars = [p for p in pieces if p.angle_deg > 60]
    lines = [p for p in pieces if p.angle_deg < 15]
    assert len(bars) == 1 and len(lines) == 1
    assert bars[0].length_m == pytest.approx(3.7, abs=0.15)
    assert lines[0].s1 < 20.05


def test_paint_pieces_empty_and_threshold_fallback():
    assert paint_pieces(np.empty(0), np.empty(0), np.empty(0, bool)) == []
    assert paint_threshold(np.ones(5)) == 2.5


def test_arrow_kind_from_shapes():
    u = np.linspace(0, 4.5, 300)
    shaft_v = np.zeros_like(u)
    branch_u = np.linspace(2.0, 3.2, 80)
    branch_v = np.linspace(0, 0.9, 80)
    assert arrow_kind(u, shaft_v)[0] == ArrowKind.STRAIGHT
    uu, vv = np.r_[u, branch_u], np.r_[shaft_v, branch_v]
    assert arrow_kind(uu, vv)[0] == ArrowKind.STRAIGHT_LEFT
    assert arrow_kind(uu, -vv)[0] == ArrowKind.STRAIGHT_RIGHT
    short = u < 2.2
    assert arrow_kind(np.r_[u[short], branch_u], np.r_[shaft_v[short], branch_v])[0] == (
        ArrowKind.LEFT
    )


def test_yellowness_tells_yellow_from_white():
    assert yellowness(np.array([[235, 190, 40]] * 5)) > 0.6
    assert yellowness(np.array([[235, 235, 230]] * 5)) < 0.1
    assert np.isnan(yellowness(np.full((3, 3), np.nan)))


# lanes


def _line(name, t, s0=0.0, s1=50.0):
    s = np.array([s0, s1])
    return FrameLine(name, s, np.array([t, t]), np.zeros(2))


def test_lanes_between_boundaries_split_where_a_boundary_changes():
    lines = [
        _line("r", -1.75),
        _line("m1", 1.75, 0.0, 20.0),
        _line("m2", 1.75, 20.0, 50.0),
        _line("c", 5.25),
        _line("l", 8.75),
    ]
    pieces = lane_pieces(lines)
    assert len(pieces) == 5
    assert all(np.allclose(p.width, 3.5) for p in pieces)
    lane_graph(pieces, centre_t=5.25)
    forward = [p for p in pieces if not p.backward]
    backward = [p for p in pieces if p.backward]
    assert len(forward) == 4 and len(backward) == 1
    firsts = [p for p in forward if p.s[0] == 0.0]
    assert all(len(p.successors) == 1 for p in firsts)
    # the two forward lanes beside each other are neighbours
    right_first = min(firsts, key=lambda p: p.t[0])
    assert right_first.left_neighbour is not None


def test_junction_lanes_join_lanes_across_a_gap():
    lines = [
        _line("a", 0.0, 0, 20),
        _line("b", 3.5, 0, 20),
        _line("c", 0.0, 50, 70),
        _line("d", 3.5, 50, 70),
    ]
    pieces = lane_pieces(lines)
    joins = junction_lanes(pieces)
    assert len(joins) == 1
    assert joins[0].s[0] == pytest.approx(20.0) and joins[0].s[-1] == pytest.approx(50.0)


# frame and registry


def test_road_frame_round_trip_on_a_curve():
    a = np.linspace(0, np.pi / 2, 200)
    xy = np.column_stack([50 * np.cos(a), 50 * np.sin(a)])
    frame = RoadFrame.from_xy(xy)
    s = np.array([10.0, 40.0, 70.0])
    t = np.array([-3.0, 0.5, 6.0])
    x, y = frame.to_xy(s, t)
    s2, t2 = frame.project(x, y)
    assert np.allclose(s2, s, atol=0.02) and np.allclose(t2, t, atol=0.02)


def test_stage_registry_names_functions_and_options():
    assert stage("ground.lateral_road_mask").function is lateral_road_mask
    assert "markings.paint_pieces" in STAGES
    opts = default_options()
    assert opts["markings.paint_pieces"]["cell_m"] == MarkingOptions().cell_m
    with pytest.raises(KeyError, match="known"):
        stage("nope")
