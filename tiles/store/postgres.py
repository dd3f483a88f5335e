"""The PostgreSQL/PostGIS backend of the tile store: several service processes, large maps.

Tables live in one schema (``xsmap`` unless the URL says ``?schema=NAME``). Each distinct tile has
its bounding box as a PostGIS ``geometry(Polygon, 4326)`` with a GiST index, which
:meth:`~tiles.store.Store.tiles_in_bbox` uses. A publish is one transaction that first takes
``LOCK TABLE versions IN EXCLUSIVE MODE`` (readers go on; concurrent publishers wait) and then
allocates the next version number, so version numbers are gap-free and a killed publisher's
transaction is rolled back by the server. The PostGIS extension is created on first use when it is
installed on the server (Debian: ``postgresql-15-postgis-3``) and the user may create it.

Connections use libpq URLs (``postgresql://USER[:PASSWORD]@HOST:PORT/DB``; a password may also come
from ``~/.pgpass`` or ``PGPASSWORD``). One connection per store, in autocommit mode outside the
publishing and key transactions; when the connection is lost (a server restart), the call that
meets it fails with StoreError and the next call reconnects.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.errors import StoreError
from tiles.store import (
    SCHEMA_VERSION,
    KeyInfo,
    Store,
    VersionInfo,
    bbox_predicate,
    iso_utc,
    parse_postgres_url,
    redact_url,
)

__all__ = ["CONNECT_TIMEOUT_S", "PostgresStore"]

CONNECT_TIMEOUT_S = 5
_INIT_LOCK = "hdmap-store-init"

_SCHEMA = """
CREATE TABLE {s}.schema_info (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {s}.blobs (
    sha256 text PRIMARY KEY,
    size integer NOT NULL,
    data bytea NOT NULL
);
CREATE TABLE {s}.versions (
    version integer PRIMARY KEY,
    created timestamptz NOT NULL DEFAULT now(),
    level smallint NOT NULL,
    tile_count integer NOT NULL,
    change_count integer NOT NULL,
    source text NOT NULL REFERENCES {s}.blobs (sha256),
    metadata jsonb NOT NULL
);
CREATE TABLE {s}.tiles (
    tile_id bigint PRIMARY KEY,
    west double precision NOT NULL,
    south double precision NOT NULL,
    east double precision NOT NULL,
    north double precision NOT NULL,
    bbox geometry(Polygon, 4326) NOT NULL
);
CREATE INDEX tiles_bbox_gist ON {s}.tiles USING gist (bbox);
CREATE TABLE {s}.manifest (
    version integer NOT NULL REFERENCES {s}.versions (version),
    tile_id bigint NOT NULL REFERENCES {s}.tiles (tile_id),
    sha256 text NOT NULL REFERENCES {s}.blobs (sha256),
    PRIMARY KEY (version, tile_id)
);
CREATE TABLE {s}.changes (
    version integer NOT NULL REFERENCES {s}.versions (version),
    seq integer NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (version, seq)
);
CREATE TABLE {s}.keys (
    key_id text PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('reader', 'publisher')),
    label text NOT NULL,
    key_sha256 text NOT NULL,
    created timestamptz NOT NULL,
    revoked timestamptz
)
"""


class PostgresStore(Store):
    """A store in a PostgreSQL database with PostGIS; see :mod:`tiles.store`."""

    def __init__(self, url: str):
        super().__init__(url)
        self._conninfo, self.schema = parse_postgres_url(url)
        self._where = redact_url(url)
        self._conn = self._connect()
        try:
            with self._db_errors():
                self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to PostgreSQL: {first}", path=self._where) from exc

    def _reconnect_if_lost(self) -> None:
        # a call that meets a dropped connection fails with StoreError; the next one reconnects
        if self._conn.closed:
            self._conn = self._connect()

    def _init_schema(self) -> None:
        import psycopg

        c, s = self._conn, self.schema
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_INIT_LOCK,))
            if c.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone() is None:
                try:
                    with c.transaction():
                        c.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except psycopg.Error as exc:
                    raise StoreError(
                        "PostGIS is not available in this database ("
                        + str(exc).strip().splitlines()[0]
                        + "); install it on the server (Debian: postgresql-15-postgis-3) or run "
                        "CREATE EXTENSION postgis as a superuser",
                        path=self._where,
                    ) from exc
            tables = {
                r[0]
                for r in c.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (s,),
                )
            }
            if not tables:
                c.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
                for statement in _SCHEMA.format(s=s).split(";"):
                    c.execute(statement)
                c.execute(
                    f"INSERT INTO {s}.schema_info VALUES ('schema_version', %s)",
                    (str(SCHEMA_VERSION),),
                )
                return
            if "schema_info" not in tables:
                raise StoreError(
                    f"schema {s} is not an HD-map store (no schema_info table)", path=self._where
                )
        row = c.execute(
            f"SELECT value FROM {s}.schema_info WHERE name = 'schema_version'"
        ).fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = None if row is None else row[0]
            raise StoreError(
                f"store schema version {found} is not the supported {SCHEMA_VERSION}",
                path=self._where,
            )

    def _close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _db_errors(self) -> Iterator[None]:
        import psycopg
        from psycopg import errors

        try:
            yield
        except (
            psycopg.OperationalError,
            psycopg.InterfaceError,
            psycopg.IntegrityError,
            errors.UndefinedTable,
            errors.InvalidSchemaName,
            errors.InsufficientPrivilege,
        ) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"PostgreSQL: {first}", path=self._where) from exc

    # ---- blobs ---------------------------------------------------------------------------------

    def _stored(self, hashes: Sequence[str]) -> set[str]:
        if not hashes:
            return set()
        rows = self._conn.execute(
            f"SELECT sha256 FROM {self.schema}.blobs WHERE sha256 = ANY(%s)", (list(hashes),)
        )
        return {r[0] for r in rows}

    def _insert_blobs(self, items: Sequence[tuple[str, bytes]]) -> int:
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.schema}.blobs (sha256, size, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (sha256) DO NOTHING",
                [(h, len(d), d) for h, d in items],
            )
            return max(cur.rowcount, 0)

    def _blob(self, sha256: str) -> bytes | None:
        row = self._conn.execute(
            f"SELECT data FROM {self.schema}.blobs WHERE sha256 = %s", (sha256,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    # ---- publishing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _publish_transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            self._conn.execute(f"LOCK TABLE {self.schema}.versions IN EXCLUSIVE MODE")
            yield

    def _next_version(self) -> int:
        sql = f"SELECT COALESCE(MAX(version), 0) + 1 FROM {self.schema}.versions"
        return self._conn.execute(sql).fetchone()[0]

    def _insert_version(
        self, version: int, level: int, tiles: int, changes: int, source: str, metadata: str
    ) -> None:
        self._conn.execute(
            f"INSERT INTO {self.schema}.versions "
            "(version, level, tile_count, change_count, source, metadata) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            (version, level, tiles, changes, source, metadata),
        )

    def _insert_tiles(self, bounds: Sequence[tuple[int, float, float, float, float]]) -> None:
        if not bounds:
            return
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.schema}.tiles (tile_id, west, south, east, north, bbox) "
                "VALUES (%(t)s, %(w)s, %(s)s, %(e)s, %(n)s, "
                "ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)) "
                "ON CONFLICT (tile_id) DO NOTHING",
                [{"t": t, "w": w, "s": s, "e": e, "n": n} for t, w, s, e, n in bounds],
            )

    def _insert_manifest(self, version: int, rows: Sequence[tuple[int, str]]) -> None:
        if not rows:
            return
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.schema}.manifest (version, tile_id, sha256) "
                "VALUES (%s, %s, %s)",
                [(version, t, h) for t, h in rows],
            )

    def _insert_changes(self, version: int, records: Sequence[str]) -> None:
        if not records:
            return
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.schema}.changes (version, seq, record) "
                "VALUES (%s, %s, %s::jsonb)",
                [(version, i, r) for i, r in enumerate(records)],
            )

    # ---- reading -------------------------------------------------------------------------------

    def _versions(self, version: int | None) -> list[VersionInfo]:
        sql = (
            "SELECT version, created, level, tile_count, change_count, source, metadata "
            f"FROM {self.schema}.versions"
        )
        rows = (
            self._conn.execute(sql + " ORDER BY version")
            if version is None
            else self._conn.execute(sql + " WHERE version = %s", (version,))
        )
        return [VersionInfo(v, iso_utc(c), lv, t, n, s, dict(m)) for v, c, lv, t, n, s, m in rows]

    def _latest(self) -> int | None:
        return self._conn.execute(f"SELECT MAX(version) FROM {self.schema}.versions").fetchone()[0]

    def _manifest(self, version: int) -> dict[int, str]:
        rows = self._conn.execute(
            f"SELECT tile_id, sha256 FROM {self.schema}.manifest WHERE version = %s "
            "ORDER BY tile_id",
            (version,),
        )
        return {int(t): h for t, h in rows}

    def _changes(self, version: int) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            f"SELECT record::text FROM {self.schema}.changes WHERE version = %s ORDER BY seq",
            (version,),
        )
        return [json.loads(r[0]) for r in rows]

    def _tiles_in_bbox(
        self, version: int, west: float, south: float, east: float, north: float
    ) -> list[int]:
        where = bbox_predicate(west, south, east, north, table="t").format(
            w="%(w)s", s="%(s)s", e="%(e)s", n="%(n)s"
        )
        rows = self._conn.execute(
            f"SELECT m.tile_id FROM {self.schema}.tiles t "
            f"JOIN {self.schema}.manifest m ON m.tile_id = t.tile_id AND m.version = %(v)s "
            "WHERE t.bbox && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326) "
            f"AND {where} ORDER BY m.tile_id",
            {"v": version, "w": west, "s": south, "e": east, "n": north},
        )
        return [int(r[0]) for r in rows]

    # ---- keys ----------------------------------------------------------------------------------

    def _insert_key(self, key_id: str, role: str, label: str, digest: str, created: str) -> None:
        self._conn.execute(
            f"INSERT INTO {self.schema}.keys VALUES (%s, %s, %s, %s, %s::timestamptz, NULL)",
            (key_id, role, label, digest, created),
        )

    def _revoke_key(self, key_id: str, when: str) -> bool:
        with self._conn.transaction():
            self._conn.execute(
                f"UPDATE {self.schema}.keys SET revoked = %s::timestamptz "
                "WHERE key_id = %s AND revoked IS NULL",
                (when, key_id),
            )
            row = self._conn.execute(
                f"SELECT 1 FROM {self.schema}.keys WHERE key_id = %s", (key_id,)
            ).fetchone()
        return row is not None

    def _key_row(self, key_id: str) -> tuple[str, str, str | None] | None:
        row = self._conn.execute(
            f"SELECT role, key_sha256, revoked FROM {self.schema}.keys WHERE key_id = %s",
            (key_id,),
        ).fetchone()
        if row is None:
            return None
        role, digest, revoked = row
        return role, digest, None if revoked is None else iso_utc(revoked)

    def _list_keys(self) -> list[KeyInfo]:
        rows = self._conn.execute(
            f"SELECT key_id, role, label, created, revoked FROM {self.schema}.keys "
            "ORDER BY created, key_id"
        )
        return [
            KeyInfo(k, r, lb, iso_utc(c), None if rv is None else iso_utc(rv))
            for k, r, lb, c, rv in rows
        ]
