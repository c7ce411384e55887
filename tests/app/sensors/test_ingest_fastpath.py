"""The ingest fast path (one COPY into ``reading``) and its fallback, against real PostGIS.

Idempotence on (sensor_id, ts), exact counts, ``latest_reading`` only moving forward, and two
transactions storing the same readings at the same time: each reading is stored once, whichever
path each batch takes. The concurrent tests commit for real (own sensors, cleaned up after).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.flows.readings import ReadingsReport as IngestReport
from app.flows.readings import ingest_payload
from tests import factories as f

NOW = datetime.now(UTC).replace(microsecond=0)
NDJSON = "application/x-ndjson"


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


def body(readings: Sequence[Mapping[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in readings).encode()


def post(session: Session, readings: Sequence[Mapping[str, object]]) -> IngestReport:
    return ingest_payload(session, body(readings), NDJSON)


def rows(session: Session | Engine, sensor_ids: list[int]) -> list[tuple[int, datetime, float]]:
    sql = text("SELECT sensor_id, ts, value FROM reading WHERE sensor_id = ANY(:ids) ORDER BY 1, 2")
    if isinstance(session, Engine):
        with session.connect() as conn:
            return [tuple(r) for r in conn.execute(sql, {"ids": sensor_ids})]
    return [tuple(r) for r in session.execute(sql, {"ids": sensor_ids})]


def latest(session: Session | Engine, sensor_id: int) -> tuple[datetime, float]:
    sql = text("SELECT ts, value FROM latest_reading WHERE sensor_id = :s")
    if isinstance(session, Engine):
        with session.connect() as conn:
            ts, value = conn.execute(sql, {"s": sensor_id}).one()
    else:
        ts, value = session.execute(sql, {"s": sensor_id}).one()
    return ts, value


@pytest.fixture
def sensors(session: Session) -> dict[str, int]:
    """Three methane sensors in the test's transaction (rolled back after)."""
    return {
        e: f.sensor(session, lon=-71.1, lat=42.37, external_id=e) for e in ("fp-1", "fp-2", "fp-3")
    }


def test_new_readings_take_the_copy_path(session: Session, sensors: dict[str, int]) -> None:
    batch = [{"sensor": name, "ts": at(m), "value": m} for name in sensors for m in (3, 2, 1)]
    report = post(session, batch)
    assert (report.accepted, report.duplicates, report.rejected) == (9, 0, [])
    assert report.stored_by == "copy"
    assert len(rows(session, list(sensors.values()))) == 9
    assert latest(session, sensors["fp-1"]) == (NOW - timedelta(minutes=1), 1.0)


def test_duplicates_within_a_batch_are_counted_and_the_first_one_wins(
    session: Session, sensors: dict[str, int]
) -> None:
    batch: list[dict[str, object]] = [
        {"sensor": "fp-1", "ts": at(2), "value": 1.0},
        {"sensor": "fp-1", "ts": at(1), "value": 2.0},
        {"sensor": "fp-1", "ts": at(2), "value": 9.0},  # same instant: a duplicate
        {"sensor": str(sensors["fp-1"]), "ts": at(1), "value": 8.0},  # by numeric id
        # Equal at the microsecond PostgreSQL keeps: a duplicate too (nanoseconds differ).
        {"sensor": "fp-2", "ts": at(1).replace("Z", ".000000001Z"), "value": 3.0},
        {"sensor": "fp-2", "ts": at(1).replace("Z", ".000000002Z"), "value": 7.0},
    ]
    report = post(session, batch)
    assert (report.received, report.accepted, report.duplicates) == (6, 3, 3)
    assert report.stored_by == "copy"  # deduplicated before the COPY, so no fallback
    assert [r[2] for r in rows(session, [sensors["fp-1"]])] == [1.0, 2.0]
    assert [r[2] for r in rows(session, [sensors["fp-2"]])] == [3.0]
    assert latest(session, sensors["fp-1"]) == (NOW - timedelta(minutes=1), 2.0)


def test_a_replayed_batch_is_all_duplicates(session: Session, sensors: dict[str, int]) -> None:
    batch = [{"sensor": name, "ts": at(m), "value": m} for name in sensors for m in (5, 4)]
    assert post(session, batch).accepted == 6
    again = post(session, batch)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 6, [])
    assert again.stored_by == "merge"
    assert len(rows(session, list(sensors.values()))) == 6
    assert latest(session, sensors["fp-3"]) == (NOW - timedelta(minutes=4), 4.0)


def test_a_batch_half_new_half_stored(session: Session, sensors: dict[str, int]) -> None:
    first = [{"sensor": "fp-1", "ts": at(m), "value": 1.0} for m in range(20, 10, -1)]
    assert post(session, first).accepted == 10
    # Minutes 15..6: 15..11 are stored (with other values here), 10..6 are new.
    second = [{"sensor": "fp-1", "ts": at(m), "value": 2.0} for m in range(15, 5, -1)]
    report = post(session, second)
    assert (report.accepted, report.duplicates, report.stored_by) == (5, 5, "merge")
    values = [r[2] for r in rows(session, [sensors["fp-1"]])]
    assert values == [1.0] * 10 + [2.0] * 5  # stored readings keep their first value
    assert latest(session, sensors["fp-1"]) == (NOW - timedelta(minutes=6), 2.0)


def test_latest_never_moves_backwards(session: Session, sensors: dict[str, int]) -> None:
    post(session, [{"sensor": "fp-1", "ts": at(1), "value": 5.0}])
    # New readings (fast path), all older than fp-1's latest; fp-2's first reading.
    late = [
        {"sensor": "fp-1", "ts": at(30), "value": 1.0},
        {"sensor": "fp-1", "ts": at(20), "value": 2.0},
        {"sensor": "fp-2", "ts": at(20), "value": 3.0},
    ]
    report = post(session, late)
    assert (report.accepted, report.stored_by) == (3, "copy")
    assert latest(session, sensors["fp-1"]) == (NOW - timedelta(minutes=1), 5.0)
    assert latest(session, sensors["fp-2"]) == (NOW - timedelta(minutes=20), 3.0)
    # The same through the fallback: one duplicate, the new reading is older than the latest.
    mixed = [*late[:1], {"sensor": "fp-1", "ts": at(10), "value": 4.0}]
    assert post(session, mixed).stored_by == "merge"
    assert latest(session, sensors["fp-1"]) == (NOW - timedelta(minutes=1), 5.0)


# -- two transactions at once (commit for real) ------------------------------------------------
@pytest.fixture
def live(engine: Engine) -> Iterator[dict[str, int]]:
    """Committed sensors of this test only; their readings and latest rows deleted after."""
    tag = secrets.token_hex(3)
    with engine.begin() as conn:
        found = {
            e: f.sensor(conn, lon=-71.1, lat=42.37, external_id=e)
            for e in (f"{tag}-{i}" for i in range(1, 51))
        }
    yield found
    with engine.begin() as conn:
        ids = list(found.values())
        conn.execute(text("DELETE FROM reading WHERE sensor_id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM sensor WHERE id = ANY(:ids)"), {"ids": ids})


def city_batch(live: dict[str, int], minutes: range, value: float = 1.0) -> bytes:
    return body([{"sensor": name, "ts": at(m), "value": value} for name in live for m in minutes])


def wait_until_blocked(engine: Engine, pid: int) -> None:
    """Until backend ``pid`` waits for a lock (another transaction's uncommitted row)."""
    deadline = time.monotonic() + 20
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            event = conn.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            ).scalar_one_or_none()
            if event == "Lock":
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


@pytest.mark.parametrize("first_commits", [True, False])
def test_a_batch_waits_for_a_concurrent_identical_one(
    engine: Engine, live: dict[str, int], first_commits: bool
) -> None:
    """B starts while A (same readings) is uncommitted: B's COPY waits on the unique index.

    A commits: B falls back and counts all as duplicates. A rolls back: B stores them all.
    """
    batch = city_batch(live, range(10, 5, -1))
    n = len(live) * 5
    with Session(engine) as a, Session(engine) as b, ThreadPoolExecutor(1) as pool:
        first = ingest_payload(a, batch, NDJSON)
        assert (first.accepted, first.stored_by) == (n, "copy")
        b_pid = b.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def b_ingest() -> IngestReport:
            report = ingest_payload(b, batch, NDJSON)
            b.commit()
            return report

        second = pool.submit(b_ingest)
        wait_until_blocked(engine, b_pid)
        if first_commits:
            a.commit()
        else:
            a.rollback()
        report = second.result(timeout=60)
    if first_commits:
        assert (report.accepted, report.duplicates, report.stored_by) == (0, n, "merge")
    else:
        assert (report.accepted, report.duplicates, report.stored_by) == (n, 0, "copy")
    assert len(rows(engine, list(live.values()))) == n


def test_a_concurrent_older_batch_does_not_move_latest_back(
    engine: Engine, live: dict[str, int]
) -> None:
    """B (older readings) upserts `latest_reading` while A (newer) holds those rows: after A
    commits, B's guard is re-checked against A's rows and leaves them."""
    with Session(engine) as a, Session(engine) as b, ThreadPoolExecutor(1) as pool:
        assert ingest_payload(a, city_batch(live, range(2, 0, -1), 2.0), NDJSON).accepted
        b_pid = b.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def b_ingest() -> IngestReport:
            report = ingest_payload(b, city_batch(live, range(9, 7, -1), 1.0), NDJSON)
            b.commit()
            return report

        second = pool.submit(b_ingest)
        wait_until_blocked(engine, b_pid)
        a.commit()
        assert second.result(timeout=60).stored_by == "copy"
    for sensor_id in live.values():
        assert latest(engine, sensor_id) == (NOW - timedelta(minutes=1), 2.0)
    assert len(rows(engine, list(live.values()))) == len(live) * 4


def test_concurrent_overlapping_posts_store_each_reading_once(
    engine: Engine, live: dict[str, int]
) -> None:
    """Three threads post identical and overlapping batches at once, for several rounds: no
    deadlock, every reading stored once, and accepted + duplicates add up exactly."""
    names = list(live)
    for done, start_m in enumerate((100, 70, 40), start=1):
        window = range(start_m, start_m - 10, -1)  # 10 minutes, newest last
        shifted = range(start_m - 14, start_m - 4)  # overlaps 5 of them, in another order
        batches = [
            body([{"sensor": s, "ts": at(m), "value": 1.0} for s in names for m in window]),
            body([{"sensor": s, "ts": at(m), "value": 1.0} for s in names for m in window]),
            body([{"sensor": s, "ts": at(m), "value": 1.0} for s in names[::-1] for m in shifted]),
        ]
        start = threading.Barrier(len(batches))

        def one(payload: bytes, start: threading.Barrier = start) -> IngestReport:
            with Session(engine) as s:
                start.wait(timeout=30)
                report = ingest_payload(s, payload, NDJSON)
                s.commit()
                return report

        with ThreadPoolExecutor(len(batches)) as pool:
            reports = list(pool.map(one, batches))
        distinct = len(names) * 15  # minutes start_m - 14 .. start_m
        assert sum(r.accepted for r in reports) == distinct
        assert sum(r.duplicates for r in reports) == len(names) * 30 - distinct
        assert len(rows(engine, list(live.values()))) == distinct * done
        newest = NOW - timedelta(minutes=start_m - 14)
        assert {latest(engine, i)[0] for i in live.values()} == {newest}


def test_retired_sensors_and_odd_timestamps_are_rejected(
    session: Session, sensors: dict[str, int]
) -> None:
    session.execute(text("UPDATE sensor SET status = 'retired' WHERE external_id = 'fp-3'"))
    batch: list[dict[str, object]] = [
        {"sensor": "fp-1", "ts": at(3), "value": 1.0},
        {"sensor": "fp-3", "ts": at(3), "value": 1.0},
        {"sensor": "fp-1", "ts": [at(2)], "value": 1.0},  # unhashable: judged row by row
        {"sensor": "fp-1", "ts": True, "value": 1.0},
        {"sensor": "fp-1", "ts": 1, "value": 1.0},  # equal to True as a dict key
        {"sensor": "fp-1", "ts": at(3).replace("Z", "+00:00"), "value": 2.0},  # = row 0
        {"sensor": "fp-1", "ts": at(2).replace("Z", "+0800"), "value": 1.0},
        {"sensor": "fp-1", "ts": at(1)[:-1], "value": 1.0},
        {"sensor": " fp-2 ", "ts": at(1), "value": 1.0},  # stripped
    ]
    report = post(session, batch)
    assert {r.index: r.reason for r in report.rejected} == {
        1: "sensor is retired",
        2: "ts must be an RFC 3339 string",
        3: "ts must be an RFC 3339 string",
        4: "ts must be an RFC 3339 string",
        7: "ts has no UTC offset (RFC 3339 needs Z or ±hh:mm)",
    }
    assert (report.accepted, report.duplicates) == (3, 1)
    stored = rows(session, [sensors["fp-1"], sensors["fp-2"]])
    assert [(r[0], r[1]) for r in stored] == [
        (sensors["fp-1"], NOW - timedelta(minutes=2, hours=8)),
        (sensors["fp-1"], NOW - timedelta(minutes=3)),
        (sensors["fp-2"], NOW - timedelta(minutes=1)),
    ]


@pytest.mark.parametrize(
    "layout",
    [
        "{a}\n{b}\n{c}\n",  # the usual
        "{a}\n{b}\n{c}",  # no final newline
        "{a}\r\n{b}\r\n{c}\r\n",  # CRLF
        "\n{a}\n\n{b}\n  \n{c}\n\n",  # blank and whitespace-only lines are skipped
    ],
)
def test_ndjson_line_layouts(session: Session, sensors: dict[str, int], layout: str) -> None:
    lines = {
        k: json.dumps({"sensor": "fp-1", "ts": at(m), "value": m})
        for k, m in (("a", 3), ("b", 2), ("c", 1))
    }
    report = ingest_payload(session, layout.format(**lines).encode(), NDJSON)
    assert (report.received, report.accepted, report.rejected) == (3, 3, [])
    assert [r[2] for r in rows(session, [sensors["fp-1"]])] == [3.0, 2.0, 1.0]
