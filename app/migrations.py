"""Run Alembic migrations programmatically against a given database URL."""

from __future__ import annotations

import time
from typing import Any

from alembic import command
from alembic.config import Config
from geoalchemy2 import alembic_helpers
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from app.db import create_db_engine, ensure_postgis, redacted
from app.errors import DatabaseUnavailable
from app.settings import project_root

# Tables PostGIS and its companions own; autogenerate must never try to drop them.
FOREIGN_TABLES = {"spatial_ref_sys", "geography_columns", "geometry_columns"}
FOREIGN_SCHEMAS = {"tiger", "tiger_data", "topology"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: skip PostGIS-owned tables and the run-time partitions of ``reading``."""
    if type_ == "table" and (
        name in FOREIGN_TABLES or getattr(obj, "schema", None) in FOREIGN_SCHEMAS
    ):
        return False
    if (
        type_ == "table"
        and reflected
        and compare_to is None
        and (name or "").startswith("reading_")
    ):
        return False
    keep = alembic_helpers.include_object(obj, name, type_, reflected, compare_to)  # type: ignore[no-untyped-call]
    return bool(keep)


def alembic_config() -> Config:
    """The project's Alembic configuration (scripts in ``alembic/`` at the repo root)."""
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "alembic"))
    return config


def wait_for_database(engine: Engine, *, timeout_s: float = 30.0) -> None:
    """Block until the server accepts connections, or raise DatabaseUnavailable."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise DatabaseUnavailable(
                    f"cannot connect to {redacted(str(engine.url))}: {reason}"
                ) from None
            time.sleep(0.5)


def act_as_owner(conn: Connection) -> str:
    """``SET LOCAL ROLE`` to the database's owner when connected as another role that may.

    Migrations may connect as a more privileged role (a superuser, for ``CREATE EXTENSION``),
    but what they create must belong to the owner — the service's role, which does DDL on its
    own tables at run time (partitions). Connected as the owner, or as a role that is not a
    member of it, this changes nothing. Returns the role the migration runs as.
    """
    owner, me, may = conn.execute(
        text(
            "SELECT pg_get_userbyid(d.datdba), current_user, "
            "pg_has_role(current_user, d.datdba, 'MEMBER') "
            "FROM pg_database d WHERE d.datname = current_database()"
        )
    ).one()
    if owner == me or not may:
        return str(me)
    conn.execute(text(f"SET LOCAL ROLE {quoted_name(owner)}"))
    return str(owner)


def quoted_name(name: str) -> str:
    """``name`` as a PostgreSQL identifier (double quotes, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def upgrade(url: str, revision: str = "head", *, wait_s: float = 30.0) -> None:
    """Bring the database at ``url`` to ``revision``, creating PostGIS first if needed.

    PostGIS is created as the connected role; the schema as the database's owner
    (:func:`act_as_owner`).
    """
    engine = create_db_engine(url, pool_size=1)
    try:
        wait_for_database(engine, timeout_s=wait_s)
        with engine.begin() as conn:
            ensure_postgis(conn)
            act_as_owner(conn)
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (``base`` removes every table)."""
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            act_as_owner(conn)
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            if exists is None:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"cannot connect to {redacted(url)}: {reason}") from None
    finally:
        engine.dispose()
