"""Throwaway databases and free ports, for the test suite and the benchmarks.

Both need a fresh, migrated database on the server cityrisk uses (DATABASE_URL or the local
cluster) that is dropped whatever happens, and a free local port for a real server.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from app.db import libpq_url, with_database


@contextmanager
def scratch_database(
    server_url: str,
    *,
    prefix: str = "cityrisk_scratch",
    postgis: bool = True,
    migrate: bool = False,
) -> Iterator[str]:
    """Create an empty database on ``server_url``'s server, yield its URL, drop it at the end.

    ``postgis`` creates the extension; ``migrate`` brings the schema to head with Alembic (which
    creates the extension itself).
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = libpq_url(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    try:
        if migrate:
            from app import migrations  # here: migrations import the app's models

            migrations.upgrade(url)
        elif postgis:
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
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
