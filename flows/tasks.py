"""What the flows share: cache keys, the retry rule, result storage, task runners, progress.

A task's cache key is the SHA-256 of everything its result depends on: the input files' SHA-256,
the task's own parameters and :func:`code_version` (the package version and a hash of the source
of ``pipeline/*.py``), so a rerun with the same inputs and code reuses the results persisted
under the build folder (``OUT/.cache/results``), and any change to them computes afresh.

>>> len(cache_key("block", 3, {"overlap_m": 25.0}))
64
>>> cache_key() == cache_key()
True
>>> is_transient_io(TimeoutError("slow disk")), is_transient_io(FileNotFoundError("gone"))
(True, False)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import HDMapIOError

__all__ = [
    "CACHE_DIR",
    "IO_RETRIES",
    "IO_RETRY_DELAY_S",
    "RUNNERS",
    "cache_key",
    "code_version",
    "flow_run_id",
    "given_cache_key",
    "is_transient_io",
    "package_version",
    "report",
    "reporting",
    "result_storage",
    "retry_on_io",
    "task_runner",
]

#: Where a build keeps its resumable state, relative to its output folder.
CACHE_DIR = ".cache"
IO_RETRIES = 2
IO_RETRY_DELAY_S = 2.0
RUNNERS = ("thread", "process", "dask")

_PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"


def package_version() -> str:
    """The installed version of ``xishan-hdmap`` ("unknown" when running from a bare tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xishan-hdmap")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def code_version() -> str:
    """The package version and the first 16 hex of a SHA-256 over ``pipeline/*.py`` (names and
    contents, in name order): any edit of a stage invalidates the cached results.

    >>> code_version().count("+")
    1
    """
    digest = hashlib.sha256()
    for path in sorted(_PIPELINE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{package_version()}+{digest.hexdigest()[:16]}"


def cache_key(*parts: Any) -> str:
    """Hex SHA-256 of ``parts`` as canonical JSON (sorted keys; other values through ``str``)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def flow_run_id() -> str | None:
    """The ID of the running Prefect flow run (None outside one)."""
    from prefect.runtime import flow_run

    return None if flow_run.id is None else str(flow_run.id)


def given_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Prefect ``cache_key_fn``: the key the flow computed and passed as ``cache_key``."""
    return parameters.get("cache_key")


def is_transient_io(exc: BaseException | None) -> bool:
    """True for an I/O failure a retry may cure (a network store, a busy disk); False for a
    missing or unreadable file, which stays missing."""
    permanent = (
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        HDMapIOError,
    )
    return isinstance(exc, OSError) and not isinstance(exc, permanent)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry transient I/O failures (:func:`is_transient_io`)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # a result that cannot be read back is no I/O hiccup of the task
        return False
    return is_transient_io(exc)


def result_storage(out_dir: str | os.PathLike[str]) -> Path:
    """The folder of a build's persisted task results, ``OUT/.cache/results`` (Prefect accepts a
    path as local result storage; on a cluster, ``OUT`` must be a folder every worker sees)."""
    path = Path(out_dir).resolve() / CACHE_DIR / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def task_runner(kind: str = "thread", *, workers: int | None = None, address: str | None = None):
    """The Prefect task runner ``kind`` (:data:`RUNNERS`): threads, processes, or
    ``prefect_dask.DaskTaskRunner`` on the cluster at ``address`` (a temporary local cluster of
    ``workers`` single-threaded processes without one)."""
    workers = workers or os.cpu_count() or 1
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    raise ValueError(f"unknown task runner {kind!r}; expected one of {', '.join(RUNNERS)}")


# progress: the flows report what they do; the command line shows it

Reporter = Callable[..., None]
_reporters: list[Reporter] = []
_lock = threading.Lock()


def report(
    stage: str, *, done: int | None = None, total: int | None = None, note: str = ""
) -> None:
    """Tell whoever listens (:func:`reporting`) that ``stage`` advanced to ``done`` of ``total``.

    >>> seen = []
    >>> with reporting(lambda stage, **kw: seen.append((stage, kw["done"]))):
    ...     report("blocks", done=1, total=3)
    >>> report("nobody listens"); seen
    [('blocks', 1)]
    """
    with _lock:
        listeners = list(_reporters)
    for listener in listeners:
        listener(stage, done=done, total=total, note=note)


@contextmanager
def reporting(listener: Reporter) -> Iterator[None]:
    """Call ``listener(stage, done=, total=, note=)`` on every :func:`report` inside the block."""
    with _lock:
        _reporters.append(listener)
    try:
        yield
    finally:
        with _lock:
            _reporters.remove(listener)
