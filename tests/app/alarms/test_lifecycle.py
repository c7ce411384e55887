"""Alarm lifecycle on real PostGIS: every transition and its audit row, 409s with the allowed
states, row locking between concurrent analysts, push routing, SLA timers, statistics, and the
``/alarms`` API (filters, GeoJSON, errors)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.alarms.lifecycle import LEVEL_ALSO_NOTIFY, SLA_SECONDS, transition
from app.alarms.service import get_alarm
from app.alarms.stats import alarm_stats
from app.errors import Conflict, InvalidInput, NotFound
from app.taxonomy.alarms import STATE_TIMESTAMP, TRANSITIONS
from tests import factories as f

# --------------------------------------------------------------------------------------------
# Helpers: rules, assets, sensors and alarms from tests/factories.py (SQL, as the engine writes)
# --------------------------------------------------------------------------------------------

SOURCE = "test-alarms"


def events(db: f.Db, alarm_id: int) -> list[Any]:
    return list(
        db.execute(
            text(
                "SELECT actor, from_state, to_state, note, at FROM alarm_event "
                "WHERE alarm_id = :id ORDER BY id"
            ),
            {"id": alarm_id},
        )
    )


@dataclass
class Committed:
    """Rows committed for tests that need other connections to see them; deleted afterwards."""

    engine: Engine
    rules: list[int] = field(default_factory=list)
    assets: list[int] = field(default_factory=list)
    sensors: list[int] = field(default_factory=list)

    def rule(self, **kw: Any) -> tuple[int, str]:
        with self.engine.begin() as conn:
            rule = f.rule(conn, **kw)
        self.rules.append(rule[0])
        return rule

    def asset(self, *args: Any, **kw: Any) -> int:
        with self.engine.begin() as conn:
            asset_id = f.asset(conn, *args, source=SOURCE, **kw)
        self.assets.append(asset_id)
        return asset_id

    def sensor(self, **kw: Any) -> int:
        with self.engine.begin() as conn:
            sensor_id = f.sensor(conn, **kw)
        self.sensors.append(sensor_id)
        return sensor_id

    def alarm(self, rule: tuple[int, str], **kw: Any) -> int:
        with self.engine.begin() as conn:
            return f.alarm(conn, rule, **kw)

    def cleanup(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM alarm WHERE rule_id = ANY(:r)"), {"r": self.rules})
            conn.execute(text("DELETE FROM rule WHERE id = ANY(:r)"), {"r": self.rules})
            conn.execute(text("DELETE FROM sensor WHERE id = ANY(:s)"), {"s": self.sensors})
            conn.execute(text("DELETE FROM asset WHERE id = ANY(:a)"), {"a": self.assets})


@pytest.fixture
def committed(engine: Engine) -> Iterator[Committed]:
    rows = Committed(engine)
    try:
        yield rows
    finally:
        rows.cleanup()


# --------------------------------------------------------------------------------------------
# Transitions and audit
# --------------------------------------------------------------------------------------------

PATHS = {
    "true alarm": ["verified", "pushed", "acknowledged", "dispatched", "disposed", "closed"],
    "false alarm": ["false_alarm", "closed"],
    "device test": ["test", "closed"],
}


def test_the_paths_walk_every_allowed_transition() -> None:
    walked = {
        (a, b) for path in PATHS.values() for a, b in zip(["raised", *path], path, strict=False)
    }
    table = {(a, b) for a, nexts in TRANSITIONS.items() for b in nexts}
    assert walked == table


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_each_transition_sets_its_timestamp_and_writes_an_audit_row(
    session: Session, path: list[str]
) -> None:
    rule = f.rule(session)
    alarm_id = f.alarm(session, rule, sensor_id=f.sensor(session))
    previous = "raised"
    for step, to in enumerate(path, start=1):
        result = transition(session, alarm_id, to, f"analyst-{step}", f"note {step}")
        assert result.alarm.state == to
        assert result.event.from_state == previous
        assert result.event.to_state == to
        row = session.execute(
            text(
                f"SELECT state, {STATE_TIMESTAMP[to]} AS ts, updated_at FROM alarm WHERE id = :id"
            ),
            {"id": alarm_id},
        ).one()
        assert row.state == to
        assert row.ts is not None
        assert row.ts == result.event.at == row.updated_at
        audit = events(session, alarm_id)
        assert len(audit) == step + 1  # the engine's creation row, then one per step
        assert (audit[-1].actor, audit[-1].from_state, audit[-1].to_state) == (
            f"analyst-{step}",
            previous,
            to,
        )
        assert audit[-1].note.endswith(f"note {step}")
        previous = to
    times = [e.at for e in events(session, alarm_id)]
    assert times == sorted(times)


def test_invalid_transitions_are_409_with_the_allowed_states(session: Session) -> None:
    rule = f.rule(session)
    alarm_id = f.alarm(session, rule, sensor_id=f.sensor(session))
    with pytest.raises(Conflict) as raised:
        transition(session, alarm_id, "acknowledged", "ann")
    assert "verified, false_alarm, test" in raised.value.message
    transition(session, alarm_id, "false_alarm", "ann")
    with pytest.raises(Conflict) as again:
        transition(session, alarm_id, "pushed", "ann")
    assert "allowed: closed" in again.value.message
    transition(session, alarm_id, "closed", "ann")
    with pytest.raises(Conflict) as closed:
        transition(session, alarm_id, "raised", "ann")
    assert "none" in closed.value.message
    with pytest.raises(InvalidInput):
        transition(session, alarm_id, "resolved", "ann")
    with pytest.raises(NotFound):
        transition(session, 2**62, "verified", "ann")
    assert len(events(session, alarm_id)) == 3  # refused moves leave no audit row


def test_push_routes_by_owner_indicator_kind_and_level(session: Session) -> None:
    owned = f.asset(session, "water_pipe", source=SOURCE, owner="Hefei Water Supply Co.")
    unowned_pipe = f.asset(session, "water_pipe", source=SOURCE)
    ch4 = f.rule(session)
    strain = f.rule(session, indicator="strain_ue", title="Bridge strain")

    def push(rule: tuple[int, str], level: int, **kw: Any) -> tuple[str, str, dict[str, Any]]:
        alarm_id = f.alarm(session, rule, level=level, **kw)
        transition(session, alarm_id, "verified", "ann")
        result = transition(session, alarm_id, "pushed", "ann", "call the duty engineer")
        assert result.alarm.owner_unit is not None
        assert result.event.note is not None
        return result.alarm.owner_unit, result.event.note, result.alarm.attributes

    unit, note, attrs = push(strain, 1, asset_id=owned)
    assert unit == "Hefei Water Supply Co."  # the asset's owner wins
    assert "by asset owner" in note
    assert note.endswith("; call the duty engineer")
    assert attrs["push"]["also_notify"] == list(LEVEL_ALSO_NOTIFY[1])
    assert all(office in note for office in LEVEL_ALSO_NOTIFY[1])

    unit, note, attrs = push(ch4, 3, asset_id=unowned_pipe)
    assert unit == "gas utility"  # methane goes to the gas company, whatever the asset
    assert attrs["push"] == {
        "owner_unit": "gas utility",
        "also_notify": [],
        "routed_by": "indicator ch4_pct_lel",
        "level": 3,
    }
    assert "also notified" not in note

    unit, _, _ = push(strain, 4, asset_id=unowned_pipe)
    assert unit == "water utility"  # by asset kind
    unit, _, _ = push(strain, 2, asset_id=f.asset(session, "school", source=SOURCE))
    assert unit == "district government duty office"  # by plate
    unit, note, _ = push(strain, 2, lon=None, lat=None)
    assert unit == "city monitoring centre"
    assert "city emergency management office" in note


def test_push_keeps_what_the_engine_stored_in_attributes(session: Session) -> None:
    rule = f.rule(session)
    alarm_id = f.alarm(session, rule, sensor_id=f.sensor(session))
    session.execute(
        text("UPDATE alarm SET attributes = '{\"threshold\": 20}' WHERE id = :id"),
        {"id": alarm_id},
    )
    transition(session, alarm_id, "verified", "ann")
    transition(session, alarm_id, "pushed", "ann")
    attrs = session.execute(
        text("SELECT attributes FROM alarm WHERE id = :id"), {"id": alarm_id}
    ).scalar_one()
    assert attrs["threshold"] == 20
    assert attrs["push"]["owner_unit"] == "gas utility"


def wait_for_lock_waiters(engine: Engine, n: int, timeout_s: float = 10) -> bool:
    """Whether ``n`` backends of this database are waiting for a lock within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()
            if waiting >= n:
                return True
            time.sleep(0.05)
    return False


def test_concurrent_transitions_do_not_both_succeed(engine: Engine, committed: Committed) -> None:
    rule = committed.rule()
    alarm_id = committed.alarm(rule, sensor_id=committed.sensor())
    outcome: dict[str, Any] = {}
    started = threading.Event()

    def second_analyst() -> None:
        with Session(engine) as other:
            started.set()
            try:
                transition(other, alarm_id, "false_alarm", "bob")
                other.commit()
                outcome["bob"] = "moved"
            except Conflict as exc:
                outcome["bob"] = exc.message

    with Session(engine) as first:
        transition(first, alarm_id, "verified", "ann")  # holds the row lock until commit
        thread = threading.Thread(target=second_analyst)
        thread.start()
        started.wait(5)
        assert wait_for_lock_waiters(engine, 1), "the second transition must wait for the lock"
        assert thread.is_alive()
        first.commit()
    thread.join(10)
    assert not thread.is_alive()
    assert "cannot go from 'verified' to 'false_alarm'" in outcome["bob"]
    with engine.connect() as conn:
        assert [(e.actor, e.to_state) for e in events(conn, alarm_id)] == [
            ("engine", "raised"),
            ("ann", "verified"),
        ]


# --------------------------------------------------------------------------------------------
# SLA
# --------------------------------------------------------------------------------------------


def timers(session: Session, alarm_id: int) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in get_alarm(session, alarm_id)["sla"]}


def test_sla_breach_is_flagged_when_a_step_is_past_due(session: Session) -> None:
    rule = f.rule(session)
    limits = SLA_SECONDS[1]
    # Level I, raised 10 min ago, never verified: verify (5 min) is breached, acknowledge
    # (15 min) and dispose (2 h) are still running.
    late = f.alarm(session, rule, level=1, sensor_id=f.sensor(session), opened_ago_s=600)
    sla = timers(session, late)
    assert sla["verify"]["breached"]
    assert sla["verify"]["running"]
    assert sla["verify"]["limit_s"] == limits["verify"]
    assert 600 <= sla["verify"]["elapsed_s"] < 700
    assert not sla["acknowledge"]["breached"]
    assert sla["acknowledge"]["running"]
    assert not sla["dispose"]["breached"]
    opened = get_alarm(session, late)["opened_at"]
    assert sla["verify"]["due_at"] == opened + timedelta(seconds=limits["verify"])

    # Verified after 3 min, acknowledged after 20 min: verify met, acknowledge breached.
    acked = f.alarm(
        session,
        rule,
        level=1,
        state="acknowledged",
        sensor_id=f.sensor(session),
        opened_ago_s=3600,
        verified_at=3600 - 180,
        pushed_at=3600 - 200,
        acknowledged_at=3600 - 1200,
    )
    sla = timers(session, acked)
    assert not sla["verify"]["breached"]
    assert not sla["verify"]["running"]
    assert sla["verify"]["elapsed_s"] == pytest.approx(180, abs=1)
    assert sla["acknowledge"]["breached"]
    assert not sla["acknowledge"]["running"]
    assert sla["acknowledge"]["elapsed_s"] == pytest.approx(1200, abs=1)
    assert not sla["dispose"]["breached"]
    assert sla["dispose"]["running"]

    # Level IV, same ages: nothing breached (2 h to verify).
    blue = f.alarm(session, rule, level=4, sensor_id=f.sensor(session), opened_ago_s=600)
    assert not any(t["breached"] for t in timers(session, blue).values())

    # A false alarm has nothing to acknowledge or dispose, however old.
    false = f.alarm(
        session,
        rule,
        level=1,
        state="false_alarm",
        sensor_id=f.sensor(session),
        opened_ago_s=86_400,
        verified_at=86_400 - 60,
    )
    sla = timers(session, false)
    assert not sla["verify"]["breached"]
    assert not sla["acknowledge"]["applicable"]
    assert not sla["acknowledge"]["breached"]
    assert not sla["dispose"]["applicable"]
    assert not sla["dispose"]["breached"]


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def test_stats_on_a_known_set(session: Session) -> None:
    # Inside this test's transaction (rolled back afterwards) the alarm table holds exactly the
    # set below, whatever else the database has.
    session.execute(text("DELETE FROM alarm"))
    gas, tunnel = f.rule(session), f.rule(session, indicator="h2s_ppm", title="H2S")
    s1, s2 = f.sensor(session), f.sensor(session)
    hour = 3600
    # gas on s1: a true alarm verified after 120 s, acked after 600 s, disposed after 3000 s
    a1 = f.alarm(session, gas, level=1, sensor_id=s1, opened_ago_s=hour)
    # gas on s2: a false alarm, verdict after 240 s
    a2 = f.alarm(session, gas, level=2, sensor_id=s2, opened_ago_s=hour)
    # tunnel on s1: a device test, verdict after 60 s; and one still raised (level IV, 10 min)
    a3 = f.alarm(session, tunnel, level=3, sensor_id=s1, opened_ago_s=hour)
    f.alarm(session, tunnel, level=4, sensor_id=s2, opened_ago_s=600)
    for alarm_id, to in ((a1, "verified"), (a2, "false_alarm"), (a3, "test")):
        transition(session, alarm_id, to, "ann")
    transition(session, a1, "pushed", "ann")
    transition(session, a1, "acknowledged", "ann")
    transition(session, a1, "dispatched", "ann")
    transition(session, a1, "disposed", "ann")
    transition(session, a2, "closed", "ann")  # the verdict survives closing
    for alarm_id, column, after_s in (
        (a1, "verified_at", 120),
        (a1, "acknowledged_at", 600),
        (a1, "disposed_at", 3000),
        (a2, "verified_at", 240),
        (a3, "verified_at", 60),
    ):
        session.execute(
            text(
                f"UPDATE alarm SET {column} = opened_at + make_interval(secs => :s) WHERE id = :id"
            ),
            {"s": after_s, "id": alarm_id},
        )

    stats = alarm_stats(session)
    overall = stats["overall"]
    assert overall["total"] == 4
    assert overall["by_level"] == {"1": 1, "2": 1, "3": 1, "4": 1}
    assert overall["by_state"]["disposed"] == 1
    assert overall["by_state"]["closed"] == 1
    assert overall["by_state"]["test"] == 1
    assert overall["by_state"]["raised"] == 1
    assert overall["verdicts"] == {"verified": 1, "false_alarm": 1, "test": 1}
    assert overall["false_alarm_share"] == pytest.approx(0.5)  # tests are not verdicts on truth
    assert overall["mean_s"]["verify"] == pytest.approx((120 + 240 + 60) / 3)
    assert overall["mean_s"]["acknowledge"] == pytest.approx(600)
    assert overall["mean_s"]["dispose"] == pytest.approx(3000)
    # a1: level I verify 120 s < 300 s, ack 600 s < 900 s, dispose 3000 s < 7200 s: no breach.
    # a2: level II verify 240 s < 600 s. a3: test. a4: level IV raised 10 min: within 2 h.
    assert overall["sla_breaches"] == {"verify": 0, "acknowledge": 0, "dispose": 0}

    by_rule = {r["rule_code"]: r for r in stats["per_rule"]}
    assert by_rule[gas[1]]["total"] == 2
    assert by_rule[gas[1]]["false_alarm_share"] == 0.5
    assert by_rule[tunnel[1]]["false_alarm_share"] is None  # no true/false verdict yet
    assert by_rule[tunnel[1]]["by_level"] == {"1": 0, "2": 0, "3": 1, "4": 1}
    by_sensor = {r["sensor_id"]: r for r in stats["per_sensor"]}
    assert by_sensor[s1]["total"] == 2
    assert by_sensor[s1]["verdicts"]["test"] == 1
    assert by_sensor[s2]["mean_s"]["verify"] == pytest.approx(240)

    only_gas = alarm_stats(session, rule=gas[1])
    assert only_gas["overall"]["total"] == 2
    assert len(only_gas["per_rule"]) == 1
    on_s2 = alarm_stats(session, sensor=str(s2))
    assert on_s2["overall"]["total"] == 2
    recent = alarm_stats(session, since=datetime.now(UTC) - timedelta(minutes=30))
    assert recent["overall"]["total"] == 1
    # a breach counts: move a4's opening back a day
    session.execute(
        text("UPDATE alarm SET opened_at = opened_at - interval '1 day' WHERE level = 4")
    )
    assert alarm_stats(session)["overall"]["sla_breaches"]["verify"] == 1
    session.execute(text("DELETE FROM alarm"))
    empty = alarm_stats(session)
    assert empty["overall"]["total"] == 0
    assert empty["per_rule"] == []


# --------------------------------------------------------------------------------------------
# HTTP API
# --------------------------------------------------------------------------------------------


def test_transition_api_records_the_actor_and_answers_409_and_4xx(
    client: TestClient, committed: Committed, tokens: dict[str, str]
) -> None:
    rule = committed.rule()
    alarm_id = committed.alarm(rule, sensor_id=committed.sensor())
    url = f"/alarms/{alarm_id}/transition"

    # The actor is the token's name; X-Actor (the stand-in before authentication) is not read,
    # so nobody can write as the engine.
    ok = client.post(
        url,
        json={"to": "verified", "note": "confirmed on CCTV"},
        headers={**f.bearer(tokens["analyst"]), "X-Actor": "engine"},
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["event"]["actor"] == "test-analyst"
    assert body["event"]["to_state"] == "verified"
    assert body["alarm"]["state"] == "verified"
    assert body["alarm"]["allowed_transitions"] == ["pushed"]
    assert [e["to_state"] for e in body["alarm"]["events"]] == ["raised", "verified"]

    pushed = client.post(url, json={"to": "pushed"}, headers=f.bearer(tokens["commander"]))
    assert pushed.json()["event"]["actor"] == "test-commander"
    assert pushed.json()["alarm"]["owner_unit"] == "gas utility"

    refused = client.post(url, json={"to": "closed"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "Conflict"
    assert "allowed: acknowledged" in refused.json()["detail"]

    assert client.post(url, json={"to": "nope"}).status_code == 422
    assert client.post(url, json={"state": "closed"}).status_code == 422
    assert (
        client.post(url, content=b"{oops", headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert (
        client.post("/alarms/999999999999/transition", json={"to": "verified"}).status_code == 404
    )
    assert client.post("/alarms/0/transition", json={"to": "verified"}).status_code == 422

    detail = client.get(f"/alarms/{alarm_id}").json()
    assert [(e["actor"], e["to_state"]) for e in detail["events"]] == [
        ("engine", "raised"),
        ("test-analyst", "verified"),
        ("test-commander", "pushed"),
    ]
    assert client.get("/alarms/999999999999").status_code == 404
    assert client.get("/alarms/abc").status_code == 422


def test_list_filters_and_geojson(client: TestClient, committed: Committed) -> None:
    rule = committed.rule()
    pipe = committed.asset("gas_pipe", f.point(), name="Main St gas main")
    ponding = committed.asset("ponding_point", f.point(117.28, 31.86))
    red = committed.alarm(rule, level=1, asset_id=pipe)
    blue = committed.alarm(
        rule, level=4, asset_id=ponding, lon=117.28, lat=31.86, opened_ago_s=7200, cleared=True
    )
    on_sensor = committed.alarm(
        rule, level=2, sensor_id=committed.sensor(asset_id=pipe), lon=None, lat=None
    )
    mine = {red, blue, on_sensor}

    def ids(**params: Any) -> set[int]:
        response = client.get("/alarms", params=params)
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()["alarms"]} & mine

    assert ids() == mine
    assert ids(level="1,4") == {red, blue}
    assert ids(level=["2", "4"]) == {on_sensor, blue}
    assert ids(state="raised") == mine
    assert ids(state="verified") == set()
    # the sensor's asset counts for plate/kind; the sensor's point for bbox
    assert ids(plate="lifeline") == {red, on_sensor}
    assert ids(kind="ponding_point") == {blue}
    assert ids(bbox="117,31,118,32") == {blue}
    assert ids(bbox="-71.2,42.3,-71.0,42.4") == {red, on_sensor}
    assert ids(active="true") == {red, on_sensor}
    assert ids(active="false") == {blue}
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids(since=since) == {red, on_sensor}

    listed = {a["id"]: a for a in client.get("/alarms").json()["alarms"]}
    assert listed[on_sensor]["asset_id"] == pipe
    assert listed[on_sensor]["lon"] == pytest.approx(f.LON)
    assert listed[red]["level_name"] == "I"
    assert listed[red]["color"] == "red"
    assert listed[red]["asset_name"] == "Main St gas main"
    assert {t["name"] for t in listed[red]["sla"]} == {"verify", "acknowledge", "dispose"}

    geo = client.get("/alarms", params={"f": "geojson", "level": "4"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    features = {f["id"]: f for f in geo.json()["features"]}
    assert features[blue]["geometry"] == {"type": "Point", "coordinates": [117.28, 31.86]}
    assert features[blue]["properties"]["state"] == "raised"
    assert "lon" not in features[blue]["properties"]

    for bad in (
        {"state": "sleeping"},
        {"level": "5"},
        {"level": "I"},
        {"plate": "moon"},
        {"kind": "volcano"},
        {"since": "yesterday"},
        {"since": "2026-11-28T00:00:00"},
        {"f": "kml"},
        {"limit": "0"},
        {"active": "maybe"},
    ):
        response = client.get("/alarms", params=bad)
        assert 400 <= response.status_code < 500, (bad, response.status_code)
    assert client.get("/alarms", params={"bbox": "1,2,3"}).status_code == 400


def test_stats_api(client: TestClient, committed: Committed) -> None:
    rule = committed.rule()
    alarm_id = committed.alarm(rule, level=2, sensor_id=committed.sensor(), opened_ago_s=900)
    client.post(f"/alarms/{alarm_id}/transition", json={"to": "false_alarm"})
    response = client.get("/alarms/stats", params={"rule": rule[1]})
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["overall"]["total"] == 1
    assert stats["overall"]["false_alarm_share"] == 1.0
    assert stats["overall"]["mean_s"]["verify"] == pytest.approx(900, abs=30)
    assert stats["overall"]["sla_breaches"]["verify"] == 1  # level II: 10 min to verify
    assert [r["rule_code"] for r in stats["per_rule"]] == [rule[1]]
    assert len(stats["per_sensor"]) == 1
    assert stats["per_sensor_truncated"] is False
    assert client.get("/alarms/stats", params={"since": "2026-11-28"}).status_code == 422
    assert client.get("/alarms/stats", params={"since": "soon"}).status_code == 422
