"""Fixtures shared by the whole suite: where the real data lives, skipping cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
REAL_DATA = SHARED / "real_data"
OPENDRIVE_SAMPLES = SHARED / "opendrive_samples"
SAMPLES = PROJECT_ROOT / "data_samples" / "scenes"


def _require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} is absent (real data lives beside the project, not in it)")
    return path


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``../shared/real_data``; the test is skipped when the folder is absent."""
    return _require(REAL_DATA)


@pytest.fixture(scope="session")
def opendrive_samples_dir() -> Path:
    """``../shared/opendrive_samples``; the test is skipped when the folder is absent."""
    return _require(OPENDRIVE_SAMPLES)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The committed sample surveys in ``data_samples/scenes``."""
    return _require(SAMPLES)
