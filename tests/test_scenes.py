"""The simulated world: scene kinds, marking rules, exact truth, meshes and the changed variant."""

from __future__ import annotations

import json
import math

import numpy as np
import pyproj
import pytest
import shapely
from matplotlib.tri import LinearTriInterpolator, Triangulation
from pyproj import Transformer
from shapely import LineString, Polygon

from data_samples.simulator import apply_changes, build_scene
from data_samples.simulator.meshes import is_closed
from data_samples.simulator.scene import MATERIALS
from data_samples.simulator.scenes import HEIGHT_DATUM, road_frame
from pipeline.model import Color, Direction, MarkingKind, SignShape

# seeds chosen to cover both medians (double yellow / barrier, concrete / guardrail),
# both parked-car sides and both dash rules
CASES = [
    ("urban", 0),
    ("urban", 1),
    ("arterial", 1),
    ("arterial", 2),
    ("highway", 0),
    ("highway", 2),
]
_CACHE: dict = {}
CLOSED_MATERIALS = {
    "car_body",
    "person",
    "pole_metal",
    "tree_trunk",
    "foliage",
    "barrier_concrete",
    "guardrail",
}


def scene_of(kind: str, seed: int):
    if (kind, seed) not in _CACHE:
        _CACHE[(kind, seed)] = build_scene(kind, seed)
    return _CACHE[(kind, seed)]


@pytest.fixture(params=CASES, ids=[f"{k}-{s}" for k, s in CASES])
def scene(request):
    return scene_of(*request.param)


def local(geometry, scene) -> np.ndarray:
    xyz = shapely.get_coordinates(geometry, include_z=True)
    return xyz - np.asarray(scene.origin)


def test_scene_basics(scene):
    assert scene.crs == "EPSG:4549" and scene.truth.crs == "EPSG:4549"
    assert scene.truth.height_datum == HEIGHT_DATUM == pyproj.CRS("EPSG:5737").name
    lon, lat = Transformer.from_crs("EPSG:4549", "EPSG:4326", always_xy=True).transform(
        *scene.origin[:2]
    )
    assert abs(lon - 120.36) < 0.05 and abs(lat - 31.59) < 0.05
    assert 4.0 <= scene.origin[2] <= 6.0
    expected = {"urban": (120, 7.0), "arterial": (220, 9.0), "highway": (250, 15.0)}[scene.kind]
    assert scene.metadata["length_m"] == expected[0] and scene.speed_mps == expected[1]
    json.dumps(scene.metadata)  # the record is plain data
    counts = scene.truth.counts()
    for layer in ("lane_boundaries", "lanes", "road_edges", "poles", "signs"):
        assert counts[layer] > 0, layer
    if scene.kind != "highway":
        for layer in ("stop_lines", "crosswalks", "road_arrows", "junctions"):
            assert counts[layer] > 0, layer


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match="urban, arterial, highway"):
        build_scene("rural", 1)


def test_lane_widths_equal_the_distance_between_their_boundaries(scene):
    bounds = {
        b.id: LineString(local(b.geometry, scene)[:, :2]) for b in scene.truth.lane_boundaries
    }
    checked = 0
    for lane in scene.truth.lanes:
        if lane.left_boundary is None:
            assert lane.junction is not None  # only junction connectors lack boundaries
            continue
        left, right = bounds[lane.left_boundary], bounds[lane.right_boundary]
        for (x, y, _), width in zip(local(lane.geometry, scene), lane.widths_m, strict=True):
            p = shapely.Point(x, y)
            dl, dr = left.distance(p), right.distance(p)
            assert abs(dl + dr - width) < 0.01
            assert abs(dl - dr) < 0.01
            checked += 1
    assert checked > 20


def test_lane_vertex_spacing_and_direction(scene):
    path = scene.drive_path
    for lane in scene.truth.lanes:
        xyz = local(lane.geometry, scene)
        assert np.hypot(*np.diff(xyz[:, :2], axis=0).T).max() <= 2.0 + 1e-6
        assert lane.direction == Direction.FORWARD
    for b in scene.truth.lane_boundaries:
        xyz = local(b.geometry, scene)
        assert np.hypot(*np.diff(xyz[:, :2], axis=0).T).max() <= 1.0 + 1e-6
    # the lane under the vehicle is digitised in its travel direction
    p0 = path.xyz[len(path.xyz) // 4]
    nearest = min(
        scene.truth.lanes,
        key=lambda ln: LineString(local(ln.geometry, scene)[:, :2]).distance(shapely.Point(p0[:2])),
    )
    xyz = local(nearest.geometry, scene)
    d = xyz[-1, :2] - xyz[0, :2]
    h = path.heading_rad[len(path.xyz) // 4]
    assert d @ np.array([math.cos(h), math.sin(h)]) > 0


def test_dash_patterns_follow_the_design_speed_rule(scene):
    expected = {"urban": (2.0, 4.0), "highway": (6.0, 9.0)}.get(scene.kind)
    if expected is None:
        expected = (6.0, 9.0) if scene.metadata["design_speed_kmh"] >= 60 else (2.0, 4.0)
    dashed = [b for b in scene.truth.lane_boundaries if b.marking == MarkingKind.DASHED]
    assert dashed
    frame = road_frame(scene.kind, scene.seed)
    for b in dashed:
        assert (b.dash_length_m, b.gap_length_m) == expected
        assert b.color == Color.WHITE
        patches = [p for p in scene.paint if p.feature_id == b.id]
        spans = []
        for p in patches:
            ring = np.asarray(p.polygon.exterior.coords)
            s, _ = frame.line.project(ring[:, 0], ring[:, 1])
            spans.append((s.min(), s.max()))
        spans.sort()
        if len(spans) < 3:
            continue  # a stub at the scene's end
        lengths = np.array([e - a for a, e in spans])
        gaps = np.array([spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1)])
        assert np.abs(lengths[1:-1] - expected[0]).max() < 0.01
        assert np.abs(gaps - expected[1]).max() < 0.01


def test_centre_and_edge_line_colours(scene):
    kinds = {(b.marking, b.color) for b in scene.truth.lane_boundaries}
    if scene.metadata["median"] == "double_yellow":
        doubles = [b for b in scene.truth.lane_boundaries if b.marking == MarkingKind.DOUBLE_SOLID]
        assert doubles and all(b.color == Color.YELLOW for b in doubles)
        for b in doubles:
            patches = [p for p in scene.paint if p.feature_id == b.id]
            assert patches and all(p.material == "paint_yellow" for p in patches)
    else:
        assert (MarkingKind.SOLID, Color.YELLOW) in kinds
    assert (MarkingKind.SOLID, Color.WHITE) in kinds
    for b in scene.truth.lane_boundaries:
        assert b.width_m == 0.15
        if b.marking != MarkingKind.DASHED:
            assert b.dash_length_m is None


def test_guide_zone_turns_lane_lines_solid_before_the_stop_line(scene):
    if scene.kind == "highway":
        pytest.skip("no junction")
    frame = road_frame(scene.kind, scene.seed)
    s_stop = scene.metadata["stop_line_s_m"][0]
    forward_solid_white = []
    for b in scene.truth.lane_boundaries:
        xyz = local(b.geometry, scene)
        s, t = frame.line.project(xyz[:, 0], xyz[:, 1])
        if (
            b.marking == MarkingKind.SOLID
            and b.color == Color.WHITE
            and t.mean() < 0
            and abs(abs(t.mean()) - scene.metadata["edge_line_offset_m"]) > 0.5
            and s.max() < s_stop
        ):
            forward_solid_white.append(s.max() - s.min())
    assert len(forward_solid_white) == scene.metadata["lanes_per_direction"] - 1
    gz = scene.metadata["guide_zone_m"][0]
    assert all(abs(length - gz) < 0.05 for length in forward_solid_white)


def test_every_reference_resolves(scene):
    truth = scene.truth
    boundary_ids = {b.id for b in truth.lane_boundaries}
    lanes = {ln.id: ln for ln in truth.lanes}
    for ln in truth.lanes:
        for ref in (ln.left_boundary, ln.right_boundary):
            assert ref is None or ref in boundary_ids
        for ref in (*ln.predecessors, *ln.successors, ln.left_neighbour, ln.right_neighbour):
            assert ref is None or ref in lanes
        for succ in ln.successors:
            assert ln.id in lanes[succ].predecessors
        if ln.left_neighbour:
            assert lanes[ln.left_neighbour].right_neighbour == ln.id
    poles = {p.id for p in truth.poles}
    assert all(s.pole in poles for s in truth.signs)
    for j in truth.junctions:
        assert j.lanes and all(lanes[i].junction == j.id for i in j.lanes)
    if truth.junctions:  # through lanes link the approach to the exit
        assert any(ln.predecessors and ln.successors for ln in truth.lanes if ln.junction)


def test_paint_lies_on_the_road_and_under_its_truth(scene):
    frame = road_frame(scene.kind, scene.seed)
    edge = scene.metadata["road_edge_offset_m"]
    by_feature: dict[str, list[Polygon]] = {}
    for p in scene.paint:
        assert p.material in ("paint_white", "paint_yellow") and 0.0 <= p.wear <= 0.6
        assert p.polygon.is_valid and p.polygon.area > 0.01
        ring = np.asarray(p.polygon.exterior.coords)
        _, t = frame.line.project(ring[:, 0], ring[:, 1])
        assert np.abs(t).max() < edge
        by_feature.setdefault(p.feature_id, []).append(p.polygon)
    truth_ids = {f.id for f in scene.truth.features()}
    assert set(by_feature) <= truth_ids
    for b in scene.truth.lane_boundaries:
        line = LineString(local(b.geometry, scene)[:, :2])
        union = shapely.union_all(by_feature[b.id])
        if b.marking == MarkingKind.SOLID:
            assert line.difference(union.buffer(1e-3)).length < 1e-6
        elif b.marking == MarkingKind.DOUBLE_SOLID:
            assert line.distance(union) == pytest.approx(0.075, abs=2e-3)
            assert line.difference(union.buffer(0.076)).length < 1e-6
        else:
            share = line.intersection(union.buffer(1e-3)).length / line.length
            period = b.dash_length_m + b.gap_length_m
            assert abs(share - b.dash_length_m / period) < 1.5 * period / line.length + 0.01
    for f in (*scene.truth.stop_lines, *scene.truth.road_arrows, *scene.truth.crosswalks):
        union = shapely.union_all(by_feature[f.id])
        geom = shapely.force_2d(
            shapely.transform(f.geometry, lambda c: c - np.asarray(scene.origin[:2]))
        )
        if f.layer == "stop_lines":
            assert geom.difference(union.buffer(1e-3)).length < 1e-6
        elif f.layer == "road_arrows":
            assert union.symmetric_difference(geom).area < 0.01 * geom.area
        else:
            assert union.difference(geom.buffer(1e-3)).area < 1e-6 and union.area > 0.35 * geom.area


def test_truth_heights_lie_on_the_road_surface(scene):
    road = next(s for s in scene.surfaces if s.name == "road")
    v = road.vertices
    surface = LinearTriInterpolator(Triangulation(v[:, 0], v[:, 1], road.triangles), v[:, 2])
    for layer in ("lane_boundaries", "stop_lines", "lanes"):
        for f in scene.truth.layer(layer):
            xyz = local(f.geometry, scene)
            xyz = (0.999 * xyz[1:] + 0.001 * xyz[:-1])[::3]  # off the mesh's outer edges
            z = surface(xyz[:, 0], xyz[:, 1])
            assert not np.ma.is_masked(z), f.id
            assert np.abs(z - xyz[:, 2]).max() < 0.002, f.id


def test_surfaces_are_valid_meshes(scene):
    total = 0
    names = set()
    for s in scene.surfaces:
        assert s.material in MATERIALS
        assert s.name not in names
        names.add(s.name)
        assert s.vertices.dtype == np.float64 and s.vertices.ndim == 2 and s.vertices.shape[1] == 3
        assert s.triangles.dtype == np.int32 and s.triangles.shape[1] == 3 and len(s.triangles)
        assert np.isfinite(s.vertices).all()
        assert s.triangles.min() >= 0 and s.triangles.max() < len(s.vertices)
        a, b, c = (s.vertices[s.triangles[:, i]] for i in range(3))
        assert (np.linalg.norm(np.cross(b - a, c - a), axis=1) > 1e-10).all(), s.name
        if s.material in CLOSED_MATERIALS:
            assert is_closed(s.triangles), s.name
            volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
            assert volume > 0, s.name  # outward winding
        total += len(s.triangles)
    assert total < 300_000


def test_ground_faces_up_and_curbs_face_the_road(scene):
    frame = road_frame(scene.kind, scene.seed)
    for s in scene.surfaces:
        v, t = s.vertices, s.triangles
        n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        if s.name == "road" or s.name.startswith(("sidewalk", "grass", "cross-road")):
            assert (n[:, 2] > 0.9).all(), s.name
        if s.name.startswith("curb-") and not s.name.startswith("curb-end"):
            c = v[t].mean(axis=1)
            _, t0 = frame.line.project(c[:, 0], c[:, 1])
            _, t1 = frame.line.project(c[:, 0] + 0.05 * n[:, 0], c[:, 1] + 0.05 * n[:, 1])
            assert (np.abs(t1) < np.abs(t0)).all(), s.name
            assert np.abs(n[:, 2]).max() < 1e-6
        if s.name.startswith("curb-end"):  # the cross road's curbs face the junction
            c = v[t].mean(axis=1)
            s0, _ = frame.line.project(c[:, 0], c[:, 1])
            s1, _ = frame.line.project(c[:, 0] + 0.05 * n[:, 0], c[:, 1] + 0.05 * n[:, 1])
            middle = np.mean(scene.metadata["junction_s_m"])
            assert (np.abs(s1 - middle) < np.abs(s0 - middle)).all(), s.name


def test_signs_face_their_panels_and_sit_on_poles(scene):
    poles = {p.id: p for p in scene.truth.poles}
    path = scene.drive_path
    against = 0
    for sign in scene.truth.signs:
        face = next(
            s for s in scene.surfaces if s.feature_id == sign.id and s.name.endswith("-face")
        )
        back = next(
            s for s in scene.surfaces if s.feature_id == sign.id and s.name.endswith("-back")
        )
        v, t = face.vertices, face.triangles
        n = np.cross(v[t[0, 1]] - v[t[0, 0]], v[t[0, 2]] - v[t[0, 0]])
        azimuth = math.degrees(math.atan2(n[0], n[1])) % 360.0
        assert abs((azimuth - sign.facing_deg + 180) % 360 - 180) < 0.01
        gap = (v.mean(axis=0) - back.vertices.mean(axis=0)) @ (n / np.linalg.norm(n))
        assert 0.01 <= gap <= 0.02
        assert face.rgb is not None
        centre = local(sign.geometry, scene)[0]
        assert (
            np.abs(np.r_[v[:, :2].mean(axis=0), (v[:, 2].min() + v[:, 2].max()) / 2] - centre).max()
            < 0.02
            or sign.shape == SignShape.TRIANGLE
        )
        pole = poles[sign.pole]
        base = local(pole.geometry, scene)[0]
        assert 2.0 <= centre[2] - base[2] <= 5.0
        assert np.hypot(*(centre[:2] - base[:2])) < pole.radius_m + 0.05
        assert centre[2] + sign.height_m / 2 <= base[2] + pole.height_m + 0.01
        i = int(np.argmin(np.hypot(*(path.xyz[:, :2] - centre[:2]).T)))
        h = path.heading_rad[i]
        if n[0] * math.cos(h) + n[1] * math.sin(h) < -0.9 * np.linalg.norm(n):
            against += 1
    assert against >= len(scene.truth.signs) - 1


def test_poles_stand_on_the_ground(scene):
    for pole in scene.truth.poles:
        mesh = next(
            s for s in scene.surfaces if s.feature_id == pole.id and s.name.startswith("pole-")
        )
        base = local(pole.geometry, scene)[0]
        assert mesh.vertices[:, 2].min() == pytest.approx(base[2], abs=1e-9)
        assert mesh.vertices[:, 2].max() - base[2] == pytest.approx(pole.height_m, abs=1e-3)
        radius = np.hypot(*(mesh.vertices[:, :2] - base[:2]).T).max()
        assert radius == pytest.approx(pole.radius_m, abs=1e-3)
        assert 3.0 <= pole.height_m <= 10.0 and 0.05 <= pole.radius_m <= 0.15


def test_drive_path_is_dense_and_on_the_lane(scene):
    path = scene.drive_path
    step = np.linalg.norm(np.diff(path.xyz, axis=0), axis=1)
    assert np.abs(step - 0.05).max() < 1e-3
    assert np.allclose(np.diff(path.s), 0.05)
    d = np.diff(path.xyz[:, :2], axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    err = np.abs((heading - path.heading_rad[:-1] + math.pi) % (2 * math.pi) - math.pi)
    assert err.max() < 0.01
    frame = road_frame(scene.kind, scene.seed)
    s, t = frame.line.project(path.xyz[:, 0], path.xyz[:, 1])
    assert np.abs(t - scene.metadata["drive_lane_offset_m"]).max() < 1e-3
    assert np.abs(frame.z(s, t) - path.xyz[:, 2]).max() < 1e-3


def test_scenes_are_deterministic():
    for kind in ("urban", "highway"):
        a, b = build_scene(kind, 7), build_scene(kind, 7)
        assert a.truth == b.truth
        assert a.metadata == b.metadata and a.origin == b.origin
        assert len(a.surfaces) == len(b.surfaces)
        for sa, sb in zip(a.surfaces, b.surfaces, strict=True):
            assert sa.name == sb.name and np.array_equal(sa.vertices, sb.vertices)
            assert np.array_equal(sa.triangles, sb.triangles)
        assert [p.polygon.wkb for p in a.paint] == [p.polygon.wkb for p in b.paint]
        assert [p.wear for p in a.paint] == [p.wear for p in b.paint]
        assert np.array_equal(a.drive_path.xyz, b.drive_path.xyz)
    assert build_scene("urban", 8).truth != build_scene("urban", 7).truth


def test_length_override_and_too_short():
    sc = build_scene("arterial", 3, length_m=160.0)
    assert road_frame("arterial", 3, 160.0).line.length == pytest.approx(160.0)
    assert sc.drive_path.s[-1] > 150.0
    with pytest.raises(ValueError, match="length_m"):
        build_scene("urban", 1, length_m=40.0)


def test_long_highway_scales_linearly():
    sc = build_scene("highway", 11, length_m=3000.0)
    triangles = sum(len(s.triangles) for s in sc.surfaces)
    assert triangles < 1_200_000
    assert sc.drive_path.s[-1] > 2990.0
    assert len(sc.truth.lane_boundaries) == 2 * (sc.metadata["lanes_per_direction"] + 1)


@pytest.mark.parametrize("kind", ["urban", "arterial", "highway"])
def test_apply_changes_injects_exactly_five_changes(kind):
    scene = scene_of(kind, 2)
    changed, records = apply_changes(scene, 5)
    assert len(records) == 5
    kinds = sorted(r["change"] for r in records)
    assert kinds == ["deleted", "deleted", "geometry_changed", "inserted", "marking_changed"]
    json.dumps(records)
    before, after = scene.truth.by_id(), changed.truth.by_id()
    old_ids = {r["old_id"] for r in records if r["old_id"]}
    new_ids = {r["new_id"] for r in records if r["new_id"]}
    assert set(before) - set(after) == old_ids
    assert set(after) - set(before) == new_ids
    marking = next(r for r in records if r["change"] == "marking_changed")
    assert before[marking["old_id"]].marking == MarkingKind.DASHED
    assert after[marking["new_id"]].marking == MarkingKind.SOLID
    assert after[marking["new_id"]].geometry == before[marking["old_id"]].geometry
    for fid in set(before) & set(after):
        if before[fid] != after[fid]:  # only lanes that named the repainted line
            lane = after[fid]
            assert lane.layer == "lanes"
            assert marking["new_id"] in (lane.left_boundary, lane.right_boundary)
            assert (
                before[fid].replace(
                    left_boundary=lane.left_boundary, right_boundary=lane.right_boundary
                )
                == lane
            )
    for r in records:
        assert len(r["anchor"]) == 3 and r["layer"] in scene.truth.counts()
        assert abs(r["anchor"][0] - scene.origin[0]) < 500
    # the world follows the truth
    surface_ids = {s.feature_id for s in changed.surfaces}
    paint_ids = {p.feature_id for p in changed.paint}
    gone_sign = next(r for r in records if r["change"] == "deleted" and r["layer"] == "signs")
    assert gone_sign["old_id"] not in surface_ids
    assert before[gone_sign["old_id"]].pole in surface_ids  # its pole stays
    gone_pole = next(r for r in records if r["change"] == "deleted" and r["layer"] == "poles")
    assert gone_pole["old_id"] not in surface_ids
    assert not any(s.pole == gone_pole["old_id"] for s in changed.truth.signs)
    new_sign = next(r for r in records if r["change"] == "inserted")
    assert new_sign["new_id"] in surface_ids and after[new_sign["new_id"]].pole in after
    assert marking["old_id"] not in paint_ids and marking["new_id"] in paint_ids
    moved = next(r for r in records if r["change"] == "geometry_changed")
    shift = np.hypot(
        *(
            np.array(after[moved["new_id"]].geometry.centroid.coords[0][:2])
            - np.array(before[moved["old_id"]].geometry.centroid.coords[0][:2])
        )
    )
    assert 1.0 <= shift <= 3.0
    if moved["layer"] == "stop_lines":
        assert moved["old_id"] not in paint_ids and moved["new_id"] in paint_ids
    for fid in (marking["new_id"], moved["new_id"]):  # new truth lies under its new paint
        patches = [p.polygon for p in changed.paint if p.feature_id == fid]
        if after[fid].layer == "poles":
            continue
        line = LineString(local(after[fid].geometry, scene)[:, :2])
        assert line.difference(shapely.union_all(patches).buffer(1e-3)).length < 1e-6
    # unchanged parts are kept as they were
    kept = [p for p in scene.paint if p.feature_id not in old_ids]
    assert len(kept) == len([p for p in changed.paint if p.feature_id not in new_ids])
    assert changed.drive_path is scene.drive_path
    # deterministic
    again, records2 = apply_changes(scene, 5)
    assert records2 == records and again.truth == changed.truth


@pytest.mark.parametrize("kind", ["urban", "arterial", "highway"])
def test_shortest_scenes_still_take_all_changes(kind):
    from data_samples.simulator.scenes import MIN_LENGTH_M

    for seed in (0, 1, 2):
        sc = build_scene(kind, seed, length_m=MIN_LENGTH_M[kind])
        assert sc.truth.lanes and sc.truth.signs
        _, records = apply_changes(sc, seed)
        assert len(records) == 5
