"""The simulated world: value types shared by the scene builder and the scanner.

A :class:`Scene` is what a survey vehicle drives through: triangle surfaces with materials (the
scanner ray-casts them; the orthophoto renders them from above), painted patches on the road
surface (materials looked up per hit point), the path the vehicle drives, and the exact ground
truth as a :class:`~pipeline.model.MapModel`.

Scene geometry is in **local** metres (x east, y north, z up) relative to :attr:`Scene.origin`,
so that float32 ray casting keeps millimetre precision; add the origin to get coordinates in
:attr:`Scene.crs`. The truth model is in the CRS itself (origin already added).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely import Polygon

from pipeline.model import MapModel

__all__ = ["MATERIALS", "DrivePath", "Material", "PaintPatch", "Scene", "Surface"]


@dataclass(frozen=True, slots=True)
class Material:
    """How a surface answers a laser pulse and how it looks from above.

    ``reflectance`` is the diffuse reflectance (0-1) at normal incidence; retroreflective
    materials send most light back whatever the incidence angle.
    """

    reflectance: float
    rgb: tuple[int, int, int]
    retroreflective: bool = False
    texture: float = 0.05  # relative std-dev of reflectance / colour texture across the surface


MATERIALS: dict[str, Material] = {
    "asphalt": Material(0.08, (70, 70, 72), texture=0.15),
    "concrete": Material(0.30, (170, 168, 160)),  # sidewalks, curbs
    "barrier_concrete": Material(0.35, (185, 183, 175)),
    "guardrail": Material(0.45, (190, 195, 200)),
    "grass": Material(0.20, (80, 125, 55), texture=0.25),
    "paint_white": Material(0.65, (235, 235, 230)),
    "paint_yellow": Material(0.50, (235, 190, 40)),
    "car_body": Material(0.25, (120, 30, 30), texture=0.3),
    "person": Material(0.20, (60, 60, 90)),
    "pole_metal": Material(0.40, (150, 150, 155)),
    "sign_face": Material(0.90, (240, 240, 240), retroreflective=True),
    "sign_back": Material(0.35, (160, 160, 165)),
    "tree_trunk": Material(0.20, (90, 70, 50)),
    "foliage": Material(0.30, (40, 100, 40), texture=0.3),
}


@dataclass(frozen=True, slots=True)
class Surface:
    """One triangle mesh of one material, in local metres.

    ``vertices`` is (n, 3) float64, ``triangles`` (m, 3) int32 with counter-clockwise winding seen
    from outside. ``rgb`` overrides the material's colour (a sign face's red ring, a car's paint).
    ``feature_id`` links the surface to its truth feature (a pole, a sign) when it has one.
    """

    name: str
    material: str
    vertices: np.ndarray
    triangles: np.ndarray
    rgb: tuple[int, int, int] | None = None
    feature_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaintPatch:
    """A painted area on the road surface (a dash, a stop line, a zebra stripe, an arrow).

    ``polygon`` is 2D in local metres; ``wear`` (0-1) is the share of paint worn off, applied as
    patchy noise by the scanner and the orthophoto renderer.
    """

    polygon: Polygon
    material: str  # "paint_white" or "paint_yellow"
    wear: float = 0.0
    feature_id: str | None = None


@dataclass(frozen=True, slots=True)
class DrivePath:
    """The centre of the lane the vehicle drives, densely sampled (<= 0.1 m), in local metres.

    ``xyz`` is (n, 3) road-surface points; ``heading_rad`` (n,) is the travel azimuth measured
    counter-clockwise from +x (east); ``s`` (n,) is the arc length from the start.
    """

    xyz: np.ndarray
    heading_rad: np.ndarray
    s: np.ndarray


@dataclass(frozen=True, slots=True)
class Scene:
    kind: str  # "urban", "arterial", "highway"
    seed: int
    crs: str  # "EPSG:4549"
    origin: tuple[float, float, float]  # easting, northing, height of local (0, 0, 0) in crs
    surfaces: tuple[Surface, ...]
    paint: tuple[PaintPatch, ...]
    drive_path: DrivePath
    truth: MapModel
    speed_mps: float = 8.0
    metadata: dict = field(default_factory=dict)  # scene parameters, for the record
    vertical_crs: str = "EPSG:5737"  # heights: Yellow Sea 1985 (1985 National Height Datum)
