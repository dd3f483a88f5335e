"""Validation benchmark: ``hdmap validate`` on the truth map of a simulated highway survey.

    >>> from tests.bench.validate_bench import measure_validation
    >>> measure_validation(5000.0)  # doctest: +SKIP
    {'length_m': 5000.0, 'features': 299, 'bytes': 5456896, 'seconds': 0.6,
     'seconds_with_truth': 2.5, 'conforms': True, 'findings': 0, ...}

The acceptance target (issue 6) is under 10 s for the map of a 5 km survey. ``seconds`` times
:func:`qa.validate.validate_file` alone (safe parse, XSD, every semantic rule); with
``seconds_with_truth`` the map is also checked statistically against itself as truth (every line
vertex and point matched).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["measure_validation"]


def measure_validation(
    length_m: float = 5000.0,
    seed: int = 1,
    *,
    workdir: str | os.PathLike[str] | None = None,
) -> dict:
    """Build the ``highway`` scene of ``length_m`` metres, write its truth, time validating it."""
    from data_samples.simulator.scenes import build_scene
    from formats.localstd import write_localstd
    from qa.validate import validate_file

    truth = build_scene("highway", seed, length_m=length_m).truth
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "map.xsmap.xml"
        write_localstd(truth, path)
        start = time.perf_counter()
        report = validate_file(path)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        with_truth = validate_file(path, truth=truth)
        seconds_with_truth = time.perf_counter() - start
        size = path.stat().st_size
    return {
        "length_m": float(length_m),
        "seed": seed,
        "features": sum(truth.counts().values()),
        "bytes": size,
        "seconds": seconds,
        "seconds_with_truth": seconds_with_truth,
        "check_points": (with_truth.accuracy or {}).get("matched", 0),
        "conforms": report.conforms and with_truth.conforms,
        "findings": len(report.findings) + len(with_truth.findings),
    }
