"""Survey preview image: raster geometry, intensity shading, empty input, overlay, CLI."""

from __future__ import annotations

from pathlib import Path

import laspy
import matplotlib.image as mpimg
import numpy as np
import pyproj
import pytest
from shapely import LineString

from flows.cli.main import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, main
from formats.gpkg import write_gpkg
from pipeline.errors import SurveyError
from pipeline.model import Color, LaneBoundary, MapModel, MarkingKind
from qa.preview import EMPTY_RGB, PreviewGrid, choose_pixel_m, render_preview
from tests.common import E0, N0, Z0, sample_model

EMPTY = np.asarray(EMPTY_RGB) / 255


def _plane_with_stripe(spacing=0.05, stripe_y=(9.5, 10.5), size=(40.0, 20.0), seed=1):
    """A dark plane (intensity ~100) with a bright stripe (5000) along x, in local metres."""
    rng = np.random.default_rng(seed)
    xs = np.arange(spacing / 2, size[0], spacing)
    ys = np.arange(spacing / 2, size[1], spacing)
    x, y = (a.ravel() for a in np.meshgrid(xs, ys))
    intensity = rng.normal(100, 10, x.size)
    intensity[(y > stripe_y[0]) & (y < stripe_y[1])] = 5000
    return np.column_stack([x, y, np.full(x.size, Z0)]), intensity.astype(np.uint16)


def _chunks(xyz, intensity, size=50_000):
    for i in range(0, len(xyz), size):
        yield xyz[i : i + size], None if intensity is None else intensity[i : i + size]


def _read(path: Path) -> np.ndarray:
    image = mpimg.imread(path)
    return image[..., :3]


def _area(image: np.ndarray, result, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """The image pixels of the world rectangle x0..x1, y0..y1 (metres), using the result's
    geometry: north up, top-left at (minx, maxy), pixel_m / scale metres per image pixel."""
    minx, _, _, maxy = result.bounds_xy
    step = result.pixel_m / result.scale
    cols = slice(int((x0 - minx) / step), int((x1 - minx) / step))
    rows = slice(int((maxy - y1) / step), int((maxy - y0) / step))
    return image[rows, cols]


def test_stripe_is_brighter_than_the_plane(tmp_path):
    xyz, intensity = _plane_with_stripe()
    out = tmp_path / "p.png"
    result = render_preview(
        _chunks(xyz, intensity), (0, 0, 40, 20), out, pixel_m=0.1, title="stripe", crs_label="local"
    )
    # 400 x 200 cells of 0.1 m, each drawn as 3 x 3 pixels to reach the 1000 px minimum
    assert (result.width_px, result.height_px, result.pixel_m, result.scale) == (1200, 600, 0.1, 3)
    assert result.points == len(xyz) and result.shading == "intensity"
    assert result.bounds_xy == (0, 0, 40, 20)
    image = _read(out)
    assert image.shape == (600, 1200, 3)
    stripe = _area(image, result, 15, 25, 9.7, 10.3)
    plane = _area(image, result, 15, 25, 3, 6)
    assert stripe.shape == (18, 300, 3) and plane.shape == (90, 300, 3)
    assert stripe.mean() > 0.9
    assert plane.mean() < 0.5
    # the plane is grey (R = G = B), not the empty colour
    assert np.allclose(plane[..., 0], plane[..., 2]) and not np.allclose(plane[0, 0], EMPTY)


def test_without_intensity_shows_point_density(tmp_path):
    xyz, _ = _plane_with_stripe(spacing=0.1)
    dense = xyz[(xyz[:, 1] > 9.5) & (xyz[:, 1] < 10.5)]
    xyz = np.concatenate([xyz, dense, dense, dense])
    result = render_preview(_chunks(xyz, None), (0, 0, 40, 20), tmp_path / "d.png", pixel_m=0.2)
    assert result.shading == "point count"
    image = _read(tmp_path / "d.png")
    stripe, plane = (_area(image, result, 15, 25, y0, y1) for y0, y1 in ((9.7, 10.3), (3, 6)))
    assert stripe.mean() > plane.mean() + 0.3


def test_mixed_chunks_with_and_without_intensity(tmp_path):
    xyz, intensity = _plane_with_stripe(spacing=0.1)
    chunks = [(xyz[:1000], None), (xyz[1000:], intensity[1000:])]
    result = render_preview(chunks, (0, 0, 40, 20), tmp_path / "m.png", pixel_m=0.2)
    assert result.shading == "intensity" and result.points == len(xyz)


def test_empty_input_gives_a_valid_background_image(tmp_path):
    out = tmp_path / "empty.png"
    outside = np.array([[100.0, 100.0, 0.0], [np.nan, 1.0, 0.0]])
    for chunks in ([], [(outside, None)], [(np.empty((0, 3)), np.empty(0))]):
        result = render_preview(chunks, (0, 0, 40, 20), out, pixel_m=0.1)
        assert result.points == 0
        image = _read(out)
        assert image.shape == (result.height_px, result.width_px, 3) == (600, 1200, 3)
        assert np.allclose(_area(image, result, 15, 25, 5, 12), EMPTY, atol=1 / 255)


def test_points_outside_the_bounds_and_nan_are_ignored(tmp_path):
    xyz = np.array([[1.0, 1.0, 0], [50.0, 1.0, 0], [np.nan, 1.0, 0], [2.0, 2.0, 0]])
    result = render_preview([(xyz, np.array([1, 2, 3, 4]))], (0, 0, 10, 10), tmp_path / "o.png")
    assert result.points == 2


def test_points_on_the_max_edge_are_kept():
    grid = PreviewGrid.from_bounds((0, 0, 10, 10), 1.0)
    index, inside = grid.cells(np.array([[10.0, 0.0], [0.0, 10.0]]))
    assert inside.all() and index.tolist() == [99, 0]


def test_pixel_size_choice(tmp_path):
    assert choose_pixel_m((0, 0, 10_000, 1_000)) == 2.5
    assert PreviewGrid.from_bounds((0, 0, 10_000, 1_000)).width_px == 4000
    assert render_preview([], (0, 0, 10_000, 1_000), tmp_path / "big.png").scale == 1
    assert choose_pixel_m((0, 0, 3, 2)) == 0.05
    assert PreviewGrid.from_bounds((0, 0, 3, 2)).width_px == 60


def test_sparse_clouds_get_merged_cells(tmp_path):
    # 16 points per m2 on a regular 0.25 m lattice: 5 cm cells would be 94 % empty
    xyz, intensity = _plane_with_stripe(spacing=0.25, size=(100.0, 100.0))
    result = render_preview(_chunks(xyz, intensity), (0, 0, 100, 100), tmp_path / "s.png")
    assert result.pixel_m == 0.5  # 10 x 10 blocks of 5 cm: 4 points each
    image = _read(tmp_path / "s.png")
    inner = _area(image, result, 1, 99, 1, 9)
    assert not np.isclose(inner, EMPTY, atol=1 / 255).all(axis=-1).any()  # no empty speckle
    # an explicit cell size is kept as given, speckle and all
    fine = render_preview(
        _chunks(xyz, intensity), (0, 0, 100, 100), tmp_path / "f.png", pixel_m=0.05
    )
    assert fine.pixel_m == 0.05
    # a small area keeps at least 200 cells on its long side
    small = render_preview(_chunks(xyz, intensity), (0, 0, 50, 50), tmp_path / "m.png")
    assert small.pixel_m == 0.25


@pytest.mark.parametrize(
    ("bounds", "pixel_m", "message"),
    [
        ((0, 0, 0, 10), None, "empty or inverted"),
        ((0, 10, 5, 0), None, "empty or inverted"),
        ((0, 0, np.nan, 1), None, "not finite"),
        ((0, 0, 10, 10), 0.0, "must be positive"),
        ((0, 0, 10_000, 10), 0.1, "at most 20000 px"),
    ],
)
def test_bad_bounds_and_pixel_sizes(tmp_path, bounds, pixel_m, message):
    with pytest.raises(ValueError, match=message):
        render_preview([], bounds, tmp_path / "x.png", pixel_m=pixel_m)
    assert not (tmp_path / "x.png").exists()


def test_bad_chunk_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        render_preview([(np.zeros(3), None)], (0, 0, 1, 1), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 intensities for 3 points"):
        render_preview([(np.zeros((3, 3)), np.zeros(2))], (0, 0, 1, 1), tmp_path / "x.png")


def test_a_failing_reader_leaves_the_old_image(tmp_path):
    out = tmp_path / "sub" / "p.png"
    render_preview([], (0, 0, 10, 10), out)
    before = out.read_bytes()

    def broken():
        yield np.zeros((1, 3)), None
        raise SurveyError("truncated", path="a.laz")

    with pytest.raises(SurveyError):
        render_preview(broken(), (0, 0, 10, 10), out)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["p.png"]


def test_overlay_is_drawn_in_place(tmp_path):
    # a yellow double line along y = 10 m over an empty raster: its pixels must turn yellow
    line = LineString([(5.0, 10.0, 0.0), (35.0, 10.0, 0.0)])
    boundary = LaneBoundary.create(line, MarkingKind.DOUBLE_SOLID, Color.YELLOW, survey_id="s")
    overlay = MapModel("EPSG:4549", lane_boundaries=[boundary])
    out = tmp_path / "o.png"
    result = render_preview([], (0, 0, 40, 20), out, pixel_m=0.1, overlay=overlay)
    image = _read(out)
    on_line = _area(image, result, 15, 25, 9.99, 10.01)
    assert on_line.size and (on_line[..., 0] > 0.9).all() and (on_line[..., 2] < 0.2).all()
    assert np.allclose(_area(image, result, 15, 25, 13, 14), EMPTY, atol=1 / 255)  # untouched


def test_sample_model_overlay_renders(tmp_path):
    xyz, intensity = _plane_with_stripe(spacing=0.2, size=(70.0, 30.0))
    xyz = xyz + np.array([E0 - 5.0, N0 - 15.0, 0.0])
    result = render_preview(
        _chunks(xyz, intensity),
        (E0 - 5, N0 - 15, E0 + 65, N0 + 15),
        tmp_path / "s.png",
        overlay=sample_model(),
        title="sample",
        crs_label="EPSG:4549",
    )
    # 25 points per m2: 5 cm cells merged 6 x 6 to 30 cm, drawn 5 x 5 pixels each
    assert (result.pixel_m, result.scale, result.width_px, result.height_px) == (0.3, 5, 1170, 500)
    assert _read(tmp_path / "s.png").shape == (500, 1170, 3)


# ------------------------------------------------------------------------------------------ CLI


def _write_las(path: Path, crs: str | None = "EPSG:4549") -> np.ndarray:
    xyz, intensity = _plane_with_stripe(spacing=0.25, size=(70.0, 30.0))
    xyz = xyz + np.array([E0 - 5.0, N0 - 15.0, 0.0])
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.offsets = [round(E0), round(N0), 0.0]
    header.scales = [0.001, 0.001, 0.001]
    if crs is not None:
        header.add_crs(pyproj.CRS(crs))
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.intensity = intensity
    las.write(path)
    return xyz


@pytest.fixture
def tiny_las(tmp_path) -> Path:
    path = tmp_path / "tiny.las"
    _write_las(path)
    return path


def test_cli_preview_with_overlay(tiny_las, tmp_path, capsys):
    gpkg = tmp_path / "features.gpkg"
    write_gpkg(sample_model(), gpkg)
    out = tmp_path / "preview.png"
    status = main(["preview", str(tiny_las), "-o", str(out), "--overlay", str(gpkg)])
    assert status == EXIT_OK
    printed = capsys.readouterr().out
    assert "wrote" in printed and "(intensity)" in printed
    assert out.is_file() and _read(out).shape[1] > 100

    # with explicit bounds and pixel size: the double yellow centre line (y = N0) is drawn on
    # the row 15 m below the top edge, and the image is 70 m x 30 m at 0.1 m
    bounds = f"{E0 - 5.0!r},{N0 - 15.0!r},{E0 + 65.0!r},{N0 + 15.0!r}"
    status = main(
        [
            "preview",
            str(tiny_las),
            "-o",
            str(out),
            "--overlay",
            str(gpkg),
            "--bounds",
            bounds,
            "--pixel-m",
            "0.1",
        ]
    )
    assert status == EXIT_OK
    image = _read(out)
    assert image.shape == (600, 1400, 3)  # 700 x 300 cells, 2 x 2 pixels each
    centre = image[299:301, 500]  # y = N0: 15 m below the top; x = E0 + 20 m: 25 m from the left
    assert ((centre[:, 0] > 0.85) & (centre[:, 2] < 0.3)).all(), centre


def test_cli_pixel_size_and_folder_input(tiny_las, tmp_path, capsys):
    out = tmp_path / "p.png"
    assert main(["preview", str(tiny_las.parent), "-o", str(out), "--pixel-m", "0.5"]) == EXIT_OK
    assert "1120 x 480 px, 0.5 m cells, 33,600 of 33,600 points" in capsys.readouterr().out
    assert _read(out).shape[:2] == (480, 1120)  # 140 x 60 cells, 8 x 8 pixels each


def test_cli_refuses_a_survey_without_crs(tmp_path, capsys):
    las = tmp_path / "nocrs.las"
    _write_las(las, crs=None)
    assert main(["preview", str(las), "-o", str(tmp_path / "p.png")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "nocrs.las" in err and "--crs" in err and "Traceback" not in err
    assert main(["preview", str(las), "--crs", "EPSG:4549", "-o", str(tmp_path / "p.png")]) == 0


def test_cli_refuses_an_overlay_in_another_crs(tiny_las, tmp_path, capsys):
    gpkg = tmp_path / "utm.gpkg"
    write_gpkg(sample_model().replace(crs="EPSG:32650"), gpkg)
    status = main(["preview", str(tiny_las), "-o", str(tmp_path / "p.png"), "--overlay", str(gpkg)])
    assert status == EXIT_BAD_INPUT
    assert "utm.gpkg: overlay CRS EPSG:32650" in capsys.readouterr().err


def test_cli_usage_errors(tiny_las, tmp_path, capsys):
    out = str(tmp_path / "p.png")
    assert main(["preview", str(tiny_las), "-o", out, "--pixel-m", "0.0001"]) == EXIT_USAGE
    assert "at most 20000 px" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", str(tiny_las), "-o", out, "--bounds", "1,2,3"])
    assert exit_info.value.code == EXIT_USAGE
    assert main(["preview", str(tmp_path / "none.laz"), "-o", out]) == EXIT_BAD_INPUT
