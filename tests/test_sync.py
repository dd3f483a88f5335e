"""``hdmap sync`` / :func:`tiles.client.sync` against the real service over a socket.

The service runs in a thread (uvicorn) behind a small ASGI wrapper that counts requests and bytes
and can slow or corrupt tile responses; the store is tests/conftest.py's ``store_url`` (SQLite and
PostgreSQL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mapservice import ROOT, ThreadServer, free_port, publish, spread_model
from tiles.client import (
    TILE_SUFFIX,
    AccessDenied,
    IntegrityError,
    ServiceError,
    local_manifest,
    sync,
)


class Recorder:
    """ASGI wrapper: records request paths and response body bytes; can delay or corrupt tiles."""

    def __init__(self, app):
        self.app = app
        self.paths: list[str] = []
        self.body_bytes = 0
        self.tile_delay_s = 0.0
        self.corrupt: set[int] = set()

    def reset(self) -> None:
        self.paths.clear()
        self.body_bytes = 0

    @property
    def tile_requests(self) -> int:
        return sum("/tiles/" in p for p in self.paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        self.paths.append(path)
        is_tile = "/tiles/" in path
        if is_tile and self.tile_delay_s:
            await asyncio.sleep(self.tile_delay_s)
        bad = is_tile and path.rsplit("/", 1)[-1] in {str(t) for t in self.corrupt}

        async def recording_send(message):
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                if bad and body:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                    message = {**message, "body": body}
                self.body_bytes += len(body)
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture
def world(store_url):
    """A store with version 1 (three roads, three tiles), keys and a recording service."""
    from tiles.service import create_app
    from tiles.store import open_store

    store = open_store(store_url)
    publish(store, spread_model(3))
    keys = {role: store.create_key(role) for role in ("reader", "publisher")}
    app = create_app(store_url, latest_ttl_s=0.0)  # see publishes made beside it at once
    recorder = Recorder(app)
    with ThreadServer(recorder) as server:
        yield {"store": store, "keys": keys, "url": server.url, "rec": recorder}
    app.close()
    store.close()


def _check_copy(directory: Path, manifest: dict[int, str]) -> None:
    files = {p.name for p in (directory / "tiles").iterdir()}
    assert files == {f"{t}{TILE_SUFFIX}" for t in manifest}
    for t, digest in manifest.items():
        data = (directory / "tiles" / f"{t}{TILE_SUFFIX}").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
    local = local_manifest(directory)
    assert local["tiles"] == manifest


def test_second_sync_downloads_only_the_changed_tile(world, tmp_path):
    store, rec, key = world["store"], world["rec"], world["keys"]["reader"]
    copy = tmp_path / "copy"
    m1 = store.manifest(1)
    first = sync(world["url"], key, copy)
    assert (first.version, first.downloaded_tiles, first.kept_tiles) == (1, len(m1), 0)
    assert first.downloaded_bytes == sum(len(store.blob(h)) for h in m1.values())
    assert rec.tile_requests == len(m1) == 3
    _check_copy(copy, m1)

    publish(store, spread_model(3, drop={1: {"road_arrows"}}))
    m2 = store.manifest(2)
    (changed,) = [t for t in m2 if m1.get(t) != m2[t]]
    rec.reset()
    second = sync(world["url"], key, copy)
    assert second.version == 2
    assert (second.downloaded_tiles, second.kept_tiles, second.removed_tiles) == (1, 2, 0)
    assert second.downloaded_bytes == len(store.blob(m2[changed]))
    assert rec.paths == [
        "/v1/versions/latest",
        "/v1/versions/2/manifest",
        f"/v1/versions/2/tiles/{changed}",
    ]
    manifest_bytes = len(json.dumps({"tiles": {str(t): h for t, h in m2.items()}}))
    assert rec.body_bytes < second.downloaded_bytes + manifest_bytes + 1024
    _check_copy(copy, m2)

    rec.reset()
    third = sync(world["url"], key, copy)
    assert (third.downloaded_tiles, third.kept_tiles, third.downloaded_bytes) == (0, 3, 0)
    assert rec.tile_requests == 0


def test_tiles_dropped_from_the_map_are_removed(world, tmp_path):
    store, key = world["store"], world["keys"]["reader"]
    copy = tmp_path / "copy"
    sync(world["url"], key, copy)
    publish(store, spread_model(2))  # the third road is gone: its tile is a tombstone
    m2 = store.manifest(2)
    result = sync(world["url"], key, copy)
    assert result.removed_tiles == 1 and result.downloaded_tiles == 0
    _check_copy(copy, m2)


def test_an_interrupted_sync_resumes_where_it_stopped(world, tmp_path):
    store, rec, key = world["store"], world["rec"], world["keys"]["reader"]
    copy = tmp_path / "copy"
    m1 = store.manifest(1)

    def stop_after_first(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync(world["url"], key, copy, progress=stop_after_first)
    assert not (copy / "manifest.json").exists()  # written last, only on success
    assert len(list((copy / "tiles").iterdir())) == 1
    (copy / "tiles" / f".{next(iter(m1))}{TILE_SUFFIX}.abc.part.gz").write_bytes(b"half")
    rec.reset()
    resumed = sync(world["url"], key, copy)
    assert (resumed.downloaded_tiles, resumed.kept_tiles) == (len(m1) - 1, 1)
    assert rec.tile_requests == len(m1) - 1
    _check_copy(copy, m1)  # the leftover temporary file is gone too

    # a damaged local tile is noticed by its hash and fetched again
    victim = sorted(m1)[1]
    (copy / "tiles" / f"{victim}{TILE_SUFFIX}").write_bytes(b"\x1f\x8bdamaged")
    rec.reset()
    repaired = sync(world["url"], key, copy)
    assert repaired.downloaded_tiles == 1 and rec.paths[-1].endswith(f"/{victim}")
    _check_copy(copy, m1)


def hdmap(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "HDMAP_KEY"},
    )


@pytest.mark.slow
def test_a_killed_sync_process_resumes(world, tmp_path):
    store, rec, key = world["store"], world["rec"], world["keys"]["reader"]
    copy = tmp_path / "copy"
    m1 = store.manifest(1)
    rec.tile_delay_s = 1.0  # slow tiles: the kill lands mid-sync
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli.main", "sync", "--service", world["url"],
         "--key", key, "--dir", str(copy)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    tiles = copy / "tiles"
    while time.monotonic() < deadline:
        if tiles.is_dir() and any(p.suffix == ".gz" and p.name[0] != "." for p in tiles.iterdir()):
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    have = [p for p in tiles.iterdir() if p.name[0] != "."]
    assert 1 <= len(have) < len(m1) and not (copy / "manifest.json").exists()
    rec.tile_delay_s = 0.0
    rec.reset()
    out = hdmap("sync", "--service", world["url"], "--key", key, "--dir", str(copy), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["downloaded_tiles"] == len(m1) - len(have) == rec.tile_requests
    assert result["kept_tiles"] == len(have)
    _check_copy(copy, m1)


def test_a_tile_that_does_not_match_its_hash_is_refused(world, tmp_path):
    store, rec, key = world["store"], world["rec"], world["keys"]["reader"]
    copy = tmp_path / "copy"
    bad = sorted(store.manifest(1))[1]
    rec.corrupt = {bad}
    with pytest.raises(IntegrityError, match=f"tile {bad} has SHA-256"):
        sync(world["url"], key, copy)
    assert not (copy / "tiles" / f"{bad}{TILE_SUFFIX}").exists()
    assert not (copy / "manifest.json").exists()
    out = hdmap("sync", "--service", world["url"], "--key", key, "--dir", str(copy))
    assert out.returncode == 3 and out.stderr.count("\n") == 1
    assert "hdmap sync: error:" in out.stderr and "SHA-256" in out.stderr
    rec.corrupt = set()
    again = sync(world["url"], key, copy)  # tiles go in ID order: the first one was kept
    assert (again.kept_tiles, again.downloaded_tiles) == (1, 2)


@pytest.mark.slow
def test_refused_keys_and_unreachable_services_exit_3(world, tmp_path):
    store, url = world["store"], world["url"]
    copy = tmp_path / "copy"
    with pytest.raises(AccessDenied, match="401"):
        sync(url, "xsk_0123456789abcdef_" + "y" * 40, copy)
    out = hdmap("sync", "--service", url, "--key", "wrong", "--dir", str(copy))
    assert out.returncode == 3 and "HTTP 401" in out.stderr and out.stderr.count("\n") == 1
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceError, match="cannot reach"):
        sync(dead, world["keys"]["reader"], copy)
    out = hdmap("sync", "--service", dead, "--key", "k", "--dir", str(copy))
    assert out.returncode == 3 and "cannot reach the service" in out.stderr
    out = hdmap("sync", "--service", "ftp://x", "--key", "k", "--dir", str(copy))
    assert out.returncode == 3
    out = hdmap("sync", "--service", url, "--dir", str(copy))
    assert out.returncode == 2  # no key at all: usage
    key_id = world["keys"]["reader"].split("_")[1]
    store.revoke_key(key_id)
    time.sleep(2.1)  # the service trusts a key lookup for up to 2 s
    with pytest.raises(AccessDenied, match="revoked"):
        sync(url, world["keys"]["reader"], copy)
    assert not copy.exists() or not any(copy.rglob("*.gz"))


def test_a_service_without_versions(store_url, tmp_path):
    from tiles.service import create_app
    from tiles.store import open_store

    with open_store(store_url) as store:
        key = store.create_key("reader")
    app = create_app(store_url)
    with (
        ThreadServer(app) as server,
        pytest.raises(ServiceError, match="no version has been published"),
    ):
        sync(server.url, key, tmp_path / "copy")
    app.close()
