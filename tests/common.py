"""Shared fixture models for format and tile tests: small, realistic and full of awkward values.

Every format test (GeoPackage, OpenDRIVE, the local standard, tiles) parametrises over
:data:`MODELS`::

    @pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
    def test_round_trip(make_model, tmp_path): ...

:func:`sample_model` is a 60 m stretch of a four-lane urban road in EPSG:4549 (CGCS2000 / 3-degree
Gauss-Kruger CM 120E) near easting 534000, northing 3496000, heights about 5 m, running east into
a junction: two lanes per direction, five lane boundaries (solid, dashed with a 2 m / 4 m pattern,
double solid yellow), a curb with its height and a pavement edge without, a stop line, a zebra
crosswalk, a polygon and a point arrow, two poles, two signs (one on a pole) and one junction with
a connecting lane. Lanes link to each other (successor, predecessor, neighbours, junction). Some
optional fields are None; some floats are awkward (0.1 + 0.2, 1e-12, full-precision eastings).
"""

from __future__ import annotations

from collections.abc import Callable

from shapely import LineString, Point, Polygon

from pipeline.model import (
    ArrowKind,
    Color,
    Crosswalk,
    Direction,
    Junction,
    Lane,
    LaneBoundary,
    MapModel,
    MarkingKind,
    Pole,
    RoadArrow,
    RoadEdge,
    RoadEdgeKind,
    Sign,
    SignClass,
    SignShape,
    StopLine,
)

__all__ = [
    "CRS",
    "E0",
    "MODELS",
    "N0",
    "SURVEY_ID",
    "Z0",
    "empty_model",
    "sample_model",
]

CRS = "EPSG:4549"
SURVEY_ID = "xishan-2026-11-25-run01"
E0 = 534000.123456789  # full-precision easting of the road's west end, metres
N0 = 3496000.987654321  # northing of the road's centre line (double yellow), metres
Z0 = 5.0  # road surface height at the west end, metres (1985 National Height Datum)
LANE_WIDTH = 3.5
ROAD_END = 40.0  # the road runs x = 0..40 m east of E0, the junction 40..60 m
GRADE = 0.0125  # the road climbs 1.25 % eastwards


def _z(x: float) -> float:
    return Z0 + GRADE * x


def _line(y: float, x0: float = 0.0, x1: float = ROAD_END, step: float = 10.0) -> LineString:
    """A 3D polyline at northing offset ``y`` from x0 to x1 (local metres east of E0)."""
    n = round(abs(x1 - x0) / step)
    xs = [x0 + (x1 - x0) * i / n for i in range(n + 1)]
    return LineString([(E0 + x, N0 + y, _z(x)) for x in xs])


def _rect(x0: float, x1: float, y0: float, y1: float, dz: float = 0.0) -> Polygon:
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return Polygon([(E0 + x, N0 + y, _z(x) + dz) for x, y in corners])


def empty_model() -> MapModel:
    """A map with no features: every layer empty, CRS and datum still set."""
    return MapModel(CRS, height_datum="1985 National Height Datum", name="empty")


def sample_model() -> MapModel:
    """The four-lane road and junction described in the module docstring."""
    kw = {"survey_id": SURVEY_ID, "method": "truth"}
    half = LANE_WIDTH

    # Lane boundaries, south to north; eastbound traffic on the south side (right-hand traffic).
    south_edge_line = LaneBoundary.create(
        _line(-2 * half), MarkingKind.SOLID, Color.WHITE, **kw, confidence=0.97, accuracy_m=0.05
    )
    east_divider = LaneBoundary.create(
        _line(-half),
        MarkingKind.DASHED,
        Color.WHITE,
        **kw,
        dash_length_m=2.0,
        gap_length_m=4.0,
        confidence=0.1 + 0.2,
        accuracy_m=1e-12,
    )
    centre = LaneBoundary.create(
        _line(0.0),
        MarkingKind.DOUBLE_SOLID,
        Color.YELLOW,
        **kw,
        width_m=0.15 + 1e-12,
    )
    west_divider = LaneBoundary.create(
        _line(half),
        MarkingKind.DASHED,
        Color.WHITE,
        survey_id=SURVEY_ID,
        dash_length_m=6.0,
        gap_length_m=9.0,
        width_m=0.1,
    )
    north_edge_line = LaneBoundary.create(
        _line(2 * half), MarkingKind.SOLID, Color.UNKNOWN, **kw, accuracy_m=None, confidence=0.5
    )

    # Lanes: centrelines digitised in the travel direction, widths per vertex.
    east_inner = Lane.create(
        _line(-half / 2),
        (3.5, 3.4999999999999996, 3.5 + 1e-12, 3.5, 3.5),
        **kw,
        left_boundary=centre.id,
        right_boundary=east_divider.id,
        accuracy_m=0.08,
    )
    east_outer = Lane.create(
        _line(-1.5 * half),
        (3.5, 3.5, 3.45, 3.4, 3.35),
        **kw,
        left_boundary=east_divider.id,
        right_boundary=south_edge_line.id,
    )
    west_inner = Lane.create(
        _line(half / 2, ROAD_END, 0.0),
        (3.5,) * 5,
        **kw,
        left_boundary=centre.id,
        right_boundary=west_divider.id,
    )
    west_outer = Lane.create(
        _line(1.5 * half, ROAD_END, 0.0),
        (3.5, 3.6, 3.7, 3.6, 3.5),
        **kw,
        left_boundary=west_divider.id,
        right_boundary=north_edge_line.id,
        confidence=0.875,
    )
    connector = Lane.create(
        _line(-half / 2, ROAD_END, ROAD_END + 20.0),
        (3.5, 3.5, 3.5),
        **kw,
        direction=Direction.FORWARD,
        confidence=0.6,  # virtual boundaries: none recorded
    )
    junction = Junction.create(_rect(ROAD_END, ROAD_END + 20.0, -2 * half, 2 * half), **kw)
    east_inner = east_inner.replace(successors=(connector.id,), right_neighbour=east_outer.id)
    east_outer = east_outer.replace(left_neighbour=east_inner.id)
    west_inner = west_inner.replace(right_neighbour=west_outer.id)
    west_outer = west_outer.replace(left_neighbour=west_inner.id)
    connector = connector.replace(predecessors=(east_inner.id,), junction=junction.id)
    junction = junction.replace(lanes=(connector.id,))

    curb = RoadEdge.create(
        _line(-2 * half - 0.3), RoadEdgeKind.CURB, **kw, height_m=0.15, accuracy_m=0.04
    )
    pavement_edge = RoadEdge.create(_line(2 * half + 0.4), RoadEdgeKind.PAVEMENT_EDGE, **kw)

    stop_line = StopLine.create(
        LineString([(E0 + 38.0, N0 - 2 * half, _z(38.0)), (E0 + 38.0, N0 - 0.2, _z(38.0))]),
        **kw,
        width_m=0.4,
        confidence=0.9,
    )
    crosswalk = Crosswalk.create(_rect(ROAD_END + 1.0, ROAD_END + 5.0, -2 * half, 2 * half), **kw)
    arrow_polygon = RoadArrow.create(
        Polygon(
            [
                (E0 + 28.0, N0 - 1.95, _z(28.0)),
                (E0 + 33.0, N0 - 1.95, _z(33.0)),
                (E0 + 33.0, N0 - 2.35, _z(33.0)),
                (E0 + 34.5, N0 - 1.75, _z(34.5)),
                (E0 + 33.0, N0 - 1.15, _z(33.0)),
                (E0 + 33.0, N0 - 1.55, _z(33.0)),
                (E0 + 28.0, N0 - 1.55, _z(28.0)),
            ]
        ),
        ArrowKind.STRAIGHT,
        **kw,
        confidence=0.8,
    )
    arrow_point = RoadArrow.create(
        Point(E0 + 31.0, N0 - 1.5 * half, _z(31.0)),
        ArrowKind.STRAIGHT_LEFT,
        survey_id=SURVEY_ID,
        confidence=0.4,
    )

    pole_light = Pole.create(Point(E0 + 10.0, N0 - 8.6, _z(10.0) + 0.15), 6.5, 0.08, **kw)
    pole_sign = Pole.create(
        Point(E0 + 36.0, N0 - 8.6, _z(36.0) + 0.15), 3.2, 0.0375, **kw, accuracy_m=0.03
    )
    stop_sign = Sign.create(
        Point(E0 + 36.0, N0 - 8.6, _z(36.0) + 2.8),
        SignClass.STOP,
        SignShape.OCTAGON,
        270.0,
        **kw,
        width_m=0.8,
        height_m=0.8,
        pole=pole_sign.id,
    )
    warning_sign = Sign.create(
        Point(E0 + 5.0, N0 + 9.1, _z(5.0) + 2.5),
        SignClass.WARNING,
        SignShape.TRIANGLE,
        89.99999999999999,
        survey_id=SURVEY_ID,
        width_m=0.9,
        height_m=0.78,
        confidence=0.65,
    )

    return MapModel(
        CRS,
        height_datum="1985 National Height Datum",
        name="西山 sample road",
        lane_boundaries=(south_edge_line, east_divider, centre, west_divider, north_edge_line),
        lanes=(east_inner, east_outer, west_inner, west_outer, connector),
        road_edges=(curb, pavement_edge),
        stop_lines=(stop_line,),
        crosswalks=(crosswalk,),
        road_arrows=(arrow_polygon, arrow_point),
        poles=(pole_light, pole_sign),
        signs=(stop_sign, warning_sign),
        junctions=(junction,),
    )


#: name -> factory of every shared fixture model, for ``pytest.mark.parametrize``.
MODELS: dict[str, Callable[[], MapModel]] = {
    "empty": empty_model,
    "sample": sample_model,
}
