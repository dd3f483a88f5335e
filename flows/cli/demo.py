"""``hdmap demo``: the whole job on the bundled samples, saying what it does as it goes.

1. builds the map of the urban sample survey (Prefect flow ``build_map``): GeoPackage, OpenDRIVE,
   the local-standard file, QA reports; scores it against the simulator's truth;
2. publishes it as version 1 of a fresh SQLite store ``OUT/store.db`` (flow ``publish_map``);
3. builds the re-survey of the same street after changes (``urban_changed``) and publishes it as
   version 2 with change detection (flow ``update_map``): only the tiles holding a change get new
   content;
4. prints the change records (and the changes the simulator injected), every output and how to
   start the map service on the store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "scenes"

SCORED_LAYERS = (
    "lane_boundaries",
    "lanes",
    "road_edges",
    "stop_lines",
    "crosswalks",
    "road_arrows",
    "poles",
    "signs",
)

EPILOG = """\
example:
  hdmap demo --out out/demo

Takes a few minutes on two cores (the first Prefect start creates its database). Running it again
starts a fresh store and reuses the cached blocks of the builds.
exit status: 0 done, 1 internal error, 3 a sample file is missing or unreadable."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build, publish and update a map from the bundled sample surveys",
        description="The whole job on the bundled sample surveys, saying what it does as it goes: "
        "build a map, publish it as version 1 of a fresh store, build the re-survey of the "
        "changed street and publish it as version 2 with its change records.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/demo"), metavar="DIR", help="output folder"
    )
    parser.add_argument(
        "--samples", type=Path, default=SAMPLES, metavar="DIR", help="folder of sample scenes"
    )
    parser.add_argument(
        "--runner",
        choices=("thread", "process", "dask"),
        default="thread",
        help="where blocks run (default: threads)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flows.cli.build import prefect_environment

    prefect_environment()
    from rich.console import Console

    from flows.cli.build import prefect_server, run_flow
    from flows.tasks import task_runner
    from pipeline.errors import HDMapIOError

    console = Console(highlight=False, soft_wrap=True)
    started = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    before, after = args.samples / "urban", args.samples / "urban_changed"
    for scene in (before, after):
        if not (scene / "survey.laz").is_file():
            raise HDMapIOError("sample survey missing (survey.laz)", path=scene)
    db = out / "store.db"
    store = f"sqlite:///{db}"
    flow_args = argparse.Namespace(quiet=False, json=False, verbose=False)

    def step(text: str) -> None:
        console.print(f"[bold]{text}[/] [dim]({time.perf_counter() - started:.0f} s)[/]")

    step("0. Setting up")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    console.print(f"   map store: {store} (fresh)")
    with prefect_server(lambda note: console.print(f"   {note}")) as api:
        console.print(f"   Prefect API: {api}")
        runner = task_runner(args.runner)

        step(f"1. Building the map of the urban survey ({before})")
        from flows.build import build_map
        from flows.publish import publish_map, update_map

        built = run_flow(
            build_map.with_options(task_runner=runner),
            flow_args,
            **_survey(before),
            out=str(out / "build-urban"),
        )
        _print_build(console, built)
        _print_score(console, before, Path(built["products"]["gpkg"]))

        step(f"2. Publishing it as version 1 of {store}")
        v1 = run_flow(publish_map, flow_args, build=built["out"], store=store)
        console.print(
            f"   version {v1['version']}: {len(v1['changed_tiles'])} tiles, "
            f"{v1['new_blobs']} blobs written"
        )

        step(f"3. Re-survey of the same street ({after}): build, detect changes, publish")
        updated = run_flow(
            update_map,
            flow_args,
            **_survey(after),
            store=store,
            out=str(out / "build-urban-changed"),
            runner=args.runner,
        )
    built2, v2 = updated["build"], updated["publish"]
    _print_build(console, built2)
    if v2["unchanged"]:
        console.print(f"   no change against version {v2['version']}: nothing published")
    else:
        console.print(
            f"   version {v2['version']}: {len(v2['changed_tiles'])} of "
            f"{len(v1['changed_tiles'])} tiles changed, {v2['new_blobs']} new blobs"
        )

    step("4. Change records of version 2")
    _print_changes(console, v2["records"], after / "changes.json")
    console.print(f"   as GeoJSON (WGS84): {v2['changes_geojson']}")

    console.print(f"[bold]Done[/] in {time.perf_counter() - started:.0f} s. Outputs:")
    outputs: list[tuple[str, str]] = []
    for label, summary in (("v1 build", built), ("v2 build", built2)):
        outputs += [(f"{label}: {key}", path) for key, path in summary["products"].items()]
    outputs += [("map store", str(db)), ("changes v1 -> v2", str(v2["changes_geojson"]))]
    for what, path in outputs:
        console.print(f"   {what:<22} {path}")
    console.print("[bold]Start the map service[/] on this store:")
    for line in (
        f"hdmap keys create --store {store} --role reader     # prints a key once",
        f"hdmap serve --store {store} --port 8765",
        "curl -H 'Authorization: Bearer KEY' http://127.0.0.1:8765/v1/versions",
        f"hdmap changes --store {store} --from 1 --to 2 -o changes.geojson",
    ):
        console.print(f"   {line}", markup=False)
    return 0


def _survey(scene: Path) -> dict[str, Any]:
    return {
        "surveys": [str(scene / "survey.laz")],
        "trajectory": str(scene / "trajectory.csv"),
        "ortho": str(scene / "ortho.tif"),
    }


def _print_build(console: Any, summary: dict[str, Any]) -> None:
    counts = ", ".join(f"{n} {k}" for k, n in summary["feature_counts"].items() if n)
    stamp = summary["validation"] or {}
    b = summary["blocks"]
    console.print(f"   extracted {counts or 'nothing'}")
    console.print(
        f"   {b['count']} blocks ({b['computed']} computed, {b['cached']} cached); "
        f"local standard: {stamp.get('result')} ({stamp.get('errors')} errors, "
        f"{stamp.get('warnings')} warnings); QA report {summary['products']['qa_html']}"
    )
    for warning in summary["warnings"]:
        console.print(f"   warning: {warning}", markup=False)


def _print_score(console: Any, scene: Path, gpkg: Path) -> None:
    from formats.gpkg import read_gpkg
    from qa.score import format_table, score_maps

    truth = scene / "truth.gpkg"
    if not truth.is_file():
        return
    console.print("   scored against the simulator's truth:")
    report = score_maps(read_gpkg(truth), read_gpkg(gpkg), layers=SCORED_LAYERS)
    for line in format_table(report).splitlines():
        console.print(f"   {line}", markup=False)


def _print_changes(console: Any, records: list[dict[str, Any]], injected: Path) -> None:
    if not records:
        console.print("   (no change records)")
    for r in records:
        line = (
            f"   {r['change']:<21} {r['layer']:<16} {r['feature_id']:<22} {_details(r['details'])}"
        )
        console.print(line.rstrip(), markup=False)
    if injected.is_file():
        changes = json.loads(injected.read_text())
        console.print(f"   the simulator injected {len(changes)} changes into this survey:")
        for c in changes:
            console.print(f"   {c['change']:<21} {c['layer']:<16} {c['description']}", markup=False)


def _details(details: dict[str, Any]) -> str:
    """A change record's details in one short line: ``marking dashed->solid, displacement_m 1.34``.

    >>> _details({"old": {"marking": "dashed", "color": "white"}, "new": {"marking": "solid",
    ...     "color": "white"}, "changed_length_m": 18.06, "new_ids": ["lb-1"]})
    'marking dashed->solid, changed_length_m 18.06'
    >>> _details({})
    ''
    """
    old, new = details.get("old"), details.get("new")
    parts = []
    if isinstance(old, dict) and isinstance(new, dict):
        parts += [f"{k} {old.get(k)}->{new.get(k)}" for k in new if old.get(k) != new.get(k)]
    for k, v in details.items():
        if k in ("old", "new", "old_ids", "new_ids") or isinstance(v, dict | list):
            continue
        parts.append(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)
