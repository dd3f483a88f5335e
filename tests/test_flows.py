"""The Prefect flows (``build_map``, ``publish_map``, ``update_map``) run for real under Prefect's
test harness, and the commands that run them (``hdmap build``, ``update``, ``demo``) through the
real entry point in subprocesses pointed at the harness's API.

- a build killed half way (SIGKILL, test hook) and run again computes only the unfinished blocks
  (counted in the block ledger) and gives the map of an uninterrupted build;
- a build on a local ``dask.distributed`` cluster of two worker processes gives the sequential
  build's map: same feature IDs, geometry within 1 mm;
- the demo publishes versions 1 and 2 of a fresh store with change records.

Stage logic is tested by plain calls elsewhere; the harness (a temporary Prefect server with its
own database) is session-scoped and used only here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "scenes"
BLOCKS = {"block_length_m": 60.0, "overlap_m": 15.0}  # the 120 m urban sample in 3 blocks
BLOCK_ARGS = ["--block-length-m", "60", "--overlap-m", "15"]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory) -> dict[str, str]:
    """A temporary Prefect server for this session (``prefect_test_harness``); returns the
    environment that points subprocesses at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)  # before prefect is first imported, where possible
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=180):
            yield {**env, "PREFECT_API_URL": PREFECT_API_URL.value()}
    finally:
        patch.undo()


def _urban(name: str = "urban") -> dict[str, object]:
    scene = SAMPLES / name
    if not (scene / "survey.laz").is_file():
        pytest.skip("committed samples are absent")
    return {
        "surveys": [str(scene / "survey.laz")],
        "trajectory": str(scene / "trajectory.csv"),
        "ortho": str(scene / "ortho.tif"),
    }


def _cli_args(name: str = "urban") -> list[str]:
    params = _urban(name)
    return [*params["surveys"], "--trajectory", params["trajectory"], "--ortho", params["ortho"]]


def hdmap(env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, **(extra_env or {})},
        timeout=timeout,
    )


def assert_same_map(a: Path, b: Path, tolerance_m: float = 0.001) -> None:
    """Same layers, feature IDs and attributes; every vertex within ``tolerance_m`` (3D)."""
    from formats import read_map

    ma, mb = read_map(a / "map.xsmap.xml"), read_map(b / "map.xsmap.xml")
    assert ma.counts() == mb.counts()
    assert ma.crs == mb.crs and ma.height_datum == mb.height_datum
    fb = {f.id: f for f in mb.features()}
    assert {f.id for f in ma.features()} == set(fb)
    for f in ma.features():
        g = fb[f.id]
        ca = shapely.get_coordinates(f.geometry, include_z=True)
        cb = shapely.get_coordinates(g.geometry, include_z=True)
        assert ca.shape == cb.shape, f.id
        assert np.abs(ca - cb).max(initial=0.0) <= tolerance_m, f.id
        for fld in dataclasses.fields(f):
            if fld.name != "geometry":
                assert getattr(f, fld.name) == getattr(g, fld.name), (f.id, fld.name)


@pytest.fixture(scope="module")
def reference(prefect_api, tmp_path_factory) -> dict:
    """The urban sample built in 3 blocks by the flow, sequentially (one thread)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.build import build_map

    out = tmp_path_factory.mktemp("flows") / "reference"
    flow = build_map.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    return flow(**_urban(), out=str(out), **BLOCKS)


@pytest.mark.slow
def test_build_flow_writes_products_ledger_and_artifacts(reference) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.build import read_ledger

    out = Path(reference["out"])
    blocks = reference["blocks"]
    assert blocks["count"] >= 2 and blocks["computed"] == blocks["count"]
    assert reference["validation"]["result"] == "conforms"
    assert reference["feature_counts"]["lane_boundaries"] > 0
    for path in reference["products"].values():
        assert Path(path).is_file(), path
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["blocks"]["count"] == blocks["count"]
    assert manifest["software"]["code_version"] == reference["code_version"]
    assert {i["role"] for i in manifest["inputs"]} == {"survey", "trajectory", "ortho"}
    ledger = read_ledger(out)
    assert sorted(ledger) == list(range(blocks["count"]))
    assert all(len(runs) == 1 for runs in ledger.values())
    assert not list((out / ".cache" / "split").glob("*/*.laz"))  # split files removed

    with get_client(sync_client=True) as client:
        flow_run = ArtifactFilterFlowRunId(any_=[reference["flow_run_id"]])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=flow_run))
    by_key = {a.key: a for a in artifacts}
    assert {"qa-summary", "qa-report"} <= set(by_key)
    table = by_key["qa-summary"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {"item": "validation", "value": "conforms"} in rows
    assert by_key["qa-report"].data.startswith("[")  # markdown link to file:///.../report.html
    assert (out / "qa" / "report.html").as_uri() in by_key["qa-report"].data


@pytest.mark.slow
def test_second_build_reads_every_block_from_the_cache(reference) -> None:
    from flows.build import build_map, read_ledger

    before = read_ledger(reference["out"])
    again = build_map(**_urban(), out=reference["out"], **BLOCKS)
    count = reference["blocks"]["count"]
    assert again["blocks"] == {"count": count, "computed": 0, "cached": count}
    assert read_ledger(reference["out"]) == before  # no block executed again
    assert again["feature_counts"] == reference["feature_counts"]


@pytest.mark.slow
def test_killed_build_resumes_with_the_unfinished_blocks(prefect_api, reference, tmp_path) -> None:
    from flows.build import KILL_AFTER_BLOCKS_ENV, read_ledger

    out = tmp_path / "resumed"
    args = ["build", *_cli_args(), "--out", str(out), *BLOCK_ARGS, "--workers", "1", "--json"]
    killed = hdmap(prefect_api, *args, extra_env={KILL_AFTER_BLOCKS_ENV: "1"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL after the first computed block
    assert not (out / "manifest.json").exists()
    first = read_ledger(out)
    assert len(first) == 1 and all(len(runs) == 1 for runs in first.values())

    resumed = hdmap(prefect_api, *args)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    count = reference["blocks"]["count"]
    assert summary["blocks"] == {"count": count, "computed": count - 1, "cached": 1}
    ledger = read_ledger(out)
    assert sorted(ledger) == list(range(count))
    assert all(len(runs) == 1 for runs in ledger.values())  # no block computed twice
    assert {runs[0]["pid"] for i, runs in ledger.items() if i not in first}.isdisjoint(
        {runs[0]["pid"] for runs in first.values()}
    )
    assert_same_map(out, Path(reference["out"]))


@pytest.mark.slow
def test_dask_cluster_build_equals_the_sequential_build(prefect_api, reference, tmp_path) -> None:
    from dask.distributed import Client, LocalCluster
    from prefect_dask import DaskTaskRunner

    from flows.build import build_map, read_ledger

    out = tmp_path / "dask"
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        summary = build_map.with_options(task_runner=runner)(**_urban(), out=str(out), **BLOCKS)
    assert summary["blocks"]["computed"] == reference["blocks"]["count"]
    pids = {runs[0]["pid"] for runs in read_ledger(out).values()}
    assert os.getpid() not in pids and len(pids) == 2  # both worker processes extracted blocks
    assert_same_map(out, Path(reference["out"]))


@pytest.mark.slow
def test_publish_flow_publishes_once(prefect_api, reference, tmp_path) -> None:
    from flows.publish import publish_map

    store = f"sqlite:///{tmp_path / 'store.db'}"
    first = publish_map(reference["out"], store)
    assert first["version"] == 1 and first["previous"] is None and not first["unchanged"]
    assert first["changed_tiles"] and first["records"] == []
    again = publish_map(reference["out"], store)
    assert again["version"] == 1 and again["unchanged"]


def test_retry_only_transient_io_failures(prefect_api) -> None:
    from prefect import flow, task

    from flows.tasks import retry_on_io

    attempts: list[str] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_on_io)
    def flaky(exc: BaseException) -> str:
        attempts.append(type(exc).__name__)
        if len(attempts) == 1:
            raise exc
        return "ok"

    @flow
    def run(exc: BaseException) -> str:
        return flaky(exc)

    assert run(ConnectionResetError("network store went away")) == "ok"
    assert attempts == ["ConnectionResetError", "ConnectionResetError"]
    attempts.clear()
    with pytest.raises(FileNotFoundError):
        run(FileNotFoundError("no such survey"))
    assert attempts == ["FileNotFoundError"]  # a missing file is not retried


# the commands


@pytest.mark.slow
def test_build_cli_exit_statuses(prefect_api, tmp_path) -> None:
    out = str(tmp_path / "out")
    usage = [
        ["build", "--out", out],  # no survey
        ["build", "s.laz", "--out", out, "--dask-address", "tcp://127.0.0.1:1"],  # no --runner
        ["build", "s.laz", "--out", out, "--block-length-m", "-5"],
        ["build", "s.laz", "--out", out, "--runner", "spark"],
    ]
    for args in usage:
        proc = hdmap(prefect_api, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
    bad = tmp_path / "bad.laz"
    bad.write_bytes(b"LASF" + b"\0" * 300)
    for survey in (str(tmp_path / "missing.laz"), str(bad)):
        proc = hdmap(prefect_api, "build", survey, "--out", out, "--json")
        assert proc.returncode == 3, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hdmap build: error: "), proc.stderr
        assert Path(survey).name in lines[0]
    unreachable = {"PREFECT_API_URL": "http://127.0.0.1:1/api"}
    proc = hdmap(prefect_api, "build", str(bad), "--out", out, extra_env=unreachable)
    assert proc.returncode == 3 and "Prefect API" in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_build_help_names_the_block_defaults() -> None:
    from flows.cli.main import build_parser
    from pipeline.blocks import DEFAULT_BLOCK_LENGTH_M, DEFAULT_OVERLAP_M

    parser = build_parser()
    for command in ("build", "update"):
        text = " ".join(parser._subparsers._group_actions[0].choices[command].format_help().split())
        assert f"metres (default {DEFAULT_BLOCK_LENGTH_M:g})" in text
        assert f"metres (default {DEFAULT_OVERLAP_M:g})" in text
        assert "--runner {thread,process,dask}" in text and "--dask-address ADDRESS" in text


@pytest.fixture(scope="module")
def demo(prefect_api, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = hdmap(prefect_api, "demo", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.mark.slow
def test_demo_builds_publishes_two_versions_and_prints_changes(demo) -> None:
    from tiles.store import open_store

    out, proc = demo
    text = proc.stdout
    store = f"sqlite:///{out / 'store.db'}"
    assert store in text and "hdmap serve --store" in text and "hdmap keys create" in text
    with open_store(store) as s:
        assert [v.version for v in s.versions()] == [1, 2]
        assert s.changes(1) == []
        records = s.changes(2)
    assert records
    for r in records:  # every change record is printed
        assert r["feature_id"] in text
    changes = json.loads((out / "build-urban-changed" / "changes.geojson").read_text())
    assert len(changes["features"]) == len(records)
    for name in ("features.gpkg", "map.xodr", "map.xsmap.xml", "qa/report.html", "manifest.json"):
        for build in ("build-urban", "build-urban-changed"):
            assert (out / build / name).is_file()
            assert str(out / build / name) in text


@pytest.mark.slow
def test_update_cli_publishes_the_changes_of_a_resurvey(prefect_api, demo, tmp_path) -> None:
    from tiles.store import open_store

    out, _ = demo
    store = f"sqlite:///{tmp_path / 'store.db'}"
    shutil.copy(out / "store.db", tmp_path / "store.db")
    # the urban survey again, against version 2 (the changed street): its blocks are cached
    shutil.copytree(out / "build-urban", tmp_path / "build")
    build = str(tmp_path / "build")
    proc = hdmap(prefect_api, "update", *_cli_args(), "--store", store, "--out", build)
    assert proc.returncode == 0, proc.stderr
    assert "published version 3 (after version 2)" in proc.stdout
    with open_store(store) as s:
        records = s.changes(3)
    assert records
    assert f"{len(records)} change records -> {tmp_path / 'build' / 'changes.geojson'}" in (
        proc.stdout
    )
    geojson = json.loads((tmp_path / "build" / "changes.geojson").read_text())
    assert len(geojson["features"]) == len(records)

    again = hdmap(prefect_api, "update", *_cli_args(), "--store", store, "--out", build, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["publish"]["unchanged"] and summary["publish"]["version"] == 3
    assert summary["build"]["blocks"]["computed"] == 0

    for args, status in (
        (["update", *_cli_args(), "--out", build, "--store", "nosuch://x"], 3),
        (["update", *_cli_args(), "--store", store], 2),  # no --out
        (["update", *_cli_args(), "--store", store, "--out", build, "--level", "16"], 2),
    ):
        proc = hdmap(prefect_api, *args)
        assert proc.returncode == status, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
