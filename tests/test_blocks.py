"""Block processing (issue 9): planning, block reading, stitching, and a blocked build of a
committed sample against the single build.

The stitching tests build per-block maps by hand along a curved road (what each block would
extract: the parts of the lines inside its read interval, poles in overlaps seen twice) and check
that stitching gives back one line per line, one pole per pole and valid references.
"""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import laspy
import numpy as np
import pytest
import shapely
from shapely import LineString, Point

from pipeline.blocks import (
    Block,
    CellCounts,
    extract_block,
    extract_map_blocked,
    plan_blocks,
    read_block,
    split_into_blocks,
    stitch,
)
from pipeline.errors import SurveyError
from pipeline.extract import extract_map
from pipeline.ground import derive_cell_m
from pipeline.model import (
    Color,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    Sign,
    SignClass,
    SignShape,
    anchor_point,
    feature_id,
)
from pipeline.survey import PointChunk, read_info, read_points
from pipeline.trajectory import Trajectory, read_trajectory

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "scenes"
CRS = "EPSG:4549"
E0, N0 = 534000.0, 3496000.0
RADIUS = 300.0  # the synthetic road curves left on a 300 m radius
SURVEY = "test-survey"


# a curved synthetic road in EPSG:4549: s along the drive path, t to its left


def _xy(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    theta = np.asarray(s) / RADIUS
    r = RADIUS - np.asarray(t)
    return np.column_stack([E0 + r * np.sin(theta), N0 + RADIUS - r * np.cos(theta)])


def _trajectory(length_m: float = 500.0) -> Trajectory:
    s = np.arange(0.0, length_m + 0.25, 0.5)
    xy = _xy(s, np.zeros_like(s))
    return Trajectory(s / 10.0 + 1000.0, np.column_stack([xy, np.full(len(s), 7.0)]))


def _line(s0: float, s1: float, t: float, step: float = 1.0) -> np.ndarray:
    s = np.linspace(s0, s1, round((s1 - s0) / step) + 1)
    return np.column_stack([_xy(s, np.full_like(s, t)), 5.0 + 0.01 * s])


def _seen(block: Block, coords: np.ndarray, shift_m: float = 0.0) -> np.ndarray | None:
    """The run of ``coords`` a block would extract: vertices inside its read interval (shifted
    ``shift_m`` sideways, as an extraction a few centimetres off)."""
    s = block.locate(coords[:, 0], coords[:, 1])
    inside = np.flatnonzero((s > block.s0) & (s < block.s1))
    if len(inside) < 2:
        return None
    c = coords[inside[0] : inside[-1] + 1].copy()
    if shift_m:
        d = np.gradient(c[:, :2], axis=0)
        d /= np.hypot(*d.T)[:, None]
        c[:, :2] += shift_m * np.column_stack([-d[:, 1], d[:, 0]])
    return c


def _boundary(coords: np.ndarray, marking: MarkingKind = MarkingKind.SOLID) -> LaneBoundary:
    return LaneBoundary.create(
        LineString(coords), marking, Color.WHITE, survey_id=SURVEY, method="test", width_m=0.15
    )


def _lane(coords: np.ndarray, left: str, right: str, width: float = 3.5) -> Lane:
    return Lane.create(
        LineString(coords),
        tuple([width] * len(coords)),
        survey_id=SURVEY,
        method="test",
        left_boundary=left,
        right_boundary=right,
    )


def _hausdorff(a: LineString, b: LineString) -> float:
    return float(shapely.hausdorff_distance(a, b, densify=0.05))


# planning


def test_plan_covers_the_trajectory_with_overlaps():
    traj = read_trajectory(SAMPLES / "urban" / "trajectory.csv")
    blocks = plan_blocks(None, traj, block_length_m=30.0, overlap_m=10.0)
    assert len(blocks) == 5  # a 120 m drive in cores of at most 30 m
    assert blocks[0].first and blocks[-1].last
    assert not any(b.first for b in blocks[1:]) and not any(b.last for b in blocks[:-1])
    assert [b.index for b in blocks] == list(range(5))
    for a, b in itertools.pairwise(blocks):
        assert a.core_s1 == b.core_s0  # cores meet exactly: nothing lost, nothing twice
    for b in blocks:
        assert b.core_length_m <= 30.0 + 60.0 * (b.first or b.last)  # ends reach past the drive
        assert b.s0 == pytest.approx(max(b.core_s0 - 10.0, blocks[0].core_s0))
        assert b.s1 == pytest.approx(min(b.core_s1 + 10.0, blocks[-1].core_s1))
        assert b.path.length == pytest.approx(b.s1 - b.s0, abs=1e-6)
    # every pose lies in a block that owns it, its read region and its trajectory window
    xy = traj.xyz[:, :2]
    owners = np.zeros(len(xy), dtype=int)
    for b in blocks:
        own = b.in_core(b.locate(xy[:, 0], xy[:, 1]))
        owners += own
        assert shapely.intersects_xy(b.polygon, xy[own, 0], xy[own, 1]).all()
        t0, t1 = b.gps_time_range
        assert (traj.gps_time[own] >= t0).all() and (traj.gps_time[own] <= t1).all()
    assert (owners == 1).all()
    # a block is a small picklable value (a flow ships it to a worker)
    back = pickle.loads(pickle.dumps(blocks[2]))
    assert back == blocks[2] and back.polygon.equals(blocks[2].polygon)


def test_plan_without_trajectory_runs_along_the_principal_axis(tmp_path):
    rng = np.random.default_rng(1)
    along = rng.uniform(0, 200, 50_000)
    across = rng.uniform(-6, 6, 50_000)
    heading = np.radians(30.0)  # a straight road 30 degrees north of east
    x = E0 + along * np.cos(heading) - across * np.sin(heading)
    y = N0 + along * np.sin(heading) + across * np.cos(heading)
    xyz = np.column_stack([x, y, np.full(len(x), 5.0)])
    path = _write_las(tmp_path / "diag.las", xyz)
    blocks = plan_blocks([path], None, block_length_m=50.0, overlap_m=5.0, crs=CRS)
    assert len(blocks) == 4
    assert all(b.gps_time_range is None for b in blocks)
    direction = np.diff(shapely.get_coordinates(blocks[1].path)[[0, -1]], axis=0)[0]
    assert np.degrees(np.arctan2(direction[1], direction[0])) % 180 == pytest.approx(30.0, abs=0.5)
    assert blocks[0].half_width_m == pytest.approx(7.0, abs=0.1)  # the points' extent plus 1 m
    owners = sum(b.in_core(b.locate(x, y)).astype(int) for b in blocks)
    assert (owners == 1).all()
    inside = np.zeros(len(x), dtype=bool)
    for b in blocks:
        inside |= shapely.intersects_xy(b.polygon, x, y)
    assert inside.all()


def test_plan_rejects_bad_lengths():
    with pytest.raises(ValueError, match="positive"):
        plan_blocks(None, _trajectory(), block_length_m=0.0)


# reading


@pytest.fixture(scope="module")
def small_survey(tmp_path_factory) -> Path:
    """Every eighth point of the urban sample (300k points) as a LAZ file with its CRS."""
    source = SAMPLES / "urban" / "survey.laz"
    if not source.is_file():
        pytest.skip("the committed urban sample is absent")
    las = laspy.read(source)
    out = laspy.LasData(las.header)
    out.points = las.points[::8].copy()
    path = tmp_path_factory.mktemp("small") / "survey.laz"
    out.write(path)
    return path


def test_read_block_keeps_exactly_the_points_inside(small_survey):
    survey = small_survey
    blocks = plan_blocks([survey], SAMPLES / "urban" / "trajectory.csv", block_length_m=40.0)
    block = blocks[1]
    got = read_block([survey], block, chunk_points=50_000)
    full = read_points(survey)
    want = shapely.intersects_xy(block.polygon, full.xyz[:, 0], full.xyz[:, 1])
    assert 0 < len(got) == int(want.sum()) < len(full)
    order = np.lexsort(got.xyz.T)
    ref = np.lexsort(full.xyz[want].T)
    np.testing.assert_array_equal(got.xyz[order], full.xyz[want][ref])
    np.testing.assert_array_equal(got.intensity[order], full.intensity[want][ref])
    np.testing.assert_array_equal(got.gps_time[order], full.gps_time[want][ref])
    # a block away from the survey reads nothing (the file is skipped by its header bounds)
    far = plan_blocks(None, _trajectory(100.0), block_length_m=100.0)[0]
    assert len(read_block(survey, far)) == 0


def test_split_into_blocks_writes_what_read_block_reads(small_survey, tmp_path):
    survey = small_survey
    blocks = plan_blocks([survey], SAMPLES / "urban" / "trajectory.csv", block_length_m=40.0)
    counts = CellCounts()
    parts = split_into_blocks(
        [survey], blocks, tmp_path, chunk_points=50_000, max_open=1, on_chunk=counts.add
    )
    assert sorted(parts) == [b.index for b in blocks]
    assert not list(tmp_path.glob("*.part*"))
    full = read_points(survey)
    assert counts.ground_cell_m(10.0) == derive_cell_m(full.xyz, 10.0)
    source = read_info(survey)
    for b in blocks:
        (path,) = parts[b.index]
        info = read_info(path)
        assert info.crs == source.crs and info.point_format == source.point_format
        got = read_points(path)
        want = shapely.intersects_xy(b.polygon, full.xyz[:, 0], full.xyz[:, 1])
        assert len(got) == int(want.sum())
        np.testing.assert_allclose(
            np.sort(got.gps_time), np.sort(full.gps_time[want]), rtol=0, atol=0
        )
        assert len(read_block(path, b)) == len(got)


def test_split_of_a_truncated_survey_fails_and_leaves_no_files(small_survey, tmp_path):
    data = small_survey.read_bytes()
    broken = tmp_path / "broken.laz"
    broken.write_bytes(data[: len(data) // 2])
    blocks = plan_blocks(None, SAMPLES / "urban" / "trajectory.csv", block_length_m=40.0)
    out = tmp_path / "blocks"
    with pytest.raises(SurveyError, match=r"broken\.laz: corrupt or truncated"):
        split_into_blocks(broken, blocks, out, chunk_points=50_000)
    assert list(out.iterdir()) == []


# stitching


def test_a_line_cut_into_ten_blocks_comes_out_whole():
    blocks = plan_blocks(None, _trajectory(), block_length_m=50.0, overlap_m=10.0)
    assert len(blocks) == 10
    truth = _line(-20.0, 520.0, 1.75)  # beyond both ends of the drive
    models = []
    for b in blocks:
        c = _seen(b, truth)
        models.append((b, MapModel.from_features(CRS, [_boundary(c)])))
    # every block saw a different piece, so every piece has its own ID
    assert len({m.lane_boundaries[0].id for _, m in models}) == 10
    out = stitch(models)
    (line,) = out.lane_boundaries
    assert _hausdorff(line.geometry, LineString(truth)) < 0.001
    assert line.geometry.length == pytest.approx(LineString(truth).length, abs=0.001)
    assert line.id == feature_id("lb", line.geometry, SURVEY)
    assert line.marking == MarkingKind.SOLID and line.color == Color.WHITE


def test_pieces_a_few_centimetres_apart_still_join():
    blocks = plan_blocks(None, _trajectory(), block_length_m=50.0, overlap_m=10.0)
    truth = _line(5.0, 495.0, -1.75)
    dashed = _line(5.0, 495.0, 1.75)
    models = []
    for k, b in enumerate(blocks):
        shift = 0.03 * (-1) ** k  # each block's extraction 3 cm off, alternating sides
        features = [
            _boundary(_seen(b, truth, shift)),
            _boundary(_seen(b, dashed, -shift), MarkingKind.DASHED),
        ]
        models.append((b, MapModel.from_features(CRS, features)))
    out = stitch(models)
    assert len(out.lane_boundaries) == 2
    for line in out.lane_boundaries:
        ref = truth if line.marking == MarkingKind.SOLID else dashed
        assert _hausdorff(line.geometry, LineString(ref)) < 0.031
        assert abs(line.geometry.length - LineString(ref).length) < 0.5


def test_different_kinds_do_not_join():
    blocks = plan_blocks(None, _trajectory(200.0), block_length_m=100.0, overlap_m=10.0)
    truth = _line(5.0, 195.0, 1.75)
    kinds = [MarkingKind.SOLID, MarkingKind.DASHED]
    models = [
        (b, MapModel.from_features(CRS, [_boundary(_seen(b, truth), kind)]))
        for b, kind in zip(blocks, kinds, strict=True)
    ]
    out = stitch(models)
    assert sorted(b.marking for b in out.lane_boundaries) == sorted(kinds)
    a, b = sorted(out.lane_boundaries, key=lambda f: f.marking)
    # they meet at the cut between the two cores, neither overlapping nor leaving a gap
    assert a.geometry.length + b.geometry.length == pytest.approx(
        LineString(truth).length, abs=0.01
    )


def test_point_features_in_overlaps_are_kept_once_and_references_follow():
    blocks = plan_blocks(None, _trajectory(), block_length_m=50.0, overlap_m=15.0)
    pole_s = np.arange(3.0, 500.0, 7.0)
    pole_xy = _xy(pole_s, np.full_like(pole_s, -6.0))
    models = []
    for k, b in enumerate(blocks):
        features = []
        rng = np.random.default_rng(k)
        for x, y in pole_xy:
            if not shapely.intersects_xy(b.polygon, x, y):
                continue
            # each block sees a pole a little differently: a different position, another ID
            dx, dy = rng.normal(0, 0.02, 2)
            pole = Pole.create(
                Point(x + dx, y + dy, 5.0), 6.0, 0.1, survey_id=SURVEY, method="test"
            )
            sign = Sign.create(
                Point(x + dx, y + dy, 8.0),
                SignClass.WARNING,
                SignShape.TRIANGLE,
                90.0,
                survey_id=SURVEY,
                method="test",
                pole=pole.id,
            )
            features += [pole, sign]
        models.append((b, MapModel.from_features(CRS, features)))
    seen = sum(len(m.poles) for _, m in models)
    assert seen >= len(pole_s) + 30  # many poles lie in overlaps and were seen twice
    out = stitch(models)
    assert len(out.poles) == len(pole_s) and len(out.signs) == len(pole_s)
    xy = np.array([anchor_point(p.geometry)[:2] for p in out.poles])
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    assert d[~np.eye(len(xy), dtype=bool)].min() > 5.0  # no pole twice
    poles = {p.id: p for p in out.poles}
    for sign in out.signs:
        assert sign.pole in poles
        assert poles[sign.pole].geometry.distance(Point(sign.geometry.x, sign.geometry.y)) < 0.1


def test_lanes_are_stitched_with_their_boundaries_and_junctions_rebuilt():
    """Two lanes' worth of road with a 50 m junction gap in the middle (longer than any block's
    overlap): boundaries and lanes come out whole, lanes refer to the stitched boundaries, and
    a lane through the junction links the lane before it to the lane after it."""
    blocks = plan_blocks(None, _trajectory(), block_length_m=40.0, overlap_m=10.0)
    stretches = [(2.0, 220.0), (270.0, 498.0)]
    truth = {(k, t): _line(a, b, t) for k, (a, b) in enumerate(stretches) for t in (-1.75, 1.75)}
    centres = {k: _line(a, b, 0.0) for k, (a, b) in enumerate(stretches)}
    models = []
    for b in blocks:
        features = []
        ids = {}
        for key, coords in truth.items():
            c = _seen(b, coords)
            if c is not None:
                f = _boundary(c)
                ids[key] = f.id
                features.append(f)
        for k, coords in centres.items():
            c = _seen(b, coords)
            if c is not None and (k, 1.75) in ids and (k, -1.75) in ids:
                features.append(_lane(c, ids[(k, 1.75)], ids[(k, -1.75)]))
        models.append((b, MapModel.from_features(CRS, features)))
    out = stitch(models)
    assert len(out.lane_boundaries) == 4
    by_geom = {
        key: min(out.lane_boundaries, key=lambda f: _hausdorff(f.geometry, LineString(c)))
        for key, c in truth.items()
    }
    for key, f in by_geom.items():
        assert _hausdorff(f.geometry, LineString(truth[key])) < 0.001
    regular = [ln for ln in out.lanes if ln.left_boundary]
    junction = [ln for ln in out.lanes if not ln.left_boundary]
    assert len(regular) == 2 and len(junction) == 1
    for k in (0, 1):
        (lane,) = [ln for ln in regular if _hausdorff(ln.geometry, LineString(centres[k])) < 0.001]
        assert lane.left_boundary == by_geom[(k, 1.75)].id
        assert lane.right_boundary == by_geom[(k, -1.75)].id
        assert len(lane.widths_m) == len(lane.geometry.coords)
    before, after = sorted(regular, key=lambda ln: anchor_point(ln.geometry)[0])
    (through,) = junction
    assert before.successors == (through.id,) and through.predecessors == (before.id,)
    assert through.successors == (after.id,) and after.predecessors == (through.id,)
    start, end = shapely.get_coordinates(through.geometry)[[0, -1]]
    assert np.hypot(*(start - shapely.get_coordinates(before.geometry)[-1])) < 0.01
    assert np.hypot(*(end - shapely.get_coordinates(after.geometry)[0])) < 0.01


def test_stitching_empty_blocks_gives_an_empty_map():
    blocks = plan_blocks(None, _trajectory(200.0), block_length_m=50.0)
    out = stitch([(b, MapModel(CRS)) for b in blocks])
    assert out.is_empty and out.crs == CRS


def test_extract_block_with_too_few_points_warns():
    block = plan_blocks(None, _trajectory(100.0), block_length_m=100.0)[0]
    r = extract_block(
        PointChunk(np.zeros((5, 3))), block, crs=CRS, survey_id=SURVEY, trajectory=_trajectory()
    )
    assert r.model.is_empty and "too few" in r.warnings[0]


# the whole chain on a committed sample


@pytest.fixture(scope="module")
def urban_builds():
    scene = SAMPLES / "urban"
    if not (scene / "survey.laz").is_file():
        pytest.skip("the committed urban sample is absent")
    from pipeline.ortho import read_ortho

    ortho = read_ortho(scene / "ortho.tif", dst_crs=CRS)
    kwargs = {"trajectory": scene / "trajectory.csv", "ortho": ortho}
    single = extract_map([scene / "survey.laz"], **kwargs)
    blocked = extract_map_blocked([scene / "survey.laz"], block_length_m=40.0, **kwargs)
    return scene, single, blocked


@pytest.mark.slow
def test_blocked_build_scores_like_the_single_build(urban_builds):
    """The urban sample in four blocks of 40 m scores like the single build, layer by layer.

    Blocks cost no accuracy through stitching; the extraction stages, though, fit some figures
    per block (the intensity curve, the paint threshold) and lay their grids from the block's
    points, so a marginal detection can flip: with blocks of 45-60 m a bar in the cross street
    at the threshold becomes a false stop line in one block (stop lines F1 0.80, not 0.99).
    """
    from formats.gpkg import read_gpkg
    from qa.score import SCORED_LAYERS, score_maps

    scene, single, blocked = urban_builds
    assert blocked.parameters["blocks"]["count"] == 4  # 120 m in blocks of 40 m
    assert set(blocked.timings) >= {"plan", "split", "read", "ground", "markings", "stitch"}
    assert blocked.warnings == single.warnings
    truth = read_gpkg(scene / "truth.gpkg")
    one, many = score_maps(truth, single.model), score_maps(truth, blocked.model)
    for layer in SCORED_LAYERS:
        a, b = one.layer(layer), many.layer(layer)
        if hasattr(a, "buffers"):
            for x, y in zip(a.buffers, b.buffers, strict=True):
                assert (x.f1 is None) == (y.f1 is None), layer
                assert x.f1 is None or abs(x.f1 - y.f1) <= 0.02, (layer, x, y)
        elif hasattr(a, "f1"):
            assert a.f1 == b.f1 or abs(a.f1 - b.f1) <= 0.02, (layer, a, b)
        else:
            assert (
                a.mean_best_iou == b.mean_best_iou or abs(a.mean_best_iou - b.mean_best_iou) <= 0.02
            )
    assert many.layer("lanes").edge_precision == one.layer("lanes").edge_precision
    assert many.layer("lanes").edge_recall == one.layer("lanes").edge_recall


@pytest.mark.slow
def test_blocked_build_has_the_single_builds_lines_and_no_duplicates(urban_builds):
    _, single, blocked = urban_builds
    model = blocked.model
    # lane boundaries matched between the two builds coincide within 5 cm
    # (across the lines: the ends of one build's lines may reach a little past the other's)
    ref = shapely.union_all([b.geometry for b in single.model.lane_boundaries])
    ends = shapely.union_all([shapely.boundary(b.geometry) for b in single.model.lane_boundaries])
    matched = 0.0
    for b in model.lane_boundaries:
        pts = shapely.get_coordinates(shapely.segmentize(b.geometry, 0.5))
        pts = shapely.points(pts[:, 0], pts[:, 1])
        d = shapely.distance(ref, pts)
        near = d < 0.5
        matched += near.sum() * 0.5
        inner = near & (shapely.distance(ends, pts) > 0.5)
        assert inner.sum() == 0 or d[inner].max() <= 0.05, b.id
    assert matched >= 0.95 * sum(b.geometry.length for b in single.model.lane_boundaries)
    # a line crossing several blocks is one feature: no two pieces meet end to end
    for layer in ("lane_boundaries", "lanes"):
        assert len(model.layer(layer)) <= len(single.model.layer(layer))
    # no feature twice: no more pairs of features of one layer within 0.1 m of each other (over
    # 1 m of a line) than the single build has
    for layer in model.counts():
        assert _close_pairs(model, layer) <= _close_pairs(single.model, layer), layer
    # references are valid
    ids = model.by_id()
    for lane in model.lanes:
        for ref_id in (lane.left_boundary, lane.right_boundary, *lane.successors):
            assert ref_id is None or ref_id in ids
    for sign in model.signs:
        assert sign.pole is None or sign.pole in ids


def _close_pairs(model: MapModel, layer: str) -> int:
    """Pairs of features of ``layer`` within 0.1 m of each other: points (anchors) at all, lines
    along more than 1 m."""
    feats = model.layer(layer)
    pairs = 0
    for i, f in enumerate(feats):
        for g in feats[i + 1 :]:
            if f.geometry.distance(g.geometry) >= 0.1:
                continue
            if isinstance(f.geometry, LineString) and layer != "stop_lines":
                pairs += f.geometry.intersection(g.geometry.buffer(0.1)).length > 1.0
            else:
                a, b = anchor_point(f.geometry), anchor_point(g.geometry)
                pairs += float(np.hypot(a[0] - b[0], a[1] - b[1])) < 0.1
    return pairs


def _write_las(path: Path, xyz: np.ndarray) -> Path:
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.offsets = xyz.min(axis=0)
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.intensity = np.full(len(xyz), 1000, np.uint16)
    las.gps_time = np.arange(len(xyz)) * 1e-4
    las.write(path)
    return path


@pytest.mark.slow
def test_highway_lines_crossing_ten_blocks_come_out_whole():
    """The highway sample in ten blocks of about 25 m: the two lines beside the vehicle run the
    whole 250 m through nine cuts and each comes out as one feature, and no two pieces that
    continue each other are left apart at a cut."""
    scene = SAMPLES / "highway"
    if not (scene / "survey.laz").is_file():
        pytest.skip("the committed highway sample is absent")
    traj = read_trajectory(scene / "trajectory.csv")
    result = extract_map_blocked([scene / "survey.laz"], trajectory=traj, block_length_m=26.0)
    assert result.parameters["blocks"]["count"] == 10
    drive = LineString(traj.xyz[:, :2])
    lines = result.model.lane_boundaries
    beside = [b for b in lines if drive.distance(Point(anchor_point(b.geometry)[:2])) < 2.5]
    assert len(beside) == 2
    assert all(b.geometry.length > 240.0 for b in beside)
    # every end lying on a cut between two cores: nothing of the same kind continues it there
    blocks = plan_blocks(None, traj, block_length_m=26.0)
    for block in blocks[:-1]:
        ends = []
        for b in lines:
            c = shapely.get_coordinates(b.geometry)[[0, -1]]
            at_cut = np.abs(block.locate(c[:, 0], c[:, 1]) - block.core_s1) < 0.01
            ends += [(b, k, c[k]) for k in (0, 1) if at_cut[k]]
        for i, (a, ka, pa) in enumerate(ends):
            for b, kb, pb in ends[i + 1 :]:
                if a is not b and ka != kb and a.marking == b.marking:
                    assert np.hypot(*(pa - pb)) > 0.5, (a.id, b.id)


def test_stitched_lane_neighbours_are_mutual() -> None:
    """A one-sided neighbour link is completed; a contradicted one is dropped on both sides."""
    from pipeline.blocks import _symmetric_lane_graph
    from tests.common import sample_model

    a, b, c, d, e = sample_model().lanes
    one_sided = b.replace(left_neighbour=None)  # a names b as right neighbour, b names nobody
    contradicted = e.replace(left_neighbour=a.id)  # e claims a, but a's right neighbour is b
    lanes = {f.id: f for f in _symmetric_lane_graph([a, one_sided, c, d, contradicted])}
    assert lanes[b.id].left_neighbour == a.id and lanes[a.id].right_neighbour == b.id
    assert lanes[e.id].left_neighbour is None
    for f in lanes.values():
        if f.right_neighbour:
            assert lanes[f.right_neighbour].left_neighbour == f.id
        if f.left_neighbour:
            assert lanes[f.left_neighbour].right_neighbour == f.id
