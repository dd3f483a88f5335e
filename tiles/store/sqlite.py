"""The SQLite backend of the tile store: one file, zero configuration, several reader processes.

The file runs in WAL mode (readers never block the writer, nor the writer them), with a busy
timeout, full fsync at commit and foreign keys on. A publish is one ``BEGIN IMMEDIATE``
transaction, so publishers serialise and a killed publisher leaves only an uncommitted WAL tail
that SQLite discards when the file is next opened.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "store.db"
>>> with SQLiteStore(path) as store:
...     store.versions(), store.list_keys()
([], [])
>>> with SQLiteStore(path) as store:  # reopening checks the schema version
...     store.latest_version() is None
True
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from tiles.store import SCHEMA_VERSION, KeyInfo, Store, VersionInfo, bbox_predicate, utc_now

__all__ = ["BUSY_TIMEOUT_S", "SQLiteStore"]

BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # host parameters per IN (...) query

_SCHEMA = """
CREATE TABLE schema_info (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE versions (
    version INTEGER PRIMARY KEY,
    created TEXT NOT NULL,
    level INTEGER NOT NULL,
    tile_count INTEGER NOT NULL,
    change_count INTEGER NOT NULL,
    source TEXT NOT NULL REFERENCES blobs (sha256),
    metadata TEXT NOT NULL
);
CREATE TABLE tiles (
    tile_id INTEGER PRIMARY KEY,
    west REAL NOT NULL, south REAL NOT NULL, east REAL NOT NULL, north REAL NOT NULL
);
CREATE TABLE manifest (
    version INTEGER NOT NULL REFERENCES versions (version),
    tile_id INTEGER NOT NULL REFERENCES tiles (tile_id),
    sha256 TEXT NOT NULL REFERENCES blobs (sha256),
    PRIMARY KEY (version, tile_id)
) WITHOUT ROWID;
CREATE TABLE changes (
    version INTEGER NOT NULL REFERENCES versions (version),
    seq INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (version, seq)
) WITHOUT ROWID;
CREATE TABLE keys (
    key_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('reader', 'publisher')),
    label TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
"""


class SQLiteStore(Store):
    """A store in one SQLite file (``:memory:`` for a throw-away store); see :mod:`tiles.store`."""

    def __init__(self, path: str | os.PathLike[str], *, url: str | None = None):
        path = str(path)
        super().__init__(url or f"sqlite:///{path}")
        self.path = path
        if path != ":memory:":
            parent = Path(path).resolve().parent
            if not parent.is_dir():
                raise StoreError(f"folder {parent} does not exist", path=path)
        try:
            self._conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store: {exc}", path=path) from exc
        try:
            with self._db_errors():
                self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    def _init_schema(self) -> None:
        c = self._conn
        with self._transaction():
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute(
                    "INSERT INTO schema_info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
                return
            if "schema_info" not in tables:
                raise StoreError("not an HD-map store (no schema_info table)", path=self.path)
        row = c.execute("SELECT value FROM schema_info WHERE name = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = None if row is None else row[0]
            raise StoreError(
                f"store schema version {found} is not the supported {SCHEMA_VERSION}",
                path=self.path,
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _db_errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.DatabaseError) as exc:
            raise StoreError(f"SQLite: {exc}", path=self.path) from exc

    # ---- blobs ---------------------------------------------------------------------------------

    def _stored(self, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(hashes), _CHUNK):
            chunk = list(hashes[i : i + _CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT sha256 FROM blobs WHERE sha256 IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    def _insert_blobs(self, items: Sequence[tuple[str, bytes]]) -> int:
        with self._transaction():
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO blobs (sha256, size, data) VALUES (?, ?, ?)",
                ((h, len(d), d) for h, d in items),
            )
            return self._conn.total_changes - before

    def _blob(self, sha256: str) -> bytes | None:
        row = self._conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    # ---- publishing ----------------------------------------------------------------------------

    def _publish_transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction()

    def _next_version(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM versions").fetchone()
        return row[0]

    def _insert_version(
        self, version: int, level: int, tiles: int, changes: int, source: str, metadata: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version, utc_now(), level, tiles, changes, source, metadata),
        )

    def _insert_tiles(self, bounds: Sequence[tuple[int, float, float, float, float]]) -> None:
        self._conn.executemany("INSERT OR IGNORE INTO tiles VALUES (?, ?, ?, ?, ?)", bounds)

    def _insert_manifest(self, version: int, rows: Sequence[tuple[int, str]]) -> None:
        self._conn.executemany(
            "INSERT INTO manifest VALUES (?, ?, ?)", ((version, t, h) for t, h in rows)
        )

    def _insert_changes(self, version: int, records: Sequence[str]) -> None:
        self._conn.executemany(
            "INSERT INTO changes VALUES (?, ?, ?)",
            ((version, i, r) for i, r in enumerate(records)),
        )

    # ---- reading -------------------------------------------------------------------------------

    def _versions(self, version: int | None) -> list[VersionInfo]:
        sql = "SELECT * FROM versions"
        rows = (
            self._conn.execute(sql + " ORDER BY version")
            if version is None
            else self._conn.execute(sql + " WHERE version = ?", (version,))
        )
        return [VersionInfo(v, c, lv, t, n, s, json.loads(m)) for v, c, lv, t, n, s, m in rows]

    def _latest(self) -> int | None:
        return self._conn.execute("SELECT MAX(version) FROM versions").fetchone()[0]

    def _manifest(self, version: int) -> dict[int, str]:
        rows = self._conn.execute(
            "SELECT tile_id, sha256 FROM manifest WHERE version = ? ORDER BY tile_id", (version,)
        )
        return dict(rows)

    def _changes(self, version: int) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT record FROM changes WHERE version = ? ORDER BY seq", (version,)
        )
        return [json.loads(r[0]) for r in rows]

    def _tiles_in_bbox(
        self, version: int, west: float, south: float, east: float, north: float
    ) -> list[int]:
        where = bbox_predicate(west, south, east, north, table="t").format(
            w=":w", s=":s", e=":e", n=":n"
        )
        rows = self._conn.execute(
            "SELECT m.tile_id FROM manifest m JOIN tiles t ON t.tile_id = m.tile_id "
            f"WHERE m.version = :v AND {where} ORDER BY m.tile_id",
            {"v": version, "w": west, "s": south, "e": east, "n": north},
        )
        return [r[0] for r in rows]

    # ---- keys ----------------------------------------------------------------------------------

    def _insert_key(self, key_id: str, role: str, label: str, digest: str, created: str) -> None:
        with self._transaction():
            self._conn.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, role, label, digest, created),
            )

    def _revoke_key(self, key_id: str, when: str) -> bool:
        with self._transaction():
            self._conn.execute(
                "UPDATE keys SET revoked = ? WHERE key_id = ? AND revoked IS NULL", (when, key_id)
            )
            row = self._conn.execute("SELECT 1 FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        return row is not None

    def _key_row(self, key_id: str) -> tuple[str, str, str | None] | None:
        return self._conn.execute(
            "SELECT role, key_sha256, revoked FROM keys WHERE key_id = ?", (key_id,)
        ).fetchone()

    def _list_keys(self) -> list[KeyInfo]:
        rows = self._conn.execute(
            "SELECT key_id, role, label, created, revoked FROM keys ORDER BY created, key_id"
        )
        return [KeyInfo(*r) for r in rows]
