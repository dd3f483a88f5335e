"""The map service over a real socket (``hdmap serve`` in a subprocess), on SQLite and PostgreSQL.

The store holds two versions of a map of three sample roads 5 km apart (three level-13 tiles with
content) plus a 10 km road edge crossing them; version 2 drops the road arrows of the middle road.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest
import shapely
from shapely import LineString

from pipeline.model import MapModel, RoadEdge, RoadEdgeKind
from tests.common import E0, N0, Z0
from tests.mapservice import (
    ROOT,
    Served,
    copy_bbox,
    copy_ids,
    publish,
    spread_model,
)

MAX_BODY_MB = 1


def long_edge() -> RoadEdge:
    """A pavement edge from the first road to the third (10 km), owned by the middle road's tile."""
    line = LineString([(E0 + 10.0 + 1000.0 * i, N0 + 10.0, Z0) for i in range(11)])
    return RoadEdge.create(line, RoadEdgeKind.PAVEMENT_EDGE, survey_id="long", method="truth")


def map_v1() -> MapModel:
    m = spread_model(3)
    return m.replace(road_edges=(*m.road_edges, long_edge()))


def map_v2() -> MapModel:
    m = spread_model(3, drop={1: {"road_arrows"}})
    return m.replace(road_edges=(*m.road_edges, long_edge()))


@dataclass
class Service:
    store_url: str
    url: str
    port: int
    reader: str
    publisher: str
    spare: str  # a reader key the revocation test revokes
    manifests: dict[int, dict[int, str]]

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        key: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, path sent exactly as given (no normalisation)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        send = dict(headers or {})
        if key is not None:
            send["Authorization"] = f"Bearer {key}"
        try:
            conn.request(method, path, body=body, headers=send)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get(self, path: str, key: str | None = "reader", **headers: str):
        real = {"reader": self.reader, "publisher": self.publisher}.get(key, key)
        return self.request("GET", path, headers, key=real)


def _schema_url(database: str) -> tuple[str, str]:
    schema = f"svc_{uuid.uuid4().hex[:12]}"
    return f"{database}?schema={schema}", schema


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(request, tmp_path_factory):
    """Two published versions served by ``hdmap serve`` (one server per backend and module)."""
    from tiles.store import open_store

    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('svc') / 'store.db'}"
    else:  # the session database of tests/conftest.py, one schema for this module
        url, schema = _schema_url(request.getfixturevalue("postgres_database"))
    with open_store(url) as store:
        assert publish(store, map_v1()) == 1
        assert publish(store, map_v2()) == 2
        keys = [store.create_key(r) for r in ("reader", "publisher", "reader")]
        manifests = {v: store.manifest(v) for v in (1, 2)}
    with Served(url, extra=("--max-body-mb", str(MAX_BODY_MB))) as served:
        yield Service(url, served.url, served.port, *keys, manifests)
    if schema:
        import psycopg

        with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def tile_of_copy(service: Service, k: int, version: int = 1) -> int:
    """The tile holding road ``k`` of the test map."""
    from tiles.tileid import tiles_in_bbox

    (tile,) = [t for t in tiles_in_bbox(*copy_bbox(k), 13) if t in service.manifests[version]]
    return tile


def _format(template: str, service: Service) -> str:
    bbox = ",".join(f"{v:.7f}" for v in copy_bbox(0))
    return template.format(tile=tile_of_copy(service, 0), bbox=bbox)


# every route that needs a key: (method, path template)
PROTECTED = [
    ("GET", "/v1/versions"),
    ("GET", "/v1/versions/latest"),
    ("GET", "/v1/versions/1"),
    ("GET", "/v1/versions/1/manifest"),
    ("GET", "/v1/versions/1/tiles/{tile}"),
    ("GET", "/v1/versions/latest/tiles/{tile}"),
    ("HEAD", "/v1/versions/2/tiles/{tile}"),
    ("GET", "/v1/versions/2/features?bbox={bbox}"),
    ("GET", "/v1/versions/2/opendrive?bbox={bbox}"),
    ("GET", "/v1/changes?from=1&to=2"),
    ("POST", "/v1/versions"),
]


@functools.lru_cache(maxsize=1)
def _post_body() -> bytes:
    from formats.localstd import to_xml_bytes

    return gzip.compress(to_xml_bytes(map_v2()))  # the latest map again: no new version


POST_HEADERS = {"Content-Type": "application/vnd.db3202.xsmap+xml", "Content-Encoding": "gzip"}


def _call(service: Service, method: str, template: str, key: str | None, header: str = "bearer"):
    path = _format(template, service)
    headers = dict(POST_HEADERS) if method == "POST" else {}
    if key is not None:
        if header == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        else:
            headers["X-API-Key"] = key
    body = _post_body() if method == "POST" else None
    return service.request(method, path, headers, body)


@pytest.mark.parametrize(("method", "template"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_protected_endpoint_refuses_missing_wrong_and_underprivileged_keys(
    service, method, template
):
    status, headers, body = _call(service, method, template, None)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert json.loads(body) == {"error": "an access key is required", "status": 401}
    for wrong in ("xsk_0123456789abcdef_" + "x" * 40, "not-a-key", "Bearer", "é" * 10):
        status, _, _ = _call(service, method, template, wrong.encode().decode("latin-1"))
        assert status == 401, wrong
    status, _, body = service.request(
        method, _format(template, service), {"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert status == 401
    status, _, body = _call(service, method, template, service.reader)
    if method == "POST":
        assert status == 403 and json.loads(body)["status"] == 403
    else:
        assert status == 200, body
    for header in ("bearer", "x-api-key"):
        status, _, body = _call(service, method, template, service.publisher, header)
        assert status == 200, body  # POST of the unchanged latest map: 200, no new version


def test_the_matrix_covers_every_documented_route(service):
    status, headers, body = service.get("/openapi.json", key=None)
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    covered = {
        (
            m.lower(),
            p.split("?")[0]
            .replace("/1", "/{version}")
            .replace("/2", "/{version}")
            .replace("/latest", "/{version}")
            .replace("{tile}", "{tile_id}"),
        )
        for m, p in PROTECTED
    }
    documented = {
        (method, path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if op.get("security", doc["security"])
    }
    assert documented == covered - {("head", "/v1/versions/{version}/tiles/{tile_id}")} | {
        ("get", "/v1/versions/{version}/tiles/{tile_id}")
    }
    public = {p for p, item in doc["paths"].items() if item["get"].get("security") == []}
    assert public == {"/healthz", "/openapi.json"}
    for op in (op for item in doc["paths"].values() for op in item.values()):
        assert {"401", "403"} <= set(op["responses"]) or op.get("security") == []
        for param in op.get("parameters", []):
            if "$ref" not in param and param["in"] == "path":
                assert param["required"] is True

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(doc))
    assert found
    for ref in found:  # every reference resolves inside the document
        target = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def test_health_is_public(service):
    status, _, body = service.get("/healthz", key=None)
    assert status == 200 and json.loads(body) == {"status": "ok", "latest": 2}


@pytest.mark.slow
def test_a_revoked_key_stops_working_within_the_cache_ttl(service):
    from tiles.store import open_store

    assert service.get("/v1/versions", key=service.spare)[0] == 200
    with open_store(service.store_url) as store:
        key_id = service.spare.split("_")[1]
        store.revoke_key(key_id)
    time.sleep(2.3)  # the service trusts a key lookup for at most 2 s
    status, _, body = service.get("/v1/versions", key=service.spare)
    assert status == 401 and b"revoked" in body
    assert service.get("/v1/versions")[0] == 200  # other keys unaffected


# ---------------------------------------------------------------------------- hostile input

HOSTILE = [
    # bounding boxes
    ("/v1/versions/1/features?bbox=nan,31.5,120.4,31.6", 400),
    ("/v1/versions/1/features?bbox=120.3,31.5,inf,31.6", 400),
    ("/v1/versions/1/features?bbox=-inf,31.5,120.4,31.6", 400),
    ("/v1/versions/1/features?bbox=1e400,31.5,120.4,31.6", 400),
    ("/v1/versions/1/features?bbox=120.37,31.59,120.36,31.6", 400),  # west > east
    ("/v1/versions/1/features?bbox=120.36,31.6,120.37,31.59", 400),  # south > north
    ("/v1/versions/1/features?bbox=-200,31.5,120.4,31.6", 400),
    ("/v1/versions/1/features?bbox=120.3,-91,120.4,31.6", 400),
    ("/v1/versions/1/features?bbox=1,2,3", 400),
    ("/v1/versions/1/features?bbox=1,2,3,4,5", 400),
    ("/v1/versions/1/features?bbox=a,b,c,d", 400),
    ("/v1/versions/1/features?bbox=", 400),
    ("/v1/versions/1/features", 400),
    ("/v1/versions/1/features?bbox=1,2,3,4&bbox=1,2,3,4", 400),
    ("/v1/versions/1/features?bbox=1,2,3,4&evil=1", 400),
    ("/v1/versions/1/features?bbox=100,20,130,40", 413),  # huge
    ("/v1/versions/1/features?bbox=-180,-90,180,90", 413),
    ("/v1/versions/1/opendrive?bbox=-180,-90,180,90", 413),
    ("/v1/versions/1/opendrive?bbox=nan,nan,nan,nan", 400),
    ("/v1/versions/1/features?bbox=" + "1" * 5000 + ",2,3,4", 414),
    ("/v1/versions/1/opendrive?bbox=120.35,31.58,120.36,31.59&odr_version=9", 400),
    # tile IDs
    ("/v1/versions/1/tiles/-1", 400),  # a level-15 ID; the version is tiled at level 13
    ("/v1/versions/1/tiles/abc", 400),
    (f"/v1/versions/1/tiles/{2**70}", 400),
    ("/v1/versions/1/tiles/1;drop", 400),
    ("/v1/versions/1/tiles/1%3Bdrop%20table", 400),
    ("/v1/versions/1/tiles/0x10000", 400),
    ("/v1/versions/1/tiles/0557029043", 400),
    ("/v1/versions/1/tiles/%20557029043", 400),
    ("/v1/versions/1/tiles/557029043.0", 400),
    ("/v1/versions/1/tiles/65536", 400),  # level 0
    ("/v1/versions/1/tiles/" + "9" * 100, 400),
    ("/v1/versions/1/tiles/536870912", 404),  # level 13, not in the manifest
    # versions
    ("/v1/versions/0/manifest", 400),
    ("/v1/versions/-1/manifest", 400),
    ("/v1/versions/abc/manifest", 400),
    ("/v1/versions/1.0/manifest", 400),
    ("/v1/versions/01/manifest", 400),
    ("/v1/versions/LATEST/manifest", 400),
    ("/v1/versions/" + "9" * 40 + "/manifest", 400),
    ("/v1/versions/999999/manifest", 404),
    ("/v1/versions/999999", 404),
    ("/v1/versions/999999/tiles/557029043", 404),
    # changes
    ("/v1/changes?from=2&to=1", 400),
    ("/v1/changes?from=abc&to=2", 400),
    ("/v1/changes?from=0&to=2", 400),
    ("/v1/changes?from=latest&to=2", 400),
    ("/v1/changes?from=1", 400),
    ("/v1/changes", 400),
    ("/v1/changes?from=1&to=999999", 404),
    ("/v1/changes?from=1&to=2&from=1", 400),
    ("/v1/changes?from=1&to=2%00", 400),
    # paths: traversal never reaches the file system
    ("/v1/versions/1/tiles/../../etc/passwd", 400),
    ("/v1/versions/1/tiles/..%2f..%2fetc%2fpasswd", 400),
    ("/v1/versions/1/tiles/%2e%2e/%2e%2e/etc/passwd", 400),
    ("/v1/versions/%2e%2e/manifest", 400),
    ("/../../../etc/passwd", 400),
    ("/v1/../../etc/passwd", 400),
    ("/etc/passwd", 404),
    ("//etc/passwd", 404),
    ("/v1/versions/1/manifest%00", 400),
    ("/v1/versions/1/tiles/557029043%00.gz", 400),
    ("/v1/versions/1/tiles", 404),
    ("/v1/versions/1/tiles/", 404),
    ("/v1/versions//manifest", 404),
    ("/v1/nothing", 404),
    ("/", 404),
    ("/static/../../etc/passwd", 400),
]


@pytest.mark.parametrize(("path", "expected"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_parameters_get_a_json_client_error(service, path, expected):
    status, headers, body = service.get(path, key="publisher")
    assert status == expected, body
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == expected and doc["error"]
    assert b"root:" not in body


def test_wrong_methods_get_405_with_allow(service):
    for method, path in (
        ("DELETE", "/v1/versions/1"),
        ("PUT", "/v1/versions"),
        ("POST", "/v1/versions/1/manifest"),
        ("PATCH", "/healthz"),
        ("POST", "/v1/versions/1/tiles/557029043"),
    ):
        status, headers, body = service.request(method, path)
        assert status == 405, (method, path)
        assert "GET" in headers["allow"] and json.loads(body)["status"] == 405


def test_raw_garbage_requests_are_refused_without_crashing(service):
    for raw in (
        b"GET /v1/versions/1/tiles/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-API-Key: \x00\x01\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:
            s.sendall(raw)
            answer = s.recv(4096)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4") or b" 200 " in answer[:20]
    assert service.get("/healthz", key=None)[0] == 200


# ----------------------------------------------------------------------------------- tiles


def test_tile_gzip_etag_and_immutable_cache_headers(service):
    tile = tile_of_copy(service, 0)
    digest = service.manifests[1][tile]
    status, headers, body = service.get(
        f"/v1/versions/1/tiles/{tile}", **{"Accept-Encoding": "gzip, deflate"}
    )
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "application/vnd.db3202.xsmap+xml"
    assert headers["etag"] == f'"{digest}"'
    assert hashlib.sha256(body).hexdigest() == digest
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["vary"].lower() == "accept-encoding"
    assert int(headers["content-length"]) == len(body)
    from tiles.encode import decode_tile

    assert decode_tile(body).tile_id == tile

    status, headers, _ = service.get(
        f"/v1/versions/latest/tiles/{tile}", **{"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["cache-control"] == "no-cache"
    assert headers["etag"] == f'"{service.manifests[2][tile]}"'


def test_tile_identity_representation_has_its_own_etag(service):
    tile = tile_of_copy(service, 2)
    digest = service.manifests[1][tile]
    _, _, zipped = service.get(f"/v1/versions/1/tiles/{tile}", **{"Accept-Encoding": "gzip"})
    for accept in (None, "identity", "gzip;q=0", "br", "deflate, gzip;q=0.0"):
        extra = {} if accept is None else {"Accept-Encoding": accept}
        status, headers, body = service.get(f"/v1/versions/1/tiles/{tile}", **extra)
        assert status == 200, accept
        assert "content-encoding" not in headers, accept
        assert body == gzip.decompress(zipped) and body.startswith(b"<?xml")
        assert headers["etag"] == f'"{digest}-identity"'
        assert headers["vary"].lower() == "accept-encoding"
    for accept in ("*", "GZIP", "br;q=1, gzip;q=0.5", "x-gzip"):
        _, headers, _ = service.get(f"/v1/versions/1/tiles/{tile}", **{"Accept-Encoding": accept})
        assert headers.get("content-encoding") == "gzip", accept


def test_if_none_match_gives_304(service):
    tile = tile_of_copy(service, 1)
    digest = service.manifests[2][tile]
    path = f"/v1/versions/2/tiles/{tile}"
    gz = {"Accept-Encoding": "gzip"}
    for inm in (f'"{digest}"', f'W/"{digest}"', f'"other", "{digest}"', "*"):
        status, headers, body = service.get(path, **gz, **{"If-None-Match": inm})
        assert status == 304 and body == b"", inm
        assert headers["etag"] == f'"{digest}"'
        assert headers["cache-control"].endswith("immutable")
    # the gzip ETag does not validate the identity representation, nor a stale hash
    status, _, body = service.get(path, **{"If-None-Match": f'"{digest}"'})
    assert status == 200 and body.startswith(b"<?xml")
    old = service.manifests[1][tile]
    assert old != digest  # the middle road's tile changed in version 2
    status, _, body = service.get(path, **gz, **{"If-None-Match": f'"{old}"'})
    assert status == 200 and hashlib.sha256(body).hexdigest() == digest
    status, _, _ = service.get(path, **{"If-None-Match": f'"{digest}-identity"'})
    assert status == 304


def test_head_sends_headers_only(service):
    tile = tile_of_copy(service, 0)
    status, headers, body = service.request(
        "HEAD",
        f"/v1/versions/1/tiles/{tile}",
        {"Accept-Encoding": "gzip", "X-API-Key": service.reader},
    )
    assert status == 200 and body == b""
    assert headers["etag"] == f'"{service.manifests[1][tile]}"'


# ------------------------------------------------------------------------- JSON endpoints


def test_versions_and_manifests(service):
    status, headers, body = service.get("/v1/versions")
    assert status == 200 and headers["cache-control"] == "no-cache"
    doc = json.loads(body)
    assert [v["version"] for v in doc["versions"]] == [1, 2] and doc["latest"] == 2
    assert all("source" not in v for v in doc["versions"])  # never served
    assert doc["versions"][1]["tile_count"] == len(service.manifests[2])
    status, headers, body = service.get("/v1/versions/latest")
    assert json.loads(body)["version"] == 2 and headers["cache-control"] == "no-cache"
    status, headers, body = service.get("/v1/versions/1")
    assert json.loads(body)["version"] == 1 and headers["cache-control"].endswith("immutable")
    for v in (1, 2):
        status, headers, body = service.get(f"/v1/versions/{v}/manifest")
        doc = json.loads(body)
        assert {int(t): h for t, h in doc["tiles"].items()} == service.manifests[v]
        assert doc["version"] == v and doc["level"] == 13
        again = service.get(f"/v1/versions/{v}/manifest", **{"If-None-Match": headers["etag"]})
        assert again[0] == 304 and again[2] == b""


def test_changes_give_the_tile_diff_and_the_records(service):
    status, headers, body = service.get("/v1/changes?from=1&to=2")
    assert status == 200 and headers["cache-control"].endswith("immutable")
    doc = json.loads(body)
    m1, m2 = service.manifests[1], service.manifests[2]
    expected = [
        {"tile_id": t, "before": m1.get(t), "after": m2.get(t)}
        for t in sorted(set(m1) | set(m2))
        if m1.get(t) != m2.get(t)
    ]
    assert doc["tiles"] == expected and len(expected) == 1
    assert expected[0]["tile_id"] == tile_of_copy(service, 1)
    assert {(r["version"], r["change"], r["layer"]) for r in doc["changes"]} == {
        (2, "deleted", "road_arrows")
    }
    assert len(doc["changes"]) == 2
    same = json.loads(service.get("/v1/changes?from=2&to=2")[2])
    assert same["tiles"] == [] and same["changes"] == []
    status, headers, body = service.get("/v1/changes?from=1&to=latest")
    assert json.loads(body)["to"] == 2 and headers["cache-control"] == "no-cache"


# ----------------------------------------------------------------- features and OpenDRIVE


def _bbox(box) -> str:
    return ",".join(f"{v:.8f}" for v in box)


def test_features_in_a_box_are_geojson_in_wgs84(service):
    box = copy_bbox(0)
    status, headers, body = service.get(f"/v1/versions/1/features?bbox={_bbox(box)}")
    assert status == 200 and headers["content-type"] == "application/geo+json"
    doc = json.loads(body)
    assert doc["type"] == "FeatureCollection"
    ids = {f["id"] for f in doc["features"]}
    # the road's own features, and the 10 km edge owned by the middle road's tile
    assert ids == copy_ids(0) | {long_edge().id}
    for f in doc["features"]:
        geometry = shapely.geometry.shape(f["geometry"])
        assert geometry.has_z
        lon0, lat0, lon1, lat1 = geometry.bounds
        assert 120.0 < lon0 <= lon1 < 121.0 and 31.0 < lat0 <= lat1 < 32.0
        assert shapely.intersects(geometry, shapely.box(*box))
        if f["geometry"]["type"] == "Polygon":
            assert geometry.exterior.is_ccw  # RFC 7946 winding
        props = f["properties"]
        assert props["layer"] and props["survey_id"] and "confidence" in props
    poles = [f for f in doc["features"] if f["properties"]["layer"] == "poles"]
    assert poles and all(p["properties"]["height_m"] > 0 for p in poles)


def test_features_of_a_small_box_and_an_empty_box(service):
    doc = json.loads(service.get(f"/v1/versions/1/features?bbox={_bbox(copy_bbox(1))}")[2])
    pole = next(f for f in doc["features"] if f["properties"]["layer"] == "poles")
    lon, lat = pole["geometry"]["coordinates"][:2]
    d = 1e-6
    small = service.get(f"/v1/versions/1/features?bbox={lon - d},{lat - d},{lon + d},{lat + d}")
    assert pole["id"] in {f["id"] for f in json.loads(small[2])["features"]}
    # version 2 dropped the middle road's arrows
    arrows = {f["id"] for f in doc["features"] if f["properties"]["layer"] == "road_arrows"}
    doc2 = json.loads(service.get(f"/v1/versions/2/features?bbox={_bbox(copy_bbox(1))}")[2])
    assert arrows and not arrows & {f["id"] for f in doc2["features"]}
    empty = service.get("/v1/versions/1/features?bbox=120.0,31.0,120.01,31.01")
    assert empty[0] == 200 and json.loads(empty[2])["features"] == []


def test_opendrive_of_a_box(service, tmp_path):
    from formats.opendrive import read_opendrive

    status, headers, body = service.get(f"/v1/versions/1/opendrive?bbox={_bbox(copy_bbox(0))}")
    assert status == 200 and headers["content-type"] == "application/xml"
    assert b"<OpenDRIVE" in body[:500]
    path = tmp_path / "box.xodr"
    path.write_bytes(body)
    model = read_opendrive(path)
    assert len(model.lanes) >= 4
    status, _, body = service.get(
        f"/v1/versions/1/opendrive?bbox={_bbox(copy_bbox(0))}&odr_version=1.8"
    )
    assert status == 200 and b'revMinor="8"' in body[:1000]


def test_opendrive_of_a_box_without_lanes_is_422(service):
    for box in ("120.0,31.0,120.01,31.01", "120.3600,31.5858,120.36001,31.58581"):
        status, _, body = service.get(f"/v1/versions/1/opendrive?bbox={box}")
        assert status == 422 and "no lane" in json.loads(body)["error"]


# -------------------------------------------------------------------------------- publish


@pytest.fixture
def publish_service(store_url):
    """An empty store (tests/conftest.py's store_url, both backends) served with a 1 MiB cap."""
    from tiles.store import open_store

    with open_store(store_url) as store:
        keys = [store.create_key(r) for r in ("reader", "publisher", "reader")]
    with Served(store_url, extra=("--max-body-mb", str(MAX_BODY_MB))) as served:
        yield Service(store_url, served.url, served.port, *keys, {})


def test_publish_through_post(publish_service):
    from formats.localstd import to_xml_bytes

    svc = publish_service
    headers = {"Content-Type": "application/xml", "X-API-Key": svc.publisher}
    body1 = to_xml_bytes(map_v1())
    assert len(body1) < MAX_BODY_MB * 2**20
    status, got, body = svc.request("POST", "/v1/versions", headers, body1)
    assert status == 201, body
    doc = json.loads(body)
    assert doc["version"] == 1 and doc["previous"] is None and got["location"] == "/v1/versions/1"
    # the new version is visible at once (no stale "latest")
    assert json.loads(svc.get("/v1/versions/latest")[2])["version"] == 1
    status, _, body = svc.request("POST", "/v1/versions", headers, body1)
    assert status == 200 and json.loads(body)["unchanged"] is True
    zipped = gzip.compress(to_xml_bytes(map_v2()))
    status, _, body = svc.request("POST", "/v1/versions", {**headers, **POST_HEADERS}, zipped)
    assert status == 201 and json.loads(body)["changes"] == {"deleted": 2}
    # a gzip body without Content-Encoding is recognised by its magic bytes too
    status, _, body = svc.request(
        "POST", "/v1/versions", {**headers, "Content-Type": "application/gzip"}, zipped
    )
    assert status == 200
    changes = json.loads(svc.get("/v1/changes?from=1&to=2")[2])
    assert len(changes["tiles"]) == 1
    from tiles.store import open_store

    with open_store(svc.store_url) as store:
        assert store.latest_version() == 2


def _raw_post(port: int, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


def test_oversized_bodies_get_413(publish_service):
    svc = publish_service
    # Content-Length is checked before anything is read: the 10 GB never has to arrive
    start = time.monotonic()
    answer = _raw_post(
        svc.port,
        b"POST /v1/versions HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
        b"X-API-Key: " + svc.publisher.encode() + b"\r\nContent-Length: 10000000000\r\n\r\n",
        b"<xsmap",
    )
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - start < 5
    # a chunked body without a length is cut off at the limit
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_MB * 16 + 2))
    answer = _raw_post(
        svc.port,
        b"POST /v1/versions HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
        b"X-API-Key: " + svc.publisher.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunks + b"0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
    # the limit applies before the role check? No: without a key a big body is 401
    status, _, _ = svc.request(
        "POST", "/v1/versions", {"Content-Type": "application/xml"}, b"x" * (2 * 2**20)
    )
    assert status == 401
    assert svc.get("/healthz", key=None)[0] == 200


@pytest.mark.parametrize(
    ("headers", "body", "expected", "message"),
    [
        ({"Content-Type": "text/plain"}, b"<xsmap/>", 415, "content type"),
        ({"Content-Type": "application/json"}, b"{}", 415, "content type"),
        ({}, b"<xsmap/>", 415, "content type"),
        ({"Content-Type": "application/xml", "Content-Encoding": "br"}, b"<x/>", 415, "encoding"),
        ({"Content-Type": "application/xml"}, b"", 400, "empty"),
        ({"Content-Type": "application/xml"}, b"<xsmap", 400, "well-formed"),
        ({"Content-Type": "application/xml"}, b"\x1f\x8bnot gzip", 400, "gzip"),
        ({"Content-Type": "application/xml"}, b"<other/>", 400, "XSD"),
        (
            {"Content-Type": "application/xml"},
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<xsmap>&e;</xsmap>",
            400,
            "DOCTYPE",
        ),
    ],
    ids=["text", "json", "none", "br", "empty", "broken", "bad-gzip", "not-xsmap", "xxe"],
)
def test_bad_bodies_are_refused(service, headers, body, expected, message):
    status, _, answer = service.request(
        "POST", "/v1/versions", {**headers, "X-API-Key": service.publisher}, body
    )
    assert status == expected, answer
    doc = json.loads(answer)
    assert message.lower() in doc["error"].lower() and b"root:" not in answer
    assert json.loads(service.get("/v1/versions")[2])["latest"] == 2  # nothing published


# ----------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_serve_with_two_workers(service):
    with Served(service.store_url, workers=2) as served:
        tile = tile_of_copy(service, 0)
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        for _ in range(20):  # keep-alive, both workers accept on the same socket
            conn.request(
                "GET",
                f"/v1/versions/1/tiles/{tile}",
                headers={"X-API-Key": service.reader, "Accept-Encoding": "gzip"},
            )
            r = conn.getresponse()
            assert (
                r.status == 200
                and hashlib.sha256(r.read()).hexdigest() == (service.manifests[1][tile])
            )
        conn.close()


def test_serve_refuses_a_bad_store_with_exit_3(tmp_path):
    for url in ("ftp://example.org/store", f"sqlite:///{tmp_path}/missing/dir/store.db"):
        proc = subprocess.run(
            [sys.executable, "-m", "flows.cli.main", "serve", "--store", url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("hdmap serve: error:")


def test_a_gzip_bomb_is_stopped_at_the_map_limit(store_url):
    from tests.mapservice import ThreadServer
    from tiles.service import create_app
    from tiles.store import open_store

    with open_store(store_url) as store:
        key = store.create_key("publisher")
    app = create_app(store_url, max_map_bytes=2**20)
    bomb = gzip.compress(b"\0" * (64 * 2**20))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 2**20
    try:
        with ThreadServer(app) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request(
                "POST", "/v1/versions", body=bomb,
                headers={"X-API-Key": key, "Content-Type": "application/gzip"},
            )  # fmt: skip
            r = conn.getresponse()
            doc = json.loads(r.read())
            assert r.status == 413 and "limit" in doc["error"]
    finally:
        app.close()
    with open_store(store_url) as store:
        assert store.latest_version() is None


def test_limits_are_checked():
    from tiles.service import Limits

    assert Limits(max_bbox_tiles=4).max_bbox_tiles == 4
    for bad in ({"max_bbox_tiles": -1}, {"key_ttl_s": "2"}, {"threads": True}):
        with pytest.raises(ValueError, match="service limit"):
            Limits(**bad)
    with pytest.raises(TypeError):
        Limits(no_such_limit=1)


def test_a_post_keeps_the_tile_level_of_the_versions_before(store_url):
    from formats.localstd import to_xml_bytes
    from tests.mapservice import ThreadServer
    from tiles.service import create_app
    from tiles.store import open_store

    with open_store(store_url) as store:
        publish(store, map_v1(), level=14)
        key = store.create_key("publisher")
    app = create_app(store_url)
    try:
        with ThreadServer(app) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request(
                "POST", "/v1/versions", body=to_xml_bytes(map_v2()),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/xml"},
            )  # fmt: skip
            r = conn.getresponse()
            assert r.status == 201 and json.loads(r.read())["version"] == 2
    finally:
        app.close()
    with open_store(store_url) as store:
        assert store.version_info(2).level == 14
        assert len(store.manifest(2)) >= len(store.manifest(1))
