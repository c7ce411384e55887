"""Alembic environment: the URL comes from cityrisk's settings, the schema from its models."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy.engine import Connection

from app.db import create_db_engine, database_migrate_url
from app.migrations import act_as_owner, include_object
from app.models import Base
from app.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def process_revision_directives(ctx: Any, revision: Any, directives: list[Any]) -> None:
    """Write no empty revision when autogenerate finds nothing (as Netflix Dispatch does)."""
    if getattr(config.cmd_opts, "autogenerate", False):
        script = directives[0]
        if script.upgrade_ops.is_empty():
            directives[:] = []


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_object,
        process_revision_directives=process_revision_directives,
        render_item=alembic_helpers.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = create_db_engine(database_migrate_url(get_settings()), pool_size=1)
    try:
        with engine.connect() as conn:
            act_as_owner(conn)  # the schema belongs to the database's owner, whoever migrates
            run_with(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (--sql) migrations are not supported: PostGIS DDL needs a live database"
    )
run_migrations_online()
