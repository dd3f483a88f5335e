"""One simulated survey end to end: build a scene, drive and scan it, render its orthophoto.

:func:`simulate` writes one folder::

    survey.laz       LAS 1.4 point format 6, EPSG:4549 (scanner.py)
    trajectory.csv   estimated scanner trajectory, 100 Hz (pipeline.trajectory format)
    ortho.tif        RGB true orthophoto GeoTIFF, 5 cm (orthophoto.py; skipped with ortho=False)
    truth.gpkg       the scene's ground-truth map (formats.gpkg)
    scene.json       what was simulated: kind, seed, length, scanner parameters, scene metadata,
                     counts, bounds; no clock times, so it is deterministic too
    changes.json     the injected changes (changed=True only): apply_changes' records

The changed variant (``changed=True``) applies :func:`~data_samples.simulator.apply_changes` to
the same scene and drives it again with a different scan seed (a new drive: other navigation
errors, noise and speckle). Every file is written atomically; the same arguments give
byte-identical files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_samples.simulator.orthophoto import OrthoResult, render_ortho
from data_samples.simulator.scanner import ScannerParams, ScanResult, scan_scene
from data_samples.simulator.scene import Scene
from pipeline.files import write_json

__all__ = [
    "SIMULATION_FILES",
    "SceneError",
    "SimulationResult",
    "changed_scan_seed",
    "scene_record",
    "simulate",
]

SIMULATION_FILES = (
    "survey.laz",
    "trajectory.csv",
    "ortho.tif",
    "truth.gpkg",
    "scene.json",
    "changes.json",
)

#: progress(stage, done, total) with stage "scan" (profiles) or "ortho" (tiles)
Progress = Callable[[str, int, int], None]


class SceneError(ValueError):
    """The scene cannot be built from these arguments (unknown kind, length too short)."""


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What :func:`simulate` wrote: the folder, the files (in :data:`SIMULATION_FILES` order),
    the scan and ortho results and the injected changes (empty unless ``changed``)."""

    out_dir: Path
    kind: str
    seed: int
    changed: bool
    scan: ScanResult
    ortho: OrthoResult | None
    files: tuple[Path, ...]
    changes: tuple[dict, ...] = ()


def changed_scan_seed(seed: int) -> int:
    """The scan seed of the changed variant's re-survey (the base survey uses ``seed``).

    >>> changed_scan_seed(7) != 7
    True
    """
    return int(seed) + 1_000_003


def simulate(
    kind: str,
    seed: int,
    out_dir: str | os.PathLike[str],
    *,
    length_m: float | None = None,
    changed: bool = False,
    params: ScannerParams | None = None,
    ortho: bool = True,
    ortho_pixel_m: float = 0.05,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate a survey of a ``kind`` scene ("urban", "arterial", "highway") into ``out_dir``.

    ``length_m`` (metres) overrides the scene's default length; ``params`` defaults to
    ``ScannerParams()``. Prints nothing; pass ``progress`` to follow it. Raises
    :class:`SceneError` when the scene cannot be built (unknown kind, too short).
    """
    params = ScannerParams() if params is None else params
    from data_samples.simulator import apply_changes, build_scene
    from formats.gpkg import write_gpkg

    try:
        scene = build_scene(kind, seed, length_m=length_m)
    except ValueError as exc:
        raise SceneError(str(exc)) from exc
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    changes: list[dict] = []
    scan_seed = int(seed)
    if changed:
        scene, changes = apply_changes(scene, seed)
        scan_seed = changed_scan_seed(seed)

    files: list[Path] = []
    laz = out_dir / "survey.laz"
    traj = out_dir / "trajectory.csv"
    scan = scan_scene(
        scene,
        laz,
        params,
        scan_seed=scan_seed,
        progress=None if progress is None else (lambda d, t: progress("scan", d, t)),
        trajectory_csv=traj,
        point_source_id=2 if changed else 1,
    )
    files += [laz, traj]
    ortho_result = None
    if ortho:
        ortho_result = render_ortho(
            scene,
            out_dir / "ortho.tif",
            pixel_m=ortho_pixel_m,
            seed=seed,
            progress=None if progress is None else (lambda d, t: progress("ortho", d, t)),
        )
        files.append(ortho_result.path)
    truth = out_dir / "truth.gpkg"
    write_gpkg(scene.truth, truth)
    files.append(truth)
    record = scene_record(
        scene, kind, seed, length_m, changed, scan_seed, params, scan, ortho_result
    )
    files.append(_write_json(out_dir / "scene.json", record))
    if changed:
        files.append(_write_json(out_dir / "changes.json", changes))
    return SimulationResult(
        out_dir, kind, int(seed), changed, scan, ortho_result, tuple(files), tuple(changes)
    )


def scene_record(
    scene: Scene,
    kind: str,
    seed: int,
    length_m: float | None,
    changed: bool,
    scan_seed: int,
    params: ScannerParams,
    scan: ScanResult,
    ortho: OrthoResult | None,
) -> dict[str, Any]:
    """The content of ``scene.json`` (JSON-ready; no clock times)."""
    path = scene.drive_path
    return {
        "kind": kind,
        "seed": int(seed),
        "length_m": length_m,
        "changed": changed,
        "scan_seed": scan_seed,
        "crs": scene.crs,
        "origin": list(scene.origin),
        "speed_mps": scene.speed_mps,
        "drive_length_m": float(path.s[-1] - path.s[0]),
        "scanner": dataclasses.asdict(params),
        "scene_metadata": scene.metadata,
        "counts": {
            "points": scan.points,
            "profiles": scan.profiles,
            "surfaces": len(scene.surfaces),
            "paint_patches": len(scene.paint),
            "truth": {name: len(scene.truth.layer(name)) for name in _truth_layers(scene)},
        },
        "survey": {
            "gps_time_start": scan.gps_time_start,
            "duration_s": scan.duration_s,
            "bounds": list(scan.bounds),
            "point_source_id": 2 if changed else 1,
        },
        "ortho": None
        if ortho is None
        else {
            "pixel_m": ortho.pixel_m,
            "width": ortho.width,
            "height": ortho.height,
            "bounds": list(ortho.bounds),
        },
    }


def _truth_layers(scene: Scene) -> list[str]:
    from pipeline.model import FEATURE_TYPES

    return [t.layer for t in FEATURE_TYPES]


def _write_json(path: Path, value: Any) -> Path:
    write_json(path, value, sort_keys=True, default=_json_default)
    return path


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
