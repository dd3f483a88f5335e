"""Coordinate reference systems of survey input: choose one, check it is projected, make it metric.

The toolchain works in metres in a projected CRS. A survey's CRS comes from its LAS header (WKT or
GeoTIFF keys) or from the ``--crs`` option, which always wins. :func:`metric_crs` turns a CRS whose
axes are in feet into the same projection with metre axes and says how to scale coordinates.

pyproj note: some CRSs (EPSG:4549, the Xishan default) list northing before easting. Build every
transformer with ``always_xy=True`` so that arrays stay (x=easting, y=northing).

>>> crs, source = resolve_crs(None, "EPSG:4549", "a.las")
>>> source, crs_label(crs)
('option', 'EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E)')
>>> metric_crs(crs).xy_factor
1.0
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

import pyproj
from pyproj.exceptions import CRSError as PyprojCRSError

from pipeline.errors import CRSError

__all__ = [
    "CRS_SOURCES",
    "LOCAL_CRS_WKT",
    "MetricCRS",
    "crs_label",
    "height_datum",
    "local_crs",
    "map_crs",
    "metric_crs",
    "resolve_crs",
]

#: Where a survey's CRS came from: the LAS WKT record, the LAS GeoTIFF keys, or ``--crs``.
CRS_SOURCES = ("wkt", "geotiff", "option")

#: ``--crs local``: an engineering (local) 2D Cartesian frame in metres, x east, y north. For data
#: in a metric frame that has no EPSG code, such as Argoverse's per-city frame.
LOCAL_CRS_WKT = (
    'ENGCRS["Local metric frame",EDATUM["Local datum"],CS[Cartesian,2],'
    'AXIS["easting (X)",east,ORDER[1],LENGTHUNIT["metre",1]],'
    'AXIS["northing (Y)",north,ORDER[2],LENGTHUNIT["metre",1]]]'
)

_METRE_NAMES = {"metre", "meter", "m"}


def local_crs() -> pyproj.CRS:
    """The engineering CRS that ``--crs local`` stands for (metres, no geodetic datum).

    >>> local_crs().axis_info[0].unit_name
    'metre'
    """
    return pyproj.CRS.from_wkt(LOCAL_CRS_WKT)


def resolve_crs(
    file_crs: pyproj.CRS | None,
    override: str | None,
    path: str | os.PathLike[str],
    file_source: str = "wkt",
) -> tuple[pyproj.CRS, str]:
    """Choose the CRS of the survey file ``path``: ``override`` (``--crs``) wins over ``file_crs``.

    ``override`` is anything pyproj accepts (``"EPSG:28992"``, WKT, a PROJ string) or ``"local"``
    (see :data:`LOCAL_CRS_WKT`). ``file_source`` names where ``file_crs`` came from (``"wkt"`` or
    ``"geotiff"``). Returns ``(crs, source)`` with source in :data:`CRS_SOURCES`.

    Raises :class:`~pipeline.errors.CRSError` naming ``path`` when there is no CRS at all, when
    ``override`` is not understood, or when the CRS is geographic or geocentric (we need metres on
    a projected or local plane).

    >>> resolve_crs(pyproj.CRS("EPSG:32632"), None, "a.las")[1]
    'wkt'
    >>> resolve_crs(pyproj.CRS("EPSG:32632"), "EPSG:28992", "a.las")[0].to_epsg()
    28992
    >>> resolve_crs(None, None, "a.las")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.CRSError: a.las: no CRS in the file (neither WKT nor GeoTIFF keys); ...--crs...
    >>> resolve_crs(None, "EPSG:4326", "a.las")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.CRSError: a.las: CRS EPSG:4326 (WGS 84) is geographic (degrees); ...
    """
    if override is not None:
        crs, source = _parse_override(override, path), "option"
    elif file_crs is not None:
        if file_source not in ("wkt", "geotiff"):
            raise ValueError(f"file_source must be 'wkt' or 'geotiff', not {file_source!r}")
        crs, source = file_crs, file_source
    else:
        raise CRSError(
            "no CRS in the file (neither WKT nor GeoTIFF keys); pass --crs, e.g. --crs EPSG:4549,"
            " or --crs local for a local metric frame",
            path=path,
        )
    horizontal = _horizontal(crs)
    if horizontal.is_geographic or horizontal.is_geocentric:
        kind = "geographic (degrees)" if horizontal.is_geographic else "geocentric"
        raise CRSError(
            f"CRS {crs_label(crs)} is {kind}; a projected CRS in metres or feet is required",
            path=path,
        )
    if not (horizontal.is_projected or horizontal.is_engineering):
        raise CRSError(f"CRS {crs_label(crs)} is not a projected CRS", path=path)
    return crs, source


@dataclass(frozen=True, slots=True)
class MetricCRS:
    """A CRS with metre axes and the factors that bring coordinates into it.

    ``xy_factor`` and ``z_factor`` are metres per unit of the original CRS: multiply easting and
    northing by ``xy_factor`` and heights by ``z_factor``. Both are 1.0 for a CRS already in metres.
    """

    crs: pyproj.CRS
    xy_factor: float
    z_factor: float

    @property
    def converted(self) -> bool:
        """True when either factor differs from 1 (the file's units were not metres)."""
        return self.xy_factor != 1.0 or self.z_factor != 1.0


def metric_crs(crs: pyproj.CRS) -> MetricCRS:
    """The same CRS with metre axes, and the metres-per-unit factors for xy and z.

    Only the coordinate-system axis units change; projection parameters keep their own units, so
    the projection is the same. For a compound CRS the horizontal and vertical parts are handled
    separately; z uses the vertical unit when there is a vertical CRS, otherwise the horizontal unit
    (the LAS convention). A converted CRS loses its EPSG id (it is no longer that EPSG entry).

    >>> m = metric_crs(pyproj.CRS("EPSG:2992"))  # NAD83 / Oregon GIC Lambert (ft)
    >>> m.xy_factor, m.z_factor, m.crs.axis_info[0].unit_name
    (0.3048, 0.3048, 'metre')
    >>> metric_crs(pyproj.CRS("EPSG:7415")).converted  # RD New + NAP, already metres
    False
    """
    data = crs.to_json_dict()
    horizontal_factor = _metricate(data, kinds=("ProjectedCRS", "EngineeringCRS"))
    vertical_factor = _metricate(data, kinds=("VerticalCRS",))
    if horizontal_factor is None:
        raise CRSError(f"CRS {crs_label(crs)} has no projected or local horizontal part")
    z_factor = vertical_factor if vertical_factor is not None else horizontal_factor
    if horizontal_factor == 1.0 and z_factor == 1.0:
        return MetricCRS(crs, 1.0, 1.0)
    data.pop("id", None)
    data.pop("ids", None)
    data["name"] = f"{data.get('name', 'unnamed')} (metre axes)"
    return MetricCRS(pyproj.CRS.from_json_dict(data), horizontal_factor, z_factor)


def crs_label(crs: pyproj.CRS) -> str:
    """A short human label: ``"EPSG:code (name)"``, or just the name when there is no EPSG code.

    >>> crs_label(pyproj.CRS("EPSG:32632"))
    'EPSG:32632 (WGS 84 / UTM zone 32N)'
    >>> crs_label(local_crs())
    'Local metric frame'
    """
    code = crs.to_epsg(min_confidence=100)
    if code is None and crs.list_authority():
        auth = crs.list_authority()[0]
        if auth.confidence == 100:
            return f"{auth.auth_name}:{auth.code} ({crs.name})"
    return f"EPSG:{code} ({crs.name})" if code is not None else crs.name


def _parse_override(override: str, path: str | os.PathLike[str]) -> pyproj.CRS:
    if override.strip().lower() == "local":
        return local_crs()
    try:
        return pyproj.CRS.from_user_input(override)
    except PyprojCRSError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "not understood"
        raise CRSError(
            f"--crs {override!r} is not a CRS pyproj understands ({first_line})", path=path
        ) from None


def map_crs(crs: pyproj.CRS) -> str:
    """The horizontal part of ``crs`` as a :class:`~pipeline.model.MapModel` CRS string.

    ``"EPSG:n"`` when the horizontal CRS has an EPSG code, its WKT otherwise; the height datum
    goes in the model's ``height_datum`` (see :func:`height_datum`).

    >>> map_crs(pyproj.CRS("EPSG:4549+5737"))
    'EPSG:4549'
    """
    horizontal = _horizontal(crs)
    code = horizontal.to_epsg()
    return f"EPSG:{code}" if code is not None else horizontal.to_wkt()


def height_datum(crs: pyproj.CRS) -> str:
    """The name of the vertical CRS of a compound ``crs``, or ``"unknown"`` when it has none.

    >>> height_datum(pyproj.CRS("EPSG:4549+5737"))
    'Yellow Sea 1985 height'
    >>> height_datum(pyproj.CRS("EPSG:4549"))
    'unknown'
    """
    if crs.is_bound and crs.source_crs is not None:
        crs = crs.source_crs
    for sub in crs.sub_crs_list if crs.is_compound else ():
        if sub.is_vertical:
            return sub.name
    return "unknown"


def _horizontal(crs: pyproj.CRS) -> pyproj.CRS:
    """The horizontal part of a compound or bound CRS (the CRS itself otherwise)."""
    if crs.is_bound and crs.source_crs is not None:
        crs = crs.source_crs
    if crs.is_compound:
        for sub in crs.sub_crs_list:
            if not sub.is_vertical:
                return _horizontal(sub)
    return crs


def _metricate(node: dict[str, Any], kinds: tuple[str, ...]) -> float | None:
    """Set the axis units of the first CRS of one of ``kinds`` in a PROJJSON tree to metre.

    Returns the original metres-per-unit factor (None when no such CRS is found). Edits ``node``.
    """
    kind = node.get("type")
    if kind == "CompoundCRS":
        for component in node.get("components", []):
            factor = _metricate(component, kinds)
            if factor is not None:
                return factor
        return None
    if kind == "BoundCRS":
        return _metricate(node["source_crs"], kinds)
    if kind not in kinds:
        return None
    axes = node.get("coordinate_system", {}).get("axis", [])
    factors = {_unit_factor(axis.get("unit", "metre")) for axis in axes}
    if len(factors) != 1:
        raise CRSError(f"CRS {node.get('name')!r} mixes axis units; cannot convert to metres")
    factor = factors.pop()
    if factor != 1.0:
        node["coordinate_system"] = copy.deepcopy(node["coordinate_system"])
        for axis in node["coordinate_system"]["axis"]:
            axis["unit"] = "metre"
    return factor


def _unit_factor(unit: str | dict[str, Any]) -> float:
    if isinstance(unit, str):
        if unit in _METRE_NAMES:
            return 1.0
        if unit in ("foot", "ft"):
            return 0.3048
        if unit in ("US survey foot", "us-ft"):
            return 1200 / 3937
        raise CRSError(f"axis unit {unit!r} is not a length unit this toolchain understands")
    if unit.get("type") not in (None, "LinearUnit"):
        raise CRSError(f"axis unit {unit.get('name')!r} is not a length unit")
    return float(unit.get("conversion_factor", 1.0))
