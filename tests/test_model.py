"""The canonical map model: validation, content-derived IDs, immutability."""

from __future__ import annotations

import dataclasses
import math

import pytest
from shapely import LineString, Point, Polygon

from pipeline.errors import FormatError, HDMapError
from pipeline.model import (
    Color,
    Crosswalk,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    Provenance,
    Sign,
    SignClass,
    SignShape,
    feature_id,
)

LINE = LineString([(534000.0, 3496000.0, 5.0), (534020.0, 3496000.5, 5.1)])


def test_same_input_gives_same_id_and_lineage_changes_it() -> None:
    a = LaneBoundary.create(LINE, MarkingKind.SOLID, Color.WHITE, survey_id="s1")
    b = LaneBoundary.create(LINE, MarkingKind.SOLID, Color.WHITE, survey_id="s1")
    c = LaneBoundary.create(LINE, MarkingKind.SOLID, Color.WHITE, survey_id="s2")
    assert a.id == b.id and a == b
    assert a.id != c.id
    assert a.id.startswith("lb-") and len(a.id) == 3 + 16


def test_id_depends_on_class_and_position_beyond_rounding() -> None:
    p = Point(534000.0, 3496000.0, 5.0)
    assert feature_id("pole", p, "s") != feature_id("sign", p, "s")
    moved = Point(534000.3, 3496000.0, 5.0)
    assert feature_id("pole", p, "s") != feature_id("pole", moved, "s")


def test_records_are_frozen() -> None:
    pole = Pole.create(Point(1, 2, 3), 6.0, 0.08, survey_id="s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pole.height_m = 7.0  # type: ignore[misc]
    assert pole.replace(height_m=7.0).height_m == 7.0


@pytest.mark.parametrize(
    "geometry, message",
    [
        (LineString([(0, 0), (1, 1)]), "3D"),
        (LineString(), "3D"),
        (LineString([(0, 0, math.nan), (1, 1, 0)]), "NaN"),
    ],
)
def test_bad_geometry_is_refused(geometry: LineString, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LaneBoundary(geometry, MarkingKind.SOLID, id="lb-x", provenance=Provenance("s"))


def test_wrong_geometry_type_is_refused() -> None:
    with pytest.raises(TypeError, match="Polygon"):
        Crosswalk.create(LINE, survey_id="s")  # type: ignore[arg-type]


def test_confidence_range_and_lane_widths_checked() -> None:
    with pytest.raises(ValueError, match="confidence"):
        Pole.create(Point(1, 2, 3), 6.0, 0.08, survey_id="s", confidence=1.5)
    with pytest.raises(ValueError, match="widths"):
        Lane.create(LINE, (3.5,), survey_id="s")
    lane = Lane.create(LINE, (3.5, 3.7), survey_id="s")
    assert lane.width_m == pytest.approx(3.6)


def test_map_model_sorts_features_and_refuses_duplicates() -> None:
    pole = Pole.create(Point(1, 2, 3), 6.0, 0.08, survey_id="s")
    sign = Sign.create(
        Point(1, 2, 5), SignClass.STOP, SignShape.OCTAGON, 90.0, survey_id="s", pole=pole.id
    )
    xwalk = Crosswalk.create(Polygon([(0, 0, 0), (4, 0, 0), (4, 6, 0), (0, 6, 0)]), survey_id="s")
    model = MapModel.from_features("EPSG:4549", [sign, pole, xwalk])
    assert model.poles == (pole,) and model.signs == (sign,) and model.crosswalks == (xwalk,)
    assert model.counts()["signs"] == 1 and not model.is_empty
    assert model.by_id()[sign.id] is sign
    with pytest.raises(FormatError, match="duplicate"):
        MapModel.from_features("EPSG:4549", [pole, pole])
    assert issubclass(FormatError, HDMapError) and issubclass(FormatError, ValueError)
