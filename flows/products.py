"""Every product of a build, written from one :class:`~pipeline.model.MapModel`.

``write_products`` is what ``hdmap build`` (and later the Prefect flow) calls after extraction:

- ``features.gpkg``: GeoPackage in the layer contract (for GIS users);
- ``map.xodr``: ASAM OpenDRIVE (1.7 by default), georeferenced (not written for a map without
  lanes: OpenDRIVE needs a road);
- ``map.xsmap.xml``: the local-standard exchange file, validated, carrying its validation stamp;
- ``qa/report.json`` and ``qa/report.html``: the conformance findings, plus what each exporter
  could not hold.

Every file is written atomically; the same model and date give the same bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from formats.gpkg import write_gpkg
from formats.opendrive import write_opendrive
from pipeline.files import write_json
from pipeline.model import MapModel
from qa.report import write_html_report
from qa.validate import ValidationReport, write_validated
from standards import FILE_SUFFIX

__all__ = ["PRODUCT_NAMES", "Products", "write_products"]

PRODUCT_NAMES = {
    "gpkg": "features.gpkg",
    "opendrive": "map.xodr",
    "localstd": "map" + FILE_SUFFIX,
    "qa_json": "qa/report.json",
    "qa_html": "qa/report.html",
}


@dataclass(frozen=True, slots=True)
class Products:
    """Where each product went, the validation report and what exporters could not hold."""

    paths: dict[str, Path]
    validation: ValidationReport
    export_warnings: dict[str, list[str]] = field(default_factory=dict)


def write_products(
    model: MapModel,
    out_dir: str | os.PathLike[str],
    *,
    opendrive_version: str = "1.7",
    accuracy_grade: str = "A",
    today: dt.date | None = None,
) -> Products:
    """Write every build product of ``model`` into ``out_dir`` (created when missing)."""
    out = Path(out_dir)
    today = today or dt.datetime.now(dt.UTC).date()
    paths = {key: out / name for key, name in PRODUCT_NAMES.items()}

    write_gpkg(model, paths["gpkg"])
    if model.lanes:
        odr_warnings = write_opendrive(
            model, paths["opendrive"], version=opendrive_version, date=today.isoformat()
        )
    else:  # OpenDRIVE needs at least one road; an empty build still gives its other products
        del paths["opendrive"]
        odr_warnings = ["map.xodr not written: the map has no lanes (OpenDRIVE needs a road)"]
    validation = write_validated(
        model, paths["localstd"], accuracy_grade=accuracy_grade, today=today
    )
    export_warnings = {"opendrive": list(odr_warnings)}

    # the product folder may move: reports name the file relative to it
    shown = dataclasses.replace(validation, path=PRODUCT_NAMES["localstd"])
    notes = {f"OpenDRIVE {opendrive_version} export: what the format cannot hold": odr_warnings}
    write_html_report(shown, paths["qa_html"], notes)
    document = {
        "validation": shown.to_dict(),
        "export_warnings": export_warnings,
        "feature_counts": model.counts(),
    }
    write_json(paths["qa_json"], document)
    return Products(paths=paths, validation=validation, export_warnings=export_warnings)
