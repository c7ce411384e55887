"""Fixtures on a real PostGIS: a throwaway database per test session, a rolled-back session
per test, and an API client whose lifespan runs as in production.

The server is the one cityrisk itself uses (DATABASE_URL, else the project-local cluster that
`make test` starts), and the suite runs as the service does: as the service's role
(``server_url``: the local cluster's ``cityrisk_app``, which owns the test databases and may do
nothing else). Throwaway databases are created, given PostGIS and dropped through the
migrations' URL (``admin_url``: DATABASE_MIGRATE_URL, else DATABASE_URL, else the local
superuser), which must be allowed to CREATE DATABASE; the test database is dropped at the end,
whatever happened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app import db
from app.auth.roles import ROLES
from app.auth.service import create_token
from app.db import create_db_engine, libpq_url
from app.local.cluster import LocalCluster
from app.main import create_app
from app.scratch import scratch_database
from app.settings import Settings
from tests import clusters
from tests.factories import bearer

# Tests that write and then fetch a tile at once need read-your-writes: the default (notify)
# learns of a write within the notification's delivery, ~1 ms later. The notify mode has its own
# tests (tests/app/tiles/test_freshness.py), which set it explicitly.
os.environ.setdefault("CITYRISK_TILE_FRESHNESS", "strict")
# Rate limits off unless a test sets them (tests/app/auth/test_limits.py does): the suite posts
# hundreds of batches and impacts from one client address within seconds.
os.environ.setdefault("CITYRISK_AUTH_INGEST_PER_S", "0")
os.environ.setdefault("CITYRISK_AUTH_EXPENSIVE_PER_MIN", "0")


def _reachable(url: str) -> str:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5):
            pass
    except Exception as exc:
        pytest.fail(
            f"no PostGIS to test against ({exc}). Run `make test`, which starts the local "
            "cluster, or set DATABASE_URL to a PostGIS >= 3.1 (and DATABASE_MIGRATE_URL to a "
            "role that may CREATE DATABASE, if DATABASE_URL's may not).",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def server_url() -> str:
    """The service's URL (its role); the suite makes its own databases on that server."""
    try:
        url = db.database_url(Settings())
    except Exception as exc:
        pytest.fail(f"no PostGIS to test against ({exc}). Run `make test`.", pytrace=False)
    return _reachable(url)


@pytest.fixture(scope="session")
def admin_url() -> str:
    """The migrations' URL, on the same server: creates and drops the throwaway databases."""
    try:
        url = db.database_migrate_url(Settings())
    except Exception as exc:
        pytest.fail(f"no PostGIS to test against ({exc}). Run `make test`.", pytrace=False)
    return _reachable(url)


@pytest.fixture(scope="session")
def database_url(server_url: str, admin_url: str) -> Iterator[str]:
    """A throwaway database for this test session, migrated to head through Alembic."""
    with scratch_database(
        server_url, admin_url=admin_url, prefix="cityrisk_test", migrate=True
    ) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test; commits only release a savepoint."""
    with engine.connect() as conn:
        tx = conn.begin()
        with Session(bind=conn, join_transaction_mode="create_savepoint") as s:
            yield s
        tx.rollback()


@pytest.fixture
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # No MQTT consumer or offline timer in API tests unless a test asks for one: they would
    # write into the test database behind the test's back.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        mqtt_consumer=False,
        offline_check_s=0,
    )


@pytest.fixture(scope="session")
def two_roles() -> Iterator[LocalCluster]:
    """A cluster of the suite's own with the two roles a least-privilege setup has (the
    superuser, the service's ``cityrisk_app``), whatever server ``DATABASE_URL`` names: for the
    tests of what the service role may not do and of what ``db up`` does to it."""
    with clusters.own_cluster("roles", migrate=False) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tokens(engine: Engine) -> dict[str, str]:
    """One API key per role (committed: requests run in their own transactions), by role; the
    device's may post readings of sensors whose external id starts with ``dev-``."""
    keys: dict[str, str] = {}
    with Session(engine) as s, s.begin():
        for role in ROLES:
            sensors = ["dev-*"] if role == "device" else None
            _, keys[role] = create_token(
                s, name=f"test-{role}", role=role, sensors=sensors, created_by="test-suite"
            )
    return keys


@pytest.fixture
def client(settings: Settings, tokens: dict[str, str]) -> Iterator[TestClient]:
    """An API client acting as an admin (the audit actor ``test-admin``)."""
    with TestClient(create_app(settings), headers=bearer(tokens["admin"])) as c:
        yield c


@pytest.fixture
def anon_client(settings: Settings) -> Iterator[TestClient]:
    """An API client without credentials."""
    with TestClient(create_app(settings)) as c:
        yield c
