"""Write the conformant samples of the standard: ``python -m standards.make_samples``.

- ``samples/minimal.xsmap.xml``: :func:`minimal_model`, a 40 m road with one feature of every
  class, small enough to print in full in Annex C of the spec;
- ``samples/urban-1.xsmap.xml`` and ``samples/highway-1.xsmap.xml``: the ground truth of the
  simulated urban junction approach and highway (``data_samples.simulator``, seed 1), as the
  pipeline's local-standard writer makes them.

Every sample must validate with no errors (``tests/test_standard_docs.py``).

>>> minimal_model().counts()["signs"]
1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shapely import LineString, Point, Polygon

from pipeline.model import (
    ArrowKind,
    Color,
    Crosswalk,
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
from standards import HERE

__all__ = ["SAMPLES_DIR", "SIMULATED", "minimal_model", "write_samples"]

SAMPLES_DIR = HERE / "samples"
#: sample file stem -> (scene kind, seed) of the simulated scenes written as samples.
SIMULATED: dict[str, tuple[str, int]] = {"urban-1": ("urban", 1), "highway-1": ("highway", 1)}

_E0, _N0, _Z0 = 532270.0, 3495200.0, 5.0  # Xishan district, EPSG:4549 metres
_SURVEY = "db3202-sample"


def _line(y: float, x0: float, x1: float, n: int = 3) -> LineString:
    return LineString([(_E0 + x0 + (x1 - x0) * i / n, _N0 + y, _Z0) for i in range(n + 1)])


def _rect(x0: float, x1: float, y0: float, y1: float) -> Polygon:
    return Polygon([(_E0 + x, _N0 + y, _Z0) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))])


def minimal_model() -> MapModel:
    """A 30 m two-lane road (EPSG:4549) entering a 10 m junction: one feature of every class."""
    kw = {"survey_id": _SURVEY, "method": "manual"}
    south = LaneBoundary.create(_line(-3.5, 0, 30), MarkingKind.SOLID, Color.WHITE, **kw)
    centre = LaneBoundary.create(
        _line(0.0, 0, 30), MarkingKind.DOUBLE_SOLID, Color.YELLOW, **kw, accuracy_m=0.05
    )
    north = LaneBoundary.create(_line(3.5, 0, 30), MarkingKind.SOLID, Color.WHITE, **kw)
    junction_area = _rect(30, 40, -3.5, 3.5)
    junction_id = Junction.create(junction_area, **kw).id
    east = Lane.create(
        _line(-1.75, 0, 30), (3.5,) * 4, **kw, left_boundary=centre.id, right_boundary=south.id
    )
    west = Lane.create(
        _line(1.75, 30, 0), (3.5,) * 4, **kw, left_boundary=centre.id, right_boundary=north.id
    )
    connector = Lane.create(_line(-1.75, 30, 40, 2), (3.5,) * 3, **kw, junction=junction_id)
    east = east.replace(successors=(connector.id,))
    connector = connector.replace(predecessors=(east.id,))
    junction = Junction(
        junction_area, id=junction_id, provenance=east.provenance, lanes=(connector.id,)
    )
    pole = Pole.create(Point(_E0 + 27.0, _N0 - 4.5, _Z0 + 0.15), 3.2, 0.04, **kw)
    return MapModel(
        "EPSG:4549",
        height_datum="1985 National Height Datum",
        name="DB3202/T XXXX—2026 最小示例 minimal sample",
        lane_boundaries=(south, centre, north),
        lanes=(east, west, connector),
        road_edges=(RoadEdge.create(_line(-3.8, 0, 30), RoadEdgeKind.CURB, **kw, height_m=0.15),),
        stop_lines=(
            StopLine.create(
                LineString([(_E0 + 28, _N0 - 3.5, _Z0), (_E0 + 28, _N0 - 0.1, _Z0)]),
                **kw,
                width_m=0.4,
            ),
        ),
        crosswalks=(Crosswalk.create(_rect(31, 35, -3.5, 3.5), **kw),),
        road_arrows=(RoadArrow.create(Point(_E0 + 20, _N0 - 1.75, _Z0), ArrowKind.STRAIGHT, **kw),),
        poles=(pole,),
        signs=(
            Sign.create(
                Point(_E0 + 27.0, _N0 - 4.5, _Z0 + 2.8),
                SignClass.STOP,
                SignShape.OCTAGON,
                270.0,
                **kw,
                pole=pole.id,
            ),
        ),
        junctions=(junction,),
    )


def write_samples(folder: Path = SAMPLES_DIR, *, simulated: bool = True) -> list[Path]:
    """Write the samples into ``folder``; the simulated ones only when ``simulated``."""
    from formats.localstd import write_localstd

    written = [folder / "minimal.xsmap.xml"]
    write_localstd(minimal_model(), written[0])
    if simulated:
        from data_samples.simulator.scenes import build_scene

        for stem, (kind, seed) in SIMULATED.items():
            path = folder / f"{stem}.xsmap.xml"
            write_localstd(build_scene(kind, seed).truth, path)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standards.make_samples", description=__doc__)
    parser.add_argument("--minimal-only", action="store_true", help="skip the simulated scenes")
    args = parser.parse_args(argv)
    for path in write_samples(simulated=not args.minimal_only):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
