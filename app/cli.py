"""The ``cityrisk`` command line (Typer).

Every command turns a known failure (bad settings, database away, no PostGIS) into one line on
stderr and a non-zero exit code, never a bare traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from app.db import database_url
from app.errors import CityriskError, DatabaseUnavailable
from app.local.cluster import ClusterError, LocalCluster
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
mq_cli = typer.Typer(
    help="The MQTT broker for live readings: a project-local Mosquitto unless MQTT_URL is set."
)
cli.add_typer(mq_cli, name="mq")

if TYPE_CHECKING:
    from app.assets.importer import ImportReport
    from app.local.broker import LocalBroker

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
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) in ("42P01", "42703"):  # table/column absent
                raise fail(
                    f"the database schema is behind this version ({str(exc.orig).splitlines()[0]}"
                    "): run `cityrisk migrate`"
                ) from None
            raise

    return wrapper  # type: ignore[return-value]


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
    url = database_url(settings)
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
    migrate: Annotated[
        bool,
        typer.Option(
            "--migrate", help="Print the migrations' URL (DATABASE_MIGRATE_URL, the superuser)."
        ),
    ] = False,
) -> None:
    """Print the service's database URL (libpq form, usable as `psql "$(cityrisk db url)"`)."""
    from app.db import database_migrate_url

    which = database_migrate_url if migrate else database_url
    typer.echo(which(settings_or_exit(), driver=sqlalchemy))


# -- mq ---------------------------------------------------------------------------------------
@mq_cli.command("up")
@friendly_errors
def mq_up() -> None:
    """Make the broker available: install and start the local Mosquitto (idempotent)."""
    from app.local.broker import LocalBroker, check_broker
    from app.settings import parse_mqtt_url

    settings = settings_or_exit()
    if settings.mqtt_url is not None:
        check_broker(settings.mqtt_url)
        where = parse_mqtt_url(settings.mqtt_url).redacted()
        say(f"using MQTT_URL (nothing to start): {where} answers")
        return
    broker = LocalBroker(settings)
    did_work = broker.up(say)
    check_broker(broker.url())
    status = broker.status()
    where = parse_mqtt_url(broker.url()).redacted()
    say(f"{'started' if did_work else 'already running'}: pid {status.pid}, {where}")


@mq_cli.command("down")
@friendly_errors
def mq_down() -> None:
    """Stop the local broker (its queued messages are saved under the data directory)."""
    from app.local.broker import LocalBroker

    settings = settings_or_exit()
    if settings.mqtt_url is not None:
        say("MQTT_URL is set: cityrisk does not manage that broker; nothing to stop")
        return
    stopped = LocalBroker(settings).down(say)
    say("stopped" if stopped else "not running")


@mq_cli.command("status")
@friendly_errors
def mq_status() -> None:
    """Say whether the broker runs and answers (exit 3 when the local broker is stopped)."""
    from app.local.broker import LocalBroker, broker_url, check_broker
    from app.settings import parse_mqtt_url

    settings = settings_or_exit()
    if settings.mqtt_url is None:
        status = LocalBroker(settings).status()
        typer.echo(f"local broker {status.detail}")
        if not status.running:
            raise typer.Exit(3)
    url = broker_url(settings)
    check_broker(url)
    typer.echo(f"MQTT broker {parse_mqtt_url(url).redacted()} answers")


@mq_cli.command("url")
@friendly_errors
def mq_url() -> None:
    """Print the MQTT URL in use (MQTT_URL, else the local broker's)."""
    from app.local.broker import broker_url

    typer.echo(broker_url(settings_or_exit()))


device_cli = typer.Typer(
    help="Devices of the local broker: one login per sensor or gateway, publishing only under "
    "cityrisk/readings/NAME."
)
mq_cli.add_typer(device_cli, name="device")


def local_broker_or_exit() -> LocalBroker:
    """The project-local broker; exit 1 when MQTT_URL names another (cityrisk manages none)."""
    from app.local.broker import LocalBroker

    settings = settings_or_exit()
    if settings.mqtt_url is not None:
        raise fail("MQTT_URL is set: cityrisk does not manage that broker's users; add them there")
    return LocalBroker(settings)


@device_cli.command("add")
@friendly_errors
def mq_device_add(
    name: Annotated[
        str, typer.Argument(help="A sensor's external id, or a gateway's prefix (one topic level).")
    ],
) -> None:
    """Make a device login (or a new password for it); the password is the last line printed.

    The device may publish to cityrisk/readings/NAME and below it, nothing else; the running
    broker reloads its files (SIGHUP), no restart.
    """
    from app.local.broker import device_topic

    broker = local_broker_or_exit()
    password = broker.add_device(name, say)
    typer.echo(f"device {name}: publishes to {device_topic(name)} and {device_topic(name)}/#")
    typer.echo(f"url: mqtt://{name}:PASSWORD@127.0.0.1:{broker.port}")
    typer.echo(password)


@device_cli.command("remove")
@friendly_errors
def mq_device_remove(name: Annotated[str, typer.Argument(help="The device to remove.")]) -> None:
    """Remove a device: it can no longer log in (the running broker reloads, no restart)."""
    if not local_broker_or_exit().remove_device(name, say):
        raise fail(f"no device {name!r} (see `cityrisk mq device list`)")
    say(f"removed device {name}")


@device_cli.command("list")
@friendly_errors
def mq_device_list() -> None:
    """List the devices that may log in, with the topics each may publish to."""
    from app.local.broker import device_topic

    for name in local_broker_or_exit().devices():
        typer.echo(f"{name:<32} {device_topic(name)}/#")


# -- schema -----------------------------------------------------------------------------------
@cli.command("migrate")
@friendly_errors
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the schema to the newest revision (alembic upgrade head), creating PostGIS first.

    Connects with DATABASE_MIGRATE_URL (else DATABASE_URL, else the local superuser); the schema
    is created as the database's owner, the service's role.
    """
    from app import migrations
    from app.db import database_migrate_url

    url = database_migrate_url(settings_or_exit())
    migrations.upgrade(url, revision)
    say(f"schema at {migrations.current(url)}")


# -- data -------------------------------------------------------------------------------------
links_cli = typer.Typer(help="Coupling links between assets (derived by spatial rules).")
load_cli = typer.Typer(help="Load bundled datasets.")
cli.add_typer(links_cli, name="links")
cli.add_typer(load_cli, name="load")


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """A session whose work commits when the block ends without error, else rolls back."""
    from app.db import create_db_engine, make_sessionmaker

    engine = create_db_engine(database_url(settings), pool_size=1)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            yield session
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {str(exc.orig).strip()}") from None
    finally:
        engine.dispose()


ENCODING_HELP = (
    "Text encoding of a CSV or a Shapefile's attributes when not UTF-8 (gb18030 for GBK exports)."
)


@cli.command("import")
@friendly_errors
def import_assets(
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, zipped Shapefile or CSV.")],
    kind: Annotated[str, typer.Option("--kind", help="Asset kind (see `cityrisk kinds`).")],
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file.")] = None,
    plate: Annotated[str | None, typer.Option(help="Override the kind's plate.")] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            help="CRS of the coordinates: EPSG:n, CGCS2000, gcj02, bd09 (overrides the file)."
        ),
    ] = None,
    id_field: Annotated[str | None, typer.Option(help="Field holding a stable feature id.")] = None,
    field_map: Annotated[
        list[str] | None, typer.Option("--map", help="Rename a field: FILE_FIELD=ASSET_FIELD.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Source name (ids are unique per source) [file name].")
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Commit the good rows even if some are rejected.")
    ] = False,
    encoding: Annotated[str | None, typer.Option(help=ENCODING_HELP)] = None,
    max_point_line_m: Annotated[
        float | None,
        typer.Option(help="A point kind takes a line shorter than this (m) as its midpoint [50]."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count, write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import a GIS file as assets of one kind (transactional; re-importing changes nothing)."""
    from app.assets.importer import ImportOptions, parse_field_map
    from app.flows.assets import import_assets

    settings = settings_or_exit()
    options = ImportOptions(
        kind=kind,
        layer=layer,
        plate=plate,
        crs=crs,
        id_field=id_field,
        field_map=parse_field_map(field_map or []),
        source=source,
        partial=partial,
        encoding=encoding,
    )
    if max_point_line_m is not None:
        options.max_point_line_m = max_point_line_m
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("reading", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        with transaction(settings) as session:
            report = import_assets(
                session,
                path,
                options,
                dry_run=dry_run,
                progress=progress,
                limits=settings.limits,
            )
            if dry_run:
                session.rollback()
            report.committed = report.written and not dry_run
    print_report(report, as_json=as_json, dry_run=dry_run)
    if not report.committed and not dry_run:
        raise typer.Exit(1)


def print_report(report: ImportReport, *, as_json: bool, dry_run: bool = False) -> None:
    if as_json:
        typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    if dry_run:
        verb = "would write (dry run)" if report.written else "would NOT write (dry run)"
    else:
        verb = "committed" if report.committed else "NOT written"
    where = f"{report.file}" + (f" [{report.layer}]" if report.layer else "")
    typer.echo(
        f"{where} -> {report.kind} ({report.plate}, from {report.crs}): read {report.rows_read}, "
        f"inserted {report.inserted}, updated {report.updated}, unchanged {report.unchanged}, "
        f"rejected {len(report.rejected)} — {verb}"
    )
    for note in report.notes:
        typer.echo(f"  note: {note}")
    for rej in report.rejected[:50]:
        typer.echo(f"  row {rej.row} ({rej.external_id or 'no id'}): {rej.reason}")
    if len(report.rejected) > 50:
        typer.echo(f"  … and {len(report.rejected) - 50} more rejected rows (use --json for all)")


@cli.command("kinds")
def list_kinds() -> None:
    """List the asset kinds by plate, with their geometry and attributes."""
    from app.taxonomy.assets import KINDS, PLATE_TITLES

    for plate, title in PLATE_TITLES.items():
        typer.echo(f"{plate}: {title}")
        for kind in (k for k in KINDS.values() if k.plate == plate):
            attrs = ", ".join(a.name for a in kind.attributes)
            families = "/".join(sorted(kind.geometries))
            typer.echo(f"  {kind.id:<18} {families:<13} {attrs}")


@links_cli.command("rebuild")
@friendly_errors
def links_rebuild() -> None:
    """Recompute every derived link from the spatial rules (hand-made links stay)."""
    from app.assets import links

    with transaction(settings_or_exit()) as session:
        made = links.rebuild(session)
    for rule, count in made.items():
        typer.echo(f"{rule:<40} {count}")
    say(f"{sum(made.values())} derived links")


@links_cli.command("import")
@friendly_errors
def links_import(
    path: Annotated[Path, typer.Argument(help="CSV or GeoJSON of dependencies.")],
    partial: Annotated[
        bool, typer.Option("--partial", help="Write the good rows even if some are rejected.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import dependencies between assets (from/to external ids, link_type, delay_h, buffer_h).

    All rows or none unless --partial; importing the same file again changes nothing.
    """
    from app.assets import links

    with transaction(settings_or_exit()) as session:
        report = links.import_links(session, path, partial=partial)
        report.committed = report.written
        if not report.written:
            session.rollback()
    if as_json:
        typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        verb = "committed" if report.committed else "NOT written"
        typer.echo(
            f"{report.file} -> links: read {report.rows_read}, inserted {report.inserted}, "
            f"updated {report.updated}, unchanged {report.unchanged}, rejected "
            f"{len(report.rejected)} — {verb}"
        )
        for bad in report.rejected[:50]:
            typer.echo(f"  row {bad.row}: {bad.reason}")
    if not report.committed:
        raise typer.Exit(1)


risk_cli = typer.Typer(help="Risk scores: per asset, H3 cell and admin area.")
cli.add_typer(risk_cli, name="risk")


@risk_cli.command("refresh")
@friendly_errors
def risk_refresh(
    h3_res: Annotated[int, typer.Option(help="H3 resolution of the cells.")] = 8,
) -> None:
    """Recompute every risk score (assets, cells, areas) in one transaction."""
    from app.risk import refresh

    with transaction(settings_or_exit()) as session:
        report = refresh.refresh_all(session, h3_res=h3_res)
    say(
        f"risk scores: {report.assets} assets, {report.cells} cells, {report.areas} areas "
        f"in {report.total_s:.2f} s ({report.db_s:.2f} s in the database)"
    )


@cli.command("map")
@friendly_errors
def write_map(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
    base_url: Annotated[
        str, typer.Option(help="The running server the page loads its JS, CSS, tiles from.")
    ] = "http://127.0.0.1:8000",
    layers: Annotated[
        str | None, typer.Option(help="Layer ids shown on load, comma-separated.")
    ] = None,
) -> None:
    """Write the map page as one HTML file; it loads everything from --base-url."""
    from app.db import create_db_engine
    from app.maps.service import map_page
    from layers.maps import render_page
    from layers.registry import default_registry

    settings = settings_or_exit()
    engine = create_db_engine(database_url(settings), pool_size=1)
    try:
        page = map_page(engine, default_registry(), layers, base_url=base_url)
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    out.write_text(render_page(page), encoding="utf-8")
    say(f"wrote {out} (assets, tiles and alarms from {page.base_url})")
    say(
        "opened from disk or another host, the page needs CORS from that server: start it "
        """with CITYRISK_CORS_ORIGINS='["null"]' (or the page's origin)"""
    )


token_cli = typer.Typer(help="API tokens: make, list, revoke (the key is shown once).")
cli.add_typer(token_cli, name="token")


def cli_actor() -> str:
    """Who runs the CLI, as an audit actor: ``cli:<login>`` (no token may be named so)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@token_cli.command("create")
@friendly_errors
def token_create(
    role: Annotated[str, typer.Option(help="viewer, analyst, commander, admin or device.")],
    name: Annotated[
        str | None,
        typer.Option(help="Actor name in audit rows (default: <role>-<n>); 张三 is fine."),
    ] = None,
    sensors: Annotated[
        str | None,
        typer.Option(
            help="A device's sensors: external ids or prefixes ending in *, comma-separated."
        ),
    ] = None,
    expires_days: Annotated[
        float | None, typer.Option(help="Days until it expires (default: never).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Revoke the active token of that --name first (make demo).")
    ] = False,
) -> None:
    """Make a token; its key is printed as the last line (and never shown again)."""
    import secrets
    from datetime import UTC, datetime, timedelta

    from app.auth.service import create_token, list_tokens, revoke_token

    listed = [s for s in (sensors or "").split(",") if s.strip()] or None
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    with transaction(settings_or_exit()) as session:
        if replace and name and any(t.name == name for t in list_tokens(session)):
            revoke_token(session, name, by=cli_actor())
        row, key = create_token(
            session,
            name=name or f"{role}-{secrets.token_hex(3)}",
            role=role,
            sensors=listed,
            expires_at=expires,
            created_by=cli_actor(),
        )
        ident, label = row.id, row.name
    say(f"token {ident} {label!r} ({role}); keep the key, it is not shown again:")
    typer.echo(key)


@token_cli.command("list")
@friendly_errors
def token_list(
    revoked: Annotated[bool, typer.Option(help="Include revoked tokens.")] = False,
) -> None:
    """The tokens: id, name, role, key prefix, sensors, last use (never the keys)."""
    from app.auth.service import list_tokens

    with transaction(settings_or_exit()) as session:
        lines = [_token_line(r) for r in list_tokens(session, include_revoked=revoked)]
    say(f"{len(lines)} token(s)")
    for line in lines:
        typer.echo(line)


def _token_line(r: Any) -> str:
    used = f"used {r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "unused"
    cells = [str(r.id), r.name, r.role, f"{r.prefix}…", ",".join(r.sensors or []) or "-", used]
    return "\t".join(cells + (["revoked"] if r.revoked_at else []))


@token_cli.command("revoke")
@friendly_errors
def token_revoke(
    ident: Annotated[str, typer.Argument(help="The token's id or name.")],
) -> None:
    """Revoke a token at once (other workers stop trusting it within CITYRISK_AUTH_CACHE_S)."""
    from app.auth.service import revoke_token

    with transaction(settings_or_exit()) as session:
        row = revoke_token(session, ident, by=cli_actor())
        label = f"token {row.id} {row.name!r}"
    say(f"revoked {label}")


readings_cli = typer.Typer(help="Stored readings: backfill, partitions and retention.")
cli.add_typer(readings_cli, name="readings")


@cli.command("import-sensors")
@friendly_errors
def import_sensor_file(
    path: Annotated[Path, typer.Argument(help="Sensors file (any format `import` takes).")],
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file.")] = None,
    crs: Annotated[
        str | None, typer.Option(help="CRS of the coordinates (overrides the file).")
    ] = None,
    partial: Annotated[bool, typer.Option("--partial", help="Keep the good rows.")] = False,
    encoding: Annotated[str | None, typer.Option(help=ENCODING_HELP)] = None,
    tolerance_m: Annotated[
        float, typer.Option(help="Spatial binding: nearest compatible asset within this (m).")
    ] = 25.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import sensors (upsert by external_id) and bind each to the asset it watches."""
    from app.sensors.registry import import_sensors

    settings = settings_or_exit()
    with transaction(settings) as session:
        report = import_sensors(
            session,
            path,
            layer=layer,
            crs=crs,
            partial=partial,
            tolerance_m=tolerance_m,
            limits=settings.limits,
            encoding=encoding,
        )
        report.committed = report.written
    if as_json:
        typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(
            f"{report.file}: read {report.rows_read}, inserted {report.inserted}, updated "
            f"{report.updated}, unchanged {report.unchanged}, rejected {len(report.rejected)}; "
            f"bound {report.bound_explicit} explicitly, {report.bound_spatial} by position "
            f"({report.bound_junction} at pipe junctions), {len(report.unbound)} unbound — "
            f"{'committed' if report.committed else 'NOT written'}"
        )
        for issue in report.rejected[:50]:
            typer.echo(f"  row {issue.row} ({issue.external_id or 'no id'}): {issue.reason}")
        for junction in report.at_junctions[:50]:
            typer.echo(f"  {junction.external_id}: {junction.note}")
        for issue in report.unbound[:50]:
            typer.echo(f"  unbound {issue.external_id}: {issue.reason}")
    if not report.committed:
        raise typer.Exit(1)


@readings_cli.command("partitions")
@friendly_errors
def readings_partitions(
    ahead: Annotated[int, typer.Option(min=0, max=366, help="Days ahead to create.")] = 7,
) -> None:
    """Create the daily partitions from yesterday to AHEAD days ahead; list them all."""
    from app.sensors import partitions

    with transaction(settings_or_exit()) as session:
        created = partitions.ensure(session, partitions.days_ahead(ahead=ahead))
        days = sorted(partitions.existing(session))
    for day in days:
        typer.echo(f"{partitions.partition_name(day)}{'  (new)' if day in created else ''}")


@readings_cli.command("prune")
@friendly_errors
def readings_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age like 90d, 12h or 2w: drop whole days older.")
    ],
) -> None:
    """Retention: drop the daily partitions whose readings are all older than the given age."""
    from app.sensors import partitions

    age = parse_age(older_than)
    with transaction(settings_or_exit()) as session:
        dropped = partitions.prune(session, older_than=age)
    for name in dropped:
        typer.echo(f"dropped {name}")
    say(f"{len(dropped)} partition(s) dropped (older than {older_than})")


@readings_cli.command("backfill")
@friendly_errors
def readings_backfill(
    files: Annotated[
        list[Path],
        typer.Argument(help="History files: CSV, NDJSON or a JSON array (.gz too), wire format."),
    ],
    batch_span: Annotated[
        str,
        typer.Option("--batch-span", help="Data time per batch (one transaction): 1d, 6h, 30m."),
    ] = "1d",
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, ndjson or json (default: from each file's name)."),
    ] = None,
    encoding: Annotated[str | None, typer.Option(help=ENCODING_HELP)] = None,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, help="Most readings a batch may hold (a longer span is refused)."
        ),
    ] = 1_000_000,
) -> None:
    """Load history: each span of data time goes through the ingest and the rules, committed
    in turn, with no age limit. Re-running resumes (stored readings count as duplicates)."""
    from app.db import create_db_engine, make_sessionmaker
    from app.flows.backfill import backfill
    from app.sensors.history import FORMATS

    if fmt is not None and fmt not in FORMATS:
        raise fail(f"--format was {fmt!r}; expected one of {', '.join(FORMATS)}", 2)
    try:
        span = parse_age(batch_span)
    except ConfigError:
        raise fail(
            f"--batch-span was {batch_span!r}; expected a span like 1d, 6h or 30m", 2
        ) from None
    settings = settings_or_exit()
    err = Console(stderr=True)
    engine = create_db_engine(database_url(settings), pool_size=1)
    try:
        report = backfill(
            make_sessionmaker(engine),
            files,
            span=span,
            fmt=fmt,
            encoding=encoding,
            max_batch=max_batch,
            actor=cli_actor(),
            on_read=lambda path, rows: err.print(f"read {path.name}: {rows:,} rows"),
            on_span=lambda r: err.print(_span_line(r), soft_wrap=True),
        )
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {str(exc.orig).strip()}") from None
    finally:
        engine.dispose()
    _print_backfill(report)
    received, rejected = report.total("received"), report.total("rejected")
    if not received or rejected == received:
        raise typer.Exit(1)


def _span_line(r: Any) -> str:
    """One committed span, for the progress lines."""
    when = f"{r.start:%Y-%m-%d %H:%M} → {r.end:%Y-%m-%d %H:%M}Z" if r.start else "unreadable ts"
    stored = r.accepted + r.mobile_accepted
    return (
        f"{when}  {r.received:>9,} read  {stored:>9,} stored  {r.duplicates:>9,} duplicates  "
        f"{r.rejected:>7,} rejected  {r.alarms_raised:>4,} alarms raised  {r.seconds:6.2f} s"
    )


def _print_backfill(report: Any) -> None:
    """The summary: totals, speed and the first rejections (rich, on stdout)."""
    from rich.table import Table

    out = Console()
    table = Table(title=f"backfill of {len(report.files)} file(s), {len(report.spans)} batches")
    table.add_column("")
    table.add_column("readings", justify="right")
    rows = [
        ("read from the files", report.rows_read),
        ("accepted", report.total("accepted")),
        ("accepted (mobile)", report.total("mobile_accepted")),
        ("duplicates (already stored)", report.total("duplicates")),
        ("rejected", report.total("rejected")),
        ("alarms raised", report.total("alarms_raised")),
        ("alarms changed", report.total("alarms_changed")),
    ]
    for label, value in rows:
        table.add_row(label, f"{value:,}")
    table.add_row("readings/s (ingest)", f"{report.readings_per_s:,.0f}")
    table.add_row("seconds: reading / ingest", f"{report.read_s:.1f} / {report.ingest_s:.1f}")
    out.print(table)
    for r in report.rejections:
        out.print(f"  rejected: {r.file.name} row {r.row} ({r.sensor or 'no sensor'}): {r.reason}")
    more = report.total("rejected") - len(report.rejections)
    if more > 0:
        out.print(f"  … and {more:,} more rejected")


def parse_age(raw: str) -> timedelta:
    """``90d`` / ``12h`` / ``2w`` / ``30m`` → timedelta; a clear error otherwise."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = raw[:-1], raw[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise ConfigError(f"age {raw!r} is not like 90d, 12h, 2w or 30m")
    return timedelta(**{units[unit]: int(number)})


rules_cli = typer.Typer(help="Warning rules (versioned) and alarm checks.")
cli.add_typer(rules_cli, name="rules")


@rules_cli.command("load")
@friendly_errors
def rules_load(
    path: Annotated[
        Path | None, typer.Argument(help="A rules YAML file [the pack shipped with cityrisk]")
    ] = None,
) -> None:
    """Load rules from YAML (new versions only where something changed)."""
    from app.alarms import rules

    specs = rules.parse_yaml(path.read_bytes()) if path else rules.default_pack()
    settings = settings_or_exit()
    with transaction(settings) as session:
        stored = rules.load(
            session, specs, actor="cli", max_area_vertices=settings.limits.rule_area_vertices
        )
    for rule in stored:
        typer.echo(f"{rule.spec.code:<28} v{rule.version}  {rule.spec.title}")


@rules_cli.command("list")
@friendly_errors
def rules_list() -> None:
    """List the current rules."""
    from app.alarms import rules

    with transaction(settings_or_exit()) as session:
        current = rules.current_rules(session)
    for rule in current:
        state = "" if rule.spec.is_enabled else "  (disabled)"
        kind = f"{rule.spec.kind:<9}"
        typer.echo(f"{rule.spec.code:<28} v{rule.version}  {kind} {rule.spec.title}{state}")


@rules_cli.command("calibrate")
@friendly_errors
def rules_calibrate(
    start: Annotated[
        str, typer.Option("--from", help="Start of the calibration window (ISO 8601, data time)")
    ],
    end: Annotated[str, typer.Option("--to", help="End of the window (exclusive)")],
    sensor: Annotated[
        list[str] | None,
        typer.Option("--sensor", help="External id or pattern (dma-*), repeatable [all]"),
    ] = None,
    indicator: Annotated[
        list[str] | None, typer.Option("--indicator", help="Only this indicator, repeatable")
    ] = None,
    bin_s: Annotated[int, typer.Option(help="Time-of-day bin [s]")] = 900,
    days: Annotated[str, typer.Option(help="Day types: week, weekend or day")] = "week",
    utc_offset: Annotated[
        str, typer.Option(help="Local time's UTC offset for the daily cycle, e.g. +08:00")
    ] = "+00:00",
) -> None:
    """Learn each sensor's normal day (median and robust spread per time-of-day bin) from a
    window of normal data; residual and CUSUM rules judge readings against it."""
    from app.alarms import calibrate

    settings = settings_or_exit()
    with transaction(settings) as session:
        report = calibrate.calibrate(
            session,
            start=_iso(start),
            end=_iso(end),
            actor="cli",
            sensors=sensor,
            indicators=indicator,
            bin_s=bin_s,
            day_mode=days,  # type: ignore[arg-type]  # checked by calibrate
            utc_offset_s=_offset_s(utc_offset),
        )
    say(
        f"calibrated {report.sensors} sensors on {report.readings:,} readings "
        f"({start} → {end}); skipped {len(report.skipped)} with too few readings"
    )
    for code, n in sorted(report.rules.items()):
        say(f"  {code}: learned on {n} sensors")


def _iso(value: str) -> Any:
    from datetime import datetime

    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{value!r} is not an ISO 8601 time like 2026-10-01T00:00Z") from None
    if stamp.tzinfo is None:
        raise ConfigError(f"{value!r} has no UTC offset; write e.g. 2026-10-01T00:00+08:00")
    return stamp


def _offset_s(value: str) -> int:
    import re

    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", value.strip())
    if not match:
        raise ConfigError(f"UTC offset {value!r} is not like +08:00 or -05:00")
    sign = 1 if match.group(1) == "+" else -1
    return sign * (int(match.group(2)) * 3600 + int(match.group(3)) * 60)


@rules_cli.command("check-offline")
@friendly_errors
def rules_check_offline() -> None:
    """Raise offline alarms for silent sensors (run it every minute, e.g. from cron)."""
    from app.flows.alarms import check_offline

    with transaction(settings_or_exit()) as session:
        report = check_offline(session)
    say(f"offline check: {report.raised} raised, {report.updated} still offline")


@load_cli.command("demo")
@friendly_errors
def load_demo() -> None:
    """Load the demo city (Cambridge, MA; data/demo/cambridge.gpkg): assets, links, sensors,
    risk scores."""
    from app.flows import demo

    with transaction(settings_or_exit()) as session:
        loaded = demo.load(session)
        reports, made, sensors = loaded.layers, loaded.links, loaded.sensors
        for report in reports:
            report.committed = True
    for report in reports:
        print_report(report, as_json=False)
    bound = 0
    if sensors is not None:
        bound = sensors.bound_explicit + sensors.bound_spatial
        typer.echo(
            f"{sensors.file} -> sensors: read {sensors.rows_read}, inserted {sensors.inserted}, "
            f"updated {sensors.updated}, unchanged {sensors.unchanged}; bound "
            f"{sensors.bound_explicit} explicitly, {sensors.bound_spatial} by position, "
            f"{len(sensors.unbound)} unbound — committed"
        )
        for issue in sensors.unbound[:50]:
            typer.echo(f"  unbound {issue.external_id}: {issue.reason}")
    deps = loaded.dependencies
    if deps is not None:
        typer.echo(
            f"{deps.file} -> links: read {deps.rows_read}, inserted {deps.inserted}, "
            f"updated {deps.updated}, unchanged {deps.unchanged} — committed"
        )
    say(
        f"demo city loaded: {sum(r.accepted for r in reports)} assets, {sum(made.values())} links"
        + (f" + {deps.rows_read} imported dependencies" if deps is not None else "")
        + (f", {sensors.rows_read} sensors ({bound} bound)" if sensors is not None else "")
        + f"; risk scored: {loaded.risk.assets} assets, {loaded.risk.cells} cells"
    )


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


@cli.command("ingest-mqtt")
@friendly_errors
def ingest_mqtt() -> None:
    """Store live readings from MQTT (cityrisk/readings/#) until Ctrl-C; ack after each commit."""
    import logging
    import signal
    import threading

    from app.api.mqtt import TOPIC_FILTER, run_consumer
    from app.local.broker import broker_url
    from app.settings import parse_mqtt_url

    settings = settings_or_exit()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Finish the message in hand (commit, then ack) instead of dying in the middle of it.
        signal.signal(signum, lambda *_: stop.set())
    where = parse_mqtt_url(broker_url(settings)).redacted()
    say(f"consuming {TOPIC_FILTER} from {where} as {settings.mqtt_client_id!r} (Ctrl-C stops)")
    stats = run_consumer(settings, stop)
    say(
        f"stopped: {stats.received} messages, {stats.readings_accepted} readings stored, "
        f"{stats.readings_duplicate} already stored, {stats.rejected_payloads} messages rejected"
    )


@cli.command("replay")
@friendly_errors
def replay(
    scenario: Annotated[
        str, typer.Argument(help="gas-leak, water-burst, bridge-strain, flood-rain or demo.")
    ],
    to: Annotated[str, typer.Option("--to", help="http (POST /readings) or mqtt.")] = "http",
    url: Annotated[
        str | None,
        typer.Option(
            help="Target (http: http://127.0.0.1:$PORT; mqtt: MQTT_URL, else the local broker "
            "as the device `replay`, on cityrisk/readings/replay/<kind>)."
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0, help="Simulated seconds per second; 0 = as fast as possible.")
    ] = 1.0,
    duration: Annotated[str, typer.Option(help="Simulated span: 2h, 30m, 1h30m, 1d…")] = "2h",
    start: Annotated[
        str | None,
        typer.Option(help="'now' or RFC 3339 (default: now at speed 1, else now - duration)."),
    ] = None,
    batch_s: Annotated[
        int, typer.Option("--batch-s", min=1, help="Simulated seconds per batch.")
    ] = 10,
    truth: Annotated[
        Path | None, typer.Option(help="Write the incidents' ground truth here (JSON).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same readings.")] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CITYRISK_TOKEN",
            help="Bearer token for --to http (default: a device token made for this run).",
        ),
    ] = None,
) -> None:
    """Publish realistic readings, with scripted incidents, for the sensors in the database."""
    from app.local.broker import REPLAY_DEVICE, device_topic, replay_url
    from app.replay.run import Options
    from app.replay.run import execute as replay_execute
    from app.replay.run import prepare as replay_prepare
    from app.replay.sinks import TOPIC_PREFIX

    settings = settings_or_exit()
    # On the local broker the replay is the device `replay`: it may publish under its topic only.
    local = settings.mqtt_url is None and url is None
    prefix = device_topic(REPLAY_DEVICE) if local else TOPIC_PREFIX
    options = Options(
        scenario, to, url, speed, duration, start, batch_s, truth, seed, prefix, token or None
    )
    with transaction(settings) as session:
        prepared = replay_prepare(
            session, options, http_port=settings.port, mqtt_url=replay_url(settings)
        )
    typer.echo(replay_execute(prepared, say))


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
