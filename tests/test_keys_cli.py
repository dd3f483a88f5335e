"""``hdmap keys create|revoke|list`` through the real CLI entry point, on both store backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT
from tiles.store import open_store


def hdmap(*args: str, cwd=PROJECT_ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "HDMAP_STORE"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_create_list_revoke(store_url):
    made = hdmap("keys", "create", "--store", store_url, "--role", "publisher", "--label", "van 7")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert len(lines) == 1  # the key, and nothing else, on stdout
    key = lines[0]
    assert key.startswith("xsk_")
    key_id = key.split("_")[1]
    assert "not shown again" in made.stderr and key_id in made.stderr
    assert key not in made.stderr
    with open_store(store_url) as store:
        assert store.key_role(key) == "publisher"

    reader = hdmap("keys", "create", "--store", store_url, "--role", "reader").stdout.strip()
    listed = hdmap("keys", "list", "--store", store_url)
    assert listed.returncode == 0, listed.stderr
    table = listed.stdout.splitlines()
    assert table[0].split()[:4] == ["KEY_ID", "ROLE", "CREATED", "REVOKED"]
    row = next(line for line in table if line.startswith(key_id))
    assert row.split()[1] == "publisher" and row.rstrip().endswith("van 7")
    assert len(table) == 3
    for secret in (key, reader):
        assert secret.split("_", 2)[2] not in listed.stdout

    revoked = hdmap("keys", "revoke", "--store", store_url, key_id)
    assert revoked.returncode == 0, revoked.stderr
    with open_store(store_url) as store:
        assert store.key_role(key) is None
        assert store.key_role(reader) == "reader"
    as_json = json.loads(hdmap("keys", "list", "--store", store_url, "--json").stdout)
    by_id = {k["key_id"]: k for k in as_json}
    assert by_id[key_id]["revoked"] is not None
    assert by_id[reader.split("_")[1]]["revoked"] is None
    assert by_id[key_id]["label"] == "van 7"


def test_store_from_environment_then_default_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    made = hdmap("keys", "create", "--role", "reader", env={"HDMAP_STORE": url})
    assert made.returncode == 0, made.stderr
    with open_store(url) as store:
        assert store.key_role(made.stdout.strip()) == "reader"

    work = tmp_path / "work"
    work.mkdir()
    made = hdmap("keys", "create", "--role", "reader", cwd=work)
    assert made.returncode == 0, made.stderr
    assert (work / "hdmap-store.db").is_file()
    with open_store(f"sqlite:///{work / 'hdmap-store.db'}") as store:
        assert store.key_role(made.stdout.strip()) == "reader"


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create", "--store", "mysql://root@localhost/maps", "--role", "reader"),
        ("keys", "list", "--store", "sqlite:///no/such/folder/store.db"),
        ("keys", "list", "--store", "postgresql://postgres@127.0.0.1:1/none"),
    ],
)
def test_bad_store_url_exits_3_with_one_line(args):
    result = hdmap(*args)
    assert result.returncode == 3
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("hdmap keys: error:")
    assert "Traceback" not in result.stderr


def test_unknown_key_id_exits_3(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    for key_id in ("0123456789abcdef", "nonsense"):
        result = hdmap("keys", "revoke", "--store", url, key_id)
        assert result.returncode == 3
        assert len(result.stderr.strip().splitlines()) == 1
        assert key_id in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create", "--role", "admin"),
        ("keys", "create"),
        ("keys",),
        ("keys", "revoke"),
        ("keys", "rotate"),
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    result = hdmap(*args, "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr
    assert not (tmp_path / "s.db").exists()  # nothing was opened


def test_help_lists_the_actions():
    result = hdmap("keys", "--help")
    assert result.returncode == 0
    for word in ("create", "revoke", "list", "HDMAP_STORE"):
        assert word in result.stdout
