"""Reference-line geometry: continuity, clothoid accuracy, offsets and projection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import fresnel

from pipeline.refline import Arc, Line, ReferenceLine, Spiral


@pytest.fixture(scope="module")
def mixed() -> ReferenceLine:
    return ReferenceLine(
        512.3,
        -77.1,
        0.7,
        (
            Line(25.0),
            Spiral(40.0, 0.0, 1 / 60),
            Arc(35.0, 1 / 60),
            Spiral(30.0, 1 / 60, -1 / 45),
            Arc(20.0, -1 / 45),
            Spiral(25.0, -1 / 45, 0.0),
            Line(40.0),
            Spiral(30.0, 0.0, 1 / 30),
            Arc(15.0, 1 / 30),
        ),
    )


def test_length_is_the_sum_of_segments(mixed):
    assert mixed.length == pytest.approx(260.0, abs=1e-12)
    assert mixed.segment_starts[-1] == pytest.approx(mixed.length)


def test_positions_and_headings_are_continuous_at_joints(mixed):
    joints = mixed.segment_starts[1:-1]
    before = np.nextafter(joints, -np.inf)
    xa, ya, ha, _ = mixed.evaluate(before)
    xb, yb, hb, _ = mixed.evaluate(joints)
    assert np.hypot(xa - xb, ya - yb).max() < 1e-9
    assert np.abs(ha - hb).max() < 1e-12


def test_start_pose_is_the_given_one(mixed):
    x, y, h, _ = mixed.evaluate(np.array([0.0]))
    assert (x[0], y[0], h[0]) == (512.3, -77.1, 0.7)


def test_clothoid_curvature_is_linear_and_matches_heading_rate():
    line = ReferenceLine(0.0, 0.0, 0.0, (Spiral(300.0, 0.002, 1 / 30),))
    s = np.linspace(0.0, 300.0, 601)
    _, _, h, k = line.evaluate(s)
    expected = 0.002 + (1 / 30 - 0.002) * s / 300.0
    assert np.abs(k - expected).max() < 1e-15
    rate = np.gradient(h, s)
    assert np.abs(rate[1:-1] - k[1:-1]).max() < 1e-9


def test_clothoid_matches_fresnel_integrals_over_300_m():
    length, k_end = 300.0, 1 / 30
    line = ReferenceLine(0.0, 0.0, 0.0, (Spiral(length, 0.0, k_end),))
    s = np.linspace(0.0, length, 1201)
    x, y, _, _ = line.evaluate(s)
    a = math.sqrt(math.pi * length / k_end)
    fs, fc = fresnel(s / a)
    assert np.hypot(x - a * fc, y - a * fs).max() < 1e-3  # brief: < 1 mm; in practice ~1e-12 m
    assert np.hypot(x - a * fc, y - a * fs).max() < 1e-9


def test_arc_points_lie_on_their_circle():
    r = 80.0
    line = ReferenceLine(10.0, 20.0, 0.3, (Arc(200.0, -1 / r),))
    x, y, _, _ = line.evaluate(np.linspace(0.0, 200.0, 101))
    cx, cy = 10.0 + r * math.sin(0.3), 20.0 - r * math.cos(0.3)  # centre to the right
    assert np.abs(np.hypot(x - cx, y - cy) - r).max() < 1e-9


def test_offset_points_are_at_distance_t_along_the_normal(mixed):
    s = np.linspace(0.0, mixed.length, 50)
    t = np.full(50, -3.5)
    px, py = mixed.offset_points(s, t)
    x, y, h, _ = mixed.evaluate(s)
    assert np.hypot(px - x, py - y) == pytest.approx(np.full(50, 3.5))
    # right of the travel direction for negative t
    cross = np.cos(h) * (py - y) - np.sin(h) * (px - x)
    assert (cross < 0).all()


def test_project_inverts_offset_points_within_a_millimetre(mixed):
    rng = np.random.default_rng(0)
    s = rng.uniform(0.0, mixed.length, 5000)
    t = rng.uniform(-15.0, 15.0, 5000)
    x, y = mixed.offset_points(s, t)
    s2, t2 = mixed.project(x, y)
    assert np.abs(s2 - s).max() < 1e-3
    assert np.abs(t2 - t).max() < 1e-3


def test_project_keeps_the_input_shape(mixed):
    s, t = mixed.project(np.zeros((2, 3)) + 512.3, np.zeros((2, 3)) - 77.1)
    assert s.shape == t.shape == (2, 3)
    assert np.abs(s).max() < 1e-6


def test_sample_spacing_and_ends(mixed):
    s, x, y, _ = mixed.sample(0.5)
    assert s[0] == 0.0 and s[-1] == pytest.approx(mixed.length)
    assert np.diff(s).max() <= 0.5 + 1e-12
    chords = np.hypot(np.diff(x), np.diff(y))
    assert np.abs(chords - np.diff(s)).max() < 1e-4  # chord ~ arc on gentle curves


def test_empty_line_evaluates_to_its_start():
    line = ReferenceLine(1.0, 2.0, 0.5, ())
    x, y, h, _ = line.evaluate(np.array([0.0, 5.0]))
    assert x.tolist() == [1.0, 1.0] and y.tolist() == [2.0, 2.0] and h.tolist() == [0.5, 0.5]
    assert line.sample(1.0)[0].tolist() == [0.0]


def test_negative_segment_length_is_refused():
    with pytest.raises(ValueError, match="length"):
        ReferenceLine(0.0, 0.0, 0.0, (Line(-1.0),))


def test_equal_lines_compare_equal():
    a = ReferenceLine(0.0, 0.0, 0.0, (Line(1.0), Arc(2.0, 0.1)))
    b = ReferenceLine(0.0, 0.0, 0.0, (Line(1.0), Arc(2.0, 0.1)))
    assert a == b and hash(a) == hash(b)
