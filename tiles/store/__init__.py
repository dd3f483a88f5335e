"""Versioned tile store: content-addressed blobs, one manifest per version, changes, access keys.

One interface, two backends chosen by the store URL (:func:`open_store`):

- ``sqlite:///PATH`` -- a single SQLite file (the default, zero configuration; the file is created
  on first use, its folder must exist). ``sqlite:///store.db`` is relative to the working folder,
  ``sqlite:////srv/maps/store.db`` is absolute, ``sqlite:///:memory:`` lives in memory.
- ``postgresql://USER@HOST:PORT/DB`` -- PostgreSQL with PostGIS, for several service processes and
  large maps. Tables live in the schema ``xsmap`` (``?schema=NAME`` picks another one).

What is stored:

- **blobs**: tile bytes (gzip) keyed by their lowercase hex SHA-256; written once, never changed.
  :meth:`Store.put_blobs` verifies every hash and skips blobs already stored, so publishing
  identical content writes nothing new.
- **versions**: 1, 2, 3...; each has a manifest (tile ID -> blob hash), the change records published
  with it, the hash of its *source* blob (the whole map before confidentiality processing), the
  tile level and free metadata. A version is created by :meth:`Store.publish` in one transaction:
  it is visible only once complete; a crash at any point leaves the previous version serving and
  nothing of the new one visible. Versions are immutable.
- **keys**: ``xsk_<key_id>_<secret>``; the store keeps only the SHA-256 of the key text, compared in
  constant time. Roles ``reader`` and ``publisher`` (a publisher may also read).

Tile bounding boxes are WGS84 lon/lat degrees (:func:`tiles.tileid.tile_bounds`). A box query
(:meth:`Store.tiles_in_bbox`) selects the tiles of a version that
:func:`tiles.tileid.tiles_in_bbox` gives for the box: tiles are half-open (west and south edges
inclusive), so a tile that only touches the box's west or south edge from outside, or whose west or
south edge lies on the box's east or north edge, does not count; a box of zero width or height
selects the tiles holding it.

Thread safety: every method of a :class:`Store` holds the store's lock, so one store can be shared
by the threads of a process (the HTTP service does). Each process opens its own store.

Fault injection (tests only): with ``HDMAP_STORE_FAULT=<point>`` in the environment, the publishing
process kills itself with SIGKILL at that point of :meth:`Store.publish`: ``after_blobs`` (blobs are
stored and checked, the version number allocated and its row written, uncommitted), ``mid_manifest``
(half the manifest rows written), ``before_commit`` (everything written, not committed) or
``after_commit`` (committed: the version is visible).

>>> with open_store("sqlite:///:memory:") as store:
...     store.latest_version(), store.versions(), store.missing_blobs([])
(None, [], set())
>>> import hashlib
>>> data = b"tile bytes"
>>> h = hashlib.sha256(data).hexdigest()
>>> with open_store("sqlite:///:memory:") as store:
...     store.put_blobs({h: data}), store.put_blobs({h: data})
...     v = store.publish(manifest={}, changes=[], source=h, level=13, metadata={"name": "empty"})
...     v, store.manifest(v), store.version_info(v).metadata
(1, 0)
(1, {}, {'name': 'empty'})
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import numbers
import os
import re
import secrets
import signal
import threading
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import NotFoundError, StoreError, TileError

__all__ = [
    "DEFAULT_STORE_URL",
    "FAULT_ENV",
    "FAULT_POINTS",
    "KEY_PREFIX",
    "ROLES",
    "SCHEMA_VERSION",
    "KeyInfo",
    "Store",
    "VersionInfo",
    "default_store_url",
    "open_store",
    "redact_url",
    "role_grants",
]

SCHEMA_VERSION = 1
DEFAULT_STORE_URL = "sqlite:///hdmap-store.db"  # hdmap-store.db in the working folder
STORE_ENV = "HDMAP_STORE"
ROLES = ("reader", "publisher")
KEY_PREFIX = "xsk_"
FAULT_ENV = "HDMAP_STORE_FAULT"
FAULT_POINTS = ("after_blobs", "mid_manifest", "before_commit", "after_commit")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"xsk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})")
_KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One published version: number, UTC creation time (ISO 8601), tile level and counts.

    ``source`` is the hash of the version's source blob (the whole map before confidentiality
    processing; never served).
    """

    version: int
    created: str
    level: int
    tile_count: int
    change_count: int
    source: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An access key as listed: public ``key_id``, role, label, UTC times (``revoked`` or None)."""

    key_id: str
    role: str
    label: str
    created: str
    revoked: str | None


def default_store_url() -> str:
    """The store URL when none is given: env ``HDMAP_STORE``, else ``sqlite:///hdmap-store.db``.

    >>> import os
    >>> default_store_url() == os.environ.get("HDMAP_STORE", DEFAULT_STORE_URL)
    True
    """
    return os.environ.get(STORE_ENV) or DEFAULT_STORE_URL


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs).

    >>> redact_url("postgresql://maps:s3cret@db:5432/hd")
    'postgresql://maps:***@db:5432/hd'
    >>> redact_url("sqlite:///store.db")
    'sqlite:///store.db'
    """
    return re.sub(r"^([a-z]+://[^:@/]*):[^@/]*@", r"\1:***@", url)


def role_grants(role: str | None, needed: str) -> bool:
    """Whether a key of ``role`` may do what ``needed`` requires (a publisher may also read).

    >>> role_grants("publisher", "reader"), role_grants("reader", "publisher")
    (True, False)
    >>> role_grants(None, "reader")
    False
    """
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def open_store(url: str) -> Store:
    """Open (and on first use create) the store at ``url``; StoreError on a bad or unreachable URL.

    >>> open_store("sqlite:///:memory:").latest_version() is None
    True
    >>> open_store("ftp://example.org/store")
    Traceback (most recent call last):
    ...
    pipeline.errors.StoreError: ftp://example.org/store: unsupported store URL: expected \
sqlite:///PATH or postgresql://USER@HOST:PORT/DB
    """
    if not isinstance(url, str):
        raise StoreError(f"store URL must be a string, not {type(url).__name__}")
    if url.startswith("sqlite:///"):
        from tiles.store.sqlite import SQLiteStore

        path = url[len("sqlite:///") :]
        if not path:
            raise StoreError("no file path after sqlite:///", path=url)
        return SQLiteStore(path, url=url)
    if url.startswith(("postgresql://", "postgres://")):
        from tiles.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(
        "unsupported store URL: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        path=redact_url(url),
    )


def _fault(point: str) -> None:
    """Tests only: SIGKILL this process at ``point`` when ``HDMAP_STORE_FAULT`` names it."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z``."""
    return iso_utc(datetime.now(UTC))


def iso_utc(moment: datetime) -> str:
    """``moment`` (aware) as UTC ISO 8601 with milliseconds and a ``Z``.

    >>> from datetime import timedelta, timezone
    >>> iso_utc(datetime(2026, 11, 25, 16, 0, tzinfo=timezone(timedelta(hours=8))))
    '2026-11-25T08:00:00.000Z'
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_digest(key: str) -> str:
    """Hex SHA-256 of a key's text: what the store keeps instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _json_text(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from exc


def _check_hash(h: Any, what: str) -> str:
    if not isinstance(h, str) or not _HEX64.fullmatch(h):
        raise StoreError(f"{what} {h!r} is not a lowercase hex SHA-256")
    return h


def _check_box(west: float, south: float, east: float, north: float) -> tuple[float, ...]:
    """The box as floats, its west and south moved just inside +180 / +90 degrees (where the
    tile grid puts points on those edges); TileError on a malformed box."""
    for v in (west, south, east, north):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TileError(f"bounding box values must be numbers, not {v!r}")
    box = tuple(float(v) for v in (west, south, east, north))
    w, s, e, n = box
    if not all(math.isfinite(v) for v in box):
        raise TileError(f"bounding box {box} has a value that is not finite")
    if not (-180.0 <= w <= e <= 180.0 and -90.0 <= s <= n <= 90.0):
        raise TileError(
            f"bounding box {box} is not west <= east in [-180, 180], south <= north in [-90, 90]"
        )
    return min(w, math.nextafter(180.0, 0.0)), min(s, math.nextafter(90.0, 0.0)), e, n


class Store(ABC):
    """A versioned tile store (abstract); see the module docstring. Use :func:`open_store`.

    A store is a context manager; :meth:`close` releases its connection.
    """

    url: str

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; further calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed", path=redact_url(self.url))
            with self._db_errors():
                self._reconnect_if_lost()
                yield

    def _reconnect_if_lost(self) -> None:
        """Backends with a server reconnect here when the connection was lost (lock held)."""
        return None

    # ---- blobs -------------------------------------------------------------------------------

    def missing_blobs(self, hashes: Iterable[str]) -> set[str]:
        """The hashes among ``hashes`` that are not stored (malformed hashes count as missing)."""
        wanted = set(hashes)
        valid = [h for h in wanted if isinstance(h, str) and _HEX64.fullmatch(h)]
        with self._locked():
            stored = self._stored(valid)
        return wanted - stored

    def put_blobs(self, blobs: Mapping[str, bytes]) -> int:
        """Store ``blobs`` (hash -> bytes); return how many were new. StoreError on a wrong hash.

        Every hash is verified before anything is written; blobs already stored are skipped.
        """
        items: list[tuple[str, bytes]] = []
        for h, data in blobs.items():
            _check_hash(h, "blob hash")
            if not isinstance(data, bytes | bytearray | memoryview):
                raise StoreError(f"blob {h}: bytes expected, not {type(data).__name__}")
            data = bytes(data)
            if hashlib.sha256(data).hexdigest() != h:
                raise StoreError(f"blob {h}: the bytes do not hash to it (SHA-256 mismatch)")
            items.append((h, data))
        if not items:
            return 0
        with self._locked():
            return self._insert_blobs(items)

    def blob(self, sha256: str) -> bytes:
        """The bytes of a stored blob; NotFoundError when absent."""
        data = None
        if isinstance(sha256, str) and _HEX64.fullmatch(sha256):
            with self._locked():
                data = self._blob(sha256)
        if data is None:
            raise NotFoundError(f"no blob {sha256!r} in the store", path=redact_url(self.url))
        return data

    # ---- versions ----------------------------------------------------------------------------

    def publish(
        self,
        *,
        manifest: Mapping[int, str],
        changes: Sequence[Mapping[str, Any]],
        source: str,
        level: int,
        metadata: Mapping[str, Any],
    ) -> int:
        """Create the next version atomically and return its number.

        ``manifest`` maps packed tile IDs (all at ``level``) to stored blob hashes, ``changes``
        are JSON-safe change records, ``source`` is the stored hash of the whole map before
        confidentiality processing. StoreError when a hash is not a stored blob, a tile ID is
        not at ``level`` or a value is not JSON-safe; nothing is then written.
        """
        from tiles.tileid import tile_bounds, tile_level

        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 15:
            raise StoreError(f"tile level {level!r} is not an integer 0-15")
        _check_hash(source, "source hash")
        rows: list[tuple[int, str]] = []
        bounds: list[tuple[int, float, float, float, float]] = []
        for tile_id, h in manifest.items():
            _check_hash(h, f"hash of tile {tile_id}")
            try:
                if isinstance(tile_id, bool) or not isinstance(tile_id, numbers.Integral):
                    raise TileError(f"a tile ID is an integer, not {type(tile_id).__name__}")
                tile_at = tile_level(int(tile_id))
                box = tile_bounds(int(tile_id))
            except TileError as exc:
                raise StoreError(f"manifest tile ID {tile_id!r} is not valid: {exc}") from exc
            if tile_at != level:
                raise StoreError(f"tile {tile_id} is at level {tile_at}, the version at {level}")
            rows.append((int(tile_id), h))
            bounds.append((int(tile_id), *box))
        rows.sort()
        bounds.sort()
        for record in changes:
            if not isinstance(record, Mapping):
                raise StoreError(f"a change record is a mapping, not {type(record).__name__}")
        if not isinstance(metadata, Mapping):
            raise StoreError(f"metadata is a mapping, not {type(metadata).__name__}")
        records = [_json_text(dict(r), "change record") for r in changes]
        meta = _json_text(dict(metadata), "metadata")
        needed = {source, *(h for _, h in rows)}
        with self._locked(), self._publish_transaction():
            missing = needed - self._stored(sorted(needed))
            if missing:
                some = ", ".join(sorted(missing)[:3])
                raise StoreError(f"{len(missing)} hashes are not stored blobs (e.g. {some})")
            version = self._next_version()
            self._insert_version(version, level, len(rows), len(records), source, meta)
            _fault("after_blobs")
            self._insert_tiles(bounds)
            half = len(rows) // 2
            self._insert_manifest(version, rows[:half])
            _fault("mid_manifest")
            self._insert_manifest(version, rows[half:])
            self._insert_changes(version, records)
            _fault("before_commit")
        _fault("after_commit")
        return version

    def versions(self) -> list[VersionInfo]:
        """Every published version, oldest first (empty for a new store)."""
        with self._locked():
            return self._versions(None)

    def latest_version(self) -> int | None:
        """The newest published version, None when nothing is published."""
        with self._locked():
            return self._latest()

    def version_info(self, version: int) -> VersionInfo:
        """The facts of one version; NotFoundError when it does not exist."""
        with self._locked():
            return self._require(version)

    def manifest(self, version: int) -> dict[int, str]:
        """Tile ID -> blob hash of ``version``, in tile-ID order; NotFoundError when absent."""
        with self._locked():
            return self._manifest(self._require(version).version)

    def changes(self, version: int) -> list[dict[str, Any]]:
        """The change records published with ``version``, in published order; NotFoundError."""
        with self._locked():
            return self._changes(self._require(version).version)

    def tiles_in_bbox(
        self, version: int, west: float, south: float, east: float, north: float
    ) -> list[int]:
        """Tile IDs of ``version`` in the WGS84 box (degrees), ascending; TileError on a bad box.

        The tiles are those :func:`tiles.tileid.tiles_in_bbox` gives at the version's level that
        the version holds (tiles are half-open; a box of zero width or height selects the tiles
        holding it). NotFoundError when the version does not exist.
        """
        box = _check_box(west, south, east, north)
        with self._locked():
            return self._tiles_in_bbox(self._require(version).version, *box)

    def _require(self, version: Any) -> VersionInfo:
        """The info of ``version`` (lock held); NotFoundError when absent or not a version."""
        found = []
        if not isinstance(version, bool) and isinstance(version, int) and version >= 1:
            found = self._versions(int(version))
        if not found:
            raise NotFoundError(f"no version {version!r} in the store", path=redact_url(self.url))
        return found[0]

    # ---- keys --------------------------------------------------------------------------------

    def create_key(self, role: str, label: str = "") -> str:
        """Issue a key of ``role`` ("reader" or "publisher"); return its text (shown only once).

        The store keeps the key's SHA-256, never the key.
        """
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(8)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self._locked():
            self._insert_key(key_id, role, str(label), key_digest(key), utc_now())
        return key

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key by its public ID; NotFoundError when no key has it.

        Revoking twice is harmless (the first time is kept).
        """
        if isinstance(key_id, str) and key_id.startswith(KEY_PREFIX):
            match = _KEY.fullmatch(key_id)  # the whole key text given: take its ID
            key_id = match.group(1) if match else key_id
        found = False
        if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id):
            with self._locked():
                found = self._revoke_key(key_id, utc_now())
        if not found:
            raise NotFoundError(f"no key with ID {key_id!r}", path=redact_url(self.url))

    def key_role(self, secret: str) -> str | None:
        """The role of a valid key text, None when it is malformed, unknown, revoked or wrong."""
        match = _KEY.fullmatch(secret) if isinstance(secret, str) else None
        if not match:
            return None
        with self._locked():
            row = self._key_row(match.group(1))
        if row is None:
            return None
        role, digest, revoked = row
        if not hmac.compare_digest(digest, key_digest(secret)) or revoked is not None:
            return None
        return role

    def list_keys(self) -> list[KeyInfo]:
        """Every key ever issued (revoked ones too), oldest first; never the secrets."""
        with self._locked():
            return self._list_keys()

    # ---- backend primitives (called with the lock held) ----------------------------------------

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _db_errors(self) -> contextlib.AbstractContextManager[None]:
        """Turn the driver's operational errors into StoreError."""

    @abstractmethod
    def _stored(self, hashes: Sequence[str]) -> set[str]: ...

    @abstractmethod
    def _insert_blobs(self, items: Sequence[tuple[str, bytes]]) -> int: ...

    @abstractmethod
    def _blob(self, sha256: str) -> bytes | None: ...

    @abstractmethod
    def _publish_transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction that excludes other publishers; rolled back on any exception."""

    @abstractmethod
    def _next_version(self) -> int: ...

    @abstractmethod
    def _insert_version(
        self, version: int, level: int, tiles: int, changes: int, source: str, metadata: str
    ) -> None: ...

    @abstractmethod
    def _insert_tiles(self, bounds: Sequence[tuple[int, float, float, float, float]]) -> None: ...

    @abstractmethod
    def _insert_manifest(self, version: int, rows: Sequence[tuple[int, str]]) -> None: ...

    @abstractmethod
    def _insert_changes(self, version: int, records: Sequence[str]) -> None: ...

    @abstractmethod
    def _versions(self, version: int | None) -> list[VersionInfo]: ...

    @abstractmethod
    def _latest(self) -> int | None: ...

    @abstractmethod
    def _manifest(self, version: int) -> dict[int, str]: ...

    @abstractmethod
    def _changes(self, version: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _tiles_in_bbox(
        self, version: int, west: float, south: float, east: float, north: float
    ) -> list[int]: ...

    @abstractmethod
    def _insert_key(
        self, key_id: str, role: str, label: str, digest: str, created: str
    ) -> None: ...

    @abstractmethod
    def _revoke_key(self, key_id: str, when: str) -> bool: ...

    @abstractmethod
    def _key_row(self, key_id: str) -> tuple[str, str, str | None] | None: ...

    @abstractmethod
    def _list_keys(self) -> list[KeyInfo]: ...


def bbox_predicate(west: float, south: float, east: float, north: float, *, table: str = "") -> str:
    """SQL comparisons on columns west/south/east/north selecting the (half-open) tiles in a box.

    The box's values are the parameters ``w``, ``s``, ``e``, ``n`` (written ``{w}`` here; the
    backend formats them in its parameter style); ``table`` qualifies the columns. The selection
    is that of :func:`tiles.tileid.tiles_in_bbox`.

    >>> bbox_predicate(0, 0, 1, 1)
    'west < {e} AND east > {w} AND south < {n} AND north > {s}'
    >>> bbox_predicate(0, 0, 0, 1, table="t")
    't.west <= {e} AND t.east > {w} AND t.south < {n} AND t.north > {s}'
    """
    q = f"{table}." if table else ""
    lt_x = "<" if west < east else "<="
    lt_y = "<" if south < north else "<="
    return (
        f"{q}west {lt_x} {{e}} AND {q}east > {{w}} AND {q}south {lt_y} {{n}} AND {q}north > {{s}}"
    )


def parse_postgres_url(url: str) -> tuple[str, str]:
    """Split a PostgreSQL store URL into (libpq URL without ``schema``, schema name).

    >>> parse_postgres_url("postgresql://postgres@127.0.0.1:5432/maps")
    ('postgresql://postgres@127.0.0.1:5432/maps', 'xsmap')
    >>> parse_postgres_url("postgresql://u@h:5432/maps?schema=t1&sslmode=disable")
    ('postgresql://u@h:5432/maps?sslmode=disable', 't1')
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema = "xsmap"
    rest = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            rest.append((name, value))
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise StoreError(
            f"schema name {schema!r} must be lowercase letters, digits, '_'",
            path=redact_url(url),
        )
    conninfo = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(rest)))
    return conninfo, schema
