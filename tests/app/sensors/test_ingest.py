"""Reading ingestion against real PostGIS: formats, rejects, idempotence, latest, partitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.flows.readings import ReadingsReport as IngestReport
from app.flows.readings import ingest_payload
from app.sensors import partitions
from tests import factories as f

NOW = datetime.now(UTC).replace(microsecond=0)
M_PER_DEG_LAT = 111_000.0


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


@pytest.fixture
def sensors(session: Session) -> dict[str, int]:
    """Two fixed sensors and a manhole and gas main for mobile joins (rolled back after)."""
    f.asset(session, "manhole", f.point(-71.1, 42.37), source="t", external_id="mh-1")
    f.asset(
        session,
        "gas_pipe",
        "LINESTRING(-71.2 42.30, -71.19 42.30)",
        source="t",
        external_id="gas-1",
    )
    return {
        "ch4-1": f.sensor(session, lon=-71.1, lat=42.37, external_id="ch4-1"),
        "p-1": f.sensor(session, "pressure_mpa", lon=-71.19, lat=42.30, external_id="p-1"),
    }


def post(session: Session, readings: list[dict[str, object]]) -> IngestReport:
    return ingest_payload(session, json.dumps(readings).encode(), "application/json")


def stored(session: Session, sensor_id: int) -> list[tuple[datetime, float]]:
    return [
        (r.ts, r.value)
        for r in session.execute(
            text("SELECT ts, value FROM reading WHERE sensor_id = :s ORDER BY ts"), {"s": sensor_id}
        )
    ]


def test_json_batch_is_stored_once_and_latest_is_newest(
    session: Session, sensors: dict[str, int]
) -> None:
    batch = [
        {"sensor": "ch4-1", "ts": at(2), "value": 1.5},
        {"sensor": "ch4-1", "ts": at(1), "value": 2.5},
        {"sensor": str(sensors["p-1"]), "ts": at(1), "value": 0.35, "unit": "MPa"},
    ]
    first = post(session, batch)
    assert (first.received, first.accepted, first.duplicates, first.rejected) == (3, 3, 0, [])
    assert [v for _, v in stored(session, sensors["ch4-1"])] == [1.5, 2.5]
    again = post(session, [*batch, batch[0]])
    assert (again.accepted, again.duplicates) == (0, 4)
    assert len(stored(session, sensors["ch4-1"])) == 2
    # A late reading older than the latest does not replace it.
    post(session, [{"sensor": "ch4-1", "ts": at(30), "value": 9.0}])
    latest = session.execute(
        text("SELECT ts, value FROM latest_reading WHERE sensor_id = :s"), {"s": sensors["ch4-1"]}
    ).one()
    assert latest.value == 2.5
    assert latest.ts == NOW - timedelta(minutes=1)


def test_rejects_are_reported_per_row_while_good_rows_are_stored(
    session: Session, sensors: dict[str, int]
) -> None:
    batch = [
        {"sensor": "ch4-1", "ts": at(5), "value": 3.0},
        {"sensor": "nope", "ts": at(5), "value": 3.0},
        {"sensor": "ch4-1", "ts": at(4), "value": "NaN"},
        {"sensor": "ch4-1", "ts": at(3), "value": "inf"},
        {"sensor": "ch4-1", "ts": "2026-11-28T10:00:00", "value": 1.0},
        {"sensor": "ch4-1", "ts": "yesterday", "value": 1.0},
        {"sensor": "ch4-1", "ts": (NOW + timedelta(hours=1)).isoformat(), "value": 1.0},
        {"sensor": "ch4-1", "ts": at(2), "value": 1.0, "unit": "ppm"},
        {"sensor": "ch4-1", "ts": at(1), "value": 150.0},
        {"sensor": "ch4-1", "ts": at(1), "value": True},
        {"sensor": "ch4-1", "ts": at(1)},
        {"ts": at(1), "value": 1.0},
        "not an object",
        {"sensor": "ch4-1", "ts": 1700000000, "value": 1.0},
    ]
    report = post(session, batch)
    reasons = {r.index: r.reason for r in report.rejected}
    assert report.accepted == 1
    assert reasons == {
        1: "unknown sensor",
        2: "value is not a finite number",
        3: "value is not a finite number",
        4: "ts has no UTC offset (RFC 3339 needs Z or ±hh:mm)",
        5: "ts has no UTC offset (RFC 3339 needs Z or ±hh:mm)",
        6: "ts is in the future (> now + 5 min)",
        7: "unit 'ppm' does not match the sensor's unit '%LEL'",
        8: "value 150 %LEL is outside the physical range of ch4_pct_lel (0 to 100 %LEL)",
        9: "value is not a finite number",
        10: "no value",
        11: "needs `sensor`, or `kind` + `lon` + `lat`",
        12: "a reading must be a JSON object",
        13: "ts must be an RFC 3339 string",
    }
    assert report.rejected[0].sensor == "nope"
    assert [v for _, v in stored(session, sensors["ch4-1"])] == [3.0]


def test_ndjson_with_a_bad_line_and_csv(session: Session, sensors: dict[str, int]) -> None:
    ndjson = (
        json.dumps({"sensor": "ch4-1", "ts": at(3), "value": 1.0})
        + "\n{oops\n"
        + json.dumps({"sensor": "p-1", "ts": at(3), "value": 0.2})
        + "\n"
    ).encode()
    report = ingest_payload(session, ndjson, "application/x-ndjson; charset=utf-8")
    assert report.accepted == 2
    assert report.rejected[0].index == 1
    assert report.rejected[0].reason.startswith("line is not valid JSON")

    csv = f"sensor,ts,value,unit\nch4-1,{at(2)},4.5,%LEL\np-1,{at(2)},x,MPa\n".encode()
    report = ingest_payload(session, csv, "text/csv")
    assert report.accepted == 1
    assert [(r.index, r.reason) for r in report.rejected] == [(1, "value is not a finite number")]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'"a string"', "application/json", "must be an array"),
        (b"<xml/>", "application/xml", "is not accepted"),
        (b"sensor,ts,value,colour\n", "text/csv", "unknown columns ['colour']"),
    ],
)
def test_unreadable_payloads_are_refused_whole(
    session: Session, body: bytes, content_type: str, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says.replace("[", r"\[").replace("]", r"\]")):
        ingest_payload(session, body, content_type)


def test_daily_partitions_are_created_for_old_and_upcoming_days(
    session: Session, sensors: dict[str, int]
) -> None:
    ten_days_ago = NOW - timedelta(days=10)
    post(session, [{"sensor": "ch4-1", "ts": ten_days_ago.isoformat(), "value": 1.0}])
    days = partitions.existing(session)
    assert ten_days_ago.date() in days
    assert all(NOW.date() + timedelta(days=d) in days for d in range(-1, 8))
    where = session.execute(
        text("SELECT tableoid::regclass::text FROM reading WHERE sensor_id = :s"),
        {"s": sensors["ch4-1"]},
    ).scalar_one()
    assert where == partitions.partition_name(ten_days_ago.date())


def test_prune_drops_whole_old_days_only(session: Session, sensors: dict[str, int]) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=2)
    post(
        session,
        [
            {"sensor": "ch4-1", "ts": old.isoformat(), "value": 1.0},
            {"sensor": "ch4-1", "ts": recent.isoformat(), "value": 2.0},
        ],
    )
    dropped = partitions.prune(session, older_than=timedelta(days=30))
    assert partitions.partition_name(old.date()) in dropped
    assert partitions.partition_name(recent.date()) not in dropped
    assert [v for _, v in stored(session, sensors["ch4-1"])] == [2.0]


def test_mobile_readings_join_the_nearest_compatible_asset(
    session: Session, sensors: dict[str, int]
) -> None:
    near_manhole = 42.37 + 5 / M_PER_DEG_LAT
    far = 42.37 + 300 / M_PER_DEG_LAT
    batch = [
        {"kind": "ch4_pct_lel", "lon": -71.1, "lat": near_manhole, "ts": at(1), "value": 12.0},
        {"kind": "ch4_pct_lel", "lon": -71.1, "lat": far, "ts": at(1), "value": 1.0},
        {"kind": "ch4_pct_lel", "lon": 200, "lat": far, "ts": at(1), "value": 1.0},
        {"kind": "pressure_psi", "lon": -71.1, "lat": far, "ts": at(1), "value": 1.0},
    ]
    report = post(session, batch)
    assert (report.mobile_accepted, report.mobile_joined) == (2, 1)
    assert {r.index: r.reason for r in report.rejected} == {
        2: "mobile reading needs finite lon/lat in degrees (WGS84)",
        3: "unknown indicator kind",
    }
    rows = session.execute(
        text(
            "SELECT m.value, a.external_id, m.distance_m FROM mobile_reading m "
            "LEFT JOIN asset a ON a.id = m.asset_id ORDER BY m.value DESC"
        )
    ).all()
    assert rows[0].external_id == "mh-1"
    assert rows[0].distance_m == pytest.approx(5.0, abs=0.2)
    assert rows[1].external_id is None  # 300 m from anything compatible
    assert post(session, batch[:2]).duplicates == 2
