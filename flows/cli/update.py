"""``hdmap update``: a new survey of mapped roads -> build -> change detection -> publish.

Runs the Prefect flow :func:`flows.publish.update_map`: the survey is built into ``--out`` like
``hdmap build`` does, the map is compared with the latest version of the store, and published as
the next version in which only the tiles holding a change get new content. The change records go
to ``OUT/changes.geojson`` and are summarised on stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli import add_publish_arguments, add_store_argument
from flows.cli.build import add_flow_arguments, add_survey_arguments

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap update data_samples/scenes/urban_changed/survey.laz --store sqlite:///maps.db \\
      --out build/urban-v2 --trajectory data_samples/scenes/urban_changed/trajectory.csv \\
      --ortho data_samples/scenes/urban_changed/ortho.tif
  hdmap update surveys/2026-12/ --store postgresql://postgres@127.0.0.1:5432/hdmap \\
      --out /shared/builds/2026-12 --runner dask --dask-address tcp://10.0.0.5:8786 --json

The first update of an empty store publishes version 1 (no change records). Publishing a map with
no change creates no version. stdout: the version and the changes by type (--quiet: the version
number only; --json: the build and publish summaries with every change record).
exit status: 0 published (or nothing to publish), 1 internal error, 2 bad usage, 3 an input is
missing, unreadable or malformed, or the store cannot be opened (one line on stderr)."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``update`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "update",
        help="build a new survey and publish only what changed as the next map version",
        description="Build a new survey, detect its changes against the latest published "
        "version and publish the changed tiles as the next version.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("surveys", metavar="SURVEY", nargs="+", type=Path, help="LAS/LAZ file(s)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="build folder")
    add_store_argument(parser)
    add_survey_arguments(parser)
    add_publish_arguments(parser)
    add_flow_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import json

    from flows.cli.build import (
        build_parameters,
        check_flow_arguments,
        prefect_environment,
        run_flow,
    )
    from tiles.store import open_store

    check_flow_arguments("update", args)
    with open_store(args.store):  # a bad store fails now, not after the build
        pass
    prefect_environment(args.verbose)
    from flows.publish import update_map

    summary = run_flow(
        update_map,
        args,
        surveys=[str(p) for p in args.surveys],
        store=args.store,
        out=str(args.out),
        level=args.level,
        confidentiality=args.confidentiality,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
        **build_parameters(args),
    )
    published = summary["publish"]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if args.quiet:
        print(published["version"])
        return 0
    built = summary["build"]
    counts = ", ".join(f"{v} {k}" for k, v in built["feature_counts"].items() if v)
    print(f"built {built['out']}: {counts or 'no features'}")
    if published["unchanged"]:
        print(f"no change against version {published['version']}: nothing published")
        return 0
    after = f" (after version {published['previous']})" if published["previous"] else ""
    print(
        f"published version {published['version']}{after}: "
        f"{len(published['changed_tiles'])} tiles changed, {published['new_blobs']} new blobs"
    )
    changes = published["changes"]
    for kind, n in sorted(changes.items()):
        print(f"  {kind:22s} {n}")
    print(f"  {sum(changes.values())} change records -> {published['changes_geojson']}")
    return 0
