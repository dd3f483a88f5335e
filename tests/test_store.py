"""The tile store (tiles.store): one test-suite, run on SQLite and on PostgreSQL/PostGIS.

The ``store_url`` fixture (tests/conftest.py) gives an empty store of each backend; the postgres
variant skips when the server or PostGIS is missing (fails under HDMAP_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import NotFoundError, StoreError, TileError
from tests.conftest import PROJECT_ROOT
from tests.store_publisher import LEVEL, expected_version, publish_next, tile_ids
from tiles import store as store_module
from tiles.store import KeyInfo, VersionInfo, open_store, role_grants
from tiles.store.postgres import PostgresStore
from tiles.store.sqlite import SQLiteStore
from tiles.tileid import packed_tile_id, tile_bounds, tiles_in_bbox


def _blobs(count: int, tag: str, size: int = 1000) -> dict[str, bytes]:
    rng = random.Random(tag)
    out = {}
    for _ in range(count):
        data = rng.randbytes(size)
        out[hashlib.sha256(data).hexdigest()] = data
    return out


def _raw(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run ``sql`` on the store's database directly; ``{t}`` prefixes table names, ``?`` params."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        try:
            rows = conn.execute(sql.format(t=""), params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    import psycopg

    from tiles.store import parse_postgres_url

    conninfo, schema = parse_postgres_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(sql.format(t=f"{schema}.").replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


def _publish(store, version_tiles: int = 12, version: int | None = None) -> int:
    """Publish the deterministic content of the next version (tests.store_publisher)."""
    got = publish_next(store, version_tiles)
    assert version is None or got == version
    return got


# ---- opening -------------------------------------------------------------------------------------


def test_new_store_is_empty_and_reopens(store_url):
    with open_store(store_url) as store:
        assert store.versions() == []
        assert store.latest_version() is None
        assert store.list_keys() == []
        assert store.missing_blobs([]) == set()
        _publish(store, version=1)
    with open_store(store_url) as store:  # data survive closing; the schema is not recreated
        assert store.latest_version() == 1
        assert isinstance(store, SQLiteStore if store_url.startswith("sqlite") else PostgresStore)


def test_closed_store_refuses_calls(store_url):
    store = open_store(store_url)
    store.close()
    store.close()  # harmless twice
    with pytest.raises(StoreError, match="closed"):
        store.latest_version()


def test_unknown_schema_version_is_refused(store_url):
    open_store(store_url).close()
    _raw(store_url, "UPDATE {t}schema_info SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(store_url)


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@localhost/maps", "unsupported store URL"),
        ("sqlite:///", "no file path"),
        ("sqlite:///no/such/folder/store.db", "does not exist"),
        ("postgresql://postgres@127.0.0.1:1/none", "cannot connect"),
        ("postgresql://postgres@127.0.0.1:5432/postgres?schema=Bad-Name", "schema name"),
    ],
)
def test_bad_urls_raise_store_error(url, message):
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_password_is_not_shown_in_errors():
    with pytest.raises(StoreError) as info:
        open_store("postgresql://maps:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 100)
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{text}")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not an HD-map store"):
        open_store(f"sqlite:///{other}")


def test_relative_sqlite_path_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel.db") as store:
        _publish(store, version=1)
    assert (tmp_path / "rel.db").is_file()


def test_sqlite_runs_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_store(url).close()
    assert _raw(url, "PRAGMA journal_mode") == [("wal",)]


# ---- blobs ---------------------------------------------------------------------------------------


def test_put_blobs_is_idempotent(store_url):
    first = _blobs(5, "a")
    more = _blobs(2, "b")
    with open_store(store_url) as store:
        assert store.missing_blobs(first) == set(first)
        assert store.put_blobs(first) == 5
        assert store.put_blobs(first) == 0  # the same blobs again: nothing written
        assert store.put_blobs({**first, **more}) == 2
        assert store.missing_blobs([*first, *more]) == set()
        assert store.put_blobs({}) == 0
        for h, data in {**first, **more}.items():
            assert store.blob(h) == data
    assert _raw(store_url, "SELECT COUNT(*) FROM {t}blobs") == [(7,)]


def test_put_blobs_verifies_every_hash_before_writing(store_url):
    good = _blobs(3, "good")
    bad_hash = hashlib.sha256(b"other bytes").hexdigest()
    with open_store(store_url) as store:
        with pytest.raises(StoreError, match="SHA-256 mismatch"):
            store.put_blobs({**good, bad_hash: b"these bytes"})
        assert store.missing_blobs(good) == set(good)  # nothing of the batch was written
        with pytest.raises(StoreError, match="not a lowercase hex SHA-256"):
            store.put_blobs({next(iter(good)).upper(): good[next(iter(good))]})
        with pytest.raises(StoreError, match="bytes expected"):
            store.put_blobs({bad_hash: "text"})


def test_missing_and_malformed_blobs(store_url):
    with open_store(store_url) as store:
        absent = hashlib.sha256(b"never stored").hexdigest()
        with pytest.raises(NotFoundError):
            store.blob(absent)
        with pytest.raises(NotFoundError):
            store.blob("../../etc/passwd")
        assert store.missing_blobs([absent, "xyz"]) == {absent, "xyz"}


# ---- publishing, versions, manifests, changes ----------------------------------------------------


def test_publish_versions_manifests_and_changes(store_url):
    with open_store(store_url) as store:
        before = datetime.now(UTC).replace(microsecond=0)
        v1 = _publish(store)
        v2 = _publish(store)
        assert (v1, v2) == (1, 2)
        assert store.latest_version() == 2
        infos = store.versions()
        assert [i.version for i in infos] == [1, 2]
        for info in infos:
            manifest, _, changes, metadata = expected_version(info.version, 12)
            assert isinstance(info, VersionInfo)
            assert store.version_info(info.version) == info
            assert info.level == LEVEL
            assert info.tile_count == 12 and info.change_count == len(changes)
            assert info.metadata == metadata
            assert info.created.endswith("Z")
            created = datetime.fromisoformat(info.created)
            assert before <= created <= datetime.now(UTC)
            assert store.blob(info.source) == f"source of version {info.version}".encode()
            assert store.manifest(info.version) == manifest
            assert list(store.manifest(info.version)) == sorted(manifest)
            assert store.changes(info.version) == changes
        # two thirds of the tiles kept their bytes: version 2 wrote only the changed ones
        m1, m2 = store.manifest(1), store.manifest(2)
        same = sum(m1[t] == m2[t] for t in m1)
        assert same == 8


def test_publishing_identical_content_writes_no_blobs(store_url):
    manifest, blobs, _, _ = expected_version(1, 30)
    source = hashlib.sha256(b"source of version 1").hexdigest()
    with open_store(store_url) as store:
        assert store.put_blobs(blobs) == 31
        store.publish(manifest=manifest, changes=[], source=source, level=LEVEL, metadata={})
        assert store.missing_blobs(blobs) == set()
        assert store.put_blobs(blobs) == 0
        v = store.publish(manifest=manifest, changes=[], source=source, level=LEVEL, metadata={})
        assert v == 2 and store.manifest(2) == store.manifest(1)
    assert _raw(store_url, "SELECT COUNT(*) FROM {t}blobs") == [(31,)]


def test_change_records_and_metadata_round_trip_json(store_url):
    records = [
        {
            "change": "geometry_changed",
            "layer": "lane_boundaries",
            "feature_id": "lb-0123456789abcdef",
            "old_id": None,
            "new_id": "lb-0123456789abcdef",
            "anchor": [534000.123456789, 3496000.987654321, 5.0],
            "details": {"moved_m": 0.1 + 0.2, "名": "车道线", "tiny": 1e-12},
        },
        {"change": "deleted", "layer": "poles", "feature_id": "po-1", "details": {}},
    ]
    metadata = {"name": "锡山", "features": {"lanes": 4}, "confidentiality": "identity"}
    source = _blobs(1, "src")
    with open_store(store_url) as store:
        store.put_blobs(source)
        v = store.publish(
            manifest={}, changes=records, source=next(iter(source)), level=13, metadata=metadata
        )
        assert store.changes(v) == records
        assert store.version_info(v).metadata == metadata
        assert store.version_info(v).change_count == 2
        assert store.manifest(v) == {} and store.version_info(v).tile_count == 0


def test_publish_refuses_hashes_that_are_not_stored_blobs(store_url):
    blobs = _blobs(3, "x")
    hashes = list(blobs)
    absent = hashlib.sha256(b"absent").hexdigest()
    tiles = tile_ids(3)
    with open_store(store_url) as store:
        store.put_blobs(blobs)
        with pytest.raises(StoreError, match="not stored blobs"):
            store.publish(
                manifest={tiles[0]: hashes[0], tiles[1]: absent},
                changes=[],
                source=hashes[2],
                level=LEVEL,
                metadata={},
            )
        with pytest.raises(StoreError, match="not stored blobs"):
            store.publish(
                manifest={tiles[0]: hashes[0]}, changes=[], source=absent, level=LEVEL, metadata={}
            )
        assert store.latest_version() is None
        assert store.versions() == []
        # a failed publish leaves the store usable; version numbers have no gap
        assert (
            store.publish(
                manifest={tiles[0]: hashes[0]},
                changes=[],
                source=hashes[2],
                level=LEVEL,
                metadata={},
            )
            == 1
        )
    assert _raw(store_url, "SELECT COUNT(*) FROM {t}manifest") == [(1,)]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"level": 12}, "at level 13, the version at 12"),
        ({"level": 16}, "level 16 is not an integer 0-15"),
        ({"manifest": {12345: "HASH"}}, "tile ID 12345 is not valid"),
        ({"manifest": {"abc": "HASH"}}, "is not valid"),
        ({"manifest": {"TILE": "HASH", "557028243": "HASH"}}, "is not valid"),
        ({"manifest": {557028243.0: "HASH"}}, "is not valid"),
        ({"changes": ["inserted"]}, "a change record is a mapping"),
        ({"metadata": [("a", 1)]}, "metadata is a mapping"),
        ({"manifest": {"TILE": "not-a-hash"}}, "not a lowercase hex SHA-256"),
        ({"source": "ABC"}, "not a lowercase hex SHA-256"),
        ({"metadata": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"metadata": {"x": object()}}, "not JSON-serialisable"),
        ({"changes": [{"when": datetime.now(UTC)}]}, "not JSON-serialisable"),
    ],
)
def test_publish_validates_its_arguments(store_url, change, message):
    blobs = _blobs(2, "v")
    h, source = list(blobs)
    tile = tile_ids(1)[0]
    args = {"manifest": {tile: h}, "changes": [], "source": source, "level": 13, "metadata": {}}
    args.update(change)
    args["manifest"] = {
        (tile if t == "TILE" else t): (h if v == "HASH" else v) for t, v in args["manifest"].items()
    }
    with open_store(store_url) as store:
        store.put_blobs(blobs)
        with pytest.raises(StoreError, match=message):
            store.publish(**args)
        assert store.latest_version() is None


@pytest.mark.parametrize("version", [0, 3, -1, "1", True, 1.0, None])
def test_absent_versions_raise_not_found(store_url, version):
    with open_store(store_url) as store:
        _publish(store, version=1)
        _publish(store, version=2)
        with pytest.raises(NotFoundError):
            store.version_info(version)
        with pytest.raises(NotFoundError):
            store.manifest(version)
        with pytest.raises(NotFoundError):
            store.changes(version)
        with pytest.raises(NotFoundError):
            store.tiles_in_bbox(version, 120.0, 31.0, 121.0, 32.0)


def test_a_publish_in_progress_is_invisible_to_other_connections(store_url, monkeypatch):
    """At each fault point (inside the transaction), a second connection sees only version 1."""
    seen: dict[str, tuple] = {}
    with open_store(store_url) as store, open_store(store_url) as reader:
        _publish(store, version=1)

        def look(point: str) -> None:
            try:
                hidden = not reader.manifest(2)
            except NotFoundError:
                hidden = True
            seen[point] = (reader.latest_version(), len(reader.versions()), hidden)

        monkeypatch.setattr(store_module, "_fault", look)
        _publish(store, version=2)
        for point in ("after_blobs", "mid_manifest", "before_commit"):
            assert seen[point] == (1, 1, True), point
        assert seen["after_commit"] == (2, 2, False)  # once committed, the reader sees it
        assert reader.manifest(1) == expected_version(1, 12)[0]
        assert reader.manifest(2) == expected_version(2, 12)[0]


# ---- bounding boxes ------------------------------------------------------------------------------


def _boxes(manifest_tiles: list[int], rng: random.Random) -> list[tuple[float, ...]]:
    """Random boxes around the tiles, plus boxes on exact tile edges, points and lines."""
    bounds = [tile_bounds(t) for t in manifest_tiles]
    w0 = min(b[0] for b in bounds) - 0.03
    s0 = min(b[1] for b in bounds) - 0.03
    e0 = max(b[2] for b in bounds) + 0.03
    n0 = max(b[3] for b in bounds) + 0.03
    boxes = []
    for _ in range(40):
        w, e = sorted(rng.uniform(w0, e0) for _ in range(2))
        s, n = sorted(rng.uniform(s0, n0) for _ in range(2))
        boxes.append((w, s, e, n))
    for w, s, e, n in bounds[:6]:
        boxes += [(w, s, e, n), (w, s, w, s), (e, n, e, n), (w, s, w, n), (w, s, e, s)]
        boxes.append((w - 0.001, s - 0.001, w, s))  # touches the tile's south-west corner only
    boxes.append((w0, s0, e0, n0))
    return boxes


def test_tiles_in_bbox_agrees_with_the_tile_grid(store_url):
    rng = random.Random(7)
    with open_store(store_url) as store:
        v = _publish(store, version_tiles=40)
        held = set(store.manifest(v))
        for box in _boxes(sorted(held), rng):
            expected = sorted(set(tiles_in_bbox(*box, LEVEL, max_tiles=10**6)) & held)
            assert store.tiles_in_bbox(v, *box) == expected, box
        # a box far away holds nothing; the whole world holds everything
        assert store.tiles_in_bbox(v, -10.0, -10.0, -9.0, -9.0) == []
        assert store.tiles_in_bbox(v, -180, -90, 180, 90) == sorted(held)


def test_tiles_in_bbox_per_version(store_url):
    blobs = _blobs(3, "bb")
    h = list(blobs)
    a = packed_tile_id(120.31, 31.51)
    b = packed_tile_id(120.51, 31.71)
    with open_store(store_url) as store:
        store.put_blobs(blobs)
        v1 = store.publish(manifest={a: h[0]}, changes=[], source=h[2], level=13, metadata={})
        v2 = store.publish(
            manifest={a: h[0], b: h[1]}, changes=[], source=h[2], level=13, metadata={}
        )
        box = (120.0, 31.0, 121.0, 32.0)
        assert store.tiles_in_bbox(v1, *box) == [a]
        assert store.tiles_in_bbox(v2, *box) == sorted([a, b])
        assert store.tiles_in_bbox(v2, 120.5, 31.7, 120.52, 31.72) == [b]


@pytest.mark.parametrize(
    "box",
    [
        (121.0, 31.0, 120.0, 32.0),  # west east of east
        (120.0, 32.0, 121.0, 31.0),
        (-181.0, 0.0, 0.0, 1.0),
        (0.0, -91.0, 1.0, 0.0),
        (0.0, 0.0, float("nan"), 1.0),
        (0.0, 0.0, float("inf"), 1.0),
        (0.0, 0.0, "1", 1.0),
        (0.0, 0.0, True, 1.0),
    ],
)
def test_bad_boxes_raise_tile_error(store_url, box):
    with open_store(store_url) as store:
        v = _publish(store, version_tiles=2)
        with pytest.raises(TileError):
            store.tiles_in_bbox(v, *box)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_postgis_holds_the_tile_boxes_with_a_gist_index(store_url):
    with open_store(store_url) as store:
        v = _publish(store, version_tiles=5)
        tile = next(iter(store.manifest(v)))
    rows = _raw(
        store_url,
        "SELECT ST_SRID(bbox), GeometryType(bbox), ST_XMin(bbox), ST_YMin(bbox), "
        "ST_XMax(bbox), ST_YMax(bbox) FROM {t}tiles WHERE tile_id = ?",
        (tile,),
    )
    srid, kind, *box = rows[0]
    assert (srid, kind) == (4326, "POLYGON")
    assert box == pytest.approx(tile_bounds(tile), abs=1e-12)
    indexes = _raw(
        store_url,
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'tiles' AND schemaname = ?",
        (store_url.rsplit("schema=", 1)[1],),
    )
    assert any("USING gist (bbox)" in i for (i,) in indexes)


# ---- keys ----------------------------------------------------------------------------------------


def test_key_lifecycle(store_url):
    with open_store(store_url) as store:
        reader = store.create_key("reader", label="viewer")
        publisher = store.create_key("publisher")
        for key in (reader, publisher):
            assert key.startswith("xsk_")
            _, key_id, secret = key.split("_", 2)
            assert len(key_id) == 16 and len(secret) >= 40
        assert store.key_role(reader) == "reader"
        assert store.key_role(publisher) == "publisher"
        keys = {k.key_id: k for k in store.list_keys()}
        reader_id = reader.split("_")[1]
        assert set(keys) == {reader_id, publisher.split("_")[1]}
        info = keys[reader_id]
        assert isinstance(info, KeyInfo)
        assert (info.role, info.label, info.revoked) == ("reader", "viewer", None)
        assert datetime.fromisoformat(info.created) <= datetime.now(UTC)

        store.revoke_key(reader_id)
        assert store.key_role(reader) is None
        assert store.key_role(publisher) == "publisher"  # the other key is untouched
        revoked = {k.key_id: k for k in store.list_keys()}[reader_id].revoked
        assert revoked is not None and revoked >= info.created
        store.revoke_key(reader_id)  # again: harmless, the first time is kept
        assert {k.key_id: k for k in store.list_keys()}[reader_id].revoked == revoked
        store.revoke_key(publisher)  # the whole key text names its ID too
        assert store.key_role(publisher) is None
    with open_store(store_url) as store:  # revocation persists
        assert store.key_role(reader) is None


def test_unknown_tampered_and_malformed_keys(store_url):
    with open_store(store_url) as store:
        key = store.create_key("publisher")
        last = key[-1]
        tampered = key[:-1] + ("A" if last != "A" else "B")
        other_id = "xsk_" + "0" * 16 + key[len("xsk_") + 16 :]
        for bad in (tampered, other_id, key + "x", key[:-1], "", "xsk_", "Bearer " + key, None, 7):
            assert store.key_role(bad) is None, bad
        assert store.key_role(key) == "publisher"
        with pytest.raises(NotFoundError):
            store.revoke_key("0" * 16)
        with pytest.raises(NotFoundError):
            store.revoke_key("not-an-id")
        with pytest.raises(StoreError, match="unknown role"):
            store.create_key("admin")


def test_the_store_keeps_only_a_hash_of_each_key(store_url):
    with open_store(store_url) as store:
        key = store.create_key("reader")
    secret = key.split("_", 2)[2]
    rows = _raw(store_url, "SELECT * FROM {t}keys")
    assert len(rows) == 1
    assert not any(secret in str(v) for v in rows[0])
    assert hashlib.sha256(key.encode()).hexdigest() in rows[0]
    if store_url.startswith("sqlite:///"):
        db = store_url[len("sqlite:///") :]
        raw = b"".join(Path(p).read_bytes() for p in (db, db + "-wal") if Path(p).exists())
        assert secret.encode() not in raw


def test_role_grants():
    assert role_grants("publisher", "publisher") and role_grants("publisher", "reader")
    assert role_grants("reader", "reader")
    assert not role_grants("reader", "publisher")
    assert not role_grants(None, "reader") and not role_grants("admin", "reader")


# ---- concurrency ---------------------------------------------------------------------------------


def test_one_store_shared_by_threads(store_url):
    errors: list[BaseException] = []
    published: list[int] = []
    with open_store(store_url) as store:
        _publish(store, version=1)

        def publisher() -> None:
            try:
                for _ in range(4):
                    published.append(_publish(store, version_tiles=12))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def reader() -> None:
            try:
                for _ in range(30):
                    v = store.latest_version()
                    assert store.manifest(v) == expected_version(v, 12)[0]
                    assert store.key_role("xsk_" + "0" * 16 + "_" + "a" * 43) is None
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=publisher)] + [
            threading.Thread(target=reader) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert published == [2, 3, 4, 5]


@pytest.mark.slow
def test_concurrent_publisher_processes_serialise(store_url):
    """Three processes publishing at once get distinct, gap-free versions, each complete."""
    open_store(store_url).close()
    racer = (
        "import sys, hashlib; from tiles.store import open_store\n"
        "from tests.store_publisher import expected_version, LEVEL\n"
        "manifest, blobs, changes, meta = expected_version(0, 20)\n"
        "with open_store(sys.argv[1]) as s:\n"
        "    s.put_blobs({h: blobs[h] for h in s.missing_blobs(blobs)})\n"
        "    src = hashlib.sha256(b'source of version 0').hexdigest()\n"
        "    for _ in range(3):\n"
        "        print(s.publish(manifest=manifest, changes=changes, source=src, level=LEVEL,\n"
        "                        metadata={'pid': sys.argv[2]}), flush=True)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", racer, store_url, str(i)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    versions = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        versions += [int(line) for line in out.split()]
    assert sorted(versions) == list(range(1, 10))
    manifest = expected_version(0, 20)[0]
    with open_store(store_url) as store:
        assert [i.version for i in store.versions()] == list(range(1, 10))
        for v in range(1, 10):
            assert store.manifest(v) == manifest
        pids = [store.version_info(v).metadata["pid"] for v in range(1, 10)]
        assert sorted(pids) == sorted(["0", "1", "2"] * 3)


@pytest.mark.slow
def test_reader_processes_see_only_complete_versions(store_url):
    """Two reader processes poll the latest version while this process publishes."""
    with open_store(store_url) as store:
        _publish(store, version_tiles=40, version=1)
    reader = (
        "import sys, time; from tiles.store import open_store\n"
        "from tests.store_publisher import expected_version\n"
        "seen = set()\n"
        "with open_store(sys.argv[1]) as s:\n"
        "    print('ready', flush=True)\n"
        "    end = time.monotonic() + 60\n"
        "    while time.monotonic() < end and max(seen, default=0) < 6:\n"
        "        v = s.latest_version()\n"
        "        assert s.manifest(v) == expected_version(v, 40)[0], v\n"
        "        assert s.changes(v) == expected_version(v, 40)[2], v\n"
        "        seen.add(v)\n"
        "print(sorted(seen))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", reader, store_url],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    with open_store(store_url) as store:
        for v in range(2, 7):
            assert _publish(store, version_tiles=40) == v
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        seen = json.loads(out)  # the versions the reader saw
        assert seen[0] >= 1 and seen[-1] == 6


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_postgres_store_reconnects_after_losing_its_connection(store_url):
    import psycopg

    with open_store(store_url) as store:
        _publish(store, version=1)
        pid = store._conn.info.backend_pid
        database = store_url.split("?")[0]
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError, match="PostgreSQL"):
            store.latest_version()  # the call that meets the dropped connection fails cleanly
        assert store.latest_version() == 1  # the next one reconnects
        assert _publish(store) == 2
