"""``hdmap build``: extract a map from survey points and write every product of the build.

Runs the Prefect flow :func:`flows.build.build_map`: the survey is cut into blocks along the
trajectory, each block is extracted (in parallel, on threads, processes or a Dask cluster), the
blocks are stitched and every product written: ``features.gpkg``, ``map.xodr``, the local-standard
file (validated, with its stamp), ``qa/report.json``, ``qa/report.html``, then ``manifest.json``.
Results of finished blocks are kept in ``OUT/.cache``: a build that was interrupted resumes where
it stopped when run again with the same inputs.

This module also holds what ``hdmap update`` and ``hdmap demo`` share: the flow options and
:func:`run_flow`, which sets Prefect up (a temporary local server when ``PREFECT_API_URL`` is unset)
and shows progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "add_flow_arguments",
    "add_parser",
    "add_survey_arguments",
    "build_parameters",
    "check_flow_arguments",
    "prefect_environment",
    "prefect_server",
    "print_build",
    "run",
    "run_flow",
    "runner_of",
]

EPILOG = """\
examples:
  hdmap build data_samples/scenes/urban/survey.laz --out build/urban \\
      --trajectory data_samples/scenes/urban/trajectory.csv \\
      --ortho data_samples/scenes/urban/ortho.tif
  hdmap build surveys/ --out build/run1 --crs EPSG:4549 --block-length-m 100 --json
  hdmap build surveys/ --out /shared/build --runner dask --dask-address tcp://10.0.0.5:8786

SURVEY may be LAS/LAZ files or folders of them. Without --trajectory the road is the largest
flat ground region and intensity is normalised by scan angle; without --ortho (or point RGB)
marking colours are 'unknown'. A survey without road or markings gives an empty map and warnings.

The build runs as a Prefect flow: with PREFECT_API_URL unset a temporary local Prefect server is
started (about 15 s); set it to use your own server (and its UI). Finished blocks are cached in
OUT/.cache: running the same command again after a crash computes only the unfinished blocks
(--fresh recomputes everything). With --runner dask the folders of the inputs and of OUT must be
visible to every Dask worker under the same paths.
Progress goes to stderr (none with --quiet); stdout gets a summary, the output folder only
(--quiet) or a JSON document (--json).
exit status: 0 built, 1 internal error, 2 bad usage, 3 an input is missing, unreadable or
malformed (one line on stderr)."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``build`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "build",
        help="extract lane boundaries, lanes, edges, markings, poles and signs from a survey",
        description="Extract a map from survey point clouds, block by block, and write "
        "GeoPackage, OpenDRIVE, the local-standard file, QA reports and a manifest.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("surveys", metavar="SURVEY", nargs="+", type=Path, help="LAS/LAZ file(s)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_survey_arguments(parser)
    add_flow_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def add_survey_arguments(parser: argparse.ArgumentParser) -> None:
    """``--crs``, ``--trajectory``, ``--ortho``: what goes with the survey files."""
    parser.add_argument("--crs", default=None, help="survey CRS when the files lack one")
    parser.add_argument("--trajectory", type=Path, metavar="CSV", help="scanner trajectory CSV")
    parser.add_argument("--ortho", type=Path, metavar="TIF", help="orthophoto GeoTIFF (colours)")


def add_flow_arguments(parser: argparse.ArgumentParser) -> None:
    """Blocks, task runner, caching and output options of the commands that run a build."""
    group = parser.add_argument_group("blocks and execution")
    group.add_argument(
        "--block-length-m",
        type=_positive,
        default=None,
        metavar="M",
        help="block length along the trajectory, metres (default 150)",
    )
    group.add_argument(
        "--overlap-m",
        type=_not_negative,
        default=None,
        metavar="M",
        help="extra points read on each side of a block, metres (default 25)",
    )
    group.add_argument(
        "--runner",
        choices=("thread", "process", "dask"),
        default="thread",
        help="where blocks run: threads (default), processes, or a Dask cluster",
    )
    group.add_argument(
        "--dask-address",
        metavar="ADDRESS",
        help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (with --runner dask; without it a "
        "temporary local cluster is started)",
    )
    group.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="blocks at a time on this machine (default: the number of CPUs)",
    )
    group.add_argument(
        "--fresh", action="store_true", help="recompute every block instead of using OUT/.cache"
    )
    out = parser.add_argument_group("output")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress; print less")
    out.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    out.add_argument(
        "-v", "--verbose", action="store_true", help="show Prefect's own log lines on stderr"
    )


def check_flow_arguments(parser_name: str, args: argparse.Namespace) -> None:
    """Usage errors the parser cannot see (exit status 2)."""
    if args.dask_address and args.runner != "dask":
        _usage(parser_name, "--dask-address needs --runner dask")


def run(args: argparse.Namespace) -> int:
    check_flow_arguments("build", args)
    prefect_environment(args.verbose)
    from flows.build import build_map

    summary = run_flow(
        build_map.with_options(task_runner=runner_of(args)),
        args,
        surveys=[str(p) for p in args.surveys],
        out=str(args.out),
        **build_parameters(args),
    )
    print_build(summary, args)
    return 0


def build_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The ``build_map`` parameters the survey and block options give (unset ones left out)."""
    params: dict[str, Any] = {
        "crs": args.crs,
        "trajectory": _opt(args.trajectory),
        "ortho": _opt(args.ortho),
        "refresh": args.fresh,
    }
    for name in ("block_length_m", "overlap_m"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return params


def runner_of(args: argparse.Namespace) -> Any:
    """The Prefect task runner of ``--runner``, ``--workers`` and ``--dask-address``."""
    prefect_environment(args.verbose)
    from flows.tasks import task_runner

    return task_runner(args.runner, workers=args.workers, address=args.dask_address)


def print_build(summary: dict[str, Any], args: argparse.Namespace) -> None:
    """What ``hdmap build`` prints: warnings on stderr, a summary (or JSON) on stdout."""
    import json

    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for warning in summary["warnings"]:
        print(f"hdmap build: warning: {warning}", file=sys.stderr)
    out = summary["out"]
    if args.quiet:
        print(out)
        return
    counts = ", ".join(f"{v} {k}" for k, v in summary["feature_counts"].items() if v)
    print(f"{out}: {counts or 'no features'}")
    stamp = summary["validation"] or {}
    print(
        f"  local standard: {stamp.get('result')} ({stamp.get('errors')} errors, "
        f"{stamp.get('warnings')} warnings); QA report {summary['products']['qa_html']}"
    )
    b = summary["blocks"]
    print(
        f"  {b['count']} blocks ({b['computed']} computed, {b['cached']} from the cache) "
        f"in {summary['seconds']:.0f} s"
    )


# running a flow from the command line


def prefect_environment(verbose: bool = False) -> None:
    """Environment defaults for Prefect, set before it is imported (values already set win):
    no analytics, a generous start-up time for the temporary server (its first start creates
    its database), and Prefect's console log lines off unless ``verbose``."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    console_level = "INFO" if verbose else "CRITICAL"
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", console_level)


@contextlib.contextmanager
def prefect_server(say: Callable[[str], None] | None = None) -> Iterator[str]:
    """The Prefect API URL to use: ``PREFECT_API_URL`` when set, else a temporary local server
    started here (stopped when the process exits), exported to the environment for the
    duration so that task-runner processes (process pool, Dask workers) reach the same API."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if url:
        _check_api(url)
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    if say is not None:
        say("starting a temporary Prefect server (set PREFECT_API_URL to use your own)")
    server = SubprocessASGIServer()  # the instance Prefect itself would start
    server.start()
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


def _check_api(url: str) -> None:
    """HDMapIOError (exit status 3) when the Prefect API at ``url`` does not answer."""
    import httpx

    from pipeline.errors import HDMapIOError

    try:  # any HTTP answer will do (Prefect Cloud wants a key for /health)
        httpx.get(f"{url.rstrip('/')}/health", timeout=10.0)
    except httpx.TransportError as exc:
        raise HDMapIOError(
            f"the Prefect API at {url} does not answer ({exc}); start it, or unset "
            "PREFECT_API_URL to use a temporary local server"
        ) from None


def run_flow(flow: Any, args: argparse.Namespace, **parameters: Any) -> dict[str, Any]:
    """Run ``flow(**parameters)`` against the Prefect API (:func:`prefect_server`), showing
    progress on stderr unless ``--quiet`` or ``--json``; returns the flow's summary."""
    prefect_environment(getattr(args, "verbose", False))
    from flows.tasks import reporting

    show = not (getattr(args, "quiet", False) or getattr(args, "json", False))
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(_progress(show))
        stack.enter_context(reporting(listener))
        stack.enter_context(prefect_server(lambda note: listener("prefect", note=note)))
        return flow(**parameters)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable[..., None]]:
    """A progress listener (:func:`flows.tasks.report`): a status line per stage and a bar for
    the blocks, on stderr with rich; a listener doing nothing when ``show`` is False."""
    if not show:
        yield lambda stage, **kw: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, highlight=False)
    progress = Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    bars: dict[str, Any] = {}

    def listener(stage: str, *, done: int | None = None, total: int | None = None, note: str = ""):
        if total is None:
            if note:
                progress.console.print(f"[dim]hdmap:[/] {note}")
            return
        if stage not in bars:
            bars[stage] = progress.add_task(note or stage, total=total)
        progress.update(bars[stage], completed=done or 0, total=total)

    with progress:
        yield listener


def _opt(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _usage(command: str, message: str) -> None:
    print(f"usage error: hdmap {command}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value
