"""The demo city shows every scenario: each replayed incident raises an alarm whose impact a
commander can use (`GET /alarms/{id}/impact`), on the real demo data and the default rules.

The demo is loaded into a throwaway database with the default rule pack, the ``demo`` replay
is planned over the two hours before now (all five incidents), and its readings are ingested
through the same flow as ``POST /readings`` (store → rules → rescore), batch by batch in
simulated time. Only the readings of the sensors an incident touches and of the weather
station are sent: the other 1,600 sensors' baselines raise no alarm (the flatline and offline
rules aside) and would only make the test slower. Then each incident's alarm is asked for its
impact over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app import migrations
from app.alarms import rules
from app.db import create_db_engine, make_sessionmaker
from app.flows import demo
from app.flows.readings import ingest_payload
from app.main import create_app
from app.replay.fleet import Fleet, load_fleet
from app.replay.readings import Readings, generate
from app.replay.scenarios import DEMO_WINDOWS, Plan, plan_scenario
from app.scratch import scratch_database
from app.settings import Settings

SPAN_S = 7200
BATCH_S = 300
WEATHER = ("wind_speed_ms", "wind_dir_deg")
# The scenario each incident's alarm calls for (infer_from_alarm).
EXPECTED_SCENARIO = {
    "gas-leak": "gas_migration",
    "water-burst": "water_main_burst",
    "bridge-strain": "asset_failure",
    "flood-rain": "flood",
    "chemical-release": "toxic_release",
}


@dataclass
class Replayed:
    url: str
    plan: Plan
    alarms: dict[str, list[dict[str, Any]]]  # incident type -> alarms on its sensors/assets
    wind_sensor: str


def _subset(readings: Readings, keep: np.ndarray) -> Readings:
    rows = keep[readings.sensor]
    return Readings(readings.sensor[rows], readings.ts[rows], readings.value[rows])


@pytest.fixture(scope="module")
def replayed(
    server_url: str, admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replayed]:
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        engine = create_db_engine(url, pool_size=2)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                demo.load(session)
                rules.load(session, rules.default_pack(), actor="test")
            now = int(datetime.now(UTC).timestamp())
            start = now - SPAN_S - 60  # ends a minute before now: the ingest takes all of it
            with make_sessionmaker(engine)() as session, session.begin():
                fleet: Fleet = load_fleet(session, 1)
                plan = plan_scenario(session, fleet, "demo", start, start + SPAN_S, 1)
            keep = np.isin(fleet.kind, WEATHER)
            for incident in plan.incidents:
                for effect in incident.effects:
                    keep[effect.sensors] = True
            wind = str(fleet.external_id[np.flatnonzero(fleet.kind == "wind_dir_deg")[0]])
            for a in range(plan.start, plan.end, BATCH_S):
                batch = _subset(generate(fleet, plan, a, min(a + BATCH_S, plan.end)), keep)
                with make_sessionmaker(engine)() as session, session.begin():
                    report = ingest_payload(
                        session, batch.ndjson(fleet), "application/x-ndjson", now=datetime.now(UTC)
                    )
                    assert report.accepted == len(batch), report
            alarms: dict[str, list[dict[str, Any]]] = {}
            with engine.connect() as conn:
                for incident in plan.incidents:
                    sensors = [int(fleet.id[p]) for e in incident.effects for p in e.sensors]
                    assets = [int(a["id"]) for a in incident.assets]
                    rows = conn.execute(
                        text(
                            "SELECT a.id, a.level, r.code, s.kind AS indicator, s.external_id "
                            "FROM alarm a JOIN rule r ON r.id = a.rule_id "
                            "LEFT JOIN sensor s ON s.id = a.sensor_id "
                            "WHERE (a.sensor_id = ANY(:s) OR a.asset_id = ANY(:a)) "
                            "AND r.kind NOT IN ('offline', 'flatline', 'spike') "
                            "ORDER BY a.level, a.id"
                        ),
                        {"s": sensors, "a": assets},
                    ).mappings()
                    alarms[incident.type] = [dict(r) for r in rows]
        finally:
            engine.dispose()
        yield Replayed(url, plan, alarms, wind)


@pytest.fixture(scope="module")
def api(replayed: Replayed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        database_url=replayed.url,
        data_dir=tmp_path_factory.mktemp("data"),
        mqtt_consumer=False,
        offline_check_s=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.slow
def test_the_demo_replay_stages_all_five_incidents(replayed: Replayed) -> None:
    assert [i.type for i in replayed.plan.incidents] == list(DEMO_WINDOWS)
    assert replayed.plan.notes == []


@pytest.mark.slow
@pytest.mark.parametrize("incident", list(EXPECTED_SCENARIO))
def test_every_incident_raises_an_alarm_with_a_commander_useful_impact(
    replayed: Replayed, api: TestClient, incident: str
) -> None:
    alarms = replayed.alarms[incident]
    assert alarms, f"{incident}: no alarm was raised"
    alarm = alarms[0]  # the most severe
    answer = api.get(f"/alarms/{alarm['id']}/impact")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert [s["id"] for s in doc["scenarios"]] == [EXPECTED_SCENARIO[incident]]
    zones = doc["zones"]["features"]
    assert zones, f"{incident}: no zones"
    assert all(z["geometry"]["coordinates"] for z in zones)
    assert doc["actions"], f"{incident}: no actions for the commander"
    if incident == "gas-leak":
        assert doc["details"]["migration"]["adjacent_spaces"]  # the manholes gas can enter
    elif incident == "water-burst":
        isolation = doc["details"]["isolation_water"]
        assert isolation["valves_to_close"]
        assert not isolation["is_fallback"]
        assert isolation["sources_known"]  # pump stations bound: who is cut off is traced
        assert isolation["segment_length_m"] > 0
    elif incident == "bridge-strain":
        assert doc["cascade"]["initial"][0]["kind"] == "bridge"
    elif incident == "flood-rain":
        assert zones[0]["properties"]["model"] == "flood_extent"
    elif incident == "chemical-release":
        models = {z["properties"]["model"] for z in zones}
        assert models == {"erg_isolation", "erg_protective_action"}
        origins = {i["name"]: i["origin"] for i in doc["inputs"]}
        assert replayed.wind_sensor in origins["wind_dir_deg"]  # the live wind turned it
        assert "chemical" in origins  # which gas: from the detector's indicator
        assert doc["exposure"]["residents"] > 0  # people in the protective-action square
