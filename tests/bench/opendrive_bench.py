"""OpenDRIVE benchmark: write, XSD-validate and ASAM-check the truth of a 5 km simulated highway.

    >>> from tests.bench.opendrive_bench import measure_opendrive
    >>> measure_opendrive()  # doctest: +SKIP
    {'length_m': 5000.0, 'lanes': 6, 'roads': 1, 'bytes': 107634, 'write_s': 1.5, 'xsd_s': 0.01,
     'checker_s': 1.1, 'checker_errors': 0, 'checker_warnings': 0, 'max_round_trip_m': 0.002, ...}

The XSD and checker figures need ``.venv-qc`` (``make .venv-qc/.installed``); without it they are
``None``. Timings on shared machines vary by +-40%: compare within one run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

__all__ = ["measure_opendrive"]


def measure_opendrive(
    length_m: float = 5000.0, seed: int = 7, version: str = "1.7"
) -> dict[str, object]:
    """Time writing (and checking) the OpenDRIVE of a simulated highway of ``length_m`` metres."""
    import numpy as np
    import shapely
    from lxml import etree

    from data_samples.simulator import build_scene
    from formats.opendrive import read_opendrive, write_opendrive
    from formats.opendrive.validate import qc_venv, run_asam_checker, validate_schema

    model = build_scene("highway", seed, length_m=length_m).truth
    out: dict[str, object] = {
        "length_m": length_m,
        "seed": seed,
        "version": version,
        "lanes": len(model.lanes),
    }
    with tempfile.TemporaryDirectory(prefix="odr-bench-") as tmp:
        path = Path(tmp) / "highway.xodr"
        start = time.perf_counter()
        warnings = write_opendrive(model, path, version=version, date="2026-01-01")
        out["write_s"] = time.perf_counter() - start
        out["bytes"] = path.stat().st_size
        out["warnings"] = len(warnings)
        out["roads"] = len(etree.parse(str(path)).getroot().findall("road"))
        start = time.perf_counter()
        back = read_opendrive(path)
        out["read_s"] = time.perf_counter() - start
        ours = shapely.MultiLineString([shapely.force_2d(b.geometry) for b in back.lane_boundaries])
        out["max_round_trip_m"] = max(
            float(
                shapely.distance(ours, shapely.points(np.asarray(b.geometry.coords)[:, :2])).max()
            )
            for b in model.lane_boundaries
        )
        out.update(
            xsd_s=None, xsd_errors=None, checker_s=None, checker_errors=None, checker_warnings=None
        )
        if (qc_venv() / "bin" / "python").exists():
            start = time.perf_counter()
            out["xsd_errors"] = len(validate_schema(path, version))
            out["xsd_s"] = time.perf_counter() - start
            start = time.perf_counter()
            issues = run_asam_checker(path)
            out["checker_s"] = time.perf_counter() - start
            out["checker_errors"] = sum(1 for i in issues if i.level == 1)
            out["checker_warnings"] = sum(1 for i in issues if i.level == 2)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure_opendrive(), indent=2))
