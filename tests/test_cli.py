"""The ``hdmap`` entry point: help, usage errors and exit status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.cli.main import COMMANDS, EXIT_USAGE, main


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"hdmap {name}" in text
        assert "example" in text.lower(), f"'hdmap {name} --help' shows no example"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == EXIT_USAGE


def test_console_script_is_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli.main", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("hdmap ")


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["simulate", "--kind", "moon", "--seed", "1", "--out", "{tmp}/s"], 2, "--kind"),
        (["simulate", "--kind", "urban", "--seed", "-1", "--out", "{tmp}/s"], 2, "negative"),
        (
            ["simulate", "--kind", "urban", "--seed", "1", "--length-m", "5", "--out", "{tmp}/s"],
            2,
            "length_m >= 90",
        ),
        (
            ["simulate", "--kind", "urban", "--seed", "1", "--out", "{tmp}/file/s"],
            3,
            "Not a directory",
        ),
        (["demo", "--out", "{tmp}/file/demo"], 3, "Not a directory"),
        (["demo", "--bogus"], 2, "--bogus"),
    ],
)
def test_simulate_and_demo_error_exits(args, status, says, tmp_path) -> None:
    (tmp_path / "file").write_text("a file where a folder is expected")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *(a.format(tmp=tmp_path) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == status, proc.stderr
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr
