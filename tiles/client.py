"""A client of the map service, and ``sync``: keep a local copy of the latest version up to date.

:func:`sync` downloads the latest version's manifest, then only the tiles whose local copy is
missing or has another SHA-256 than the manifest's, asking for the raw gzip bytes; every tile is
verified against its hash and written to a temporary name and renamed
(``DIR/tiles/<tile_id>.xsmap.xml.gz``); ``DIR/manifest.json`` is written last, atomically, and
tiles no longer listed are removed after that. An interrupted sync leaves verified tiles behind,
so running it again downloads only what is still missing or wrong.

Standard library only (``http.client`` with one keep-alive connection).

>>> SyncResult(3, 0, 0, 0, 0).summary()
'version 3: 0 tiles downloaded (0 bytes), 0 kept, 0 removed'
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import HDMapError, HDMapIOError
from pipeline.files import atomic_path, write_json

__all__ = [
    "TILE_SUFFIX",
    "AccessDenied",
    "IntegrityError",
    "ServiceClient",
    "ServiceError",
    "SyncResult",
    "local_manifest",
    "sync",
]

TILE_SUFFIX = ".xsmap.xml.gz"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TILE_NAME = re.compile(r"-?[0-9]{1,11}" + re.escape(TILE_SUFFIX))


class ServiceError(HDMapError, OSError):
    """The map service cannot be reached or answered with an error."""


class AccessDenied(ServiceError, PermissionError):
    """The service refused the access key (401: unknown or revoked; 403: wrong role)."""


class IntegrityError(HDMapError, ValueError):
    """Downloaded bytes do not match the hash the manifest promises."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one :func:`sync` did: the version now held locally and the tile counts."""

    version: int
    downloaded_tiles: int
    downloaded_bytes: int
    kept_tiles: int
    removed_tiles: int

    def summary(self) -> str:
        """One line for people.

        >>> SyncResult(2, 1, 2048, 40, 0).summary()
        'version 2: 1 tile downloaded (2048 bytes), 40 kept, 0 removed'
        """
        tiles = "tile" if self.downloaded_tiles == 1 else "tiles"
        return (
            f"version {self.version}: {self.downloaded_tiles} {tiles} downloaded "
            f"({self.downloaded_bytes} bytes), {self.kept_tiles} kept, "
            f"{self.removed_tiles} removed"
        )


class ServiceClient:
    """GET requests to a map service over one keep-alive connection (context manager).

    ``service_url`` is ``http://HOST:PORT`` (or ``https://``), optionally with a path prefix.
    """

    def __init__(self, service_url: str, key: str, *, timeout_s: float = 30.0):
        parts = urllib.parse.urlsplit(service_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServiceError(
                "service URL must be http://HOST[:PORT] or https://HOST[:PORT]",
                path=service_url,
            )
        self.url = service_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._key = key
        self._timeout = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self.requests = 0  # requests sent, for callers that count them

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers (lower-case names), body)`` of GET ``path``; raw bytes, no decoding.

        Retries once on a connection the server closed between requests. Raises ServiceError when
        the service cannot be reached.
        """
        send = {"Authorization": f"Bearer {self._key}", **(headers or {})}
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self.requests += 1
                conn.request("GET", self._prefix + path, headers=send)
                response = conn.getresponse()
                body = response.read()
                got = {k.lower(): v for k, v in response.getheaders()}
                if response.will_close:
                    self.close()
                return response.status, got, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt == 2:
                    raise ServiceError(f"connection lost: {exc}", path=self.url) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ServiceError(f"cannot reach the service: {reason}", path=self.url) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str) -> Any:
        """The JSON document at ``path``; ServiceError (AccessDenied for 401/403) otherwise."""
        status, _, body = self.get(path, {"Accept": "application/json"})
        _raise_for(status, body, self.url + path)
        try:
            return json.loads(body)
        except ValueError:
            raise ServiceError("answer is not JSON", path=self.url + path) from None

    def latest(self) -> dict[str, Any]:
        """The latest version's facts (NotFound-like ServiceError when nothing is published)."""
        return self.get_json("/v1/versions/latest")

    def manifest(self, version: int) -> dict[int, str]:
        """Tile ID -> SHA-256 of ``version``; ServiceError when the document is malformed."""
        doc = self.get_json(f"/v1/versions/{int(version)}/manifest")
        try:
            tiles = {int(t): h for t, h in doc["tiles"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ServiceError(f"malformed manifest of version {version}", path=self.url) from None
        for t, h in tiles.items():
            if not isinstance(h, str) or not _HEX64.fullmatch(h):
                raise ServiceError(f"manifest of version {version}: bad hash for tile {t}")
        return tiles

    def tile_gzip(self, version: int, tile_id: int, sha256: str) -> bytes:
        """The stored gzip bytes of a tile, verified against ``sha256`` (IntegrityError)."""
        path = f"/v1/versions/{int(version)}/tiles/{int(tile_id)}"
        status, headers, body = self.get(path, {"Accept-Encoding": "gzip"})
        _raise_for(status, body, self.url + path)
        if headers.get("content-encoding", "identity").lower() != "gzip":
            raise ServiceError(f"tile {tile_id} was not sent gzip-encoded", path=self.url + path)
        got = hashlib.sha256(body).hexdigest()
        if got != sha256:
            raise IntegrityError(
                f"tile {tile_id} has SHA-256 {got[:16]}..., the manifest says {sha256[:16]}...",
                path=self.url + path,
            )
        return body


def _raise_for(status: int, body: bytes, where: str) -> None:
    if 200 <= status < 300:
        return
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        message = body[:200].decode("utf-8", "replace").strip() or "no message"
    if status in (401, 403):
        raise AccessDenied(f"HTTP {status}: {message}", path=where)
    raise ServiceError(f"HTTP {status}: {message}", path=where)


def local_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``manifest.json`` a previous sync wrote in ``directory``, or None.

    >>> import tempfile
    >>> local_manifest(tempfile.mkdtemp()) is None
    True
    """
    path = Path(directory) / "manifest.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["tiles"] = {int(t): str(h) for t, h in doc["tiles"].items()}
        return doc
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable or half-written by hand: verify every tile instead


def _file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def sync(
    service_url: str,
    key: str,
    directory: str | os.PathLike[str],
    *,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 30.0,
) -> SyncResult:
    """Bring ``directory`` to the service's latest version, downloading only changed tiles.

    Local tiles are kept when their SHA-256 equals the manifest's, whatever wrote them.
    ``progress(done, total)`` is called after each downloaded tile (an exception raised there
    interrupts the sync; what was downloaded stays and is kept next time). Raises AccessDenied
    for a refused key, ServiceError when the service cannot be reached or answers with an error,
    IntegrityError when a tile does not match its hash.
    """
    folder = Path(directory)
    tiles_dir = folder / "tiles"
    with ServiceClient(service_url, key, timeout_s=timeout_s) as client:
        latest = client.latest()
        try:
            version = int(latest["version"])
        except (KeyError, TypeError, ValueError):
            raise ServiceError("malformed answer for the latest version", path=client.url) from None
        manifest = client.manifest(version)
        try:
            tiles_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HDMapIOError(
                f"cannot create the folder: {exc.strerror}", path=tiles_dir
            ) from None
        wanted = []
        kept = 0
        for tile_id, sha in sorted(manifest.items()):
            if _file_hash(tiles_dir / f"{tile_id}{TILE_SUFFIX}") == sha:
                kept += 1
            else:
                wanted.append((tile_id, sha))
        downloaded = 0
        size = 0
        for tile_id, sha in wanted:
            data = client.tile_gzip(version, tile_id, sha)
            with atomic_path(tiles_dir / f"{tile_id}{TILE_SUFFIX}") as tmp:
                tmp.write_bytes(data)
            downloaded += 1
            size += len(data)
            if progress is not None:
                progress(downloaded, len(wanted))
    write_json(
        folder / "manifest.json",
        {
            "service": service_url,
            "version": version,
            "level": latest.get("level"),
            "created": latest.get("created"),
            "tiles": {str(t): h for t, h in sorted(manifest.items())},
        },
    )
    removed = 0
    for path in tiles_dir.iterdir():
        stale = (
            _TILE_NAME.fullmatch(path.name) and int(path.name[: -len(TILE_SUFFIX)]) not in manifest
        )
        leftover = path.name.startswith(".") and ".part" in path.name  # an interrupted write
        if (stale or leftover) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed += bool(stale)
    return SyncResult(version, downloaded, size, kept, removed)
