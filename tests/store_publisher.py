"""A test publisher for the store crash tests: deterministic versions, run in a subprocess.

Version ``n`` of a store written here always has the same content (:func:`expected_version`), so a
test that kills the publisher can check every visible version tile by tile. Two thirds of the tiles
keep their bytes from version to version (as an unchanged map region does), one third changes.

    python -m tests.store_publisher URL once TILES     publish the next version
    python -m tests.store_publisher URL loop TILES     publish versions until killed

Before each publish it prints ``begin N``, after it ``done N`` (N the version number).

With ``HDMAP_STORE_FAULT=<point>`` the store kills this process at that point of the publish.

>>> manifest, blobs, changes, metadata = expected_version(4, 0)
>>> manifest, changes, metadata["n"]
({}, [{'change': 'inserted', 'feature_id': 'f-4-0', 'version': 4}], 4)
>>> len(expected_version(4, 3)[0]), len(expected_version(5, 0)[2])
(3, 2)
"""

from __future__ import annotations

import hashlib
import random
import sys
from typing import Any

from tiles.tileid import packed_tile_id

__all__ = ["BLOB_BYTES", "LEVEL", "expected_version", "publish_next", "tile_ids"]

LEVEL = 13
BLOB_BYTES = 4096


def tile_ids(count: int) -> list[int]:
    """``count`` distinct level-13 tile IDs on a grid near Wuxi (lon 120.0+, lat 31.3+)."""
    step = 180.0 / 2**LEVEL
    side = max(1, int(count**0.5) + 1)
    ids = [
        packed_tile_id(120.0 + (i % side + 0.5) * step, 31.3 + (i // side + 0.5) * step, LEVEL)
        for i in range(count)
    ]
    assert len(set(ids)) == count
    return ids


def _blob(version: int, index: int) -> bytes:
    # a third of the tiles change with every version; the rest keep version-0 bytes
    era = version if index % 3 == 0 else 0
    return random.Random(f"{era}:{index}").randbytes(BLOB_BYTES)


def expected_version(
    version: int, tiles: int
) -> tuple[dict[int, str], dict[str, bytes], list[dict[str, Any]], dict[str, Any]]:
    """(manifest, blobs incl. source, change records, metadata) of ``version``, ``tiles`` tiles."""
    blobs: dict[str, bytes] = {}
    manifest: dict[int, str] = {}
    for index, tile_id in enumerate(tile_ids(tiles)):
        data = _blob(version, index)
        h = hashlib.sha256(data).hexdigest()
        blobs[h] = data
        manifest[tile_id] = h
    source = f"source of version {version}".encode()
    blobs[hashlib.sha256(source).hexdigest()] = source
    changes = [
        {"change": "inserted", "feature_id": f"f-{version}-{i}", "version": version}
        for i in range(1 + version % 4)
    ]
    return manifest, blobs, changes, {"n": version, "tiles": tiles}


def publish_next(store: Any, tiles: int) -> int:
    """Publish the expected content of the store's next version; return its number."""
    version = (store.latest_version() or 0) + 1
    manifest, blobs, changes, metadata = expected_version(version, tiles)
    store.put_blobs({h: blobs[h] for h in store.missing_blobs(blobs)})
    source = hashlib.sha256(f"source of version {version}".encode()).hexdigest()
    got = store.publish(
        manifest=manifest, changes=changes, source=source, level=LEVEL, metadata=metadata
    )
    if got != version:
        raise AssertionError(f"published version {got}, expected {version}")
    return got


def main(argv: list[str]) -> int:
    from tiles.store import open_store

    url, mode, tiles = argv[0], argv[1], int(argv[2])
    with open_store(url) as store:
        while True:
            print(f"begin {(store.latest_version() or 0) + 1}", flush=True)
            print(f"done {publish_next(store, tiles)}", flush=True)
            if mode != "loop":
                return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
