"""CRS choice and metre conversion (pipeline.crs)."""

from __future__ import annotations

import pyproj
import pytest

from pipeline.crs import crs_label, local_crs, metric_crs, resolve_crs
from pipeline.errors import CRSError

US_FOOT = 1200 / 3937


def same_place(crs_a: pyproj.CRS, xy_a: tuple[float, float], crs_b: pyproj.CRS, factor: float):
    """lon/lat of ``xy_a`` in ``crs_a`` and of ``xy_a * factor`` in ``crs_b``."""
    to_a = pyproj.Transformer.from_crs(crs_a, "EPSG:4326", always_xy=True)
    to_b = pyproj.Transformer.from_crs(crs_b, "EPSG:4326", always_xy=True)
    return to_a.transform(*xy_a), to_b.transform(xy_a[0] * factor, xy_a[1] * factor)


def test_option_wins_over_file_crs() -> None:
    crs, source = resolve_crs(pyproj.CRS("EPSG:32650"), "EPSG:4549", "s.las")
    assert (crs.to_epsg(), source) == (4549, "option")
    crs, source = resolve_crs(pyproj.CRS("EPSG:32650"), None, "s.las", file_source="geotiff")
    assert (crs.to_epsg(), source) == (32650, "geotiff")


def test_local_option_is_a_metric_engineering_crs() -> None:
    crs, source = resolve_crs(None, "local", "av2.laz")
    assert crs.is_engineering and source == "option"
    assert [a.unit_name for a in crs.axis_info] == ["metre", "metre"]
    assert metric_crs(crs).xy_factor == 1.0
    assert crs == local_crs()


@pytest.mark.parametrize(
    ("file_crs", "override", "problem"),
    [
        (None, None, "no CRS in the file"),
        (pyproj.CRS("EPSG:4326"), None, "geographic"),
        (None, "EPSG:4490", "geographic"),
        (None, "EPSG:4979", "geographic"),  # WGS 84 3D
        (None, "EPSG:4978", "geocentric"),
        (None, "EPSG:4326+5773", "geographic"),  # compound with a geographic horizontal part
        (None, "not a crs", "not a CRS pyproj understands"),
    ],
)
def test_unusable_crs_is_refused_naming_the_file(file_crs, override, problem) -> None:
    with pytest.raises(CRSError, match=problem) as info:
        resolve_crs(file_crs, override, "/data/run1.laz")
    message = str(info.value)
    assert message.startswith("/data/run1.laz: ") and "\n" not in message


def test_no_crs_message_tells_the_user_to_pass_crs() -> None:
    with pytest.raises(CRSError, match="pass --crs"):
        resolve_crs(None, None, "x.las")


@pytest.mark.parametrize(
    ("code", "factor"),
    [("EPSG:2992", 0.3048), ("EPSG:6880", US_FOOT), ("EPSG:2994", 0.3048)],
    ids=["oregon-ft", "nebraska-ftUS", "oregon-harn-ft"],
)
def test_feet_crs_becomes_the_same_projection_in_metres(code: str, factor: float) -> None:
    original = pyproj.CRS(code)
    metric = metric_crs(original)
    assert metric.xy_factor == pytest.approx(factor, rel=1e-12)
    assert metric.z_factor == pytest.approx(factor, rel=1e-12)  # no vertical CRS: LAS convention
    assert metric.converted
    assert all(axis.unit_name == "metre" for axis in metric.crs.axis_info)
    assert metric.crs.to_epsg() != original.to_epsg()  # no longer that EPSG entry
    xy_ft = (2_000_123.4, 650_432.1) if code == "EPSG:6880" else (1_300_000.0, 800_000.0)
    (lon_a, lat_a), (lon_b, lat_b) = same_place(original, xy_ft, metric.crs, factor)
    assert lon_b == pytest.approx(lon_a, abs=1e-9) and lat_b == pytest.approx(lat_a, abs=1e-9)


def test_metre_crs_is_returned_unchanged() -> None:
    crs = pyproj.CRS("EPSG:4549")
    metric = metric_crs(crs)
    assert metric.crs is crs and (metric.xy_factor, metric.z_factor) == (1.0, 1.0)
    assert not metric.converted


def test_compound_crs_uses_the_vertical_unit_for_z() -> None:
    # UTM 10N metres + NAVD88 height in US survey feet
    metric = metric_crs(pyproj.CRS("EPSG:32610+6360"))
    assert metric.xy_factor == 1.0
    assert metric.z_factor == pytest.approx(US_FOOT)
    assert metric.crs.is_compound
    assert [a.unit_name for a in metric.crs.axis_info] == ["metre", "metre", "metre"]
    # feet horizontally, metres vertically
    mixed = metric_crs(pyproj.CRS("EPSG:2992+5703"))
    assert (mixed.xy_factor, mixed.z_factor) == (pytest.approx(0.3048), 1.0)


def test_bound_crs_in_feet_is_converted() -> None:
    bound = pyproj.CRS(
        "+proj=lcc +lat_1=43 +lat_2=45.5 +lat_0=41.75 +lon_0=-120.5 +x_0=400000 +y_0=0"
        " +ellps=GRS80 +towgs84=0,0,0 +units=ft +type=crs"
    )
    assert bound.is_bound
    metric = metric_crs(bound)
    assert metric.xy_factor == pytest.approx(0.3048)
    (lon_a, lat_a), (lon_b, lat_b) = same_place(bound, (1_300_000.0, 800_000.0), metric.crs, 0.3048)
    assert lon_b == pytest.approx(lon_a, abs=1e-9) and lat_b == pytest.approx(lat_a, abs=1e-9)


def test_xishan_default_keeps_easting_first_with_always_xy() -> None:
    crs = pyproj.CRS("EPSG:4549")
    assert crs.axis_info[0].direction == "north"  # northing, easting in the EPSG definition
    to_geo = pyproj.Transformer.from_crs(crs, "EPSG:4490", always_xy=True)
    lon, lat = to_geo.transform(500000.0, 3500000.0)  # easting on the central meridian
    assert lon == pytest.approx(120.0, abs=1e-9) and 31 < lat < 32


def test_crs_labels() -> None:
    assert crs_label(pyproj.CRS("EPSG:4549")) == (
        "EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E)"
    )
    assert crs_label(pyproj.CRS("EPSG:7415")) == "EPSG:7415 (Amersfoort / RD New + NAP height)"
    label = crs_label(metric_crs(pyproj.CRS("EPSG:2992")).crs)
    assert label == "NAD83 / Oregon GIC Lambert (ft) (metre axes)"
