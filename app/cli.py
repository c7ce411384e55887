"""The ``cityrisk`` command line (Typer).

Every command turns a known failure (bad settings, database away, no PostGIS) into one line on
stderr and a non-zero exit code, never a bare traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from app.cluster import ClusterError, LocalCluster
from app.errors import CityriskError
from app.settings import ConfigError, Settings, get_settings

cli = typer.Typer(
    name="cityrisk",
    help="Urban safety risk map service: database, migrations, data loading and the API server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(
    help="The database: a project-local PostGIS cluster unless DATABASE_URL is set."
)
cli.add_typer(db_cli, name="db")

F = TypeVar("F", bound=Callable[..., Any])


def say(message: str) -> None:
    """Progress for humans, on stderr so stdout stays parseable."""
    typer.echo(f"cityrisk: {message}", err=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"cityrisk: error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        msg = str(first.get("ctx", {}).get("error") or first["msg"])
        raise fail(f"invalid setting {field.upper()}: {msg}", 2) from None
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def friendly_errors(func: F) -> F:
    """Report cityrisk's own errors as one line and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CityriskError, ClusterError, ConfigError) as exc:
            raise fail(getattr(exc, "message", None) or str(exc)) from None

    return wrapper  # type: ignore[return-value]


def current_url(settings: Settings, *, driver: bool = True) -> str:
    """The URL in use; for the local cluster, raises ClusterError before ``db up``."""
    if settings.database_url is not None:
        if driver:
            return settings.database_url
        return settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    return LocalCluster(settings).url(driver=driver)


# -- db ---------------------------------------------------------------------------------------
@db_cli.command("up")
@friendly_errors
def db_up() -> None:
    """Make PostGIS available: install, initialise and start the local cluster (idempotent)."""
    from app.db import check_connection, create_db_engine

    settings = settings_or_exit()
    if settings.database_url is not None:
        engine = create_db_engine(settings.database_url, pool_size=1)
        try:
            info = check_connection(engine)
        finally:
            engine.dispose()
        say(f"using DATABASE_URL (nothing to start): PostGIS {info.postgis_version}")
        return
    cluster = LocalCluster(settings)
    did_work = cluster.up(say)
    say(("started: " if did_work else "already running: ") + cluster.status().detail)


@db_cli.command("down")
@friendly_errors
def db_down() -> None:
    """Stop the local cluster (its data stays under the data directory)."""
    settings = settings_or_exit()
    if settings.database_url is not None:
        say("DATABASE_URL is set: cityrisk does not manage that server; nothing to stop")
        return
    stopped = LocalCluster(settings).down(say)
    say("stopped" if stopped else "not running")


@db_cli.command("status")
@friendly_errors
def db_status() -> None:
    """Say whether the database is reachable and which PostgreSQL and PostGIS it runs."""
    from app.db import check_connection, create_db_engine, redacted

    settings = settings_or_exit()
    if settings.database_url is None:
        status = LocalCluster(settings).status()
        typer.echo(f"local cluster {status.detail}")
        if not status.running:
            raise typer.Exit(3)
    url = current_url(settings)
    engine = create_db_engine(url, pool_size=1, connect_timeout_s=settings.db_connect_timeout_s)
    try:
        info = check_connection(engine)
    finally:
        engine.dispose()
    typer.echo(
        f"database {info.database} at {redacted(url)}: PostgreSQL {info.postgres_version}, "
        f"PostGIS {info.postgis_version}"
    )


@db_cli.command("url")
@friendly_errors
def db_url(
    sqlalchemy: Annotated[
        bool, typer.Option("--sqlalchemy", help="Print the SQLAlchemy form (postgresql+psycopg).")
    ] = False,
) -> None:
    """Print the database URL in use (libpq form, usable as `psql "$(cityrisk db url)"`)."""
    typer.echo(current_url(settings_or_exit(), driver=sqlalchemy))


# -- schema -----------------------------------------------------------------------------------
@cli.command("migrate")
@friendly_errors
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the schema to the newest revision (alembic upgrade head), creating PostGIS first."""
    from app import migrations

    url = current_url(settings_or_exit())
    migrations.upgrade(url, revision)
    say(f"schema at {migrations.current(url)}")


# -- service ----------------------------------------------------------------------------------
@cli.command("serve")
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [PORT, 8000].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API and the map page."""
    import uvicorn

    settings = settings_or_exit()
    host = host or settings.host
    port = port or settings.port
    say(f"serving on http://{host}:{port}  (docs: /docs, readiness: /readyz)")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
