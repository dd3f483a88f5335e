"""The dynamic map service: a plain ASGI application over a tile store (``hdmap serve``).

Routes (all JSON unless noted; described in :func:`tiles.openapi.openapi_document`)::

    GET  /healthz, /openapi.json                           public
    GET  /v1/versions                                      reader
    POST /v1/versions            (local-standard map)      publisher
    GET  /v1/versions/{v}                                  reader   v: 1, 2, ... or latest
    GET  /v1/versions/{v}/manifest                         reader
    GET  /v1/versions/{v}/tiles/{tile_id}                  reader   gzip local-standard XML
    GET  /v1/versions/{v}/features?bbox=W,S,E,N            reader   GeoJSON (WGS84)
    GET  /v1/versions/{v}/opendrive?bbox=W,S,E,N           reader   OpenDRIVE 1.7 XML
    GET  /v1/changes?from=V1&to=V2                         reader

A key goes in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Without a key, or with an
unknown or revoked one, the answer is 401; with a reader key on a publisher route, 403. Key
lookups are cached for ``key_ttl_s`` seconds (2 s by default): a revoked key stops working within
that time. Errors are JSON ``{"error": "...", "status": N}``.

Tiles are served as stored (gzip) with ``Content-Encoding: gzip`` when the client accepts gzip,
decompressed otherwise; the strong ETag is the quoted SHA-256 of the gzip bytes (the manifest's
hash) and ``"<sha256>-identity"`` for the decompressed representation. Versioned URLs are
``immutable``; ``latest`` ones ``no-cache``. Manifests, tiles and change records never change
once published, so they are cached in process memory (a byte-bounded LRU); which version is
``latest`` is cached for ``latest_ttl_s`` (1 s) and forgotten at once after a publish here.

Store calls run in a small thread pool (the store is thread-safe and serialises them); the event
loop itself only serves cached bytes, so a tile hit never waits for the database.

>>> import asyncio
>>> app = create_app("sqlite:///:memory:")  # an empty store
>>> sent = []
>>> async def send(message):
...     sent.append(message)
>>> def scope(path):
...     return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
...             "query_string": b"", "headers": []}
>>> asyncio.run(app(scope("/healthz"), None, send))
>>> sent[0]["status"], sent[1]["body"]
(200, b'{"status":"ok","latest":null}')
>>> asyncio.run(app(scope("/v1/versions/1/tiles/545554681"), None, send))
>>> sent[2]["status"], sent[3]["body"]
(401, b'{"error":"an access key is required","status":401}')
>>> app.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pipeline.errors import FormatError, HDMapError, NotFoundError, StoreError, TileError
from tiles.openapi import TILE_MEDIA_TYPE, openapi_document
from tiles.tileid import DEFAULT_LEVEL, parse_tile_id, tile_bounds, tile_level, tiles_in_bbox

__all__ = [
    "ENV_LIMITS",
    "ENV_STORE",
    "TILE_MEDIA_TYPE",
    "Limits",
    "MapService",
    "app_from_env",
    "create_app",
    "parse_bbox",
    "parse_version",
]

#: Environment variables :func:`app_from_env` reads (``hdmap serve --workers N``).
ENV_STORE = "HDMAP_SERVICE_STORE"
ENV_LIMITS = "HDMAP_SERVICE_LIMITS"

IMMUTABLE = b"public, max-age=31536000, immutable"
NO_CACHE = b"no-cache"
_JSON = b"application/json"
_GEOJSON = b"application/geo+json"
_XML = b"application/xml"
_POST_TYPES = frozenset(
    {
        TILE_MEDIA_TYPE,
        "application/xml",
        "text/xml",
        "application/gzip",
        "application/x-gzip",
        "application/octet-stream",
    }
)
_MAX_VERSION_DIGITS = 12
_log = logging.getLogger("hdmap.service")
_MAX_KEYS = 10_000  # key-lookup cache entries (unknown keys are cached too)
_MAX_TILE_PATHS = 1 << 17  # remembered numbered tile paths


@dataclass(frozen=True, slots=True)
class Limits:
    """Service limits and cache sizes (keyword arguments of :func:`create_app`).

    >>> Limits(max_bbox_tiles=4).max_bbox_tiles
    4
    """

    max_body_bytes: int = 64 * 2**20  # POST body as sent (413 beyond, checked before reading)
    max_map_bytes: int = 512 * 2**20  # POST body after gunzip
    max_bbox_tiles: int = 16  # grid tiles a features/opendrive box may cover (413 beyond)
    max_change_versions: int = 1000  # versions one changes request may span (413 beyond)
    max_target_bytes: int = 4096  # path + query (414 beyond)
    cache_bytes: int = 256 * 2**20  # LRU of manifests, tiles, change records
    decoded_tiles: int = 64  # decoded tile models kept for features/opendrive
    key_ttl_s: float = 2.0  # how long a key lookup is trusted (revocation delay)
    latest_ttl_s: float = 1.0  # how long "latest" and the version list are trusted
    threads: int = 4  # store/CPU worker threads
    level: int = DEFAULT_LEVEL  # tile level of a first version published through POST

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"service limit {f.name} must be a number >= 0, not {value!r}")


class _HTTPError(Exception):
    """An error response; raised anywhere in a handler."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


class _ByteLRU:
    """A least-recently-used cache bounded by the total size of its values (bytes)."""

    __slots__ = ("_items", "capacity", "size")

    def __init__(self, capacity: int):
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.capacity = capacity
        self.size = 0

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        if size > self.capacity:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._items[key] = (value, size)
        self.size += size
        while self.size > self.capacity:
            _, (_, dropped) = self._items.popitem(last=False)
            self.size -= dropped


class _Tile:
    """One blob ready to send: its gzip bytes, lazily its identity bytes, prebuilt headers."""

    __slots__ = ("data", "etag", "etag_identity", "headers", "identity", "sha256")

    def __init__(self, sha256: str, data: bytes):
        self.sha256 = sha256
        self.data = data
        self.etag = f'"{sha256}"'.encode()
        self.etag_identity = f'"{sha256}-identity"'.encode()
        self.identity: bytes | None = None
        self.headers: dict[tuple[bool, bool], list[tuple[bytes, bytes]]] = {}

    def header_list(self, gzip: bool, immutable: bool) -> list[tuple[bytes, bytes]]:
        key = (gzip, immutable)
        headers = self.headers.get(key)
        if headers is None:
            body = self.data if gzip else self.identity
            headers = [
                (b"content-type", TILE_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"etag", self.etag if gzip else self.etag_identity),
                (b"cache-control", IMMUTABLE if immutable else NO_CACHE),
                (b"vary", b"accept-encoding"),
            ]
            if gzip:
                headers.insert(1, (b"content-encoding", b"gzip"))
            self.headers[key] = headers
        return headers


@dataclass(frozen=True, slots=True)
class _Version:
    """A published version as the service keeps it in memory."""

    version: int
    info: dict[str, Any]
    manifest: dict[int, str]
    level: int


def parse_version(text: str) -> int | None:
    """The version number in ``text``, None for ``latest``; TileError for anything else.

    >>> parse_version("3"), parse_version("latest")
    (3, None)
    >>> parse_version("0")
    Traceback (most recent call last):
    ...
    pipeline.errors.TileError: '0' is not a version (a positive integer or 'latest')
    """
    if text == "latest":
        return None
    if (
        0 < len(text) <= _MAX_VERSION_DIGITS
        and text.isascii()
        and text.isdigit()
        and text[0] != "0"
    ):
        return int(text)
    shown = text if len(text) <= 40 else text[:40] + "..."
    raise TileError(f"{shown!r} is not a version (a positive integer or 'latest')")


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` WGS84 degrees from ``"W,S,E,N"``; TileError when malformed.

    >>> parse_bbox("120.36,31.59,120.37,31.6")
    (120.36, 31.59, 120.37, 31.6)
    >>> parse_bbox("1,2,nan,4")
    Traceback (most recent call last):
    ...
    pipeline.errors.TileError: bbox '1,2,nan,4': values must be finite numbers
    """
    shown = text if len(text) <= 80 else text[:80] + "..."
    parts = text.split(",")
    if len(parts) != 4 or len(text) > 200:
        raise TileError(f"bbox {shown!r}: expected four numbers west,south,east,north")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise TileError(f"bbox {shown!r}: values must be decimal numbers") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise TileError(f"bbox {shown!r}: values must be finite numbers")
    if not (-180.0 <= w <= 180.0 and -180.0 <= e <= 180.0 and -90 <= s <= 90 and -90 <= n <= 90):
        raise TileError(f"bbox {shown!r}: outside lon [-180, 180], lat [-90, 90] degrees")
    if w > e or s > n:
        raise TileError(f"bbox {shown!r}: west must not exceed east nor south north")
    return (w, s, e, n)


def create_app(store_url: str, **limits: Any) -> MapService:
    """The ASGI application serving the store at ``store_url`` (see :class:`Limits` for limits).

    The store is opened once here, so a bad URL fails at once with a StoreError.
    """
    return MapService(store_url, Limits(**limits))


def app_from_env() -> MapService:
    """:func:`create_app` from ``$HDMAP_SERVICE_STORE`` and ``$HDMAP_SERVICE_LIMITS`` (JSON).

    The factory uvicorn calls in each worker process of ``hdmap serve --workers N``.
    """
    url = os.environ.get(ENV_STORE)
    if not url:
        raise StoreError(f"${ENV_STORE} is not set")
    return create_app(url, **json.loads(os.environ.get(ENV_LIMITS) or "{}"))


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _info_dict(info: Any) -> dict[str, Any]:
    d = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
    d.pop("source", None)  # the private pre-confidentiality map is never served
    return d


def _error_body(status: int, message: str) -> bytes:
    return _json_bytes({"error": message, "status": status})


def _accepts_gzip(value: bytes) -> bool:
    """Whether an Accept-Encoding value admits gzip (``gzip;q=0`` refuses it)."""
    if value == b"gzip" or value == b"gzip, deflate" or value == b"gzip, deflate, br":
        return True
    star = None
    for item in value.lower().split(b","):
        name, _, params = item.partition(b";")
        name = name.strip()
        q = 1.0
        params = params.replace(b" ", b"")
        if params.startswith(b"q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if name in (b"gzip", b"x-gzip"):
            return q > 0
        if name == b"*":
            star = q > 0
    return bool(star)


def _etag_matches(header: bytes, etag: bytes) -> bool:
    """If-None-Match comparison (weak, RFC 9110 13.1.2): any listed tag or ``*``."""
    if header == etag:
        return True
    for tag in header.split(b","):
        tag = tag.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


class MapService:
    """The ASGI application; build it with :func:`create_app`."""

    def __init__(self, store_url: str, limits: Limits):
        from tiles.store import open_store

        self.store_url = store_url
        self.limits = limits
        self.store = open_store(store_url)  # thread-safe: shared by the worker threads
        self._pool = ThreadPoolExecutor(max(1, int(limits.threads)), "hdmap-store")
        self._publish_pool = ThreadPoolExecutor(1, "hdmap-publish")
        self._publish_lock: asyncio.Lock | None = None
        self._cache = _ByteLRU(int(limits.cache_bytes))
        self._versions: dict[int, _Version] = {}  # also in the LRU; this is the hot index
        self._keys: dict[bytes, tuple[str | None, float]] = {}  # key -> (role, valid until)
        self._tile_paths: dict[str, str] = {}  # numbered tile URL path -> content hash
        self._latest: tuple[int | None, float] = (None, -math.inf)
        self._version_list: tuple[bytes, float] | None = None
        self._decoded: OrderedDict[str, Any] = OrderedDict()
        self._decoded_lock = threading.Lock()
        self._openapi = _json_bytes(openapi_document())

    # ------------------------------------------------------------------ store access (threads)

    async def _call(self, method: str, *args: Any) -> Any:
        """``store.method(*args)`` on a worker thread; store errors become HTTP errors."""

        def work() -> Any:
            return getattr(self.store, method)(*args)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        except NotFoundError as exc:
            raise _HTTPError(404, str(exc)) from None
        except StoreError as exc:
            raise _HTTPError(503, f"store unavailable: {exc}") from None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Stop the worker threads and close the store."""
        self._pool.shutdown(wait=True)
        self._publish_pool.shutdown(wait=True)
        with contextlib.suppress(HDMapError, OSError):
            self.store.close()

    # --------------------------------------------------------------------------- ASGI entry

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except _HTTPError as exc:
                await self._send_error(scope, send, exc)
            except Exception:  # a bug: log it, answer 500 if the response has not started
                _log.exception("%s %s failed", scope["method"], scope["path"])
                with contextlib.suppress(Exception):
                    await self._send_error(scope, send, _HTTPError(500, "internal error"))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _send_error(self, scope: dict, send: Callable, exc: _HTTPError) -> None:
        body = _error_body(exc.status, exc.message)
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *exc.headers,
        ]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _send(
        self,
        scope: dict,
        send: Callable,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _send_json(
        self,
        scope: dict,
        send: Callable,
        body: bytes,
        *,
        status: int = 200,
        cache: bytes = NO_CACHE,
        media: bytes = _JSON,
        etag: bytes | None = None,
        extra: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        headers = [
            (b"content-type", media),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", cache),
            *extra,
        ]
        if etag is not None:
            headers.append((b"etag", etag))
            inm = _header(scope, b"if-none-match")
            if inm is not None and _etag_matches(inm, etag):
                await self._send(scope, send, 304, b"", headers[2:])
                return
        await self._send(scope, send, status, body, headers)

    # ------------------------------------------------------------------------------ routing

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        method = scope["method"]
        path = scope["path"]
        if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > (
            self.limits.max_target_bytes
        ):
            raise _HTTPError(414, "request target too long")
        # the hot path first: GET /v1/versions/{v}/tiles/{tile_id}
        if path.startswith("/v1/versions/") and (method == "GET" or method == "HEAD"):
            sha256 = self._tile_paths.get(path)
            if sha256 is not None:  # a numbered tile URL seen before: no parsing, no lookups
                await self._send_tile(scope, send, sha256, True)
                return
            parts = path[13:].split("/")
            if (
                len(parts) == 3
                and parts[1] == "tiles"
                and parts[0] not in _DOTS
                and parts[2] not in _DOTS
            ):
                await self._tile(scope, send, parts[0], parts[2])
                return
        route, params = _route(path)
        allowed = _METHODS[route]
        if method not in allowed:
            raise _HTTPError(
                405,
                f"method {method} not allowed on {path}",
                [(b"allow", ", ".join(sorted(allowed)).encode())],
            )
        if route == "health":
            await self._health(scope, send)
            return
        if route == "openapi":
            await self._send_json(scope, send, self._openapi)
            return
        if route == "versions" and method == "POST":
            await self._authorize(scope, "publisher")
            await self._publish(scope, receive, send)
            return
        await self._authorize(scope, "reader")
        handler = getattr(self, _HANDLERS[route])
        await handler(scope, send, *params)

    # --------------------------------------------------------------------------------- auth

    async def _authorize(self, scope: dict, role: str) -> None:
        key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                key = token.strip() if scheme.lower() == b"bearer" else None
            elif name == b"x-api-key":
                key = value.strip()
        if not key:
            raise _HTTPError(401, "an access key is required", _CHALLENGE)
        entry = self._keys.get(key)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            have = entry[0]
        else:
            have = None
            text = key.decode("latin-1")
            if len(text) <= 256 and text.isascii() and text.isprintable():
                have = await self._call("key_role", text)
            if len(self._keys) >= _MAX_KEYS:
                self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
                if len(self._keys) >= _MAX_KEYS:
                    self._keys.clear()
            self._keys[key] = (have, now + self.limits.key_ttl_s)
        if have is None:
            raise _HTTPError(401, "unknown or revoked access key", _CHALLENGE)
        if role == "publisher" and have != "publisher":
            raise _HTTPError(403, f"a {have} key may not publish (publisher role required)")

    # ----------------------------------------------------------------------------- versions

    async def _latest_version(self) -> int:
        latest, until = self._latest
        if until < time.monotonic():
            latest = await self._call("latest_version")
            self._latest = (latest, time.monotonic() + self.limits.latest_ttl_s)
        if latest is None:
            raise _HTTPError(404, "no version has been published yet")
        return latest

    async def _resolve(self, text: str) -> tuple[_Version, bool]:
        """The version named by ``text`` and whether it was named by number (immutable URL)."""
        try:
            number = parse_version(text)
        except TileError as exc:
            raise _HTTPError(400, str(exc)) from None
        numbered = number is not None
        if number is None:
            number = await self._latest_version()
        return await self._version(number), numbered

    async def _version(self, number: int) -> _Version:
        entry = self._versions.get(number)
        if entry is not None:
            return entry
        info = await self._call("version_info", number)
        manifest = await self._call("manifest", number)
        entry = _Version(number, _info_dict(info), dict(manifest), int(info.level))
        self._versions[number] = entry
        if len(self._versions) > 256:  # a bounded index; evicted entries are simply reloaded
            self._versions.pop(next(iter(self._versions)))
        return entry

    async def _blob(self, sha256: str) -> _Tile:
        tile = self._cache.get(sha256)
        if tile is None:
            data = await self._call("blob", sha256)
            tile = _Tile(sha256, bytes(data))
            self._cache.put(sha256, tile, len(data) + 512)
        return tile

    # -------------------------------------------------------------------------------- tiles

    async def _tile(self, scope: dict, send: Callable, version_text: str, tile_text: str) -> None:
        await self._authorize(scope, "reader")
        version, numbered = await self._resolve(version_text)
        try:
            tile_id = parse_tile_id(tile_text)
        except TileError as exc:
            raise _HTTPError(400, str(exc)) from None
        sha256 = version.manifest.get(tile_id)
        if sha256 is None:
            if tile_level(tile_id) != version.level:
                raise _HTTPError(
                    400,
                    f"tile {tile_id} is a level-{tile_level(tile_id)} tile; version "
                    f"{version.version} is tiled at level {version.level}",
                )
            raise _HTTPError(404, f"version {version.version} has no tile {tile_id}")
        if numbered:  # immutable: remember the path (bounded; cleared when full)
            if len(self._tile_paths) >= _MAX_TILE_PATHS:
                self._tile_paths.clear()
            self._tile_paths[scope["path"]] = sha256
        await self._send_tile(scope, send, sha256, numbered)

    async def _send_tile(self, scope: dict, send: Callable, sha256: str, immutable: bool) -> None:
        """Authorise (reader), then send the tile: gzip or identity, 304 on a matching ETag."""
        key = accept = inm = None
        for name, value in scope["headers"]:  # one pass over the headers
            if name == b"x-api-key":
                key = value
            elif name == b"authorization":
                scheme, _, token = value.partition(b" ")
                key = token if scheme.lower() == b"bearer" else None
            elif name == b"accept-encoding":
                accept = value
            elif name == b"if-none-match":
                inm = value
        entry = self._keys.get(key) if key else None
        if entry is None or entry[1] <= time.monotonic() or entry[0] is None:
            await self._authorize(scope, "reader")  # the full check: lookups, 401
        tile = self._cache.get(sha256)
        if tile is None:
            tile = await self._blob(sha256)
        gzip = accept is not None and _accepts_gzip(accept)
        if not gzip and tile.identity is None:
            tile.identity = await self._run(_gunzip, tile.data, self.limits.max_map_bytes)
            self._cache.put(sha256, tile, len(tile.data) + len(tile.identity) + 512)
        headers = tile.header_list(gzip, immutable)
        if inm is not None and _etag_matches(inm, tile.etag if gzip else tile.etag_identity):
            await send({"type": "http.response.start", "status": 304, "headers": headers[-3:]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = tile.data if gzip else tile.identity
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    # --------------------------------------------------------------------------- JSON routes

    async def _health(self, scope: dict, send: Callable) -> None:
        try:
            latest: int | None = await self._latest_version()
        except _HTTPError as exc:
            if exc.status != 404:
                raise
            latest = None
        await self._send_json(scope, send, _json_bytes({"status": "ok", "latest": latest}))

    async def _versions_list(self, scope: dict, send: Callable) -> None:
        cached = self._version_list
        if cached is None or cached[1] < time.monotonic():
            infos = await self._call("versions")
            body = _json_bytes(
                {
                    "versions": [_info_dict(i) for i in infos],
                    "latest": infos[-1].version if infos else None,
                }
            )
            cached = self._version_list = (body, time.monotonic() + self.limits.latest_ttl_s)
        await self._send_json(scope, send, cached[0])

    async def _version_info(self, scope: dict, send: Callable, text: str) -> None:
        version, numbered = await self._resolve(text)
        await self._send_json(
            scope, send, _json_bytes(version.info), cache=IMMUTABLE if numbered else NO_CACHE
        )

    async def _manifest(self, scope: dict, send: Callable, text: str) -> None:
        version, numbered = await self._resolve(text)
        key = ("manifest", version.version)
        body = self._cache.get(key)
        if body is None:
            doc = {
                "version": version.version,
                "level": version.level,
                "tiles": {str(t): h for t, h in sorted(version.manifest.items())},
            }
            body = _json_bytes(doc)
            self._cache.put(key, body, len(body))
        etag = f'"m{version.version}-{hashlib.sha256(body).hexdigest()[:32]}"'.encode()
        await self._send_json(
            scope, send, body, cache=IMMUTABLE if numbered else NO_CACHE, etag=etag
        )

    async def _changes(self, scope: dict, send: Callable) -> None:
        query = _query(scope, {"from", "to"})
        if "from" not in query or "to" not in query:
            raise _HTTPError(400, "changes need 'from' and 'to' query parameters")
        try:
            start = parse_version(query["from"])
            end = parse_version(query["to"])
        except TileError as exc:
            raise _HTTPError(400, str(exc)) from None
        if start is None:
            raise _HTTPError(400, "'from' must be a version number")
        numbered = end is not None
        if end is None:
            end = await self._latest_version()
        if start > end:
            raise _HTTPError(400, f"'from' ({start}) is after 'to' ({end})")
        before, after = await self._version(start), await self._version(end)
        if end - start > self.limits.max_change_versions:
            raise _HTTPError(
                413,
                f"{end - start} versions asked for, more than the limit of "
                f"{self.limits.max_change_versions}: ask in smaller steps",
            )
        from tiles.publish import tile_changes

        records: list[dict[str, Any]] = []
        for v in range(start + 1, end + 1):
            key = ("changes", v)
            rows = self._cache.get(key)
            if rows is None:
                rows = [{"version": v, **r} for r in await self._call("changes", v)]
                self._cache.put(key, rows, 256 + 512 * len(rows))
            records.extend(rows)
        body = _json_bytes(
            {
                "from": start,
                "to": end,
                "tiles": [
                    dataclasses.asdict(c) for c in tile_changes(before.manifest, after.manifest)
                ],
                "changes": records,
            }
        )
        await self._send_json(scope, send, body, cache=IMMUTABLE if numbered else NO_CACHE)

    # ----------------------------------------------------------------- features and OpenDRIVE

    async def _box_model(self, scope: dict, text: str, extra: set[str] = frozenset()) -> tuple:
        """The version, whether numbered, the box, the query and the owned features near it."""
        query = _query(scope, {"bbox", *extra})
        if "bbox" not in query:
            raise _HTTPError(400, "a 'bbox' query parameter (west,south,east,north) is required")
        try:
            box = parse_bbox(query["bbox"])
        except TileError as exc:
            raise _HTTPError(400, str(exc)) from None
        version, numbered = await self._resolve(text)
        try:
            grid = tiles_in_bbox(*box, version.level, max_tiles=self.limits.max_bbox_tiles)
        except TileError as exc:
            raise _HTTPError(413, str(exc)) from None
        covering = [t for t in grid if t in version.manifest]
        decoded = [await self._decoded_tile(version.manifest[t]) for t in covering]
        # features owned elsewhere but crossing these tiles: search outward for their owners
        missing = {ref for d in decoded for ref in d.crossing}
        missing -= {(f.layer, f.id) for d in decoded for f in d.model.features()}
        if missing:
            budget = 4 * max(1, self.limits.max_bbox_tiles)
            for t in _nearest_tiles(version.manifest, box, exclude=set(covering))[:budget]:
                d = await self._decoded_tile(version.manifest[t])
                decoded.append(d)
                missing -= {(f.layer, f.id) for f in d.model.features()}
                if not missing:
                    break
        return version, numbered, box, query, [d.model for d in decoded]

    async def _decoded_tile(self, sha256: str) -> Any:
        with self._decoded_lock:
            hit = self._decoded.get(sha256)
            if hit is not None:
                self._decoded.move_to_end(sha256)
                return hit
        tile = await self._blob(sha256)
        from tiles.encode import decode_tile

        try:
            decoded = await self._run(lambda: decode_tile(tile.data, source=f"tile {sha256}"))
        except HDMapError as exc:
            raise _HTTPError(500, f"stored tile {sha256} cannot be decoded: {exc}") from None
        with self._decoded_lock:
            self._decoded[sha256] = decoded
            while len(self._decoded) > max(1, self.limits.decoded_tiles):
                self._decoded.popitem(last=False)
        return decoded

    async def _features(self, scope: dict, send: Callable, text: str) -> None:
        _, numbered, box, _, models = await self._box_model(scope, text)
        body = await self._run(_features_geojson, models, box)
        await self._send_json(
            scope, send, body, cache=IMMUTABLE if numbered else NO_CACHE, media=_GEOJSON
        )

    async def _opendrive(self, scope: dict, send: Callable, text: str) -> None:
        version, numbered, box, query, models = await self._box_model(scope, text, {"odr_version"})
        odr_version = query.get("odr_version", "1.7")
        if odr_version not in ("1.7", "1.8"):
            raise _HTTPError(400, f"odr_version {odr_version[:20]!r}: expected 1.7 or 1.8")
        stamp = str(version.info.get("created", ""))[:19] or None
        try:
            body = await self._run(_opendrive_bytes, models, box, odr_version, stamp)
        except FormatError as exc:
            raise _HTTPError(422, f"no OpenDRIVE for this box: {exc}") from None
        await self._send_json(
            scope, send, body, cache=IMMUTABLE if numbered else NO_CACHE, media=_XML
        )

    # ------------------------------------------------------------------------------ publish

    async def _publish(self, scope: dict, receive: Callable, send: Callable) -> None:
        limits = self.limits
        ctype = (_header(scope, b"content-type") or b"").decode("latin-1")
        ctype = ctype.partition(";")[0].strip().lower()
        if ctype not in _POST_TYPES:
            raise _HTTPError(
                415,
                f"content type {ctype[:60]!r} is not a local-standard map; send "
                f"{TILE_MEDIA_TYPE} or application/xml (gzip allowed)",
            )
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or len(length) > 18:
                raise _HTTPError(400, "malformed Content-Length")
            if int(length) > limits.max_body_bytes:
                raise _HTTPError(
                    413,
                    f"body of {int(length)} bytes is larger than the limit of "
                    f"{limits.max_body_bytes} bytes",
                    [(b"connection", b"close")],
                )
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise _HTTPError(
                    413,
                    f"body larger than the limit of {limits.max_body_bytes} bytes",
                    [(b"connection", b"close")],
                )
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not body:
            raise _HTTPError(400, "empty body: send a local-standard map")
        encoding = (_header(scope, b"content-encoding") or b"identity").strip().lower()
        if encoding not in (b"identity", b"gzip", b"x-gzip"):
            raise _HTTPError(415, f"content encoding {encoding[:30].decode('latin-1')!r}")
        if self._publish_lock is None:
            self._publish_lock = asyncio.Lock()
        async with self._publish_lock:  # one publish at a time per process; the store is atomic
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(self._publish_pool, self._publish_sync, body)
            except _HTTPError:
                raise
            except (FormatError, TileError) as exc:
                raise _HTTPError(400, str(exc)) from None
            except StoreError as exc:
                raise _HTTPError(503, f"store refused the publish: {exc}") from None
        self._latest = (None, -math.inf)
        self._version_list = None
        summary = result.summary()
        status = 200 if result.unchanged else 201
        await self._send_json(
            scope,
            send,
            _json_bytes(summary),
            status=status,
            cache=b"no-store",
            extra=[(b"location", f"/v1/versions/{result.version}".encode())],
        )

    def _publish_sync(self, body: bytes) -> Any:
        """Parse the body safely and publish it (on the publish thread)."""
        from tiles.publish import publish_model

        data = body
        if body[:2] == b"\x1f\x8b":
            try:
                data = _gunzip(body, self.limits.max_map_bytes)
            except ValueError as exc:
                raise _HTTPError(413 if "limit" in str(exc) else 400, str(exc)) from None
        model = _parse_map(data, self.limits.max_map_bytes)
        latest = self.store.latest_version()  # keep the grid of the versions before
        level = self.store.version_info(latest).level if latest else int(self.limits.level)
        return publish_model(self.store, model, level=level)


# ------------------------------------------------------------------------------------ helpers

_DOTS = ("", ".", "..")
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="hdmap"')]

_METHODS: dict[str, frozenset[str]] = {
    "health": frozenset({"GET", "HEAD"}),
    "openapi": frozenset({"GET", "HEAD"}),
    "versions": frozenset({"GET", "HEAD", "POST"}),
    "version_info": frozenset({"GET", "HEAD"}),
    "manifest": frozenset({"GET", "HEAD"}),
    "tile": frozenset({"GET", "HEAD"}),
    "features": frozenset({"GET", "HEAD"}),
    "opendrive": frozenset({"GET", "HEAD"}),
    "changes": frozenset({"GET", "HEAD"}),
}


_HANDLERS = {
    "versions": "_versions_list",
    "version_info": "_version_info",
    "manifest": "_manifest",
    "tile": "_tile",
    "features": "_features",
    "opendrive": "_opendrive",
    "changes": "_changes",
}


def _route(path: str) -> tuple[str, tuple[str, ...]]:
    """The route name and path parameters of ``path``; 400 on traversal, 404 when unknown."""
    if "\x00" in path or "\\" in path:
        raise _HTTPError(400, "invalid characters in the path")
    parts = path.split("/")[1:]
    if any(p in (".", "..") for p in parts):
        raise _HTTPError(400, "'.' and '..' are not allowed in paths")
    n = len(parts)
    if n == 1 and parts[0] == "healthz":
        return "health", ()
    if n == 1 and parts[0] == "openapi.json":
        return "openapi", ()
    if n >= 2 and parts[0] == "v1":
        if n == 2 and parts[1] == "changes":
            return "changes", ()
        if parts[1] == "versions":
            if n == 2:
                return "versions", ()
            if parts[2]:
                if n == 3:
                    return "version_info", (parts[2],)
                if n == 4 and parts[3] in ("manifest", "features", "opendrive"):
                    return parts[3], (parts[2],)
                if n == 5 and parts[3] == "tiles" and parts[4]:
                    return "tile", (parts[2], parts[4])
    raise _HTTPError(404, "no such route")


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _query(scope: dict, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each at most once and all in ``allowed``; 400 otherwise."""
    raw = scope["query_string"]
    try:
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=8
        )
    except (ValueError, UnicodeDecodeError):
        raise _HTTPError(400, "malformed query string") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise _HTTPError(400, f"unknown query parameter {name[:40]!r}")
        if name in query:
            raise _HTTPError(400, f"query parameter {name!r} given twice")
        query[name] = value
    return query


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` (every member); ValueError when corrupt or beyond ``limit``."""
    out: list[bytes] = []
    size = 0
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=31)
        try:
            while rest:
                chunk = d.decompress(rest, max(1, limit + 1 - size))
                size += len(chunk)
                out.append(chunk)
                if size > limit:
                    raise ValueError(f"gzip body inflates beyond the limit of {limit} bytes")
                rest = d.unconsumed_tail
                if d.eof:
                    break
        except zlib.error as exc:
            raise ValueError(f"corrupt gzip body: {exc}") from None
        if not d.eof:
            raise ValueError("truncated gzip body")
        rest = d.unused_data
    return b"".join(out)


def _parse_map(data: bytes, limit: int) -> Any:
    """The MapModel of local-standard XML bytes, through the project's safe parser."""
    from formats.localstd import read_localstd_bytes

    return read_localstd_bytes(data, "request body", max_bytes=limit)


def _nearest_tiles(manifest: Mapping[int, str], box: tuple, exclude: set[int]) -> list[int]:
    """Manifest tiles not in ``exclude``, nearest to the box first (degrees, Chebyshev)."""
    w, s, e, n = box

    def distance(t: int) -> float:
        tw, ts, te, tn = tile_bounds(t)
        return max(tw - e, w - te, ts - n, s - tn, 0.0)

    return sorted((t for t in manifest if t not in exclude), key=distance)


_TRANSFORMERS = threading.local()


def _transformer(crs: str, inverse: bool = False) -> Any:
    """A pyproj transformer between ``crs`` and WGS84 lon/lat (per thread, cached)."""
    cache = getattr(_TRANSFORMERS, "cache", None)
    if cache is None:
        cache = _TRANSFORMERS.cache = {}
    key = (crs, inverse)
    tr = cache.get(key)
    if tr is None:
        from pyproj import Transformer

        src, dst = ("EPSG:4326", crs) if inverse else (crs, "EPSG:4326")
        tr = cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return tr


def _box_in_crs(box: tuple, crs: str) -> Any:
    """The WGS84 box as a polygon in ``crs`` metres (edges densified, so it stays faithful)."""
    import numpy as np
    import shapely

    w, s, e, n = box
    t = np.linspace(0.0, 1.0, 17)
    lon = np.concatenate([w + (e - w) * t, np.full(17, e), e - (e - w) * t, np.full(17, w)])
    lat = np.concatenate([np.full(17, s), s + (n - s) * t, np.full(17, n), n - (n - s) * t])
    x, y = _transformer(crs, inverse=True).transform(lon, lat)
    ring = np.column_stack([x, y])
    if w == e or s == n:  # a degenerate box: a line or a point
        return shapely.envelope(shapely.multipoints(ring))
    return shapely.Polygon(ring)


def _select(models: list[Any], box: tuple) -> list[Any]:
    """Features of ``models`` (owned records, no duplicates) whose geometry meets the box."""
    import shapely

    seen: dict[str, Any] = {}
    for m in models:
        for f in m.features():
            seen.setdefault(f.id, f)
    if not seen:
        return []
    crs = next(m.crs for m in models if not m.is_empty)
    region = _box_in_crs(box, crs)
    features = list(seen.values())
    hits = shapely.intersects([f.geometry for f in features], region)
    return [f for f, hit in zip(features, hits, strict=True) if hit]


def _properties(feature: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"layer": feature.layer}
    for f in dataclasses.fields(feature):
        if f.name in ("geometry", "id", "provenance"):
            continue
        value = getattr(feature, f.name)
        props[f.name] = list(value) if isinstance(value, tuple) else value
    props["survey_id"] = feature.provenance.survey_id
    props["method"] = feature.provenance.method
    return props


def _geojson_geometry(geometry: Any, crs: str) -> dict[str, Any]:
    import numpy as np
    import shapely

    tr = _transformer(crs)

    def to_wgs84(coords: np.ndarray) -> np.ndarray:
        lon, lat = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([np.round(lon, 9), np.round(lat, 9), np.round(coords[:, 2], 3)])

    g = shapely.transform(geometry, to_wgs84, include_z=True)
    if g.geom_type == "Polygon":
        g = shapely.orient_polygons(g)  # RFC 7946: exterior counter-clockwise
    return shapely.geometry.mapping(g)


def _features_geojson(models: list[Any], box: tuple) -> bytes:
    features = _select(models, box)
    crs = next((m.crs for m in models if not m.is_empty), "EPSG:4326")
    doc = {
        "type": "FeatureCollection",
        "bbox": list(box),
        "features": [
            {
                "type": "Feature",
                "id": f.id,
                "geometry": _geojson_geometry(f.geometry, crs),
                "properties": _properties(f),
            }
            for f in features
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _clipped_model(models: list[Any], box: tuple) -> Any:
    """A self-consistent map of the features meeting the box (whole features, not cut).

    Lanes keep their boundaries even when those lie outside the box; every other reference to a
    feature outside the result is dropped.
    """
    from pipeline.model import MapModel

    kept = _select(models, box)
    by_id: dict[str, Any] = {}
    for m in models:
        for f in m.features():
            by_id.setdefault(f.id, f)
    ids = {f.id for f in kept}
    for f in list(kept):
        if f.layer == "lanes":
            for ref in (f.left_boundary, f.right_boundary):
                if ref and ref not in ids and ref in by_id:
                    kept.append(by_id[ref])
                    ids.add(ref)

    def keep(ref: str | None) -> str | None:
        return ref if ref in ids else None

    out = []
    for f in kept:
        if f.layer == "lanes":
            f = f.replace(
                left_boundary=keep(f.left_boundary),
                right_boundary=keep(f.right_boundary),
                predecessors=tuple(r for r in f.predecessors if r in ids),
                successors=tuple(r for r in f.successors if r in ids),
                left_neighbour=keep(f.left_neighbour),
                right_neighbour=keep(f.right_neighbour),
                junction=keep(f.junction),
            )
        elif f.layer == "junctions":
            f = f.replace(lanes=tuple(r for r in f.lanes if r in ids))
        elif f.layer == "signs":
            f = f.replace(pole=keep(f.pole))
        out.append(f)
    base = next((m for m in models if not m.is_empty), models[0] if models else None)
    if base is None:
        return MapModel("EPSG:4326")
    return MapModel.from_features(base.crs, out, height_datum=base.height_datum, name=base.name)


def _opendrive_bytes(models: list[Any], box: tuple, version: str, date: str | None) -> bytes:
    from formats.opendrive.writer import build_opendrive

    model = _clipped_model(models, box)
    if not model.lanes:
        raise FormatError("the box holds no lane")
    data, _warnings = build_opendrive(model, version=version, date=date)
    return data
