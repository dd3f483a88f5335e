"""Tile-service benchmark: ``hdmap serve`` beside nginx serving the same tile bytes as static files.

    python -m tests.bench.tile_service [--out docs/BENCHMARKS.md]   # only this section

>>> from tests.bench.tile_service import measure_tile_service
>>> measure_tile_service(duration_s=10)  # doctest: +SKIP
{'tiles': 38, 'tile_kib': 38.4, 'runs': [{'server': 'hdmap serve, 1 worker', ...}], ...}

The map is the simulated urban scene (seed 1) copied onto a 6 x 6 grid 5 km apart, published at
level 13: 38 tiles (some copies straddle a tile edge) of about 38 KiB gzip each.
``wrk -t2 -c32 -d10s --latency`` (after a 2 s warm-up) requests them in rotation with a reader
key and ``Accept-Encoding: gzip``, against ``hdmap serve`` with 1 and with 2 worker processes and
against nginx (2 workers, access log off) serving the same bytes from files with the same headers
(content type, ``Content-Encoding: gzip``, the strong ETag, ``Cache-Control``, ``Vary``; it only
checks that a key header is present), all on loopback in the same run. Servers and wrk share the
machine's cores, so the figures are lower than with a separate client. Target (issue 7):
>= 2,000 requests/s and p99 <= 20 ms.

Needs ``nginx`` and ``wrk`` on PATH; as root they are installed with apt-get when missing,
otherwise :class:`ToolMissing` names the command to run.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "TARGET_P99_MS",
    "TARGET_RPS",
    "ToolMissing",
    "measure_tile_service",
    "measure_tiles_or_none",
    "parse_wrk",
    "render_tile_service",
    "splice_section",
]

ROOT = Path(__file__).resolve().parents[2]
TARGET_RPS = 2000.0
TARGET_P99_MS = 20.0
GRID = 6
SPACING_M = 5000.0


class ToolMissing(RuntimeError):
    """nginx or wrk is not installed and cannot be installed here."""


def ensure_tools() -> None:
    """nginx and wrk on PATH; installed with apt-get when running as root."""
    missing = [t for t in ("nginx", "wrk") if _which(t) is None]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "wrk"], check=True, env=env)
        missing = [t for t in ("nginx", "wrk") if _which(t) is None]
    if missing:
        raise ToolMissing(f"{' and '.join(missing)} missing: sudo apt-get install -y nginx wrk")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin:/sbin")


def parse_wrk(text: str) -> dict:
    """Requests/s, latency percentiles (ms) and error counts from ``wrk --latency`` output.

    >>> out = '''  Latency Distribution
    ...      50%    1.50ms
    ...      99%   12.00ms
    ...   5000 requests in 10.00s, 1.00MB read
    ...   Non-2xx or 3xx responses: 3
    ... Requests/sec:    500.10'''
    >>> r = parse_wrk(out)
    >>> r["rps"], r["p50_ms"], r["p99_ms"], r["non_2xx"], r["requests"]
    (500.1, 1.5, 12.0, 3, 5000)
    >>> parse_wrk("")["rps"] is None
    True
    """
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
    out: dict = {"rps": None, "requests": 0, "non_2xx": 0, "socket_errors": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        out["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        out["non_2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors:(.*)", text):
        out["socket_errors"] = sum(int(v) for v in re.findall(r"\d+", m.group(1)))
    for pct in (50, 75, 90, 99):
        if m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE):
            out[f"p{pct}_ms"] = float(m.group(1)) * units[m.group(2)]
    return out


def _make_store(folder: Path) -> tuple[str, str, dict[int, bytes], dict[int, str]]:
    """A SQLite store with one version of the 6 x 6 grid of urban scenes; a reader key."""
    from data_samples.simulator.scenes import build_scene
    from pipeline.model import MapModel
    from tests.mapservice import shifted
    from tiles.publish import publish_model
    from tiles.store import open_store

    base = build_scene("urban", 1).truth
    features = []
    for i in range(GRID):
        for j in range(GRID):
            features += shifted(base, i * SPACING_M, j * SPACING_M).features()
    model = MapModel.from_features(base.crs, features, height_datum=base.height_datum)
    url = f"sqlite:///{folder / 'store.db'}"
    with open_store(url) as store:
        result = publish_model(store, model)
        manifest = store.manifest(result.version)
        blobs = {t: store.blob(h) for t, h in manifest.items()}
        key = store.create_key("reader", "benchmark")
    return url, key, blobs, manifest


_LUA = """\
local paths = {%(paths)s}
local requests = {}
local n = 0
init = function(args)
  for i, p in ipairs(paths) do
    requests[i] = wrk.format("GET", p, {["X-API-Key"] = "%(key)s", ["Accept-Encoding"] = "gzip"})
  end
end
request = function()
  n = n + 1
  return requests[(n %% #requests) + 1]
end
"""

_NGINX = """\
worker_processes %(workers)d;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
%(user)s
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  etag off;
  gzip off;
  client_body_temp_path %(dir)s/tmp;
  proxy_temp_path %(dir)s/tmp;
  fastcgi_temp_path %(dir)s/tmp;
  uwsgi_temp_path %(dir)s/tmp;
  scgi_temp_path %(dir)s/tmp;
  types { }
  map $uri $tile_etag {
%(etags)s
  }
  server {
    listen 127.0.0.1:%(port)d;
    root %(dir)s/www;
    location /v1/versions/1/tiles/ {
      if ($http_x_api_key = "") { return 401; }
      default_type application/vnd.db3202.xsmap+xml;
      add_header Content-Encoding gzip;
      add_header ETag $tile_etag;
      add_header Cache-Control "public, max-age=31536000, immutable";
      add_header Vary Accept-Encoding;
    }
  }
}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def _wrk(url: str, script: Path, duration_s: float, threads: int, connections: int) -> dict:
    cmd = [
        _which("wrk"), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr.strip()}")
    return parse_wrk(proc.stdout)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_against(
    name: str,
    process: subprocess.Popen,
    port: int,
    script: Path,
    duration_s: float,
    threads: int,
    connections: int,
) -> dict:
    try:
        _wait_port(port, process)
        url = f"http://127.0.0.1:{port}"
        _wrk(url, script, 2, threads, connections)  # warm-up: caches, connections, JIT-free
        figures = _wrk(url, script, duration_s, threads, connections)
    finally:
        _stop(process)
    print(json.dumps({"server": name, **figures}), file=sys.stderr)
    return {"server": name, **figures}


def measure_tile_service(
    duration_s: float = 10.0,
    *,
    threads: int = 2,
    connections: int = 32,
    workers: tuple[int, ...] = (1, 2),
    nginx_workers: int = 2,
) -> dict:
    """Throughput and latency of tile GETs: ``hdmap serve`` (each worker count) and nginx."""
    ensure_tools()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hdmap-tile-bench-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)  # nginx workers may run as another user
        url, key, blobs, manifest = _make_store(folder)
        paths = [f"/v1/versions/1/tiles/{t}" for t in sorted(blobs)]
        script = folder / "tiles.lua"
        script.write_text(_LUA % {"paths": ", ".join(f'"{p}"' for p in paths), "key": key})

        runs = []
        for n in workers:
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "flows.cli.main", "serve", "--store", url,
                 "--port", str(port), "--workers", str(n)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            name = f"hdmap serve, {n} worker{'s' if n > 1 else ''}"
            runs.append(_run_against(name, process, port, script, duration_s, threads, connections))

        www = folder / "www" / "v1" / "versions" / "1" / "tiles"
        www.mkdir(parents=True)
        (folder / "tmp").mkdir()
        for t, data in blobs.items():
            (www / str(t)).write_bytes(data)
        for d in (folder / "www", folder / "www" / "v1", www.parent.parent, www.parent, www):
            os.chmod(d, 0o755)
        port = _free_port()
        conf = folder / "nginx.conf"
        conf.write_text(
            _NGINX
            % {
                "workers": nginx_workers,
                "dir": folder,
                "port": port,
                "user": "user root;" if os.geteuid() == 0 else "",
                "etags": "\n".join(
                    f'    /v1/versions/1/tiles/{t} "\\"{h}\\"";' for t, h in manifest.items()
                ),
            }
        )
        process = subprocess.Popen(
            [_which("nginx"), "-p", str(folder), "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        name = f"nginx static files, {nginx_workers} workers"
        nginx = _run_against(name, process, port, script, duration_s, threads, connections)
        runs.append(nginx)

    ours = [r for r in runs if r["server"].startswith("hdmap")]
    best = max(ours, key=lambda r: r["rps"])
    sizes = [len(b) for b in blobs.values()]
    return {
        "tiles": len(blobs),
        "load_average": load,
        "tile_kib": sum(sizes) / len(sizes) / 1024,
        "duration_s": duration_s,
        "threads": threads,
        "connections": connections,
        "runs": runs,
        "best": best["server"],
        "ratio": best["rps"] / nginx["rps"] if nginx["rps"] else None,
        "meets_target": any(
            r["rps"] >= TARGET_RPS and r.get("p99_ms", math.inf) <= TARGET_P99_MS for r in ours
        ),
    }


def render_tile_service(figures: dict) -> list[str]:
    """The BENCHMARKS.md section for :func:`measure_tile_service` figures."""
    lines = [
        "## Serving tiles",
        "",
        f"`wrk -t{figures['threads']} -c{figures['connections']} -d{figures['duration_s']:g}s "
        f"--latency` over {figures['tiles']} level-13 tiles (simulated urban scene on a "
        f"{GRID} x {GRID} grid, {figures['tile_kib']:.0f} KiB gzip each), reader key, "
        "`Accept-Encoding: gzip`; server and wrk share this machine's cores (loopback). nginx "
        "serves the same bytes from files with the same headers. 1-minute load average before "
        f"the run: {figures.get('load_average', float('nan')):.1f} (other jobs on the machine "
        "lengthen the latency tail of every server alike).",
        "",
        "| server | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in figures["runs"]:
        lines.append(
            f"| {r['server']} | {r['rps']:,.0f} | {r.get('p50_ms', float('nan')):.2f} | "
            f"{r.get('p99_ms', float('nan')):.2f} | {r['non_2xx'] + r['socket_errors']} |"
        )
    ratio = figures["ratio"]
    lines += [
        "",
        f"Best `hdmap serve` ({figures['best']}) / nginx throughput: "
        f"{'-' if ratio is None else f'{ratio:.2f}'}.",
        "",
        f"Target (issue 7): >= {TARGET_RPS:,.0f} requests/s and p99 <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if figures['meets_target'] else 'not met'}.",
        "",
    ]
    return lines


def measure_tiles_or_none(duration_s: float = 10.0) -> dict | None:
    """:func:`measure_tile_service`, or None (reason on stderr) when nginx or wrk is missing."""
    try:
        return measure_tile_service(duration_s)
    except ToolMissing as exc:
        print(f"tile-service benchmark skipped: {exc}", file=sys.stderr)
        return None


def splice_section(document: str, lines: list[str]) -> str:
    r"""``document`` with its "## Serving tiles" section replaced by ``lines`` (or appended).

    >>> doc = "# B\n\n## Serving tiles\n\nold\n\n## Next\n"
    >>> splice_section(doc, ["## Serving tiles", "new", ""])
    '# B\n\n## Serving tiles\nnew\n\n## Next\n'
    >>> splice_section("# B\n", ["## Serving tiles", ""])
    '# B\n\n## Serving tiles\n'
    """
    head = lines[0]
    start = document.find(head + "\n")
    section = "\n".join(lines)
    if start < 0:
        return document.rstrip("\n") + "\n\n" + section
    end = document.find("\n## ", start + len(head))
    rest = "" if end < 0 else document[end + 1 :]
    return document[:start] + section + ("\n" + rest if rest else "")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from pipeline.files import atomic_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument(
        "--out", type=Path, help="update this BENCHMARKS.md's tile section (else print it)"
    )
    args = parser.parse_args(argv)
    result = measure_tile_service(args.duration)
    print(json.dumps(result, indent=2), file=sys.stderr)
    lines = render_tile_service(result)
    if args.out is None:
        print("\n".join(lines))
        return 0
    document = args.out.read_text(encoding="utf-8") if args.out.exists() else "# Benchmarks\n"
    with atomic_path(args.out) as tmp:
        tmp.write_text(splice_section(document, lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
