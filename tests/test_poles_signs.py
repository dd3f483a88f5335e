"""Poles and signs (issue 4): unit tests on small synthetic point sets, extraction on the committed
samples and on a freshly simulated scene, the injected changes of ``urban_changed``, and the
AHN3 airborne tiles against their reference pole positions (skipped when absent).

Synthetic points are surfaces sampled on a few-centimetre grid in a local metric frame; a panel
face is bright (retro-reflective sheeting), everything else dull.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely import Polygon

from pipeline.extract import extract_map, extract_points
from pipeline.model import SignClass, SignShape
from pipeline.poles import (
    PoleOptions,
    find_poles,
    fit_circle,
    grid_components,
    height_above_ground,
)
from pipeline.signs import (
    SignOptions,
    find_signs,
    fit_panel,
    link_poles,
    panel_shape,
    sign_class,
)
from pipeline.stages import default_options, stage
from pipeline.survey import PointChunk

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "scenes"
E0, N0 = 500000.0, 3000000.0  # a place in a projected CRS, metres
DULL, BRIGHT = 1500.0, 40000.0  # intensities of ordinary surfaces and sign sheeting


# ---------------------------------------------------------------------------- synthetic scenes


def _ground(half: float = 6.0, step: float = 0.05, z: float = 0.0) -> np.ndarray:
    """A flat ground as a mobile scanner samples it (400 points per m2)."""
    g = np.mgrid[-half:half:step, -half:half:step].reshape(2, -1).T
    return np.column_stack([g, np.full(len(g), z)])


def _cylinder(x: float, y: float, r: float, height: float, step: float = 0.03) -> np.ndarray:
    n = max(12, math.ceil(2 * math.pi * r / step))
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    z = np.arange(0.0, height, step)
    aa, zz = np.meshgrid(a, z)
    return np.column_stack([x + r * np.cos(aa.ravel()), y + r * np.sin(aa.ravel()), zz.ravel()])


def _outline(shape: SignShape, w: float, h: float) -> Polygon:
    """Panel outlines as GB 5768.2 draws them (octagon with a flat top), centred at 0."""
    if shape == SignShape.CIRCLE:
        return shapely.Point(0, 0).buffer(w / 2, quad_segs=16)
    if shape == SignShape.OCTAGON:
        a = np.radians(22.5 + 45 * np.arange(8))
        r = w / 2 / math.cos(math.pi / 8)
        return Polygon(np.column_stack([r * np.cos(a), r * np.sin(a)]))
    if shape == SignShape.TRIANGLE:
        return Polygon([(-w / 2, -h / 2), (w / 2, -h / 2), (0, h / 2)])
    if shape == SignShape.INVERTED_TRIANGLE:
        return Polygon([(-w / 2, h / 2), (w / 2, h / 2), (0, -h / 2)])
    return shapely.box(-w / 2, -h / 2, w / 2, h / 2)


def _panel(
    outline: Polygon, centre: tuple[float, float, float], facing_deg: float, step: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a vertical panel face (and their (u, v) in the panel plane)."""
    x0, y0, x1, y1 = outline.bounds
    uv = np.mgrid[x0:x1:step, y0:y1:step].reshape(2, -1).T + step / 2
    uv = uv[shapely.contains_xy(outline, uv[:, 0], uv[:, 1])]
    a = math.radians(facing_deg)
    n = np.array([math.sin(a), math.cos(a)])  # azimuth clockwise from north
    u = np.array([-n[1], n[0]])  # the right of a viewer facing the panel
    xy = np.asarray(centre[:2]) + uv[:, :1] * u
    return np.column_stack([xy, centre[2] + uv[:, 1]]), uv


def _pole_with_sign(
    shape: SignShape = SignShape.CIRCLE, size: float = 0.7, facing_deg: float = 180.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Ground, a 3.5 m pole (r 0.08 m) at the origin and a panel 2.8 m up on its ``facing_deg``
    side; returns (xyz, intensity, is_face, truth)."""
    ground = _ground()
    pole = _cylinder(0.0, 0.0, 0.08, 3.5)
    a = math.radians(facing_deg)
    centre = (0.11 * math.sin(a), 0.11 * math.cos(a), 2.8)
    h = size * math.sqrt(3) / 2 if "triangle" in shape.value else size
    face, _ = _panel(_outline(shape, size, h), centre, facing_deg)
    xyz = np.vstack([ground, pole, face])
    is_face = np.r_[np.zeros(len(ground) + len(pole), bool), np.ones(len(face), bool)]
    intensity = np.where(is_face, BRIGHT, DULL)
    return xyz, intensity, is_face, {"centre": centre, "width": size, "height": h}


# ---------------------------------------------------------------------------- unit tests


def test_grid_components_and_circle_fit():
    labels = grid_components(np.array([[0, 0, 0], [1, 1, 1], [3, 3, 3], [4, 4, 4], [9, 0, 0]]))
    assert labels[0] == labels[1] and labels[2] == labels[3]
    assert len(set(labels.tolist())) == 3
    a = np.linspace(0.2, 2.2, 40)  # a 115 degree arc
    cx, cy, r, rms = fit_circle(np.column_stack([5 + 0.1 * np.cos(a), -3 + 0.1 * np.sin(a)]))
    assert (cx, cy, r) == pytest.approx((5.0, -3.0, 0.1), abs=1e-6) and rms < 1e-6


def test_height_above_ground_ignores_a_low_outlier_and_steps_onto_a_curb():
    ground = _ground(3.0)
    ground[:, 2] = np.where(ground[:, 1] > 1.0, 0.15, 0.0)  # a sidewalk 15 cm up
    top = np.array([[0.0, 2.0, 3.15]])  # 3 m above the sidewalk
    outlier = np.array([[0.02, 2.02, -8.0]])
    h = height_above_ground(np.vstack([ground, top, outlier]))
    assert h[len(ground)] == pytest.approx(3.0, abs=0.16)
    assert np.all(np.abs(h[: len(ground)]) <= 0.16)


def test_pole_carrying_a_disc_panel():
    xyz, intensity, _, truth = _pole_with_sign(SignShape.CIRCLE, 0.7, facing_deg=180.0)
    poles = find_poles(xyz)
    assert len(poles) == 1
    pole = poles[0]
    assert math.hypot(pole.x, pole.y) < 0.02
    assert pole.z == pytest.approx(0.0, abs=0.02)
    assert pole.height_m == pytest.approx(3.5, abs=0.1)
    assert pole.radius_m == pytest.approx(0.08, abs=0.015)
    h = height_above_ground(xyz)
    above = h >= 1.0
    viewer = np.tile([0.0, -8.0, 2.2], (int(above.sum()), 1))  # the scanner south of the sign
    panels = find_signs(xyz[above], h[above], intensity[above], viewer=viewer, poles=poles)
    assert len(panels) == 1
    p = panels[0]
    assert p.shape == SignShape.CIRCLE and not p.seen_from_back
    assert np.linalg.norm(np.subtract(p.centre, truth["centre"])) < 0.03
    assert abs((p.facing_deg - 180.0 + 180) % 360 - 180) < 2.0
    assert p.width_m == pytest.approx(0.7, abs=0.05) and p.height_m == pytest.approx(0.7, abs=0.05)
    assert link_poles(panels, poles) == [0]
    # the class of a circle needs its colour: none, a red ring, a blue disc
    assert sign_class(p.shape) == SignClass.UNKNOWN
    ring = np.array([[200, 30, 35]] * 40 + [[240, 240, 240]] * 60)
    assert sign_class(p.shape, ring) == SignClass.PROHIBITION
    assert sign_class(p.shape, np.array([[30, 80, 180]] * 50)) == SignClass.MANDATORY


@pytest.mark.parametrize(
    ("shape", "size", "expected_class"),
    [
        (SignShape.TRIANGLE, 0.8, SignClass.WARNING),
        (SignShape.INVERTED_TRIANGLE, 0.8, SignClass.YIELD),
        (SignShape.OCTAGON, 0.7, SignClass.STOP),
        (SignShape.RECTANGLE, 2.2, SignClass.GUIDE),
        (SignShape.CIRCLE, 0.6, SignClass.UNKNOWN),
    ],
)
def test_panel_shape_size_and_class(shape, size, expected_class):
    h = size * math.sqrt(3) / 2 if "triangle" in shape.value else (1.3 if size > 2 else size)
    face, uv = _panel(_outline(shape, size, h), (E0, N0, 3.0), facing_deg=73.0)
    rng = np.random.default_rng(7)
    face += rng.normal(0, 0.004, face.shape)  # range noise
    # the face seen from the east-north-east
    p = fit_panel(face, toward_xy=np.array([1.0, 0.3]))
    assert p is not None and p.shape == shape
    assert p.facing_deg == pytest.approx(73.0, abs=1.0)
    assert p.width_m == pytest.approx(size, abs=0.06) and p.height_m == pytest.approx(h, abs=0.06)
    assert np.linalg.norm(np.subtract(p.centre, (E0, N0, 3.0))) < 0.03
    assert panel_shape(uv)[0] == shape  # the outline alone, in the panel plane
    assert sign_class(p.shape) == expected_class


def test_a_sparse_far_triangle_is_still_a_triangle():
    # about 25 points on a 0.75 m triangle (a panel 14 m away), where the fill ratio misleads
    face, _ = _panel(_outline(SignShape.TRIANGLE, 0.75, 0.65), (0.0, 0.0, 2.6), 90.0, step=0.1)
    assert 15 <= len(face) <= 40
    p = fit_panel(face, toward_xy=np.array([1.0, 0.0]), options=SignOptions(min_points=10))
    assert p is not None and p.shape == SignShape.TRIANGLE


def test_tree_is_not_a_pole():
    rng = np.random.default_rng(3)
    trunk = _cylinder(0.0, 0.0, 0.13, 2.7)
    # the crown's shell (the half toward the scanner south of it is what a drive-by sees)
    d = rng.normal(size=(40000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    crown = d * [1.9, 1.9, 1.4] + [0.0, 0.0, 2.7 + 1.1]
    crown = crown[crown[:, 1] < 0.3]
    xyz = np.vstack([_ground(), trunk, crown])
    assert find_poles(xyz) == []


def test_car_and_person_are_not_poles():
    def box(cx: float, cy: float, dx: float, dy: float, dz: float, step: float = 0.04):
        gx, gy, gz = (np.arange(-d / 2, d / 2 + 1e-9, step) for d in (dx, dy, dz))
        faces = []
        for x in (-dx / 2, dx / 2):
            yy, zz = np.meshgrid(gy, gz)
            faces.append(np.column_stack([np.full(yy.size, x), yy.ravel(), zz.ravel() + dz / 2]))
        for y in (-dy / 2, dy / 2):
            xx, zz = np.meshgrid(gx, gz)
            faces.append(np.column_stack([xx.ravel(), np.full(xx.size, y), zz.ravel() + dz / 2]))
        xx, yy = np.meshgrid(gx, gy)
        faces.append(np.column_stack([xx.ravel(), yy.ravel(), np.full(xx.size, dz)]))
        return np.vstack(faces) + np.array([cx, cy, 0.0])

    car = box(-2.0, 0.0, 4.5, 1.8, 1.5)
    person = box(2.5, 2.0, 0.4, 0.5, 1.75)
    assert find_poles(np.vstack([_ground(), car, person])) == []


def test_empty_input():
    assert find_poles(np.empty((0, 3))) == []
    assert find_signs(np.empty((0, 3)), np.empty(0), np.empty(0)) == []
    assert link_poles([], []) == []


def test_panel_seen_from_its_back_on_a_pole():
    """A sign for the other direction: only its dull back was scanned, from the north."""
    xyz, _, _, _ = _pole_with_sign(SignShape.OCTAGON, 0.8, facing_deg=180.0)
    intensity = np.full(len(xyz), DULL)
    poles = find_poles(xyz)
    h = height_above_ground(xyz)
    above = h >= 1.0
    viewer = np.tile([0.0, 9.0, 2.2], (int(above.sum()), 1))
    assert find_signs(xyz[above], h[above], intensity[above], viewer=viewer) == []
    panels = find_signs(xyz[above], h[above], intensity[above], viewer=viewer, poles=poles)
    assert len(panels) == 1
    p = panels[0]
    assert p.seen_from_back and p.shape == SignShape.OCTAGON
    assert abs((p.facing_deg - 180.0 + 180) % 360 - 180) < 2.0  # the face looks away from us


def test_stages_are_registered_with_their_options():
    assert stage("poles.find_poles").options is PoleOptions
    assert stage("signs.find_signs").options is SignOptions
    defaults = default_options()
    assert defaults["poles.find_poles"]["min_height_m"] == 2.2
    assert defaults["signs.find_signs"]["retro_ratio"] == 5.0


def test_extraction_with_and_without_point_rgb():
    """A road-less patch with one prohibition sign: the point RGB decides the circle's class;
    without RGB or an orthophoto it is unknown and a warning says so."""
    xyz, intensity, is_face, _ = _pole_with_sign(SignShape.CIRCLE, 0.8, facing_deg=200.0)
    xyz = xyz + np.array([E0, N0, 5.0])
    # grey points; on the face a red ring around a white disc
    rgb = np.full((len(xyz), 3), 120 * 256, np.uint16)
    a = math.radians(200.0)
    centre = np.array([E0 + 0.11 * math.sin(a), N0 + 0.11 * math.cos(a), 7.8])
    inner = np.linalg.norm(xyz - centre, axis=1) <= 0.4 * 0.78
    rgb[is_face & ~inner] = np.array([200, 30, 35]) * 256
    rgb[is_face & inner] = np.array([240, 240, 240]) * 256
    points = PointChunk(xyz, intensity=intensity.astype(np.uint16), rgb=rgb)
    with_rgb = extract_points(points, crs="EPSG:4549", survey_id="rgb")
    assert len(with_rgb.model.poles) == 1 and len(with_rgb.model.signs) == 1
    sign = with_rgb.model.signs[0]
    assert sign.sign_class == SignClass.PROHIBITION and sign.shape == SignShape.CIRCLE
    assert sign.pole == with_rgb.model.poles[0].id
    grey = extract_points(
        PointChunk(xyz, intensity=points.intensity), crs="EPSG:4549", survey_id="g"
    )
    assert grey.model.signs[0].sign_class == SignClass.UNKNOWN
    assert any("class unknown" in w for w in grey.warnings)
    assert {"poles", "signs"} <= set(grey.timings)


def test_no_vertical_objects_gives_a_warning():
    rng = np.random.default_rng(11)
    xy = rng.uniform([0, 0], [40, 12], (30_000, 2))
    xyz = np.column_stack([xy + np.array([E0, N0]), 5.0 + rng.normal(0, 0.005, len(xy))])
    points = PointChunk(xyz, intensity=rng.integers(900, 1100, len(xy)).astype(np.uint16))
    result = extract_points(points, crs="EPSG:4549", survey_id="flat")
    assert result.model.poles == () and result.model.signs == ()
    assert any("no vertical objects" in w for w in result.warnings)


def test_sparse_airborne_density_still_builds():
    """16 points per square metre from above: a pole shows a handful of points; the survey
    builds (whatever it finds) and nothing is invented from the ground."""
    rng = np.random.default_rng(12)
    xy = rng.uniform([0, 0], [50, 50], (40_000, 2))
    ground = np.column_stack([xy, 0.02 * xy[:, 0] + rng.normal(0, 0.02, len(xy))])
    hits = np.column_stack([rng.normal(25, 0.05, (8, 2)), rng.uniform(1, 8, 8) + 0.5])
    xyz = np.vstack([ground, hits]) + np.array([E0, N0, 0.0])
    intensity = rng.integers(20, 200, len(xyz)).astype(np.uint16)
    result = extract_points(PointChunk(xyz, intensity=intensity), crs="EPSG:28992", survey_id="a")
    assert result.model.signs == ()
    assert len(result.model.poles) <= 1


# ---------------------------------------------------------------------------- committed samples


def _score(truth_path: Path, model, region=None):
    from formats.gpkg import read_gpkg
    from qa.score import score_maps

    return score_maps(read_gpkg(truth_path), model, layers=["poles", "signs"], region=region)


@pytest.fixture(scope="module")
def urban_maps():
    """The urban sample and its changed re-survey, extracted with their trajectories."""
    out = {}
    for name in ("urban", "urban_changed"):
        folder = SAMPLES / name
        out[name] = extract_map([folder / "survey.laz"], trajectory=folder / "trajectory.csv")
    return out


@pytest.mark.slow
def test_urban_sample_poles_and_signs(urban_maps):
    result = urban_maps["urban"]
    report = _score(SAMPLES / "urban" / "truth.gpkg", result.model)
    poles, signs = report.layer("poles"), report.layer("signs")
    # reached: every pole and sign, poles 0.034 m and signs 0.044 m RMSE, heights 0.015 m RMS
    assert poles.precision == 1.0 and poles.recall == 1.0
    assert poles.rmse_2d_m <= 0.10 and poles.height_rms_m <= 0.3
    assert signs.precision == 1.0 and signs.recall == 1.0
    assert signs.rmse_3d_m <= 0.10 and signs.shape_accuracy == 1.0
    # the two circles (prohibition, mandatory) need colour the survey does not hold: 5 of 7
    assert signs.class_accuracy == pytest.approx(5 / 7)
    assert all(s.pole for s in result.model.signs)
    assert not any("vertical" in w for w in result.warnings)


def _near(features, anchor, radius_m: float = 0.5) -> list:
    return [f for f in features if math.dist(f.geometry.coords[0][:2], anchor[:2]) <= radius_m]


def _changes() -> dict[str, dict]:
    records = json.loads((SAMPLES / "urban_changed" / "changes.json").read_text())
    return {f"{r['change']}:{r['layer']}": r for r in records}


@pytest.mark.slow
def test_urban_changes_removed_sign_and_pole_are_visible(urban_maps):
    before, after = urban_maps["urban"].model, urban_maps["urban_changed"].model
    changes = _changes()
    gone_sign = changes["deleted:signs"]["anchor"]
    assert len(_near(before.signs, gone_sign)) == 1 and _near(after.signs, gone_sign) == []
    # its pole stays
    assert _near(before.poles, gone_sign) and _near(after.poles, gone_sign)
    gone_pole = changes["deleted:poles"]["anchor"]
    assert len(_near(before.poles, gone_pole)) == 1 and _near(after.poles, gone_pole) == []
    # the new sign's host pole is found in both surveys
    added = changes["inserted:signs"]["anchor"]
    assert _near(before.poles, added) and _near(after.poles, added)
    # every other sign is found in both, at the same place within 0.1 m
    others = [s for s in before.signs if not _near([s], gone_sign)]
    for s in others:
        (twin,) = _near(after.signs, s.geometry.coords[0], 0.1)
        assert twin.shape == s.shape


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="the simulator adds the sign to a pole on the far (left) side facing the approaching "
    "vehicle, but the scanner's left half-profile looks backward (yaw 30 deg): its face is never "
    "scanned and its back shows some 20-30 points beside a 0.23 m lamp pole",
)
def test_urban_changes_added_sign_is_visible(urban_maps):
    added = _changes()["inserted:signs"]["anchor"]
    assert _near(urban_maps["urban_changed"].model.signs, added)


# ---------------------------------------------------------------------------- a fresh scene


def _colourise(scene, xyz: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Point RGB as a calibrated camera would give it: the colour of the surface each point
    lies on (points 1 m or more above the ground only; the rest stay black = no colour). A
    camera sees a panel's face, not the back sheet 1.5 cm behind it, which the navigation error
    would otherwise make the nearer surface for some face points."""
    import dataclasses

    import open3d as o3d

    from data_samples.simulator.scanner import build_raycasting_scene
    from data_samples.simulator.scene import MATERIALS

    scene = dataclasses.replace(
        scene, surfaces=tuple(s for s in scene.surfaces if s.material != "sign_back")
    )
    rc, table = build_raycasting_scene(scene)
    rgb = np.zeros((len(xyz), 3), np.uint16)
    idx = np.flatnonzero(height >= 1.0)
    local = (xyz[idx] - np.asarray(scene.origin)).astype(np.float32)
    gid = rc.compute_closest_points(o3d.core.Tensor(local))["geometry_ids"].numpy()
    colours = np.array(
        [s.rgb or MATERIALS[s.material].rgb for s in scene.surfaces], dtype=np.uint16
    )
    rgb[idx] = colours[table[np.minimum(gid, len(table) - 1)]] * 256
    return rgb


@pytest.mark.slow
def test_fresh_urban_seed_meets_the_targets(tmp_path):
    """A scene no other test sees (about a minute): simulate, extract, score; then the same
    points colourised as by a camera decide the circles' classes too."""
    from data_samples.simulator import build_scene
    from data_samples.simulator.simulate import simulate
    from pipeline.survey import read_points
    from pipeline.trajectory import read_trajectory
    from qa.accuracy_record import scanned_region

    kind, seed = "urban", 90417
    simulate(kind, seed, tmp_path, length_m=100.0, ortho=False)
    result = extract_map([tmp_path / "survey.laz"], trajectory=tmp_path / "trajectory.csv")
    full = _score(tmp_path / "truth.gpkg", result.model)
    assert full.layer("poles").precision == 1.0
    # one lamp pole of 12 stands where no pulse reached (left of the road past the drive's end,
    # behind the backward-looking half of the scan plane): recall 11/12 on the whole truth
    assert full.layer("poles").recall >= 11 / 12 - 1e-9
    report = _score(tmp_path / "truth.gpkg", result.model, scanned_region(tmp_path / "survey.laz"))
    poles, signs = report.layer("poles"), report.layer("signs")
    assert poles.precision >= 0.95 and poles.recall >= 0.95
    assert poles.rmse_2d_m <= 0.10 and poles.height_rms_m <= 0.3
    assert signs.precision >= 0.95 and signs.recall >= 0.95
    assert signs.rmse_3d_m <= 0.10 and signs.shape_accuracy >= 0.95
    assert signs.class_accuracy >= 5 / 7 - 1e-9  # circles unknown without colour

    points = read_points(tmp_path / "survey.laz")
    height = height_above_ground(points.xyz)
    scene = build_scene(kind, seed, length_m=100.0)
    coloured = PointChunk(
        points.xyz,
        intensity=points.intensity,
        gps_time=points.gps_time,
        scan_angle_deg=points.scan_angle_deg,
        rgb=_colourise(scene, points.xyz, height),
    )
    result = extract_points(
        coloured,
        crs="EPSG:4549",
        survey_id="coloured",
        trajectory=read_trajectory(tmp_path / "trajectory.csv"),
    )
    signs = _score(tmp_path / "truth.gpkg", result.model).layer("signs")
    assert signs.class_accuracy >= 0.90


# ---------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_ahn3_amsterdam_poles(real_data_dir):
    """Airborne AHN3 (about 20 points per m2, EPSG:28992, no CRS in the files) through the real
    build: the sparse-survey pole detector, scored against the reference lamp posts and sign
    posts within 1 m (trees are references too, and must not be found). Reached: 6 of 23 posts
    (5 of 13 lamp posts), 8 found, no tree; most posts show fewer than three points above 1 m."""
    import csv

    from qa.score import match_points

    folder = real_data_dir / "ahn3_amsterdam"
    if not (folder / "custom_poles_demo.csv").exists():
        pytest.skip("ahn3_amsterdam is absent")
    with open(folder / "custom_poles_demo.csv", newline="") as f:
        refs = [(r["bgt_type"], float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    found = matched = lamps = on_trees = 0
    for tile in ("ahn_2386_9702", "ahn_2397_9705"):
        result = extract_map([folder / f"{tile}.laz"], crs="EPSG:28992")
        assert result.parameters["pole_method"] == "sparse"
        x0, y0 = (float(v) * 50 for v in tile.split("_")[1:])  # tile code: corner / 50 m
        inside = [r for r in refs if x0 <= r[1] <= x0 + 50 and y0 <= r[2] <= y0 + 50]
        posts = [r for r in inside if r[0] != "boom"]
        trees = np.array([r[1:] for r in inside if r[0] == "boom"]).reshape(-1, 2)
        pred = np.array([p.geometry.coords[0][:2] for p in result.model.poles]).reshape(-1, 2)
        pairs = match_points(np.array([r[1:] for r in posts]).reshape(-1, 2), pred, 1.0)
        found += len(pred)
        matched += len(pairs)
        lamps += sum(posts[i][0] == "lichtmast" for i, _ in pairs)
        rest = np.delete(pred, [j for _, j in pairs], axis=0)
        on_trees += len(match_points(trees, rest, 1.0))
    assert on_trees == 0
    assert matched >= 5 and lamps >= 4
    assert matched / found >= 0.7
