"""One root error class; each subclass also inherits the builtin it refines.

Expected failures (bad input files, missing CRS, malformed maps) raise a subclass of
:class:`HDMapError` whose message names the file and the problem in one line. The CLI prints
that line and exits with a documented status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "CRSError",
    "FormatError",
    "HDMapError",
    "HDMapIOError",
    "NotFoundError",
    "OrthoError",
    "StoreError",
    "SurveyError",
    "TileError",
    "TrajectoryError",
]


class HDMapError(Exception):
    """Root of every expected failure in this project."""

    def __init__(self, message: str, path: str | PathLike[str] | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class SurveyError(HDMapError, ValueError):
    """A point-cloud file is unreadable, truncated, inconsistent or has unusable values."""


class CRSError(HDMapError, ValueError):
    """A coordinate reference system is missing, unparseable or not projected in metres."""


class TrajectoryError(HDMapError, ValueError):
    """A trajectory CSV is missing columns or holds unusable values."""


class OrthoError(HDMapError, ValueError):
    """An orthophoto GeoTIFF is unreadable or cannot be placed in the survey CRS."""


class FormatError(HDMapError, ValueError):
    """A map file (GeoPackage, OpenDRIVE, local standard) does not hold what its format requires."""


class HDMapIOError(HDMapError, OSError):
    """A file cannot be opened or written for reasons outside its content."""


class TileError(HDMapError, ValueError):
    """A tile ID, tile level, bounding box or tile content is malformed."""


class NotFoundError(HDMapError, LookupError):
    """A map version, tile, blob or access key that was asked for does not exist."""


class StoreError(HDMapError, OSError):
    """A map store cannot be opened, is of the wrong schema, or refused a write."""
