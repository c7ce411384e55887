"""Live push of alarm changes: ``GET /alarms/stream`` as Server-Sent Events.

How an event travels: every ``alarm_event`` INSERT fires a trigger (migration 0006) that runs
``pg_notify('cityrisk_alarm_events', id)``; PostgreSQL delivers it when (and only if) the
inserting transaction commits. One :class:`AlarmHub` per process holds one autocommit psycopg
``AsyncConnection`` that LISTENs on that channel; for every packet of ids it receives it reads
the events and their alarms' current summaries once, renders each frame once::

    id: <alarm_event.id>
    event: alarm
    data: {"event": {...}, "alarm": {...}}

and hands the same bytes to every open stream. Before stop 23 each stream had its own LISTEN
connection and read every event itself: 20 operators' screens were 20 PostgreSQL connections
and 20 reads of each event; now they are one, however many screens are open. The hub opens its
connection with the first stream and closes it when the last one ends.

Reconnection: a client that sends ``Last-Event-ID`` (the header browsers send on reconnect,
or ``?last_event_id=``) first gets every event with a greater id from the table (read on a
connection of its own, closed when the replay is done), then the live ones. The stream joins
the hub — whose LISTEN is on — *before* that replay query, so an event committed in between is
both in the replay and pushed: the stream drops the pushed ids it has already replayed — no
gap, no duplicate. Live events are sent in commit order.

One caveat of an id cursor: ids are taken at INSERT, so two transactions can commit out of id
order. A client that disconnects between two such commits and reconnects with the larger id
misses the smaller one; the window is one ingest transaction long.

A stream that falls more than ``MAX_QUEUED`` frames behind (a stalled client) is ended rather
than buffered without bound; EventSource reconnects with Last-Event-ID and catches up from the
table.

A comment line ``: heartbeat`` goes out every ``HEARTBEAT_S`` seconds so proxies keep the
connection and dead clients are noticed. The stream ends when the client goes away (Starlette
cancels it), when the app shuts down (see :func:`lifespan`), on a database error (the client
reconnects and replays), or — for tests, scripts and curl — after ``max_events`` events or
``timeout_s`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

import anyio
import psycopg
from fastapi import FastAPI
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
MAX_QUEUED = 10_000  # frames a stream may fall behind before it is ended (it then replays)

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
    app.state.alarm_hub = AlarmHub(functools.partial(open_listener, app), stop)
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


async def open_listener(app: Any) -> AsyncConn:
    """A new autocommit connection to ``app``'s database, already LISTENing on ``CHANNEL``.

    Opened before the response starts, so a database that is away is a 503, not a broken
    stream.
    """
    engine = getattr(app.state, "engine", None)
    if engine is None:
        raise DatabaseUnavailable(app.state.db_error or "no database configured")
    settings = app.state.settings
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


async def _render(conn: AsyncConn, events: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    """(id, SSE frame) of ``events`` (in the order given), each with its alarm's summary."""
    if not events:
        return []
    alarm_ids = sorted({e["alarm_id"] for e in events})
    cur = await conn.execute(ALARM_SELECT + " WHERE a.id = ANY(%(ids)s)", {"ids": alarm_ids})
    alarms = {row["id"]: alarm_summary(row) for row in await cur.fetchall()}
    return [
        (
            e["id"],
            _frame(
                e["id"],
                AlarmStreamData.model_validate({"event": e, "alarm": alarms.get(e["alarm_id"])}),
            ),
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


# ---------------------------------------------------------------------------------------------
# The hub: one LISTEN per process, each event rendered once
# ---------------------------------------------------------------------------------------------

#: What a subscription's queue carries: frames, or None for "the hub stopped: end".
_Item = list[tuple[int, bytes]] | None


class Subscription:
    """One stream's place at the hub: the frames pushed to it since it joined, in order."""

    def __init__(self, max_queued: int) -> None:
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._queued = 0
        self._max = max_queued
        self.ended = False
        self.why: str | None = None  # why the hub ended it (None: still open, or left)

    def push(self, frames: list[tuple[int, bytes]]) -> None:
        if self.ended:
            return
        if self._queued + len(frames) > self._max:
            self.end(f"more than {self._max:,} frames behind")
            return
        self._queued += len(frames)
        self._queue.put_nowait(frames)

    def end(self, why: str) -> None:
        if not self.ended:
            self.ended, self.why = True, why
            self._queue.put_nowait(None)

    async def next(self, timeout: float) -> _Item | list[tuple[int, bytes]]:
        """The next packet of frames; [] after ``timeout`` seconds; None once ended."""
        try:
            item = await asyncio.wait_for(self._queue.get(), max(timeout, 0.0))
        except TimeoutError:
            return []
        if item is not None:
            self._queued -= len(item)
        return item


class AlarmHub:
    """The process's one LISTEN connection and the streams it feeds.

    Parameters
    ----------
    connect
        Opens a new connection LISTENing on ``CHANNEL`` (:func:`open_listener` of the app).
    stop
        Set at shutdown: the hub ends its streams and closes its connection.
    max_queued
        Frames a stream may fall behind before it is ended (:data:`MAX_QUEUED`).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[AsyncConn]],
        stop: asyncio.Event | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.connect = connect
        self.stop = stop or asyncio.Event()
        self.max_queued = max_queued
        self._subscribers: set[Subscription] = set()
        self._listening: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def subscribe(self) -> Subscription:
        """Join; returns once the hub's LISTEN is on (from then on no committed event is
        missed). Raises :class:`DatabaseUnavailable` if the connection cannot be opened."""
        sub = Subscription(self.max_queued)
        self._subscribers.add(sub)
        try:
            if self._listening is None:
                self._listening = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(self._run(self._listening))
            await asyncio.shield(self._listening)
        except BaseException:
            self._subscribers.discard(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    async def _run(self, listening: asyncio.Future[None]) -> None:
        try:
            conn = await self.connect()
        except BaseException as exc:
            self._listening = None
            listening.set_exception(exc)
            listening.exception()  # retrieved: the subscribers raise it themselves
            return
        listening.set_result(None)
        why = "the server is stopping"
        try:
            while self._subscribers and not self.stop.is_set():
                ids: list[int] = []
                # stop_after=1 ends the generator after the first packet of notifications (all
                # of them), releasing the connection for the queries below; notifications
                # arriving meanwhile wait in psycopg's backlog for the next round.
                async with contextlib.aclosing(
                    conn.notifies(timeout=POLL_S, stop_after=1)
                ) as notifies:
                    async for note in notifies:
                        if note.channel == CHANNEL and note.payload.isdigit():
                            ids.append(int(note.payload))
                if not ids:
                    continue
                frames = await _render(conn, await _events_by_id(conn, list(dict.fromkeys(ids))))
                for sub in list(self._subscribers):
                    sub.push(frames)
            why = "no stream is open" if not self._subscribers else why
        except psycopg.Error as exc:
            # The database went away or restarted: end the streams; EventSource reconnects
            # with Last-Event-ID and the replay fills the gap.
            log.warning("alarm stream ended by a database error: %s", exc)
            why = f"database error: {exc}"
        finally:
            # A stream joining from here on starts a new connection.
            self._listening = None
            for sub in list(self._subscribers):
                sub.end(why)
            self._subscribers.clear()
            await close_listener(conn)


def hub_of(app: FastAPI) -> AlarmHub:
    """The app's hub (made by :func:`lifespan`; made here when the app runs without it)."""
    hub: AlarmHub | None = getattr(app.state, "alarm_hub", None)
    if hub is None:
        stop = getattr(app.state, "alarm_stream_stop", None)
        hub = app.state.alarm_hub = AlarmHub(functools.partial(open_listener, app), stop)
    return hub


async def leave(hub: AlarmHub, sub: Subscription, replay: AsyncConn | None) -> None:
    """A stream's end, however it ended: off the hub, its replay connection closed."""
    hub.unsubscribe(sub)
    if replay is not None:
        await close_listener(replay)


# ---------------------------------------------------------------------------------------------
# One stream
# ---------------------------------------------------------------------------------------------


async def event_stream(
    hub: AlarmHub,
    sub: Subscription,
    *,
    replay: AsyncConn | None = None,
    last_event_id: int | None = None,
    max_events: int | None = None,
    timeout_s: float | None = None,
    heartbeat_s: float = HEARTBEAT_S,
) -> AsyncIterator[bytes]:
    """The SSE byte stream of ``sub`` (which it leaves when it ends).

    Parameters
    ----------
    hub, sub
        From :meth:`AlarmHub.subscribe`.
    replay
        With ``last_event_id``: a connection to read the missed events on (closed when the
        replay is done).
    last_event_id
        Replay the events with a greater id first.
    max_events, timeout_s
        End after this many events / seconds (None: never).
    heartbeat_s
        Seconds between heartbeat comments.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    sent = 0
    stop = hub.stop

    def done() -> bool:
        return max_events is not None and sent >= max_events

    try:
        # The first bytes say LISTEN is on: from here on no committed event is missed.
        yield f"retry: {RETRY_MS}\n: listening on {CHANNEL}\n\n".encode()
        replayed: set[int] = set()
        if replay is not None:
            try:
                after = last_event_id or 0
                while not done() and not stop.is_set():
                    rows = await _events_after(replay, after, REPLAY_PAGE)
                    for event_id, frame in await _render(replay, rows):
                        yield frame
                        replayed.add(event_id)
                        sent += 1
                        if done():
                            break
                    if len(rows) < REPLAY_PAGE:
                        break
                    after = rows[-1]["id"]
            finally:
                await close_listener(replay)
        next_beat = loop.time() + heartbeat_s
        while not done():
            if stop.is_set():
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
            frames = await sub.next(wait)
            if frames is None:
                log.info("alarm stream ended: %s", sub.why)
                return
            for event_id, frame in frames:
                if event_id in replayed:
                    continue
                yield frame
                sent += 1
                if done():
                    break
    except psycopg.Error as exc:
        # The database went away during the replay: end; the client reconnects and replays.
        log.warning("alarm stream ended by a database error: %s", exc)
    finally:
        hub.unsubscribe(sub)
