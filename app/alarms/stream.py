"""Live push of alarm changes: ``GET /alarms/stream`` as Server-Sent Events.

How an event travels: every ``alarm_event`` INSERT fires a trigger (migration 0006) that runs
``pg_notify('cityrisk_alarm_events', id)``; PostgreSQL delivers it when (and only if) the
inserting transaction commits. Each stream holds one dedicated autocommit psycopg
``AsyncConnection`` that LISTENs on that channel, and for every id it receives reads the event
and its alarm's current summary and sends::

    id: <alarm_event.id>
    event: alarm
    data: {"event": {...}, "alarm": {...}}

Reconnection: a client that sends ``Last-Event-ID`` (the header browsers send on reconnect,
or ``?last_event_id=``) first gets every event with a greater id from the table, then the live
ones. LISTEN starts *before* that replay query, so an event committed in between is both in
the replay and notified: the stream drops the notified ids it has already replayed — no gap,
no duplicate. Live events are sent in commit order.

One caveat of an id cursor: ids are taken at INSERT, so two transactions can commit out of id
order. A client that disconnects between two such commits and reconnects with the larger id
misses the smaller one; the window is one ingest transaction long.

A comment line ``: heartbeat`` goes out every ``HEARTBEAT_S`` seconds so proxies keep the
connection and dead clients are noticed. The stream ends when the client goes away (Starlette
cancels it; the LISTEN connection is closed under a shield), when the app shuts down (see
:func:`lifespan`), on a database error (the client reconnects and replays), or — for tests,
scripts and curl — after ``max_events`` events or ``timeout_s`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import anyio
import psycopg
from fastapi import FastAPI, Request
from psycopg.rows import dict_row

from app.alarms.schemas import AlarmStreamData
from app.alarms.service import ALARM_SELECT, EVENT_COLUMNS, alarm_summary
from app.errors import DatabaseUnavailable

log = logging.getLogger("cityrisk.alarms.stream")

CHANNEL = "cityrisk_alarm_events"  # also in alembic/versions/20261128_0006_*.py
HEARTBEAT_S = 15.0
RETRY_MS = 3000  # the reconnection delay EventSource clients are told to use
POLL_S = 1.0  # longest wait for notifications before looking at the stop flag again
REPLAY_PAGE = 500

AsyncConn = psycopg.AsyncConnection[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Shutdown
# ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Give streams a stop flag, set when the server is asked to exit.

    Uvicorn waits for open responses to finish *before* it runs the lifespan shutdown, so an
    endless SSE response would hold the server forever. The flag is therefore also set from the
    exit signals: when a server (uvicorn, hypercorn) has installed Python handlers for SIGINT /
    SIGTERM, they are chained — ours sets the flag, then calls theirs. Streams look at the flag
    at least every ``POLL_S`` seconds and end, and the server's graceful shutdown completes.
    """
    stop = asyncio.Event()
    app.state.alarm_stream_stop = stop
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        # Signal handlers run between bytecodes of the loop's thread: hand over thread-safely.
        loop.call_soon_threadsafe(stop.set)

    restore = _chain_exit_signals(request_stop)
    try:
        yield
    finally:
        stop.set()
        restore()


def _chain_exit_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` before the current Python handlers of SIGINT and SIGTERM.

    Only in the main thread (elsewhere handlers cannot be set, e.g. under TestClient) and only
    over Python callables: with the default disposition the process dies on the signal anyway.
    Returns a function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: dict[int, tuple[Any, Callable[[int, FrameType | None], Any]]] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(
            signum: int,
            frame: FrameType | None,
            previous: Callable[[int, FrameType | None], Any] = previous,
        ) -> None:
            callback()
            previous(signum, frame)

        signal.signal(sig, handler)
        installed[sig] = (handler, previous)

    def restore() -> None:
        for sig, (handler, previous) in installed.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return restore


# ---------------------------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------------------------


async def open_listener(request: Request) -> AsyncConn:
    """A new autocommit connection to the app's database, already LISTENing on ``CHANNEL``.

    Opened before the response starts, so a database that is away is a 503, not a broken
    stream.
    """
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise DatabaseUnavailable(request.app.state.db_error or "no database configured")
    settings = request.app.state.settings
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = await psycopg.AsyncConnection.connect(
            conninfo,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=settings.db_connect_timeout_s,
            application_name="cityrisk-alarm-stream",
            # Its replay and event reads are requests' queries too (waiting for a NOTIFY is not
            # a statement, so a quiet stream is not cut).
            options=f"-c statement_timeout={max(1, round(settings.limits.statement_s * 1000))}",
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot open the alarm stream: {first}") from None
    try:
        await conn.execute(f"LISTEN {CHANNEL}")
    except BaseException:
        await conn.close()
        raise
    return conn


async def close_listener(conn: AsyncConn) -> None:
    """Close ``conn`` even inside a cancelled scope (client gone); closing twice is harmless."""
    with anyio.CancelScope(shield=True):
        await conn.close()


def _frame(event_id: int, data: AlarmStreamData) -> bytes:
    return f"id: {event_id}\nevent: alarm\ndata: {data.model_dump_json()}\n\n".encode()


async def _render(conn: AsyncConn, events: list[dict[str, Any]]) -> list[bytes]:
    """SSE frames of ``events`` (in the order given), each with its alarm's current summary."""
    if not events:
        return []
    alarm_ids = sorted({e["alarm_id"] for e in events})
    cur = await conn.execute(ALARM_SELECT + " WHERE a.id = ANY(%(ids)s)", {"ids": alarm_ids})
    alarms = {row["id"]: alarm_summary(row) for row in await cur.fetchall()}
    return [
        _frame(
            e["id"],
            AlarmStreamData.model_validate({"event": e, "alarm": alarms.get(e["alarm_id"])}),
        )
        for e in events
    ]


async def _events_after(conn: AsyncConn, after: int, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM alarm_event WHERE id > %(after)s ORDER BY id LIMIT %(limit)s",
        {"after": after, "limit": limit},
    )
    return await cur.fetchall()


async def _events_by_id(conn: AsyncConn, ids: list[int]) -> list[dict[str, Any]]:
    """The events ``ids`` in that order (the order their transactions committed in)."""
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM alarm_event WHERE id = ANY(%(ids)s)", {"ids": ids}
    )
    by_id = {row["id"]: row for row in await cur.fetchall()}
    # Rows gone meanwhile (their alarm was deleted) are skipped.
    return [by_id[i] for i in ids if i in by_id]


async def event_stream(
    conn: AsyncConn,
    *,
    last_event_id: int | None = None,
    max_events: int | None = None,
    timeout_s: float | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[bytes]:
    """The SSE byte stream over a LISTENing connection (which it closes when it ends).

    Parameters
    ----------
    conn
        From :func:`open_listener`: autocommit, ``dict_row``, LISTEN already issued.
    last_event_id
        Replay the events with a greater id first.
    max_events, timeout_s
        End after this many events / seconds (None: never).
    heartbeat_s
        Seconds between heartbeat comments.
    stop
        Ends the stream when set (app shutdown).
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    sent = 0

    def done() -> bool:
        return max_events is not None and sent >= max_events

    try:
        # The first bytes say LISTEN is on: from here on no committed event is missed.
        yield f"retry: {RETRY_MS}\n: listening on {CHANNEL}\n\n".encode()
        replayed: set[int] = set()
        if last_event_id is not None:
            after = last_event_id
            while not done() and not (stop is not None and stop.is_set()):
                rows = await _events_after(conn, after, REPLAY_PAGE)
                for frame, row in zip(await _render(conn, rows), rows, strict=True):
                    yield frame
                    replayed.add(row["id"])
                    sent += 1
                    if done():
                        break
                if len(rows) < REPLAY_PAGE:
                    break
                after = rows[-1]["id"]
        next_beat = loop.time() + heartbeat_s
        while not done():
            if stop is not None and stop.is_set():
                return
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if now >= next_beat:
                yield b": heartbeat\n\n"
                next_beat = now + heartbeat_s
            wait = min(POLL_S, next_beat - now)
            if deadline is not None:
                wait = min(wait, deadline - now)
            ids: list[int] = []
            # stop_after=1 ends the generator after the first packet of notifications (all of
            # them), releasing the connection for the queries below; notifications arriving
            # meanwhile wait in psycopg's backlog for the next round.
            async with contextlib.aclosing(
                conn.notifies(timeout=max(wait, 0.0), stop_after=1)
            ) as notifies:
                async for note in notifies:
                    if note.channel == CHANNEL and note.payload.isdigit():
                        ids.append(int(note.payload))
            fresh = [i for i in dict.fromkeys(ids) if i not in replayed]
            if not fresh:
                continue
            rows = await _events_by_id(conn, fresh)
            for frame in await _render(conn, rows):
                yield frame
                sent += 1
                if done():
                    break
    except psycopg.Error as exc:
        # The database went away or restarted: end the stream; EventSource reconnects with
        # Last-Event-ID and the replay fills the gap.
        log.warning("alarm stream ended by a database error: %s", exc)
    finally:
        await close_listener(conn)
