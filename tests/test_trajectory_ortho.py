"""Trajectory CSV (pipeline.trajectory) and orthophoto GeoTIFF (pipeline.ortho) reading."""

from __future__ import annotations

from pathlib import Path

import affine
import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.enums import ColorInterp

from pipeline.errors import OrthoError, TrajectoryError
from pipeline.ortho import read_ortho, read_ortho_info, sample_rgb
from pipeline.trajectory import Trajectory, read_trajectory, write_trajectory

# ---- trajectory -----------------------------------------------------------------------------


def make_trajectory(n: int = 50, attitude: bool = True) -> Trajectory:
    t = 1000.0 + np.arange(n) * 0.1
    xyz = np.column_stack([534000.0 + np.arange(n) * 0.8, np.full(n, 3496000.0), np.full(n, 5.0)])
    extra = {}
    if attitude:
        extra = {
            "roll_deg": np.linspace(-1, 1, n),
            "pitch_deg": np.zeros(n),
            "heading_deg": np.full(n, 90.0),
        }
    return Trajectory(t, xyz, **extra)


def test_trajectory_round_trip_is_exact(tmp_path: Path) -> None:
    traj = make_trajectory()
    traj = Trajectory(
        traj.gps_time + 1 / 3, traj.xyz + 0.1, traj.roll_deg, traj.pitch_deg, traj.heading_deg
    )
    write_trajectory(traj, tmp_path / "t.csv")
    back = read_trajectory(tmp_path / "t.csv")
    for name in ("gps_time", "xyz", "roll_deg", "pitch_deg", "heading_deg"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    assert back.length_m == pytest.approx(49 * 0.8)
    assert back.duration_s == pytest.approx(4.9)
    assert back.has_attitude
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_trajectory_without_attitude_and_with_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("GPS_Time, X ,y,z,quality,heading_deg\n1,0,0,0,4,10\n2,3,4,0,4,20\n\n")
    traj = read_trajectory(path)
    assert traj.roll_deg is None and traj.pitch_deg is None and not traj.has_attitude
    np.testing.assert_array_equal(traj.heading_deg, [10.0, 20.0])
    assert traj.length_m == 5.0 and len(traj) == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ("gps_time,x,y,z\n", "holds a header but no rows"),
        ("time,x,y\n1,2,3\n", "missing column(s) gps_time, z"),
        ("gps_time,x,y,z\n1,0,0,0\n2,abc,0,0\n", "line 3: column x is not a number: 'abc'"),
        ("gps_time,x,y,z\n1,0,0,0\n2,0,nan,0\n", "line 3: column y is nan"),
        ("gps_time,x,y,z\n1,0,0,inf\n", "line 2: column z is inf"),
        ("gps_time,x,y,z\n1,0,0,0\n2,0,0\n", "line 3: 3 fields"),
        ("gps_time,x,y,z\n1,0,0,0\n2,0,0,0\n2,0,0,0\n", "line 4: gps_time not strictly increasing"),
        ("gps_time,x,y,z\n5,0,0,0\n4,0,0,0\n", "line 3: gps_time not strictly increasing"),
    ],
    ids=[
        "empty",
        "header-only",
        "missing",
        "text",
        "nan",
        "inf",
        "short-row",
        "repeat",
        "backwards",
    ],
)
def test_bad_trajectory_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "traj.csv"
    path.write_text(text)
    with pytest.raises(TrajectoryError) as info:
        read_trajectory(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_binary_trajectory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "traj.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(TrajectoryError, match="not a UTF-8"):
        read_trajectory(path)


# ---- ortho ----------------------------------------------------------------------------------

UTM50 = "EPSG:32650"  # CM 117E; Xishan (about 120.3E) lies in it, near its eastern edge
E_UTM, N_UTM = 720000.0, 3495000.0


def make_ortho(
    path: Path,
    crs: str | None = UTM50,
    bands: int = 3,
    dtype: str = "uint8",
    alpha: bool = False,
    nodata: float | None = None,
    size: int = 64,
    pixel_m: float = 0.5,
) -> np.ndarray:
    """A blocky test image (8 x 8 pixel blocks of distinct colours); returns the colour bands."""
    rows, cols = np.mgrid[0:size, 0:size]
    block = (rows // 8) * 8 + cols // 8
    image = np.stack([(block * 3 + k * 50) % 250 + 1 for k in range(bands)]).astype(dtype)
    data = image
    if alpha:
        mask = np.where(cols < size // 2, 255, 0).astype(dtype)
        data = np.concatenate([image, mask[None]])
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": data.shape[0],
        "dtype": dtype,
        "transform": affine.Affine(pixel_m, 0, E_UTM, 0, -pixel_m, N_UTM),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if alpha:
            dst.colorinterp = [
                *[ColorInterp.red, ColorInterp.green, ColorInterp.blue][:bands],
                ColorInterp.alpha,
            ]
    return image


def test_ortho_in_its_own_crs_is_read_as_is(tmp_path: Path) -> None:
    path = tmp_path / "o.tif"
    image = make_ortho(path)
    ortho = read_ortho(path, UTM50)
    np.testing.assert_array_equal(ortho.image, image)
    assert ortho.crs == pyproj.CRS(UTM50) and ortho.valid.all()
    assert ortho.bounds == (E_UTM, N_UTM - 32.0, E_UTM + 32.0, N_UTM)
    assert ortho.pixel_size == (0.5, 0.5)
    # pixel centres of row 10, columns 0 and 20
    rgb = sample_rgb(ortho, np.array([E_UTM + 0.25, E_UTM + 10.25]), np.array([N_UTM - 5.25] * 2))
    np.testing.assert_array_equal(rgb, image[:, 10, [0, 20]].T)
    outside = sample_rgb(ortho, np.array([E_UTM - 1.0, E_UTM + 40.0]), np.array([N_UTM - 1] * 2))
    assert np.isnan(outside).all()


def test_ortho_info_reads_no_pixels_but_checks(tmp_path: Path) -> None:
    path = tmp_path / "o.tif"
    make_ortho(path, bands=3, alpha=True, dtype="uint16")
    info = read_ortho_info(path)
    assert (info.width, info.height, info.bands, info.dtype) == (64, 64, 3, "uint16")
    assert info.has_alpha and info.crs == pyproj.CRS(UTM50)
    assert info.bounds == (E_UTM, N_UTM - 32.0, E_UTM + 32.0, N_UTM)


def test_alpha_band_becomes_the_valid_mask(tmp_path: Path) -> None:
    path = tmp_path / "alpha.tif"
    image = make_ortho(path, alpha=True)
    ortho = read_ortho(path)
    assert ortho.image.shape == (3, 64, 64)
    np.testing.assert_array_equal(ortho.image, image)
    assert ortho.valid[:, :32].all() and not ortho.valid[:, 32:].any()
    rgb = sample_rgb(ortho, np.array([E_UTM + 1, E_UTM + 31]), np.array([N_UTM - 1] * 2))
    assert np.isfinite(rgb[0]).all() and np.isnan(rgb[1]).all()


def test_nodata_pixels_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "nodata.tif"
    make_ortho(path, bands=1, nodata=1)  # block 0 has value 1 in band 0
    ortho = read_ortho(path)
    assert not ortho.valid[:8, :8].any() and ortho.valid[8:, 8:].all()
    grey = sample_rgb(ortho, np.array([E_UTM + 10.0]), np.array([N_UTM - 10.0]))
    assert grey[0, 0] == grey[0, 1] == grey[0, 2] == ortho.image[0, 20, 20]


def test_reprojection_keeps_colours_in_place(tmp_path: Path) -> None:
    path = tmp_path / "o.tif"
    image = make_ortho(path)
    ortho = read_ortho(path, "EPSG:4549", resolution_m=0.25)
    assert ortho.crs == pyproj.CRS("EPSG:4549")
    assert ortho.pixel_size == pytest.approx((0.25, 0.25))
    # centres of some blocks, carried from UTM 50N to EPSG:4549 (easting first: always_xy)
    rows = np.array([4, 20, 44, 60])
    cols = np.array([4, 36, 12, 60])
    x_utm = E_UTM + (cols + 0.5) * 0.5
    y_utm = N_UTM - (rows + 0.5) * 0.5
    to_gk = pyproj.Transformer.from_crs(UTM50, "EPSG:4549", always_xy=True)
    x, y = to_gk.transform(x_utm, y_utm)
    assert np.all((np.asarray(x) < 1e6) & (np.asarray(y) > 3e6))  # easting first, not northing
    np.testing.assert_allclose(sample_rgb(ortho, x, y), image[:, rows, cols].T, atol=1)
    assert 0.8 < ortho.valid.mean() < 1.0  # a rotated footprint leaves empty corners


def test_bounds_window_matches_the_full_read(tmp_path: Path) -> None:
    path = tmp_path / "o.tif"
    image = make_ortho(path)
    part = read_ortho(path, bounds=(E_UTM + 4.0, N_UTM - 12.0, E_UTM + 10.0, N_UTM - 2.0))
    np.testing.assert_array_equal(part.image, image[:, 4:24, 8:20])
    assert part.bounds == (E_UTM + 4.0, N_UTM - 12.0, E_UTM + 10.0, N_UTM - 2.0)
    with pytest.raises(OrthoError, match="does not overlap"):
        read_ortho(path, bounds=(0.0, 0.0, 10.0, 10.0))


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_text("this is not a GeoTIFF\n"), "not a readable GeoTIFF"),
        (lambda p: p.write_bytes(b""), "not a readable GeoTIFF"),
        (lambda p: make_ortho(p, crs=None), "has no CRS"),
        (lambda p: make_ortho(p, dtype="float32"), "float32 not supported"),
        (lambda p: None, "no such file"),
    ],
    ids=["text", "empty", "no-crs", "float", "missing"],
)
def test_bad_ortho_is_refused(tmp_path: Path, make, problem: str) -> None:
    path = tmp_path / "ortho.tif"
    make(path)
    for reader in (read_ortho, read_ortho_info):
        with pytest.raises(OrthoError) as info:
            reader(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and problem in message and "\n" not in message
