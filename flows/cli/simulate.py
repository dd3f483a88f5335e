"""``hdmap simulate``: simulate a mobile-mapping survey of a synthetic road scene.

Builds an urban, arterial or highway scene from a seed, drives a profile scanner through it and
writes survey.laz (EPSG:4549), trajectory.csv, ortho.tif, truth.gpkg and scene.json into one
folder (plus changes.json for --changed). The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DESCRIPTION = """\
Simulate a mobile-mapping survey of a synthetic road scene: build an urban, arterial or highway
scene from a seed, drive a profile scanner through it and write the survey, its trajectory, an
orthophoto and the ground truth into one folder. The same seed gives byte-identical files."""

EPILOG = """\
examples:
  hdmap simulate --kind urban --seed 1 --out out/urban
  hdmap simulate --kind urban --seed 1 --changed --out out/urban_changed
  hdmap simulate --kind highway --seed 7 --length-m 3000 --no-ortho --out out/highway3k

files written into --out:
  survey.laz      LAS 1.4 point format 6 in EPSG:4549 (intensity, GPS time, scan angle)
  trajectory.csv  gps_time,x,y,z,roll_deg,pitch_deg,heading_deg at 100 Hz
  ortho.tif       RGB orthophoto GeoTIFF, 5 cm pixels (not with --no-ortho)
  truth.gpkg      ground-truth map of the scene
  scene.json      what was simulated (parameters, counts, bounds)
  changes.json    the injected changes (with --changed)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a mobile-mapping survey of a synthetic scene",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kind", required=True, choices=("urban", "arterial", "highway"), help="kind of road scene"
    )
    parser.add_argument(
        "--seed", type=_seed, required=True, help="scene seed (a non-negative integer)"
    )
    parser.add_argument(
        "--length-m",
        type=_length,
        default=None,
        metavar="L",
        help="scene length in metres (default: per kind)",
    )
    parser.add_argument(
        "--changed", action="store_true", help="apply the scene's injected changes and re-survey it"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-ortho", action="store_true", help="skip the orthophoto")
    parser.set_defaults(run=run)


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _length(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive length")
    return value


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from data_samples.simulator.simulate import SceneError, simulate

    err = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed:>7,}/{task.total:,}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "scanning" if stage == "scan" else "ortho"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done)

        try:
            result = simulate(
                args.kind,
                args.seed,
                args.out,
                length_m=args.length_m,
                changed=args.changed,
                ortho=not args.no_ortho,
                progress=progress,
            )
        except SceneError as exc:  # a scene that cannot be laid out (too short for its kind)
            bar.stop()
            err.print(f"hdmap simulate: error: {exc}")
            return 2
    elapsed = time.perf_counter() - started
    scan = result.scan
    err.print(
        f"simulated {args.kind} seed {args.seed}{' (changed)' if args.changed else ''}: "
        f"{scan.points:,} points, {scan.profiles:,} profiles, {scan.duration_s:.1f} s of driving, "
        f"in {elapsed:.1f} s",
        soft_wrap=True,
    )
    if result.changes:
        err.print(f"injected changes: {len(result.changes)} (see changes.json)")
    for path in result.files:
        err.print(f"  {path}  ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
