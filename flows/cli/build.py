"""``hdmap build``: extract a map from survey points and write every product of the build.

Runs the stage chain of :func:`pipeline.extract.extract_map`, then
:func:`flows.products.write_products`: ``features.gpkg``, ``map.xodr``, the local-standard file
(validated, with its stamp), ``qa/report.json`` and ``qa/report.html``; then ``manifest.json``.
Every output is written atomically (temporary name, then rename); the manifest comes last, so a
directory with a manifest holds the products it describes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "build_manifest", "run"]

EPILOG = """\
examples:
  hdmap build data_samples/scenes/urban/survey.laz --out build/urban \\
      --trajectory data_samples/scenes/urban/trajectory.csv \\
      --ortho data_samples/scenes/urban/ortho.tif
  hdmap build surveys/ --out build/run1 --crs EPSG:4549

SURVEY may be LAS/LAZ files or folders of them. Without --trajectory the road is the largest
flat ground region and intensity is normalised by scan angle; without --ortho (or point RGB)
marking colours are 'unknown'. A survey without road or markings gives an empty map and warnings.
Exit status 3 (one line on stderr) when an input is missing, unreadable or malformed."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``build`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "build",
        help="extract lane boundaries, lanes, stop lines, crosswalks and arrows from a survey",
        description="Extract a map from survey point clouds and write GeoPackage, OpenDRIVE, "
        "the local-standard file, QA reports and a manifest.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("surveys", metavar="SURVEY", nargs="+", type=Path, help="LAS/LAZ file(s)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--crs", default=None, help="survey CRS when the files lack one")
    parser.add_argument("--trajectory", type=Path, metavar="CSV", help="scanner trajectory CSV")
    parser.add_argument("--ortho", type=Path, metavar="TIF", help="orthophoto GeoTIFF (colours)")
    parser.set_defaults(run=run)
    return parser


def build_manifest(
    surveys: list[Path],
    trajectory: Path | None,
    ortho: Path | None,
    result: Any,
    products: Any = None,
) -> dict[str, Any]:
    """The manifest of one build: inputs with SHA-256, version, parameters, timings, counts."""
    from flows.cli.main import _version
    from pipeline.files import sha256_file

    inputs = [{"role": "survey", "path": str(p), "sha256": sha256_file(p)} for p in surveys]
    for role, path in (("trajectory", trajectory), ("ortho", ortho)):
        if path is not None:
            inputs.append({"role": role, "path": str(path), "sha256": sha256_file(path)})
    return {
        "software": {"name": "xishan-hdmap", "version": _version()},
        "inputs": inputs,
        "crs": result.model.crs,
        "parameters": result.parameters,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "feature_counts": result.model.counts(),
        "warnings": list(result.warnings),
        "products": {}
        if products is None
        else {
            key: path.name if key != "qa_json" and key != "qa_html" else f"qa/{path.name}"
            for key, path in products.paths.items()
        },
        "validation_stamp": None if products is None else dict(products.validation.stamp),
    }


def run(args: argparse.Namespace) -> int:
    import sys

    from flows.products import write_products
    from pipeline.extract import extract_map
    from pipeline.files import write_json
    from pipeline.ortho import read_ortho
    from pipeline.survey import read_info, survey_files

    files = survey_files(args.surveys)
    ortho = None
    if args.ortho is not None:
        info = read_info(files[0], crs=args.crs)
        minx, miny, _, maxx, maxy, _ = info.bounds
        ortho = read_ortho(args.ortho, dst_crs=info.crs, bounds=(minx, miny, maxx, maxy))
    result = extract_map(files, crs=args.crs, trajectory=args.trajectory, ortho=ortho)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    products = write_products(result.model, out)
    manifest = build_manifest(files, args.trajectory, args.ortho, result, products)
    write_json(out / "manifest.json", manifest, sort_keys=True)
    for warning in result.warnings:
        print(f"hdmap build: warning: {warning}", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in result.model.counts().items() if v)
    print(f"{out}: {counts or 'no features'}")
    stamp = products.validation.stamp
    print(
        f"  local standard: {stamp['result']} ({stamp['errors']} errors, "
        f"{stamp['warnings']} warnings); QA report {out / 'qa' / 'report.html'}"
    )
    return 0
