"""Alarm latency: from a reading's acceptance to its alarm event on the SSE stream.

Usage: .venv/bin/python bench/alarm_latency.py [--rate 5000] [--seconds 20] [--sensors 2000]

A throwaway database on the server cityrisk uses (DATABASE_URL or the local cluster) gets
``--sensors`` methane sensors in manholes and a one-reading threshold rule; a real
``cityrisk serve`` runs against it. A load thread POSTs NDJSON batches every 100 ms at ``--rate``
readings/s — background values plus a few readings above the threshold, each on a sensor that has
no alarm yet, so each one raises a new alarm — while a client listens on ``GET /alarms/stream``.
For each abnormal reading the script prints the time from sending its batch to the alarm's
``raised`` event arriving on the stream (and, for reference, from the batch's HTTP 2xx, i.e. the
commit, to the event). Goal (issue 5): p99 < 250 ms at 5,000 readings/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx2 as httpx

from app.alarms import rules
from app.alarms.rules import RuleSpec
from app.db import create_db_engine, make_sessionmaker
from app.scratch import free_port, scratch_for, scratch_token
from app.settings import Settings

BATCH_S = 0.1
#: The bench server's admin key (every write needs a token), set by :func:`serve`.
AUTH: dict[str, str] = {}
ABNORMAL_PER_BATCH = 2


def prepare(url: str, sensors: int) -> None:
    engine = create_db_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sensor (external_id, kind, unit, geom, interval_s) "
            "SELECT 'lat-' || g, 'ch4_pct_lel', '%%LEL', "
            "ST_SetSRID(ST_MakePoint(-71.1 + g * 1e-5, 42.37), 4326), 60 "
            f"FROM generate_series(1, {sensors}) g"
        )
    with make_sessionmaker(engine)() as session, session.begin():
        rules.save(
            session,
            RuleSpec(
                code="bench-ch4",
                title="Methane (bench)",
                indicator="ch4_pct_lel",
                thresholds={4: 10, 3: 20, 2: 35, 1: 50},
            ),
            actor="bench",
        )
    engine.dispose()


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    AUTH["Authorization"] = f"Bearer {scratch_token(url)}"  # every write needs a token
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CITYRISK_MQTT_CONSUMER": "false",
        "CITYRISK_OFFLINE_CHECK_S": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def listen(
    base: str, seen: dict[str, float], ready: threading.Event, stop: threading.Event
) -> None:
    with httpx.stream(
        "GET", f"{base}/alarms/stream", timeout=httpx.Timeout(5, read=None)
    ) as response:
        ready.set()
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data["event"]["to_state"] == "raised" and data["event"]["from_state"] is None:
                    seen.setdefault(data["alarm"]["sensor"], time.perf_counter())


def load(
    base: str, rate: int, seconds: float, sensors: int
) -> tuple[dict[str, tuple[float, float]], int, int]:
    """POST batches; returns {sensor: (sent_at, acked_at)} for abnormal readings, sent, late."""
    per_batch = int(rate * BATCH_S)
    marks: dict[str, tuple[float, float]] = {}
    next_abnormal = 1
    sent = late = 0
    start = time.perf_counter()
    ts0 = datetime.now(UTC) - timedelta(minutes=30)
    step = 0
    with httpx.Client(base_url=base, timeout=30, headers=AUTH) as client:
        while time.perf_counter() - start < seconds:
            due = start + step * BATCH_S
            if time.perf_counter() < due:
                time.sleep(due - time.perf_counter())
            ts = (ts0 + timedelta(seconds=step)).isoformat()
            lines = [
                {"sensor": f"lat-{1 + (step * per_batch + i) % sensors}", "ts": ts, "value": 1.0}
                for i in range(per_batch - ABNORMAL_PER_BATCH)
            ]
            abnormal = []
            for _ in range(ABNORMAL_PER_BATCH):
                if next_abnormal <= sensors:
                    abnormal.append(f"lat-{next_abnormal}")
                    next_abnormal += 1
            # abnormal readings a little later than the batch's background ones
            ts_hi = (ts0 + timedelta(seconds=step, milliseconds=500)).isoformat()
            lines += [{"sensor": s, "ts": ts_hi, "value": 42.0} for s in abnormal]
            body = "\n".join(json.dumps(line) for line in lines)
            sent_at = time.perf_counter()
            response = client.post(
                "/readings", content=body, headers={"content-type": "application/x-ndjson"}
            )
            acked_at = time.perf_counter()
            response.raise_for_status()
            for s in abnormal:
                marks[s] = (sent_at, acked_at)
            sent += len(lines)
            late += acked_at - due > BATCH_S
            step += 1
    return marks, sent, late


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="readings per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--sensors", type=int, default=2000)
    args = parser.parse_args()

    scratch = contextlib.ExitStack()  # the throwaway database, dropped in `finally`
    url = scratch.enter_context(scratch_for(Settings(), prefix="cityrisk_bench", migrate=True))
    proc = None
    try:
        prepare(url, args.sensors)
        port = free_port()
        proc = serve(url, port)
        base = f"http://127.0.0.1:{port}"
        seen: dict[str, float] = {}
        ready, stop = threading.Event(), threading.Event()
        listener = threading.Thread(target=listen, args=(base, seen, ready, stop), daemon=True)
        listener.start()
        ready.wait(10)
        marks, sent, late = load(base, args.rate, args.seconds, args.sensors)
        time.sleep(1.0)  # let the last events arrive
        stop.set()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        scratch.close()

    from_send = [(seen[s] - a) * 1000 for s, (a, _) in marks.items() if s in seen]
    from_ack = [(seen[s] - b) * 1000 for s, (_, b) in marks.items() if s in seen]
    missing = len(marks) - len(from_send)
    achieved = sent / args.seconds
    print(
        f"load: {sent:,} readings in {args.seconds:g} s = {achieved:,.0f}/s "
        f"(target {args.rate:,}/s; {late} batches behind schedule)"
    )
    print(f"alarms: {len(marks)} expected, {len(from_send)} seen on the stream, {missing} missing")
    if from_send:
        print(
            f"latency from POST sent to SSE event:   p50 {percentile(from_send, 0.5):6.1f} ms  "
            f"p99 {percentile(from_send, 0.99):6.1f} ms  max {max(from_send):6.1f} ms"
        )
        print(
            f"latency from HTTP 2xx to SSE event:    p50 {percentile(from_ack, 0.5):6.1f} ms  "
            f"p99 {percentile(from_ack, 0.99):6.1f} ms  (negative: pushed before the answer)"
        )
        round_trip = statistics.mean(b - a for a, b in marks.values()) * 1000
        print(f"mean batch round trip: {round_trip:.1f} ms")
    met = bool(from_send) and percentile(from_send, 0.99) < 250
    print(f"goal p99 < 250 ms: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
