"""The stage registry: each extraction stage by name, with its function and Options type.

A pipeline is data as well as code: a list of stage names with their options can be written to a
manifest and run again. Stage functions are plain typed functions of numpy arrays (see each
module); their Options are frozen dataclasses with documented defaults in metres.

>>> sorted(STAGES)[:3]
['edges.find_road_edges', 'ground.lateral_road_mask', 'ground.road_surface_mask']
>>> stage("markings.paint_pieces").options.__name__
'MarkingOptions'
>>> default_options()["ground.road_surface_mask"]["max_step_m"]
0.06
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.edges import EdgeOptions, find_road_edges
from pipeline.ground import GroundOptions, lateral_road_mask, road_surface_mask
from pipeline.intensity import IntensityOptions, fit_intensity_curve
from pipeline.lanes import LaneOptions, junction_lanes, lane_pieces
from pipeline.markings import MarkingOptions, chain_pieces, paint_pieces, pair_double_lines
from pipeline.poles import PoleOptions, find_poles
from pipeline.signs import SignOptions, find_signs

__all__ = ["STAGES", "Stage", "default_options", "stage"]


@dataclass(frozen=True, slots=True)
class Stage:
    """A registered stage: its ``name``, ``function`` and ``options`` dataclass type."""

    name: str
    function: Callable[..., Any]
    options: type


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("ground.road_surface_mask", road_surface_mask, GroundOptions),
        Stage("ground.lateral_road_mask", lateral_road_mask, GroundOptions),
        Stage("intensity.fit_curve", fit_intensity_curve, IntensityOptions),
        Stage("markings.paint_pieces", paint_pieces, MarkingOptions),
        Stage("markings.chain_pieces", chain_pieces, MarkingOptions),
        Stage("markings.pair_double_lines", pair_double_lines, MarkingOptions),
        Stage("lanes.lane_pieces", lane_pieces, LaneOptions),
        Stage("lanes.junction_lanes", junction_lanes, LaneOptions),
        Stage("edges.find_road_edges", find_road_edges, EdgeOptions),
        Stage("poles.find_poles", find_poles, PoleOptions),
        Stage("signs.find_signs", find_signs, SignOptions),
    )
}


def stage(name: str) -> Stage:
    """The registered stage ``name``; KeyError naming the known stages otherwise."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; known: {', '.join(sorted(STAGES))}") from None


def default_options() -> dict[str, dict[str, Any]]:
    """Every stage's default options as plain values, by stage name."""
    return {name: asdict(s.options()) for name, s in STAGES.items()}
