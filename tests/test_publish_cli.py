"""``hdmap publish`` and ``hdmap changes`` through the real entry point: results and error exits.

The successful paths on real builds are in ``tests/test_tiles_e2e.py``; here a build folder is
made from the shared fixture model, which is quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flows.products import write_products
from pipeline.files import write_json
from tests.common import sample_model


def hdmap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HDMAP_STORE": ""},
        timeout=300,
    )


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    write_products(sample_model(), out)
    write_json(out / "manifest.json", {"note": "made by the test"})
    return out


def test_publish_prints_the_version_then_publishes_nothing_new(build_dir, tmp_path):
    store = f"sqlite:///{tmp_path / 's.db'}"
    first = hdmap("publish", str(build_dir), "--store", store, "--quiet")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "1"
    again = hdmap("publish", str(build_dir), "--store", store, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["unchanged"] and summary["version"] == 1 and summary["new_blobs"] == 0
    changes = hdmap("changes", "--store", store, "--from", "0", "-o", str(tmp_path / "c.geojson"))
    assert changes.returncode == 0, changes.stderr
    assert "total" in changes.stdout and "0 change records from version 0 to 1" in changes.stdout
    assert json.loads((tmp_path / "c.geojson").read_text())["type"] == "FeatureCollection"


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (("publish", "{missing}", "--store", "{store}"), 3, "no such build folder"),
        (("publish", "{nomanifest}", "--store", "{store}"), 3, "manifest.json is missing"),
        (("publish", "{build}", "--store", "mysql://x"), 3, "mysql://x"),
        (("publish", "{build}", "--store", "{store}", "--level", "16"), 2, "--level"),
        (("publish", "{build}", "--store", "{store}", "--confidentiality", "nope"), 3, "nope"),
        (("publish",), 2, "BUILD_DIR"),
        (("changes", "--store", "{store}", "--from", "5", "--to", "7"), 3, "7"),
        (("changes", "--store", "{store}", "--from", "x"), 2, "--from"),
        (("changes", "--store", "{store}"), 2, "--from"),
    ],
)
def test_errors_exit_with_one_line(args, status, says, build_dir, tmp_path):
    nomanifest = tmp_path / "half"
    nomanifest.mkdir()
    values = {
        "missing": str(tmp_path / "absent"),
        "nomanifest": str(nomanifest),
        "store": f"sqlite:///{tmp_path / 's.db'}",
        "build": str(build_dir),
    }
    proc = hdmap(*(a.format(**values) for a in args))
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    assert says in proc.stderr
    if status == 3:
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr
