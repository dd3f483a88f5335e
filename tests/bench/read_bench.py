"""Survey-reading benchmarks, each run in a fresh child process so its peak memory is its own.

    >>> from tests.bench.read_bench import measure_chunked_read
    >>> measure_chunked_read("survey.laz")  # doctest: +SKIP
    {'points': 30000000, 'seconds': 9.8, 'points_per_s': 3.1e6, 'peak_rss_mb': 160.0, ...}

``peak_rss_mb`` is the child's peak resident set (``VmHWM``) after the read; ``baseline_rss_mb`` is
the same figure just after the imports, before reading, so the difference is the reading's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["measure_chunked_read", "measure_decode"]

ROOT = Path(__file__).resolve().parents[2]

# VmHWM is this process's own peak; ru_maxrss would carry the parent's peak across execve.
_HWM = """
def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_CHUNKED = """
import json, sys, time
from pipeline.survey import iter_chunks
{hwm}
baseline = hwm_kib()
start = time.perf_counter()
points, z_sum = 0, 0.0
for chunk in iter_chunks(sys.argv[1], crs=sys.argv[3] or None, chunk_points=int(sys.argv[2])):
    points += len(chunk)
    z_sum += float(chunk.xyz[:, 2].sum())
seconds = time.perf_counter() - start
peak = hwm_kib()
print(json.dumps({"points": points, "seconds": seconds, "checksum": z_sum,
                  "baseline_kib": baseline, "peak_kib": peak}))
"""

_CHUNKED = _CHUNKED.replace("{hwm}", _HWM)

_DECODE = """
import json, sys, time
import laspy
import numpy as np
{hwm}
baseline = hwm_kib()
start = time.perf_counter()
las = laspy.read(sys.argv[1])
points = len(las.points)
z_sum = float(np.asarray(las.z).sum())
seconds = time.perf_counter() - start
peak = hwm_kib()
print(json.dumps({"points": points, "seconds": seconds, "checksum": z_sum,
                  "baseline_kib": baseline, "peak_kib": peak}))
"""


_DECODE = _DECODE.replace("{hwm}", _HWM)


def measure_chunked_read(
    path: str | os.PathLike[str], chunk_points: int = 1_000_000, crs: str | None = None
) -> dict:
    """Time :func:`pipeline.survey.iter_chunks` over ``path`` in a fresh process.

    Returns ``points``, ``seconds``, ``points_per_s``, ``peak_rss_mb``, ``baseline_rss_mb`` and a
    ``checksum`` (sum of z in metres, so the work cannot be skipped). ``crs`` is the ``--crs``
    value for files without one.
    """
    return _run(_CHUNKED, [str(path), str(chunk_points), crs or ""])


def measure_decode(path: str | os.PathLike[str]) -> dict:
    """Time a plain ``laspy.read`` of ``path`` (everything in memory) in a fresh process."""
    return _run(_DECODE, [str(path)])


def _run(code: str, argv: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}): {done.stderr.strip()}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = max(raw["seconds"], 1e-9)
    return {
        "points": raw["points"],
        "seconds": raw["seconds"],
        "points_per_s": raw["points"] / seconds,
        "peak_rss_mb": raw["peak_kib"] / 1024,
        "baseline_rss_mb": raw["baseline_kib"] / 1024,
        "checksum": raw["checksum"],
    }
