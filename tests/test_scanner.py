"""The simulated profile scanner and orthophoto on a tiny hand-built scene.

The scene: a flat asphalt quad, a white stripe at y = 1.6..1.75 m, a box "car" at x 10..14.5,
y 3..4.8 (1.5 m high) and a pole at (15, -6); the vehicle drives 30 m east along y = 0.
"""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import open3d as o3d
import pytest
import rasterio
from shapely import box

from data_samples.simulator.orthophoto import render_ortho
from data_samples.simulator.scanner import PaintLookup, ScannerParams, scan_scene, value_noise
from data_samples.simulator.scene import DrivePath, PaintPatch, Scene, Surface
from pipeline.model import MapModel
from pipeline.trajectory import read_trajectory

ORIGIN = (500000.0, 3500000.0, 10.0)
CAR = (10.0, 3.0, 14.5, 4.8, 1.5)  # x0, y0, x1, y1, height
QUIET = ScannerParams(  # no navigation errors or outliers; scan plane perpendicular to travel
    yaw_deg=0.0,
    outlier_share=0.0,
    position_sigma_m=0.0,
    roll_sigma_deg=0.0,
    pitch_sigma_deg=0.0,
    yaw_sigma_deg=0.0,
)


def _quad(x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], dtype=float)
    return v, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32)


def _box(x0: float, y0: float, x1: float, y1: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for z in (0, h) for y in (y0, y1) for x in (x0, x1)], dtype=float)
    faces = [[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
             [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]]  # fmt: skip
    return v, np.array(faces, dtype=np.int32)


def _cylinder(
    cx: float, cy: float, r: float, h: float, n: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)
    v = np.vstack([np.c_[ring, np.zeros(n)], np.c_[ring, np.full(n, h)]])
    faces = []
    for i in range(n):
        j = (i + 1) % n
        faces += [[i, j, n + j], [i, n + j, n + i]]
    return v, np.array(faces, dtype=np.int32)


def tiny_scene(seed: int = 1) -> Scene:
    surfaces = (
        Surface("ground", "asphalt", *_quad(-40, -20, 70, 20)),
        Surface("car", "car_body", *_box(*CAR)),
        Surface("pole", "pole_metal", *_cylinder(15, -6, 0.1, 6)),
    )
    paint = (PaintPatch(box(-40, 1.6, 70, 1.75), "paint_white", wear=0.1),)
    x = np.arange(0, 30.01, 0.1)
    path = DrivePath(np.c_[x, np.zeros_like(x), np.zeros_like(x)], np.zeros_like(x), x.copy())
    return Scene("tiny", seed, "EPSG:4549", ORIGIN, surfaces, paint, path, MapModel("EPSG:4549"))


@pytest.fixture(scope="module")
def quiet_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("quiet") / "survey.laz"
    result = scan_scene(tiny_scene(), out, QUIET, trajectory_csv=out.with_name("trajectory.csv"))
    return out, result


@pytest.fixture(scope="module")
def default_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("default") / "survey.laz"
    scan_scene(tiny_scene(), out)
    return out


def _local(las: laspy.LasData) -> np.ndarray:
    return np.c_[np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)] - np.array(ORIGIN)


def _distance_to_scene(xyz: np.ndarray) -> np.ndarray:
    rc = o3d.t.geometry.RaycastingScene()
    for surf in tiny_scene().surfaces:
        rc.add_triangles(
            o3d.core.Tensor(surf.vertices.astype(np.float32)),
            o3d.core.Tensor(surf.triangles.astype(np.uint32)),
        )
    return rc.compute_distance(o3d.core.Tensor(xyz.astype(np.float32))).numpy()


def test_points_lie_on_the_surfaces_within_range_noise(quiet_scan) -> None:
    las = laspy.read(quiet_scan[0])
    dist = _distance_to_scene(_local(las))
    assert len(dist) > 100_000
    assert dist.max() < 5 * QUIET.range_noise_m  # 5 sigma of 8 mm
    assert 0.002 <= np.median(dist) < 0.01  # the noise is there (less than sigma off-normal)


def test_default_errors_keep_points_near_the_surfaces(default_scan: Path) -> None:
    dist = _distance_to_scene(_local(laspy.read(default_scan)))
    assert np.quantile(dist, 0.99) < 0.10
    outliers = np.mean(dist > 0.5)
    assert 0.0002 < outliers < 0.003  # outlier_share 0.001 of pulses


def test_the_car_occludes_the_ground_behind_it(quiet_scan) -> None:
    xyz = _local(laspy.read(quiet_scan[0]))
    ground = np.abs(xyz[:, 2]) < 0.05
    x, y = xyz[:, 0], xyz[:, 1]
    # seen from y = 0 at 2.2 m, a 1.5 m box ending at y = 4.8 hides the ground out to y ~ 15
    shadow = ground & (x > CAR[0] + 0.3) & (x < CAR[2] - 0.3) & (y > 5.0) & (y < 12.0)
    beside = ground & (x > 16.0) & (x < 19.9) & (y > 5.0) & (y < 12.0)
    assert shadow.sum() == 0
    assert beside.sum() > 1000
    on_car = (x > CAR[0] - 0.01) & (x < CAR[2] + 0.01) & (y > CAR[1] - 0.03) & (xyz[:, 2] > 0.1)
    assert on_car.sum() > 1000


def test_turned_scan_plane_looks_forward_on_the_right(default_scan: Path) -> None:
    las = laspy.read(default_scan)
    xyz, t = _local(las), np.asarray(las.gps_time)
    angle = np.asarray(las.scan_angle) * 0.006
    start = t.min()  # within a few ms of the first profile's start
    scanner_x = ScannerParams().lever_forward_m + 8.0 * (t - start)
    ground = (np.abs(xyz[:, 2]) < 0.05) & (np.abs(xyz[:, 1]) > 1.0)
    ratio = (xyz[:, 0] - scanner_x) / np.maximum(np.abs(xyz[:, 1]), 1e-9)
    tan_yaw = np.tan(np.radians(ScannerParams().yaw_deg))
    right = ground & (angle > 45) & (angle < 80)
    left = ground & (angle < -45) & (angle > -80)
    assert np.median(ratio[right]) == pytest.approx(tan_yaw, abs=0.03)
    assert np.median(ratio[left]) == pytest.approx(-tan_yaw, abs=0.03)


def test_same_seed_gives_byte_identical_laz(tmp_path: Path, quiet_scan) -> None:
    again = tmp_path / "again.laz"
    scan_scene(tiny_scene(), again, QUIET)
    assert again.read_bytes() == quiet_scan[0].read_bytes()
    other = tmp_path / "other.laz"
    scan_scene(tiny_scene(), other, QUIET, scan_seed=99)
    assert other.read_bytes() != again.read_bytes()


def test_laz_header_fields_and_crs(quiet_scan) -> None:
    path, result = quiet_scan
    las = laspy.read(path)
    assert las.header.version == laspy.header.Version(1, 4)
    assert las.header.point_format.id == 6
    crs = las.header.parse_crs()
    assert crs.is_compound and [c.to_epsg() for c in crs.sub_crs_list] == [4549, 5737]
    assert len(las.points) == result.points
    assert np.all(las.classification == 0)
    assert np.all(las.return_number == 1) and np.all(las.number_of_returns == 1)
    assert np.all(las.point_source_id == 1)
    angle_deg = np.asarray(las.scan_angle) * 0.006
    assert angle_deg.min() >= -180.0 and angle_deg.max() <= 180.0
    assert angle_deg.min() < -80 and angle_deg.max() > 80  # both sides (nothing overhead here)
    # straight down is 0°, right of travel (south, y < 0 here) positive
    xyz = _local(las)
    below = np.abs(angle_deg) < 5
    right = (angle_deg > 30) & (angle_deg < 60)
    assert np.all(xyz[below, 2] < 0.05)
    assert np.all(xyz[right, 1] < 0)
    assert tuple(las.header.offsets) == ORIGIN
    assert np.allclose(las.header.scales, 0.001)


def test_gps_time_increases_profile_by_profile(quiet_scan) -> None:
    path, result = quiet_scan
    las = laspy.read(path)
    t = np.asarray(las.gps_time)
    assert np.all(np.diff(t) >= 0)
    profile = np.floor((t - result.gps_time_start) * QUIET.profile_rate_hz + 1e-6).astype(int)
    assert profile.min() == 0 and profile.max() == result.profiles - 1
    assert len(np.unique(profile)) == result.profiles
    assert 0 < result.gps_time_start < 604800  # GPS week seconds


def test_trajectory_csv_is_the_scanner_origin(quiet_scan) -> None:
    path, result = quiet_scan
    traj = read_trajectory(path.with_name("trajectory.csv"))
    assert traj.has_attitude
    dt = np.diff(traj.gps_time)
    assert np.allclose(dt[:-1], 0.01)
    local = traj.xyz - np.array(ORIGIN)
    assert np.allclose(local[:, 1], 0.0) and np.allclose(local[:, 2], QUIET.mount_height_m)
    assert np.allclose(traj.heading_deg, 90.0)  # driving east: azimuth 90° from grid north
    assert traj.gps_time[0] == pytest.approx(result.gps_time_start)


def test_paint_is_brighter_than_asphalt_near_the_vehicle(quiet_scan) -> None:
    las = laspy.read(quiet_scan[0])
    xyz, i = _local(las), np.asarray(las.intensity)
    ground = np.abs(xyz[:, 2]) < 0.05
    stripe = ground & (xyz[:, 1] > 1.62) & (xyz[:, 1] < 1.73)
    asphalt = ground & (xyz[:, 1] > 1.0) & (xyz[:, 1] < 1.5)
    assert np.median(i[stripe]) > 4 * np.median(i[asphalt])
    # far from the vehicle (15-20 m away) the asphalt is much darker than near asphalt
    far = ground & (np.abs(xyz[:, 1]) > 15) & (np.abs(xyz[:, 1]) < 20)
    assert np.median(i[far]) < 0.1 * np.median(i[asphalt])


def test_wear_removes_the_right_share_of_paint() -> None:
    xy = np.stack(np.meshgrid(np.arange(0, 20, 0.02), np.arange(0, 2, 0.02)), axis=-1).reshape(
        -1, 2
    )
    for wear in (0.0, 0.3, 0.7):
        lookup = PaintLookup((PaintPatch(box(0, 0, 20, 2), "paint_white", wear=wear),), seed=5)
        painted = np.mean(lookup.patch_index(xy) >= 0)
        assert painted == pytest.approx(1 - wear, abs=0.06)
    worn = PaintLookup((PaintPatch(box(0, 0, 20, 2), "paint_white", wear=0.5),), seed=5)
    mask = (worn.patch_index(xy) >= 0).reshape(100, 1000)
    # spatially correlated: neighbours 2 cm apart agree far more often than chance (50%)
    assert np.mean(mask[:, 1:] == mask[:, :-1]) > 0.85


def test_value_noise_is_smooth_and_deterministic() -> None:
    pts = np.random.default_rng(0).uniform(-100, 100, (5000, 3))
    a = value_noise(pts, 0.3, seed=4)
    assert np.array_equal(a, value_noise(pts, 0.3, seed=4))
    assert not np.array_equal(a, value_noise(pts, 0.3, seed=5))
    near = value_noise(pts + 0.01, 0.3, seed=4)
    assert np.abs(near - a).max() < 0.15


def test_orthophoto_shows_paint_and_the_car(tmp_path: Path) -> None:
    out = tmp_path / "ortho.tif"
    result = render_ortho(tiny_scene(), out, pixel_m=0.05, margin_m=10.0)
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 4549
        assert src.count == 3 and src.dtypes == ("uint8",) * 3
        assert src.res == (0.05, 0.05)
        img = src.read()

        def pixel(x: float, y: float) -> np.ndarray:
            row, col = src.index(ORIGIN[0] + x, ORIGIN[1] + y)
            return img[:, row, col].astype(int)

    assert result.width == img.shape[2] and result.height == img.shape[1]
    stripe = np.mean([pixel(x, 1.675).mean() for x in np.arange(0, 30, 0.5)])
    asphalt = np.mean([pixel(x, 0.8).mean() for x in np.arange(0, 30, 0.5)])
    assert stripe > asphalt + 80
    car = pixel(12.0, 4.0)
    assert car[0] > car[1] + 40  # red car body, seen from above (it occludes the ground)
    again = tmp_path / "again.tif"
    render_ortho(tiny_scene(), again, pixel_m=0.05, margin_m=10.0)
    assert again.read_bytes() == out.read_bytes()
