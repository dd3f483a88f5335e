"""Physics of a simulated survey of a real simulated scene (urban, 90 m, with parked cars).

Every check measures the written files (survey.laz, trajectory.csv) against the scene geometry:
paint is brighter than asphalt at equal range, the road hidden behind a parked car has no points,
density falls with distance from the trajectory, sign faces are the brightest returns, and the
same seed gives the same bytes. The scanner runs with its default parameters except outliers
(random ranges by design, which may land anywhere, shadows included).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import laspy
import numpy as np
import open3d as o3d
import pytest
import shapely

from data_samples.simulator import build_scene
from data_samples.simulator.scanner import ScannerParams, scan_plane_normal
from data_samples.simulator.scene import Scene
from data_samples.simulator.simulate import simulate
from pipeline.trajectory import read_trajectory

KIND, LENGTH_M = "urban", 90.0
PARAMS = ScannerParams(outlier_share=0.0)
GROUND_MATERIALS = {"asphalt", "concrete", "grass"}


@pytest.fixture(scope="module")
def seed() -> int:
    """The first urban seed whose scene parks cars along the road (most seeds do)."""
    for candidate in range(40):
        if build_scene(KIND, candidate, length_m=LENGTH_M).metadata.get("parked_cars", 0) >= 1:
            return candidate
    raise AssertionError("no urban scene among seeds 0-39 has parked cars")


@pytest.fixture(scope="module")
def scene(seed: int) -> Scene:
    return build_scene(KIND, seed, length_m=LENGTH_M)


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory, seed: int) -> Path:
    out = tmp_path_factory.mktemp("survey")
    simulate(KIND, seed, out, length_m=LENGTH_M, params=PARAMS, ortho=False)
    return out


@pytest.fixture(scope="module")
def cloud(survey: Path, scene: Scene) -> dict[str, np.ndarray]:
    """Points in local metres with intensity, range from the scanner and the nearest surface."""
    las = laspy.read(survey / "survey.laz")
    origin = np.array(scene.origin)
    xyz = np.c_[np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)] - origin
    traj = read_trajectory(survey / "trajectory.csv")
    t = np.asarray(las.gps_time)
    scanner = (
        np.stack([np.interp(t, traj.gps_time, traj.xyz[:, i]) for i in range(3)], axis=1) - origin
    )
    rc, surface_of = _raycaster(scene, lambda s: True)
    closest = rc.compute_closest_points(o3d.core.Tensor(xyz.astype(np.float32)))
    near = closest["points"].numpy().astype(np.float64)
    surface = surface_of[closest["geometry_ids"].numpy()]
    normal = closest["primitive_normals"].numpy().astype(np.float64)
    return {
        "xyz": xyz,
        "intensity": np.asarray(las.intensity).astype(np.float64),
        "range": np.linalg.norm(xyz - scanner, axis=1),
        "surface": surface,
        "off_surface": np.linalg.norm(xyz - near, axis=1),
        "material": np.array([s.material for s in scene.surfaces])[surface],
        "front": np.einsum("ij,ij->i", scanner - xyz, normal) > 0,
    }


def _raycaster(scene: Scene, keep) -> tuple[o3d.t.geometry.RaycastingScene, np.ndarray]:
    rc = o3d.t.geometry.RaycastingScene()
    table = {}
    for i, s in enumerate(scene.surfaces):
        if keep(s):
            gid = rc.add_triangles(
                o3d.core.Tensor(s.vertices.astype(np.float32)),
                o3d.core.Tensor(s.triangles.astype(np.uint32)),
            )
            table[gid] = i
    lookup = np.zeros(max(table) + 1, dtype=np.int64)
    for gid, i in table.items():
        lookup[gid] = i
    return rc, lookup


def _ground_z(scene: Scene, xy: np.ndarray) -> np.ndarray:
    """Height of the ground surfaces (road, sidewalk, grass) under each xy; NaN where none."""
    rc, _ = _raycaster(scene, lambda s: s.material in GROUND_MATERIALS)
    rays = np.zeros((len(xy), 6), dtype=np.float32)
    rays[:, :2] = xy
    rays[:, 2] = 100.0
    rays[:, 5] = -1.0
    t = rc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64)
    return np.where(np.isfinite(t), 100.0 - t, np.nan)


def _path_coordinates(scene: Scene, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length along the drive path and distance from it (m), via its dense samples."""
    from scipy.spatial import cKDTree

    path = scene.drive_path
    dist, k = cKDTree(path.xyz[:, :2]).query(xy)
    return path.s[k], dist


def test_paint_is_brighter_than_asphalt_at_the_same_range(cloud, scene: Scene) -> None:
    road = (cloud["material"] == "asphalt") & (cloud["off_surface"] < 0.1)
    xy = cloud["xyz"][:, :2]
    painted = shapely.union_all([p.polygon for p in scene.paint])
    inside = road & shapely.contains_xy(painted.buffer(-0.03), xy[:, 0], xy[:, 1])
    bare = road & ~shapely.contains_xy(painted.buffer(0.3), xy[:, 0], xy[:, 1])
    i, r = cloud["intensity"], cloud["range"]
    bins = [(2, 4), (4, 7), (7, 11)]
    for lo, hi in bins:
        in_bin = (r >= lo) & (r < hi)
        assert (inside & in_bin).sum() > 100 and (bare & in_bin).sum() > 2000, (lo, hi)
        assert np.median(i[inside & in_bin]) > 3.0 * np.median(i[bare & in_bin]), (lo, hi)
    # but raw intensity alone cannot separate them: far paint is as dark as near asphalt
    far_paint = np.quantile(i[inside & (r >= 7)], 0.25)
    near_asphalt = np.median(i[bare & (r < 4)])
    assert far_paint < near_asphalt


def _car_visibility(scene: Scene, survey: Path, car_index: int, cell_m: float):
    """Ground cells around a parked car: their centres, ground z, and whether the line of sight
    from the scanner (at the profile whose scan plane holds the cell; the plane is turned by
    ``PARAMS.yaw_deg``) is blocked by the car, clear, or blocked by something else."""
    car = scene.surfaces[car_index]
    lo = car.vertices[:, :2].min(axis=0) - 9.0
    hi = car.vertices[:, :2].max(axis=0) + 9.0
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0], cell_m), np.arange(lo[1], hi[1], cell_m))
    xy = np.c_[gx.ravel(), gy.ravel()] + cell_m / 2
    z = _ground_z(scene, xy)
    traj = read_trajectory(survey / "trajectory.csv")
    pos = traj.xyz - np.array(scene.origin)
    h = np.radians(90.0 - traj.heading_deg)  # counter-clockwise from east
    nb = scan_plane_normal(PARAMS)
    normal = np.c_[np.cos(h) * nb[0] - np.sin(h) * nb[1], np.sin(h) * nb[0] + np.cos(h) * nb[1]]
    along = np.abs(
        (xy[:, None, 0] - pos[None, :, 0]) * normal[None, :, 0]
        + (xy[:, None, 1] - pos[None, :, 1]) * normal[None, :, 1]
    )
    k = np.argmin(along, axis=1)
    ok = np.isfinite(z) & (along[np.arange(len(xy)), k] < 0.05)
    target = np.c_[xy, np.nan_to_num(z)]
    rays = np.c_[pos[k], target - pos[k]].astype(np.float32)
    rc, surface_of = _raycaster(scene, lambda s: True)
    hit = rc.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    blocker = surface_of[np.minimum(hit["geometry_ids"].numpy(), len(surface_of) - 1)]
    blocked = t < 0.97
    by_car = ok & blocked & (blocker == car_index)
    clear = ok & ~blocked
    footprint = shapely.convex_hull(shapely.multipoints(car.vertices[:, :2]))
    under = shapely.contains_xy(footprint.buffer(0.3), xy[:, 0], xy[:, 1])
    shape = gx.shape
    return xy, z, by_car.reshape(shape), clear.reshape(shape), under.reshape(shape)


def test_the_road_behind_a_parked_car_has_no_points(cloud, scene: Scene, survey: Path) -> None:
    cars = [i for i, s in enumerate(scene.surfaces) if s.material == "car_body"]
    assert cars, "the scene should hold parked cars"
    cell = 0.25
    xyz = cloud["xyz"]
    for car_index in cars:
        xy, z, by_car, clear, under = _car_visibility(scene, survey, car_index, cell)
        # shadow cells: hidden by the car with every neighbour hidden too (robust to pose noise)
        pad = np.pad(by_car, 1)
        core = by_car.copy()
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                core &= pad[1 + dr : 1 + dr + by_car.shape[0], 1 + dc : 1 + dc + by_car.shape[1]]
        shadow = (core & ~under).ravel()
        assert shadow.sum() >= 40, "the car should hide a sizeable strip of ground"
        # the equal number of clearly visible cells nearest to the shadow
        visible = np.flatnonzero(clear.ravel() & ~under.ravel())
        centre = xy[shadow].mean(axis=0)
        visible = visible[np.argsort(np.linalg.norm(xy[visible] - centre, axis=1))[: shadow.sum()]]

        cell_of = np.floor((xyz[:, :2] - (xy[0] - cell / 2)) / cell).astype(np.int64)
        rows, cols = by_car.shape
        inside = (
            (cell_of[:, 0] >= 0)
            & (cell_of[:, 0] < cols)
            & (cell_of[:, 1] >= 0)
            & (cell_of[:, 1] < rows)
        )
        flat = np.where(inside, cell_of[:, 1] * cols + cell_of[:, 0], -1)
        on_ground = inside & (np.abs(xyz[:, 2] - z[np.maximum(flat, 0)]) < 0.15)
        in_shadow = on_ground & np.isin(flat, np.flatnonzero(shadow))
        in_visible = on_ground & np.isin(flat, visible)
        assert in_shadow.sum() == 0, f"car {car_index}: {in_shadow.sum()} points in its shadow"
        assert in_visible.sum() > shadow.sum(), (
            f"car {car_index}: the visible strip is nearly empty"
        )


def test_density_falls_with_distance_from_the_trajectory(cloud, scene: Scene) -> None:
    road = (cloud["material"] == "asphalt") & (cloud["off_surface"] < 0.1)
    xy = cloud["xyz"][road, :2]
    # keep clear of the survey's start and end, where the scan lines fan out
    end = scene.drive_path.s[-1]
    along, lateral = _path_coordinates(scene, xy)
    lateral = lateral[(along > end * 0.15) & (along < end * 0.85)]
    # road area per band from a 0.2 m grid of the road surface
    rc, _ = _raycaster(scene, lambda s: s.material == "asphalt")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0], 0.2), np.arange(lo[1], hi[1], 0.2))
    grid = np.c_[gx.ravel(), gy.ravel()]
    rays = np.zeros((len(grid), 6), dtype=np.float32)
    rays[:, :2], rays[:, 2], rays[:, 5] = grid, 100.0, -1.0
    grid = grid[np.isfinite(rc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy())]
    g_along, g_lateral = _path_coordinates(scene, grid)
    g_lateral = g_lateral[(g_along > end * 0.15) & (g_along < end * 0.85)]
    bands = [0.0, 1.5, 3.0, 5.0, 7.0, 10.0]
    density = []
    for a, b in itertools.pairwise(bands):
        area = np.sum((g_lateral >= a) & (g_lateral < b)) * 0.04
        assert area > 20.0, (a, b)
        density.append(np.sum((lateral >= a) & (lateral < b)) / area)
    assert all(d1 > d2 for d1, d2 in itertools.pairwise(density)), density
    assert density[0] > 5 * density[-1]


def test_retroreflective_sign_faces_are_the_brightest(cloud) -> None:
    # a face point is seen from the front (the back panel lies right behind the face)
    # (navigation errors are smooth: a whole sign can sit a few cm off its true place)
    face = (cloud["material"] == "sign_face") & (cloud["off_surface"] < 0.15) & cloud["front"]
    assert face.sum() > 100
    others = ~face & (cloud["off_surface"] < 0.15)
    i = cloud["intensity"]
    assert np.median(i[face]) > np.quantile(i[others], 0.999)
    top = i >= np.quantile(i, 0.999)
    assert np.mean(face[top]) > 0.8


def test_same_seed_gives_identical_files(survey: Path, seed: int, tmp_path: Path) -> None:
    simulate(KIND, seed, tmp_path, length_m=LENGTH_M, params=PARAMS, ortho=False)
    for name in ("survey.laz", "truth.gpkg", "trajectory.csv", "scene.json"):
        assert (tmp_path / name).read_bytes() == (survey / name).read_bytes(), name


def test_committed_samples_are_complete_and_small(samples_dir: Path) -> None:
    from data_samples.make_samples import MAX_LAZ_BYTES, SAMPLES

    readme = (samples_dir / "README.md").read_text()
    for sample in SAMPLES:
        folder = samples_dir / sample.name
        names = {"survey.laz", "trajectory.csv", "ortho.tif", "truth.gpkg", "scene.json"}
        if sample.changed:
            names.add("changes.json")
        assert names <= {p.name for p in folder.iterdir()}, sample.name
        assert (folder / "survey.laz").stat().st_size <= MAX_LAZ_BYTES
        record = json.loads((folder / "scene.json").read_text())
        assert (record["kind"], record["seed"], record["changed"]) == (
            sample.kind,
            sample.seed,
            sample.changed,
        )
        with laspy.open(folder / "survey.laz") as reader:
            assert reader.header.point_count == record["counts"]["points"]
            crs = reader.header.parse_crs()
            assert [c.to_epsg() for c in crs.sub_crs_list] == [4549, 5737]
        assert sample.command in readme


@pytest.mark.slow
def test_committed_urban_sample_matches_the_simulator(samples_dir: Path, tmp_path: Path) -> None:
    """Regenerating a sample gives its committed bytes (the samples are in step with the code)."""
    from data_samples.make_samples import SAMPLES

    sample = next(s for s in SAMPLES if s.name == "urban")
    simulate(sample.kind, sample.seed, tmp_path, length_m=sample.length_m)
    for name in ("survey.laz", "trajectory.csv", "truth.gpkg", "scene.json", "ortho.tif"):
        committed = samples_dir / sample.name / name
        assert (tmp_path / name).read_bytes() == committed.read_bytes(), name
