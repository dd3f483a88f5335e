"""``hdmap validate``: check a local-standard file against DB3202/T XXXX—2026.

Exit status (this command's own, as the standard requires): 0 the file conforms (warnings
allowed), 1 it breaks an error-level rule, 2 it cannot be read at all (missing, too big, not
well-formed XML, a DOCTYPE, or an unreadable truth map).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]

EXIT_CONFORMS = 0
EXIT_NONCONFORMING = 1
EXIT_UNREADABLE = 2
_SHOWN = 50

EPILOG = """\
examples:
  hdmap validate map.xsmap.xml
  hdmap validate map.xsmap.xml --report qa/report.html --json qa/report.json
  hdmap validate map.xsmap.xml --truth truth.gpkg     also check the accuracy grade statistically

The schema (XSD) is checked first; when it fails, the semantic rules are not run.
--truth takes a GeoPackage (.gpkg) or a local-standard file in the same CRS.
exit status: 0 conforms (warnings allowed), 1 breaks an error-level rule, 2 cannot be read."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``validate`` on the ``hdmap`` command's subparsers."""
    parser = subparsers.add_parser(
        "validate",
        help="check a local-standard map file (*.xsmap.xml) against the standard's rules",
        description="Validate a local-standard file: the XSD, then every rule of the catalogue\n"
        "(IDs, references, lane graph, geometry, widths, codes, CRS, accuracy, tiles, versions).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="local-standard file to validate")
    parser.add_argument("--truth", metavar="TRUTH", help="truth map (.gpkg or .xsmap.xml)")
    parser.add_argument("--report", metavar="HTML", help="write the HTML report here")
    parser.add_argument("--json", metavar="JSON", help="write the JSON report here")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="refuse files larger than this many bytes (default 512 MiB)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Validate, print the findings, write the reports; return the exit status."""
    from formats.localstd import DEFAULT_MAX_BYTES
    from pipeline.errors import HDMapError
    from qa.report import write_html_report
    from qa.validate import read_truth, validate_file, write_json_report

    try:
        truth = read_truth(args.truth) if args.truth else None
        report = validate_file(
            args.file, truth=truth, max_bytes=args.max_bytes or DEFAULT_MAX_BYTES
        )
    except HDMapError as exc:
        print(f"hdmap validate: cannot read: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    for f in report.findings[:_SHOWN]:
        where = f" {f.feature_id}" if f.feature_id else ""
        line = f" (line {f.line})" if f.line else ""
        print(f"{f.rule_id} {f.severity} [clause {f.clause}]{where}{line}: {f.message}")
    if len(report.findings) > _SHOWN:
        print(f"... and {len(report.findings) - _SHOWN} more findings (see the reports)")
    result = "conforms" if report.conforms else "does not conform"
    print(
        f"{args.file}: {result}: {len(report.errors)} errors, {len(report.warnings)} warnings, "
        f"{len(report.rules_run)} rules run"
    )
    if args.json:
        write_json_report(report, args.json)
    if args.report:
        write_html_report(report, args.report)
    return EXIT_CONFORMS if report.conforms else EXIT_NONCONFORMING
