"""Throwaway databases and free ports, for the test suite and the benchmarks.

Both need a fresh, migrated database on the server cityrisk uses (DATABASE_URL or the local
cluster) that is dropped whatever happens, owned by the service's role as in production, and a
free local port for a real server.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from app.db import database_migrate_url, database_url, libpq_url, with_database
from app.settings import Settings


@contextmanager
def scratch_database(
    server_url: str,
    *,
    admin_url: str | None = None,
    prefix: str = "cityrisk_scratch",
    postgis: bool = True,
    migrate: bool = False,
) -> Iterator[str]:
    """Create an empty database on ``server_url``'s server, yield its URL, drop it at the end.

    ``server_url`` is the service's (its role owns the new database, as in production);
    ``admin_url``, on the same server, a role that may CREATE DATABASE (and, for ``postgis``,
    CREATE EXTENSION) — the migrations' URL, e.g. ``database_migrate_url(settings)``; default:
    ``server_url`` (one role for everything). ``postgis`` creates the extension as that role;
    ``migrate`` brings the schema to head with Alembic through it (which creates the extension
    itself), the schema owned by the service's role. The yielded URL is the service's.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin_url = admin_url or server_url
    admin = libpq_url(admin_url)
    owner = make_url(server_url).username
    with psycopg.connect(admin, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner and owner != make_url(admin_url).username:
            create = sql.SQL("{} OWNER {}").format(create, sql.Identifier(owner))
        conn.execute(create)
    url = with_database(server_url, name)
    try:
        if migrate:
            from app import migrations  # here: migrations import the app's models

            migrations.upgrade(with_database(admin_url, name))
        elif postgis:
            with psycopg.connect(
                libpq_url(with_database(admin_url, name)), autocommit=True
            ) as conn:
                conn.execute("CREATE EXTENSION postgis")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def scratch_for(settings: Settings, **options: Any) -> AbstractContextManager[str]:
    """:func:`scratch_database` on the server ``settings`` use, with its service and migration
    URLs (DATABASE_URL / DATABASE_MIGRATE_URL, else the local cluster's two roles)."""
    return scratch_database(
        database_url(settings), admin_url=database_migrate_url(settings), **options
    )


def free_port() -> int:
    """A local TCP port nobody listens on now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a thread on a free port; yield its base URL.

    For tests and benchmarks that need real sockets (HTTP clients, streaming, browsers).
    """
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def scratch_token(
    url: str, role: str = "admin", *, sensors: list[str] | None = None, name: str | None = None
) -> str:
    """A committed API key of ``role`` in the database at ``url`` (tests and benchmarks that
    talk to a real server: every write needs one)."""
    from sqlalchemy.orm import Session

    from app.auth.service import create_token
    from app.db import create_db_engine

    engine = create_db_engine(url, pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            _, key = create_token(
                session,
                name=name or f"scratch-{role}-{secrets.token_hex(3)}",
                role=role,
                sensors=sensors,
                created_by="scratch",
            )
    finally:
        engine.dispose()
    return key


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """Stop a server process started by a test or a benchmark: SIGTERM, then SIGKILL after
    ``timeout_s`` (uvicorn finishes its requests on SIGTERM; one that hangs is killed)."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
