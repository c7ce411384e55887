"""Fixtures on a real PostGIS: a throwaway database per test session, a rolled-back session
per test, and an API client whose lifespan runs as in production.

The server is the one cityrisk itself uses (DATABASE_URL, else the project-local cluster that
`make test` starts). Its user must be allowed to CREATE DATABASE (and CREATE ROLE for the
permission tests); the test database is dropped at the end, whatever happened.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from app import migrations
from app.cli import current_url
from app.db import create_db_engine
from app.main import create_app
from app.settings import Settings


def libpq(url: str) -> str:
    """A SQLAlchemy URL in the form psycopg.connect takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, dbname: str) -> str:
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> str:
    """The URL cityrisk would use; the suite makes its own databases on that server."""
    try:
        url = current_url(Settings())
        with psycopg.connect(libpq(url), connect_timeout=5):
            pass
    except Exception as exc:
        pytest.fail(
            f"no PostGIS to test against ({exc}). Run `make test`, which starts the local "
            "cluster, or set DATABASE_URL to a PostGIS >= 3.1 whose user may CREATE DATABASE.",
            pytrace=False,
        )
    return url


@contextmanager
def scratch_database(server_url: str, *, postgis: bool = True) -> Iterator[str]:
    """Create an empty database (with PostGIS unless told otherwise), yield its URL, drop it."""
    name = f"cityrisk_test_{secrets.token_hex(4)}"
    with psycopg.connect(libpq(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    try:
        if postgis:
            with psycopg.connect(libpq(url), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
        yield url
    finally:
        with psycopg.connect(libpq(server_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A throwaway database for this test session, migrated to head through Alembic."""
    with scratch_database(server_url, postgis=False) as url:
        migrations.upgrade(url)
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


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
