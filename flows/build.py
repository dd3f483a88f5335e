"""The ``build_map`` flow: survey -> blocks -> extraction -> stitching -> products -> QA.

Thin wiring of :mod:`pipeline.blocks` (plan, split, per-block extraction, stitch) and
:func:`flows.products.write_products`. Tasks are coarse and idempotent:

- ``plan-blocks`` and ``split-survey`` (one streamed pass writing each block's points to
  ``OUT/.cache/split/KEY/``) run once per input; ``extract-block`` runs once per block. Their
  results persist under ``OUT/.cache/results`` with a cache key from the input files' SHA-256,
  the parameters and :func:`flows.tasks.code_version`, so a build killed half way resumes: the
  blocks already computed are read back, only the others run.
- Every computed block is logged in ``OUT/.cache/blocks/NNNN.json`` (one entry per execution).
- I/O failures are retried twice (:func:`flows.tasks.retry_on_io`).
- The flow run leaves two Prefect artifacts: the QA summary table (``qa-summary``) and a link to
  the HTML report (``qa-report``).

``manifest.json`` is written last: a folder with a manifest holds the products it describes.
The split block files are removed when the build succeeds (the block results stay cached).

Test hook: with ``HDMAP_TEST_KILL_AFTER_BLOCKS=N`` in the environment the flow's process kills
itself (SIGKILL) once N blocks have been computed, to test resuming.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.tasks import (
    CACHE_DIR,
    IO_RETRIES,
    IO_RETRY_DELAY_S,
    cache_key,
    code_version,
    flow_run_id,
    given_cache_key,
    package_version,
    report,
    result_storage,
    retry_on_io,
)
from pipeline.blocks import (
    DEFAULT_BLOCK_LENGTH_M,
    DEFAULT_HALF_WIDTH_M,
    DEFAULT_OVERLAP_M,
    Block,
    CellCounts,
    extract_block,
    plan_blocks,
    read_block,
    split_into_blocks,
    stitch,
)
from pipeline.errors import HDMapIOError, OrthoError, SurveyError
from pipeline.extract import ExtractionResult, ExtractOptions
from pipeline.files import sha256_file, write_json
from pipeline.model import MapModel

__all__ = [
    "KILL_AFTER_BLOCKS_ENV",
    "SplitResult",
    "build_manifest",
    "build_map",
    "read_ledger",
]

KILL_AFTER_BLOCKS_ENV = "HDMAP_TEST_KILL_AFTER_BLOCKS"
_CPUS = os.cpu_count() or 1  # blocks at a time by default (each holds its points in memory)
_IO = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": IO_RETRY_DELAY_S,
    "retry_condition_fn": retry_on_io,
}
_CACHED = {"persist_result": True, "cache_key_fn": given_cache_key}


@dataclass(frozen=True, slots=True)
class SplitResult:
    """The block files of a split survey (block index -> files) and the survey's ground cell (m)."""

    parts: dict[int, list[str]]
    ground_cell_m: float


# tasks


@task(name="checksum-inputs", **_IO)
def checksum_inputs(paths: list[str]) -> list[str]:
    """SHA-256 of each input file."""
    return [sha256_file(p) for p in paths]


@task(name="survey-lineage", **_IO)
def lineage(files: list[str]) -> str:
    from pipeline.extract import survey_lineage

    return survey_lineage(files)


@task(name="plan-blocks", **_IO, **_CACHED)
def plan_task(
    files: list[str],
    trajectory: Any,
    *,
    crs: str | None,
    block_length_m: float,
    overlap_m: float,
    half_width_m: float,
    cache_key: str,
) -> list[Block]:
    return plan_blocks(
        files,
        trajectory,
        block_length_m=block_length_m,
        overlap_m=overlap_m,
        half_width_m=half_width_m,
        crs=crs,
    )


@task(name="split-survey", **_IO, **_CACHED)
def split_task(
    files: list[str],
    blocks: list[Block],
    split_dir: str,
    *,
    crs: str | None,
    points_per_cell: float,
    cache_key: str,
) -> SplitResult:
    folder = Path(split_dir)
    shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted split
    counts = CellCounts()
    parts = split_into_blocks(files, blocks, folder, crs=crs, on_chunk=counts.add)
    result = SplitResult(
        {k: [str(p) for p in v] for k, v in parts.items()}, counts.ground_cell_m(points_per_cell)
    )
    write_json(folder / "split.json", dataclasses.asdict(result))
    return result


@task(name="extract-block", **_IO, **_CACHED)
def extract_block_task(
    block: Block,
    files: list[str] | None,
    *,
    crs: str | None,
    model_crs: str,
    survey_id: str,
    trajectory: Any,
    ortho: str | None,
    ortho_crs: Any,
    options: ExtractOptions,
    ledger_dir: str,
    code: str,
    cache_key: str,
) -> ExtractionResult:
    """One block: read its points, extract, log the execution in the ledger. ``code`` is the
    flow's :func:`flows.tasks.code_version`: a worker running other code refuses the block."""
    import numpy as np

    from pipeline.ortho import read_ortho
    from pipeline.survey import PointChunk

    if code_version() != code:
        raise RuntimeError(
            f"block {block.index}: this worker ({socket.gethostname()}, pid {os.getpid()}) runs "
            f"code {code_version()}, the flow {code}: install the same version everywhere"
        )
    if files is None:  # the flow skipped the split, expecting this block's cached result
        raise HDMapIOError(f"block {block.index}: its cached result is gone; build again")
    started = time.perf_counter()
    points = read_block(files, block, crs=crs) if files else PointChunk(np.empty((0, 3)))
    read_s = time.perf_counter() - started
    warnings: list[str] = []
    image = None
    if ortho is not None:
        try:
            image = read_ortho(ortho, dst_crs=ortho_crs, bounds=block.bounds)
        except OrthoError as exc:
            warnings.append(f"orthophoto not used: {exc}")
    result = extract_block(
        points,
        block,
        crs=model_crs,
        survey_id=survey_id,
        trajectory=trajectory,
        ortho=image,
        options=options,
    )
    result = dataclasses.replace(
        result,
        warnings=[*warnings, *result.warnings],
        timings={"read": read_s, **result.timings},
    )
    _log_execution(Path(ledger_dir), block.index, cache_key, time.perf_counter() - started)
    return result


@task(name="stitch-blocks")
def stitch_task(
    blocks: list[Block], models: list[MapModel], options: ExtractOptions, height_datum: str
) -> MapModel:
    model = stitch(list(zip(blocks, models, strict=True)), lane_options=options.lanes)
    return model.replace(height_datum=height_datum)


@task(name="write-products", **_IO)
def write_products_task(
    result: ExtractionResult,
    out: str,
    inputs: list[dict[str, str]],
    opendrive_version: str,
) -> dict[str, Any]:
    """Every product, then ``manifest.json``; returns the manifest."""
    from flows.products import write_products

    products = write_products(result.model, out, opendrive_version=opendrive_version)
    manifest = build_manifest(inputs, result, products)
    write_json(Path(out) / "manifest.json", manifest, sort_keys=True)
    return {
        "manifest": manifest,
        "paths": {k: str(p) for k, p in products.paths.items()},
        "findings": [f.to_dict() for f in products.validation.findings],
    }


# the flow


@flow(name="build_map", log_prints=False, task_runner=ThreadPoolTaskRunner(max_workers=_CPUS))
def build_map(
    surveys: list[str],
    out: str,
    crs: str | None = None,
    trajectory: str | None = None,
    ortho: str | None = None,
    block_length_m: float = DEFAULT_BLOCK_LENGTH_M,
    overlap_m: float = DEFAULT_OVERLAP_M,
    half_width_m: float = DEFAULT_HALF_WIDTH_M,
    opendrive_version: str = "1.7",
    refresh: bool = False,
    keep_split: bool = False,
) -> dict[str, Any]:
    """Build the map of the LAS/LAZ ``surveys`` (files or folders) into ``out``.

    Blocks are ``block_length_m`` long along the trajectory (else the points' principal axis),
    read with ``overlap_m`` more on both sides (metres). ``refresh`` recomputes every task
    instead of reading cached results; ``keep_split`` keeps the split block files.
    Returns a summary: products, feature counts, validation stamp, blocks computed and cached.
    """
    from pipeline.crs import height_datum, map_crs
    from pipeline.ortho import read_ortho_info
    from pipeline.survey import read_info, survey_files
    from pipeline.trajectory import read_trajectory

    started = time.perf_counter()
    out_dir = Path(out).resolve()
    cache = out_dir / CACHE_DIR
    storage = result_storage(out_dir)
    cached = {**({"refresh_cache": True} if refresh else {}), "result_storage": storage}

    report("inputs", note="checking the inputs")
    # absolute paths: tasks may run in other processes or on other machines (shared storage)
    files = [str(p.resolve()) for p in survey_files(surveys)]
    trajectory = str(Path(trajectory).resolve()) if trajectory else None
    ortho = str(Path(ortho).resolve()) if ortho else None
    if not files:
        raise SurveyError("no LAS/LAZ files found", path=surveys[0] if surveys else "survey")
    info = read_info(files[0], crs=crs)
    traj = read_trajectory(trajectory) if trajectory else None
    if ortho:
        read_ortho_info(ortho)
    extras = [p for p in (trajectory, ortho) if p]
    sums = checksum_inputs(files + extras)
    survey_sums, extra_sums = sums[: len(files)], dict(zip(extras, sums[len(files) :], strict=True))
    survey_id = lineage(files)
    version = code_version()

    report("plan", note="planning blocks")
    plan = (block_length_m, overlap_m, half_width_m)
    plan_key = cache_key("plan", survey_sums, extra_sums.get(trajectory), crs, plan, version)
    blocks = plan_task.with_options(**cached)(
        files,
        traj,
        crs=crs,
        block_length_m=block_length_m,
        overlap_m=overlap_m,
        half_width_m=half_width_m,
        cache_key=plan_key,
    )
    options = ExtractOptions()
    split_dir = cache / "split" / plan_key[:16]
    split_key = cache_key("split", plan_key)
    known = _read_split(split_dir)

    def block_keys(opts: ExtractOptions) -> list[str]:
        options_doc = dataclasses.asdict(opts)
        ortho_sum = extra_sums.get(ortho)
        return [
            cache_key("block", plan_key, b.index, options_doc, survey_id, ortho_sum, version)
            for b in blocks
        ]

    def with_cell(cell: float) -> ExtractOptions:
        if options.ground.cell_m is not None:
            return options
        return dataclasses.replace(options, ground=dataclasses.replace(options.ground, cell_m=cell))

    parts: dict[int, list[str]] | None
    if (
        known is not None
        and not refresh
        and all(_stored(storage, k) for k in block_keys(with_cell(known.ground_cell_m)))
    ):
        parts, options = None, with_cell(known.ground_cell_m)  # every block is cached
        report("split", note="every block is cached: survey not read again")
    else:
        report("split", note=f"splitting the survey into {len(blocks)} blocks")
        complete = known is not None and all(
            Path(p).is_file() for paths in known.parts.values() for p in paths
        )
        split = split_task.with_options(**{**cached, "refresh_cache": refresh or not complete})(
            files,
            blocks,
            str(split_dir),
            crs=crs,
            points_per_cell=options.ground.points_per_cell,
            cache_key=split_key,
        )
        parts, options = split.parts, with_cell(split.ground_cell_m)

    keys = block_keys(options)
    ledger = cache / "blocks"
    model_crs = map_crs(info.crs)
    extract = extract_block_task.with_options(**cached)
    futures = [
        extract.submit(
            b,
            None if parts is None else parts.get(b.index, []),
            crs=crs,
            model_crs=model_crs,
            survey_id=survey_id,
            trajectory=traj,
            ortho=ortho,
            ortho_crs=info.crs,
            options=options,
            ledger_dir=str(ledger),
            code=version,
            cache_key=key,
        )
        for b, key in zip(blocks, keys, strict=True)
    ]
    kill_after = int(os.environ.get(KILL_AFTER_BLOCKS_ENV) or 0)
    computed = 0
    report("blocks", done=0, total=len(blocks), note="extracting")
    for done, future in enumerate(as_completed(futures), start=1):
        future.wait()
        state = future.state
        if state.is_completed() and state.name != "Cached":
            computed += 1
        report("blocks", done=done, total=len(blocks), note="extracting")
        if kill_after and computed >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: a crash half way
    results = [f.result() for f in futures]

    report("stitch", note="stitching blocks")
    clock = time.perf_counter()
    if blocks:
        model = stitch_task(blocks, [r.model for r in results], options, height_datum(info.crs))
    else:
        model = MapModel(model_crs, height_datum=height_datum(info.crs))
    stitch_s = time.perf_counter() - clock
    merged = _merge(blocks, results, model, stitch_s)

    report("products", note="writing products and QA reports")
    inputs = [
        {"role": "survey", "path": p, "sha256": s} for p, s in zip(files, survey_sums, strict=True)
    ]
    for role, path in (("trajectory", trajectory), ("ortho", ortho)):
        if path:
            inputs.append({"role": role, "path": str(path), "sha256": extra_sums[path]})
    written = write_products_task(merged, str(out_dir), inputs, opendrive_version)
    _qa_artifacts(written, out_dir)
    if not keep_split:
        shutil.rmtree(split_dir, ignore_errors=True)
        _write_split_marker(split_dir, options, parts)
    _prune(cache, storage, {plan_key, split_key, *keys}, split_dir)

    manifest = written["manifest"]
    return {
        "out": str(out_dir),
        "products": {
            **{k: str(out_dir / v) for k, v in manifest["products"].items()},
            "manifest": str(out_dir / "manifest.json"),
        },
        "feature_counts": manifest["feature_counts"],
        "validation": manifest["validation_stamp"],
        "warnings": manifest["warnings"],
        "blocks": {"count": len(blocks), "computed": computed, "cached": len(blocks) - computed},
        "code_version": version,
        "flow_run_id": flow_run_id(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def build_manifest(
    inputs: list[dict[str, str]], result: ExtractionResult, products: Any = None
) -> dict[str, Any]:
    """The manifest of one build: inputs with SHA-256, software and code version, parameters,
    timings (s), feature counts, warnings, products and the validation stamp."""
    return {
        "software": {
            "name": "xishan-hdmap",
            "version": package_version(),
            "code_version": code_version(),
        },
        "inputs": inputs,
        "crs": result.model.crs,
        "parameters": result.parameters,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "feature_counts": result.model.counts(),
        "warnings": list(result.warnings),
        "products": {}
        if products is None
        else {
            key: str(path.relative_to(path.parents[1] if key.startswith("qa_") else path.parent))
            for key, path in products.paths.items()
        },
        "validation_stamp": None if products is None else dict(products.validation.stamp),
    }


def read_ledger(out: str | os.PathLike[str]) -> dict[int, list[dict[str, Any]]]:
    """The executions of each block of the build in ``out`` (block index -> entries)."""
    folder = Path(out) / CACHE_DIR / "blocks"
    entries: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("[0-9]*.json")):
        doc = json.loads(path.read_text())
        entries[int(doc["block"])] = doc["executions"]
    return entries


# helpers


def _log_execution(folder: Path, index: int, key: str, seconds: float) -> None:
    import datetime as dt

    path = folder / f"{index:04d}.json"
    doc = json.loads(path.read_text()) if path.is_file() else {"block": index, "executions": []}
    doc["executions"].append(
        {
            "cache_key": key,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "seconds": round(seconds, 3),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, doc)


def _read_split(folder: Path) -> SplitResult | None:
    path = folder / "split.json"
    try:
        doc = json.loads(path.read_text())
        parts = {int(k): list(v) for k, v in doc["parts"].items()}
        return SplitResult(parts, float(doc["ground_cell_m"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_split_marker(
    folder: Path, options: ExtractOptions, parts: dict[int, list[str]] | None
) -> None:
    """Keep what the split found (not its files): a rerun with every block cached skips it."""
    cell = options.ground.cell_m
    if cell is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "split.json", {"parts": parts or {}, "ground_cell_m": cell})


def _prune(cache: Path, storage: Path, keep: set[str], split_dir: Path) -> None:
    """Drop cached results and split folders of earlier inputs, parameters or code: the cache
    holds one build, the last one."""
    for path in storage.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink(missing_ok=True)
    for path in (cache / "split").iterdir():
        if path.is_dir() and path != split_dir:
            shutil.rmtree(path, ignore_errors=True)


def _stored(storage: Path, key: str) -> bool:
    """True when the result storage folder holds a readable result for ``key`` (a file cut
    short by a crash is not one: the task then runs again)."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore

    if not (storage / key).is_file():
        return False
    return ResultStore(result_storage=LocalFileSystem(basepath=str(storage))).exists(key)


def _merge(
    blocks: list[Block], results: list[ExtractionResult], model: MapModel, stitch_s: float
) -> ExtractionResult:
    """One result for the build: block warnings and parameters merged, timings summed."""
    from pipeline.blocks import _merged_parameters, _merged_warnings

    timings: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    timings["stitch"] = stitch_s
    if not blocks:
        return ExtractionResult(model, ["no block of the survey holds points"], {}, timings)
    params = _merged_parameters(blocks, results)
    return ExtractionResult(model, _merged_warnings(blocks, results), params, timings)


def _qa_artifacts(written: dict[str, Any], out_dir: Path) -> None:
    """The QA summary table and a link to the HTML report, as Prefect artifacts of the run."""
    from prefect.artifacts import create_link_artifact, create_table_artifact

    manifest = written["manifest"]
    stamp = manifest["validation_stamp"] or {}
    rows: list[dict[str, Any]] = [
        {"item": "validation", "value": stamp.get("result", "")},
        {"item": "errors", "value": stamp.get("errors", 0)},
        {"item": "warnings", "value": stamp.get("warnings", 0)},
    ]
    rows += [{"item": f"features: {k}", "value": n} for k, n in manifest["feature_counts"].items()]
    by_rule: dict[str, int] = {}
    for f in written["findings"]:
        name = f"{f['severity']} {f['rule']}"
        by_rule[name] = by_rule.get(name, 0) + 1
    rows += [{"item": f"finding: {k}", "value": n} for k, n in sorted(by_rule.items())]
    rows += [{"item": "build warning", "value": w} for w in manifest["warnings"]]
    create_table_artifact(rows, key="qa-summary", description=f"QA summary of {out_dir}")
    html = out_dir / "qa" / "report.html"
    create_link_artifact(
        html.as_uri(),
        link_text=f"QA report ({html})",
        key="qa-report",
        description="The conformance report of the build (local standard rules, exporters)",
    )
