"""Every real LAS/LAZ file in ``../shared/real_data`` through ``hdmap info``, and the real ortho.

The files are not ours (see ``../shared/real_data/README.md``); the tests skip cleanly when the
folder is absent. Expectations per file come from that README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import laspy
import numpy as np
import pyproj
import pytest

from flows.cli.main import EXIT_BAD_INPUT, main
from pipeline.ortho import read_ortho, sample_rgb
from pipeline.survey import iter_chunks, scan_survey
from tests.conftest import REAL_DATA

pytestmark = pytest.mark.realdata

US_FOOT = 1200 / 3937


@dataclass(frozen=True)
class Expected:
    """What the README says about a file: the --crs it needs, and the CRS we must end up with."""

    option: str | None  # --crs to pass (None: the file carries its CRS)
    epsg: int | None = None  # EPSG code of the resulting CRS, when it has one
    source: str = "option"  # where the CRS comes from
    factor: float = 1.0  # metres per file unit (x, y)
    local: bool = False  # engineering (local) frame
    method: str | None = None  # projection method name, when checked


def expected_for(relative: str) -> Expected:
    if relative.startswith("ahn3_amsterdam/"):  # RD New + NAP, no CRS record in the files
        return Expected("EPSG:28992", epsg=28992)
    if relative.startswith("argoverse2_pittsburgh/"):  # city frame, not an EPSG CRS
        return Expected("local", local=True)
    if relative.startswith("here_a22_mls/"):  # UTM 32N, carried as GeoTIFF keys
        return Expected(None, epsg=32632, source="geotiff")
    name = relative.rsplit("/", 1)[-1]
    if name == "autzen_trim.laz":  # Autzen: international feet, Lambert Conformal Conic (WKT)
        return Expected(None, source="wkt", factor=0.3048, method="Lambert Conic Conformal (2SP)")
    if name == "file_with_both_wkt_and_geotiff_vlrs.las":  # WKT (Nebraska, US ft) wins
        return Expected(None, source="wkt", factor=US_FOOT, method="Lambert Conic Conformal (2SP)")
    if name == "simple.las":  # an Autzen extract without CRS: NAD83(HARN) / Oregon GIC Lambert (ft)
        return Expected("EPSG:2994", source="option", factor=0.3048)
    # simple1_4.las (EPSG:4326 in degrees: refused without --crs), vegetation_1_3.las (no CRS)
    return Expected("local", local=True)


def real_survey_files() -> list[Path]:
    return sorted(p for p in REAL_DATA.rglob("*") if p.suffix.lower() in (".las", ".laz"))


@pytest.fixture(
    params=real_survey_files() or [None],
    ids=lambda p: p.relative_to(REAL_DATA).as_posix() if p else "absent",
)
def real_survey(request: pytest.FixtureRequest, real_data_dir: Path) -> Path:
    if request.param is None:
        pytest.skip(f"no LAS/LAZ files under {real_data_dir}")
    return request.param


def test_hdmap_info_reads_every_real_file(real_survey: Path, capsys) -> None:
    relative = real_survey.relative_to(REAL_DATA).as_posix()
    expected = expected_for(relative)
    argv = ["info", str(real_survey), "--json"]
    if expected.option:
        argv += ["--crs", expected.option]
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    (doc,) = json.loads(captured.out)["surveys"]

    with laspy.open(real_survey) as reader:
        header_count = reader.header.point_count
    iterated = sum(len(chunk) for chunk in iter_chunks(real_survey, expected.option, 4096))
    assert doc["point_count"] == header_count == doc["points_read"] == iterated

    crs = pyproj.CRS.from_wkt(doc["crs"]["wkt"])
    assert doc["crs"]["source"] == expected.source
    assert doc["crs"]["xy_factor"] == pytest.approx(expected.factor, rel=1e-12)
    assert all(axis.unit_name == "metre" for axis in crs.axis_info)
    if expected.epsg is not None:
        assert crs.to_epsg() == expected.epsg
    if expected.local:
        assert crs.is_engineering
    if expected.method is not None:
        assert crs.coordinate_operation.method_name == expected.method
    bounds = doc["bounds_m"]
    assert bounds["minx"] <= bounds["maxx"] and bounds["miny"] <= bounds["maxy"]
    assert doc["density"]["points_per_m2"] > 0


def test_files_without_a_usable_crs_are_refused_without_option(real_data_dir: Path, capsys) -> None:
    cases = {
        "ahn3_amsterdam/ahn_2386_9702.laz": "no CRS in the file",
        "las_format_fixtures/vegetation_1_3.las": "no CRS in the file",
        "las_format_fixtures/simple1_4.las": "is geographic (degrees)",
    }
    for relative, problem in cases.items():
        path = real_data_dir / relative
        if not path.exists():
            continue
        status = main(["info", str(path)])
        err = capsys.readouterr().err
        assert status == EXIT_BAD_INPUT and problem in err and str(path) in err
        assert len(err.strip().splitlines()) == 1


def test_autzen_feet_become_metres(real_data_dir: Path) -> None:
    path = real_data_dir / "las_format_fixtures" / "autzen_trim.laz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with laspy.open(path) as reader:
        mins_ft = reader.header.mins
    stats = scan_survey(path)
    assert stats.bounds[0] == pytest.approx(mins_ft[0] * 0.3048, abs=0.01)
    assert stats.bounds[2] == pytest.approx(mins_ft[2] * 0.3048, abs=0.01)


def test_here_junk_point_at_the_local_origin_is_seen(real_data_dir: Path) -> None:
    # README: filter_mean holds one junk point at the upstream local origin
    path = real_data_dir / "here_a22_mls" / "nw_here_mls_filter_mean_utm32n.laz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    stats = scan_survey(path)
    assert stats.bounds[:3] == pytest.approx((657227.273266, 5085303.876864, 221.8044), abs=2e-3)


def test_spacenet_ortho_reprojected_to_utm_11n(real_data_dir: Path) -> None:
    path = real_data_dir / "spacenet_ortho" / "road_mask_input.tif"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    native = read_ortho(path)
    assert native.crs.to_epsg() == 4326
    ortho = read_ortho(path, "EPSG:32611")
    assert ortho.crs.to_epsg() == 32611
    px, py = ortho.pixel_size
    assert 0.2 < px < 0.35 and px == pytest.approx(py)  # 0.3 m imagery, metres now
    assert ortho.valid.mean() > 0.9
    # the image centre samples the same value in both CRSs
    lon, lat = (native.bounds[0] + native.bounds[2]) / 2, (native.bounds[1] + native.bounds[3]) / 2
    x, y = pyproj.Transformer.from_crs(4326, 32611, always_xy=True).transform(lon, lat)
    a = sample_rgb(native, np.array([lon]), np.array([lat]))[0, 0]
    b = sample_rgb(ortho, np.array([x]), np.array([y]))[0, 0]
    assert np.isfinite(a) and abs(a - b) <= 0.25 * max(abs(a), 1.0)
    fixed = read_ortho(path, "EPSG:32611", resolution_m=0.3)
    assert fixed.pixel_size == pytest.approx((0.3, 0.3))
