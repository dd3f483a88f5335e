"""``hdmap info`` through the real entry point: good files, every kind of bad file, JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.cli.main import EXIT_BAD_INPUT, main
from pipeline.trajectory import Trajectory, read_trajectory, write_trajectory
from tests.test_survey import (
    BOUNDS_OFFSET,
    LEGACY_COUNT_OFFSET,
    OFFSET_OFFSET,
    SCALE_OFFSET,
    make_las,
    patch_header,
)
from tests.test_trajectory_ortho import make_ortho, make_trajectory


def run_info(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["info", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---- bad input: one line on stderr naming the file, exit status 3 ----------------------------


def _missing(d: Path) -> Path:
    return d / "missing.las"


def _empty(d: Path) -> Path:
    (d / "empty.las").write_bytes(b"")
    return d / "empty.las"


def _truncated_laz(d: Path) -> Path:
    make_las(d / "cut.laz", n=20_000)
    data = (d / "cut.laz").read_bytes()
    (d / "cut.laz").write_bytes(data[: len(data) // 2])
    return d / "cut.laz"


def _text_named_las(d: Path) -> Path:
    (d / "notes.las").write_text("x,y,z\n1,2,3\n")
    return d / "notes.las"


def _count_mismatch(d: Path) -> Path:
    make_las(d / "count.las", n=1000)
    patch_header(d / "count.las", LEGACY_COUNT_OFFSET, "I", 1200)
    return d / "count.las"


def _no_crs(d: Path) -> Path:
    make_las(d / "nocrs.las", crs=None)
    return d / "nocrs.las"


def _geographic(d: Path) -> Path:
    make_las(d / "degrees.las", crs="EPSG:4326", origin=(120.3, 31.5, 5.0), size=(0.01, 0.01, 1))
    return d / "degrees.las"


def _zero_points(d: Path) -> Path:
    make_las(d / "none.laz", n=0)
    return d / "none.laz"


def _patched(name: str, offset: int, value: float) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        make_las(d / name)
        patch_header(d / name, offset, "d", value)
        return d / name

    return make


BAD_SURVEYS = {
    "missing": (_missing, "no such file"),
    "empty": (_empty, "file is empty (0 bytes)"),
    "truncated-laz": (_truncated_laz, "truncated point data"),
    "text-named-las": (_text_named_las, "not a LAS/LAZ file"),
    "count-mismatch": (_count_mismatch, "header says 1200 points but the file holds 1000"),
    "no-crs": (_no_crs, "no CRS in the file"),
    "geographic-crs": (_geographic, "is geographic (degrees)"),
    "zero-points": (_zero_points, "holds no points"),
    "nan-scale": (
        _patched("nan_scale.las", SCALE_OFFSET, float("nan")),
        "scale factors are not finite",
    ),
    "inf-offset": (
        _patched("inf_offset.las", OFFSET_OFFSET, float("-inf")),
        "offset factors are not finite",
    ),
    "nan-bounds": (_patched("nan_bounds.las", BOUNDS_OFFSET + 8, float("nan")), "bounds are NaN"),
}


def assert_one_line_error(status: int, out: str, err: str, path: Path, problem: str) -> None:
    assert status == EXIT_BAD_INPUT
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and problem in lines[0]
    assert lines[0].startswith("hdmap info: error: ")


@pytest.mark.parametrize(("make", "problem"), BAD_SURVEYS.values(), ids=BAD_SURVEYS.keys())
def test_bad_survey_is_refused(tmp_path: Path, capsys, make, problem: str) -> None:
    path = make(tmp_path)
    status, out, err = run_info([str(path)], capsys)
    assert_one_line_error(status, out, err, path, problem)


def test_no_crs_message_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    path = _no_crs(tmp_path)
    _, _, err = run_info([str(path)], capsys)
    assert "pass --crs" in err
    status, out, _ = run_info([str(path), "--crs", "EPSG:4549"], capsys)
    assert status == 0 and "[from --crs]" in out


def test_crs_option_over_a_file_crs_is_reported(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.las"
    make_las(path, crs="EPSG:32650")
    status, out, _ = run_info([str(path), "--crs", "EPSG:4549"], capsys)
    assert status == 0
    assert "CGCS2000 / 3-degree Gauss-Kruger CM 120E)  [from --crs]" in out
    assert "--crs overrides the file's own CRS, EPSG:32650 (WGS 84 / UTM zone 50N)" in out


def test_bad_crs_option_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.las"
    make_las(path)
    status, out, err = run_info([str(path), "--crs", "EPSG:99999999"], capsys)
    assert_one_line_error(status, out, err, path, "is not a CRS pyproj understands")


def test_one_bad_file_in_a_folder_fails_the_command(tmp_path: Path, capsys) -> None:
    make_las(tmp_path / "a.las")
    bad = _count_mismatch(tmp_path)
    status, out, err = run_info([str(tmp_path)], capsys)
    assert_one_line_error(status, out, err, bad, "header says")


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"this is not a GeoTIFF\n", "not a readable GeoTIFF"), (b"", "not a readable GeoTIFF")],
    ids=["text", "empty"],
)
def test_unreadable_ortho_is_refused(tmp_path: Path, capsys, content: bytes, problem: str) -> None:
    survey = tmp_path / "s.las"
    make_las(survey)
    ortho = tmp_path / "ortho.tif"
    ortho.write_bytes(content)
    status, out, err = run_info([str(survey), "--ortho", str(ortho)], capsys)
    assert_one_line_error(status, out, err, ortho, problem)


def test_trajectory_with_missing_columns_is_refused(tmp_path: Path, capsys) -> None:
    survey = tmp_path / "s.las"
    make_las(survey)
    traj = tmp_path / "traj.csv"
    traj.write_text("time,easting,northing,z\n1,2,3,4\n")
    status, out, err = run_info([str(survey), "--trajectory", str(traj)], capsys)
    assert_one_line_error(status, out, err, traj, "missing column(s) gps_time, x, y")


def test_bad_cell_size_is_a_usage_error(tmp_path: Path, capsys) -> None:
    make_las(tmp_path / "s.las")
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "s.las"), "--cell-m", "0"])
    assert exit_info.value.code == 2
    assert "must be a positive number" in capsys.readouterr().err


# ---- good input -----------------------------------------------------------------------------


def test_text_report(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run1.laz"
    make_las(path, n=40_000, point_format=1, size=(39.999, 19.999, 3.0))
    status, out, err = run_info([str(path)], capsys)
    assert status == 0 and err == ""
    assert str(path) in out
    assert "40,000  (LAS 1.2, point format 1, LAZ (compressed))" in out
    assert "EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E)  [from GeoTIFF keys]" in out
    assert "units       metres" in out
    assert "50.0 points/m2 over 800 m2 covered (1 m cells)" in out
    assert "intensity, " in out and "gps_time" in out


def test_feet_report_names_the_conversion(tmp_path: Path, capsys) -> None:
    path = tmp_path / "feet.las"
    make_las(path, crs="EPSG:2992", origin=(636000.0, 849000.0, 400.0), scale=0.01)
    status, out, _ = run_info([str(path)], capsys)
    assert status == 0
    assert "converted to metres (x, y x 0.3048; z x 0.3048" in out
    assert "NAD83 / Oregon GIC Lambert (ft) (metre axes)" in out
    assert "x 193852." in out or "x 193853." in out  # 636000 ft = 193852.8 m


def test_json_with_trajectory_and_ortho(tmp_path: Path, capsys) -> None:
    # a survey in UTM 50N under the ortho of test_trajectory_ortho, and a matching trajectory
    survey = tmp_path / "s.las"
    make_las(survey, crs="EPSG:32650", origin=(720004.0, 3494990.0, 5.0), size=(10, 5, 1))
    ortho = tmp_path / "o.tif"
    make_ortho(ortho)
    traj_path = tmp_path / "t.csv"
    base = make_trajectory(n=200)
    write_trajectory(Trajectory(base.gps_time, base.xyz, None, None, base.heading_deg), traj_path)
    argv = [str(survey), "--trajectory", str(traj_path), "--ortho", str(ortho), "--json"]
    status, out, err = run_info(argv, capsys)
    assert status == 0 and err == ""
    doc = json.loads(out)
    (s,) = doc["surveys"]
    assert s["point_count"] == s["points_read"] == 2000
    assert s["crs"]["label"].startswith("EPSG:32650") and s["crs"]["source"] == "geotiff"
    assert s["bounds_m"]["minx"] >= 720004.0 and s["bounds_m"]["maxx"] <= 720014.0
    assert "gps_time" in s["dimensions"] and s["density"]["points_per_m2"] > 0
    assert doc["trajectory"]["poses"] == 200
    assert doc["trajectory"]["attitude"] == ["heading_deg"]
    assert doc["trajectory"]["survey_time_coverage"] == pytest.approx(
        1.0
    )  # 1000-1010 s vs 1000-1019.9
    assert len(read_trajectory(traj_path)) == 200
    assert doc["ortho"]["width"] == 64 and doc["ortho"]["survey_coverage"] == pytest.approx(1.0)


def test_several_files_and_a_folder(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    make_las(folder / "a.las", n=100)
    make_las(folder / "b.laz", n=200)
    status, out, _ = run_info([str(folder)], capsys)
    assert status == 0 and "2 files, 300 points" in out
    assert out.index("a.las") < out.index("b.laz")


def test_help_shows_an_example(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "hdmap info tile.laz --crs EPSG:28992" in text
