"""A simulated mobile-mapping profile scanner: ray casting, occlusion, intensity, LAZ output.

The sensor is modelled on a RIEGL-VMX-like single rotating profile scanner: a mirror sweeps a full
360° profile in a plane across the travel direction at :attr:`ScannerParams.profile_rate_hz`.
The plane is turned 30° about the vertical axis by default (right side forward; RIEGL VMX systems
mount their scanners at ±45° in an X) so that traffic signs, which face the traffic, are swept
face-on; with ``yaw_deg=0`` it is perpendicular to travel and sees sign faces only edge-on. It can
also be tilted about the lateral axis. The scanner moves as the vehicle drives
:attr:`~data_samples.simulator.scene.Scene.drive_path` at the scene's speed. Each pulse is cast
into the scene's surfaces with Open3D's Embree ray caster (float32, local metres); the first hit
is the return, so occlusion falls out of the geometry.

Errors, as on a real system:

- range noise (Gaussian along the ray) and a small share of outliers (random ranges short of
  the surface hit, or up to half the maximum range for a pulse that hits nothing);
- navigation errors: the rays are cast from the *true* pose but the points are georeferenced
  with the *estimated* pose (true pose plus smooth random-walk position and attitude errors), and
  the trajectory CSV reports that estimated pose (the scanner origin, 100 Hz);
- intensity: material reflectance with spatial texture, paint looked up per ground hit (worn
  paint shows asphalt through in patches), incidence falloff (cosine; retroreflective materials
  nearly independent of it), range falloff ``(r_ref / r) ** a`` clamped at ``r_ref``,
  multiplicative speckle, saturation at 65535 and a detection threshold that drops returns too
  weak to register (dark asphalt at grazing incidence far from the vehicle).

Output: LAS 1.4 point format 6 (LAZ, written in batches of profiles so memory stays bounded),
coordinates in the scene CRS (local + origin), 1 mm scales, offsets at the origin rounded to 1 m,
the CRS as a WKT VLR. ``scan_angle`` holds the raw LAS 1.4 value in 0.006° units (0 = straight
down, positive towards the right of the travel direction; laspy 2.7 does not scale it). GPS time
is GPS week seconds. Every random draw is seeded from ``(scene.seed, scan_seed, batch)``: the same
inputs give a byte-identical LAZ.

The texture and paint-wear fields (:func:`value_noise`, :class:`PaintLookup`) are functions of
position and the scene seed only, so the orthophoto renderer and a re-survey see the same paint.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import laspy
import numpy as np
import open3d as o3d
import shapely

from data_samples.simulator.scene import MATERIALS, DrivePath, Scene
from pipeline.errors import SurveyError
from pipeline.files import atomic_path

__all__ = [
    "MATERIAL_CODES",
    "PaintLookup",
    "ScanResult",
    "ScannerParams",
    "SurveyPoses",
    "build_raycasting_scene",
    "rotation_matrices",
    "scan_plane_normal",
    "scan_scene",
    "survey_poses",
    "value_noise",
    "write_scan_trajectory",
]

#: A stable integer per material (its position in MATERIALS), used to seed texture noise.
MATERIAL_CODES: dict[str, int] = {name: i for i, name in enumerate(MATERIALS)}

LAS_SCAN_ANGLE_UNIT_DEG = 0.006
_INVALID_ID = o3d.t.geometry.RaycastingScene.INVALID_ID


@dataclass(frozen=True, slots=True)
class ScannerParams:
    """Sensor, mounting, error and intensity parameters of the simulated scanner.

    Distances in metres, angles in degrees, rates in hertz, times in seconds. The defaults
    describe a survey-grade mobile-mapping system (about 290 k pulses per second).
    """

    profile_rate_hz: float = 200.0  # mirror revolutions (profiles) per second
    angular_step_deg: float = 0.25  # angle between pulses within a profile (1440 per profile)
    tilt_deg: float = 0.0  # scan plane rotated about the lateral axis; > 0 leans its top forward
    yaw_deg: float = (
        30.0  # scan plane turned about the vertical axis; > 0 turns its right side forward
    )
    mount_height_m: float = 2.2  # scanner origin above the road surface
    lever_forward_m: float = -0.8  # scanner origin ahead (+) / behind (-) of the path point
    lever_left_m: float = 0.0  # scanner origin left (+) / right (-) of the path point
    min_range_m: float = 1.0  # blind zone near the mirror
    max_range_m: float = 80.0  # returns beyond this are not recorded
    range_noise_m: float = 0.008  # 1-sigma range noise along the ray
    outlier_share: float = 0.001  # share of pulses returning a random range
    position_sigma_m: float = 0.02  # 1-sigma GNSS/INS position error (smooth random walk)
    position_correlation_s: float = 20.0
    roll_sigma_deg: float = 0.02  # 1-sigma attitude errors (smooth random walk)
    pitch_sigma_deg: float = 0.02
    yaw_sigma_deg: float = 0.04
    attitude_correlation_s: float = 5.0
    trajectory_rate_hz: float = 100.0  # rows per second in the trajectory CSV
    intensity_gain: float = 20000.0  # counts for reflectance 1 at normal incidence within r_ref
    range_ref_m: float = 5.0  # no range falloff closer than this
    range_exponent: float = 1.5  # falloff (range_ref_m / r) ** range_exponent beyond it
    retro_gain: float = 3.0  # extra return of retroreflective sheeting
    speckle_sigma: float = 0.15  # 1-sigma of the log-normal multiplicative speckle
    detection_threshold: float = 3.0  # returns weaker than this many counts are not recorded
    profiles_per_batch: int = 200  # profiles ray-cast and written together

    def __post_init__(self) -> None:
        if self.profile_rate_hz <= 0 or self.angular_step_deg <= 0:
            raise ValueError("profile_rate_hz and angular_step_deg must be positive")
        if not 0 < self.min_range_m < self.max_range_m:
            raise ValueError("need 0 < min_range_m < max_range_m")
        if not 0 <= self.outlier_share < 1:
            raise ValueError("outlier_share must be in [0, 1)")
        if self.profiles_per_batch < 1:
            raise ValueError("profiles_per_batch must be at least 1")

    @property
    def pulses_per_profile(self) -> int:
        """Pulses in one 360° profile.

        >>> ScannerParams(angular_step_deg=0.5).pulses_per_profile
        720
        """
        return round(360.0 / self.angular_step_deg)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What :func:`scan_scene` wrote. ``bounds`` is (minx, miny, minz, maxx, maxy, maxz) in the
    scene CRS (metres); all zeros when no point was written."""

    laz_path: Path
    trajectory_path: Path | None
    points: int
    profiles: int
    duration_s: float
    gps_time_start: float
    bounds: tuple[float, float, float, float, float, float]


# --------------------------------------------------------------------------------------------
# Deterministic spatial noise


def _hash01(seed: int, *cells: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) values hashed from integer cell coordinates and a seed (splitmix64 mix)."""
    primes = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
    with np.errstate(over="ignore"):
        h = np.full(cells[0].shape, np.uint64((seed * 0xD6E8FEB86659FD93) % 2**64))
        for c, p in zip(cells, primes, strict=False):
            h ^= c.astype(np.int64).view(np.uint64) * np.uint64(p)
            h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def value_noise(xyz: np.ndarray, scale_m: float, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) at the given feature scale, from 2D (n, 2) or 3D (n, 3) points.

    Deterministic in position and seed; neighbouring points closer than ``scale_m`` get similar
    values.

    >>> v = value_noise(np.array([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0]]), 0.25, seed=1)
    >>> bool(abs(v[0] - v[1]) < 0.05), bool(np.all((v >= 0) & (v < 1)))
    (True, True)
    >>> value_noise(np.empty((0, 3)), 0.25, seed=1).shape
    (0,)
    """
    g = np.asarray(xyz, dtype=np.float64) / scale_m
    base = np.floor(g)
    frac = g - base
    w = frac * frac * (3.0 - 2.0 * frac)  # smoothstep
    cells = base.astype(np.int64)
    dims = g.shape[1]
    out = np.zeros(len(g))
    for corner in range(1 << dims):
        offs = [(corner >> d) & 1 for d in range(dims)]
        weight = np.ones(len(g))
        for d, o in enumerate(offs):
            weight *= w[:, d] if o else 1.0 - w[:, d]
        out += weight * _hash01(seed, *(cells[:, d] + offs[d] for d in range(dims)))
    return out


def _texture_factor(
    xyz: np.ndarray, code: np.ndarray, texture: np.ndarray, seed: int
) -> np.ndarray:
    """Multiplicative reflectance texture (mean 1, std about ``texture``) per point.

    Each material code gets its own pattern; the pattern depends on position and seed only.
    """
    out = np.ones(len(xyz))
    for c in np.unique(code):
        sel = np.flatnonzero(code == c)
        s = seed * 1009 + int(c) * 7
        n = (value_noise(xyz[sel], 0.4, s) - 0.5) / 0.2 * 0.75
        n += (value_noise(xyz[sel], 0.07, s + 1) - 0.5) / 0.2 * 0.25
        out[sel] = np.clip(1.0 + texture[sel] * n, 0.3, 2.0)
    return out


def _wear_field(xy: np.ndarray, seed: int) -> np.ndarray:
    """Patchy [0, 1) field deciding where paint is worn off (~0.1-0.3 m blobs)."""
    return 0.7 * value_noise(xy, 0.25, seed) + 0.3 * value_noise(xy, 0.08, seed + 7)


@lru_cache(maxsize=1)
def _wear_quantiles() -> np.ndarray:
    """Quantiles 0..1 (1001 values) of the wear field, so ``wear`` is the share worn off."""
    rng = np.random.default_rng(12345)
    sample = _wear_field(rng.uniform(-1e4, 1e4, size=(200_000, 2)), seed=99)
    return np.quantile(sample, np.linspace(0.0, 1.0, 1001))


class PaintLookup:
    """Which paint patch (if any, after wear) covers each 2D point of the road surface.

    >>> from shapely import box
    >>> from data_samples.simulator.scene import PaintPatch
    >>> lookup = PaintLookup((PaintPatch(box(0, 0, 1, 0.15), "paint_white"),), seed=3)
    >>> lookup.patch_index(np.array([[0.5, 0.05], [0.5, 1.0]])).tolist()
    [0, -1]
    >>> PaintLookup((), seed=3).patch_index(np.empty((0, 2))).tolist()
    []
    """

    #: cell size (m) of the coarse mask of cells any patch touches; points elsewhere skip the tree
    mask_cell_m = 0.5

    def __init__(self, paint: tuple, seed: int):
        self.patches = tuple(paint)
        self.seed = int(seed)
        self.tree = shapely.STRtree([p.polygon for p in self.patches]) if self.patches else None
        wear = np.array([min(max(p.wear, 0.0), 1.0) for p in self.patches], dtype=np.float64)
        q = _wear_quantiles()
        self.wear_threshold = np.where(wear > 0, q[np.round(wear * 1000).astype(int)], -1.0)
        self._mask, self._mask_origin = self._coarse_mask()

    def _coarse_mask(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.patches:
            return np.zeros((0, 0), dtype=bool), np.zeros(2)
        from affine import Affine
        from rasterio.features import rasterize

        c = self.mask_cell_m
        lo = np.array(shapely.total_bounds([p.polygon for p in self.patches])[:2]) - c
        hi = np.array(shapely.total_bounds([p.polygon for p in self.patches])[2:]) + c
        shape = (int(np.ceil((hi[1] - lo[1]) / c)) + 1, int(np.ceil((hi[0] - lo[0]) / c)) + 1)
        # row 0 is the southern edge: rasterise with a north-up transform, then flip
        mask = rasterize(
            ((p.polygon, 1) for p in self.patches),
            out_shape=shape,
            transform=Affine(c, 0.0, lo[0], 0.0, -c, lo[1] + shape[0] * c),
            all_touched=True,
            dtype="uint8",
        )
        return mask[::-1].astype(bool), lo

    def patch_index(self, xy: np.ndarray) -> np.ndarray:
        """Index into ``patches`` of the paint visible at each point, or -1 (bare surface)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        out = np.full(len(xy), -1, dtype=np.int64)
        if self.tree is None or len(xy) == 0:
            return out
        cell = np.floor((xy - self._mask_origin) / self.mask_cell_m).astype(np.int64)
        rows, cols = self._mask.shape
        inside = (cell[:, 0] >= 0) & (cell[:, 0] < cols) & (cell[:, 1] >= 0) & (cell[:, 1] < rows)
        near = np.flatnonzero(inside)
        near = near[self._mask[cell[near, 1], cell[near, 0]]]
        if len(near) == 0:
            return out
        point_idx, patch_idx = self.tree.query(shapely.points(xy[near]), predicate="intersects")
        if len(point_idx) == 0:
            return out
        out[near[point_idx]] = patch_idx
        hit = np.flatnonzero(out >= 0)
        worn = _wear_field(xy[hit], self.seed) < self.wear_threshold[out[hit]]
        out[hit[worn]] = -1
        return out


# --------------------------------------------------------------------------------------------
# Poses


def rotation_matrices(
    heading_rad: np.ndarray, pitch_rad: np.ndarray, roll_rad: np.ndarray
) -> np.ndarray:
    """(n, 3, 3) body-to-local rotations for a forward-left-up body frame.

    ``heading_rad`` is counter-clockwise from +x (east), pitch positive nose up, roll positive
    right side down.

    >>> r = rotation_matrices(np.array([np.pi / 2]), np.zeros(1), np.zeros(1))
    >>> np.round(r[0] @ [1.0, 0.0, 0.0], 6).tolist()  # forward points north
    [0.0, 1.0, 0.0]
    """
    ch, sh = np.cos(heading_rad), np.sin(heading_rad)
    cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
    cr, sr = np.cos(roll_rad), np.sin(roll_rad)
    # R = Rz(heading) @ Ry(-pitch) @ Rx(roll); -pitch so that +pitch raises the nose
    r = np.empty((len(ch), 3, 3))
    r[:, 0, 0] = ch * cp
    r[:, 0, 1] = -ch * sp * sr - sh * cr
    r[:, 0, 2] = -ch * sp * cr + sh * sr
    r[:, 1, 0] = sh * cp
    r[:, 1, 1] = -sh * sp * sr + ch * cr
    r[:, 1, 2] = -sh * sp * cr - ch * sr
    r[:, 2, 0] = sp
    r[:, 2, 1] = cp * sr
    r[:, 2, 2] = cp * cr
    return r


def _smooth_walk(
    rng: np.random.Generator, n: int, dt: float, sigma: float, tau_s: float
) -> np.ndarray:
    """A smooth stationary random walk (Gauss-Markov, smoothed) with RMS ``sigma``.

    Scaled by its root mean square about zero, not its standard deviation, so that a constant
    part (a bias over a short drive) stays within ``sigma`` too.
    """
    if n == 0 or sigma == 0:
        return np.zeros(n)
    a = math.exp(-dt / tau_s)
    eps = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = eps[0]
    k = math.sqrt(1.0 - a * a)
    for i in range(1, n):
        x[i] = a * x[i - 1] + k * eps[i]
    width = max(1, round(0.5 / dt))  # ~0.5 s moving average removes the jitter
    kernel = np.ones(width) / width
    x = np.convolve(np.pad(x, (width, width), mode="edge"), kernel, mode="same")[width:-width]
    rms = math.sqrt(float(np.mean(x * x)))
    return x * (sigma / rms) if rms > 0 else x


@dataclass(frozen=True, slots=True)
class SurveyPoses:
    """The survey's time line: true and estimated scanner poses at trajectory rate.

    ``t`` (n,) seconds since the start; ``gps_time_start`` GPS week seconds at ``t = 0``;
    positions are scanner origins in local metres; angles in radians (heading counter-clockwise
    from +x). The estimated pose is the true pose plus navigation errors.
    """

    t: np.ndarray
    gps_time_start: float
    true_xyz: np.ndarray
    heading: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    est_xyz: np.ndarray
    est_heading: np.ndarray
    est_pitch: np.ndarray
    est_roll: np.ndarray
    duration_s: float

    def at(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Linear interpolation of every pose array at times ``t`` (seconds since start)."""
        out = {}
        for name in ("true_xyz", "est_xyz"):
            arr = getattr(self, name)
            out[name] = np.stack([np.interp(t, self.t, arr[:, i]) for i in range(3)], axis=1)
        for name in ("heading", "pitch", "roll", "est_heading", "est_pitch", "est_roll"):
            out[name] = np.interp(t, self.t, getattr(self, name))
        return out


def _path_at(path: DrivePath, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road-surface point, heading (unwrapped, rad) and pitch (rad) at arc lengths ``s``."""
    xyz = np.stack([np.interp(s, path.s, path.xyz[:, i]) for i in range(3)], axis=1)
    heading = np.interp(s, path.s, np.unwrap(path.heading_rad))
    if len(path.s) > 1:
        dz = np.gradient(path.xyz[:, 2], path.s)
        pitch_path = np.arctan(dz)
    else:
        pitch_path = np.zeros(len(path.s))
    return xyz, heading, np.interp(s, path.s, pitch_path)


def _gps_time_start(scene_seed: int, scan_seed: int) -> float:
    """GPS week seconds of the first profile: seed-dependent, in [100000, 500000), whole ms."""
    return 100_000.0 + float((scene_seed * 7919 + scan_seed * 104729) % 400_000_000) / 1000.0


def survey_poses(
    scene: Scene, params: ScannerParams = ScannerParams(), scan_seed: int | None = None
) -> SurveyPoses:
    """The scanner's true and estimated poses over the drive, at ``params.trajectory_rate_hz``.

    >>> from data_samples.simulator.scene import DrivePath
    >>> import numpy as np
    >>> path = DrivePath(np.array([[0.0, 0, 0], [10.0, 0, 0]]), np.zeros(2), np.array([0.0, 10.0]))
    >>> scene = _scene_stub(path)
    >>> poses = survey_poses(scene, ScannerParams(position_sigma_m=0, roll_sigma_deg=0,
    ...     pitch_sigma_deg=0, yaw_sigma_deg=0))
    >>> round(poses.duration_s, 3), np.round(poses.true_xyz[0], 3).tolist()
    (1.25, [-0.8, 0.0, 2.2])
    """
    scan_seed = scene.seed if scan_seed is None else scan_seed
    path = scene.drive_path
    if len(path.s) < 2 or path.s[-1] <= 0:
        raise SurveyError("the drive path is shorter than two samples")
    if scene.speed_mps <= 0:
        raise SurveyError(f"scene speed {scene.speed_mps} m/s is not positive")
    duration = float(path.s[-1] - path.s[0]) / scene.speed_mps
    dt = 1.0 / params.trajectory_rate_hz
    t = np.arange(0.0, duration + dt / 2, dt)
    if t[-1] < duration:
        t = np.append(t, duration)
    s = path.s[0] + t * scene.speed_mps
    ground, heading, pitch = _path_at(path, s)
    roll = np.zeros_like(heading)
    rot = rotation_matrices(heading, pitch, roll)
    lever = np.array([params.lever_forward_m, params.lever_left_m, params.mount_height_m])
    true_xyz = ground + rot @ lever

    rng = np.random.default_rng([_u32(scene.seed), _u32(scan_seed), 0x7E])
    n = len(t)
    pos_err = np.stack(
        [
            _smooth_walk(rng, n, dt, params.position_sigma_m, params.position_correlation_s)
            for _ in range(3)
        ],
        axis=1,
    )
    d_roll = np.radians(
        _smooth_walk(rng, n, dt, params.roll_sigma_deg, params.attitude_correlation_s)
    )
    d_pitch = np.radians(
        _smooth_walk(rng, n, dt, params.pitch_sigma_deg, params.attitude_correlation_s)
    )
    d_yaw = np.radians(
        _smooth_walk(rng, n, dt, params.yaw_sigma_deg, params.attitude_correlation_s)
    )
    return SurveyPoses(
        t=t,
        gps_time_start=_gps_time_start(scene.seed, scan_seed),
        true_xyz=true_xyz,
        heading=heading,
        pitch=pitch,
        roll=roll,
        est_xyz=true_xyz + pos_err,
        est_heading=heading + d_yaw,
        est_pitch=pitch + d_pitch,
        est_roll=roll + d_roll,
        duration_s=duration,
    )


def _scene_stub(path: DrivePath) -> Scene:
    """An empty scene around a drive path (for doctests)."""
    from pipeline.model import MapModel

    return Scene("stub", 1, "EPSG:4549", (0.0, 0.0, 0.0), (), (), path, MapModel("EPSG:4549"))


def _u32(x: int) -> int:
    return int(x) % 2**32


def write_scan_trajectory(scene: Scene, poses: SurveyPoses, path: str | os.PathLike[str]) -> Path:
    """Write the estimated scanner trajectory as CSV in the scene CRS (origin added).

    Columns ``gps_time,x,y,z,roll_deg,pitch_deg,heading_deg`` through
    ``pipeline.trajectory.write_trajectory``; heading is the azimuth clockwise from grid north.
    """
    from pipeline.trajectory import Trajectory, write_trajectory

    origin = np.asarray(scene.origin, dtype=np.float64)
    heading_deg = np.mod(90.0 - np.degrees(poses.est_heading), 360.0)
    traj = Trajectory(
        gps_time=poses.gps_time_start + poses.t,
        xyz=poses.est_xyz + origin,
        roll_deg=np.degrees(poses.est_roll),
        pitch_deg=np.degrees(poses.est_pitch),
        heading_deg=heading_deg,
    )
    write_trajectory(traj, path)
    return Path(path)


# --------------------------------------------------------------------------------------------
# Ray casting


def build_raycasting_scene(scene: Scene) -> tuple[o3d.t.geometry.RaycastingScene, np.ndarray]:
    """An Embree scene with one mesh per surface, and the geometry-id -> surface-index table."""
    rc = o3d.t.geometry.RaycastingScene()
    ids = []
    for i, surf in enumerate(scene.surfaces):
        if surf.material not in MATERIALS:
            raise SurveyError(f"surface {surf.name!r} has unknown material {surf.material!r}")
        if len(surf.triangles) == 0:
            continue
        gid = rc.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(surf.vertices, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(surf.triangles, dtype=np.uint32)),
        )
        ids.append((gid, i))
    table = np.full(max([g for g, _ in ids], default=-1) + 1, -1, dtype=np.int64)
    for gid, i in ids:
        table[gid] = i
    return rc, table


def _profile_directions(params: ScannerParams) -> tuple[np.ndarray, np.ndarray]:
    """Mirror angles (deg; 0 down, + right) and unit ray directions in the body frame (FLU)."""
    n = params.pulses_per_profile
    theta = -180.0 + np.arange(n) * (360.0 / n)
    th = np.radians(theta)
    d = np.stack([np.zeros(n), -np.sin(th), -np.cos(th)], axis=1)
    tilt, yaw = math.radians(params.tilt_deg), math.radians(params.yaw_deg)
    ry = np.array(
        [[math.cos(tilt), 0, math.sin(tilt)], [0, 1, 0], [-math.sin(tilt), 0, math.cos(tilt)]]
    )
    rz = np.array(
        [[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]
    )
    return theta, d @ (rz @ ry).T


def scan_plane_normal(params: ScannerParams) -> np.ndarray:
    """Unit normal of the scan plane in the body frame (forward, left, up).

    >>> (np.round(scan_plane_normal(ScannerParams(yaw_deg=0.0)), 6) + 0.0).tolist()
    [1.0, 0.0, 0.0]
    >>> (np.round(scan_plane_normal(ScannerParams(yaw_deg=30.0)), 3) + 0.0).tolist()
    [0.866, 0.5, 0.0]
    """
    _, d = _profile_directions(
        ScannerParams(angular_step_deg=90.0, tilt_deg=params.tilt_deg, yaw_deg=params.yaw_deg)
    )
    n = np.cross(d[0], d[1])
    n /= np.linalg.norm(n)
    return n if n[0] >= 0 else -n


@dataclass(frozen=True, slots=True)
class _SurfaceTable:
    reflectance: np.ndarray
    retro: np.ndarray
    texture: np.ndarray
    code: np.ndarray
    is_road: np.ndarray


def _surface_table(scene: Scene) -> _SurfaceTable:
    mats = [MATERIALS[s.material] for s in scene.surfaces]
    return _SurfaceTable(
        reflectance=np.array([m.reflectance for m in mats] + [0.0]),
        retro=np.array([m.retroreflective for m in mats] + [False]),
        texture=np.array([m.texture for m in mats] + [0.0]),
        code=np.array([MATERIAL_CODES[s.material] for s in scene.surfaces] + [0]),
        is_road=np.array([s.material == "asphalt" for s in scene.surfaces] + [False]),
    )


def _las_header(scene: Scene, gps_time_start: float) -> laspy.LasHeader:
    import pyproj

    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.round(np.asarray(scene.origin, dtype=np.float64))
    header.add_crs(pyproj.CRS(f"{scene.crs}+{scene.vertical_crs.removeprefix('EPSG:')}"))
    header.system_identifier = "hdmap simulated MLS"
    header.generating_software = "hdmap data_samples.simulator"
    # a fixed, seed-free date keeps the file byte-identical from day to day
    header.creation_date = datetime.date(2026, 1, 1) + datetime.timedelta(
        days=int(gps_time_start) % 365
    )
    return header


def scan_scene(
    scene: Scene,
    out_laz: str | os.PathLike[str],
    params: ScannerParams = ScannerParams(),
    scan_seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    trajectory_csv: str | os.PathLike[str] | None = None,
    point_source_id: int = 1,
) -> ScanResult:
    """Drive the scene, scan it and write ``out_laz`` (and the trajectory CSV when asked).

    ``scan_seed`` (default: the scene seed) seeds the navigation errors, range noise, outliers
    and speckle, so two drives through the same scene differ while the same seeds give
    byte-identical output. ``progress(profiles_done, profiles_total)`` is called after every
    batch. ``trajectory_csv``: where to write the estimated trajectory (see
    :func:`write_scan_trajectory`); ``None`` writes none. Memory holds one batch of
    ``params.profiles_per_batch`` profiles at a time.
    """
    scan_seed = scene.seed if scan_seed is None else int(scan_seed)
    out_laz = Path(out_laz)
    poses = survey_poses(scene, params, scan_seed)
    n_profiles = math.floor(poses.duration_s * params.profile_rate_hz) + 1
    theta_deg, dirs_body = _profile_directions(params)
    n_ang = len(theta_deg)
    dt_pulse = np.arange(n_ang) / (n_ang * params.profile_rate_hz)
    scan_angle_raw = np.round(theta_deg / LAS_SCAN_ANGLE_UNIT_DEG).astype(np.int16)

    rc, gid_table = build_raycasting_scene(scene)
    ctx = _ScanContext(
        raycaster=rc,
        gid_table=gid_table,
        surfaces=_surface_table(scene),
        no_surface=len(scene.surfaces),
        paint=PaintLookup(scene.paint, scene.seed),
        paint_reflectance=np.array(
            [MATERIALS[p.material].reflectance for p in scene.paint] + [0.0]
        ),
        paint_code=np.array([MATERIAL_CODES[p.material] for p in scene.paint] + [0]),
        poses=poses,
        dirs_body=dirs_body,
        dt_pulse=dt_pulse,
        params=params,
        scene_seed=scene.seed,
    )
    origin = np.asarray(scene.origin, dtype=np.float64)
    header = _las_header(scene, poses.gps_time_start)

    total = 0
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    with (
        atomic_path(out_laz) as tmp,
        laspy.open(tmp, mode="w", header=header, do_compress=True) as writer,
    ):
        for batch, k0 in enumerate(range(0, n_profiles, params.profiles_per_batch)):
            k1 = min(n_profiles, k0 + params.profiles_per_batch)
            rng = np.random.default_rng([_u32(scene.seed), _u32(scan_seed), batch])
            t_prof = np.arange(k0, k1) / params.profile_rate_hz
            pts = _scan_batch(ctx, t_prof, rng)
            if pts is not None:
                xyz, intensity, ray_index, t_ray = pts
                xyz_crs = xyz + origin
                record = laspy.ScaleAwarePointRecord.zeros(len(xyz), header=header)
                record.x = xyz_crs[:, 0]
                record.y = xyz_crs[:, 1]
                record.z = xyz_crs[:, 2]
                record.intensity = intensity
                record.return_number = np.ones(len(xyz), dtype=np.uint8)
                record.number_of_returns = np.ones(len(xyz), dtype=np.uint8)
                record.scan_angle = scan_angle_raw[ray_index % n_ang]
                record.gps_time = poses.gps_time_start + t_ray
                record.point_source_id = np.full(len(xyz), point_source_id, dtype=np.uint16)
                writer.write_points(record)
                total += len(xyz)
                lo = np.minimum(lo, xyz_crs.min(axis=0))
                hi = np.maximum(hi, xyz_crs.max(axis=0))
            if progress is not None:
                progress(k1, n_profiles)
    traj_path = None
    if trajectory_csv is not None:
        traj_path = write_scan_trajectory(scene, poses, trajectory_csv)
    bounds = (*lo, *hi) if total else (0.0,) * 6
    return ScanResult(
        laz_path=out_laz,
        trajectory_path=traj_path,
        points=total,
        profiles=n_profiles,
        duration_s=poses.duration_s,
        gps_time_start=poses.gps_time_start,
        bounds=tuple(float(v) for v in bounds),
    )


@dataclass(frozen=True, slots=True)
class _ScanContext:
    """Everything a batch needs that does not change from batch to batch."""

    raycaster: o3d.t.geometry.RaycastingScene
    gid_table: np.ndarray  # Embree geometry id -> surface index
    surfaces: _SurfaceTable
    no_surface: int  # the surface index standing for "no surface" (outliers)
    paint: PaintLookup
    paint_reflectance: np.ndarray
    paint_code: np.ndarray
    poses: SurveyPoses
    dirs_body: np.ndarray
    dt_pulse: np.ndarray
    params: ScannerParams
    scene_seed: int


def _scan_batch(ctx: _ScanContext, t_prof: np.ndarray, rng: np.random.Generator):
    """Cast one batch of profiles; return (xyz local, intensity uint16, ray index, time) or None."""
    par = ctx.params
    m, n_ang = len(t_prof), len(ctx.dt_pulse)
    p = ctx.poses.at(t_prof)
    rot_true = rotation_matrices(p["heading"], p["pitch"], p["roll"])
    rot_est = rotation_matrices(p["est_heading"], p["est_pitch"], p["est_roll"])
    # velocity of the scanner origin, to move it during the profile's sweep
    p_next = ctx.poses.at(t_prof + 1e-3)
    velocity = (p_next["true_xyz"] - p["true_xyz"]) / 1e-3

    dirs = np.einsum("mij,aj->mai", rot_true, ctx.dirs_body)  # (m, a, 3)
    origins = p["true_xyz"][:, None, :] + velocity[:, None, :] * ctx.dt_pulse[None, :, None]
    rays = np.concatenate([origins, dirs], axis=2).reshape(-1, 6).astype(np.float32)
    hit = ctx.raycaster.cast_rays(o3d.core.Tensor(rays))
    t_hit = hit["t_hit"].numpy().astype(np.float64)
    gids = hit["geometry_ids"].numpy()
    normals = hit["primitive_normals"].numpy().astype(np.float64)
    del rays, hit

    n_rays = m * n_ang
    finite = np.isfinite(t_hit) & (t_hit >= par.min_range_m) & (t_hit <= par.max_range_m)
    outlier = rng.random(n_rays) < par.outlier_share
    keep = np.flatnonzero(finite | outlier)
    if len(keep) == 0:
        return None
    is_outlier = outlier[keep]
    r = t_hit[keep]
    # outliers (dust, rain, mixed edges) return short of the surface, or from thin air on a miss
    far = np.where(finite[keep], r, 0.5 * par.max_range_m)[is_outlier]
    r[is_outlier] = par.min_range_m + rng.random(int(is_outlier.sum())) * (far - par.min_range_m)
    r_meas = r + rng.normal(0.0, par.range_noise_m, len(keep))

    prof = keep // n_ang
    d = dirs.reshape(-1, 3)[keep]
    o = origins.reshape(-1, 3)[keep]
    true_pts = o + d * r[:, None]  # exact surface point (for material lookup)

    gid = np.minimum(gids[keep], len(ctx.gid_table) - 1)
    surf = np.where(is_outlier, ctx.no_surface, ctx.gid_table[gid])
    surf = np.where((gids[keep] == _INVALID_ID) | (surf < 0), ctx.no_surface, surf)

    # reflectance
    refl = ctx.surfaces.reflectance[surf].copy()
    texture = ctx.surfaces.texture[surf].copy()
    code = ctx.surfaces.code[surf].copy()
    retro = ctx.surfaces.retro[surf]
    road = np.flatnonzero(ctx.surfaces.is_road[surf])
    if len(road) and ctx.paint.patches:
        patch = ctx.paint.patch_index(true_pts[road, :2])
        painted = patch >= 0
        refl[road[painted]] = ctx.paint_reflectance[patch[painted]]
        code[road[painted]] = ctx.paint_code[patch[painted]]
        texture[road[painted]] = 0.05
    refl *= _texture_factor(true_pts, code, texture, ctx.scene_seed * 131 + 17)

    cos_inc = np.abs(np.einsum("ij,ij->i", d, normals[keep]))
    range_fall = (par.range_ref_m / np.maximum(r, par.range_ref_m)) ** par.range_exponent
    signal = np.where(retro, par.retro_gain * (0.85 + 0.15 * cos_inc), cos_inc) * refl * range_fall
    counts = par.intensity_gain * signal * rng.lognormal(0.0, par.speckle_sigma, len(keep))
    n_out = int(is_outlier.sum())
    counts[is_outlier] = rng.uniform(par.detection_threshold, 300.0, n_out)
    detected = counts >= par.detection_threshold
    if not detected.all():
        keep, prof, d, o, r_meas, counts = (
            keep[detected],
            prof[detected],
            d[detected],
            o[detected],
            r_meas[detected],
            counts[detected],
        )
    if len(keep) == 0:
        return None

    # georeference with the estimated pose: p = o_est + R_est R_true^T (r d)
    rot_err = rot_est @ np.transpose(rot_true, (0, 2, 1))
    vec = d * r_meas[:, None]
    vec = np.einsum("nij,nj->ni", rot_err[prof], vec)
    o_est = o + (p["est_xyz"] - p["true_xyz"])[prof]
    xyz = o_est + vec
    intensity = np.clip(np.round(counts), 0, 65535).astype(np.uint16)
    t_ray = t_prof[prof] + ctx.dt_pulse[keep % n_ang]
    return xyz, intensity, keep, t_ray
