"""``hdmap serve``: the dynamic map service, an HTTP API over a tile store (tiles.service)."""

from __future__ import annotations

import argparse

from flows.cli import add_store_argument

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap serve --store sqlite:///maps/store.db
  hdmap serve --store postgresql://postgres@127.0.0.1:5432/hdmap --port 8080 --workers 2

Routes (GET unless noted): /v1/versions, POST /v1/versions (publisher key), /v1/versions/{v},
/v1/versions/{v}/manifest, /v1/versions/{v}/tiles/{tile_id}, /v1/versions/{v}/features?bbox=,
/v1/versions/{v}/opendrive?bbox=, /v1/changes?from=&to=; public: /healthz, /openapi.json.
Clients send a key ('hdmap keys create --role reader') as 'Authorization: Bearer KEY' or
'X-API-Key: KEY'. A revoked key stops working within 2 s (key lookups are cached that long).
Exit status 3 (one line on stderr) when the store cannot be opened."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a tile store over HTTP (versions, tiles, changes, features, OpenDRIVE)",
        description="Serve the map versions of a tile store as an HTTP API (OpenAPI 3.1 at "
        "/openapi.json).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes (default 1)"
    )
    parser.add_argument(
        "--max-bbox-tiles",
        type=int,
        default=16,
        metavar="N",
        help="tiles a features/OpenDRIVE box may cover (default 16; larger boxes get 413)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="largest map a publisher may POST, MiB as sent (default 64; larger get 413)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log level (default warning: no access log)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    import uvicorn

    from tiles.service import ENV_LIMITS, ENV_STORE, create_app
    from tiles.store import open_store, redact_url

    if args.workers < 1 or not 0 < args.port < 65536:
        print("hdmap serve: error: --workers must be >= 1 and --port 1-65535", file=sys.stderr)
        return 2
    limits = {
        "max_bbox_tiles": args.max_bbox_tiles,
        "max_body_bytes": int(args.max_body_mb * 2**20),
    }
    open_store(args.store).close()  # a bad URL or database: one line and exit 3, before binding
    options = dict(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level in ("info", "debug"),
        server_header=False,
        proxy_headers=False,
        http="httptools",
        loop="uvloop",
        lifespan="on",
    )
    print(
        f"serving {redact_url(args.store)} on http://{args.host}:{args.port} "
        f"({args.workers} worker{'s' if args.workers > 1 else ''})",
        file=sys.stderr,
        flush=True,
    )
    if args.workers == 1:
        uvicorn.run(create_app(args.store, **limits), **options)
    else:
        os.environ[ENV_STORE] = args.store
        os.environ[ENV_LIMITS] = json.dumps(limits)
        uvicorn.run("tiles.service:app_from_env", factory=True, workers=args.workers, **options)
    return 0
