"""History: the reading-age setting on the ways in, and the backfill that takes no limit.

The backfill commits a transaction per span, so it runs against a database of this module's
own (not the session's rolled-back one); the HTTP tests use the session database as the other
API tests do.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import create_db_engine, make_sessionmaker
from app.errors import InvalidInput
from app.flows.backfill import BackfillReport, SpanResult, backfill
from app.scratch import scratch_database
from tests import factories as f
from tests.app.test_cli import cityrisk

DAY = timedelta(days=1)
#: Two months of history that ends 480 days ago: every reading is older than the 400-day
#: default of CITYRISK_MAX_READING_AGE_DAYS, which POST /readings refuses.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - 480 * DAY
START = END - 60 * DAY
STEP = timedelta(minutes=30)
SENSORS = 12


@dataclass(frozen=True)
class History:
    ndjson: Path  # half the sensors, gzipped NDJSON, shuffled
    csv: Path  # the other half, CSV, shuffled
    readings: int
    bad: int  # rows the ingest must reject: the last of the NDJSON file
    half: int  # good rows in the NDJSON file


@pytest.fixture(scope="module")
def own_db(server_url: str, admin_url: str) -> Iterator[str]:
    with scratch_database(server_url, admin_url=admin_url, prefix="cityrisk_bf", migrate=True) as u:
        yield u


@pytest.fixture(scope="module")
def own_engine(own_db: str) -> Iterator[Engine]:
    eng = create_db_engine(own_db)
    with eng.begin() as c:
        for i in range(SENSORS):
            f.sensor(c, external_id=f"bf-{i:02d}")
        f.rule(c, thresholds={"1": 50, "2": 35, "3": 20, "4": 10})
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def factory(own_engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(own_engine)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Sensor bf-00 has a methane spike (60 %LEL) in the last 2 h of day 30; the rest is
    1 %LEL. (At the end of a day: today's engine judges a batch by each sensor's newest
    readings, so a spike that is over before its batch ends raises nothing.)"""
    folder = tmp_path_factory.mktemp("history")
    steps = int((END - START) / STEP)
    rows: list[dict[str, object]] = []
    for i in range(SENSORS):
        for k in range(steps):
            ts = START + k * STEP
            spike = i == 0 and 31 * DAY - 2 * timedelta(hours=1) <= ts - START < 31 * DAY
            rows.append(
                {"sensor": f"bf-{i:02d}", "ts": ts.isoformat(), "value": 60 if spike else 1}
            )
    random.Random(7).shuffle(rows)  # a file in no particular order: the backfill sorts
    half = [r for r in rows if int(str(r["sensor"])[3:]) % 2 == 0]
    other = [r for r in rows if int(str(r["sensor"])[3:]) % 2 == 1]
    first_day = START.replace(tzinfo=None).isoformat()
    bad = [
        orjson.dumps({"sensor": "bf-99", "ts": START.isoformat(), "value": 1}),  # unknown
        f'{{"sensor": "bf-00", "ts": "{first_day}", "value": 1}}'.encode(),  # no offset
        b"{not json",  # no ts to place it by: a batch of its own
    ]
    ndjson = folder / "half.ndjson.gz"
    with gzip.open(ndjson, "wb") as out:
        out.write(b"\n".join([*map(orjson.dumps, half), *bad]) + b"\n")
    csv = folder / "other.csv"
    lines = ["sensor,ts,value", *(f"{r['sensor']},{r['ts']},{r['value']}" for r in other)]
    csv.write_text("\n".join(lines) + "\n")
    return History(ndjson, csv, len(rows), len(bad), len(half))


def _stored(engine: Engine) -> tuple[int, int]:
    with engine.connect() as c:
        return tuple(
            c.execute(text("SELECT count(*), count(DISTINCT (sensor_id, ts)) FROM reading")).one()
        )  # type: ignore[return-value]


def _clear(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text("TRUNCATE reading, latest_reading, alarm_event, alarm CASCADE"))


def test_a_two_month_history_is_stored_once_in_day_batches_and_a_rerun_adds_nothing(
    factory: sessionmaker[Session], own_engine: Engine, history: History
) -> None:
    _clear(own_engine)
    spans: list[SpanResult] = []
    first = backfill(factory, [history.ndjson, history.csv], on_span=spans.append)
    assert first.rows_read == history.readings + history.bad
    assert first.total("accepted") == history.readings
    assert first.total("duplicates") == 0
    assert first.total("rejected") == history.bad
    assert _stored(own_engine) == (history.readings, history.readings)
    # One transaction per UTC day, oldest first; the unreadable rows in a batch of their own.
    days = [s for s in spans if s.start is not None]
    assert len(days) == 60
    assert [s.start for s in days] == [START + i * DAY for i in range(60)]
    assert all(s.end - s.start == DAY for s in days if s.end and s.start)
    assert days[0].received == SENSORS * 48 + 2  # with the unknown sensor's, the offsetless
    assert all(s.received == SENSORS * 48 for s in days[1:])
    assert (spans[0].start, spans[0].received, spans[0].rejected) == (None, 1, 1)
    reasons = {r.row: r.reason for r in first.rejections}
    assert all(r.file == history.ndjson for r in first.rejections)
    assert set(reasons) == {history.half, history.half + 1, history.half + 2}
    assert reasons[history.half] == "unknown sensor"
    assert "no UTC offset" in reasons[history.half + 1]
    assert "line is not valid JSON" in reasons[history.half + 2]
    # The rules engine ran on history: the spike on day 30 raised an alarm.
    assert first.total("alarms_raised") >= 1
    assert first.readings_per_s > 0
    # Every committed batch is on record.
    with own_engine.connect() as c:
        audited = c.execute(
            text("SELECT count(*) FROM audit_event WHERE action = 'readings.backfill'")
        ).scalar_one()
    assert audited == 60

    again = backfill(factory, [history.csv, history.ndjson])
    assert again.total("accepted") == 0
    assert again.total("duplicates") == history.readings
    assert _stored(own_engine) == (history.readings, history.readings)


def test_a_crashed_backfill_resumes_by_running_it_again(
    factory: sessionmaker[Session], own_engine: Engine, history: History
) -> None:
    _clear(own_engine)
    done: list[SpanResult] = []

    def crash_after_ten(span: SpanResult) -> None:
        done.append(span)
        if len(done) == 11:  # the unreadable rows' batch, then ten days
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill(factory, [history.ndjson, history.csv], on_span=crash_after_ten)
    ten_days = 10 * SENSORS * 48
    assert _stored(own_engine) == (ten_days, ten_days)  # committed before the crash
    resumed = backfill(factory, [history.ndjson, history.csv])
    assert resumed.total("duplicates") == ten_days
    assert resumed.total("accepted") == history.readings - ten_days
    assert _stored(own_engine) == (history.readings, history.readings)


def test_a_span_too_large_for_one_batch_is_refused_before_anything_is_written(
    factory: sessionmaker[Session], own_engine: Engine, history: History
) -> None:
    _clear(own_engine)
    with pytest.raises(InvalidInput, match=r"more than --max-batch 100 .* --batch-span"):
        backfill(factory, [history.csv], max_batch=100)
    assert _stored(own_engine) == (0, 0)


def test_the_command_prints_progress_and_a_summary(own_db: str, history: History) -> None:
    env = {"DATABASE_URL": own_db}
    proc = cityrisk("readings", "backfill", str(history.csv), "--batch-span", "7d", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "read other.csv" in proc.stderr
    assert proc.stderr.count("alarms raised") >= 9  # a line per 7-day batch
    for label in ("accepted", "duplicates", "rejected", "alarms raised", "readings/s"):
        assert label in proc.stdout, proc.stdout
    bad = cityrisk("readings", "backfill", str(history.csv), "--batch-span", "soon", env=env)
    assert bad.returncode == 2
    assert "--batch-span was 'soon'; expected a span like 1d" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_report_counts_as_it_says() -> None:
    report = BackfillReport(spans=[SpanResult(None, None, received=4, rejected=4)], ingest_s=2.0)
    assert report.total("received") == 4
    assert report.readings_per_s == 2.0
