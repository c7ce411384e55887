"""The rules engine on real PostGIS: every rule kind, dedup, escalation, hysteresis, clearing,
context, k-of-n, versions — driven through the real ingest path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms import engine, rules
from app.alarms.rules import RuleSpec
from app.flows.readings import ingest_payload
from app.sensors import partitions
from tests import factories as f

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
M_PER_DEG_LAT = 111_000.0


def at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat()


def send(session: Session, *readings: tuple[str, float, float]) -> None:
    """Ingest (sensor, seconds after BASE, value) readings through the real ingest path."""
    body = [{"sensor": s, "ts": at(t), "value": v} for s, t, v in readings]
    report = ingest_payload(session, json.dumps(body).encode(), "application/json")
    assert report.rejected == [], report.rejected


def add_rule(session: Session, **spec: Any) -> int:
    return rules.save(session, RuleSpec(**spec), actor="test").id


def alarms(session: Session, code: str) -> list[Any]:
    return list(
        session.execute(
            text(
                "SELECT a.*, s.external_id AS sensor FROM alarm a "
                "LEFT JOIN sensor s ON s.id = a.sensor_id WHERE rule_code = :c ORDER BY a.id"
            ),
            {"c": code},
        )
    )


def events(session: Session, alarm_id: int) -> list[tuple[Any, ...]]:
    rows = session.execute(
        text(
            "SELECT from_state, to_state, from_level, to_level, note FROM alarm_event "
            "WHERE alarm_id = :a ORDER BY id"
        ),
        {"a": alarm_id},
    )
    return [tuple(r) for r in rows]


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    """A gas main with a manhole 5 m away, a manhole 300 m away, a bridge; their sensors."""
    engine._cache.clear()
    lat = 42.37
    ids: dict[str, int] = {}
    for eid, kind, wkt, attrs in [
        ("main", "gas_pipe", f"LINESTRING(-71.11 {lat}, -71.10 {lat})", {}),
        ("mh-near", "manhole", f"POINT(-71.105 {lat + 5 / M_PER_DEG_LAT})", {}),
        ("mh-far", "manhole", f"POINT(-71.105 {lat + 300 / M_PER_DEG_LAT})", {}),
        ("bridge", "bridge", f"LINESTRING(-71.20 {lat}, -71.19 {lat})", {"design_strain_ue": 1000}),
        ("water", "water_pipe", f"LINESTRING(-71.30 {lat}, -71.29 {lat})", {}),
        ("pond", "ponding_point", f"POINT(-71.40 {lat})", {}),
    ]:
        # Plate lifeline for every row, as this test has always written them (the factory's
        # default, the taxonomy's, would put ponding_point on natural_disaster).
        ids[eid] = f.asset(
            session, kind, wkt, plate="lifeline", source="t", external_id=eid, **attrs
        )
    for eid, kind, asset, lon, lat_ in [
        ("ch4-near", "ch4_pct_lel", "mh-near", -71.105, lat + 5 / M_PER_DEG_LAT),
        ("ch4-far", "ch4_pct_lel", "mh-far", -71.105, lat + 300 / M_PER_DEG_LAT),
        ("strain-1", "strain_ue", "bridge", -71.195, lat),
        ("strain-2", "strain_ue", "bridge", -71.194, lat),
        ("press", "pressure_mpa", "water", -71.295, lat),
        ("ponding", "ponding_cm", "pond", -71.40, lat),
    ]:
        ids[eid] = f.sensor(
            session, kind, lon=lon, lat=lat_, asset_id=ids[asset], external_id=eid, interval_s=60
        )
    return ids


CH4 = {
    "code": "ch4",
    "title": "Methane in a manhole",
    "indicator": "ch4_pct_lel",
    "thresholds": {4: 10, 3: 20, 2: 35, 1: 50},
    "target": {"asset_kinds": ["manhole"]},
    "persistence_n": 2,
    "hysteresis": 2,
}


def test_persistence_escalation_hysteresis_clear_and_recur(
    session: Session, city: dict[str, int]
) -> None:
    add_rule(session, **CH4)
    send(session, ("ch4-near", 0, 25))
    assert alarms(session, "ch4") == []  # one reading is not persistence 2
    send(session, ("ch4-near", 60, 25))
    [alarm] = alarms(session, "ch4")
    assert (alarm.level, alarm.state, alarm.first_value) == (3, "raised", 25)
    send(session, ("ch4-near", 120, 40))
    assert alarms(session, "ch4")[0].level == 3  # min(25, 40): not yet persistent at II
    send(session, ("ch4-near", 180, 40))
    assert alarms(session, "ch4")[0].level == 2
    send(session, ("ch4-near", 240, 19))  # within hysteresis of III (20 - 2)
    assert alarms(session, "ch4")[0].level == 3
    send(session, ("ch4-near", 300, 7))  # below IV - hysteresis: cleared
    [alarm] = alarms(session, "ch4")
    assert alarm.cleared_at is not None
    assert alarm.state == "raised"  # visible until an analyst closes it
    assert alarm.peak_value == 40
    send(session, ("ch4-near", 360, 12), ("ch4-near", 420, 12))
    [alarm] = alarms(session, "ch4")  # the same alarm again, never a duplicate
    assert alarm.cleared_at is None
    assert alarm.level == 4
    assert events(session, alarm.id) == [
        (None, "raised", None, 3, None),
        ("raised", "raised", 3, 2, "escalated"),
        ("raised", "raised", 2, 3, "de-escalated"),
        ("raised", "raised", 3, 3, "cleared"),
        ("raised", "raised", 3, 4, "recurred"),
    ]


def test_context_separates_gas_leak_from_biogas(session: Session, city: dict[str, int]) -> None:
    add_rule(
        session,
        **CH4,
        context={
            "near_kinds": ["gas_pipe"],
            "within_m": 10,
            "cause_if_near": "suspected gas-main leak",
            "cause_otherwise": "suspected biogas",
            "levels_lower_otherwise": 1,
        },
    )
    send(session, ("ch4-near", 0, 40), ("ch4-near", 60, 40))
    send(session, ("ch4-far", 0, 40), ("ch4-far", 60, 40))
    got = {a.sensor: (a.level, a.cause) for a in alarms(session, "ch4")}
    assert got == {
        "ch4-near": (2, "suspected gas-main leak"),
        "ch4-far": (3, "suspected biogas"),
    }


def test_rate_of_rise(session: Session, city: dict[str, int]) -> None:
    add_rule(
        session,
        code="pond-rise",
        title="Ponding rising",
        kind="rate",
        indicator="ponding_cm",
        window_s=300,
        thresholds={3: 10, 2: 20},
    )
    send(session, ("ponding", 0, 10), ("ponding", 150, 14))
    assert alarms(session, "pond-rise") == []  # no reading 5 min before yet
    send(session, ("ponding", 300, 30))  # 10 -> 30 cm in 5 min
    assert [a.level for a in alarms(session, "pond-rise")] == [2]


def test_pressure_drop_against_last_week(session: Session, city: dict[str, int]) -> None:
    add_rule(
        session,
        code="drop",
        title="Pressure drop",
        kind="baseline",
        indicator="pressure_mpa",
        direction="below",
        lag_s=7 * 86400,
        window_s=3600,
        thresholds={4: 0.1, 3: 0.2, 2: 0.3, 1: 0.5},
    )
    week = 7 * 86400
    send(session, ("press", -week - 600, 0.40), ("press", -week + 600, 0.40))
    send(session, ("press", 0, 0.36))  # 10 % drop
    assert [a.level for a in alarms(session, "drop")] == [4]
    send(session, ("press", 60, 0.25))  # 37.5 % drop
    assert [a.level for a in alarms(session, "drop")] == [2]


def test_k_of_n_raises_one_alarm_on_the_asset(session: Session, city: dict[str, int]) -> None:
    add_rule(
        session,
        code="strain",
        title="Bridge strain",
        indicator="strain_ue",
        relative_to="design_strain_ue",
        thresholds={4: 0.6, 3: 0.8, 2: 0.9, 1: 1.0},
        persistence_n=1,
        confirm={"k": 2, "window_s": 300},
    )
    send(session, ("strain-1", 0, 850))
    assert alarms(session, "strain") == []  # one sensor of two: not confirmed
    send(session, ("strain-2", 30, 920))
    [alarm] = alarms(session, "strain")
    assert (alarm.sensor_id, alarm.asset_id, alarm.level) == (None, city["bridge"], 3)
    assert alarm.cause == "2 of 2 sensors agree"


def test_design_limit_missing_means_no_alarm(session: Session, city: dict[str, int]) -> None:
    add_rule(
        session,
        code="defl",
        title="Deflection",
        indicator="strain_ue",
        relative_to="design_deflection_mm",  # the bridge has no such attribute
        thresholds={1: 1.0},
    )
    send(session, ("strain-1", 0, 99999), ("strain-1", 60, 99999))
    assert alarms(session, "defl") == []


def test_the_engine_sees_sensor_and_asset_changes_at_once(
    session: Session, city: dict[str, int]
) -> None:
    """The engine keeps the fleet's sensors in memory per data version: a design limit
    written, a sensor put in maintenance or a new one registered between two batches is what
    the next batch is judged with."""
    add_rule(
        session,
        code="defl",
        title="Deflection",
        indicator="strain_ue",
        relative_to="design_deflection_mm",
        thresholds={1: 1.0},
    )
    send(session, ("strain-1", 0, 990))
    assert alarms(session, "defl") == []  # no design limit yet
    session.execute(
        text(
            "UPDATE asset SET attributes = attributes || '{\"design_deflection_mm\": 500}' "
            "WHERE id = :a"
        ),
        {"a": city["bridge"]},
    )
    session.execute(
        text("UPDATE sensor SET status = 'maintenance' WHERE id = :s"), {"s": city["strain-2"]}
    )
    f.sensor(
        session,
        "strain_ue",
        lon=-71.193,
        lat=42.37,
        asset_id=city["bridge"],
        external_id="strain-3",
    )
    send(session, ("strain-1", 60, 990), ("strain-2", 60, 990), ("strain-3", 60, 990))
    assert sorted(a.sensor for a in alarms(session, "defl")) == ["strain-1", "strain-3"]


def test_offline_flatline_and_spike(session: Session, city: dict[str, int]) -> None:
    add_rule(session, code="offline", title="Offline", kind="offline", indicator="*", factor=3)
    add_rule(session, code="flat", title="Flatline", kind="flatline", indicator="*", n=5)
    add_rule(
        session, code="spike", title="Spike", kind="spike", indicator="pressure_mpa",
        thresholds={4: 1.0},
    )  # fmt: skip
    send(session, *[("press", t, 0.4) for t in (0, 60, 120, 180)])
    assert alarms(session, "flat") == []
    send(session, ("press", 240, 0.4))
    assert [a.cause for a in alarms(session, "flat")] == ["sensor stuck (flatline)"]
    send(session, ("press", 300, 1.9))
    assert [a.level for a in alarms(session, "spike")] == [4]
    assert alarms(session, "flat")[0].cleared_at is not None

    # Nothing received just now: a sensor whose data is 2 h old is not silent (it may be
    # catching up) until nothing has been received for interval 60 s × 3.
    assert engine.check_offline(session).raised == 0
    report = engine.check_offline(session, now=datetime.now(UTC) + timedelta(seconds=200))
    assert report.raised >= 1
    offline = {a.sensor: a for a in alarms(session, "offline")}
    # raised at the data time it fell silent on its own clock: last reading + 180 s
    assert offline["press"].opened_ts == BASE + timedelta(seconds=300 + 180)
    send(session, ("press", 7000, 0.4))  # it reports again
    [press] = [a for a in alarms(session, "offline") if a.sensor == "press"]
    assert press.cleared_at is not None
    assert press.cleared_ts == BASE + timedelta(seconds=7000)


def test_hold_time(session: Session, city: dict[str, int]) -> None:
    add_rule(
        session, code="hold", title="Held", indicator="ponding_cm", thresholds={4: 3},
        hold_s=120,
    )  # fmt: skip
    send(session, ("ponding", 0, 5), ("ponding", 60, 5))
    assert alarms(session, "hold") == []  # above for 60 s only
    send(session, ("ponding", 120, 5))
    assert [a.level for a in alarms(session, "hold")] == [4]


def test_alarm_names_the_rule_version_that_raised_it(
    session: Session, city: dict[str, int]
) -> None:
    first = add_rule(session, **CH4)
    assert rules.save(session, RuleSpec(**CH4), actor="t").id == first  # unchanged: no version
    send(session, ("ch4-near", 0, 25), ("ch4-near", 60, 25))
    second = add_rule(session, **{**CH4, "thresholds": {4: 5, 3: 20, 2: 35, 1: 50}})
    assert second != first
    [alarm] = alarms(session, "ch4")
    assert alarm.rule_id == first
    assert [v.version for v in rules.versions(session, "ch4")] == [1, 2]
    assert [r.id for r in rules.current_rules(session) if r.spec.code == "ch4"] == [second]


def test_default_pack_loads_and_is_idempotent(session: Session) -> None:
    specs = rules.default_pack()
    assert {"ch4-adjacent-space", "ponding-depth", "sensor-offline"} <= {s.code for s in specs}
    first = rules.load(session, specs, actor="t")
    again = rules.load(session, specs, actor="t")
    assert [r.id for r in first] == [r.id for r in again]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"indicator": "warp"}, "unknown indicator"),
        ({"thresholds": {4: 30, 3: 20}}, "must not decrease"),
        ({"kind": "rate", "persistence_n": 1, "hysteresis": 0}, "needs window_s"),
        ({"kind": "spike"}, "not spike"),
        ({"code": "Bad Code"}, "code must be"),
        ({"thresholds": {}}, "needs thresholds"),
        ({"target": {"asset_kinds": ["spaceship"]}}, "unknown asset kinds"),
    ],
)
def test_bad_rules_are_refused(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        RuleSpec(**{**CH4, **spec})


def test_sensor_without_position_can_raise(session: Session) -> None:
    """Regression: a NULL sensor position made the alarm INSERT fail (untyped parameter)."""
    engine._cache.clear()
    f.sensor(session, "ponding_cm", lon=None, lat=None, external_id="nowhere", interval_s=60)
    add_rule(session, code="pond", title="Ponding", indicator="ponding_cm", thresholds={4: 10})
    send(session, ("nowhere", 0, 20))
    [alarm] = alarms(session, "pond")
    assert (alarm.level, alarm.geom) == (4, None)


@pytest.mark.parametrize("field", [{"persistence_n": 3}, {"hysteresis": 1.0}, {"hold_s": 60}])
def test_holding_options_are_refused_on_one_step_kinds(field: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not spike"):
        RuleSpec(
            code="spike-1",
            title="s",
            kind="spike",
            indicator="ponding_cm",
            thresholds={4: 10},
            **field,
        )


def test_persistence_applies_to_rate_rules(session: Session, city: dict[str, int]) -> None:
    """Issue 13: persistence/hold/hysteresis on every graded kind, here a rate of rise."""
    add_rule(
        session,
        code="pond-rise-2",
        title="Ponding rising, twice",
        kind="rate",
        indicator="ponding_cm",
        window_s=60,
        thresholds={3: 10},
        persistence_n=2,
    )
    send(session, ("ponding", 0, 0), ("ponding", 60, 12))  # +12 in 60 s: once
    assert alarms(session, "pond-rise-2") == []
    send(session, ("ponding", 120, 24))  # +12 again: twice in a row
    [alarm] = alarms(session, "pond-rise-2")
    assert alarm.level == 3
    assert alarm.opened_ts == BASE + timedelta(seconds=120)


def test_a_backfill_is_judged_on_its_own_history(session: Session, city: dict[str, int]) -> None:
    """Readings from days ago (a gateway catching up) still raise, with lookups bounded."""
    add_rule(session, **CH4)
    days = -5 * 86400  # BASE is 2 h ago: these are 5 days older
    send(session, ("ch4-near", days, 25), ("ch4-near", days + 60, 25))
    assert [a.level for a in alarms(session, "ch4")] == [3]


def test_context_reads_k_rows_however_long_the_day(session: Session) -> None:
    """The last k readings of a sensor come from a backward index scan that stops after k rows,
    not from reading the whole day's readings of the sensor and sorting them: PostgreSQL's
    default plan for the LATERAL over the day partitions did the latter once a city's sensors
    share the day (one row expected per partition), and the soak's ingest slowed as the day
    filled (100 → 172 ms per batch for 30 → 125 readings per sensor)."""
    now = datetime.now(UTC).replace(microsecond=0)
    partitions.ensure(session, partitions.days_ahead(now))
    fleet = [
        int(r[0])
        for r in session.execute(
            text(
                "INSERT INTO sensor (external_id, kind, unit, status, geom) "
                "SELECT 'ctx-' || g || '-' || :u, 'pressure_mpa', 'MPa', 'active', "
                "ST_SetSRID(ST_MakePoint(-71.1, 42.37), 4326) FROM generate_series(1, 1500) g "
                "RETURNING id"
            ),
            {"u": f.uid("")},
        )
    ]
    # a city's morning: 1,500 sensors, 200 one-minute readings each, in today's partition
    session.execute(
        text(
            "INSERT INTO reading (sensor_id, ts, value) "
            "SELECT s, CAST(:now AS timestamptz) - m * interval '1 minute', 0.3 "
            "FROM unnest(CAST(:ids AS int8[])) s, generate_series(1, 200) m "
            "WHERE CAST(:now AS timestamptz) - m * interval '1 minute' >= date_trunc('day', "
            "CAST(:now AS timestamptz)) - interval '1 day'"
        ),
        {"ids": fleet, "now": now},
    )
    session.execute(text("ANALYZE reading"))

    def fetched() -> int:
        return int(
            session.execute(
                text(
                    "SELECT coalesce(sum(idx_tup_fetch + seq_tup_read), 0) "
                    "FROM pg_stat_xact_user_tables WHERE relname LIKE 'reading_p%'"
                )
            ).scalar_one()
        )

    before = fetched()
    sid = np.asarray(fleet, dtype=np.int64)
    t_us = np.full(sid.size, int(now.timestamp()) * 1_000_000, dtype=np.int64)
    k = np.full(sid.size, 2, dtype=np.int64)
    ctx = engine._fetch_context(session, sid, t_us, t_us, k, 0 * k)
    assert set(ctx[1].tolist()) == {t_us[0] - 120_000_000, t_us[0] - 60_000_000}
    read = fetched() - before
    assert read <= 5 * sid.size, f"{read:,} rows read for the last 2 of 200 readings per sensor"
    # and the setting is back for the rest of the transaction
    assert session.execute(text("SHOW enable_sort")).scalar_one() == "on"
