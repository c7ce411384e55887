"""Issue 13: every reading judged, in time order, in data time — whatever the batch size.

Two identical twins of a small network (a ponding point, a water main with a pressure sensor)
get the same week of calibration history and the same evaluation day, holding a leak (a
pressure drop), a ponding event, a gap in the data and a stuck sensor. One twin gets the day in
one batch, the other one reading per request. Their alarms must be the same: rule, level, peak,
data times raised and cleared, values and every event with its data time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms import calibrate, engine, rules
from app.alarms.rules import RuleSpec
from app.flows.readings import ingest_payload
from tests import factories as f

DAY = 86_400
STEP = 300  # 5-min readings
# Midnight UTC ten days ago: a week of calibration, then the evaluation day.
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)
CAL_DAYS = 7

RULES: list[dict[str, Any]] = [
    {
        "code": "dt-ponding",
        "title": "Ponding",
        "indicator": "ponding_cm",
        "thresholds": {4: 3, 3: 10, 2: 25},
        "persistence_n": 2,
        "hysteresis": 1,
    },
    {
        "code": "dt-ponding-rise",
        "title": "Ponding rising",
        "kind": "rate",
        "indicator": "ponding_cm",
        "window_s": 600,
        "thresholds": {3: 8},
    },
    {
        "code": "dt-pressure-residual",
        "title": "Pressure below its usual for the hour",
        "kind": "residual",
        "indicator": "pressure_mpa",
        "direction": "below",
        "thresholds": {4: 3, 3: 5},
        "persistence_n": 3,
    },
    {
        "code": "dt-pressure-cusum",
        "title": "Pressure drifting below its usual",
        "kind": "cusum",
        "indicator": "pressure_mpa",
        "direction": "below",
        "k": 0.5,
        "thresholds": {4: 8, 3: 20},
    },
    {"code": "dt-offline", "title": "Offline", "kind": "offline", "indicator": "*", "factor": 3},
    {"code": "dt-flat", "title": "Flatline", "kind": "flatline", "indicator": "*", "n": 12},
]


def _series(rng: np.random.Generator, days: float, start_s: float) -> dict[str, np.ndarray]:
    t = start_s + np.arange(int(days * DAY / STEP)) * STEP
    hour = (t % DAY) / 3600
    # a daily demand cycle: pressure lowest at the evening peak (0.40 ± 0.03 MPa), noise
    # 0.004 MPa, quantised to 0.001 MPa as a transmitter would report it
    pressure = 0.40 + 0.03 * np.cos(2 * np.pi * (hour - 4) / 24)
    pressure = np.round(pressure + rng.normal(0, 0.004, t.size), 3)
    ponding = np.zeros(t.size)
    return {"t": t, "pressure": pressure, "ponding": ponding}


def _evaluation_day(rng: np.random.Generator) -> dict[str, np.ndarray]:
    day = _series(rng, 1, CAL_DAYS * DAY)
    hour = (day["t"] - CAL_DAYS * DAY) / 3600
    leak = (hour >= 6) & (hour < 9)
    day["pressure"] = np.where(leak, day["pressure"] - 0.03, day["pressure"])  # ≈ 7σ drop
    storm = (hour >= 14) & (hour < 16)
    day["ponding"] = np.where(storm, np.minimum(30, (hour - 14) * 60), 0.0)  # 1 cm/min, capped
    stuck = (hour >= 18) & (hour < 21)
    day["pressure"] = np.where(stuck, 0.412, day["pressure"])
    keep = ~((hour >= 11) & (hour < 12))  # an hour without data: offline
    return {k: v[keep] for k, v in day.items()}


def _rows(prefix: str, data: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for t, p, w in zip(data["t"], data["pressure"], data["ponding"], strict=True):
        ts = (T0 + timedelta(seconds=float(t))).isoformat()
        rows.append({"sensor": f"{prefix}-press", "ts": ts, "value": float(p)})
        rows.append({"sensor": f"{prefix}-pond", "ts": ts, "value": float(w)})
    return rows


def _post(session: Session, rows: list[dict[str, Any]]) -> None:
    report = ingest_payload(session, json.dumps(rows).encode(), "application/json")
    assert report.rejected == [], report.rejected[:3]


def _twin(session: Session, prefix: str, lon: float) -> None:
    lat = 31.82
    main = f.asset(session, "water_pipe", f"LINESTRING({lon} {lat}, {lon + 0.01} {lat})")
    pond = f.asset(session, "ponding_point", f"POINT({lon} {lat + 0.01})")
    f.sensor(session, "pressure_mpa", lon=lon + 0.005, lat=lat, asset_id=main,
             external_id=f"{prefix}-press", interval_s=STEP)  # fmt: skip
    f.sensor(session, "ponding_cm", lon=lon, lat=lat + 0.01, asset_id=pond,
             external_id=f"{prefix}-pond", interval_s=STEP)  # fmt: skip


def _alarms(session: Session, prefix: str) -> list[tuple[Any, ...]]:
    rows = session.execute(
        text(
            """
            SELECT a.id, a.rule_code, s.kind, a.level, a.peak_level, a.opened_ts, a.cleared_ts,
                   a.last_seen_at, a.first_value, a.peak_value, a.last_value, a.cause
            FROM alarm a JOIN sensor s ON s.id = a.sensor_id
            WHERE s.external_id LIKE :p ORDER BY a.rule_code, s.kind, a.opened_ts
            """
        ),
        {"p": f"{prefix}-%"},
    ).all()
    out = []
    for r in rows:
        trail = session.execute(
            text(
                "SELECT note, from_level, to_level, ts FROM alarm_event WHERE alarm_id = :a "
                "ORDER BY ts, id"
            ),
            {"a": r.id},
        ).all()
        out.append((*r[1:], tuple(tuple(e) for e in trail)))
    return out


@pytest.fixture
def twins(session: Session) -> Session:
    engine._cache.clear()
    engine._profiles.clear()
    for spec in RULES:
        rules.save(session, RuleSpec(**spec), actor="test")
    _twin(session, "one", 117.20)
    _twin(session, "day", 117.30)
    rng = np.random.default_rng(13)
    history = _series(rng, CAL_DAYS, 0)
    for prefix in ("one", "day"):
        for d in range(CAL_DAYS):  # the history in day-sized batches, as a backfill would
            part = {k: v[d * DAY // STEP : (d + 1) * DAY // STEP] for k, v in history.items()}
            _post(session, _rows(prefix, part))
    report = calibrate.calibrate(
        session,
        start=T0,
        end=T0 + timedelta(days=CAL_DAYS),
        actor="test",
        bin_s=3600,
        day_mode="day",
    )
    assert report.sensors == 4
    assert report.rules == {"dt-pressure-cusum": 2, "dt-pressure-residual": 2}
    return session


def test_one_reading_per_request_and_a_day_per_request_give_the_same_alarms(
    twins: Session,
) -> None:
    session = twins
    day = _evaluation_day(np.random.default_rng(7))
    _post(session, _rows("day", day))
    rows = _rows("one", day)
    for i in range(0, len(rows), 2):  # one request per 5-min step (both sensors' readings)
        _post(session, rows[i : i + 2])
    one, whole = _alarms(session, "one"), _alarms(session, "day")
    assert one == whole
    got = {(a[0], a[2]) for a in whole}
    # the leak, the storm, the gap and the stuck hours each raised their rule
    assert {c for c, _ in got} >= {
        "dt-pressure-residual", "dt-pressure-cusum", "dt-ponding", "dt-ponding-rise",
        "dt-offline", "dt-flat",
    }  # fmt: skip
    day0 = T0 + timedelta(days=CAL_DAYS)
    by_rule = {a[0]: a for a in whole if a[1] == "pressure_mpa" or a[0].startswith("dt-pond")}
    residual = by_rule["dt-pressure-residual"]
    # raised in data time, at the third reading of the drop (persistence 3), not "now"
    assert residual[4] == day0 + timedelta(hours=6, minutes=10)
    assert residual[5] is not None
    assert residual[5] >= day0 + timedelta(hours=9)
    cusum = by_rule["dt-pressure-cusum"]
    assert day0 + timedelta(hours=6) <= cusum[4] <= day0 + timedelta(hours=6, minutes=30)
    offline = [a for a in whole if a[0] == "dt-offline"]
    assert {a[4] for a in offline} == {day0 + timedelta(hours=10, minutes=55 + 15)}
    assert all(a[5] == day0 + timedelta(hours=12) for a in offline)


def test_a_day_posted_twice_raises_nothing_more(twins: Session) -> None:
    """Ingestion is idempotent: replayed readings are not judged again."""
    session = twins
    day = _evaluation_day(np.random.default_rng(7))
    _post(session, _rows("day", day))
    before = _alarms(session, "day")
    _post(session, _rows("day", day))
    assert _alarms(session, "day") == before
