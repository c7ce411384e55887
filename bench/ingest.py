"""Reading ingest throughput, as ratios to a raw binary COPY measured in the same run.

Usage: .venv/bin/python bench/ingest.py [--sensors N] [--readings N] [--repeat R] [--clients C]
                                         [--workers W] [--profile]

A throwaway database on the server cityrisk uses (DATABASE_URL or the local cluster) gets
``--sensors`` sensors (20,000) and is dropped at the end. Each run stores ``--readings``
readings (200,000: every sensor, 10 instants a minute apart, in yesterday's partition):

(a) baseline: the same rows (sensor id, ts, value, quality) with psycopg's binary COPY into a
    bare table without index or key (no parsing, no checks, no conflict handling);
(b) ``ingest_payload`` called directly on NDJSON bodies of 10,000 and 50,000 readings, one
    commit each (the service path without HTTP: parse, resolve sensors, check, COPY, insert
    with ``ON CONFLICT``, upsert ``latest_reading``);
(c) end to end: ``cityrisk serve`` (uvicorn, ``--workers`` processes, default 1) in a
    subprocess on a free port against the bench database, ``POST /readings`` NDJSON bodies of
    10,000 and 50,000 readings from ``--clients`` concurrent keep-alive connections (bodies are
    built before the clock starts);
(d) the replay (``app/sensors/replay.py``) generating the readings and posting them at
    ``--speed 0``: generation included, one client.

Each run starts from empty reading tables (see :func:`reset`); each figure is the median of
``--repeat`` runs. The issue's goal: (c) >= 10 % of (a) and >= 100,000 readings/s.
``--profile`` adds a cProfile of ``ingest_payload`` on one 50,000-reading body.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import os
import pstats
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy.engine import Engine, make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/ingest.py` from anywhere

from app.cli import current_url  # noqa: E402
from app.db import create_db_engine, make_sessionmaker  # noqa: E402
from app.scratch import scratch_database  # noqa: E402
from app.sensors import partitions  # noqa: E402
from app.sensors import replay as rp  # noqa: E402
from app.sensors.ingest import binary_copy_rows, ingest_payload  # noqa: E402
from app.settings import Settings  # noqa: E402

NDJSON = "application/x-ndjson"
PER_SENSOR = 10  # instants per sensor in one run
STEP_S = 60
DAY_S = 86_400
KINDS = (("ch4_pct_lel", "%LEL", 0.0, 2.0), ("pressure_mpa", "MPa", 0.3, 0.5))


# -- setup ------------------------------------------------------------------------------------
def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def bench_database() -> Iterator[str]:
    """A migrated throwaway database on cityrisk's server; dropped whatever happens."""
    with scratch_database(current_url(Settings()), prefix="cityrisk_bench", migrate=True) as url:
        yield url


def make_sensors(url: str, n: int) -> npt.NDArray[np.int64]:
    """``n`` sensors ``bench-000001``… alternating methane and pressure; their ids in order."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for k, (kind, unit, _, _) in enumerate(KINDS):
            conn.execute(
                "INSERT INTO sensor (external_id, kind, unit, interval_s, geom) "
                "SELECT 'bench-' || lpad(i::text, 6, '0'), %s, %s, 60, "
                "ST_SetSRID(ST_MakePoint(-71.16 + random() * 0.09, 42.35 + random() * 0.06), "
                "4326) FROM generate_series(%s::int, %s::int, %s::int) AS i",
                (kind, unit, k + 1, n, len(KINDS)),
            )
        ids = conn.execute("SELECT id FROM sensor ORDER BY external_id").fetchall()
        conn.execute(
            "CREATE TABLE bench_raw (sensor_id int8, ts timestamptz, value float8, quality int2)"
        )
    return np.array([i for (i,) in ids], dtype=np.int64)


def reset(url: str) -> None:
    """Empty the reading tables and checkpoint, so every run starts from the same state.

    Without it each run would insert into a bigger index than the one before and the variants
    measured last would look slower. A checkpoint (when the role may) keeps one from starting
    in the middle of a run; full-page writes then cost every run alike.
    """
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("TRUNCATE reading, latest_reading, bench_raw")
        conn.execute("VACUUM ANALYZE latest_reading")
        with suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


class Rows:
    """One run's readings: columns for COPY and the same rows as NDJSON lines."""

    def __init__(self, ids: npt.NDArray[np.int64], total: int, base_s: int, seed: int) -> None:
        n = len(ids)
        rng = np.random.default_rng(seed)
        position = np.arange(total) % n
        self.sensor_id = ids[position]
        self.ts_s = base_s + (np.arange(total) // n) * STEP_S
        kind = position % len(KINDS)
        low = np.array([k[2] for k in KINDS])[kind]
        high = np.array([k[3] for k in KINDS])[kind]
        self.value = np.round(low + (high - low) * rng.random(total), 4)
        self.quality = np.zeros(total, dtype=np.int16)
        names = np.array([f"bench-{i + 1:06d}" for i in range(n)], dtype=object)[position]
        stamps = np.datetime_as_string(self.ts_s.astype("datetime64[s]"), unit="s", timezone="UTC")
        self.lines = [
            f'{{"sensor":"{s}","ts":"{t}","value":{v}}}\n'
            for s, t, v in zip(names, stamps, self.value.tolist(), strict=True)
        ]

    def __len__(self) -> int:
        return len(self.lines)

    def bodies(self, per_body: int) -> list[bytes]:
        return [
            "".join(self.lines[i : i + per_body]).encode() for i in range(0, len(self), per_body)
        ]


# -- the variants -----------------------------------------------------------------------------
def raw_copy(url: str, rows: Rows) -> float:
    """(a) binary COPY of the rows into the bare table, one transaction; seconds."""
    stamps = rows.ts_s.astype("datetime64[s]")
    with psycopg.connect(libpq(url)) as conn:
        started = time.perf_counter()
        data = binary_copy_rows(rows.sensor_id, stamps, rows.value, rows.quality)
        with conn.cursor() as cur, cur.copy("COPY bench_raw FROM STDIN (FORMAT binary)") as copy:
            copy.write(data)
        conn.commit()
        return time.perf_counter() - started


def direct(engine: Engine, bodies: list[bytes]) -> float:
    """(b) ``ingest_payload`` + commit per body; seconds."""
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    for body in bodies:
        with factory() as session:
            report = ingest_payload(session, body, NDJSON)
            session.commit()
        if report.rejected or report.duplicates:
            raise RuntimeError(f"bench rows refused: {report.rejected[:3]}")
    return time.perf_counter() - started


def post_all(base: str, bodies: list[bytes], clients: int) -> float:
    """(c) POST every body from ``clients`` threads, each on one keep-alive connection."""
    host, port = base.removeprefix("http://").split(":")
    work = list(enumerate(bodies))
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            while True:
                with lock:
                    if not work:
                        return
                    _, body = work.pop()
                conn.request("POST", "/readings", body=body, headers={"Content-Type": NDJSON})
                answer = conn.getresponse()
                payload = answer.read()
                if answer.status != 200 or b'"rejected":[]' not in payload:
                    errors.append(f"{answer.status}: {payload[:200]!r}")
                    return
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"POST /readings failed: {errors[0]}")
    return elapsed


def via_replay(url: str, base: str, start_s: int, readings: int, per_body: int) -> float:
    """(d) the replay generates and posts ``readings`` (no incidents) at speed 0; seconds."""
    engine = create_db_engine(url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            fleet = rp.load_fleet(session, seed=1)
    finally:
        engine.dispose()
    span = readings // len(fleet) * STEP_S  # every sensor reports each minute
    plan = rp.Plan("none", 1, start_s, start_s + span, [])
    sink = rp.HttpSink(base, lines=per_body)
    started = time.perf_counter()
    try:
        rp.run(fleet, plan, sink, speed=0, batch_s=max(1, per_body // len(fleet)) * STEP_S)
    finally:
        sink.close()
    elapsed = time.perf_counter() - started
    if sink.stats.accepted != readings or sink.stats.rejected:
        raise RuntimeError(f"replay: {sink.stats}")
    return elapsed


@contextmanager
def server(url: str, workers: int) -> Iterator[str]:
    """`cityrisk serve` on a free port against the bench database; its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "CITYRISK_DATA_DIR"}
    env |= {"DATABASE_URL": url, "CITYRISK_MQTT_CONSUMER": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2):  # noqa: S310 - loopback
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("cityrisk serve did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def profile(engine: Engine, body: bytes) -> str:
    """Top functions (cumulative time) of one ``ingest_payload`` call, as text."""
    factory = make_sessionmaker(engine)
    profiler = cProfile.Profile()
    with factory() as session:
        profiler.enable()
        ingest_payload(session, body, NDJSON)
        session.commit()
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(28)
    return out.getvalue()


# -- main -------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=200_000, help="per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--profile", action="store_true", help="cProfile one ingest_payload")
    args = parser.parse_args()
    if args.readings % args.sensors:
        parser.error("--readings must be a multiple of --sensors")

    # Every run gets its own 10-minute slot in yesterday's partition: fresh rows, no duplicates.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    day_s = int(datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC).timestamp())
    slot_s = (args.readings // args.sensors) * STEP_S
    slots = iter(range(day_s + 600, day_s + DAY_S, slot_s))
    times: dict[str, list[float]] = {}

    def measure(label: str, run: Callable[[Rows], float]) -> None:
        for r in range(args.repeat):
            rows = Rows(ids, args.readings, next(slots), seed=r)
            reset(url)
            times.setdefault(label, []).append(run(rows))

    with bench_database() as url:
        ids = make_sensors(url, args.sensors)
        engine = create_db_engine(url, pool_size=2)
        try:
            with make_sessionmaker(engine)() as session:
                partitions.ensure(session, partitions.days_ahead())  # not part of any timing
            warm = Rows(ids, args.sensors, next(slots), seed=99)  # caches, first-query costs
            direct(engine, warm.bodies(args.sensors))
            measure("a", lambda rows: raw_copy(url, rows))
            for size in (10_000, 50_000):

                def in_process(rows: Rows, s: int = size) -> float:
                    return direct(engine, rows.bodies(s))

                measure(f"b{size}", in_process)
            with server(url, args.workers) as base:
                post_all(base, Rows(ids, args.sensors, next(slots), 98).bodies(10_000), 1)
                for size in (10_000, 50_000):

                    def over_http(rows: Rows, s: int = size) -> float:
                        bodies = rows.bodies(s)  # built before the clock starts
                        return post_all(base, bodies, args.clients)

                    measure(f"c{size}", over_http)
                measure(
                    "d",
                    lambda rows: via_replay(url, base, int(rows.ts_s[0]), args.readings, 10_000),
                )
            report = ""
            if args.profile:
                reset(url)
                report = profile(engine, Rows(ids, 50_000, next(slots), 97).bodies(50_000)[0])
        finally:
            engine.dispose()

    rate = {k: args.readings / statistics.median(v) for k, v in times.items()}
    clients = f"{args.clients} clients, {args.workers} worker" + ("s" if args.workers > 1 else "")
    labels = {
        "a": "(a) raw binary COPY, bare table",
        "b10000": "(b) ingest_payload, 10,000/batch",
        "b50000": "(b) ingest_payload, 50,000/batch",
        "c10000": f"(c) HTTP POST /readings, 10,000/batch, {clients}",
        "c50000": f"(c) HTTP POST /readings, 50,000/batch, {clients}",
        "d": "(d) replay -> HTTP, 10,000/batch, 1 client",
    }
    print(
        f"input: {args.sensors:,} sensors, {args.readings:,} readings per run, "
        f"median of {args.repeat} runs"
    )
    for key, label in labels.items():
        seconds = statistics.median(times[key])
        ratio = rate[key] / rate["a"]
        print(f"{label:<60} {seconds:6.2f} s  {rate[key]:9,.0f} readings/s  {ratio:6.1%} of (a)")
    best_b = max(rate["b10000"], rate["b50000"])
    best_c = max(rate["c10000"], rate["c50000"])
    print(f"ratio (b)/(a): {best_b / rate['a']:.3f}   ratio (c)/(a): {best_c / rate['a']:.3f}")
    met = best_c >= 0.1 * rate["a"] and best_c >= 100_000
    print(
        "goal (c) >= 10 % of (a) and >= 100,000 readings/s: "
        + ("met" if met else f"NOT met (best (c) = {best_c:,.0f} readings/s)")
    )
    if args.profile:
        print("\ncProfile of one ingest_payload(50,000 readings) + commit:\n" + report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
