"""OpenDRIVE against files others wrote (``../shared/opendrive_samples``) and the project's
committed sample scenes (``data_samples/scenes/*/truth.gpkg``).

- every well-formed shared sample (OpenDRIVE 1.1-1.8) parses into the counts its INVENTORY.tsv
  gives and reads into a non-empty map sampled at 0.5 m or finer; the malformed one is refused
  with a one-line error naming the file and the line;
- every shared sample, read and written again by us, is valid OpenDRIVE 1.7 (XSD);
- every committed scene's truth map exports to a file with no XSD or ASAM-checker errors and
  round-trips within 0.02 m.
Tests skip when the folders (or ``.venv-qc`` for the XSDs and the checker) are absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from formats.opendrive import load_network, read_opendrive, write_opendrive
from formats.opendrive.validate import qc_venv, run_asam_checker, validate_schema
from pipeline.errors import FormatError
from tests.conftest import OPENDRIVE_SAMPLES, SAMPLES
from tests.test_opendrive import _round_trip

MALFORMED = "libodr14_Town07_prepended_comment_NOT_WELLFORMED.xodr"
BIG_BYTES = 200_000  # re-exporting files larger than this takes seconds each: marked slow


def _inventory() -> dict[str, dict[str, str]]:
    path = OPENDRIVE_SAMPLES / "INVENTORY.tsv"
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f, delimiter="\t") if row.get("ver")}


INVENTORY = _inventory()
NAMES = sorted(INVENTORY)


def _sample(name: str) -> Path:
    path = OPENDRIVE_SAMPLES / name
    if not path.exists():
        pytest.skip(f"{OPENDRIVE_SAMPLES} is absent")
    return path


def _needs_qc() -> None:
    if not (qc_venv() / "bin" / "python").exists():
        pytest.skip(f"{qc_venv()} is absent: run 'make .venv-qc/.installed' (make test does)")


def test_inventory_is_there(opendrive_samples_dir):
    assert len(NAMES) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_shared_sample_reads_with_inventory_counts(name):
    path = _sample(name)
    row = INVENTORY[name]
    net = load_network(path)
    assert net.rev_minor == int(row["ver"].split(".")[1])
    assert len(net.roads) == int(row["road"])
    assert len(net.junctions) == int(row["junction"])
    assert sum(len(r.sections) for r in net.roads) == int(row["laneSection"])
    assert sum(len(r.signals) for r in net.roads) == int(row["signal"])
    assert sum(len(r.objects) for r in net.roads) == int(row["object"])
    kinds = [g.kind for r in net.roads for g in r.plan_view.records]
    for kind in ("line", "arc", "spiral", "poly3", "paramPoly3"):
        assert kinds.count(kind) == int(row[f"pv_{kind}"]), kind
    model = read_opendrive(path)
    assert model.lanes and model.lane_boundaries
    assert len(model.signs) <= int(row["signal"])
    assert len(model.poles) + len(model.crosswalks) + len(model.stop_lines) <= int(row["object"])
    assert len(model.junctions) <= int(row["junction"])
    if row["geoRef"]:
        assert model.crs.startswith("+proj=")
    for b in model.lane_boundaries:
        xy = np.asarray(b.geometry.coords)[:, :2]
        assert np.hypot(*np.diff(xy, axis=0).T).max() <= 0.5 + 1e-6


def test_malformed_sample_is_refused_in_one_line():
    path = _sample(MALFORMED)
    with pytest.raises(FormatError) as err:
        read_opendrive(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "line 28" in message and "\n" not in message


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if int(INVENTORY[n]["size"]) > BIG_BYTES else n
        for n in NAMES
    ],
)
def test_shared_sample_rewritten_is_valid_1_7(name, tmp_path):
    _needs_qc()
    model = read_opendrive(_sample(name))
    out = tmp_path / name
    write_opendrive(model, out, date="2026-11-25")
    assert validate_schema(out, "1.7") == []
    assert len(read_opendrive(out).lanes) >= 1


def _committed() -> list[Path]:
    return sorted(SAMPLES.glob("*/truth.gpkg")) if SAMPLES.is_dir() else []


@pytest.mark.parametrize("truth", _committed(), ids=lambda p: p.parent.name)
def test_committed_scene_exports_cleanly(truth, tmp_path):
    _needs_qc()
    from formats.gpkg import read_gpkg

    model = read_gpkg(truth)
    out = tmp_path / "map.xodr"
    write_opendrive(model, out, date="2026-11-25")
    assert validate_schema(out, "1.7") == []
    assert [i for i in run_asam_checker(out) if i.level == 1] == []
    got = _round_trip(model, out, check_widths=True)
    assert got["to_file"] <= 0.02 and got["to_model"] <= 0.02 and got["width_dev"] <= 0.02, got
    assert got["mismatched"] == 0 and got["covered"] == len(model.lanes), got
    assert got["z_max"] <= 0.02, got
