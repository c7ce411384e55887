"""``GET /alarms/stream`` against a real uvicorn server and real PostGIS: committed events reach a
live client (rolled-back ones never do), reconnection with Last-Event-ID replays what was missed
without gaps or duplicates, heartbeats, and the stream ends on client disconnect and on server
shutdown (SIGTERM to a real server process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from app.alarms.stream import CHANNEL, AlarmHub, Subscription, event_stream
from app.main import create_app
from app.scratch import free_port, serve_in_thread
from app.settings import Settings
from tests import factories as f

REPO = Path(__file__).resolve().parents[3]


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --------------------------------------------------------------------------------------------
# Fixtures: a live server, and committed rows that are removed afterwards
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served by uvicorn on a thread (real sockets, real streaming)."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        offline_check_s=0,  # no background job adding alarm events of its own
        mqtt_consumer=False,
    )
    with serve_in_thread(create_app(settings)) as base:
        yield base


@dataclass
class Subject:
    """A committed rule, sensor and alarm to hang events on."""

    engine: Engine
    rule_id: int = 0
    sensor_id: int = 0
    alarm_id: int = 0
    events: list[int] = field(default_factory=list)

    def event(self, note: str, *, commit: bool = True) -> int:
        """Insert an alarm_event as the engine would; roll it back unless ``commit``."""
        with self.engine.connect() as conn:
            event_id = conn.execute(
                text(
                    "INSERT INTO alarm_event (alarm_id, actor, from_state, to_state, note) "
                    "VALUES (:a, 'engine', 'raised', 'raised', :n) RETURNING id"
                ),
                {"a": self.alarm_id, "n": note},
            ).scalar_one()
            if commit:
                conn.commit()
            else:
                conn.rollback()
        return int(event_id)


@pytest.fixture
def subject(engine: Engine) -> Iterator[Subject]:
    s = Subject(engine)
    with engine.begin() as conn:
        rule = f.rule(conn, thresholds={"1": 50})
        s.rule_id = rule[0]
        s.sensor_id = f.sensor(conn, lon=-71.1, lat=42.37, external_id=rule[1])
        # No creation event: the test's own "created" event (below) is the first.
        s.alarm_id = f.alarm(
            conn, rule, level=2, sensor_id=s.sensor_id, lon=None, lat=None, event=False
        )
    s.events.append(s.event("created"))
    try:
        yield s
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM alarm WHERE rule_id = :r"), {"r": s.rule_id})
            conn.execute(text("DELETE FROM rule WHERE id = :r"), {"r": s.rule_id})
            conn.execute(text("DELETE FROM sensor WHERE id = :s"), {"s": s.sensor_id})


# --------------------------------------------------------------------------------------------
# A small SSE client
# --------------------------------------------------------------------------------------------


@dataclass
class Received:
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]


def parse_sse(
    lines: Iterator[str], received: Received, *, on_listening: Callable[[], None] | None = None
) -> None:
    """Read SSE lines into ``received`` until the stream ends (the server's limits end it)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                received.events.append(
                    {
                        "id": int(fields["id"]),
                        "event": fields.get("event"),
                        "data": json.loads(fields["data"]),
                    }
                )
            fields = {}
        elif line.startswith(":"):
            received.comments.append(line[1:].strip())
            if received.comments[-1].startswith("listening") and on_listening is not None:
                on_listening()
        else:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


def read_stream(
    base: str,
    *,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
    on_listening: Callable[[], None] | None = None,
) -> Received:
    """One SSE connection; ``params`` should bound it (max_events / timeout_s)."""
    received = Received()
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{base}/alarms/stream", params=params, headers=headers) as r,
    ):
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        parse_sse(r.iter_lines(), received, on_listening=on_listening)
    return received


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------


def test_a_committed_event_reaches_a_live_client_and_a_rolled_back_one_never(
    live: str, subject: Subject
) -> None:
    made: dict[str, int] = {}

    def act() -> None:
        made["rolled_back"] = subject.event("never happened", commit=False)
        made["committed"] = subject.event("gas at 25 %LEL")

    got = read_stream(live, params={"max_events": 1, "timeout_s": 20}, on_listening=act)
    assert got.ids == [made["committed"]]
    event = got.events[0]
    assert event["event"] == "alarm"
    assert event["data"]["event"]["note"] == "gas at 25 %LEL"
    assert event["data"]["event"]["alarm_id"] == subject.alarm_id
    assert event["data"]["alarm"]["id"] == subject.alarm_id
    assert event["data"]["alarm"]["level_name"] == "II"
    assert got.comments[0] == f"listening on {CHANNEL}"


def test_a_transition_is_pushed_with_the_alarm_as_it_now_is(
    live: str, subject: Subject, tokens: dict[str, str]
) -> None:
    def verify() -> None:
        response = httpx.post(
            f"{live}/alarms/{subject.alarm_id}/transition",
            json={"to": "verified", "note": "seen on CCTV"},
            headers=f.bearer(tokens["analyst"]),
        )
        assert response.status_code == 200, response.text

    got = read_stream(live, params={"max_events": 1, "timeout_s": 20}, on_listening=verify)
    data = got.events[0]["data"]
    assert (data["event"]["actor"], data["event"]["from_state"], data["event"]["to_state"]) == (
        "test-analyst",
        "raised",
        "verified",
    )
    assert data["alarm"]["state"] == "verified"
    assert data["alarm"]["allowed_transitions"] == ["pushed"]


def test_reconnecting_with_last_event_id_replays_the_missed_events_then_goes_live(
    live: str, subject: Subject
) -> None:
    def two_live() -> None:
        subject.events += [subject.event("e2"), subject.event("e3")]

    first = read_stream(live, params={"max_events": 2, "timeout_s": 20}, on_listening=two_live)
    assert first.ids == subject.events[1:3]
    last_seen = first.ids[-1]

    # Disconnected: these two are missed…
    missed = [subject.event("e4"), subject.event("e5")]

    def one_more() -> None:
        subject.events.append(subject.event("e6"))

    # …and come first on reconnection, then the live one, each exactly once and in order.
    second = read_stream(
        live,
        params={"max_events": 3, "timeout_s": 20},
        headers={"Last-Event-ID": str(last_seen)},
        on_listening=one_more,
    )
    assert second.ids == [*missed, subject.events[-1]]
    assert [e["data"]["event"]["note"] for e in second.events] == ["e4", "e5", "e6"]

    # The query parameter does the same (for a first connection that remembers an id); the
    # header wins over it.
    by_query = read_stream(live, params={"last_event_id": missed[0], "timeout_s": 1})
    assert by_query.ids == [missed[1], subject.events[-1]]
    both = read_stream(
        live,
        params={"last_event_id": 0, "timeout_s": 1},
        headers={"Last-Event-ID": str(missed[1])},
    )
    assert both.ids == [subject.events[-1]]


def test_an_event_both_replayed_and_notified_is_sent_once(
    database_url: str, subject: Subject
) -> None:
    """A stream joins the hub (LISTEN on) before its replay query, so an event committed in
    between arrives twice: in the replay and pushed by the hub. The stream must send it once."""

    async def connect() -> psycopg.AsyncConnection[dict[str, Any]]:
        conn = await psycopg.AsyncConnection.connect(
            libpq(database_url), autocommit=True, row_factory=dict_row
        )
        await conn.execute(f"LISTEN {CHANNEL}")
        return conn

    async def scenario() -> tuple[list[bytes], bool, int]:
        hub = AlarmHub(connect)
        sub = await hub.subscribe()
        replay = await connect()
        # Committed after LISTEN and before the replay: in the table *and* pushed.
        subject.events.append(subject.event("in between"))
        await asyncio.sleep(0.3)  # the hub has read and pushed it
        frames = [
            chunk
            async for chunk in event_stream(
                hub,
                sub,
                replay=replay,
                last_event_id=subject.events[0],
                timeout_s=1.5,
                heartbeat_s=60,
            )
        ]
        return frames, replay.closed, hub.subscribers

    frames, closed, left = asyncio.run(scenario())
    events = [f for f in frames if f.startswith(b"id: ")]
    assert len(events) == 1
    assert events[0].startswith(f"id: {subject.events[-1]}\nevent: alarm\n".encode())
    assert closed  # the replay connection is closed once the replay is done
    assert left == 0  # the stream left the hub when it ended


def test_many_streams_share_one_listen_connection(
    live: str, engine: Engine, subject: Subject
) -> None:
    """Each stream used to hold a LISTEN connection of its own and read every event itself:
    20 screens were 20 PostgreSQL connections. The hub holds one for all of them."""
    assert wait_for_listeners(engine, 0) == 0
    n = 5
    joined = threading.Barrier(n + 1)
    got: list[Received] = [Received() for _ in range(n)]

    def client(i: int) -> None:
        with (
            httpx.Client(timeout=30) as c,
            c.stream(
                "GET", f"{live}/alarms/stream", params={"max_events": 2, "timeout_s": 10}
            ) as r,
        ):
            parse_sse(r.iter_lines(), got[i], on_listening=lambda: joined.wait(10))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    joined.wait(10)
    assert listeners(engine) == 1
    subject.events += [subject.event("one"), subject.event("two")]
    for t in threads:
        t.join(15)
    assert [r.ids for r in got] == [subject.events[-2:]] * n
    assert wait_for_listeners(engine, 0) == 0  # the last stream gone, the hub closes it


def test_a_stream_that_falls_too_far_behind_is_ended() -> None:
    """A stalled client is not buffered without bound: past ``max_queued`` frames the hub ends
    its stream (EventSource reconnects with Last-Event-ID and replays from the table)."""
    sub = Subscription(max_queued=3)
    sub.push([(1, b"a"), (2, b"b")])
    sub.push([(3, b"c"), (4, b"d")])  # 4 > 3: ended
    assert sub.ended
    assert "3 frames behind" in str(sub.why)

    async def drain() -> list[Any]:
        return [await sub.next(0.1), await sub.next(0.1)]

    assert asyncio.run(drain()) == [[(1, b"a"), (2, b"b")], None]


# --------------------------------------------------------------------------------------------
# Heartbeats, limits, errors, disconnect, shutdown
# --------------------------------------------------------------------------------------------


def test_heartbeats_and_timeout(live: str) -> None:
    started = time.monotonic()
    got = read_stream(live, params={"heartbeat_s": 0.2, "timeout_s": 1.1})
    assert 1.0 <= time.monotonic() - started < 10
    assert got.comments.count("heartbeat") >= 3


def test_bad_parameters_are_4xx(live: str) -> None:
    with httpx.Client(timeout=10) as client:
        url = f"{live}/alarms/stream"
        assert client.get(url, headers={"Last-Event-ID": "abc"}).status_code == 422
        assert client.get(url, params={"last_event_id": -1}).status_code == 422
        assert client.get(url, params={"max_events": 0}).status_code == 422
        assert client.get(url, params={"heartbeat_s": 0}).status_code == 422


def listeners(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'cityrisk-alarm-stream'"
                )
            ).scalar_one()
        )


def wait_for_listeners(engine: Engine, n: int, timeout_s: float = 10) -> int:
    """The number of stream connections, once it is ``n`` or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while (count := listeners(engine)) != n and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_client_disconnect_closes_the_listen_connection(live: str, engine: Engine) -> None:
    assert wait_for_listeners(engine, 0) == 0  # earlier tests' streams are gone
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{live}/alarms/stream") as response,
    ):
        # Keep the iterator referenced: a dropped one is closed, and closes the connection.
        lines = response.iter_lines()
        for line in lines:
            if line.startswith(": listening"):
                break
        assert listeners(engine) == 1
        lines.close()
    # The client is gone: the server notices and closes its connection.
    assert wait_for_listeners(engine, 0) == 0


def test_sigterm_ends_open_streams_and_the_server_exits(database_url: str, tmp_path: Path) -> None:
    """Uvicorn waits for open responses before shutting down: an endless stream that ignored
    the shutdown would keep the process alive forever."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CITYRISK_DATA_DIR": str(tmp_path),
        "CITYRISK_OFFLINE_CHECK_S": "0",
        "CITYRISK_MQTT_CONSUMER": "false",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)

        received = Received()
        ended = threading.Event()

        def client() -> None:
            with (
                contextlib.suppress(httpx.TransportError),
                httpx.Client(timeout=60) as c,
                c.stream("GET", f"{base}/alarms/stream") as r,
            ):
                parse_sse(
                    r.iter_lines(), received, on_listening=lambda: proc.send_signal(signal.SIGTERM)
                )
            ended.set()

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        # Uvicorn exits by re-raising the signal once it has shut down cleanly.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        assert ended.wait(5), "the client's stream did not end"
        assert received.comments[0].startswith("listening")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
