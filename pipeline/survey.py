"""Survey point clouds: find LAS/LAZ files, read their headers, stream their points in metres.

Every reader here converts to metres in a projected (or local) CRS: the CRS comes from the file
(WKT record preferred over GeoTIFF keys) or from the ``--crs`` option (see :mod:`pipeline.crs`),
and coordinates in feet are scaled to metres. Points are streamed in chunks
(:func:`iter_chunks`, one million points by default) so memory stays bounded whatever the file
size; :func:`read_points` concatenates them for small files.

Bad input raises :class:`~pipeline.errors.SurveyError` (or :class:`~pipeline.errors.CRSError`)
with a one-line message naming the file: missing, empty, not LAS, truncated, a header point count
that disagrees with the data, no points, NaN or infinite coordinates.

>>> survey_files([])
[]
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import laspy
import numpy as np
import pyproj
from laspy.vlrs.known import GeoKeyDirectoryVlr, WktCoordinateSystemVlr
from pyproj.exceptions import CRSError as PyprojCRSError

from pipeline.crs import metric_crs, resolve_crs
from pipeline.errors import CRSError, HDMapError, SurveyError

__all__ = [
    "DEFAULT_CHUNK_POINTS",
    "SURVEY_SUFFIXES",
    "PointChunk",
    "SurveyInfo",
    "SurveyStats",
    "iter_chunks",
    "read_info",
    "read_points",
    "scan_survey",
    "survey_files",
]

DEFAULT_CHUNK_POINTS = 1_000_000
SURVEY_SUFFIXES = (".las", ".laz")
#: Most occupied cells :func:`scan_survey` tracks (8 bytes each, 64 MB); beyond it the cell size
#: doubles until the survey fits.
MAX_OCCUPIED_CELLS = 1 << 23

# Errors that laspy and its LAZ backends raise on corrupt or truncated content.
_READ_ERRORS = (
    laspy.errors.LaspyException,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    RuntimeError,
)


def survey_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The LAS/LAZ files named by ``paths``: files as given, folders expanded to their sorted
    ``.las``/``.laz`` files (not recursive). Order follows ``paths``; duplicates are dropped.

    A missing path, a folder without survey files or a file with another suffix raises
    :class:`~pipeline.errors.SurveyError`.

    >>> survey_files(["no/such/dir"])
    Traceback (most recent call last):
    ...
    pipeline.errors.SurveyError: no/such/dir: no such file or folder
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            members = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SURVEY_SUFFIXES
            )
            if not members:
                raise SurveyError("folder holds no .las or .laz files", path=path)
            found.extend(members)
        elif path.is_file():
            if path.suffix.lower() not in SURVEY_SUFFIXES:
                raise SurveyError("not a .las or .laz file", path=path)
            found.append(path)
        else:
            raise SurveyError("no such file or folder", path=path)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)


@dataclass(frozen=True, slots=True)
class SurveyInfo:
    """What a LAS/LAZ header says, in metres after unit conversion.

    ``bounds`` is (minx, miny, minz, maxx, maxy, maxz) in metres in ``crs`` (the header's
    bounds, not checked against the points: see :class:`SurveyStats` for true bounds). ``crs`` is
    the metric CRS (see :func:`pipeline.crs.metric_crs`), ``crs_source`` one of ``"wkt"``,
    ``"geotiff"``, ``"option"``; ``xy_factor``/``z_factor`` are metres per file unit.
    """

    path: Path
    las_version: str
    point_format: int
    point_count: int
    compressed: bool
    bounds: tuple[float, float, float, float, float, float]
    crs: pyproj.CRS
    crs_source: str
    xy_factor: float
    z_factor: float
    dimensions: tuple[str, ...]
    has_intensity: bool
    file_crs: pyproj.CRS | None = None  # the CRS recorded in the file, even when --crs overrides it

    @property
    def has_gps_time(self) -> bool:
        return "gps_time" in self.dimensions

    @property
    def has_rgb(self) -> bool:
        return "red" in self.dimensions


@dataclass(frozen=True, slots=True, eq=False)
class PointChunk:
    """A block of points in metres.

    ``xyz`` (n, 3) float64 metres in the survey's metric CRS; ``intensity`` (n,) uint16;
    ``gps_time`` (n,) float64 seconds; ``scan_angle_deg`` (n,) float32 degrees; ``rgb`` (n, 3)
    uint16. Optional attributes are None when the point format lacks them.
    """

    xyz: np.ndarray
    intensity: np.ndarray | None = None
    gps_time: np.ndarray | None = None
    scan_angle_deg: np.ndarray | None = None
    rgb: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @staticmethod
    def concatenate(chunks: Sequence[PointChunk]) -> PointChunk:
        """One chunk holding all of ``chunks`` in order (they must carry the same attributes).

        >>> len(PointChunk.concatenate([PointChunk(np.zeros((2, 3))), PointChunk(np.ones((1, 3)))]))
        3
        """
        if not chunks:
            return PointChunk(np.empty((0, 3)))

        def cat(name: str) -> np.ndarray | None:
            parts = [getattr(c, name) for c in chunks]
            if any(p is None for p in parts):
                return None
            return np.concatenate(parts)

        return PointChunk(
            xyz=np.concatenate([c.xyz for c in chunks]),
            intensity=cat("intensity"),
            gps_time=cat("gps_time"),
            scan_angle_deg=cat("scan_angle_deg"),
            rgb=cat("rgb"),
        )


def read_info(path: str | os.PathLike[str], crs: str | None = None) -> SurveyInfo:
    """Read the header of the LAS/LAZ file ``path`` and run the cheap consistency checks.

    ``crs`` is the ``--crs`` option (anything pyproj accepts, or ``"local"``) and wins over the
    file's CRS. For uncompressed LAS, the point-data block must be exactly ``point_count``
    records long (internal waveform packets of LAS 1.3 and EVLRs of LAS 1.4 excluded). Scales,
    offsets and bounds must be finite.

    >>> read_info("missing.las")
    Traceback (most recent call last):
    ...
    pipeline.errors.SurveyError: missing.las: no such file
    """
    path = Path(path)
    _check_file(path)
    try:
        with laspy.open(path) as reader:
            header = reader.header
    except _READ_ERRORS as exc:
        raise SurveyError(f"unreadable LAS/LAZ header ({_one_line(exc)})", path=path) from None

    for label, values in (("scale", header.scales), ("offset", header.offsets)):
        if not np.all(np.isfinite(values)):
            raise SurveyError(f"header {label} factors are not finite: {list(values)}", path=path)
    if np.any(header.scales == 0):
        raise SurveyError(f"header scale factors include zero: {list(header.scales)}", path=path)
    if not (np.all(np.isfinite(header.mins)) and np.all(np.isfinite(header.maxs))):
        raise SurveyError("header bounds are NaN or infinite", path=path)

    point_count = int(header.point_count)
    record_length = int(header.point_format.size)
    if not header.are_points_compressed:
        data_end = path.stat().st_size
        if header.version.minor >= 4 and header.number_of_evlrs > 0 and header.start_of_first_evlr:
            data_end = min(data_end, int(header.start_of_first_evlr))
        waveform_start = int(header.start_of_waveform_data_packet_record or 0)
        if (
            header.version.minor >= 3
            and header.global_encoding.waveform_data_packets_internal
            and waveform_start > int(header.offset_to_point_data)
        ):
            data_end = min(data_end, waveform_start)  # LAS 1.3+ waveforms after the points
        data_bytes = data_end - int(header.offset_to_point_data)
        held, stray = divmod(max(data_bytes, 0), record_length)
        if held != point_count or stray:
            extra = f" and {stray} stray bytes" if stray else ""
            raise SurveyError(
                f"header says {point_count} points but the file holds {held}{extra}", path=path
            )
    if point_count == 0:
        raise SurveyError("holds no points", path=path)

    file_crs, file_source = _file_crs(header, path, needed=crs is None)
    chosen, source = resolve_crs(file_crs, crs, path, file_source=file_source or "wkt")
    metric = metric_crs(chosen)
    factors = np.array([metric.xy_factor, metric.xy_factor, metric.z_factor])
    mins = np.asarray(header.mins, dtype=np.float64) * factors
    maxs = np.asarray(header.maxs, dtype=np.float64) * factors
    dimensions = tuple(header.point_format.dimension_names)
    return SurveyInfo(
        path=path,
        las_version=f"{header.version.major}.{header.version.minor}",
        point_format=int(header.point_format.id),
        point_count=point_count,
        compressed=bool(header.are_points_compressed),
        bounds=(*map(float, mins), *map(float, maxs)),  # type: ignore[arg-type]
        crs=metric.crs,
        crs_source=source,
        xy_factor=metric.xy_factor,
        z_factor=metric.z_factor,
        dimensions=dimensions,
        has_intensity="intensity" in dimensions,
        file_crs=file_crs,
    )


def iter_chunks(
    path: str | os.PathLike[str],
    crs: str | None = None,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
    laz_backend: laspy.LazBackend | None = None,
) -> Iterator[PointChunk]:
    """Stream the points of ``path`` as :class:`PointChunk` blocks of at most ``chunk_points``.

    Coordinates are metres in the metric CRS of :func:`read_info`. Memory holds one chunk at a
    time. Raises :class:`~pipeline.errors.SurveyError` naming the file on corrupt or truncated
    data, NaN/infinite values, or when the points read differ from the header's count.
    ``laz_backend`` picks the LAZ decoder (laspy's best available by default).
    """
    if chunk_points <= 0:
        raise ValueError(f"chunk_points must be positive, not {chunk_points}")
    info = read_info(path, crs)
    path = info.path
    factors = np.array([info.xy_factor, info.xy_factor, info.z_factor])
    read = 0
    try:
        with laspy.open(path, laz_backend=laz_backend) as reader:
            for record in reader.chunk_iterator(chunk_points):
                if len(record) == 0:
                    break
                chunk = _to_chunk(record, info.point_format, factors)
                _check_finite(chunk, path, first_index=read)
                read += len(chunk)
                yield chunk
    except HDMapError:
        raise
    except _READ_ERRORS as exc:
        raise SurveyError(
            f"corrupt or truncated point data after {read} of {info.point_count} points"
            f" ({_one_line(exc)})",
            path=path,
        ) from None
    if read != info.point_count:
        raise SurveyError(
            f"header says {info.point_count} points but the file holds {read}", path=path
        )


def read_points(path: str | os.PathLike[str], crs: str | None = None) -> PointChunk:
    """All points of ``path`` in one :class:`PointChunk` (metres). For small files only."""
    return PointChunk.concatenate(list(iter_chunks(path, crs)))


@dataclass(frozen=True, slots=True)
class SurveyStats:
    """Figures from one full pass over a survey file (see :func:`scan_survey`).

    ``bounds`` are the true bounds of the points read (metres). ``occupied_area_m2`` is the
    number of ``cell_m`` x ``cell_m`` grid cells holding at least one point times the cell area;
    ``density_per_m2`` is ``points / occupied_area_m2``: the mean density over the ground the
    survey covers, not over its bounding box. ``cell_m`` may be coarser than requested for very
    large surveys (at most :data:`MAX_OCCUPIED_CELLS` cells are tracked). Intensity figures are
    exact (from a full 16-bit histogram); ``intensity_*`` are None when the format has none.
    """

    path: Path
    points: int
    bounds: tuple[float, float, float, float, float, float]
    cell_m: float
    occupied_cells: int
    occupied_area_m2: float
    density_per_m2: float
    intensity_min: int | None
    intensity_median: int | None
    intensity_p99: int | None
    intensity_max: int | None
    gps_time_range: tuple[float, float] | None


def scan_survey(
    path: str | os.PathLike[str],
    crs: str | None = None,
    cell_m: float = 1.0,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
) -> SurveyStats:
    """Read every point of ``path`` once (chunked) and return :class:`SurveyStats`.

    Memory is bounded: one chunk, a 65536-bin intensity histogram and an occupancy grid of at
    :data:`MAX_OCCUPIED_CELLS` occupied-cell ids (8 bytes each).
    """
    if not cell_m > 0:
        raise ValueError(f"cell_m must be positive, not {cell_m}")
    grid = _OccupancyCells(cell_m)
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    histogram: np.ndarray | None = None
    t_min, t_max = math.inf, -math.inf
    points = 0
    for chunk in iter_chunks(path, crs, chunk_points):
        points += len(chunk)
        lo = np.minimum(lo, chunk.xyz.min(axis=0))
        hi = np.maximum(hi, chunk.xyz.max(axis=0))
        grid.add(chunk.xyz[:, 0], chunk.xyz[:, 1])
        if chunk.intensity is not None:
            counts = np.bincount(chunk.intensity, minlength=65536)
            histogram = counts if histogram is None else histogram + counts
        if chunk.gps_time is not None:
            t_min = min(t_min, float(chunk.gps_time.min()))
            t_max = max(t_max, float(chunk.gps_time.max()))
    occupied = grid.occupied()
    area = occupied * grid.cell_m**2
    quantiles: list[int | None] = [None, None, None, None]
    if histogram is not None:
        cumulative = np.cumsum(histogram)
        quantiles = [
            int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
            for q in (0.0, 0.5, 0.99)
        ]
        quantiles[0] = int(np.flatnonzero(histogram)[0])
        quantiles.append(int(np.flatnonzero(histogram)[-1]))
    return SurveyStats(
        path=Path(path),
        points=points,
        bounds=(*map(float, lo), *map(float, hi)),  # type: ignore[arg-type]
        cell_m=grid.cell_m,
        occupied_cells=occupied,
        occupied_area_m2=float(area),
        density_per_m2=float(points / area) if area > 0 else 0.0,
        intensity_min=quantiles[0],
        intensity_median=quantiles[1],
        intensity_p99=quantiles[2],
        intensity_max=quantiles[3],
        gps_time_range=(t_min, t_max) if t_min <= t_max else None,
    )


class _OccupancyCells:
    """The set of occupied grid cells, as a sorted array of packed int64 cell ids.

    A cell is (floor(x / cell_m), floor(y / cell_m)), packed as ``ix << 32 | iy`` (both int32).
    Memory follows the cells actually covered (a 10 km survey corridor 30 m wide is 300k cells,
    2.4 MB), not the bounding box. Past ``max_cells`` the cell size doubles and cells merge, so
    memory stays bounded whatever the survey.
    """

    def __init__(self, cell_m: float, max_cells: int = MAX_OCCUPIED_CELLS):
        self.cell_m = float(cell_m)
        self.max_cells = max_cells
        self.ids = np.empty(0, dtype=np.int64)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if x.size == 0:
            return
        limit = float(1 << 31)
        while True:
            ix, iy = np.floor(x / self.cell_m), np.floor(y / self.cell_m)
            if min(ix.min(), iy.min()) < -limit or max(ix.max(), iy.max()) >= limit:
                self._coarsen()  # indices must fit int32
                continue
            new = np.unique(self._pack(ix, iy))
            pos = np.searchsorted(self.ids, new)
            known = pos < self.ids.size
            known[known] = self.ids[pos[known]] == new[known]
            if self.ids.size + np.count_nonzero(~known) <= self.max_cells:
                self.ids = np.insert(self.ids, pos[~known], new[~known])
                return
            self._coarsen()

    def occupied(self) -> int:
        return int(self.ids.size)

    def _coarsen(self) -> None:
        self.cell_m *= 2.0
        ix, iy = self._unpack(self.ids)
        self.ids = np.unique(self._pack(ix // 2, iy // 2))

    @staticmethod
    def _pack(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        ix = np.asarray(ix).astype(np.int64)
        iy = np.asarray(iy).astype(np.int64)
        return (ix << 32) | (iy & 0xFFFFFFFF)

    @staticmethod
    def _unpack(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ids >> 32, (ids & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SurveyError("no such file", path=path)
    if path.is_dir():
        raise SurveyError("is a folder, not a LAS/LAZ file", path=path)
    size = path.stat().st_size
    if size == 0:
        raise SurveyError("file is empty (0 bytes)", path=path)
    try:
        with open(path, "rb") as f:
            signature = f.read(4)
    except OSError as exc:
        raise SurveyError(f"cannot open ({_one_line(exc)})", path=path) from None
    if signature != b"LASF":
        raise SurveyError(
            f"not a LAS/LAZ file (starts with {signature!r}, expected b'LASF')", path=path
        )
    if size < 227:
        raise SurveyError(f"truncated header ({size} bytes, a LAS header needs 227)", path=path)


def _file_crs(
    header: laspy.LasHeader, path: Path, needed: bool
) -> tuple[pyproj.CRS | None, str | None]:
    """The CRS recorded in the header and its source; WKT is preferred over GeoTIFF keys.

    A record that cannot be parsed raises CRSError only when the file's CRS is ``needed``.
    """
    records = list(header.vlrs.get_by_id("LASF_Projection"))
    if header.evlrs is not None:
        records.extend(header.evlrs.get_by_id("LASF_Projection"))
    found: dict[str, pyproj.CRS] = {}
    problems: list[str] = []
    for record in records:
        if isinstance(record, WktCoordinateSystemVlr):
            source = "wkt"
        elif isinstance(record, GeoKeyDirectoryVlr):
            source = "geotiff"
        else:
            continue
        try:
            parsed = record.parse_crs()
        except (PyprojCRSError, ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{source} CRS record cannot be parsed ({_one_line(exc)})")
            continue
        if parsed is None:
            if source == "geotiff":
                problems.append("GeoTIFF keys name no EPSG projected or geographic CRS")
            continue
        found.setdefault(source, parsed)
    for source in ("wkt", "geotiff"):
        if source in found:
            return found[source], source
    if problems and needed:
        raise CRSError(f"{'; '.join(problems)}; pass --crs", path=path)
    return None, None


def _to_chunk(
    record: laspy.ScaleAwarePointRecord, point_format: int, factors: np.ndarray
) -> PointChunk:
    names = set(record.point_format.dimension_names)
    xyz = np.empty((len(record), 3), dtype=np.float64)
    xyz[:, 0] = record.x
    xyz[:, 1] = record.y
    xyz[:, 2] = record.z
    if not np.all(factors == 1.0):
        xyz *= factors
    if point_format >= 6:
        scan_angle = np.asarray(record.scan_angle, dtype=np.float32) * np.float32(0.006)
    elif "scan_angle_rank" in names:
        scan_angle = np.asarray(record.scan_angle_rank, dtype=np.float32)
    else:
        scan_angle = None
    rgb = None
    if {"red", "green", "blue"} <= names:
        rgb = np.column_stack([record.red, record.green, record.blue]).astype(np.uint16, copy=False)
    return PointChunk(
        xyz=xyz,
        intensity=np.asarray(record.intensity, dtype=np.uint16) if "intensity" in names else None,
        gps_time=np.asarray(record.gps_time, dtype=np.float64) if "gps_time" in names else None,
        scan_angle_deg=scan_angle,
        rgb=rgb,
    )


def _check_finite(chunk: PointChunk, path: Path, first_index: int) -> None:
    for label, values in (("coordinates", chunk.xyz), ("gps_time", chunk.gps_time)):
        if values is None:
            continue
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(np.flatnonzero(~finite.reshape(len(chunk), -1).all(axis=1))[0])
            raise SurveyError(f"NaN or infinite {label} at point {first_index + bad}", path=path)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
