"""Calibration (issue 13): profiles learned from normal data, versioned; the flatline check
accounts for a sensor's coarse resolution; the API needs an admin."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms import calibrate, engine, rules
from app.alarms.rules import RuleSpec
from app.errors import InvalidInput
from app.flows.readings import ingest_payload
from tests import factories as f

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5)


def _post(session: Session, sensor: str, values: np.ndarray, start: datetime, step: int) -> None:
    body = [
        {"sensor": sensor, "ts": (start + timedelta(seconds=i * step)).isoformat(), "value": v}
        for i, v in enumerate(values.tolist())
    ]
    report = ingest_payload(session, json.dumps(body).encode(), "application/json")
    assert report.rejected == []


def _flat_raised(session: Session, sensor: str, since: datetime) -> list[Any]:
    """Flatline raises and recurrences of ``sensor`` from ``since`` on (data time)."""
    return list(
        session.execute(
            text(
                "SELECT e.* FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
                "JOIN sensor s ON s.id = a.sensor_id WHERE a.rule_code = 'cal-flat' "
                "AND s.external_id = :s AND e.ts >= :t "
                "AND (e.to_state = 'raised' AND e.from_state IS NULL OR e.note = 'recurred')"
            ),
            {"s": sensor, "t": since},
        )
    )


def test_a_coarse_sensor_is_not_flatlined_once_calibrated(session: Session) -> None:
    """Issue 13: a sensor that only reads three values gave 186 flatline episodes."""
    engine._cache.clear()
    engine._profiles.clear()
    rules.save(
        session,
        RuleSpec(code="cal-flat", title="Flatline", kind="flatline", indicator="*", n=12),
        actor="t",
    )
    rng = np.random.default_rng(3)
    for name in ("coarse", "coarse-uncal"):
        f.sensor(session, "level_m", external_id=name, interval_s=300)
    # two days of a level gauge with 0.1 m resolution around a steady level: long runs of
    # identical readings are its normal (sticky: a new value one reading in 8)
    steps = 2 * 288
    change = rng.random(steps) < 0.125
    level = np.round(1.0 + 0.1 * (np.cumsum(change * rng.choice([-1, 1], steps)) % 3), 1)
    _post(session, "coarse", level, T0, 300)
    _post(session, "coarse-uncal", level, T0, 300)
    report = calibrate.calibrate(
        session,
        start=T0,
        end=T0 + timedelta(days=2),
        actor="t",
        sensors=["coarse"],
        bin_s=3600,
        day_mode="day",
    )
    assert report.sensors == 1
    [learned] = session.execute(
        text(
            "SELECT p.learned FROM sensor_profile p JOIN sensor s ON s.id = p.sensor_id "
            "WHERE s.external_id = 'coarse' AND p.is_current"
        )
    ).scalars()
    assert 0.8 < learned["repeats"]["p_repeat"] < 0.95
    assert learned["repeats"]["longest_run"] >= 12
    # the next day: the same behaviour, with runs of 12+ identical readings
    start = T0 + timedelta(days=2)
    day = np.full(288, 1.1)
    day[::40] = 1.2
    _post(session, "coarse", day, start, 300)
    _post(session, "coarse-uncal", day, start, 300)
    assert _flat_raised(session, "coarse", start) == []
    assert len(_flat_raised(session, "coarse-uncal", start)) >= 1


def test_profiles_are_versioned_and_thin_sensors_skipped(session: Session) -> None:
    engine._profiles.clear()
    f.sensor(session, "pressure_mpa", external_id="cal-p1", interval_s=300)
    f.sensor(session, "pressure_mpa", external_id="cal-thin", interval_s=300)
    _post(session, "cal-p1", np.full(400, 0.4), T0, 300)
    _post(session, "cal-thin", np.full(20, 0.4), T0, 300)
    for version in (1, 2):
        report = calibrate.calibrate(
            session, start=T0, end=T0 + timedelta(days=3), actor="t", sensors=["cal-*"]
        )
        assert (report.sensors, report.skipped) == (1, ["cal-thin"])
        rows = session.execute(
            text(
                "SELECT version, is_current, n_readings, array_length(centre, 1) FROM "
                "sensor_profile p JOIN sensor s ON s.id = p.sensor_id "
                "WHERE s.external_id = 'cal-p1' ORDER BY version"
            )
        ).all()
        assert [tuple(r) for r in rows][-1] == (version, True, 400, 7 * 96)
        assert sum(r.is_current for r in rows) == 1


def test_bad_windows_are_refused(session: Session) -> None:
    with pytest.raises(InvalidInput, match="is empty"):
        calibrate.calibrate(session, start=T0, end=T0, actor="t")
    with pytest.raises(InvalidInput, match="bin_s"):
        calibrate.calibrate(session, start=T0, end=T0 + timedelta(days=1), actor="t", bin_s=7)
    with pytest.raises(InvalidInput, match="no active sensor matches"):
        calibrate.calibrate(
            session, start=T0, end=T0 + timedelta(days=1), actor="t", sensors=["nope-*"]
        )


def test_the_api_needs_an_admin(client: TestClient, tokens: dict[str, str]) -> None:
    body = {
        "from": T0.isoformat(),
        "to": (T0 + timedelta(days=1)).isoformat(),
        "sensors": ["api-cal-none-*"],
    }
    denied = client.post("/rules/calibrate", json=body, headers=f.bearer(tokens["analyst"]))
    assert denied.status_code == 403
    refused = client.post("/rules/calibrate", json=body)
    assert refused.status_code == 422  # no such sensor: said so, in the one error format
    assert "no active sensor matches" in refused.json()["detail"]
    bad = client.post("/rules/calibrate", json={**body, "to": "yesterday"})
    assert bad.status_code == 422
