"""The ``publish_map`` and ``update_map`` flows: a build into tiles into a store, and a re-survey
published as only the tiles that changed.

- ``publish_map(build, store)``: read a finished build folder and publish it with
  :func:`tiles.publish.publish_model`: change detection against the latest version, unchanged
  features kept exactly as published, tiles cut, only blobs the store lacks written, one atomic
  commit (publishing the same map again creates no version). The change records go to a GeoJSON
  file when asked.
- ``update_map(surveys, store, out)``: ``build_map`` on the new survey, then ``publish_map`` of the
  build, with the change records written to ``OUT/changes.geojson``.

Each run leaves a Prefect table artifact of the changes by type (``publish-changes``). Store I/O is
retried twice; a publish is idempotent, so a retry cannot publish twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.build import build_map
from flows.tasks import (
    IO_RETRIES,
    IO_RETRY_DELAY_S,
    flow_run_id,
    report,
    retry_on_io,
    task_runner,
)
from pipeline.blocks import DEFAULT_BLOCK_LENGTH_M, DEFAULT_HALF_WIDTH_M, DEFAULT_OVERLAP_M
from tiles.tileid import DEFAULT_LEVEL

__all__ = ["publish_map", "update_map"]

_IO = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": IO_RETRY_DELAY_S,
    "retry_condition_fn": retry_on_io,
}


@task(name="publish-build", **_IO)
def publish_task(
    build: str,
    store_url: str,
    level: int,
    confidentiality: str,
    changes_geojson: str | None,
) -> dict[str, Any]:
    """Publish the build folder; returns the summary, the change records and the map's CRS."""
    from tiles.changes import write_changes_geojson
    from tiles.publish import load_confidentiality, publish_model, read_build
    from tiles.store import open_store

    model = read_build(build)
    step = load_confidentiality(confidentiality)
    with open_store(store_url) as store:
        result = publish_model(
            store, model, level=level, confidentiality=step, metadata={"build": str(build)}
        )
    if changes_geojson is not None:
        write_changes_geojson(result.records, model.crs, changes_geojson)
    return {
        **result.summary(),
        "records": [r.to_dict() for r in result.records],
        "crs": model.crs,
        "changes_geojson": changes_geojson,
    }


@flow(name="publish_map", log_prints=False)
def publish_map(
    build: str,
    store: str,
    level: int = DEFAULT_LEVEL,
    confidentiality: str = "identity",
    changes_geojson: str | None = None,
) -> dict[str, Any]:
    """Publish the build folder ``build`` to the store at URL ``store`` as its next version.

    ``level`` is the NDS.Live tile level; ``confidentiality`` ``identity`` or
    ``package.module:attribute``; ``changes_geojson`` a file for the change records (WGS84).
    Returns :meth:`tiles.publish.PublishResult.summary` plus the records themselves.
    """
    from prefect.artifacts import create_table_artifact

    report("publish", note=f"publishing {build}")
    summary = publish_task(build, store, level, confidentiality, changes_geojson)
    rows = [{"change": k, "records": n} for k, n in sorted(summary["changes"].items())]
    rows.append({"change": "tiles changed", "records": len(summary["changed_tiles"])})
    create_table_artifact(
        rows,
        key="publish-changes",
        description=f"version {summary['version']} of {_safe_url(store)}"
        + (" (no change: nothing published)" if summary["unchanged"] else ""),
    )
    return {**summary, "flow_run_id": flow_run_id()}


@flow(name="update_map", log_prints=False)
def update_map(
    surveys: list[str],
    store: str,
    out: str,
    crs: str | None = None,
    trajectory: str | None = None,
    ortho: str | None = None,
    block_length_m: float = DEFAULT_BLOCK_LENGTH_M,
    overlap_m: float = DEFAULT_OVERLAP_M,
    half_width_m: float = DEFAULT_HALF_WIDTH_M,
    level: int = DEFAULT_LEVEL,
    confidentiality: str = "identity",
    refresh: bool = False,
    runner: str = "thread",
    workers: int | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Build the new ``surveys`` into ``out``, compare the map with the latest version in
    ``store`` and publish it: only tiles holding a change get new content. The change records
    go to ``OUT/changes.geojson``. The build's blocks run on ``runner`` (see
    :func:`flows.tasks.task_runner`). Returns ``{"build": ..., "publish": ...}``."""
    build = build_map.with_options(
        task_runner=task_runner(runner, workers=workers, address=dask_address)
    )
    built = build(
        surveys,
        out,
        crs=crs,
        trajectory=trajectory,
        ortho=ortho,
        block_length_m=block_length_m,
        overlap_m=overlap_m,
        half_width_m=half_width_m,
        refresh=refresh,
    )
    geojson = str(Path(out).resolve() / "changes.geojson")
    published = publish_map(
        built["out"], store, level=level, confidentiality=confidentiality, changes_geojson=geojson
    )
    return {"build": built, "publish": published}


def _safe_url(url: str) -> str:
    """The store URL without a password."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
