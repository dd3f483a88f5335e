"""Publishing a map as a new version of a store: change detection, merge, tiles, one atomic commit.

A publish compares the new map with the latest published one (:func:`tiles.changes.compare_maps`),
keeps every unchanged feature exactly as published (:func:`tiles.changes.merge_maps`), so tiles
without a change keep their bytes and hash, runs the confidentiality step, cuts the tiles and
commits one version: only blobs the store lacks are written, and publishing the same map again
creates no version and writes nothing.

The store keeps, per version, the published map before confidentiality processing (the *source*
blob: gzip local-standard XML, never served) so that the next publish compares like with like.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import FormatError, HDMapIOError
from pipeline.model import MapModel
from tiles.tileid import DEFAULT_LEVEL

__all__ = [
    "IDENTITY",
    "Confidentiality",
    "IdentityProcessing",
    "PublishResult",
    "TileChange",
    "load_confidentiality",
    "publish_build",
    "publish_model",
    "published_model",
    "tile_changes",
]


class Confidentiality(Protocol):
    """A coordinate-processing step applied to published tiles (never to the stored source)."""

    name: str

    def apply(self, model: MapModel) -> MapModel: ...


@dataclass(frozen=True, slots=True)
class IdentityProcessing:
    """The default confidentiality step: coordinates are published as surveyed.

    >>> IDENTITY.apply(MapModel("EPSG:4549")).is_empty
    True
    """

    name: str = "identity"

    def apply(self, model: MapModel) -> MapModel:
        return model


IDENTITY = IdentityProcessing()


def load_confidentiality(spec: str) -> Confidentiality:
    """The step named by ``spec``: ``identity`` or ``package.module:attribute``.

    The attribute is an object with ``name`` and ``apply(model) -> MapModel``, or a factory
    (class or function) called without arguments that returns one. Processing approved by the
    surveying authority plugs in this way; the toolchain ships only the identity.

    >>> load_confidentiality("identity").name
    'identity'
    """
    if spec in ("", "identity"):
        return IDENTITY
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise FormatError(f"confidentiality step {spec!r}: expected 'identity' or 'module:attr'")
    try:
        obj: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise FormatError(f"confidentiality step {spec!r} cannot be loaded: {exc}") from exc
    if not hasattr(obj, "apply"):
        obj = obj()
    if not callable(getattr(obj, "apply", None)) or not isinstance(getattr(obj, "name", None), str):
        raise FormatError(f"confidentiality step {spec!r} has no 'name' and 'apply(model)'")
    return obj


@dataclass(frozen=True, slots=True)
class TileChange:
    """One tile that differs between two manifests; ``after`` None is a tombstone (deleted)."""

    tile_id: int
    before: str | None
    after: str | None


def tile_changes(before: Mapping[int, str], after: Mapping[int, str]) -> list[TileChange]:
    """The tiles whose content hash differs between two manifests, in tile-ID order.

    >>> tile_changes({1: "a", 2: "b"}, {2: "c", 3: "d"})  # doctest: +NORMALIZE_WHITESPACE
    [TileChange(tile_id=1, before='a', after=None), TileChange(tile_id=2, before='b', after='c'),
     TileChange(tile_id=3, before=None, after='d')]
    >>> tile_changes({}, {})
    []
    """
    return [
        TileChange(t, before.get(t), after.get(t))
        for t in sorted(set(before) | set(after))
        if before.get(t) != after.get(t)
    ]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish did: the version now latest, and what changed since ``previous``."""

    version: int
    previous: int | None
    changed_tiles: tuple[TileChange, ...]
    new_blobs: int
    records: tuple[Any, ...]  # tiles.changes.ChangeRecord
    unchanged: bool = False

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``hdmap publish --json`` prints)."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.change] = counts.get(r.change, 0) + 1
        return {
            "version": self.version,
            "previous": self.previous,
            "unchanged": self.unchanged,
            "changed_tiles": [dataclasses.asdict(c) for c in self.changed_tiles],
            "new_blobs": self.new_blobs,
            "changes": counts,
        }


def published_model(store: Any, version: int) -> MapModel:
    """The map published as ``version`` (before confidentiality processing)."""
    from formats.localstd import read_localstd_bytes
    from tiles.encode import gunzip_bytes

    source = f"version {version} source"
    info = store.version_info(version)
    return read_localstd_bytes(gunzip_bytes(store.blob(info.source), source=source), source)


def publish_model(
    store: Any,
    model: MapModel,
    *,
    level: int = DEFAULT_LEVEL,
    confidentiality: Confidentiality = IDENTITY,
    tolerances: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> PublishResult:
    """Publish ``model`` (metres in its projected CRS) to ``store`` as the next version.

    Unchanged features keep their published records; only tiles holding a change get new content.
    Publishing a map with no change against the latest version returns that version with
    ``unchanged=True`` and writes nothing.
    """
    from formats.localstd import to_xml_bytes
    from tiles.changes import ChangeTolerances, compare_maps, merge_maps
    from tiles.encode import content_hash, encode_tiles, gzip_bytes

    previous = store.latest_version()
    before: dict[int, str] = {}
    records: tuple[Any, ...] = ()
    merged = model
    if previous is not None:
        info = store.version_info(previous)
        before = store.manifest(previous)
        old = published_model(store, previous)
        comparison = compare_maps(old, model, tolerances or ChangeTolerances())
        records = tuple(comparison.records)
        merged = merge_maps(old, model, comparison)
        if not records and info.level == level and old.crs == model.crs:
            return PublishResult(previous, previous, (), 0, (), unchanged=True)

    tiles = encode_tiles(confidentiality.apply(merged), level=level)
    source = gzip_bytes(to_xml_bytes(merged))
    source_hash = content_hash(source)
    blobs = {t.sha256: t.data for t in tiles.values()}
    blobs[source_hash] = source
    missing = store.missing_blobs(blobs)
    new_blobs = store.put_blobs({h: blobs[h] for h in missing})
    manifest = {tile_id: t.sha256 for tile_id, t in tiles.items()}
    version = store.publish(
        manifest=manifest,
        changes=[r.to_dict() for r in records],
        source=source_hash,
        level=level,
        metadata={
            "name": merged.name,
            "crs": merged.crs,
            "height_datum": merged.height_datum,
            "confidentiality": confidentiality.name,
            "features": merged.counts(),
            **dict(metadata or {}),
        },
    )
    return PublishResult(
        version, previous, tuple(tile_changes(before, manifest)), new_blobs, records
    )


def read_build(build_dir: str | os.PathLike[str]) -> MapModel:
    """The map of a finished build folder (its local-standard file, else its GeoPackage)."""
    from formats import read_map
    from standards import FILE_SUFFIX

    folder = Path(build_dir)
    if not folder.is_dir():
        raise HDMapIOError("no such build folder", path=folder)
    if not (folder / "manifest.json").is_file():
        raise FormatError("not a finished build: manifest.json is missing", path=folder)
    for name in ("map" + FILE_SUFFIX, "features.gpkg"):
        if (folder / name).is_file():
            return read_map(folder / name)
    raise FormatError(f"the build holds neither map{FILE_SUFFIX} nor features.gpkg", path=folder)


def publish_build(build_dir: str | os.PathLike[str], store: Any, **options: Any) -> PublishResult:
    """Publish the map of a build folder; see :func:`publish_model` for ``options``."""
    model = read_build(build_dir)
    return publish_model(store, model, metadata={"build": str(build_dir)}, **options)
