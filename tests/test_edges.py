"""Road edges (pipeline.edges): synthetic cross-sections in a road frame, then freshly simulated
scenes of every kind scored against their truth, and curbs in the AHN3 airborne tiles.

The synthetic surveys imitate a profile scanner 2.2 m above the road: profiles every 0.1 m
along the road, pulses every 0.5 degrees across it, so the spacing across grows with the
distance from the trajectory (t = 0). Vertical faces seen by the scanner get their own points.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely

from pipeline.edges import (
    EdgeHits,
    EdgeLine,
    EdgeOptions,
    barrier_hits,
    curb_hits,
    derive_slice_m,
    find_road_edges,
    link_hits,
    pavement_hits,
    road_edge_features,
)
from pipeline.model import RoadEdgeKind
from pipeline.roadframe import RoadFrame
from pipeline.stages import default_options, stage

MOUNT_M = 2.2


def _profiles(length=30.0, t_min=-8.0, t_max=8.0, step_s=0.1, step_deg=0.5):
    """(s, t) of a profile scanner's ground hits on a flat road."""
    ang = np.radians(np.arange(-80.0, 80.0, step_deg))
    tt = MOUNT_M * np.tan(ang)
    tt = tt[(tt >= t_min) & (tt <= t_max)]
    ss = np.arange(0.0, length, step_s)
    return np.repeat(ss, len(tt)), np.tile(tt, len(ss))


def _face(s_values, t_face, z0, z1, dz=0.02):
    """Points on a vertical face at ``t_face`` from ``z0`` to ``z1`` at every station."""
    zz = np.arange(z0, z1, dz)
    return (
        np.repeat(s_values, len(zz)),
        np.full(len(s_values) * len(zz), t_face),
        np.tile(zz, len(s_values)),
    )


def _road(t):
    """Road surface height: crown at t = 0 with a 2 % cross-fall."""
    return -0.02 * np.abs(t)


def _lines_of(lines, kind):
    return [ln for ln in lines if ln.kind is kind]


def _share_within(line: EdgeLine, t_true: float, tol: float) -> float:
    return float(np.mean(np.abs(line.t - t_true) <= tol))


# ----------------------------------------------------------------------------------------------
# synthetic cross-sections


def test_clean_curb_position_and_step_height():
    s, t = _profiles()
    z = np.where(t < -3.0, _road(-3.0) + 0.15, _road(t))
    fs, ft, fz = _face(np.arange(0, 30, 0.1), -3.0, _road(-3.0), _road(-3.0) + 0.15)
    lines = find_road_edges(np.r_[s, fs], np.r_[t, ft], np.r_[z, fz])
    assert [ln.kind for ln in lines] == [RoadEdgeKind.CURB]
    (curb,) = lines
    assert float(np.median(curb.t)) == pytest.approx(-3.0, abs=0.02)
    assert curb.height_m == pytest.approx(0.15, abs=0.005)
    assert curb.length_m == pytest.approx(30.0, abs=1.0)
    assert curb.z == pytest.approx(_road(-3.0), abs=0.01)  # the foot of the face
    assert curb.confidence >= 0.9


def test_noisy_curb_without_face_points():
    rng = np.random.default_rng(1)
    s, t = _profiles(length=40.0)
    s = s + rng.uniform(-0.03, 0.03, len(s))
    t = t + rng.uniform(-0.02, 0.02, len(t))
    z = np.where(t > 4.0, _road(4.0) + 0.12, _road(t)) + rng.normal(0, 0.01, len(t))
    bad = rng.random(len(z)) < 0.002  # late returns and stray hits
    z[bad] += rng.uniform(-1.0, 3.0, bad.sum())
    curbs = _lines_of(find_road_edges(s, t, z), RoadEdgeKind.CURB)
    assert len(curbs) == 1
    assert curbs[0].height_m == pytest.approx(0.12, abs=0.015)
    assert _share_within(curbs[0], 4.0, 0.1) >= 0.9
    assert curbs[0].length_m >= 36.0


def test_barrier_faces_but_no_car_or_pole():
    s, t = _profiles()
    z = _road(t)
    st = np.arange(0, 30, 0.1)
    wall = (t >= 6.0) & (t <= 6.6)
    z = np.where(wall, _road(6.0) + 0.8, z)  # the top, seen from the scanner
    fs, ft, fz = _face(st, 6.0, _road(6.0), _road(6.0) + 0.8)
    car = (s > 10.0) & (s < 14.5) & (t > -5.0) & (t < -3.2)
    z = np.where(car, _road(-3.2) + 1.45, z)  # a parked car's roof
    cs, ct, cz = _face(st[(st > 10.0) & (st < 14.5)], -3.2, _road(-3.2) + 0.3, 1.4)
    ps, pt, pz = _face(np.arange(20.0, 20.2, 0.05), -2.0, _road(-2.0), 6.0)  # a pole
    lines = find_road_edges(np.r_[s, fs, cs, ps], np.r_[t, ft, ct, pt], np.r_[z, fz, cz, pz])
    bars = sorted(_lines_of(lines, RoadEdgeKind.BARRIER), key=lambda ln: float(ln.t.mean()))
    assert len(bars) == 2
    assert _share_within(bars[0], 6.0, 0.05) >= 0.95  # the face towards the road
    assert _share_within(bars[1], 6.6, 0.1) >= 0.95  # the far face: the top was seen
    assert bars[0].height_m == pytest.approx(0.8, abs=0.05)
    assert all(float(ln.t.min()) > -1.0 for ln in lines)  # nothing at the car or the pole


def test_guard_rail_has_one_face():
    s, t = _profiles(length=40.0)
    z = np.where(t < -5.0, _road(-5.0) - 0.04 * (-5.0 - t), _road(t))  # verge falling away
    st = np.arange(0, 40, 0.1)
    bs, bt, bz = _face(st, -5.0, _road(-5.0) + 0.45, _road(-5.0) + 0.75)
    top_s, top_t, top_z = _face(st, -5.05, _road(-5.0) + 0.74, _road(-5.0) + 0.76)
    posts = np.arange(2.0, 40.0, 4.0)
    ps, pt, pz = _face(np.r_[posts, posts + 0.05], -5.15, _road(-5.0), _road(-5.0) + 0.75)
    lines = find_road_edges(
        np.r_[s, bs, top_s, ps], np.r_[t, bt, top_t, pt], np.r_[z, bz, top_z, pz]
    )
    bars = _lines_of(lines, RoadEdgeKind.BARRIER)
    assert len(bars) == 1
    assert _share_within(bars[0], -5.0, 0.05) >= 0.95
    assert bars[0].height_m == pytest.approx(0.75, abs=0.05)
    assert not _lines_of(lines, RoadEdgeKind.CURB)


def _pavement_scene(rng):
    s, t = _profiles(length=60.0)
    edge = -4.5
    z = np.where(t < edge, _road(edge) - 0.04 * (edge - t), _road(t))
    rng_m = np.hypot(t, MOUNT_M + z)
    falloff = (5.0 / np.maximum(rng_m, 5.0)) ** 1.5
    refl = np.where(t < edge, 0.2, 0.08)  # grass beyond the asphalt
    refl = np.where(np.abs(t + 3.5) < 0.075, 0.65, refl)  # the edge line
    intensity = 20000 * refl * falloff * rng.lognormal(0, 0.15, len(t))
    return s, t, z, intensity


def test_bare_pavement_edge_from_intensity():
    s, t, z, intensity = _pavement_scene(np.random.default_rng(2))
    lines = find_road_edges(s, t, z, intensity)
    assert [ln.kind for ln in lines] == [RoadEdgeKind.PAVEMENT_EDGE]
    assert _share_within(lines[0], -4.5, 0.1) >= 0.9
    assert lines[0].height_m is None
    assert lines[0].length_m >= 50.0
    # without intensity there is no way to see where the asphalt ends
    assert find_road_edges(s, t, z) == []


def test_no_pavement_edge_beyond_a_curb():
    rng = np.random.default_rng(3)
    s, t = _profiles(length=40.0)
    z = np.where(t > 3.0, _road(3.0) + 0.15, _road(t))
    # a sidewalk of concrete then grass at the same height: bright steps, but beyond the curb
    refl = np.where(t > 3.0, np.where(t > 6.0, 0.2, 0.3), 0.08)
    intensity = 20000 * refl * rng.lognormal(0, 0.1, len(t))
    lines = find_road_edges(s, t, z, intensity)
    assert [ln.kind for ln in lines] == [RoadEdgeKind.CURB]


def test_empty_and_flat_inputs():
    assert find_road_edges(np.empty(0), np.empty(0), np.empty(0)) == []
    assert find_road_edges(np.zeros(50), np.linspace(-5, 5, 50), np.zeros(50)) == []
    s, t = _profiles()
    assert find_road_edges(s, t, _road(t)) == []  # no curb, no object: no edge
    assert len(curb_hits(np.empty(0), np.empty(0), np.empty(0))) == 0
    assert len(barrier_hits(np.empty(0), np.empty(0), np.empty(0))) == 0
    assert len(pavement_hits(np.empty(0), np.empty(0), np.empty(0), np.empty(0))) == 0
    assert link_hits(EdgeHits.empty()) == []
    # NaN coordinates are ignored, not propagated
    z = np.where(t < -3.0, 0.15, _road(t))
    z[::7] = np.nan
    assert [ln.kind for ln in find_road_edges(s, t, z)] == [RoadEdgeKind.CURB]
    hits = curb_hits(s, t, z)
    assert len(hits) and np.all(np.abs(hits.across + 3.0) < 0.05)


def test_sparse_airborne_density():
    """16 points per m2 at random, 2 cm noise, as in an airborne survey (AHN3)."""
    rng = np.random.default_rng(4)
    n = 16 * 60 * 12
    s, t = rng.uniform(0, 60, n), rng.uniform(-6, 6, n)
    z = np.where(t > 2.0, 0.15, 0.02 * (t - 2.0)) + rng.normal(0, 0.02, n)
    assert derive_slice_m(s, t) > 2.0  # longer slices for sparse data
    curbs = _lines_of(find_road_edges(s, t, z), RoadEdgeKind.CURB)
    assert len(curbs) == 1
    assert _share_within(curbs[0], 2.0, 0.2) >= 0.8
    assert curbs[0].height_m == pytest.approx(0.15, abs=0.03)
    assert curbs[0].length_m >= 50.0


def test_curb_across_the_road_at_a_junction():
    s, t = _profiles(length=40.0)
    walk = (t > 3.0) & (s < 20.0)  # the sidewalk ends at s = 20 m: a cross road beyond
    z = np.where(walk, _road(3.0) + 0.15, _road(np.minimum(t, 3.0)))  # a level cross road
    lines = find_road_edges(s, t, z)
    along = [ln for ln in lines if np.ptp(ln.s) > 5.0]
    across = [ln for ln in lines if np.ptp(ln.t) > 2.0]
    assert len(along) == 1 and len(across) == 1
    assert along[0].s.max() == pytest.approx(20.0, abs=0.5)
    assert np.all(np.abs(across[0].s - 20.0) <= 0.1)
    assert across[0].t.min() == pytest.approx(3.0, abs=0.6)  # joined to the curb's corner
    assert across[0].height_m == pytest.approx(0.15, abs=0.01)


def test_occlusion_gap_is_bridged():
    s, t = _profiles(length=40.0)
    z = np.where(t < -3.0, _road(-3.0) + 0.12, _road(t))
    hidden = (s > 15.0) & (s < 21.0) & (t < -2.0)  # a parked van hides the curb
    lines = find_road_edges(s[~hidden], t[~hidden], z[~hidden])
    assert len(lines) == 1
    assert lines[0].s.min() < 1.0 and lines[0].s.max() > 39.0
    assert 0.6 <= lines[0].confidence < 0.95  # seen over part of its length only
    short = find_road_edges(s[~hidden], t[~hidden], z[~hidden], options=EdgeOptions(link_gap_m=4))
    assert len(short) == 2


def test_profiles_with_an_empty_stretch():
    """Curbs across the road are profiled in blocks along ``s``: a block without points (a
    survey in two pieces) is skipped, not an error."""
    s, t = _profiles(length=30.0)
    z = np.where(t < -3.0, _road(-3.0) + 0.15, _road(t))
    far = s + 200.0  # the same road again, 200 m on
    lines = find_road_edges(np.r_[s, far], np.r_[t, t], np.r_[z, z])
    assert sorted(round(float(ln.s.min())) for ln in lines) == [0, 200]


def test_link_hits_by_offset_and_facing():
    hits = EdgeHits(
        np.array([0.0, 0.5, 1.0, 1.0, 1.5]),
        np.array([2.0, 2.05, 2.02, 5.0, 2.0]),
        np.zeros(5),
        np.zeros(5),
        np.array([1.0, 1.0, 1.0, 1.0, -1.0]),
    )
    assert [tr.tolist() for tr in link_hits(hits)] == [[0, 1, 2], [3], [4]]


def test_stage_registered_with_options():
    st = stage("edges.find_road_edges")
    assert st.function is find_road_edges and st.options is EdgeOptions
    assert default_options()["edges.find_road_edges"]["curb_min_m"] == EdgeOptions().curb_min_m


def test_features_in_map_coordinates():
    ang = np.radians(30.0)
    xy = np.array([[0.0, 0.0], [100.0 * np.cos(ang), 100.0 * np.sin(ang)]]) + np.array([5e5, 3e6])
    frame = RoadFrame.from_xy(xy, smooth_m=0.0)
    s, t = _profiles()
    z = np.where(t < -3.0, _road(-3.0) + 0.15, _road(t)) + 12.0
    lines = find_road_edges(s, t, z)
    feats = road_edge_features(lines, frame, survey_id="synthetic")
    (edge,) = feats
    assert edge.kind is RoadEdgeKind.CURB and edge.height_m == pytest.approx(0.15, abs=0.005)
    assert edge.provenance.method == "edges.curb"
    ex, ey = frame.to_xy(np.array([15.0]), np.array([-3.0]))
    assert shapely.distance(edge.geometry, shapely.Point(ex[0], ey[0])) < 0.05
    assert shapely.get_coordinates(edge.geometry, include_z=True)[:, 2] == pytest.approx(
        12.0 + _road(-3.0), abs=0.01
    )
    assert [f.id for f in road_edge_features(lines, frame, survey_id="synthetic")] == [edge.id]
    assert road_edge_features([], frame, survey_id="synthetic") == []


# ----------------------------------------------------------------------------------------------
# simulated scenes, scored against their truth

# seeds no other test and no tuning used; lengths keep each scene under a minute
FRESH = [("urban", 4101, 120.0), ("arterial", 4102, 160.0), ("highway", 4103, 200.0)]


def _covered_region(xyz: np.ndarray, cell_m: float = 0.5):
    """The cells (``cell_m`` squares) holding survey points, as one polygon: where the survey
    sampled the ground finely enough to place an edge at all."""
    import rasterio.features
    from rasterio.transform import Affine
    from shapely.geometry import shape

    x0, y0 = xyz[:, 0].min(), xyz[:, 1].min()
    i = ((xyz[:, 1] - y0) / cell_m).astype(np.int64)
    j = ((xyz[:, 0] - x0) / cell_m).astype(np.int64)
    grid = np.zeros((i.max() + 1, j.max() + 1), np.uint8)
    grid[i, j] = 1
    transform = Affine(cell_m, 0, x0, 0, cell_m, y0)
    shapes = rasterio.features.shapes(grid, mask=grid == 1, transform=transform)
    return shapely.union_all([shape(g) for g, _ in shapes])


@pytest.fixture(scope="module", params=FRESH, ids=[k for k, _, _ in FRESH])
def fresh_scene(request, tmp_path_factory):
    from data_samples.simulator.simulate import simulate
    from formats.gpkg import read_gpkg
    from pipeline.extract import extract_map

    kind, seed, length = request.param
    out = tmp_path_factory.mktemp(kind)
    simulate(kind, seed, out, length_m=length, ortho=False)
    result = extract_map([out / "survey.laz"], trajectory=out / "trajectory.csv")
    return kind, read_gpkg(out / "truth.gpkg"), result


@pytest.mark.slow
def test_fresh_scene_road_edges(fresh_scene):
    """Issue targets: road edges F1 >= 0.95 at 0.20 m, curb height error RMS <= 0.03 m."""
    from qa.score import score_maps

    kind, truth, result = fresh_scene
    edges = score_maps(truth, result.model, layers=["road_edges"]).layer("road_edges")
    b = edges.at(0.20)
    print(f"{kind}: C {b.completeness:.3f} K {b.correctness:.3f} F1 {b.f1:.3f} at 0.20 m, "
          f"kind {edges.kind_accuracy:.3f}, curb height RMS {edges.curb_height_rms_m}")  # fmt: skip
    assert edges.at(0.20).f1 >= 0.95
    assert edges.at(0.20).correctness >= 0.98
    assert edges.kind_accuracy >= 0.98
    if kind != "highway":  # highways have no curbs
        assert edges.curb_height_rms_m <= 0.03
    assert "edges" in result.timings
    methods = {e.provenance.method for e in result.model.road_edges}
    assert methods <= {"edges.curb", "edges.barrier", "edges.pavement_edge"}


@pytest.mark.slow
def test_highway_sample_far_pavement_edge_is_out_of_reach(samples_dir):
    """The committed highway's far pavement edge lies 33 m out, behind the median wall, where
    the scan samples the ground every 2-3 m: it cannot be placed within 0.2 m. Scored where the
    survey has points every 0.5 m, the target holds; over the whole truth it cannot."""
    from formats.gpkg import read_gpkg
    from pipeline.extract import extract_map
    from pipeline.survey import read_points
    from qa.score import score_maps

    scene = samples_dir / "highway"
    result = extract_map([scene / "survey.laz"], trajectory=scene / "trajectory.csv")
    truth = read_gpkg(scene / "truth.gpkg")
    full = score_maps(truth, result.model, layers=["road_edges"]).layer("road_edges")
    region = _covered_region(read_points(scene / "survey.laz").xyz)
    seen = score_maps(truth, result.model, layers=["road_edges"], region=region)
    seen = seen.layer("road_edges")
    assert full.at(0.20).correctness >= 0.98
    assert 0.70 <= full.at(0.20).completeness <= 0.80  # the far edge: a quarter of the truth
    assert seen.at(0.20).f1 >= 0.95
    kinds = sorted(e.kind.value for e in result.model.road_edges)
    assert kinds == ["barrier", "barrier", "pavement_edge"]  # the median's two faces


# ----------------------------------------------------------------------------------------------
# real data: AHN3 (airborne, about 16 points per m2, EPSG:28992) along BGT road polygons

PAVED = ("rijbaan_lokale_weg", "parkeervlak", "fietspad")  # carriageway, parking, cycle path


def _boundary_pieces(ring, min_m=5.0, turn_deg=35.0):
    """Pieces of a boundary between its sharp corners, at least ``min_m`` long."""
    for part in getattr(ring, "geoms", [ring]):
        c = np.asarray(part.coords)[:, :2]
        if len(c) < 2:
            continue
        d = np.diff(c, axis=0)
        heading = np.arctan2(d[:, 1], d[:, 0])
        turn = np.abs((np.diff(heading) + np.pi) % (2 * np.pi) - np.pi)
        cuts = np.r_[0, np.flatnonzero(turn > np.radians(turn_deg)) + 1, len(c) - 1]
        for a, b in itertools.pairwise(cuts):
            if shapely.LineString(c[a : b + 1]).length >= min_m:
                yield c[a : b + 1]


def ahn3_curbs(tile, roads_csv, types=PAVED):
    """Curbs along the outline of the paved BGT polygons of ``types`` in one AHN3 tile: the
    outline's length inside the tile (1 m in from its border), the length of curbs found
    within 0.3 m of it, the curb heights, and the length of curbs found away from it."""
    import csv
    import json

    import laspy

    from pipeline.edges import edges_along_line

    las = laspy.read(tile)
    keep = np.isin(las.classification, [1, 2])  # unclassified and ground, not buildings
    xyz = np.column_stack([las.x, las.y, las.z])[keep]
    box = shapely.box(*xyz[:, :2].min(axis=0), *xyz[:, :2].max(axis=0)).buffer(-1.0)
    with open(roads_csv, newline="") as f:
        polys = [
            shapely.Polygon(json.loads(r["polygon"])).buffer(0.05)
            for r in csv.DictReader(f)
            if r["bgt_type"] in types
        ]
    outline = shapely.line_merge(shapely.intersection(shapely.union_all(polys).boundary, box))
    options = EdgeOptions(transverse=False)
    total = on = off = 0.0
    heights = []
    for piece in _boundary_pieces(outline):
        line = shapely.LineString(piece)
        total += line.length
        zone = line.buffer(0.3, cap_style="flat")
        for e in edges_along_line(xyz, piece, survey_id="ahn3", options=options):
            if e.kind is not RoadEdgeKind.CURB:
                continue
            inside = shapely.intersection(shapely.force_2d(e.geometry), zone).length
            on += inside
            off += e.geometry.length - inside
            if inside >= 0.5 * e.geometry.length:
                heights.append(e.height_m)
    return total, on, np.array(heights), off


@pytest.mark.realdata
@pytest.mark.parametrize("tile", ["ahn_2386_9702.laz", "ahn_2397_9705.laz"])
def test_ahn3_curbs_along_bgt_roads(real_data_dir, tile):
    folder = real_data_dir / "ahn3_amsterdam"
    if not (folder / tile).is_file():
        pytest.skip(f"{folder / tile} is absent")
    total, on, heights, off = ahn3_curbs(folder / tile, folder / "bgt_roads_demo.csv")
    print(f"{tile}: outline {total:.1f} m, curbs on it {on:.1f} m ({on / total:.2f}), "
          f"heights {np.round(heights, 3).tolist()}, curbs off it {off:.1f} m")  # fmt: skip
    # no truth here: floors below what was found (0.75 and 0.61 of the outline; 1 m and 12 m
    # of curb lines within 4 m of the outline but off it: parking bays, the ends of pieces)
    assert on / total >= 0.5
    assert off <= 0.2 * on
    # Amsterdam curbs are low: 7-9 cm found (the detector accepts up to 30 cm)
    assert len(heights) and 0.06 <= np.median(heights) <= 0.12 and heights.max() <= 0.15


# ----------------------------------------------------------------------------------------------
# through the extraction chain


def test_extraction_without_vertical_objects_or_with_airborne_density():
    from pipeline.extract import extract_points
    from pipeline.survey import PointChunk

    rng = np.random.default_rng(6)
    origin = np.array([500000.0, 3000000.0, 5.0])
    # a bare plane: a map without road edges, no error
    xy = rng.uniform([0, 0], [60, 14], (120_000, 2))
    z = -0.02 * np.abs(xy[:, 1] - 7.0) + rng.normal(0, 0.005, len(xy))
    intensity = (1000 * rng.lognormal(0, 0.15, len(xy))).astype(np.uint16)
    plane = PointChunk(np.column_stack([xy, z]) + origin, intensity=intensity)
    result = extract_points(plane, crs="EPSG:4549", survey_id="plane")
    assert result.model.road_edges == ()
    assert "edges" in result.timings
    # airborne density (16 points per m2), no trajectory: the curb is still found
    n = 16 * 60 * 14
    xy = rng.uniform([0, 0], [60, 14], (n, 2))
    z = np.where(xy[:, 1] > 10.0, 0.14, -0.02 * (10.0 - xy[:, 1])) + rng.normal(0, 0.02, n)
    intensity = (1000 * rng.lognormal(0, 0.15, n)).astype(np.uint16)
    sparse = PointChunk(np.column_stack([xy, z]) + origin, intensity=intensity)
    result = extract_points(sparse, crs="EPSG:4549", survey_id="airborne")
    curbs = [e for e in result.model.road_edges if e.kind is RoadEdgeKind.CURB]
    assert len(curbs) == 1
    assert curbs[0].height_m == pytest.approx(0.14, abs=0.03)
    on_line = shapely.LineString([(origin[0], origin[1] + 10.0), (origin[0] + 60, origin[1] + 10)])
    assert shapely.hausdorff_distance(shapely.force_2d(curbs[0].geometry), on_line) < 3.0
    assert curbs[0].geometry.length >= 50.0
    pts = shapely.get_coordinates(curbs[0].geometry)
    assert np.all(np.abs(pts[:, 1] - origin[1] - 10.0) <= 0.25)
