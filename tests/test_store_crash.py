"""A killed publisher never leaves a half-visible version (SQLite and PostgreSQL).

A publisher subprocess (``python -m tests.store_publisher``) is killed with SIGKILL, either by the
store's fault hook at a named point of the publish (``HDMAP_STORE_FAULT``) or by the test at a
random moment of a publishing loop. Afterwards the store opens, every visible version is complete
and exactly what the publisher meant to write, nothing of the killed version shows, and the next
publish gets the next version number.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from pipeline.errors import NotFoundError
from tests.conftest import PROJECT_ROOT
from tests.store_publisher import expected_version, publish_next
from tests.test_store import _raw
from tiles.store import FAULT_ENV, open_store

TILES = 60


def _publisher(url: str, mode: str, tiles: int, fault: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_publisher", url, mode, str(tiles)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _rows_of_version(url: str, version: int) -> int:
    """Rows any table holds for ``version``, read directly from the database."""
    return sum(
        _raw(url, f"SELECT COUNT(*) FROM {{t}}{table} WHERE version = ?", (version,))[0][0]
        for table in ("versions", "manifest", "changes")
    )


def _check_store(url: str, tiles: int, since: int = 0) -> int:
    """Every visible version after ``since`` is complete and as meant; return the latest."""
    with open_store(url) as store:
        infos = store.versions()
        versions = [i.version for i in infos]
        assert versions == list(range(1, len(versions) + 1))  # gap-free
        for info in infos[since:]:
            manifest, blobs, changes, metadata = expected_version(info.version, tiles)
            assert store.manifest(info.version) == manifest
            assert store.changes(info.version) == changes
            assert (info.tile_count, info.change_count) == (len(manifest), len(changes))
            assert info.metadata == metadata
            assert store.missing_blobs(blobs) == set()
            for h in list(manifest.values())[:5]:
                assert store.blob(h) == blobs[h]
        latest = store.latest_version() or 0
        assert latest == len(versions)
        with pytest.raises(NotFoundError):
            store.manifest(latest + 1)
    assert _rows_of_version(url, latest + 1) == 0  # nothing of a killed publish is stored
    if url.startswith("sqlite:///"):
        assert _raw(url, "PRAGMA integrity_check") == [("ok",)]
    return latest


@pytest.mark.parametrize("point", ["after_blobs", "mid_manifest", "before_commit"])
def test_publisher_killed_at_a_fault_point_leaves_the_previous_version(store_url, point):
    with open_store(store_url) as store:
        assert publish_next(store, TILES) == 1
        manifest_1 = store.manifest(1)
    proc = _publisher(store_url, "once", TILES, fault=point)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert out.splitlines() == ["begin 2"]  # it never reported the version done

    assert _check_store(store_url, TILES) == 1
    with open_store(store_url) as store:
        assert store.latest_version() == 1
        assert store.manifest(1) == manifest_1
        assert [i.version for i in store.versions()] == [1]
        for call in (store.version_info, store.manifest, store.changes):
            with pytest.raises(NotFoundError):
                call(2)
        # the killed publisher had stored its blobs: publishing again writes none
        _, blobs, _, _ = expected_version(2, TILES)
        assert store.missing_blobs(blobs) == set()
        assert publish_next(store, TILES) == 2
        assert store.manifest(2) == expected_version(2, TILES)[0]
    assert _check_store(store_url, TILES) == 2


def test_publisher_killed_after_commit_leaves_the_new_version_complete(store_url):
    """The hook really kills inside publish: killed just after the commit, the version is there."""
    with open_store(store_url) as store:
        publish_next(store, TILES)
    proc = _publisher(store_url, "once", TILES, fault="after_commit")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert _check_store(store_url, TILES) == 2
    with open_store(store_url) as store:
        assert publish_next(store, TILES) == 3


@pytest.mark.slow
def test_publisher_killed_at_random_moments(store_url):
    """SIGKILL from the test at a random moment of a publishing loop, several times over."""
    rng = random.Random(20261125)
    tiles = 300
    latest = 0
    killed_mid_publish = 0
    for _ in range(6):
        proc = _publisher(store_url, "loop", tiles)
        first = proc.stdout.readline()  # imports take a while: start the clock at the first publish
        assert first.startswith("begin"), proc.stderr.read()
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        lines = [first.strip(), *out.splitlines()]
        done = [int(line.split()[1]) for line in lines if line.startswith("done")]
        killed_mid_publish += lines[-1].startswith("begin")
        after = _check_store(store_url, tiles, since=latest)
        # every version the publisher reported is visible; at most one more (killed after its
        # commit, before printing) may be
        assert done == list(range(latest + 1, latest + 1 + len(done)))
        assert after in (latest + len(done), latest + len(done) + 1)
        latest = after
    assert latest >= 3  # the loop did publish between kills
    assert killed_mid_publish >= 3  # and most kills landed inside a publish
    with open_store(store_url) as store:
        assert publish_next(store, tiles) == latest + 1
