"""Map file formats: each module converts the canonical :class:`~pipeline.model.MapModel` to and
from one file format with a ``write_*`` / ``read_*`` pair (``formats.gpkg`` for GeoPackage).
"""

__all__: list[str] = []
