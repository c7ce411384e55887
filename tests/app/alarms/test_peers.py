"""Cross-sensor residuals (issue 13): a city-wide swing raises nothing, a local drop does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms import calibrate, engine, rules
from app.alarms.rules import RuleSpec
from app.flows.readings import ingest_payload
from tests import factories as f

STEP = 300
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
NAMES = [f"peer-{i}" for i in range(5)]


def _post(session: Session, start_s: int, values: np.ndarray) -> None:
    """``values``: steps × sensors, one request per step (all sensors of a step together)."""
    for i, row in enumerate(values):
        ts = (T0 + timedelta(seconds=start_s + i * STEP)).isoformat()
        body = [{"sensor": n, "ts": ts, "value": float(v)} for n, v in zip(NAMES, row, strict=True)]
        report = ingest_payload(session, json.dumps(body).encode(), "application/json")
        assert report.rejected == []


def _raised(session: Session, code: str) -> set[str]:
    rows = session.execute(
        text(
            "SELECT s.external_id FROM alarm a JOIN sensor s ON s.id = a.sensor_id "
            "WHERE a.rule_code = :c AND a.opened_ts >= :t"
        ),
        {"c": code, "t": T0 + timedelta(days=3)},
    )
    return {r[0] for r in rows}


def test_a_zone_wide_swing_cancels_and_a_local_drop_stands_out(session: Session) -> None:
    engine._cache.clear()
    engine._profiles.clear()
    base = {
        "title": "Pressure low for the hour",
        "kind": "residual",
        "indicator": "pressure_mpa",
        "direction": "below",
        "thresholds": {4: 4},
        "persistence_n": 3,
        "margin": 1.0,
    }
    rules.save(session, RuleSpec(code="alone", **base), actor="t")
    rules.save(session, RuleSpec(code="with-peers", peers="zone", **base), actor="t")
    for i, name in enumerate(NAMES):
        f.sensor(
            session, "pressure_mpa", lon=117.2 + i / 100, lat=31.8, external_id=name,
            interval_s=STEP,
        )  # fmt: skip
    rng = np.random.default_rng(5)
    steps = 3 * 86_400 // STEP
    hour = (np.arange(steps) * STEP % 86_400) / 3600
    normal = 0.40 + 0.02 * np.cos(2 * np.pi * hour / 24)
    history = normal[:, None] + rng.normal(0, 0.001, (steps, len(NAMES)))
    _post(session, 0, np.round(history, 4))
    calibrate.calibrate(
        session, start=T0, end=T0 + timedelta(days=3), actor="t", bin_s=3600, day_mode="day"
    )
    # day 4: from 06:00 the whole zone is 0.012 MPa low (a hot morning: every tap open); from
    # 14:00 one sensor alone is 0.012 low (a burst near it)
    day = normal[:288, None] + rng.normal(0, 0.001, (288, len(NAMES)))
    t = np.arange(288) * STEP / 3600
    day[(t >= 6) & (t < 9)] -= 0.012
    day[(t >= 14) & (t < 17), 2] -= 0.012
    _post(session, 3 * 86_400, np.round(day, 4))
    assert _raised(session, "alone") == set(NAMES)  # the swing raises every sensor alone
    assert _raised(session, "with-peers") == {"peer-2"}  # only the local drop, against peers
