"""End to end through the real CLI: simulate, build, publish v1; re-survey with injected changes,
build, publish v2; then only the tiles holding an injected change get new content, the change
records match the simulator's change truth, and ``hdmap sync`` fetches only the changed tiles.

Seed 139 puts the urban scene across three NDS.Live level-15 tiles (about 520 m x 610 m here),
one of which holds none of the five injected changes; publishing at level 15 makes the "only
changed tiles" claim testable on a 120 m scene.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SEED = 139
LEVEL = 15


def hdmap(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"hdmap {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two surveys (before and after the injected changes), their builds and a store with v1, v2."""
    root = tmp_path_factory.mktemp("e2e")
    for name, extra in (("before", ()), ("after", ("--changed",))):
        hdmap("simulate", "--kind", "urban", "--seed", str(SEED), "--out", str(root / name), *extra)
        survey = root / name
        hdmap(
            "build",
            str(survey / "survey.laz"),
            "--out",
            str(root / f"build-{name}"),
            "--trajectory",
            str(survey / "trajectory.csv"),
            "--ortho",
            str(survey / "ortho.tif"),
        )
    store = f"sqlite:///{root / 'store.db'}"
    return root, store


def _manifest(store_url: str, version: int) -> dict[int, str]:
    from tiles.store import open_store

    with open_store(store_url) as store:
        return store.manifest(version)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def published(world):
    """v1 and v2 published at level 15, with a reader key and a service over a real socket."""
    root, store = world
    out1 = hdmap(
        "publish", str(root / "build-before"), "--store", store, "--level", str(LEVEL), "--quiet"
    )
    assert out1.stdout.strip() == "1"
    key = hdmap("keys", "create", "--store", store, "--role", "reader").stdout.strip()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli.main", "serve", "--store", store, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    try:
        first = json.loads(
            hdmap(
                "sync", "--service", url, "--key", key, "--dir", str(root / "client"), "--json"
            ).stdout
        )
        out2 = hdmap(
            "publish", str(root / "build-after"), "--store", store, "--level", str(LEVEL), "--json"
        )
        summary = json.loads(out2.stdout)
        second = json.loads(
            hdmap(
                "sync", "--service", url, "--key", key, "--dir", str(root / "client"), "--json"
            ).stdout
        )
        yield {"root": root, "store": store, "summary": summary, "sync1": first, "sync2": second}
    finally:
        server.terminate()
        server.wait(timeout=20)


def _tile_of(anchor, crs: str = "EPSG:4549") -> int:
    from pyproj import Transformer

    from tiles.tileid import packed_tile_id

    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(*anchor[:2])
    return packed_tile_id(lon, lat, LEVEL)


def _changed_ids(record: dict) -> set[str]:
    details = record.get("details") or {}
    ids = {record.get("old_id"), record.get("new_id"), record.get("feature_id")}
    ids |= set(details.get("old_ids") or ()) | set(details.get("new_ids") or ())
    return {i for i in ids if i}


def _tiles_holding(store_url: str, ids: set[str]) -> set[int]:
    """Tiles of v1 or v2 that own one of ``ids`` or reference it as a crossing feature."""
    from tiles.encode import decode_tile
    from tiles.store import open_store

    holding = set()
    with open_store(store_url) as store:
        for v in (1, 2):
            for tile_id, digest in store.manifest(v).items():
                tile = decode_tile(store.blob(digest))
                held = {f.id for f in tile.model.features()} | {i for _, i in tile.crossing}
                if held & ids:
                    holding.add(tile_id)
    return holding


def test_only_tiles_holding_a_change_get_new_content(published):
    root, store = published["root"], published["store"]
    v1, v2 = _manifest(store, 1), _manifest(store, 2)
    assert len(v1) >= 2, "the scene must span several tiles for this test to mean anything"
    from tiles.store import open_store

    with open_store(store) as s:
        records = s.changes(2)
    changed = {t for t in set(v1) | set(v2) if v1.get(t) != v2.get(t)}
    truth = json.loads((root / "after" / "changes.json").read_text())
    assert {_tile_of(c["anchor"]) for c in truth} <= changed
    holding = _tiles_holding(store, set().union(*(_changed_ids(r) for r in records)))
    assert changed <= holding
    assert {c["tile_id"] for c in published["summary"]["changed_tiles"]} == changed


def _records_and_truth(published):
    from tiles.changes import ChangeRecord
    from tiles.store import open_store

    with open_store(published["store"]) as s:
        records = [ChangeRecord.from_dict(r) for r in s.changes(2)]
    truth = json.loads((published["root"] / "after" / "changes.json").read_text())
    return records, truth


def test_changes_cli_writes_one_located_feature_per_record(published):
    root, store = published["root"], published["store"]
    out = root / "changes.geojson"
    hdmap("changes", "--store", store, "--from", "1", "--to", "2", "-o", str(out))
    doc = json.loads(out.read_text())
    records, _ = _records_and_truth(published)
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == len(records)
    for feature in doc["features"]:
        assert {"change", "layer", "feature_id", "details"} <= set(feature["properties"])
        lon, lat = feature["geometry"]["coordinates"][:2]
        assert 120 < lon < 121 and 31 < lat < 32


def test_every_injected_change_is_found(published):
    from qa.change_score import score_changes

    records, truth = _records_and_truth(published)
    assert score_changes(records, truth).recall >= 0.95


@pytest.mark.xfail(
    strict=True,
    reason="issue 3/7: two extractions of the same unchanged road still differ (phantom or missed "
    "lines and arrows, lane splits), giving false change records; precision ~0.45 at seed 139",
)
def test_change_records_are_precise(published):
    from qa.change_score import score_changes

    records, truth = _records_and_truth(published)
    assert score_changes(records, truth).precision >= 0.95


def test_sync_after_v2_downloads_only_the_changed_tiles(published):
    store = published["store"]
    first, second = published["sync1"], published["sync2"]
    v1, v2 = _manifest(store, 1), _manifest(store, 2)
    from tiles.store import open_store

    with open_store(store) as s:
        sizes1 = sum(len(s.blob(h)) for h in v1.values())
        changed = [t for t in v2 if v1.get(t) != v2[t]]
        sizes2 = sum(len(s.blob(v2[t])) for t in changed)
    assert first["version"] == 1 and first["downloaded_tiles"] == len(v1)
    assert first["downloaded_bytes"] == sizes1
    assert second["version"] == 2 and second["downloaded_tiles"] == len(changed)
    assert second["downloaded_bytes"] == sizes2
    client = published["root"] / "client"
    local = json.loads((client / "manifest.json").read_text())
    assert local["version"] == 2


def test_publishing_the_same_build_again_changes_nothing(published):
    root, store = published["root"], published["store"]
    out = hdmap(
        "publish", str(root / "build-after"), "--store", store, "--level", str(LEVEL), "--json"
    )
    summary = json.loads(out.stdout)
    assert summary["unchanged"] and summary["version"] == 2 and summary["new_blobs"] == 0
    assert Path(root / "store.db").exists()
