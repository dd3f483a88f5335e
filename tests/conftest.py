"""Fixtures shared by the whole suite: where the real data lives, skipping cleanly when absent."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect (behind `hdmap build`) keeps its database and settings away from ~/.prefect in tests.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="hdmap-test-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

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


# ---- map stores (tiles.store): the same tests on SQLite and on PostgreSQL/PostGIS ---------------
# The PostgreSQL server is 127.0.0.1:5432, user postgres, trust auth (HDMAP_TEST_POSTGRES overrides
# the admin URL). The postgres variants skip with the reason when the server or PostGIS is missing,
# unless HDMAP_REQUIRE_POSTGRES=1 (CI), which turns the skip into a failure.
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_unavailable(reason: str):
    import os

    reason = " ".join(reason.split())  # driver messages span lines
    if os.environ.get("HDMAP_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (HDMAP_REQUIRE_POSTGRES=1): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_database():
    """URL of a fresh database with PostGIS for this test session, dropped at its end."""
    import os
    import uuid

    try:
        import psycopg
    except ImportError as exc:
        _postgres_unavailable(f"psycopg is not installed: {exc}")
    admin = os.environ.get("HDMAP_TEST_POSTGRES", POSTGRES_ADMIN_URL)
    name = f"hdmap_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        _postgres_unavailable(f"PostgreSQL at {admin} is unreachable or refused: {exc}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as exc:
        _drop_database(admin, name)
        _postgres_unavailable(f"PostGIS is missing on {admin}: {exc}")
    yield url
    _drop_database(admin, name)


def _drop_database(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """URL of an empty store: a SQLite file in ``tmp_path``, or a fresh schema of the session's
    PostgreSQL database (``?schema=...``, dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    import uuid

    import psycopg

    database = request.getfixturevalue("postgres_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{database}?schema={schema}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
