"""Helpers for the map-service tests and benchmark: multi-tile maps, stores, running servers.

:func:`spread_model` places copies of :func:`tests.common.sample_model` 5 km apart (EPSG:4549
metres), so a map covers several level-13 tiles; :class:`Served` runs ``hdmap serve`` in a
subprocess on a free port; :class:`ThreadServer` runs an ASGI app with uvicorn in a thread (over a
real socket) when a test needs to wrap the app.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer

from pipeline.model import MapModel, feature_id
from tests.common import sample_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY_SPACING_M = 5000.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shifted(model: MapModel, dx: float, dy: float) -> MapModel:
    """``model`` moved by (dx, dy) metres, with IDs re-derived from the new anchors."""
    moved = []
    ids: dict[str, str] = {}
    offset = np.array([dx, dy, 0.0])
    for f in model.features():
        geometry = shapely.transform(f.geometry, lambda c: c + offset, include_z=True)
        new = feature_id(f.id_prefix, geometry, f.provenance.survey_id)
        ids[f.id] = new
        moved.append(f.replace(geometry=geometry, id=new))

    def ref(r: str | None) -> str | None:
        return None if r is None else ids[r]

    out = []
    for f in moved:
        if f.layer == "lanes":
            f = f.replace(
                left_boundary=ref(f.left_boundary),
                right_boundary=ref(f.right_boundary),
                predecessors=tuple(ids[r] for r in f.predecessors),
                successors=tuple(ids[r] for r in f.successors),
                left_neighbour=ref(f.left_neighbour),
                right_neighbour=ref(f.right_neighbour),
                junction=ref(f.junction),
            )
        elif f.layer == "junctions":
            f = f.replace(lanes=tuple(ids[r] for r in f.lanes))
        elif f.layer == "signs":
            f = f.replace(pole=ref(f.pole))
        out.append(f)
    return MapModel.from_features(model.crs, out, height_datum=model.height_datum, name=model.name)


def spread_model(copies: int = 3, *, drop: dict[int, set[str]] | None = None) -> MapModel:
    """``copies`` sample roads 5 km apart eastwards; ``drop[k]``: layers left out of road k."""
    base = sample_model()
    features = []
    for k in range(copies):
        part = shifted(base, k * COPY_SPACING_M, 0.0)
        features += [f for f in part.features() if f.layer not in (drop or {}).get(k, set())]
    return MapModel.from_features(
        base.crs, features, height_datum=base.height_datum, name="service test map"
    )


@lru_cache(maxsize=16)
def copy_bbox(k: int, margin_m: float = 5.0) -> tuple[float, float, float, float]:
    """WGS84 (west, south, east, north) degrees around copy ``k`` of :func:`spread_model`."""
    x0, y0, x1, y1 = shapely.total_bounds(
        [f.geometry for f in shifted(sample_model(), k * COPY_SPACING_M, 0.0).features()]
    )
    tr = Transformer.from_crs("EPSG:4549", "EPSG:4326", always_xy=True)
    xs = [x0 - margin_m, x1 + margin_m]
    ys = [y0 - margin_m, y1 + margin_m]
    lon, lat = tr.transform([xs[0], xs[1], xs[0], xs[1]], [ys[0], ys[0], ys[1], ys[1]])
    return (min(lon), min(lat), max(lon), max(lat))


@lru_cache(maxsize=16)
def copy_ids(k: int) -> frozenset[str]:
    return frozenset({f.id for f in shifted(sample_model(), k * COPY_SPACING_M, 0.0).features()})


def publish(store: Any, model: MapModel, level: int = 13) -> int:
    """Publish ``model`` as the next version of ``store`` (tiles.publish.publish_model)."""
    from tiles.publish import publish_model

    return publish_model(store, model, level=level).version


@dataclass
class Served:
    """``hdmap serve`` in a subprocess on a free port (context manager)."""

    store_url: str
    workers: int = 1
    extra: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.port = self.port or free_port()
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.cli.main",
                "serve",
                "--store",
                self.store_url,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *self.extra,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file, not a pipe: a chatty server never blocks on it
        )
        try:
            wait_healthy(self.url, self.process, log=self._log)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def wait_healthy(
    url: str, process: subprocess.Popen | None = None, timeout_s: float = 60, log: Any = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            err = b""
            if log is not None:
                log.seek(0)
                err = log.read()
            raise RuntimeError(f"the server exited with {process.returncode}: {err.decode()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if json.loads(r.read())["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy within {timeout_s} s")


class ThreadServer:
    """An ASGI app served by uvicorn in a thread on a free loopback port (context manager)."""

    def __init__(self, app: Any):
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
