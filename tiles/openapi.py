"""The map service's OpenAPI 3.1 description, written by hand (served at ``/openapi.json``).

Every route of :mod:`tiles.service` is listed with its parameters, responses and security; a test
walks the document and requests each path, so the description and the service cannot drift apart.

>>> doc = openapi_document()
>>> doc["openapi"], sorted(doc["components"]["securitySchemes"])
('3.1.0', ['apiKey', 'bearer'])
>>> "/v1/versions/{version}/tiles/{tile_id}" in doc["paths"]
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["TILE_MEDIA_TYPE", "openapi_document"]

#: Media type of a tile: one local-standard XML document (DB3202/T clause 8) holding one tile.
TILE_MEDIA_TYPE = "application/vnd.db3202.xsmap+xml"

_READER = [{"bearer": ["reader"]}, {"apiKey": ["reader"]}]
_PUBLISHER = [{"bearer": ["publisher"]}, {"apiKey": ["publisher"]}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("schemas/Error")}},
    }


def _json(description: str, schema: str, headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(f"schemas/{schema}")}},
    }
    if headers:
        out["headers"] = headers
    return out


_CACHE_HEADERS = {
    "Cache-Control": {
        "description": "`public, max-age=31536000, immutable` on versioned URLs; `no-cache` "
        "when the URL says `latest`.",
        "schema": {"type": "string"},
    },
}

_AUTH_ERRORS = {
    "401": _ref("responses/Unauthorized"),
    "403": _ref("responses/Forbidden"),
}

_BAD = {"400": _ref("responses/BadRequest")}
_NOT_FOUND = {"404": _ref("responses/NotFound")}
_TOO_LARGE = {"413": _ref("responses/TooLarge")}
_UNAVAILABLE = {"503": _ref("responses/Unavailable")}


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service; ``server_url`` fills ``servers`` when given.

    >>> openapi_document("http://127.0.0.1:8765")["servers"]
    [{'url': 'http://127.0.0.1:8765'}]
    >>> openapi_document()["servers"]
    []
    """
    version = {"$ref": "#/components/parameters/version"}
    bbox = {"$ref": "#/components/parameters/bbox"}
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness check (public).",
                "security": [],
                "responses": {
                    "200": _json("The service is up.", "Health"),
                    **_UNAVAILABLE,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (public).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/v1/versions": {
            "get": {
                "operationId": "listVersions",
                "summary": "Every published version, oldest first.",
                "security": _READER,
                "responses": {
                    "200": _json("The versions.", "VersionList"),
                    **_AUTH_ERRORS,
                    **_UNAVAILABLE,
                },
            },
            "post": {
                "operationId": "publishVersion",
                "summary": "Publish a map as the next version (publisher role).",
                "description": "The body is a local-standard map (`*.xsmap.xml`, DB3202/T clause "
                "8), optionally gzip-compressed (`Content-Encoding: gzip` or a gzip body). "
                "The body size is checked against the service's limit from `Content-Length` "
                "before anything is read. The map is parsed with the safe XML parser (no DTD, "
                "no entities), compared with the latest version, and only changed tiles get new "
                "content, on the tile level of the latest version (13 for the first). A map "
                "without any change creates no version (200).",
                "security": _PUBLISHER,
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {"schema": {"type": "string", "format": "binary"}}
                        for media in (
                            TILE_MEDIA_TYPE,
                            "application/xml",
                            "text/xml",
                            "application/gzip",
                            "application/octet-stream",
                        )
                    },
                },
                "responses": {
                    "201": _json(
                        "A new version was published.",
                        "PublishResult",
                        {
                            "Location": {
                                "description": "URL of the new version.",
                                "schema": {"type": "string"},
                            }
                        },
                    ),
                    "200": _json(
                        "The map holds no change: no version was created.", "PublishResult"
                    ),
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_TOO_LARGE,
                    "415": _error("The body is not a local-standard map (content type)."),
                    **_UNAVAILABLE,
                },
            },
        },
        "/v1/versions/{version}": {
            "get": {
                "operationId": "getVersion",
                "summary": "One version's facts (`latest` for the newest).",
                "security": _READER,
                "parameters": [version],
                "responses": {
                    "200": _json("The version.", "Version", _CACHE_HEADERS),
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                },
            }
        },
        "/v1/versions/{version}/manifest": {
            "get": {
                "operationId": "getManifest",
                "summary": "A version's manifest: tile ID -> SHA-256 of the tile's gzip bytes.",
                "security": _READER,
                "parameters": [version],
                "responses": {
                    "200": _json("The manifest.", "Manifest", _CACHE_HEADERS),
                    "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                },
            }
        },
        "/v1/versions/{version}/tiles/{tile_id}": {
            "get": {
                "operationId": "getTile",
                "summary": "One tile: a local-standard XML document, gzip when accepted.",
                "description": "The strong ETag of the gzip representation is the quoted "
                "SHA-256 of the stored gzip bytes (the manifest's hash); the identity "
                "representation (client without `Accept-Encoding: gzip`) has the ETag "
                '`"<sha256>-identity"`. `If-None-Match` with a matching ETag gives 304.',
                "security": _READER,
                "parameters": [
                    version,
                    {
                        "name": "tile_id",
                        "in": "path",
                        "required": True,
                        "description": "NDS.Live packed tile ID (decimal integer).",
                        "schema": {"type": "integer", "format": "int64"},
                    },
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "Accept-Encoding",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The tile.",
                        "headers": {
                            **_CACHE_HEADERS,
                            "ETag": {"schema": {"type": "string"}},
                            "Content-Encoding": {
                                "description": "`gzip` when the client accepts it.",
                                "schema": {"type": "string"},
                            },
                            "Vary": {"schema": {"type": "string", "const": "Accept-Encoding"}},
                        },
                        "content": {
                            TILE_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                },
            }
        },
        "/v1/versions/{version}/features": {
            "get": {
                "operationId": "getFeatures",
                "summary": "Features intersecting a box, as a GeoJSON FeatureCollection (WGS84).",
                "description": "Every feature of the version whose geometry intersects the box, "
                "whole (not clipped), with its attributes as properties and its coordinates as "
                "longitude, latitude (degrees, RFC 7946) and height (metres).",
                "security": _READER,
                "parameters": [version, bbox],
                "responses": {
                    "200": {
                        "description": "The features.",
                        "headers": _CACHE_HEADERS,
                        "content": {
                            "application/geo+json": {"schema": _ref("schemas/FeatureCollection")}
                        },
                    },
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                    **_TOO_LARGE,
                },
            }
        },
        "/v1/versions/{version}/opendrive": {
            "get": {
                "operationId": "getOpenDrive",
                "summary": "OpenDRIVE 1.7 of the lanes intersecting a box.",
                "security": _READER,
                "parameters": [
                    version,
                    bbox,
                    {
                        "name": "odr_version",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["1.7", "1.8"], "default": "1.7"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The OpenDRIVE document.",
                        "headers": _CACHE_HEADERS,
                        "content": {
                            "application/xml": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                    **_TOO_LARGE,
                    "422": _error("The box holds no lane: OpenDRIVE needs at least one road."),
                },
            }
        },
        "/v1/changes": {
            "get": {
                "operationId": "getChanges",
                "summary": "What changed between two versions: tile diff and change records.",
                "description": "`tiles` lists every tile whose content differs between the "
                "manifests of `from` and `to` with its hash before and after (`after: null` is a "
                "tombstone: the tile was deleted); `changes` holds the change records published "
                "with each version in (`from`, `to`].",
                "security": _READER,
                "parameters": [
                    {
                        "name": "from",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "required": True,
                        "schema": _ref("schemas/VersionRef"),
                    },
                ],
                "responses": {
                    "200": _json("The changes.", "Changes", _CACHE_HEADERS),
                    **_BAD,
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                    **_TOO_LARGE,
                },
            }
        },
    }
    for item in paths.values():
        for operation in item.values():
            operation["responses"].setdefault("405", _ref("responses/MethodNotAllowed"))
            operation["responses"].setdefault("414", _ref("responses/UriTooLong"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Xishan HD map service",
            "version": "1.0.0",
            "description": "Versioned HD-map tiles (NDS.Live packed tile IDs, local-standard XML "
            "content), their manifests and changes, and features or OpenDRIVE of a box. "
            "Send an access key as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Keys have "
            "the role `reader` or `publisher` (a publisher may also read). Key lookups are "
            "cached for at most 2 s: a revoked key stops working within that time. Errors are "
            'JSON `{"error": "...", "status": N}`.',
        },
        "servers": [{"url": server_url}] if server_url else [],
        "security": _READER,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Access key `xsk_<key_id>_<secret>` as a bearer token.",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "parameters": {
                "version": {
                    "name": "version",
                    "in": "path",
                    "required": True,
                    "description": "A version number (1, 2, ...) or `latest`.",
                    "schema": _ref("schemas/VersionRef"),
                },
                "bbox": {
                    "name": "bbox",
                    "in": "query",
                    "required": True,
                    "description": "West,South,East,North in WGS84 degrees (west < east, south < "
                    "north); at most the service's tile limit of tiles (else 413).",
                    "schema": {"type": "string", "pattern": r"^[^,]+,[^,]+,[^,]+,[^,]+$"},
                    "example": "120.36,31.59,120.37,31.60",
                },
            },
            "responses": {
                "BadRequest": _error("Malformed version, tile ID, box or body."),
                "Unauthorized": {
                    **_error("No key, an unknown key or a revoked key."),
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                },
                "Forbidden": _error("The key's role does not allow this operation."),
                "NotFound": _error("No such version, tile or route."),
                "MethodNotAllowed": {
                    **_error("The route exists but not with this method."),
                    "headers": {"Allow": {"schema": {"type": "string"}}},
                },
                "TooLarge": _error("The request asks for too much (body, box or version range)."),
                "UriTooLong": _error("The path and query are longer than the service accepts."),
                "Unavailable": _error("The store cannot be reached."),
            },
            "schemas": _schemas(),
        },
    }


def _schemas() -> dict[str, Any]:
    sha = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    version_number = {"type": "integer", "minimum": 1}
    return {
        "Error": {
            "type": "object",
            "required": ["error", "status"],
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string"},
                "latest": {"type": ["integer", "null"]},
            },
        },
        "VersionRef": {
            "oneOf": [version_number, {"type": "string", "const": "latest"}],
        },
        "Version": {
            "type": "object",
            "required": ["version", "created", "level", "tile_count", "change_count"],
            "properties": {
                "version": version_number,
                "created": {"type": "string", "format": "date-time"},
                "level": {"type": "integer", "minimum": 0, "maximum": 15},
                "tile_count": {"type": "integer"},
                "change_count": {"type": "integer"},
                "metadata": {"type": "object"},
            },
        },
        "VersionList": {
            "type": "object",
            "properties": {
                "versions": {"type": "array", "items": _ref("schemas/Version")},
                "latest": {"type": ["integer", "null"]},
            },
        },
        "Manifest": {
            "type": "object",
            "required": ["version", "level", "tiles"],
            "properties": {
                "version": version_number,
                "level": {"type": "integer"},
                "tiles": {
                    "type": "object",
                    "description": "Tile ID (decimal text) -> SHA-256 of the tile's gzip bytes.",
                    "additionalProperties": sha,
                },
            },
        },
        "TileChange": {
            "type": "object",
            "required": ["tile_id", "before", "after"],
            "properties": {
                "tile_id": {"type": "integer"},
                "before": {"oneOf": [sha, {"type": "null"}]},
                "after": {"oneOf": [sha, {"type": "null"}], "description": "null: tombstone"},
            },
        },
        "ChangeRecord": {
            "type": "object",
            "properties": {
                "version": version_number,
                "change": {
                    "type": "string",
                    "enum": [
                        "inserted",
                        "deleted",
                        "geometry_changed",
                        "marking_changed",
                        "type_changed",
                        "connectivity_changed",
                    ],
                },
                "layer": {"type": "string"},
                "feature_id": {"type": "string"},
                "old_id": {"type": ["string", "null"]},
                "new_id": {"type": ["string", "null"]},
                "anchor": {"type": "array", "items": {"type": "number"}},
                "details": {"type": "object"},
            },
        },
        "Changes": {
            "type": "object",
            "properties": {
                "from": version_number,
                "to": version_number,
                "tiles": {"type": "array", "items": _ref("schemas/TileChange")},
                "changes": {"type": "array", "items": _ref("schemas/ChangeRecord")},
            },
        },
        "PublishResult": {
            "type": "object",
            "properties": {
                "version": version_number,
                "previous": {"type": ["integer", "null"]},
                "unchanged": {"type": "boolean"},
                "changed_tiles": {"type": "array", "items": _ref("schemas/TileChange")},
                "new_blobs": {"type": "integer"},
                "changes": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "FeatureCollection": {
            "type": "object",
            "required": ["type", "features"],
            "properties": {
                "type": {"const": "FeatureCollection"},
                "bbox": {"type": "array", "items": {"type": "number"}},
                "features": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"const": "Feature"},
                            "id": {"type": "string"},
                            "geometry": {"type": "object"},
                            "properties": {"type": "object"},
                        },
                    },
                },
            },
        },
    }
