"""Regenerate the committed sample surveys in ``data_samples/scenes/``.

Run ``python -m data_samples.make_samples`` from the project root. Each sample is exactly what
the ``hdmap simulate`` command recorded beside it in :data:`SAMPLES` writes (the same seeds give
byte-identical files), and ``data_samples/scenes/README.md`` is rewritten with the commands,
point counts and file sizes. ``--only NAME`` regenerates some samples (the README then lists
whatever the folder holds).

Every survey is kept under :data:`MAX_LAZ_BYTES` (15 MB) so the repository stays small.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.files import atomic_path

__all__ = ["MAX_LAZ_BYTES", "SAMPLES", "SCENES_DIR", "Sample", "make_samples", "write_readme"]

SCENES_DIR = Path(__file__).resolve().parent / "scenes"
MAX_LAZ_BYTES = 15_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    """One committed sample: its folder name and the simulate arguments that make it."""

    name: str
    kind: str
    seed: int
    length_m: float | None
    changed: bool = False
    description: str = ""

    @property
    def command(self) -> str:
        """The ``hdmap simulate`` command that writes this sample.

        >>> Sample("urban", "urban", 1, 120.0).command
        'hdmap simulate --kind urban --seed 1 --length-m 120 --out data_samples/scenes/urban'
        """
        parts = ["hdmap simulate", f"--kind {self.kind}", f"--seed {self.seed}"]
        if self.length_m is not None:
            parts.append(f"--length-m {self.length_m:g}")
        if self.changed:
            parts.append("--changed")
        parts.append(f"--out data_samples/scenes/{self.name}")
        return " ".join(parts)


SAMPLES: tuple[Sample, ...] = (
    Sample("urban", "urban", 11, 120.0, description="urban street with a signalised junction"),
    Sample("arterial", "arterial", 12, 160.0, description="multi-lane arterial road"),
    Sample("highway", "highway", 13, 250.0, description="divided highway"),
    Sample(
        "urban_changed",
        "urban",
        11,
        120.0,
        changed=True,
        description="the urban scene with injected changes, surveyed again",
    ),
)


def make_samples(out_dir: Path = SCENES_DIR, only: Sequence[str] = (), log=print) -> list[dict]:
    """Simulate the samples into ``out_dir`` and rewrite its README; return one record each."""
    from data_samples.simulator.simulate import simulate

    records = []
    chosen = [s for s in SAMPLES if not only or s.name in only]
    unknown = set(only) - {s.name for s in SAMPLES}
    if unknown:
        raise ValueError(f"unknown samples: {', '.join(sorted(unknown))}")
    for sample in chosen:
        log(f"{sample.name}: {sample.command}")
        started = time.perf_counter()
        result = simulate(
            sample.kind,
            sample.seed,
            out_dir / sample.name,
            length_m=sample.length_m,
            changed=sample.changed,
        )
        seconds = time.perf_counter() - started
        laz_bytes = result.scan.laz_path.stat().st_size
        log(
            f"  {result.scan.points:,} points, survey.laz {laz_bytes / 1e6:.2f} MB, {seconds:.0f} s"
        )
        if laz_bytes > MAX_LAZ_BYTES:
            raise RuntimeError(f"{sample.name}: survey.laz is {laz_bytes / 1e6:.1f} MB > 15 MB")
        records.append({"name": sample.name, "points": result.scan.points, "seconds": seconds})
    write_readme(out_dir)
    return records


def write_readme(out_dir: Path = SCENES_DIR) -> Path:
    """Rewrite ``out_dir/README.md`` from the samples present (no clock times: deterministic)."""
    rows = []
    for sample in SAMPLES:
        folder = out_dir / sample.name
        if not (folder / "scene.json").is_file():
            continue
        record = json.loads((folder / "scene.json").read_text())
        sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
        truth = record["counts"]["truth"]
        truth_text = ", ".join(f"{n} {k}" for k, n in truth.items() if n)
        rows.append((sample, record, sizes, truth_text))
    lines = [
        "# Sample surveys",
        "",
        "Simulated mobile-mapping surveys of synthetic Xishan-like roads, with their ground",
        "truth. Made by `python -m data_samples.make_samples` (do not edit by hand); each folder",
        "is exactly what its `hdmap simulate` command writes, and the same command gives",
        "byte-identical files.",
        "",
        "Each folder holds `survey.laz` (LAS 1.4 point format 6, EPSG:4549, intensity, GPS time,",
        "scan angle in 0.006° units), `trajectory.csv` (estimated scanner trajectory, 100 Hz:",
        "gps_time,x,y,z,roll_deg,pitch_deg,heading_deg; heading clockwise from grid north),",
        "`ortho.tif` (RGB true orthophoto, 5 cm, JPEG-in-TIFF), `truth.gpkg` (the exact map),",
        "`scene.json` (parameters and counts) and, for a changed variant, `changes.json`.",
        "",
        "| sample | what | points | survey.laz | ortho.tif | truth.gpkg | truth features |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for sample, record, sizes, truth_text in rows:
        mb = {k: f"{v / 1e6:.2f} MB" for k, v in sizes.items()}
        size = " | ".join(mb.get(n, "-") for n in ("survey.laz", "ortho.tif", "truth.gpkg"))
        lines.append(
            f"| `{sample.name}` | {sample.description} ({record['drive_length_m']:.0f} m) "
            f"| {record['counts']['points']:,} | {size} | {truth_text} |"
        )
    lines += ["", "Commands:", "", "```"]
    lines += [sample.command for sample, *_ in rows]
    lines += ["```", ""]
    path = out_dir / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_samples.make_samples", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=SCENES_DIR, help="folder of the samples")
    parser.add_argument(
        "--only", nargs="*", default=(), metavar="NAME", help="samples to regenerate"
    )
    args = parser.parse_args(argv)
    make_samples(args.out, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
