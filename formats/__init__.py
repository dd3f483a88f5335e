"""Map file formats: each module converts the canonical :class:`~pipeline.model.MapModel` to and
from one file format with a ``write_*`` / ``read_*`` pair (``formats.gpkg`` for GeoPackage).

:func:`read_map` reads any map the project can read, choosing the reader by file name
(:data:`READERS`); one more format is one more line there. Readers are named as strings and
imported on use, so importing this package stays cheap.

>>> read_map("notes.txt")
Traceback (most recent call last):
...
pipeline.errors.FormatError: notes.txt: unknown map format (known: .gpkg, .json, .xodr, .xsmap.xml)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.model import MapModel

__all__ = ["READERS", "WRITERS", "load", "read_map"]

#: file-name suffix -> "module:function" reading it into a MapModel (the longest suffix wins)
READERS: dict[str, str] = {
    ".gpkg": "formats.gpkg:read_gpkg",
    ".xodr": "formats.opendrive:read_opendrive",
    ".xsmap.xml": "formats.localstd:read_localstd",
    ".json": "formats.argoverse:read_argoverse_map",  # an Argoverse 2 log_map_archive_*.json
}

#: format name -> "module:function" writing a MapModel; it may return a list of warnings
WRITERS: dict[str, str] = {
    "opendrive": "formats.opendrive:write_opendrive",
    "localstd": "formats.localstd:write_localstd",
    "gpkg": "formats.gpkg:write_gpkg",
}


def load(spec: str) -> Any:
    """The function a ``"module:function"`` spec names."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def read_map(path: str | os.PathLike[str]) -> MapModel:
    """Read ``path`` with the reader its file name calls for (see :data:`READERS`)."""
    from pipeline.errors import FormatError

    path = Path(path)
    name = path.name.lower()
    for suffix in sorted(READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return load(READERS[suffix])(path)
    known = ", ".join(sorted(READERS))
    raise FormatError(f"unknown map format (known: {known})", path=path)
