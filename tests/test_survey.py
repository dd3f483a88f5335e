"""Survey reading (pipeline.survey): chunking, point formats, units, CRS sources, LAS vs LAZ.

:func:`make_las` and :func:`patch_header` build the small and the deliberately broken files that
this module and ``test_info_cli.py`` use.
"""

from __future__ import annotations

import struct
from pathlib import Path

import laspy
import numpy as np
import pyproj
import pytest
from laspy.vlrs.known import WktCoordinateSystemVlr
from laspy.vlrs.vlrlist import VLRList

from pipeline.errors import CRSError, SurveyError
from pipeline.survey import (
    PointChunk,
    _OccupancyCells,
    iter_chunks,
    read_info,
    read_points,
    scan_survey,
    survey_files,
)

E0, N0 = 534000.0, 3496000.0  # EPSG:4549 easting / northing near Xishan, metres

# LAS header byte offsets (little-endian): scales and offsets are doubles; bounds are doubles in
# the order max x, min x, max y, min y, max z, min z; legacy point count is uint32.
SCALE_OFFSET = 131
OFFSET_OFFSET = 155
BOUNDS_OFFSET = 179
LEGACY_COUNT_OFFSET = 107
COUNT_64_OFFSET = 247  # LAS 1.4 only


def make_las(
    path: Path,
    n: int = 2000,
    point_format: int = 3,
    version: str = "1.2",
    crs: str | None = "EPSG:4549",
    seed: int = 0,
    origin: tuple[float, float, float] = (E0, N0, 5.0),
    size: tuple[float, float, float] = (40.0, 20.0, 3.0),
    scale: float = 0.001,
) -> laspy.LasData:
    """Write ``n`` random points in a box at ``origin`` (file units) and return what was written.

    ``crs`` is stored as GeoTIFF keys for LAS < 1.4 with point formats 0-5, as WKT otherwise
    (laspy's rule); None writes no CRS. The suffix of ``path`` picks LAS or LAZ.
    """
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([scale, scale, scale])
    header.offsets = np.array([np.floor(origin[0]), np.floor(origin[1]), 0.0])
    if crs is not None:
        header.add_crs(pyproj.CRS(crs))
    las = laspy.LasData(header)
    rng = np.random.default_rng(seed)
    if n:
        las.x = origin[0] + rng.uniform(0, size[0], n)
        las.y = origin[1] + rng.uniform(0, size[1], n)
        las.z = origin[2] + rng.uniform(0, size[2], n)
        las.intensity = rng.integers(0, 4000, n)
        names = set(las.point_format.dimension_names)
        if "gps_time" in names:
            las.gps_time = np.sort(rng.uniform(1000.0, 1010.0, n))
        if "red" in names:
            for band in ("red", "green", "blue"):
                las[band] = rng.integers(0, 65535, n)
        if point_format >= 6:
            las.scan_angle = rng.integers(-5000, 5000, n)
        else:
            las.scan_angle_rank = rng.integers(-90, 90, n)
    las.write(path)
    return las


def patch_header(path: Path, offset: int, fmt: str, *values: float) -> None:
    """Overwrite bytes of ``path`` at ``offset`` with ``values`` packed little-endian as ``fmt``."""
    data = bytearray(path.read_bytes())
    packed = struct.pack("<" + fmt, *values)
    data[offset : offset + len(packed)] = packed
    path.write_bytes(bytes(data))


# ---- survey_files ---------------------------------------------------------------------------


def test_survey_files_expands_folders_sorted_and_keeps_order(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("b.laz", "a.las", "c.LAS", "notes.txt"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "z.las"
    single.write_bytes(b"x")
    found = survey_files([single, folder, folder / "a.las"])
    assert [p.name for p in found] == ["z.las", "a.las", "b.laz", "c.LAS"]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.las", "no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no .las or .laz files"),
        (lambda d: (d / "x.txt").write_text("1") and d / "x.txt", "not a .las or .laz file"),
    ],
    ids=["missing", "empty-folder", "wrong-suffix"],
)
def test_survey_files_refuses(tmp_path: Path, make, problem: str) -> None:
    path = make(tmp_path)
    with pytest.raises(SurveyError, match=problem) as info:
        survey_files([path])
    assert str(path) in str(info.value)


# ---- reading --------------------------------------------------------------------------------


def test_chunked_iteration_equals_whole_read_and_laspy(tmp_path: Path) -> None:
    path = tmp_path / "s.las"
    written = make_las(path, n=10_000, point_format=3)
    chunks = list(iter_chunks(path, chunk_points=777))
    assert [len(c) for c in chunks] == [777] * 12 + [10_000 - 777 * 12]
    joined = PointChunk.concatenate(chunks)
    whole = read_points(path)
    for name in ("xyz", "intensity", "gps_time", "scan_angle_deg", "rgb"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    expected = np.column_stack([written.x, written.y, written.z])
    np.testing.assert_allclose(whole.xyz, expected, atol=5e-4)  # 1 mm scale, rounded
    assert whole.xyz.dtype == np.float64 and whole.intensity.dtype == np.uint16


FORMATS = [(f, "1.2") for f in range(4)] + [(4, "1.3"), (5, "1.3")]
FORMATS += [(f, "1.4") for f in range(6, 11)]


@pytest.mark.parametrize(("point_format", "version"), FORMATS, ids=[f"pf{f}" for f, _ in FORMATS])
def test_every_point_format_reads(tmp_path: Path, point_format: int, version: str) -> None:
    path = tmp_path / f"pf{point_format}.las"
    written = make_las(path, n=300, point_format=point_format, version=version)
    info = read_info(path)
    assert (info.point_format, info.las_version, info.point_count) == (point_format, version, 300)
    assert info.crs_source == ("wkt" if point_format >= 6 else "geotiff")
    assert info.crs.to_epsg() == 4549
    points = read_points(path)
    np.testing.assert_allclose(points.xyz[:, 0], written.x, atol=5e-4)
    np.testing.assert_array_equal(points.intensity, written.intensity)
    has_time = point_format not in (0, 2)
    has_rgb = point_format in (2, 3, 5, 7, 8, 10)
    assert (points.gps_time is not None) == has_time == info.has_gps_time
    assert (points.rgb is not None) == has_rgb == info.has_rgb
    if has_time:
        np.testing.assert_array_equal(points.gps_time, written.gps_time)
    if has_rgb:
        np.testing.assert_array_equal(points.rgb[:, 2], written.blue)
    if point_format >= 6:
        expected_angle = np.asarray(written.scan_angle) * 0.006
    else:
        expected_angle = np.asarray(written.scan_angle_rank, dtype=float)
    np.testing.assert_allclose(points.scan_angle_deg, expected_angle, rtol=1e-6)
    assert points.scan_angle_deg.dtype == np.float32


@pytest.mark.parametrize(("point_format", "version"), [(3, "1.2"), (6, "1.4")])
def test_feet_are_converted_to_metres(tmp_path: Path, point_format: int, version: str) -> None:
    # EPSG:2992 NAD83 / Oregon GIC Lambert (international foot); Autzen-like coordinates
    path = tmp_path / "feet.las"
    origin_ft = (636000.0, 849000.0, 400.0)
    written = make_las(
        path,
        n=500,
        point_format=point_format,
        version=version,
        crs="EPSG:2992",
        origin=origin_ft,
        scale=0.01,
    )
    info = read_info(path)
    assert info.xy_factor == pytest.approx(0.3048) and info.z_factor == pytest.approx(0.3048)
    assert all(axis.unit_name == "metre" for axis in info.crs.axis_info)
    assert info.bounds[0] == pytest.approx(float(np.min(written.x)) * 0.3048, abs=0.01)
    points = read_points(path)
    np.testing.assert_allclose(points.xyz[:, 0], np.asarray(written.x) * 0.3048, atol=2e-3)
    np.testing.assert_allclose(points.xyz[:, 2], np.asarray(written.z) * 0.3048, atol=2e-3)
    # same place on Earth: feet in EPSG:2992 and metres in the converted CRS give one lon/lat
    to_geo_ft = pyproj.Transformer.from_crs("EPSG:2992", "EPSG:4326", always_xy=True)
    to_geo_m = pyproj.Transformer.from_crs(info.crs, "EPSG:4326", always_xy=True)
    lon_ft, lat_ft = to_geo_ft.transform(written.x[0], written.y[0])
    lon_m, lat_m = to_geo_m.transform(points.xyz[0, 0], points.xyz[0, 1])
    assert lon_m == pytest.approx(lon_ft, abs=1e-8) and lat_m == pytest.approx(lat_ft, abs=1e-8)


def test_crs_from_wkt_is_preferred_over_geotiff_keys(tmp_path: Path) -> None:
    path = tmp_path / "both.las"
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.add_crs(pyproj.CRS("EPSG:32650"))  # GeoTIFF keys
    header.vlrs.append(WktCoordinateSystemVlr(pyproj.CRS("EPSG:4549").to_wkt()))
    las = laspy.LasData(header)
    las.x, las.y, las.z = [E0, E0 + 1], [N0, N0 + 1], [1.0, 2.0]
    las.write(path)
    info = read_info(path)
    assert (info.crs.to_epsg(), info.crs_source) == (4549, "wkt")


def test_crs_from_geotiff_keys(tmp_path: Path) -> None:
    path = tmp_path / "geotiff.las"
    make_las(path, point_format=1, version="1.2", crs="EPSG:32650")
    info = read_info(path)
    assert (info.crs.to_epsg(), info.crs_source) == (32650, "geotiff")


def test_crs_option_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.las"
    make_las(path, crs="EPSG:32650")
    info = read_info(path, crs="EPSG:4549")
    assert (info.crs.to_epsg(), info.crs_source) == (4549, "option")
    assert info.file_crs.to_epsg() == 32650
    local = read_info(path, crs="local")
    assert local.crs.is_engineering and local.crs_source == "option"


def test_missing_crs_is_refused_unless_given(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.las"
    make_las(path, crs=None)
    with pytest.raises(CRSError, match="--crs") as info:
        read_info(path)
    assert str(path) in str(info.value)
    assert read_info(path, crs="EPSG:4549").crs_source == "option"
    with pytest.raises(CRSError, match="geographic"):
        read_info(path, crs="EPSG:4490")  # CGCS2000 geographic


def test_laz_and_las_give_identical_points(tmp_path: Path) -> None:
    make_las(tmp_path / "s.las", n=5000, point_format=7, version="1.4", seed=3)
    make_las(tmp_path / "s.laz", n=5000, point_format=7, version="1.4", seed=3)
    assert read_info(tmp_path / "s.laz").compressed and not read_info(tmp_path / "s.las").compressed
    las, laz = read_points(tmp_path / "s.las"), read_points(tmp_path / "s.laz")
    for name in ("xyz", "intensity", "gps_time", "scan_angle_deg", "rgb"):
        np.testing.assert_array_equal(getattr(las, name), getattr(laz, name))


# ---- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "fmt", "values", "problem"),
    [
        (SCALE_OFFSET, "d", (float("nan"),), "scale factors are not finite"),
        (OFFSET_OFFSET + 8, "d", (float("inf"),), "offset factors are not finite"),
        (SCALE_OFFSET + 16, "d", (0.0,), "include zero"),
        (BOUNDS_OFFSET, "d", (float("nan"),), "bounds are NaN"),
    ],
    ids=["nan-scale", "inf-offset", "zero-scale", "nan-bounds"],
)
def test_non_finite_header_values_are_refused(
    tmp_path: Path, offset: int, fmt: str, values: tuple, problem: str
) -> None:
    path = tmp_path / "bad.las"
    make_las(path)
    patch_header(path, offset, fmt, *values)
    with pytest.raises(SurveyError, match=problem):
        read_info(path)
    with pytest.raises(SurveyError, match=problem):
        next(iter_chunks(path))


def test_nan_gps_time_is_refused_with_its_index(tmp_path: Path) -> None:
    path = tmp_path / "nan_time.las"
    header = laspy.LasHeader(point_format=1, version="1.2")
    header.add_crs(pyproj.CRS("EPSG:4549"))
    las = laspy.LasData(header)
    las.x, las.y, las.z = np.full(5, E0), np.full(5, N0), np.zeros(5)
    las.gps_time = [1.0, 2.0, np.nan, 4.0, 5.0]
    las.write(path)
    with pytest.raises(SurveyError, match="NaN or infinite gps_time at point 2"):
        read_points(path)


@pytest.mark.parametrize("version", ["1.2", "1.4"])
@pytest.mark.parametrize("claimed", [1990, 2010])
def test_header_count_must_match_las_data(tmp_path: Path, version: str, claimed: int) -> None:
    path = tmp_path / "count.las"
    make_las(path, n=2000, point_format=1, version=version)
    patch_header(path, LEGACY_COUNT_OFFSET, "I", claimed)
    if version == "1.4":
        patch_header(path, COUNT_64_OFFSET, "Q", claimed)
    with pytest.raises(SurveyError, match=f"header says {claimed} points but the file holds 2000"):
        read_info(path)


def test_las_14_evlrs_are_not_counted_as_points(tmp_path: Path) -> None:
    path = tmp_path / "evlr.las"
    header = laspy.LasHeader(point_format=6, version="1.4")
    las = laspy.LasData(header)
    las.x, las.y, las.z = [E0, E0 + 1, E0 + 2], [N0] * 3, [0.0] * 3
    las.evlrs = VLRList([WktCoordinateSystemVlr(pyproj.CRS("EPSG:4549").to_wkt())])
    las.write(path)
    info = read_info(path)
    assert (info.point_count, info.crs.to_epsg()) == (3, 4549)
    assert len(read_points(path)) == 3


def test_laz_claiming_more_points_than_it_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "count.laz"
    make_las(path, n=2000, point_format=1)
    patch_header(path, LEGACY_COUNT_OFFSET, "I", 2500)
    with pytest.raises(SurveyError, match=r"count\.laz"):
        list(iter_chunks(path))


def test_zero_points_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "none.las"
    make_las(path, n=0)
    with pytest.raises(SurveyError, match="holds no points"):
        read_info(path)


def test_truncated_laz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.laz"
    make_las(path, n=20_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SurveyError, match="truncated") as info:
        list(iter_chunks(path))
    assert "\n" not in str(info.value)


# ---- scan_survey ----------------------------------------------------------------------------


def test_scan_survey_density_bounds_and_intensity(tmp_path: Path) -> None:
    path = tmp_path / "dense.laz"
    # 40 x 20 m at an integer origin: 800 one-metre cells, all occupied by 40k points
    written = make_las(path, n=40_000, point_format=1, size=(39.999, 19.999, 3.0))
    stats = scan_survey(path, chunk_points=7_000)
    assert stats.points == 40_000
    assert stats.occupied_cells == 800 and stats.occupied_area_m2 == pytest.approx(800.0)
    assert stats.density_per_m2 == pytest.approx(50.0)
    assert stats.bounds[0] == pytest.approx(float(np.min(written.x)), abs=1e-6)
    assert stats.bounds[5] == pytest.approx(float(np.max(written.z)), abs=1e-6)
    intensity = np.asarray(written.intensity)
    assert (stats.intensity_min, stats.intensity_max) == (intensity.min(), intensity.max())
    assert stats.intensity_median == pytest.approx(np.median(intensity), abs=1)
    assert stats.intensity_p99 == pytest.approx(np.quantile(intensity, 0.99), abs=2)
    assert stats.gps_time_range == (float(written.gps_time[0]), float(written.gps_time[-1]))


def test_scan_survey_counts_only_covered_cells(tmp_path: Path) -> None:
    # two 10 x 10 m patches 1 km apart: the covered area is 200 m2, not the 1 km bounding box
    rng = np.random.default_rng(2)
    header = laspy.LasHeader(point_format=1, version="1.2")
    header.offsets, header.scales = np.array([E0, N0, 0.0]), np.array([0.001] * 3)
    header.add_crs(pyproj.CRS("EPSG:4549"))
    las = laspy.LasData(header)
    east = rng.uniform(0, 9.999, 10_000) + np.repeat([0.0, 1000.0], 5000)
    las.x, las.y, las.z = E0 + east, N0 + rng.uniform(0, 9.999, 10_000), np.zeros(10_000)
    las.write(tmp_path / "two.las")
    stats = scan_survey(tmp_path / "two.las", cell_m=1.0)
    assert stats.occupied_area_m2 == pytest.approx(200.0)
    assert stats.density_per_m2 == pytest.approx(50.0)
    coarse = scan_survey(tmp_path / "two.las", cell_m=5.0)
    assert coarse.occupied_area_m2 == pytest.approx(200.0)


def test_occupied_cells_coarsen_past_the_cap() -> None:
    rng = np.random.default_rng(1)
    cells = _OccupancyCells(cell_m=1.0, max_cells=2_000)
    offsets = (0.0, 4000.0, -7000.0, 3.1e6)
    chunks = [rng.uniform(-50, 50, size=(2, 3000)) + offset for offset in offsets]
    for x, y in chunks:
        cells.add(x, y)
    assert cells.occupied() <= 2_000 and cells.cell_m > 1.0
    all_x = np.concatenate([c[0] for c in chunks])
    all_y = np.concatenate([c[1] for c in chunks])
    expected = {
        (int(i), int(j))
        for i, j in zip(np.floor(all_x / cells.cell_m), np.floor(all_y / cells.cell_m), strict=True)
    }
    assert cells.occupied() == len(expected)


def test_occupied_cells_handle_negative_and_huge_coordinates() -> None:
    cells = _OccupancyCells(cell_m=0.001)
    x = np.array([0.0005, 0.0015, 5e6, -5e6])
    y = np.array([-0.0005, -0.0005, 3.5e6, 3.5e6])
    cells.add(x, y)
    cells.add(x, y)  # the same cells again
    # 5e6 / 0.001 exceeds int32: the cell size doubles until every index fits (0.004 m)
    assert cells.cell_m == 0.004 and cells.occupied() == 3  # the two points near 0 now share one
    fine = _OccupancyCells(cell_m=0.001)
    fine.add(x[:2], y[:2])
    assert (fine.cell_m, fine.occupied()) == (0.001, 2)
