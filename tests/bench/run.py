"""``make bench``: measure, then write the figures to ``docs/BENCHMARKS.md``.

Each measurement runs in a fresh child process so that its peak RSS is its own. Simulated surveys
are made once and cached under ``out/bench/`` (keyed by kind, seed and length).

    python -m tests.bench.run --out docs/BENCHMARKS.md [--points 30e6]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

from pipeline.files import atomic_path
from tests.bench.read_bench import measure_chunked_read, measure_decode

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "out" / "bench"
PILOT_LENGTH_M = 200.0


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f"{mem_kib / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem = "unknown memory"
    libs = ", ".join(f"{p} {version(p)}" for p in ("numpy", "laspy", "lazrs", "open3d"))
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {libs}"
    )


def simulated_highway(target_points: float, seed: int = 7) -> Path:
    """A simulated highway survey of about ``target_points`` points (cached)."""
    from data_samples.simulator.simulate import simulate

    pilot_dir = CACHE / f"highway-s{seed}-{PILOT_LENGTH_M:.0f}m"
    pilot = pilot_dir / "survey.laz"
    if not pilot.exists():
        simulate("highway", seed, pilot_dir, length_m=PILOT_LENGTH_M, ortho=False)
    import laspy

    with laspy.open(pilot) as f:
        per_m = f.header.point_count / PILOT_LENGTH_M
    length_m = round(target_points / per_m / 50.0) * 50.0
    out_dir = CACHE / f"highway-s{seed}-{length_m:.0f}m"
    survey = out_dir / "survey.laz"
    if not survey.exists():
        print(
            f"simulating a {length_m:.0f} m highway (~{target_points / 1e6:.0f}M points) ...",
            file=sys.stderr,
        )
        simulate("highway", seed, out_dir, length_m=length_m, ortho=False)
    return survey


def render(
    results: list[dict], machine: str, exports: dict | None = None, tiles: dict | None = None
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m tests.bench.run`); do not edit by hand.",
        "Each figure is one run in a fresh process; timings on these shared machines vary by about",
        "+-40%, so compare ratios within one run.",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- machine: {machine}",
        "",
        "## Reading a survey",
        "",
        "`chunked` is `pipeline.survey.iter_chunks` (1M-point chunks, unit conversion and NaN "
        "checks included); `whole` is a plain `laspy.read` of the file (the decode floor, all in "
        "memory).",
        "",
        "| survey | points | LAZ MB | read | seconds | M points/s | peak RSS MB "
        "| after imports MB |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['survey']} | {r['points']:,} | {r['size_mb']:.1f} | {r['mode']} | "
            f"{r['seconds']:.1f} | {r['points_per_s'] / 1e6:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['baseline_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "Target (foundation issue): chunked-read peak memory for a 30M-point LAZ under 1 GB.",
        "",
    ]
    if exports:
        odr, val = exports["opendrive"], exports["validate"]
        lines += [
            "## Exporting and validating the map of a 5 km survey",
            "",
            f"The truth map of a simulated {odr['length_m'] / 1000:.0f} km highway "
            f"(seed {odr['seed']}, {odr['lanes']} lanes); the local-standard file holds "
            f"{val['features']} features.",
            "",
            "| step | seconds | result |",
            "|---|---:|---|",
            f"| write OpenDRIVE {odr['version']} | {odr['write_s']:.2f} | "
            f"{odr['bytes'] / 1024:.0f} KiB, {odr['roads']} roads |",
            f"| read it back | {odr['read_s']:.2f} | "
            f"max boundary deviation {odr['max_round_trip_m'] * 1000:.1f} mm |",
            f"| XSD validation | {_secs(odr['xsd_s'])} | {odr['xsd_errors']} errors |",
            f"| ASAM qc-opendrive | {_secs(odr['checker_s'])} | {odr['checker_errors']} errors, "
            f"{odr['checker_warnings']} warnings |",
            f"| `hdmap validate` (local standard) | {val['seconds']:.2f} | "
            f"{'conforms' if val['conforms'] else 'does not conform'} |",
            f"| `hdmap validate --truth` | {val['seconds_with_truth']:.2f} | "
            f"{val['check_points']:,} check points |",
            "",
            "Target (local-standard issue): validating the map of a 5 km survey in under 10 s.",
            "",
        ]
    if tiles:
        from tests.bench.tile_service import render_tile_service

        lines += render_tile_service(tiles)
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--points", type=float, default=30e6, help="survey size (default 30e6)")
    args = parser.parse_args(argv)

    survey = simulated_highway(args.points)
    size_mb = survey.stat().st_size / 2**20
    results = []
    for mode, measure in (("chunked", measure_chunked_read), ("whole", measure_decode)):
        figures = measure(survey)
        print(json.dumps({"mode": mode, **figures}), file=sys.stderr)
        results.append({"survey": "simulated highway", "size_mb": size_mb, "mode": mode, **figures})

    from tests.bench.opendrive_bench import measure_opendrive
    from tests.bench.validate_bench import measure_validation

    exports = {"opendrive": measure_opendrive(5000.0), "validate": measure_validation(5000.0)}
    from tests.bench.tile_service import measure_tiles_or_none

    tiles = measure_tiles_or_none()
    print(json.dumps(exports, default=str), file=sys.stderr)

    with atomic_path(args.out) as tmp:
        tmp.write_text(render(results, machine_description(), exports, tiles))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
