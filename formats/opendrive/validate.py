"""Check OpenDRIVE files with the ASAM tools: XSD validation, the ASAM quality checker, pyxodr.

The ASAM checker (``asam-qc-opendrive``, which ships the XSDs 1.1-1.8) and ``pyxodr`` pin
``numpy<2``, so they live in a virtual environment of their own, ``.venv-qc`` at the project
root (``make .venv-qc/.installed``; override with ``HDMAP_QC_VENV``), and run as subprocesses.
XSD 1.4-1.7 validate in-process with lxml; 1.8 needs XSD 1.1 (``xmlschema.XMLSchema11``, in
``.venv-qc``). The checker's exit status is always 0: :func:`run_asam_checker` reads its
``.xqar`` result (issue level 1 = error, 2 = warning, 3 = information).

>>> qc_venv().name
'.venv-qc'
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from pipeline.errors import HDMapIOError

__all__ = [
    "CheckerIssue",
    "CheckerReport",
    "asam_checker_report",
    "pyxodr_boundaries",
    "qc_venv",
    "run_asam_checker",
    "schema_file",
    "validate_schema",
]

# as qc_opendrive/schema/schema_files.py lists them
_SCHEMA_FILES = {
    "1.1": "1.1/OpenDRIVE_1.1.xsd",
    "1.2": "1.2/OpenDRIVE_1.2.xsd",
    "1.3": "1.3/OpenDRIVE_1.3.xsd",
    "1.4": "1.4/OpenDRIVE_1.4H.xsd",
    "1.5": "1.5/OpenDRIVE_1.5M.xsd",
    "1.6": "1.6.1/opendrive_16_core.xsd",
    "1.7": "1.7.0/opendrive_17_core.xsd",
    "1.8": "1.8.0/OpenDRIVE_Core.xsd",
}


def qc_venv() -> Path:
    """The checker's virtual environment: ``$HDMAP_QC_VENV`` or ``<project>/.venv-qc``."""
    env = os.environ.get("HDMAP_QC_VENV")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".venv-qc"


def _python(venv: Path | None) -> Path:
    venv = venv or qc_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        raise HDMapIOError("no checker environment; run 'make .venv-qc/.installed'", path=venv)
    return python


def schema_file(version: str, venv: Path | None = None) -> Path:
    """The core XSD of OpenDRIVE ``version`` ("1.1".."1.8") shipped in asam-qc-opendrive."""
    python = _python(venv)
    lib = next(
        (python.parent.parent / "lib").glob("python3*/site-packages/qc_opendrive/schema"), None
    )
    if lib is None:
        raise HDMapIOError("asam-qc-opendrive is not installed there", path=python.parent.parent)
    return lib / _SCHEMA_FILES[version]


_XSD11_SCRIPT = """
import sys, xmlschema
schema = xmlschema.XMLSchema11(sys.argv[1])
for e in schema.iter_errors(sys.argv[2]):
    print(str(e.reason or e.message).replace(chr(10), ' ') + ' at ' + str(e.path))
"""


def validate_schema(
    path: str | os.PathLike[str], version: str, venv: Path | None = None
) -> list[str]:
    """XSD errors of an OpenDRIVE file (empty when valid). 1.8 runs in the checker environment."""
    xsd = schema_file(version, venv)
    if version == "1.8":
        done = subprocess.run(
            [str(_python(venv)), "-c", _XSD11_SCRIPT, str(xsd), str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if done.returncode != 0:
            return [f"xmlschema failed: {done.stderr.strip().splitlines()[-1:]}"]
        return [line for line in done.stdout.splitlines() if line.strip()]
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    doc = etree.parse(str(path), parser)
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


@dataclass(frozen=True, slots=True)
class CheckerIssue:
    """One issue of the ASAM checker: level 1 error, 2 warning, 3 information."""

    level: int
    checker: str
    rule: str
    description: str


_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<Config>
  <Param name="InputFile" value="{input}"/>
  <CheckerBundle application="xodrBundle">
    <Param name="resultFile" value="{result}"/>
  </CheckerBundle>
</Config>
"""


@dataclass(frozen=True, slots=True)
class CheckerReport:
    """The ASAM checker's result: its issues and how many checkers completed or were skipped."""

    issues: tuple[CheckerIssue, ...]
    completed: int
    skipped: int

    @property
    def errors(self) -> tuple[CheckerIssue, ...]:
        return tuple(i for i in self.issues if i.level == 1)

    @property
    def warnings(self) -> tuple[CheckerIssue, ...]:
        return tuple(i for i in self.issues if i.level == 2)


def run_asam_checker(path: str | os.PathLike[str], venv: Path | None = None) -> list[CheckerIssue]:
    """Run ``qc_opendrive`` on a file and return every issue it reports."""
    return list(asam_checker_report(path, venv).issues)


def asam_checker_report(path: str | os.PathLike[str], venv: Path | None = None) -> CheckerReport:
    """Run ``qc_opendrive`` on a file: its issues and checker counts (a schema error makes it
    skip the semantic checks, so ``completed`` tells whether they ran)."""
    python = _python(venv)
    with tempfile.TemporaryDirectory(prefix="qc-odr-") as tmp:
        config = Path(tmp) / "config.xml"
        result = Path(tmp) / "result.xqar"
        config.write_text(
            _CONFIG.format(input=Path(path).resolve(), result=result), encoding="utf-8"
        )
        done = subprocess.run(
            [str(python), "-m", "qc_opendrive.main", "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
            cwd=tmp,
        )
        if not result.exists():
            raise HDMapIOError(
                f"the ASAM checker wrote no result: {done.stderr.strip()[-300:]}", path=path
            )
        root = etree.parse(str(result)).getroot()
    issues = []
    statuses = [checker.get("status", "") for checker in root.iter("Checker")]
    for checker in root.iter("Checker"):
        for issue in checker.iter("Issue"):
            issues.append(
                CheckerIssue(
                    int(issue.get("level", "0")),
                    checker.get("checkerId", ""),
                    issue.get("ruleUID", ""),
                    issue.get("description", ""),
                )
            )
    return CheckerReport(tuple(issues), statuses.count("completed"), statuses.count("skipped"))


_PYXODR_SCRIPT = """
import json, sys
from pyxodr.road_objects.network import RoadNetwork
net = RoadNetwork(sys.argv[1])
out = []
for road in net.get_roads():
    for k, section in enumerate(road.lane_sections):
        for lane in section.lanes:
            line = lane.boundary_line
            out.append({"road": str(road.id), "section": k, "lane": int(lane.id),
                        "points": [[float(v) for v in p[:2]] for p in line]})
json.dump(out, sys.stdout)
"""


def pyxodr_boundaries(path: str | os.PathLike[str], venv: Path | None = None) -> list[dict]:
    """Lane boundary polylines as pyxodr evaluates them: road, section index, lane id, points."""
    done = subprocess.run(
        [str(_python(venv)), "-c", _PYXODR_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise HDMapIOError(f"pyxodr failed: {done.stderr.strip()[-400:]}", path=path)
    return json.loads(done.stdout)
