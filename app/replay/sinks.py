"""Where replayed readings go: ``POST /readings`` (NDJSON) or MQTT (QoS 1)."""

from __future__ import annotations

import http.client
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import orjson

from app.errors import CityriskError, InvalidInput
from app.replay.fleet import Fleet
from app.replay.readings import Readings

TARGETS = ("http", "mqtt")
TOPIC_PREFIX = "cityrisk/readings"
NDJSON = "application/x-ndjson"
HTTP_LINES = (
    20_000  # readings per POST (~1.5 MB): well under CITYRISK_MAX_READINGS_BODY_BYTES (16 MiB)
)
MQTT_LINES = 5_000  # readings per MQTT message (~400 kB)


class ReplayError(CityriskError):
    """The replay cannot go on (target unreachable, payload refused as a whole)."""


# -- targets ----------------------------------------------------------------------------------
@dataclass
class SendStats:
    readings: int = 0
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)  # the first few reasons


class Sink(Protocol):
    stats: SendStats

    def send(self, fleet: Fleet, readings: Readings) -> None: ...

    def close(self) -> None: ...


class HttpSink:
    """``POST {url}/readings`` with NDJSON bodies, on one keep-alive connection.

    Connection failures and 5xx answers are retried with backoff for up to ``wait_s`` (the
    server may still be starting, as in ``make demo``); then :class:`ReplayError`.
    """

    def __init__(
        self, url: str, *, wait_s: float = 30.0, lines: int = HTTP_LINES, token: str | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"--url {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.path = parts.path.rstrip("/") + "/readings"
        self._tls = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self.wait_s = wait_s
        self.lines = lines
        self.stats = SendStats()
        self._conn: http.client.HTTPConnection | None = None
        self._headers = {"Content-Type": NDJSON}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._tls else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=120)
        return self._conn

    def send(self, fleet: Fleet, readings: Readings) -> None:
        for lo in range(0, len(readings), self.lines):
            body = readings.ndjson(fleet, slice(lo, lo + self.lines))
            self._post(body)
            self.stats.readings += min(self.lines, len(readings) - lo)

    def _post(self, body: bytes) -> None:
        deadline = time.monotonic() + self.wait_s
        delay = 0.25
        while True:
            try:
                conn = self._connection()
                conn.request("POST", self.path, body=body, headers=self._headers)
                response = conn.getresponse()
                status, payload = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                problem = f"{self.url} is not reachable: {exc}"
            else:
                if status < 500:
                    self._count(status, payload)
                    return
                problem = f"{self.url}/readings answered {status}: {payload[:200]!r}"
            if time.monotonic() + delay > deadline:
                raise ReplayError(problem)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _count(self, status: int, payload: bytes) -> None:
        self.stats.requests += 1
        try:
            doc = orjson.loads(payload)
        except ValueError:
            doc = {}
        if status not in (200, 422) or "received" not in doc:
            raise ReplayError(
                f"{self.url}/readings refused the batch ({status}): {payload[:300]!r}"
            )
        self.stats.accepted += int(doc["accepted"])
        self.stats.duplicates += int(doc["duplicates"])
        self.stats.rejected += len(doc["rejected"])
        for r in doc["rejected"][: max(0, 5 - len(self.stats.rejections))]:
            self.stats.rejections.append(f"{r.get('sensor')}: {r.get('reason')}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class MqttSink:
    """NDJSON messages with QoS 1 on ``<prefix>/<indicator>``; waits for every PUBACK per batch.

    Uses paho directly (MQTT 5, a fresh client id, the ``content-type`` property set), so it
    works against any broker, the project-local one included.
    """

    def __init__(
        self,
        url: str,
        *,
        topic_prefix: str = TOPIC_PREFIX,
        lines: int = MQTT_LINES,
        timeout_s: float = 30.0,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from app.settings import parse_mqtt_url

        address = parse_mqtt_url(url)
        self.where = address.redacted()
        self.topic_prefix = topic_prefix.rstrip("/")
        self.lines = lines
        self.timeout_s = timeout_s
        self.stats = SendStats()
        self._connected = threading.Event()
        self._refused: list[str] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"cityrisk-replay-{os.getpid()}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)  # unbounded: we wait for the acks per batch anyway
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set()

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if getattr(reason, "is_failure", False):
                self._refused.append(str(reason))
            self._connected.set()

        def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
            # An MQTT 5 broker acknowledges a publish it will not deliver (e.g. the ACL denies
            # the topic) with a failure reason code: that is not a delivered batch.
            if getattr(reason, "is_failure", False):
                self._denied[mid] = str(reason)

        client.on_connect = on_connect
        client.on_publish = on_publish
        self._denied: dict[int, str] = {}
        self.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        self.properties.ContentType = NDJSON
        try:
            client.connect(address.host, address.port, keepalive=30)
        except OSError as exc:
            raise ReplayError(f"MQTT broker {self.where} is not reachable: {exc}") from None
        client.loop_start()
        if not self._connected.wait(timeout_s) or self._refused:
            client.loop_stop()
            why = self._refused[0] if self._refused else f"no answer in {timeout_s:g} s"
            raise ReplayError(f"MQTT broker {self.where} refused the replay: {why}")
        self._client = client

    def send(self, fleet: Fleet, readings: Readings) -> None:
        kinds = fleet.kind[readings.sensor]
        pending = []
        for kind in np.unique(kinds) if len(readings) else []:
            rows = np.flatnonzero(kinds == kind)
            for lo in range(0, len(rows), self.lines):
                chunk = rows[lo : lo + self.lines]
                info = self._client.publish(
                    f"{self.topic_prefix}/{kind}",
                    readings.ndjson(fleet, chunk),
                    qos=1,
                    properties=self.properties,
                )
                pending.append(info)
                self.stats.readings += len(chunk)
        for info in pending:
            info.wait_for_publish(self.timeout_s)
            if not info.is_published():
                raise ReplayError(f"MQTT broker {self.where} did not acknowledge a message")
            if info.mid in self._denied:
                raise ReplayError(
                    f"MQTT broker {self.where} refused a message on {self.topic_prefix}/…: "
                    f"{self._denied[info.mid]} (may this login publish there?)"
                )
            self.stats.requests += 1

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def open_sink(
    target: str, url: str, *, topic_prefix: str = TOPIC_PREFIX, token: str | None = None
) -> Sink:
    if target == "http":
        return HttpSink(url, token=token)
    if target == "mqtt":
        return MqttSink(url, topic_prefix=topic_prefix)
    raise InvalidInput(f"--to {target!r} is not one of {', '.join(TARGETS)}")
