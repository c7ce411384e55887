"""Suspected events on real PostGIS: pressure alarms on a hand-made water grid grouped in space
and data time (:func:`app.events.service.update_for_alarms`), localised to the burst main,
kept apart when far, in another window or far along the pipes; regrouping is idempotent;
the API lists, shows, closes them and hands the top main to the burst scenario; the readings
flow groups what it raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.events import service
from app.settings import EventSettings
from tests import factories as f
from tests.app.events import city as c

DEFAULT = EventSettings()
SINGLE = EventSettings(min_sensors=1)


def events(db: Any, alarm_ids: list[int]) -> list[dict[str, Any]]:
    """The events (any state) holding any of ``alarm_ids``, by id, with their member ids."""
    rows = db.execute(
        text(
            "SELECT e.id, e.state, e.top_asset_id, e.n_alarms, e.n_sensors, e.peak_level, "
            "e.first_ts, e.last_ts, e.updated_at, ST_AsText(e.area) AS area, "
            "array_agg(m.alarm_id ORDER BY m.alarm_id) AS members "
            "FROM suspected_event e JOIN suspected_event_alarm m ON m.event_id = e.id "
            "WHERE e.id IN (SELECT event_id FROM suspected_event_alarm WHERE alarm_id = ANY(:a)) "
            "GROUP BY e.id ORDER BY e.id"
        ),
        {"a": alarm_ids},
    ).all()
    return [dict(r._mapping) for r in rows]


def test_three_sensors_beside_a_main_are_one_event_on_that_main(session: Session) -> None:
    city = c.build(session, 10.75, 59.91)
    ids = c.burst(session, city)
    report = service.update_for_alarms(session, ids, settings=DEFAULT)
    assert len(report.opened) == 1, report
    [event] = events(session, ids)
    assert event["members"] == sorted(ids)
    assert (event["state"], event["n_alarms"], event["n_sensors"]) == ("open", 3, 3)
    assert event["top_asset_id"] == city.target
    assert event["peak_level"] == 2
    assert event["first_ts"] == city.t0  # data time, not when it was grouped
    assert event["last_ts"] == city.t0 + timedelta(minutes=25)
    area = shapely.from_wkt(event["area"])
    assert area.contains(shapely.Point(*city.ll(300, 200)))
    stored = service.get_event(db_session=session, event_id=event["id"])
    first = stored["candidates"][0]
    assert (first["asset_id"], first["kind"], first["rank"]) == (city.target, "water_pipe", 1)
    assert first["score"] > stored["candidates"][1]["score"]
    # Weighted by how far each sensor dropped from its hour before (0.40 MPa): A 50 %, B 40 %.
    by_alarm = {a["id"]: a["magnitude"] for a in stored["alarms"]}
    assert by_alarm[ids[0]] == pytest.approx(0.5)
    assert by_alarm[ids[1]] == pytest.approx(0.4)
    assert stored["params"]["window_s"] == 3600
    assert "single linkage" in stored["method"]
    assert any("quiet sensors" in n for n in stored["notes"]), stored["notes"]


def test_a_far_sensor_at_the_same_time_is_a_separate_event(session: Session) -> None:
    city = c.build(session, 10.76, 59.92)
    ids = c.burst(session, city)
    far = c.alarm(session, city, "D", at_s=60, peak=0.2, level=2)
    # With the default two sensors, one far sensor is an alarm, not an event ...
    service.update_for_alarms(session, [*ids, far], settings=DEFAULT)
    assert [e["members"] for e in events(session, [*ids, far])] == [sorted(ids)]
    # ... and when one sensor is enough, it is an event of its own, on its own main.
    report = service.update_for_alarms(session, [far], settings=SINGLE)
    got = events(session, [*ids, far])
    assert [e["members"] for e in got] == [sorted(ids), [far]]
    assert got[1]["top_asset_id"] == city.pipes[c.FAR]
    assert report.opened == [got[1]["id"]]


def test_regrouping_updates_the_event_and_never_duplicates_it(session: Session) -> None:
    city = c.build(session, 10.77, 59.93)
    ids = c.burst(session, city)
    service.update_for_alarms(session, ids, settings=DEFAULT)
    [before] = events(session, ids)
    again = service.update_for_alarms(session, ids, settings=DEFAULT)
    assert (again.opened, again.updated, again.merged) == ([], [], [])
    assert events(session, ids) == [before]  # not even updated_at moved
    # Readings go on: one alarm seen later, and a fourth sensor joins the same event.
    session.execute(
        text("UPDATE alarm SET last_seen_at = last_seen_at + interval '1 hour' WHERE id = :id"),
        {"id": ids[0]},
    )
    extra = c.alarm(session, city, "E", at_s=1200, peak=0.25)
    grown = service.update_for_alarms(session, [ids[0], extra], settings=DEFAULT)
    assert grown.opened == []
    assert grown.updated == [before["id"]]
    [after] = events(session, [*ids, extra])
    assert after["id"] == before["id"]
    assert after["members"] == sorted([*ids, extra])
    assert after["last_ts"] == city.t0 + timedelta(minutes=70)
    n = session.execute(
        text("SELECT count(*) FROM suspected_event WHERE state = 'open' AND family = "
             "'water/hydraulic' AND ST_Intersects(area, ST_GeomFromText(:a, 4326))"),
        {"a": after["area"]},
    ).scalar_one()  # fmt: skip
    assert n == 1


def test_alarms_outside_the_window_are_not_grouped(session: Session) -> None:
    city = c.build(session, 10.78, 59.94)
    ids = c.burst(session, city)
    late = c.alarm(session, city, "E", at_s=3 * 3600, peak=0.2, level=2)  # 3 h later, same main
    service.update_for_alarms(session, [*ids, late], settings=SINGLE)
    assert [e["members"] for e in events(session, [*ids, late])] == [sorted(ids), [late]]
    # A wider window joins it (the linkage is in data time, onset to onset).
    wide = EventSettings(window_s=4 * 3600, min_sensors=1)
    session.execute(text("DELETE FROM suspected_event_alarm WHERE alarm_id = ANY(:a)"),
                    {"a": [*ids, late]})  # fmt: skip
    service.update_for_alarms(session, [*ids, late], settings=wide)
    assert [e["members"] for e in events(session, [*ids, late])] == [sorted([*ids, late])]


def test_sensors_close_in_a_line_but_far_along_the_pipes_are_apart(session: Session) -> None:
    # A U of mains: up x = 0, across y = 1000, down x = 150. Sensors at (0, 10) and (150, 10):
    # 150 m apart, 2,130 m along the pipes (> network_max_m 1,000 m).
    city = c.City(c.LocalFrame(10.79, 59.95), datetime.now(UTC).replace(microsecond=0))
    m = f.Metric(city.frame)
    pipes = [
        f.asset(session, "water_pipe", m.line(*seg))
        for seg in (((0, 0), (0, 1000)), ((0, 1000), (150, 1000)), ((150, 1000), (150, 0)))
    ]
    city.rule = f.rule(session, indicator="pressure_mpa", thresholds={"1": 0.1, "4": 0.3})
    ids = []
    for name, xy, pipe in (("L", (0.0, 10.0), pipes[0]), ("R", (150.0, 10.0), pipes[2])):
        lon, lat = m.ll(*xy)
        city.sensors[name] = f.sensor(session, "pressure_mpa", lon=lon, lat=lat, asset_id=pipe)
        city.xy[name] = xy
        ids.append(c.alarm(session, city, name, at_s=0, peak=0.1))
    service.update_for_alarms(session, ids, settings=SINGLE)
    assert [e["members"] for e in events(session, ids)] == [[ids[0]], [ids[1]]]
    # Without the network limit (a longer one), they are one event.
    session.execute(text("DELETE FROM suspected_event_alarm WHERE alarm_id = ANY(:a)"), {"a": ids})
    service.update_for_alarms(session, ids, settings=EventSettings(network_max_m=5000))
    assert [e["members"] for e in events(session, ids)][-1] == ids


def test_ended_alarms_and_device_rules_make_no_event(session: Session) -> None:
    city = c.build(session, 10.80, 59.96)
    ids = c.burst(session, city)
    session.execute(text("UPDATE alarm SET state = 'false_alarm' WHERE id = ANY(:a)"),
                    {"a": ids[1:]})  # fmt: skip
    assert service.update_for_alarms(session, ids, settings=DEFAULT).opened == []
    assert service.update_for_alarms(session, [], settings=DEFAULT).event_ids == []


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture
def committed(engine: Engine) -> tuple[c.City, list[int], int]:
    """A grouped burst, committed (the API reads in its own transactions)."""
    with Session(engine) as s, s.begin():
        city = c.build(s, 10.81, 59.97)
        ids = c.burst(s, city)
        report = service.update_for_alarms(s, ids, settings=DEFAULT)
    return city, ids, report.opened[0]


def test_the_api_lists_shows_and_closes_the_event(
    client: TestClient, anon_client: TestClient, tokens: dict[str, str],
    committed: tuple[c.City, list[int], int],
) -> None:  # fmt: skip
    city, ids, event_id = committed
    lon, lat = city.ll(300, 200)
    box = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    listed = client.get("/events", params={"state": "open", "bbox": box})
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"].startswith("application/geo+json")
    assert [ft["id"] for ft in listed.json()["features"]] == [event_id]
    since = (city.t0 + timedelta(hours=2)).isoformat()
    assert client.get("/events", params={"bbox": box, "since": since}).json()["features"] == []
    assert client.get("/events", params={"state": "nope"}).status_code == 422

    one = client.get(f"/events/{event_id}")
    assert one.status_code == 200, one.text
    doc = one.json()
    assert doc["type"] == "Feature"
    assert doc["geometry"]["type"] == "Polygon"
    props = doc["properties"]
    assert sorted(a["id"] for a in props["alarms"]) == sorted(ids)
    assert props["candidates"][0]["asset_id"] == city.target
    assert props["impact"] == {
        "scenario": "water_main_burst", "asset_id": city.target, "at": props["last_ts"],
        "href": f"/events/{event_id}/impact",
    }  # fmt: skip
    assert client.get("/events/999999999").status_code == 404

    burst = client.get(f"/events/{event_id}/impact")
    assert burst.status_code == 200, burst.text
    assert burst.json()["zones"]["features"], burst.json()

    viewer = anon_client.post(
        f"/events/{event_id}/transition", json={"to": "closed"},
        headers=f.bearer(tokens["viewer"]),
    )  # fmt: skip
    assert viewer.status_code == 403, viewer.text
    closed = anon_client.post(
        f"/events/{event_id}/transition", json={"to": "dismissed", "note": "one sensor drifted"},
        headers=f.bearer(tokens["analyst"]),
    )  # fmt: skip
    assert closed.status_code == 200, closed.text
    assert closed.json()["properties"]["state"] == "dismissed"
    assert closed.json()["properties"]["closed_by"] == "test-analyst"
    twice = client.post(f"/events/{event_id}/transition", json={"to": "closed"})
    assert twice.status_code == 409
    assert "dismissed" in twice.json()["detail"]
    assert client.post(f"/events/{event_id}/transition", json={"to": "open"}).status_code == 422
    listed = client.get("/events", params={"state": "open", "bbox": box}).json()
    assert listed["features"] == []


def test_the_readings_flow_groups_what_it_raises(client: TestClient, engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        city = c.build(s, 10.82, 59.98)
    now = datetime.now(UTC).replace(microsecond=0)

    with engine.connect() as conn:
        ext = dict(conn.execute(
            text("SELECT id, external_id FROM sensor WHERE id = ANY(:s)"),
            {"s": [city.sensors[n] for n in c.BURST]},
        ).all())  # fmt: skip
    body = [
        {"sensor": ext[city.sensors[n]], "ts": (now + timedelta(seconds=k)).isoformat(), "value": v}
        for k, (n, (_, v)) in enumerate(c.BURST.items())
    ]
    r = client.post("/readings", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["alarms"]["raised"] >= 3, r.json()
    with engine.connect() as conn:
        alarm_ids = conn.execute(
            text("SELECT id FROM alarm WHERE sensor_id = ANY(:s)"),
            {"s": [city.sensors[n] for n in c.BURST]},
        ).scalars().all()  # fmt: skip
        got = events(conn, list(alarm_ids))
    assert len(got) == 1, got
    assert got[0]["top_asset_id"] == city.target
