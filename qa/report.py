"""The HTML validation report: a summary, a small map of where the problems are, and a table.

The table lists every finding with its rule ID, clause, severity, feature ID, layer, source line
and location (metres in the file's CRS). The map (a matplotlib PNG embedded as base64, so the
report is one file) draws the features in grey and the findings as red (error) and orange
(warning) marks.

>>> import tempfile, pathlib
>>> from qa.validate import ValidationReport, validation_stamp
>>> path = pathlib.Path(tempfile.mkdtemp()) / "report.html"
>>> write_html_report(ValidationReport("m.xsmap.xml", (), (), None, validation_stamp([])), path)
>>> "conforms" in path.read_text(encoding="utf-8")
True
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.files import atomic_path
from qa.validate import ValidationReport
from standards import STANDARD_NUMBER, rule_catalogue

__all__ = ["problem_map_png", "render_html", "write_html_report"]

_COLOURS = {"error": "#d62728", "warning": "#ff7f0e"}


def problem_map_png(report: ValidationReport, *, size_in: float = 6.0) -> bytes | None:
    """PNG bytes of the problem map, or None when no finding has a location."""
    located = [f for f in report.findings if f.x is not None and f.y is not None]
    if not located:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from formats.localstd import raw_geometry

    fig, ax = plt.subplots(figsize=(size_in, size_in), dpi=100)
    try:
        if report.document is not None:
            for raw in report.document.features:
                try:
                    g = raw_geometry(raw)
                except ValueError:
                    continue
                xy = np.asarray(
                    g.exterior.coords if g.geom_type == "Polygon" else g.coords, dtype=float
                )
                if not np.isfinite(xy).all():
                    continue
                if len(xy) == 1:
                    ax.plot(xy[:, 0], xy[:, 1], ".", color="#bbbbbb", markersize=3)
                else:
                    ax.plot(xy[:, 0], xy[:, 1], "-", color="#bbbbbb", linewidth=0.6)
        for severity, colour in _COLOURS.items():
            pts = [(f.x, f.y) for f in located if f.severity == severity]
            if pts:
                a = np.asarray(pts)
                ax.scatter(a[:, 0], a[:, 1], s=40, marker="x", color=colour, label=severity)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("easting (m)")
        ax.set_ylabel("northing (m)")
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(labelsize=7)
        ax.legend(loc="best", fontsize=8)
        ax.set_title("validation findings", fontsize=10)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _cell(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def render_html(report: ValidationReport, notes: Mapping[str, Sequence[str]] | None = None) -> str:
    """The report as one self-contained HTML page (UTF-8).

    ``notes`` adds one section per key (its title) listing the lines given, e.g. what an
    exporter could not hold.
    """
    stamp = report.stamp
    result = "conforms" if report.conforms else "does not conform"
    rows = []
    for f in report.findings:
        where = "" if f.x is None else f"{f.x:.3f}, {f.y:.3f}"
        rows.append(
            f'<tr class="{f.severity}"><td>{_cell(f.rule_id)}</td><td>{_cell(f.clause)}</td>'
            f"<td>{_cell(f.severity)}</td><td>{_cell(f.feature_id)}</td><td>{_cell(f.layer)}"
            f"</td><td>{_cell(f.line)}</td><td>{where}</td><td>{_cell(f.message)}</td></tr>"
        )
    png = problem_map_png(report)
    figure = (
        f'<p><img alt="map of findings" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"></p>'
        if png
        else ""
    )
    accuracy = ""
    if report.accuracy:
        items = "".join(
            f"<li>{_cell(k)}: {_cell(v)}</li>" for k, v in sorted(report.accuracy.items())
        )
        accuracy = f"<h2>Accuracy against truth</h2><ul>{items}</ul>"
    catalogue = rule_catalogue()
    table = (
        "<table><thead><tr><th>rule</th><th>clause</th><th>severity</th><th>feature</th>"
        "<th>layer</th><th>line</th><th>location (x, y)</th><th>message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No findings.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation report: {_cell(Path(report.path).name)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}
tr.error td:nth-child(3) {{ color: {_COLOURS["error"]}; font-weight: bold; }}
tr.warning td:nth-child(3) {{ color: {_COLOURS["warning"]}; }}
</style></head><body>
<h1>Validation report</h1>
<p>File: <code>{_cell(report.path)}</code><br>
Standard: {_cell(STANDARD_NUMBER)}, rule catalogue {_cell(catalogue.version)}<br>
Validator: {_cell(stamp.get("validator"))} {_cell(stamp.get("validatorVersion"))},
date {_cell(stamp.get("date"))}<br>
Result: <strong>{result}</strong> ({len(report.errors)} errors, {len(report.warnings)} warnings;
{len(report.rules_run)} rules run)</p>
{accuracy}
{figure}
<h2>Findings</h2>
{table}
{_notes_html(notes or {})}
</body></html>
"""


def _notes_html(notes: Mapping[str, Sequence[str]]) -> str:
    parts = []
    for title, lines in notes.items():
        items = "".join(f"<li>{_cell(line)}</li>" for line in lines) or "<li>none</li>"
        parts.append(f"<h2>{_cell(title)}</h2><ul>{items}</ul>")
    return "\n".join(parts)


def write_html_report(
    report: ValidationReport,
    path: str | os.PathLike[str],
    notes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write the HTML report to ``path`` atomically (``notes`` as in :func:`render_html`)."""
    text = render_html(report, notes)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
