"""Live readings over MQTT on a real Mosquitto and real PostGIS.

Each test starts its own broker (`LocalBroker` in a temp data directory, on a free port) so it
can stop and restart it, and commits real rows in the session's test database (the consumer has
its own connections, so the rolled-back `session` fixture cannot be used); the sensors it made are
deleted afterwards, with their readings (ON DELETE CASCADE).

Every Settings here passes ``mqtt_consumer=False`` unless the test is about the consumer that the
API's lifespan starts, so no TestClient app consumes by accident.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.api.mqtt import JSON, NDJSON, BackgroundConsumer, content_type_of
from app.flows.readings import ReadingsReport as IngestReport
from app.flows.readings import ingest_payload
from app.local.broker import LocalBroker
from app.main import create_app
from app.scratch import free_port
from app.settings import Settings, parse_mqtt_url

TIMEOUT_S = 15.0
NOW = datetime.now(UTC).replace(microsecond=0)


def quiet(_: str) -> None:
    """A ``log`` for LocalBroker that says nothing."""


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def reading(sensor: str, minutes_ago: float, value: float) -> dict[str, object]:
    return {
        "sensor": sensor,
        "ts": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "value": value,
    }


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    """A Mosquitto of this test only, in a data dir the ``mosquitto`` user can reach."""
    path = Path(tempfile.mkdtemp(prefix="cityrisk-mqtt-test-"))
    path.chmod(0o755)
    local = LocalBroker(Settings(data_dir=path, mqtt_port=free_port()))
    try:
        local.up(quiet)
        yield local
    finally:
        local.down(quiet)
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Db:
    """Committed test data in the session database, and how to look at it."""

    url: str
    sensors: list[str] = field(default_factory=list)

    def add_sensor(self, external_id: str) -> None:
        with psycopg.connect(libpq(self.url), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO sensor (external_id, kind, unit, geom) VALUES "
                "(%s, 'ch4_pct_lel', '%%LEL', ST_SetSRID(ST_MakePoint(-71.1, 42.37), 4326))",
                (external_id,),
            )
        self.sensors.append(external_id)

    def stored(self, external_id: str) -> list[tuple[datetime, float]]:
        with psycopg.connect(libpq(self.url), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT r.ts, r.value FROM reading r JOIN sensor s ON s.id = r.sensor_id "
                "WHERE s.external_id = %s ORDER BY r.ts",
                (external_id,),
            ).fetchall()
        return [(ts, value) for ts, value in rows]

    def count(self, external_id: str) -> int:
        return len(self.stored(external_id))


@pytest.fixture
def db(database_url: str) -> Iterator[Db]:
    data = Db(database_url)
    try:
        yield data
    finally:
        if data.sensors:
            with psycopg.connect(libpq(database_url), autocommit=True) as conn:
                conn.execute("DELETE FROM sensor WHERE external_id = ANY(%s)", (data.sensors,))


def consumer_settings(
    broker: LocalBroker, database_url: str, *, client_id: str | None = None, **extra: object
) -> Settings:
    """Settings of a consumer of ``broker`` (through its data dir: no MQTT_URL)."""
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": broker.data_dir,
        "mqtt_port": broker.port,
        "mqtt_url": None,
        "mqtt_consumer": False,
        "mqtt_client_id": client_id or f"cityrisk-test-{secrets.token_hex(4)}",
        "db_connect_timeout_s": 2,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def consuming(settings: Settings) -> Iterator[BackgroundConsumer]:
    """A consumer on its thread, connected to the broker, stopped afterwards."""
    consumer = BackgroundConsumer(settings).start()
    try:
        assert consumer.consumer.connected.wait(TIMEOUT_S), "the consumer did not connect"
        yield consumer
    finally:
        consumer.stop()


class Publisher:
    """A QoS 1 publisher that records which messages the broker acknowledged (PUBACK).

    paho keeps every unacknowledged QoS 1 message and sends it again, with DUP, when it
    reconnects: a broker restart loses nothing that was not acknowledged yet.
    """

    def __init__(self, url: str) -> None:
        address = parse_mqtt_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"cityrisk-test-pub-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_queued_messages_set(
            0
        )  # unbounded: keep everything while the broker is away
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.refused: dict[int, str] = {}
        self.connects = 0
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_publish = self._on_publish
        self.client.connect(address.host, address.port, keepalive=5)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT_S)

    def _on_connect(self, *_: object) -> None:
        self.connects += 1
        self.connected.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode, props: object
    ) -> None:
        with self.lock:
            if reason.is_failure:
                self.refused[mid] = str(reason)
            else:
                self.acked.add(mid)

    def publish(
        self,
        payload: bytes,
        *,
        topic: str = "cityrisk/readings/test",
        content_type: str | None = None,
    ) -> int:
        props = None
        if content_type is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = content_type
        return self.client.publish(topic, payload, qos=1, properties=props).mid

    def wait_acked(self, mids: list[int], timeout_s: float = TIMEOUT_S) -> bool:
        return wait_until(lambda: set(mids) <= self.acked, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_url(broker: LocalBroker, name: str = "test") -> str:
    """The login of a device that publishes to ``cityrisk/readings/<name>`` (made on demand)."""
    return broker.device_url(name, broker.add_device(name, quiet))


@pytest.fixture
def publisher(broker: LocalBroker) -> Iterator[Publisher]:
    pub = Publisher(device_url(broker))
    try:
        yield pub
    finally:
        pub.close()


# -- content type -----------------------------------------------------------------------------
def test_content_type_from_the_property_else_from_the_lines() -> None:
    one = json.dumps(reading("s1", 1, 1.0)).encode()
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "text/csv"
    assert content_type_of(b"sensor,ts,value\ns1,2026-01-01T00:00:00Z,1\n", props) == "text/csv"
    assert content_type_of(one) == JSON
    assert content_type_of(one + b"\n" + one + b"\n") == NDJSON
    # Pretty-printed JSON spans lines but is not NDJSON.
    assert content_type_of(json.dumps([reading("s1", 1, 1.0)], indent=2).encode()) == JSON
    assert content_type_of(json.dumps(reading("s1", 1, 1.0), indent=2).encode()) == JSON


# -- the consumer -----------------------------------------------------------------------------
def test_a_published_reading_is_stored_then_acknowledged(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    db.add_sensor("s1")
    with consuming(consumer_settings(broker, database_url)) as consumer:
        mid = publisher.publish(json.dumps(reading("s1", 60, 3.5)).encode())
        assert publisher.wait_acked([mid])
        assert wait_until(lambda: consumer.stats.acked == 1), consumer.stats
    assert db.stored("s1") == [(NOW - timedelta(minutes=60), 3.5)]
    assert (consumer.stats.committed, consumer.stats.readings_accepted) == (1, 1)


def test_batches_are_stored_once_however_often_they_come(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    db.add_sensor("mq-batch")
    batch = [reading("mq-batch", m, float(m)) for m in (3, 2, 1)]
    ndjson = b"".join(json.dumps(r).encode() + b"\n" for r in batch)
    with consuming(consumer_settings(broker, database_url)) as consumer:
        publisher.publish(ndjson)
        publisher.publish(ndjson)  # a gateway's replay
        publisher.publish(json.dumps(batch[:1]).encode())  # a JSON array
        csv = f"sensor,ts,value\nmq-batch,{batch[0]['ts']},3.0\n"
        publisher.publish(csv.encode(), content_type="text/csv")  # the MQTT 5 property
        assert wait_until(lambda: consumer.stats.acked == 4), consumer.stats
    assert [v for _, v in db.stored("mq-batch")] == [3.0, 2.0, 1.0]
    stats = consumer.stats
    assert (stats.readings_accepted, stats.readings_duplicate) == (3, 5), stats


def test_a_poison_message_is_acknowledged_and_does_not_block_the_queue(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    db.add_sensor("mq-poison")
    with consuming(consumer_settings(broker, database_url)) as consumer:
        publisher.publish(b"{this is not json")
        publisher.publish(json.dumps([reading("mq-poison", 5, 1.0), {"sensor": "nope"}]).encode())
        publisher.publish(json.dumps(reading("mq-poison", 4, 2.0)).encode())
        assert wait_until(lambda: consumer.stats.acked == 3), consumer.stats
    assert [v for _, v in db.stored("mq-poison")] == [1.0, 2.0]
    assert consumer.stats.rejected_payloads == 1  # the whole message
    assert consumer.stats.readings_rejected == 1  # one row of an accepted batch


def test_messages_published_while_the_consumer_is_away_arrive_when_it_returns(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    """The persistent session keeps them, across a broker restart too."""
    db.add_sensor("mq-away")
    settings = consumer_settings(broker, database_url)
    with consuming(settings):
        pass  # the first connection creates the session and its subscription
    mids = [publisher.publish(json.dumps(reading("mq-away", m, m)).encode()) for m in range(5)]
    assert publisher.wait_acked(mids)
    broker.down(quiet)
    broker.up(quiet)
    assert db.count("mq-away") == 0
    with consuming(settings) as consumer:
        assert wait_until(lambda: db.count("mq-away") == 5), consumer.stats
        assert wait_until(lambda: consumer.stats.acked == 5), consumer.stats


def test_the_consumer_waits_for_a_broker_that_is_down_and_connects_when_it_is_back(
    broker: LocalBroker, db: Db, database_url: str
) -> None:
    db.add_sensor("mq-late")
    settings = consumer_settings(broker, database_url)
    with consuming(settings):
        pass  # the session exists
    broker.down(quiet)
    consumer = BackgroundConsumer(settings).start()
    try:
        assert not consumer.consumer.connected.wait(0.5)
        broker.up(quiet)
        assert consumer.consumer.connected.wait(TIMEOUT_S)  # paho's reconnect backoff: 1 s, 2 s…
        publisher = Publisher(device_url(broker))
        try:
            publisher.publish(json.dumps(reading("mq-late", 1, 1.0)).encode())
            assert wait_until(lambda: consumer.stats.acked == 1), consumer.stats
        finally:
            publisher.close()
    finally:
        started = time.monotonic()
        consumer.stop()
    assert time.monotonic() - started < 5
    assert db.count("mq-late") == 1


def test_an_unexpected_error_is_not_acknowledged_and_the_message_comes_again(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    """A bug must not drop a reading: no ack, back off, and the broker sends it again."""
    db.add_sensor("mq-bug")
    calls: list[bytes] = []

    def flaky(session: Session, body: bytes, content_type: str) -> IngestReport:
        calls.append(body)
        if len(calls) == 1:
            raise RuntimeError("a bug in cityrisk")
        return ingest_payload(session, body, content_type)

    consumer = BackgroundConsumer(consumer_settings(broker, database_url), ingest=flaky).start()
    try:
        assert consumer.consumer.connected.wait(TIMEOUT_S)
        publisher.publish(json.dumps(reading("mq-bug", 1, 1.0)).encode())
        assert wait_until(lambda: consumer.stats.acked == 1), consumer.stats
    finally:
        consumer.stop()
    assert (consumer.stats.errors, consumer.stats.redelivered) == (1, 1)
    assert consumer.stats.last_error == "a bug in cityrisk"
    assert len(calls) == 2
    assert db.count("mq-bug") == 1


def test_two_consumers_with_one_client_id_take_turns_not_the_session(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    """e.g. `serve --workers 2`: the second stands by, and takes over when the first stops."""
    db.add_sensor("mq-twin")
    settings = consumer_settings(broker, database_url)
    twins = (BackgroundConsumer(settings).start(), BackgroundConsumer(settings).start())
    try:
        # Both start at once: whichever takes the lock first consumes, the other stands by.
        assert wait_until(lambda: any(t.consumer.connected.is_set() for t in twins))
        active, standby = twins if twins[0].consumer.connected.is_set() else twins[::-1]
        assert not standby.consumer.connected.is_set()
        publisher.publish(json.dumps(reading("mq-twin", 2, 1.0)).encode())
        assert wait_until(lambda: active.stats.acked == 1)
        assert standby.stats.acked == 0
        active.stop()
        publisher.publish(json.dumps(reading("mq-twin", 1, 2.0)).encode())
        assert wait_until(lambda: standby.stats.acked == 1), standby.stats
        assert active.stats.connects == 1  # never thrown off by its twin
    finally:
        for twin in twins:
            twin.stop()
    assert db.count("mq-twin") == 2


class TcpProxy:
    """A TCP relay to PostgreSQL that the test can cut (refuse and drop connections) and restore."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._open = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        self._open.set()
        self._thread = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._open.clear()
        if self._thread is not None:
            self._thread.join(TIMEOUT_S)
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._open.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
                with self._lock:
                    self._sockets += [client, upstream]
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


def test_database_unavailable_means_no_ack_and_the_broker_redelivers(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    db.add_sensor("mq-dbdown")
    real = make_url(database_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    proxy.restore()
    via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with consuming(consumer_settings(broker, via_proxy)) as consumer:
            proxy.cut()
            mid = publisher.publish(json.dumps(reading("mq-dbdown", 1, 7.0)).encode())
            assert publisher.wait_acked([mid])  # the broker has it
            assert wait_until(lambda: consumer.stats.database_failures >= 2), consumer.stats
            assert consumer.stats.acked == 0
            assert not consumer.consumer.connected.is_set()  # left the broker while waiting
            assert db.count("mq-dbdown") == 0

            proxy.restore()
            assert wait_until(lambda: consumer.stats.acked == 1), consumer.stats
            # Sent again by the broker (DUP) because it was never acknowledged.
            assert consumer.stats.redelivered >= 1
            assert consumer.stats.received >= 2
    finally:
        proxy.cut()
    assert db.stored("mq-dbdown") == [(NOW - timedelta(minutes=1), 7.0)]


def test_a_broker_restart_while_publishing_loses_no_acknowledged_reading(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    """Publish N QoS 1 readings; stop and start the broker in the middle; count.

    Every reading whose PUBACK the publisher received must be in ``reading`` at the end. The
    publisher keeps publishing while the broker is down (paho queues those messages and sends
    them, with the unacknowledged in-flight ones, when it reconnects); the consumer's session and
    the messages queued for it are saved by the broker when it stops.
    """
    db.add_sensor("mq-restart")
    n, stop_at, start_at = 400, 150, 250
    ts_of: dict[int, datetime] = {}
    published_while_down = 0
    with consuming(consumer_settings(broker, database_url)) as consumer:
        t0 = time.monotonic()
        for i in range(n):
            if i == stop_at:
                broker.down(quiet)
                down_at = time.monotonic()
            if i == start_at:
                broker.up(quiet)
                downtime = time.monotonic() - down_at
            ts = NOW - timedelta(hours=2) + timedelta(seconds=i)
            body = json.dumps({"sensor": "mq-restart", "ts": ts.isoformat(), "value": i / 10})
            ts_of[publisher.publish(body.encode())] = ts
            published_while_down += stop_at <= i < start_at
            time.sleep(0.002)
        assert publisher.wait_acked(list(ts_of), timeout_s=30), (
            f"{len(publisher.acked)} of {n} acknowledged"
        )
        acked_ts = {ts_of[mid] for mid in publisher.acked}
        assert wait_until(lambda: db.count("mq-restart") >= len(acked_ts), timeout_s=30)
        drained = time.monotonic() - t0
        stats = consumer.stats
    stored = {ts for ts, _ in db.stored("mq-restart")}
    missing = acked_ts - stored
    assert not missing, f"{len(missing)} acknowledged readings lost"
    assert not publisher.refused
    # The restart did happen mid-stream and both sides came back.
    assert published_while_down == start_at - stop_at
    assert publisher.connects >= 2
    assert stats.connects >= 2
    summary = (
        f"broker restart: {n} published ({published_while_down} while it was down for "
        f"{downtime:.2f} s), {len(acked_ts)} acknowledged, {len(stored)} stored, "
        f"{len(missing)} lost; consumer: {stats.received} deliveries, {stats.redelivered} "
        f"redelivered, {stats.readings_duplicate} duplicates ignored, {stats.stale_acks_skipped} "
        f"acks withheld after the reconnect, {stats.connects} connects; "
        f"all stored {drained:.1f} s after the first publish"
    )
    print(summary)


# -- where the consumer runs ------------------------------------------------------------------
def test_the_api_lifespan_starts_and_stops_the_consumer_only_when_asked(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    db.add_sensor("mq-api")
    off = consumer_settings(broker, database_url)
    with TestClient(create_app(off)) as client:
        assert client.app.state.mqtt_consumer is None  # type: ignore[attr-defined]

    on = consumer_settings(broker, database_url, mqtt_consumer=True)
    with TestClient(create_app(on)) as client:
        background: BackgroundConsumer = client.app.state.mqtt_consumer  # type: ignore[attr-defined]
        assert background is not None
        assert background.consumer.connected.wait(TIMEOUT_S)
        publisher.publish(json.dumps(reading("mq-api", 1, 1.0)).encode())
        assert wait_until(lambda: db.count("mq-api") == 1)
    assert not background._thread.is_alive()

    broker.down(quiet)
    with TestClient(create_app(on)) as client:  # no MQTT_URL and the local broker is down
        assert client.app.state.mqtt_consumer is None  # type: ignore[attr-defined]


def test_cityrisk_ingest_mqtt_consumes_until_sigterm(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    db.add_sensor("mq-cli")
    settings = consumer_settings(broker, database_url)
    with consuming(settings):
        pass  # the session exists from now on: what is published next waits for the command
    env = {
        **{k: v for k, v in os.environ.items() if k != "MQTT_URL"},
        "DATABASE_URL": database_url,
        "CITYRISK_DATA_DIR": str(broker.data_dir),
        "CITYRISK_MQTT_PORT": str(broker.port),
        "CITYRISK_MQTT_CLIENT_ID": settings.mqtt_client_id,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "ingest-mqtt"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        publisher.publish(json.dumps(reading("mq-cli", 1, 4.0)).encode())
        assert wait_until(lambda: db.count("mq-cli") == 1, timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    # As the consumer's own login, its password not shown.
    assert "consuming cityrisk/readings/# from mqtt://cityrisk:***@127.0.0.1:" in err
    assert "stopped: 1 messages, 1 readings stored" in err


def test_a_consumer_killed_mid_stream_loses_nothing_acknowledged_and_stores_nothing_partial(
    broker: LocalBroker, publisher: Publisher, db: Db, database_url: str
) -> None:
    """SIGKILL (no chance to clean up) while messages of 50 readings each stream in (a message's
    readings share its value, m / 4 %LEL, to tell messages apart): at the kill
    every message is stored whole or not at all (a message is one transaction), and once a new
    consumer has taken the session over every message is stored exactly once."""
    db.add_sensor("mq-kill")
    settings = consumer_settings(broker, database_url)
    with consuming(settings):
        pass  # the persistent session exists: messages published now wait for the command
    env = {
        **{k: v for k, v in os.environ.items() if k != "MQTT_URL"},
        "DATABASE_URL": database_url,
        "CITYRISK_DATA_DIR": str(broker.data_dir),
        "CITYRISK_MQTT_PORT": str(broker.port),
        "CITYRISK_MQTT_CLIENT_ID": settings.mqtt_client_id,
    }
    messages, per = 300, 50

    def consumer() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "ingest-mqtt"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = consumer()
    try:
        mids = [
            publisher.publish(
                "\n".join(
                    json.dumps(reading("mq-kill", (m * per + i) / 60, m / 4)) for i in range(per)
                ).encode(),
                content_type=NDJSON,
            )
            for m in range(messages)
        ]
        assert wait_until(lambda: db.count("mq-kill") >= 10 * per, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        first.wait(TIMEOUT_S)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = db.stored("mq-kill")
    assert 0 < len(at_kill) < messages * per, "the kill came too late to test anything"
    by_message: dict[float, int] = {}
    for _, value in at_kill:
        by_message[value] = by_message.get(value, 0) + 1
    assert set(by_message.values()) == {per}, "a message was stored in part"
    assert publisher.wait_acked(mids, timeout_s=60)  # the broker has every message
    second = consumer()
    try:
        done = wait_until(lambda: db.count("mq-kill") == messages * per, timeout_s=90)
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=TIMEOUT_S)
        assert done, (len(at_kill), db.count("mq-kill"), err[-2000:])
    finally:
        if second.poll() is None:
            second.kill()
    stored = db.stored("mq-kill")
    assert len(stored) == messages * per == len({ts for ts, _ in stored})  # each exactly once
