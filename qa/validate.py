"""Conformance validation of a local-standard file: the schema, then every rule of the catalogue.

:func:`validate_file` reads a ``*.xsmap.xml`` file safely (size limit, no entities, no DTD),
validates it against the XSD (rule XS-SCH-001; when it fails the semantic rules are not run, as
their input is not trustworthy), then runs every semantic rule of :mod:`qa.rules`, and with a
truth map the statistical accuracy rules. The result is a :class:`ValidationReport` carrying the
findings, the accuracy figures and a validation stamp (validator version, rule-catalogue
version, date, result) that ``hdmap build`` embeds in the product.

>>> import tempfile, pathlib
>>> from formats.localstd import write_localstd
>>> from pipeline.model import MapModel
>>> path = pathlib.Path(tempfile.mkdtemp()) / "map.xsmap.xml"
>>> write_localstd(MapModel("EPSG:4549", height_datum="1985 National Height Datum"), path)
>>> report = validate_file(path)
>>> report.conforms, report.findings
(True, ())
>>> report.stamp["result"]
'conforms'
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from formats.localstd import (
    DEFAULT_MAX_BYTES,
    LocalStdDocument,
    document_from_tree,
    load_xml,
    schema_errors,
    write_localstd,
)
from pipeline.errors import FormatError
from pipeline.files import write_json
from pipeline.model import MapModel
from qa.rules import SCHEMA_RULE, Context, Finding, run_rules
from standards import STANDARD_NUMBER, rule_catalogue

__all__ = [
    "VALIDATOR_NAME",
    "ValidationReport",
    "read_truth",
    "validate_file",
    "validation_stamp",
    "validator_version",
    "write_json_report",
    "write_validated",
]

VALIDATOR_NAME = "hdmap-validate"


def validator_version() -> str:
    """The installed package version (the validator is versioned with the toolchain)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xishan-hdmap")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The outcome of validating one file."""

    path: str
    findings: tuple[Finding, ...]
    rules_run: tuple[str, ...]
    accuracy: Mapping[str, Any] | None
    stamp: Mapping[str, Any]
    document: LocalStdDocument | None = None  # None when the schema check failed

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def conforms(self) -> bool:
        """True when no error-level rule is broken (warnings allowed)."""
        return not self.errors

    @property
    def fired(self) -> frozenset[str]:
        """IDs of the rules with at least one finding."""
        return frozenset(f.rule_id for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: file, standard, stamp, rules run, accuracy and every finding."""
        return {
            "file": self.path,
            "standard": STANDARD_NUMBER,
            "stamp": dict(self.stamp),
            "conforms": self.conforms,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "rules_run": list(self.rules_run),
            "accuracy": None if self.accuracy is None else dict(self.accuracy),
            "findings": [f.to_dict() for f in self.findings],
        }


def validation_stamp(
    findings: tuple[Finding, ...] | list[Finding], today: dt.date | None = None
) -> dict[str, Any]:
    """The stamp embedded in products: validator and catalogue versions, date, result, counts.

    >>> validation_stamp([], dt.date(2026, 11, 25))["date"]
    '2026-11-25'
    """
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    return {
        "validator": VALIDATOR_NAME,
        "validatorVersion": validator_version(),
        "catalogueVersion": rule_catalogue().version,
        "date": (today or dt.datetime.now(dt.UTC).date()).isoformat(),
        "result": "nonconforming" if errors else "conforms",
        "errors": errors,
        "warnings": warnings,
    }


def read_truth(path: str | os.PathLike[str]) -> MapModel:
    """A truth map in any format :func:`formats.read_map` reads.

    Raises :class:`~pipeline.errors.HDMapError` subclasses when it cannot be read.
    """
    from formats import read_map

    return read_map(path)


def validate_file(
    path: str | os.PathLike[str],
    *,
    truth: MapModel | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    today: dt.date | None = None,
) -> ValidationReport:
    """Validate a local-standard file; with ``truth``, also its accuracy grade statistically.

    Raises :class:`~pipeline.errors.HDMapError` subclasses when the file cannot be read at all
    (missing, too big, not well-formed XML, a DOCTYPE); every other defect is a finding. A truth
    map in another CRS than the file is refused with :class:`~pipeline.errors.FormatError`.
    """
    tree = load_xml(path, max_bytes=max_bytes)
    problems = schema_errors(tree)
    if problems:
        rule = rule_catalogue().rule(SCHEMA_RULE)
        findings = tuple(
            Finding(SCHEMA_RULE, rule.severity, rule.clause, message, line=line)
            for line, message in problems
        )
        return ValidationReport(
            str(path), findings, (SCHEMA_RULE,), None, validation_stamp(findings, today)
        )
    document = document_from_tree(tree, path)
    if truth is not None and document.header.crs and truth.crs != document.header.crs:
        import pyproj

        try:
            same = pyproj.CRS.from_user_input(truth.crs) == pyproj.CRS.from_user_input(
                document.header.crs
            )
        except pyproj.exceptions.CRSError:
            same = False
        if not same:
            raise FormatError(
                f"the truth map's CRS {truth.crs!r} differs from the file's "
                f"{document.header.crs!r}",
                path=path,
            )
    ctx = Context(document, truth=truth)
    findings, ran = run_rules(ctx)
    accuracy = None
    if truth is not None and ctx.statistics:
        accuracy = {k: v for k, v in ctx.statistics.items() if k != "absolute_worst_xy"}
    ordered = tuple(findings)
    return ValidationReport(
        str(path),
        ordered,
        (SCHEMA_RULE, *ran),
        accuracy,
        validation_stamp(ordered, today),
        document,
    )


def write_json_report(report: ValidationReport, path: str | os.PathLike[str]) -> None:
    """Write the JSON report (UTF-8, indented), atomically."""
    write_json(path, report.to_dict())


def write_validated(
    model: MapModel,
    path: str | os.PathLike[str],
    *,
    accuracy_grade: str = "A",
    tile_id: int | None = None,
    map_version: int | None = None,
    today: dt.date | None = None,
) -> ValidationReport:
    """Write ``model`` as a local-standard file, validate it and embed the validation stamp.

    What ``hdmap build`` calls: the file at ``path`` ends up carrying the stamp of its own
    validation (the stamp is in the header and changes no rule's outcome).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "map.xsmap.xml"
    >>> model = MapModel("EPSG:4549", height_datum="1985 National Height Datum")
    >>> write_validated(model, path).stamp["result"]
    'conforms'
    >>> b"<validationStamp" in path.read_bytes()
    True
    """
    options = {"accuracy_grade": accuracy_grade, "tile_id": tile_id, "map_version": map_version}
    write_localstd(model, path, **options)
    report = validate_file(path, today=today)
    write_localstd(model, path, **options, stamp=report.stamp)
    return report
