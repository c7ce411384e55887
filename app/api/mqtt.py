"""Live readings over MQTT: store each message's readings in PostgreSQL, then acknowledge it.

Sensors (or their gateways) publish to ``cityrisk/readings/<anything>`` with QoS 1; a message is
one reading or a batch (a JSON array, NDJSON lines, or CSV with an MQTT 5 ``content-type``).

Guarantee: **at least once** from the broker to PostgreSQL, **once** in the ``reading`` table.

- The consumer subscribes with QoS 1 on a **persistent session**: a fixed client id
  (``CITYRISK_MQTT_CLIENT_ID``), MQTT 5 ``clean_start=False`` and a session expiry of
  ``SESSION_EXPIRY_S``. While it is away the broker queues the messages for it.
- Acknowledgement is **manual**: the PUBACK of a message is sent only after
  :func:`app.flows.readings.ingest_payload` (store, warn, rescore) and ``session.commit()``
  have returned.
  Whatever happens before that (a crash, a lost connection, a database error) leaves the message
  unacknowledged, and the broker sends it again on the next connection of the session.
- Storing is idempotent (``reading`` has the primary key ``(sensor_id, ts)``), so a message
  delivered twice — committed, then the PUBACK lost — stores nothing new the second time.
- A payload rejected as a whole (``InvalidInput``) is logged and acknowledged, so one bad message
  cannot block the queue; rejected rows of an accepted batch are summarised in the log.
- When the database is unavailable the message is **not** acknowledged: the consumer leaves the
  broker (its messages stay queued in the broker's persistent store), waits for the database
  with exponential backoff, and reconnects; the broker then redelivers. Any other unexpected
  error is handled the same way (logged with its traceback): a reading is never dropped because
  of a bug in cityrisk.

A PUBACK carries the packet id of its message, and packet ids are per connection: the ack of a
message received on an earlier connection is never sent on a later one (``_ack`` checks the
connection generation). Such a message is still stored — should the broker have lost it in a
crash, this is its only copy — and the broker's redelivery of it then stores nothing new.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import create_db_engine, database_url, make_sessionmaker
from app.errors import DatabaseUnavailable, InvalidInput
from app.flows.readings import ReadingsReport, ingest_payload
from app.local.broker import READINGS_TOPIC, LocalBroker, broker_url
from app.settings import BrokerAddress, ConfigError, Settings, parse_mqtt_url

log = logging.getLogger("cityrisk.mqtt")

TOPIC_FILTER = f"{READINGS_TOPIC}/#"
QOS = 1
# How long the broker keeps the consumer's session (subscription + queued messages) while it is
# away; past that, readings published meanwhile are dropped by the broker.
SESSION_EXPIRY_S = 7 * 24 * 3600
# Unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum), since we
# acknowledge only after each commit. Mosquitto 2.0.11 does not hold to it (each PUBACK releases a
# whole new window), so the inbox is bounded too: when it is full the network thread waits, stops
# reading the socket, and TCP makes the broker keep the rest.
RECEIVE_MAXIMUM = 64
INBOX_SIZE = 2 * RECEIVE_MAXIMUM
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 5.0
SUMMARY_EVERY_S = 60.0

JSON = "application/json"
NDJSON = "application/x-ndjson"

Ingest = Callable[[Session, bytes, str], ReadingsReport]


def content_type_of(payload: bytes, properties: Properties | None = None) -> str:
    """The media type to parse ``payload`` with.

    The MQTT 5 ``content-type`` property when the publisher set one; else NDJSON when the payload
    has several lines and its first line is a whole JSON object; else JSON. The first-line test
    keeps a pretty-printed JSON array or object (whose first line is ``[`` or ``{``) as JSON.

    >>> content_type_of(b'{"sensor": "s1", "ts": "2026-11-28T10:00:00Z", "value": 1}')
    'application/json'
    >>> content_type_of(b'{"sensor": "s1"}\\n{"sensor": "s2"}\\n')
    'application/x-ndjson'
    """
    declared = getattr(properties, "ContentType", None) if properties is not None else None
    if isinstance(declared, str) and declared.strip():
        return declared.strip()
    lines = [line.strip() for line in payload.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith(b"{") and lines[0].endswith(b"}"):
        return NDJSON
    return JSON


@dataclass
class ConsumerStats:
    """Counters of one consumer, for logs and tests (written by the consumer's threads only)."""

    connects: int = 0
    received: int = 0
    redelivered: int = 0  # arrived with the DUP flag: sent to us before and not acknowledged
    committed: int = 0  # messages whose readings were committed
    acked: int = 0
    stale_acks_skipped: int = 0  # committed, but the connection changed: the broker redelivers
    rejected_payloads: int = 0  # InvalidInput: logged and acknowledged
    readings_accepted: int = 0
    readings_duplicate: int = 0
    readings_rejected: int = 0
    database_failures: int = 0
    errors: int = 0
    last_error: str | None = None


class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform in [0, min(cap, base·2ⁿ)].

    Jitter spreads the reconnections of many consumers after a shared outage.
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - timing jitter, not security

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class _Delivery:
    mid: int
    qos: int
    topic: str
    payload: bytes
    content_type: str
    dup: bool
    generation: int  # the connection it arrived on


def _transient_database_error(exc: BaseException) -> bool:
    """True for errors that say the database is away or the transaction may succeed if retried."""
    if isinstance(exc, DatabaseUnavailable | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, psycopg.OperationalError)


class ReadingConsumer:
    """Consume ``cityrisk/readings/#`` into PostgreSQL; see the module docstring for the guarantees.

    Parameters
    ----------
    settings
        Where the broker (``MQTT_URL`` or the local one) and the database are, and the client id.
    ingest
        Stores one payload and flushes; the default is :func:`app.flows.readings.ingest_payload`
        with the readings-per-batch and age limits (``CITYRISK_MAX_READINGS``,
        ``CITYRISK_MAX_READING_AGE_DAYS``).
    backoff
        Delays between attempts after a database or broker failure.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ingest: Ingest | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.url = broker_url(settings)
        self.address: BrokerAddress = parse_mqtt_url(self.url)
        self.client_id = settings.mqtt_client_id
        self.stats = ConsumerStats()
        self._ingest: Ingest = ingest or self._ingest_bounded
        self._backoff = backoff or Backoff()
        self._inbox: queue.Queue[_Delivery] = queue.Queue(maxsize=INBOX_SIZE)
        self._closing = threading.Event()  # tells a network thread waiting on a full inbox to quit
        self._lock = threading.Lock()  # guards _generation against the network thread
        self._generation = 0
        self._connected = threading.Event()
        self._last_summary = time.monotonic()
        self._summarised = ConsumerStats()

    @property
    def connected(self) -> threading.Event:
        """Set while the consumer is connected and subscribed (for tests and health)."""
        return self._connected

    # -- main loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; never raises for a broker or database outage."""
        with _single_consumer(self.settings, stop) as owner:
            if not owner:
                return
            engine: Engine | None = None
            try:
                while not stop.is_set():
                    if engine is None:
                        engine = self._engine()
                    if engine is None or not self._database_answers(engine):
                        stop.wait(self._backoff.next_delay())
                        continue
                    if self._consume(make_sessionmaker(engine), stop):
                        break
                    stop.wait(self._backoff.next_delay())
            finally:
                if engine is not None:
                    engine.dispose()
                self._log_summary(force=True)

    def _engine(self) -> Engine | None:
        try:
            url = database_url(self.settings)
        except DatabaseUnavailable as exc:
            self._note_database_failure(exc)
            return None
        return create_db_engine(
            url, pool_size=1, connect_timeout_s=self.settings.db_connect_timeout_s
        )

    def _database_answers(self, engine: Engine) -> bool:
        """Probe before taking messages from the broker, so an outage keeps them queued there."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            self._note_database_failure(exc)
            return False
        return True

    def _note_database_failure(self, exc: BaseException) -> None:
        self.stats.database_failures += 1
        self.stats.last_error = _one_line(exc)
        log.warning(
            "database unavailable (%s): not taking readings from MQTT; retrying with backoff",
            self.stats.last_error,
        )

    def _consume(self, factory: sessionmaker[Session], stop: threading.Event) -> bool:
        """One stay on the broker. True when ``stop`` ended it, False after a failed message."""
        client = self._client()
        self._closing.clear()
        client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=KEEPALIVE_S,
            clean_start=False,  # never FIRST_ONLY: that would drop the queue on each start
            properties=self._connect_properties(),
        )
        client.loop_start()  # the network thread connects and reconnects with its own backoff
        try:
            while not stop.is_set():
                self._log_summary()
                try:
                    delivery = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if not self._handle(delivery, factory, client):
                    return False
            return True
        finally:
            self._closing.set()
            client.disconnect()  # after any PUBACK already queued: packets leave in order
            client.loop_stop()
            self._connected.clear()
            # Unacknowledged deliveries still queued here are the broker's to send again.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._inbox.get_nowait()

    def _ingest_bounded(
        self, session: Session, payload: bytes, content_type: str
    ) -> ReadingsReport:
        """:func:`ingest_payload` with the settings' limits: readings per batch, their age."""
        limits = self.settings.limits
        return ingest_payload(
            session,
            payload,
            content_type,
            max_readings=limits.readings,
            max_age=limits.reading_age,
        )

    # -- one message ------------------------------------------------------------------------
    def _handle(
        self, delivery: _Delivery, factory: sessionmaker[Session], client: mqtt.Client
    ) -> bool:
        """Store one message, commit, then acknowledge; False when it must be retried."""
        self.stats.received += 1
        if delivery.dup:
            self.stats.redelivered += 1
        try:
            with factory() as session:
                report = self._ingest(session, delivery.payload, delivery.content_type)
                session.commit()
        except InvalidInput as exc:
            # Poison message: retrying cannot help, and holding it would block the queue.
            self.stats.rejected_payloads += 1
            log.warning(
                "rejected message on %s (%d bytes, %s), acknowledged and dropped: %s",
                delivery.topic,
                len(delivery.payload),
                delivery.content_type,
                exc.message,
            )
            self._ack(client, delivery)
            return True
        except Exception as exc:
            if _transient_database_error(exc):
                self._note_database_failure(exc)
            else:
                self.stats.errors += 1
                self.stats.last_error = _one_line(exc)
                log.exception(
                    "could not store the message on %s; not acknowledged, retrying with backoff",
                    delivery.topic,
                )
            return False
        self.stats.committed += 1
        self.stats.readings_accepted += report.accepted
        self.stats.readings_duplicate += report.duplicates
        self.stats.readings_rejected += len(report.rejected)
        if report.rejected:
            first = report.rejected[0]
            log.warning(
                "message on %s: %d of %d readings rejected (first: #%d%s: %s); %d stored, "
                "%d already stored",
                delivery.topic,
                len(report.rejected),
                report.received,
                first.index,
                f" sensor {first.sensor}" if first.sensor else "",
                first.reason,
                report.accepted,
                report.duplicates,
            )
        self._ack(client, delivery)
        self._backoff.reset()
        return True

    def _ack(self, client: mqtt.Client, delivery: _Delivery) -> None:
        if delivery.qos == 0:
            return  # nothing to acknowledge
        with self._lock:
            if delivery.generation != self._generation:
                # The packet id belongs to a closed connection; on this one it could name
                # another message. The broker redelivers this one, and storing it is a no-op.
                self.stats.stale_acks_skipped += 1
                return
            client.ack(delivery.mid, delivery.qos)
            self.stats.acked += 1

    # -- the MQTT client --------------------------------------------------------------------
    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        return props

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set()
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _new_generation(self) -> None:
        with self._lock:
            self._generation += 1

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        self._new_generation()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the consumer: %s", self.address.redacted(), reason)
            return
        self.stats.connects += 1
        log.info(
            "consuming %s from %s as %r (%s)",
            TOPIC_FILTER,
            self.address.redacted(),
            self.client_id,
            "session resumed" if flags.session_present else "new session",
        )
        # Subscribing again on a resumed session is harmless and keeps the filter current;
        # retained messages are sent only when the subscription is new.
        options = SubscribeOptions(qos=QOS, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe(TOPIC_FILTER, options=options)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscription to %s: %s", TOPIC_FILTER, reasons)
            return
        self._connected.set()  # from now on nothing published on the topic can miss us

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning("MQTT broker %s not reachable; retrying", self.address.redacted())

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        self._new_generation()
        if reason.is_failure:
            log.warning(
                "lost the MQTT broker %s (%s); reconnecting", self.address.redacted(), reason
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Runs on the network thread: only queue, so keep-alives flow while the database works.
        # _generation is bumped on this same thread (pre-connect, disconnect): no lock needed.
        payload = bytes(message.payload)
        delivery = _Delivery(
            mid=message.mid,
            qos=message.qos,
            topic=message.topic,
            payload=payload,
            content_type=content_type_of(payload, message.properties),
            dup=bool(message.dup),
            generation=self._generation,
        )
        while not self._closing.is_set():
            with contextlib.suppress(queue.Full):
                self._inbox.put(delivery, timeout=0.1)
                return
        # Leaving: the message stays unacknowledged and the broker sends it again.

    # -- logs -------------------------------------------------------------------------------
    def _log_summary(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_summary < SUMMARY_EVERY_S:
            return
        self._last_summary = now
        s, before = self.stats, self._summarised
        if s.received == before.received:
            return
        log.info(
            "MQTT: %d messages, %d readings stored, %d already stored, %d rows and %d messages "
            "rejected, %d redelivered",
            s.received - before.received,
            s.readings_accepted - before.readings_accepted,
            s.readings_duplicate - before.readings_duplicate,
            s.readings_rejected - before.readings_rejected,
            s.rejected_payloads - before.rejected_payloads,
            s.redelivered - before.redelivered,
        )
        self._summarised = ConsumerStats(**vars(s))


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    msg = str(orig if orig is not None else exc).strip()
    return msg.splitlines()[0] if msg else type(exc).__name__


@contextlib.contextmanager
def _single_consumer(settings: Settings, stop: threading.Event) -> Iterator[bool]:
    """Hold ``<data_dir>/mqtt-consumer-<client id>.lock`` while consuming; yield False if stopped.

    Two consumers with one client id would take the session from each other in turn (the broker
    closes the older connection), e.g. ``cityrisk serve --workers 4``: the others stand by and
    take over when the holder exits.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.mqtt_client_id)
    path = settings.data_dir.resolve() / f"mqtt-consumer-{name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held for the whole consumption
    except OSError as exc:
        log.warning("cannot create %s (%s): not guarding against a second consumer", path, exc)
        yield not stop.is_set()
        return
    try:
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    handle.seek(0)
                    holder = handle.read().strip() or "?"
                    log.info(
                        "another consumer (pid %s) holds %s; standing by to take over", holder, path
                    )
                    told = True
                if stop.wait(2.0):
                    yield False
                    return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield not stop.is_set()
    finally:
        handle.close()  # releases the lock


def run_consumer(settings: Settings, stop_event: threading.Event) -> ConsumerStats:
    """Consume readings from MQTT until ``stop_event`` is set (``cityrisk ingest-mqtt``)."""
    consumer = ReadingConsumer(settings)
    consumer.run(stop_event)
    return consumer.stats


class BackgroundConsumer:
    """A :class:`ReadingConsumer` on a daemon thread, for the API process's lifespan."""

    def __init__(self, settings: Settings, *, ingest: Ingest | None = None) -> None:
        self.consumer = ReadingConsumer(settings, ingest=ingest)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cityrisk-mqtt", daemon=True)

    @property
    def stats(self) -> ConsumerStats:
        return self.consumer.stats

    def start(self) -> BackgroundConsumer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.consumer.run(self._stop)
        except Exception:
            log.exception("the MQTT consumer stopped on an unexpected error")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the message in hand (commit, ack), leave the broker, end the thread."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("the MQTT consumer did not stop within %g s", timeout_s)


def start_background_consumer(settings: Settings) -> BackgroundConsumer | None:
    """Start consuming in the background when enabled and a broker is configured or up.

    Returns None (and says why in the log) when ``CITYRISK_MQTT_CONSUMER`` is off, or when
    ``MQTT_URL`` is unset and the project-local broker is not running.
    """
    if not settings.mqtt_consumer:
        return None
    if settings.mqtt_url is None and not LocalBroker(settings).status().running:
        log.info(
            "no MQTT_URL and the local broker is not running: no live readings over MQTT "
            "(`cityrisk mq up` starts it)"
        )
        return None
    try:
        return BackgroundConsumer(settings).start()
    except ConfigError as exc:
        log.error("not consuming MQTT readings: %s", exc)
        return None
