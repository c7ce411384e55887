"""Data versions of the tables tiles read, combined per layer into a cache key and ETag.

How a process learns them: :class:`VersionWatch` (held in memory, dropped by NOTIFY; the
default) or :class:`VersionReader` (read per request, shared by requests arriving together).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import Connection

from layers.base import Layer

VERSIONS_SQL = "SELECT name, version FROM data_version"

log = logging.getLogger(__name__)


def read_versions(conn: Connection) -> dict[str, int]:
    """Every table's data version, in one tiny query (a row per versioned table)."""
    return {name: int(version) for name, version in conn.exec_driver_sql(VERSIONS_SQL)}


def layers_version(
    layers: Iterable[Layer], versions: dict[str, int], now: float | None = None
) -> str | None:
    """The combined data version of ``layers``, or None when they cannot be cached.

    A table with a data version contributes it. A table without one (``latest_reading``: too
    hot for a trigger) contributes the current ``server_ttl_s`` time bucket when the layer
    allows that, so its tiles are reused for at most that long; otherwise the layers have no
    version and every request builds the tile.
    """
    now = time.time() if now is None else now
    parts: set[str] = set()
    for layer in layers:
        for table in layer.tables:
            if table in versions:
                parts.add(f"{table}:{versions[table]}")
            elif layer.cache.server_ttl_s is not None:
                ttl = layer.cache.server_ttl_s
                parts.add(f"{table}@{ttl:g}:{int(now // ttl)}")
            else:
                return None
    return ",".join(sorted(parts))


def short_hash(*parts: object) -> str:
    """A 20-hex-digit digest of ``parts``, for ETags and ``?v=`` tokens."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _connect(
    conninfo: str, application_name: str, *, keepalives: bool = False
) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection (blocking: run it on a worker thread).

    ``keepalives``: a peer that vanishes without a word (a network, not a local server) is
    noticed within ~10 s; a local backend's end is noticed at once anyway.
    """
    probes = {"keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2}
    options = make_conninfo(
        conninfo,
        connect_timeout=5,
        application_name=application_name,
        keepalives=int(keepalives),
        **(probes if keepalives else {}),
    )
    return psycopg.connect(options, autocommit=True)


class VersionReader:
    """Data versions, read so that a request never sees a version older than its arrival.

    A request waits for a read *sent after* it arrived, so a write committed before the
    request is always seen (no stale tile, whichever process or client wrote). Requests that
    arrive while a read is in flight share the next one: under load one round trip serves
    every request that came in during the previous one; alone, a request costs exactly one.

    The reads go through libpq directly on one dedicated connection, with the statement
    prepared once: they are a tile hit's only database work, and psycopg's cursor machinery
    cost several times the round trip itself.
    """

    STATEMENT = b"cityrisk_versions"

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._next: asyncio.Future[dict[str, int]] | None = None
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.round_trips = 0

    async def read(self) -> dict[str, int]:
        """The data version of every table, as of a moment after this call.

        Raises
        ------
        psycopg.OperationalError
            When the database cannot be reached (the next call reconnects).
        """
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if not self._running:
                self._running = True
                # Held: the event loop keeps only a weak reference to a task.
                self._task = asyncio.get_running_loop().create_task(self._serve())
        return await asyncio.shield(self._next)

    async def current(self) -> dict[str, int]:
        """Same as :meth:`read` (the ``strict`` freshness: a read per request, coalesced)."""
        return await self.read()

    def close(self) -> None:
        """Close the connection (a later read opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _serve(self) -> None:
        try:
            while self._next is not None:
                # From here on, arrivals make a new future and wait for the next read: the
                # one sent below may be older than they are.
                waiting, self._next = self._next, None
                try:
                    versions = await self._round_trip()
                except asyncio.CancelledError:
                    waiting.cancel()
                    raise
                except Exception as exc:  # handed to the waiters, who raise it
                    self.close()
                    waiting.set_exception(exc)
                    waiting.exception()  # retrieved, even if every waiter has gone
                else:
                    waiting.set_result(versions)
        finally:
            self._running = False

    async def _connect(self) -> pq.abc.PGconn:
        if self._conn is None or self._conn.closed:
            conn = await asyncio.to_thread(_connect, self._conninfo, "cityrisk-tile-versions")
            conn.execute(b"PREPARE " + self.STATEMENT + b" AS " + VERSIONS_SQL.encode())
            conn.pgconn.nonblocking = 1
            self._conn = conn
        return self._conn.pgconn

    async def _round_trip(self) -> dict[str, int]:
        pgconn = await self._connect()
        loop = asyncio.get_running_loop()
        self.round_trips += 1
        pgconn.send_query_prepared(self.STATEMENT, None)
        while pgconn.flush():  # a few bytes: done at once unless the socket is full
            await asyncio.sleep(0)
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if done.done():
                return
            try:
                pgconn.consume_input()
            except psycopg.OperationalError as exc:
                done.set_exception(exc)
                return
            if not pgconn.is_busy():
                done.set_result(None)

        loop.add_reader(pgconn.socket, readable)
        try:
            await done
        finally:
            loop.remove_reader(pgconn.socket)
        result = pgconn.get_result()
        while pgconn.get_result() is not None:  # the end of the command's results
            pass
        if result is None or result.status != pq.ExecStatus.TUPLES_OK:
            message = "" if result is None else result.error_message.decode(errors="replace")
            raise psycopg.OperationalError(f"reading data versions failed: {message}")
        return {
            bytes(result.get_value(i, 0) or b"").decode(): int(result.get_value(i, 1) or 0)
            for i in range(result.ntuples)
        }


CHANNEL = "cityrisk_data_version"
#: Whether the bump trigger notifies (migration 0012): listening is only safe when it does.
NOTIFY_WIRED_SQL = (
    "SELECT coalesce(bool_or(position('pg_notify' in prosrc) > 0), false) FROM pg_proc "
    "WHERE proname = 'cityrisk_bump_data_version'"
)


class VersionWatch:
    """Data versions kept in memory, invalidated by ``NOTIFY cityrisk_data_version``.

    Every versioned write notifies at commit (trigger, migration 0012). A dedicated connection
    LISTENs; before answering, :meth:`current` drains whatever notifications have arrived (a
    non-blocking read), so a cache hit costs no round trip. Any notification drops the
    versions held, and the next request reads them again through the :class:`VersionReader`;
    a read is kept only if no notification arrived while it was in flight.

    What it guarantees: a request handled after PostgreSQL delivered a commit's notification
    (it signals the listener before it acknowledges the commit to the writer; delivery takes
    well under a millisecond locally) sees that commit. While the listening connection is down
    — not yet open, broken, reconnecting — every request reads the versions itself, so a lost
    notification can never leave a stale tile behind.
    """

    RETRY_S = 1.0

    def __init__(self, conninfo: str, reader: VersionReader) -> None:
        self._conninfo = conninfo
        self._reader = reader
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._versions: dict[str, int] | None = None
        self._generation = 0
        self._connecting: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._fd = -1
        self._dying = False
        self._unwired = False
        self.notifications = 0

    @property
    def reader(self) -> VersionReader:
        """The reader used while the versions are unknown or the listener is down."""
        return self._reader

    @property
    def listening(self) -> bool:
        """Whether the listening connection is up (else every request reads the versions)."""
        return self._conn is not None

    async def current(self) -> dict[str, int]:
        """The data versions, as of after every notification delivered so far."""
        if self._conn is None:
            self._start_listening()
        else:
            self._drain()
        if self._versions is not None:
            return self._versions
        generation = self._generation
        versions = await self._reader.read()
        if self._conn is not None:
            self._drain()
            if generation == self._generation:
                self._versions = versions
        return versions

    def close(self) -> None:
        """Stop listening and close the reader (the next :meth:`current` starts again)."""
        self._stop_listening()
        self._reader.close()

    def _stop_listening(self) -> None:
        conn, self._conn, self._versions = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(RuntimeError):  # no loop: nothing registered
                asyncio.get_running_loop().remove_reader(self._fd)
            conn.close()

    def _drain(self) -> None:
        conn = self._conn
        if conn is None:
            return
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
            notified = False
            while pgconn.notifies() is not None:
                notified = True
                self.notifications += 1
        except psycopg.OperationalError:
            self._lost()
            return
        if self._dying or pgconn.status != pq.ConnStatus.OK:
            # A server-side end (pg_terminate_backend, shutdown) first arrives as an error
            # while idle, which libpq hands to the notice handler; the EOF comes later.
            self._lost()
            return
        if notified:
            self._generation += 1
            self._versions = None

    def _lost(self) -> None:
        """The listening connection broke: read per request until it is back."""
        self._generation += 1
        self._stop_listening()
        self._retry_at = time.monotonic() + self.RETRY_S

    def _start_listening(self) -> None:
        if self._unwired or self._connecting is not None or time.monotonic() < self._retry_at:
            return
        # Held: the event loop keeps only a weak reference to a task.
        self._connecting = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        try:
            conn = await asyncio.to_thread(
                functools.partial(_connect, keepalives=True), self._conninfo, "cityrisk-tile-listen"
            )
            conn.execute(f"LISTEN {CHANNEL}")
            wired = conn.execute(NOTIFY_WIRED_SQL).fetchone()
            if not (wired and wired[0]):
                # A schema before migration 0012: no write would ever notify, and a listener
                # would trust its versions forever. Read them per request instead.
                conn.close()
                self._unwired = True
                log.warning(
                    "tiles: the database's version trigger sends no NOTIFY (run `cityrisk "
                    "migrate`); reading data versions per request"
                )
                return
            conn.pgconn.nonblocking = 1
            conn.add_notice_handler(self._notice)
        except psycopg.Error:
            self._retry_at = time.monotonic() + self.RETRY_S
            return
        finally:
            self._connecting = None
        # Versions read before this point may predate the LISTEN: read again.
        self._generation += 1
        self._versions = None
        self._dying = False
        self._conn = conn
        self._fd = conn.pgconn.socket
        # Drained when idle too, so the notification queue never backs up behind us.
        asyncio.get_running_loop().add_reader(self._fd, self._drain)

    def _notice(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.severity_nonlocalized in ("FATAL", "PANIC"):
            self._dying = True
