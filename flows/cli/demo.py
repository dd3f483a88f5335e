"""``hdmap demo``: the main job on the bundled samples, saying what it does as it goes.

At this stage of the project the demo reads every committed sample survey (header, density,
trajectory, orthophoto, truth), renders a preview of each with its truth overlaid, lists the
injected changes of the changed variant, builds the map of the urban sample (GeoPackage,
OpenDRIVE, the local-standard file, QA reports), scores it against the truth, and simulates one
fresh survey to show the simulator.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "scenes"

SCORED_LAYERS = ("lane_boundaries", "lanes", "stop_lines", "crosswalks", "road_arrows")

EPILOG = """\
example:
  hdmap demo --out out/demo
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the bundled sample surveys",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="folder of sample scenes")
    parser.add_argument(
        "--seed", type=int, default=2026, help="seed of the freshly simulated survey"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from data_samples.simulator.simulate import simulate
    from flows.products import write_products
    from formats.gpkg import read_gpkg
    from pipeline.crs import crs_label
    from pipeline.extract import extract_map
    from pipeline.ortho import read_ortho
    from pipeline.survey import iter_chunks, read_info, scan_survey
    from pipeline.trajectory import read_trajectory
    from qa.preview import render_preview
    from qa.score import format_table, score_maps

    console = Console(highlight=False, soft_wrap=True)
    started = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    outputs: list[tuple[str, Path]] = []

    scenes = sorted(p for p in args.samples.iterdir() if (p / "survey.laz").is_file())
    console.print(f"[bold]1. Reading {len(scenes)} sample surveys[/] from {args.samples}")
    for scene in scenes:
        laz = scene / "survey.laz"
        info = read_info(laz)
        stats = scan_survey(laz)
        traj = read_trajectory(scene / "trajectory.csv")
        ortho = read_ortho(scene / "ortho.tif", dst_crs=info.crs)
        truth = read_gpkg(scene / "truth.gpkg")
        counts = ", ".join(f"{n} {k}" for k, n in truth.counts().items() if n)
        console.print(
            f"   [cyan]{scene.name}[/]: {info.point_count:,} points, "
            f"{stats.density_per_m2:.0f} pts/m², {crs_label(info.crs)}; "
            f"trajectory {traj.length_m:.0f} m in {traj.duration_s:.0f} s; "
            f"ortho {ortho.image.shape[2]}x{ortho.image.shape[1]} px"
        )
        console.print(f"      truth: {counts}")

        png = out / scene.name / "preview.png"
        console.print(f"      rendering preview with the truth overlaid -> {png}")
        chunks = ((c.xyz, c.intensity) for c in iter_chunks(laz))
        bounds = info.bounds
        render_preview(
            chunks,
            (bounds[0], bounds[1], bounds[3], bounds[4]),
            png,
            overlay=truth,
            title=f"{scene.name}: intensity and truth",
            crs_label=crs_label(info.crs),
        )
        outputs.append((f"preview of {scene.name}", png))

        changes = scene / "changes.json"
        if changes.is_file():
            console.print(f"   [bold]changes injected in {scene.name}[/]:")
            for record in json.loads(changes.read_text()):
                console.print(
                    f"      {record['change']:<17} {record['layer']:<16} {record['description']}"
                )

    sample = args.samples / "urban"
    built = out / "build-urban"
    console.print(f"[bold]2. Building the map of the urban sample[/] -> {built}")
    info = read_info(sample / "survey.laz")
    b = info.bounds
    result = extract_map(
        [sample / "survey.laz"],
        trajectory=sample / "trajectory.csv",
        ortho=read_ortho(sample / "ortho.tif", dst_crs=info.crs, bounds=(b[0], b[1], b[3], b[4])),
    )
    products = write_products(result.model, built)
    counts = ", ".join(f"{n} {k}" for k, n in result.model.counts().items() if n)
    stamp = products.validation.stamp
    console.print(f"   extracted {counts or 'nothing'}")
    console.print(
        f"   local standard: {stamp['result']} ({stamp['errors']} errors, "
        f"{stamp['warnings']} warnings)"
    )
    for key, path in products.paths.items():
        outputs.append((f"build: {key}", path))
    console.print("   scored against the truth (layers the extraction covers so far):")
    report = score_maps(read_gpkg(sample / "truth.gpkg"), result.model, layers=SCORED_LAYERS)
    for line in format_table(report).splitlines():
        console.print(f"   {line}", markup=False)

    fresh = out / f"simulated-urban-seed{args.seed}"
    console.print(f"[bold]3. Simulating a fresh urban survey[/] (seed {args.seed}) -> {fresh}")
    result = simulate("urban", args.seed, fresh, length_m=90.0)
    info = read_info(fresh / "survey.laz")
    console.print(f"   {info.point_count:,} points, bounds {_fmt_bounds(info.bounds)}")
    outputs.append(("fresh simulated survey", fresh))
    del result

    console.print(f"[bold]Done[/] in {time.perf_counter() - started:.0f} s. Outputs:")
    for what, path in outputs:
        console.print(f"   {what:<28} {path}")
    return 0


def _fmt_bounds(b: tuple[float, ...]) -> str:
    return f"x {b[0]:.1f}..{b[3]:.1f}, y {b[1]:.1f}..{b[4]:.1f}, z {b[2]:.1f}..{b[5]:.1f} m"
