"""The impact engine on a small city with known answers, through the HTTP API.

The city (its own region, far from every other test's rows):

- a 300 mm, 1.6 MPa gas main along y = 0 with a school 30 m north of it (inside its PIR,
  0.0997 · 300 · √1.6 = 37.8 m);
- drains: an "L" from the main's west end: 100 m north, then 200 m east; a manhole at the far
  end (120 m from the main's east end in a straight line, 300 m along the drains);
- a water network: a loop of four mains around a block with a valve near each corner on one
  pipe, a branch to a hospital, a pump station feeding the loop; the hospital is fed by a
  substation (buffer 24 h), the pump station too (no buffer);
- a chemical plant storing chlorine, a wind sensor that says the wind blows from the north.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.impact.networks import pipe_system, region_of
from app.sensors import partitions
from gis.consequence import pir_m
from gis.frames import LocalFrame
from tests import factories as f

LON0, LAT0 = 20.1, 50.1
FRAME = LocalFrame(LON0, LAT0)
SOURCE = "impact-test"


METRIC = f.Metric(FRAME)
ll, line, pt = METRIC.ll, METRIC.line, METRIC.pt


@dataclass(frozen=True)
class City:
    ids: dict[str, int]


@pytest.fixture(scope="module")
def city(engine: Engine) -> Iterator[City]:
    ids: dict[str, int] = {}
    with Session(engine) as s:
        partitions.ensure(s, partitions.days_ahead())  # today's partition, for the wind reading
    with engine.begin() as c:

        def a(key: str, kind: str, wkt: str, **attrs: Any) -> None:
            ids[key] = f.asset(
                c, kind, wkt, source=SOURCE, external_id=f"{SOURCE}-{key}", name=key, **attrs
            )

        a("main", "gas_pipe", line((0, 0), (300, 0)), diameter_mm=300, pressure_mpa=1.6)
        a("school", "school", pt(150, 30))
        a("far_school", "school", pt(150, 300))
        a("gas_hydrant", "hydrant", pt(200, 5))  # beside the gas main: a water asset
        # Two more mains with rows of buildings 20 m off (inside the 37.8 m PIR), no sites:
        # 19 occupied + 3 unoccupied (not an HCA), and 20 occupied (an HCA by buildings).
        for key, y, occupied, empty in (("main_19", -1000, 19, 3), ("main_20", -2000, 20, 0)):
            a(key, "gas_pipe", line((0, y), (300, y)), diameter_mm=300, pressure_mpa=1.6)
            for i in range(occupied + empty):
                a(f"{key}_b{i}", "building", pt(10 + 12 * i, y - 20), human_occupancy=i < occupied)
        a("block", "population_cell", f.square(*ll(150, 50), 0.002, 0.0006), population=500)
        a("drain1", "drainage_pipe", line((0, 0), (0, 100)), diameter_mm=600)
        a("drain2", "drainage_pipe", line((0, 100), (200, 100)), diameter_mm=600)
        a("mh_main", "manhole", pt(0, 3))  # on the drain, 3 m from the gas main
        a("mh_near", "manhole", pt(0, 100))
        a("mh_far", "manhole", pt(200, 100))  # 120 m from (300, 0)... along the drains 300 m
        # Water: a square loop 1000 m east, corners W1..W4, a branch to the hospital.
        x0 = 1000.0
        corners = [(x0, 0), (x0 + 200, 0), (x0 + 200, 200), (x0, 200)]
        for i in range(4):
            a(f"w{i}", "water_pipe", line(corners[i], corners[(i + 1) % 4]), diameter_mm=300)
        a("w_branch", "water_pipe", line((x0 + 200, 200), (x0 + 200, 400)), diameter_mm=150)
        a("hospital", "hospital", pt(x0 + 230, 400))
        a("pump", "pump_station", pt(x0 - 20, 0))
        # Valves: on w0 near both ends, on w2 near both ends: a break on w0 is shut by two.
        a("v0a", "valve", pt(x0 + 10, 0), network="water")
        a("v0b", "valve", pt(x0 + 190, 0), network="water")
        a("v2a", "valve", pt(x0 + 190, 200), network="water")
        a("v2b", "valve", pt(x0 + 10, 200), network="water")
        a("vb", "valve", pt(x0 + 200, 210), network="water")  # on the branch, near the loop
        a("sub", "substation", pt(x0 + 100, -300))
        a("sub2", "substation", pt(x0 - 300, 0))
        a(
            "plant",
            "chemical_plant",
            pt(3000, 0),
            chemicals="chlorine;sodium hydroxide",
            quantity_t=50,
        )
        c.execute(
            text(
                "INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, delay_h, "
                "buffer_h) VALUES (:s, :h, 'physical', 'imported', 0, 24), "
                "(:s2, :p, 'physical', 'imported', 0, 0)"
            ),
            {"s": ids["sub"], "h": ids["hospital"], "p": ids["pump"], "s2": ids["sub2"]},
        )
        wind = f.sensor(c, "wind_dir_deg", lon=ll(3000, 500)[0], lat=ll(3000, 500)[1])
        c.execute(
            text("INSERT INTO reading (sensor_id, ts, value) VALUES (:s, :t, 0.0)"),
            {"s": wind, "t": datetime.now(UTC) - timedelta(minutes=10)},
        )
        ids["wind"] = wind
        rule = f.rule(c, indicator="ch4_pct_lel")
        at = ll(0, 3)
        sensor = f.sensor(c, "ch4_pct_lel", lon=at[0], lat=at[1], asset_id=ids["mh_main"])
        ids["ch4_alarm"] = f.alarm(
            c, rule, sensor_id=sensor, asset_id=ids["mh_main"], lon=at[0], lat=at[1]
        )
        prule = f.rule(c, indicator="pressure_mpa", thresholds={"1": 0.1})
        psensor = f.sensor(
            c, "pressure_mpa", lon=ll(x0 + 100, 0)[0], lat=ll(x0 + 100, 0)[1], asset_id=ids["w0"]
        )
        ids["burst_alarm"] = f.alarm(
            c,
            prule,
            sensor_id=psensor,
            asset_id=ids["w0"],
            lon=ll(x0 + 100, 0)[0],
            lat=ll(x0 + 100, 0)[1],
        )
        ids["rules"] = rule[0]
        ids["prule"] = prule[0]
        ids["sensors"] = sensor
        ids["psensor"] = psensor
    assert region_of(*ll(0, 0)) == region_of(*ll(3000, 400))  # one region
    yield City(ids)
    with engine.begin() as c:
        c.execute(
            text("DELETE FROM incident WHERE alarm_id = ANY(:a) OR title LIKE 'impact-test%'"),
            {"a": [ids["ch4_alarm"], ids["burst_alarm"]]},
        )
        c.execute(
            text("DELETE FROM alarm WHERE id = ANY(:a)"),
            {"a": [ids["ch4_alarm"], ids["burst_alarm"]]},
        )
        c.execute(text("DELETE FROM rule WHERE id = ANY(:r)"), {"r": [ids["rules"], ids["prule"]]})
        c.execute(text("DELETE FROM reading WHERE sensor_id = :s"), {"s": ids["wind"]})
        c.execute(
            text("DELETE FROM sensor WHERE id = ANY(:s)"),
            {"s": [ids["wind"], ids["sensors"], ids["psensor"]]},
        )
        c.execute(text("DELETE FROM asset WHERE source = :s"), {"s": SOURCE})


def impact(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/impact", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def inputs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in doc["inputs"]}


def test_gas_rupture_pir_hca_and_inputs(client: TestClient, city: City) -> None:
    doc = impact(client, scenario="gas_pipe_rupture", asset_id=city.ids["main"])
    (zone,) = [z for z in doc["zones"]["features"] if z["properties"]["model"].startswith("gas")]
    p = zone["properties"]
    assert p["radius_m"] == pytest.approx(pir_m(1.6, 300), abs=0.1)
    assert "ASME B31.8S" in p["source"]
    assert [s["name"] for s in p["exposure"]["sites"]] == ["school"]  # the far one is out
    assert doc["high_consequence_area"]["is_hca"] is True
    used = inputs(doc)
    assert used["diameter_mm"] == {
        "scenario": "gas_pipe_rupture",
        "name": "diameter_mm",
        "value": 300,
        "unit": "mm",
        "origin": "asset attribute diameter_mm",
    }
    assert used["steps_h"]["value"] == [0, 1, 6, 24]
    # Given in the request, the request wins and says so.
    doc = impact(
        client, scenario="gas_pipe_rupture", asset_id=city.ids["main"], params={"pressure_mpa": 0.4}
    )
    assert inputs(doc)["pressure_mpa"]["origin"] == "request"


def test_twenty_occupied_buildings_make_a_high_consequence_area(
    client: TestClient, city: City
) -> None:
    """49 CFR 192.903 method (2): 20 or more buildings intended for human occupancy."""
    for key, counted, is_hca in (("main_19", 19, False), ("main_20", 20, True)):
        doc = impact(client, scenario="gas_pipe_rupture", asset_id=city.ids[key])
        features = doc["zones"]["features"]
        (zone,) = [z for z in features if z["properties"]["model"].startswith("gas")]
        assert zone["properties"]["exposure"]["counts"]["building"] == counted
        assert zone["properties"]["exposure"]["sites"] == []
        assert doc["high_consequence_area"]["is_hca"] is is_hca, key


def test_each_network_binds_only_its_own_demands(engine: Engine, city: City) -> None:
    """A hydrant beside a gas main draws water, not gas; a school draws both."""
    with Session(engine) as s:
        gas = pipe_system(s, "gas", shapely.Point(*ll(0, 0)))
    assert gas is not None
    assert gas.demands is not None
    bound = set(gas.demands.point_ids.tolist())
    assert city.ids["school"] in bound
    assert city.ids["gas_hydrant"] not in bound


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"scenario": "meteor", "point": [LON0, LAT0]}, "scenario was 'meteor'"),
        (
            {
                "scenario": "vapour_cloud_explosion",
                "point": [LON0, LAT0],
                "params": {"mass_kg": -1},
            },
            "params.mass_kg was -1",
        ),
        (
            {"scenario": "vapour_cloud_explosion", "point": [LON0, LAT0], "params": {"mass": 10}},
            "params mass are not parameters",
        ),
        ({"scenario": "vapour_cloud_explosion", "point": [LON0 + 5, LAT0]}, "outside the data"),
        ({"scenario": "gas_pipe_rupture", "point": [LON0, LAT0]}, "diameter_mm is needed"),
        ({"scenario": "water_main_burst", "point": [LON0, LAT0]}, "give asset_id, not point"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, city: City, body: dict[str, Any], needle: str
) -> None:
    r = client.post("/impact", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.text


def test_wrong_kind_and_unknown_asset(client: TestClient, city: City) -> None:
    r = client.post(
        "/impact", json={"scenario": "gas_pipe_rupture", "asset_id": city.ids["school"]}
    )
    assert r.status_code == 422
    assert "is a school; gas_pipe_rupture applies to gas_pipe" in r.text
    r = client.post("/impact", json={"scenario": "asset_failure", "asset_id": 2**62})
    assert r.status_code == 404


def test_gas_migration_follows_the_drains_not_the_crow(client: TestClient, city: City) -> None:
    """The far manhole is 100 m from the leaking main in a straight line but 300 m along the
    drains: outside a 250 m reach, inside a 350 m one (the issue's Qingdao/Kaohsiung test)."""
    main = city.ids["main"]
    crow = shapely.Point(*FRAME.to_local(*ll(200, 100))).distance(
        shapely.LineString([FRAME.to_local(*ll(0, 0)), FRAME.to_local(*ll(300, 0))])
    )
    assert crow == pytest.approx(100, abs=0.5)
    near = impact(client, scenario="gas_migration", asset_id=main, params={"reach_m": 250})
    migration = near["details"]["migration"]
    reached = {s["id"]: s["network_distance_m"] for s in migration["reached_spaces"]}
    assert city.ids["mh_main"] in {s["id"] for s in migration["adjacent_spaces"]}
    assert reached[city.ids["mh_near"]] == pytest.approx(100, abs=2)
    assert city.ids["mh_far"] not in reached
    far = impact(client, scenario="gas_migration", asset_id=main, params={"reach_m": 350})
    reached = {
        s["id"]: s["network_distance_m"] for s in far["details"]["migration"]["reached_spaces"]
    }
    assert reached[city.ids["mh_far"]] == pytest.approx(300, abs=2)
    assert far["details"]["explosive_mass_kg"] > 0
    assert any(a["rule"] == "ventilate_reached_spaces" for a in far["actions"])


def test_water_burst_isolation_cut_off_and_cascade(client: TestClient, city: City) -> None:
    doc = impact(client, scenario="water_main_burst", asset_id=city.ids["w0"])
    iso = doc["details"]["isolation_water"]
    assert sorted(iso["valves_to_close"]) == sorted([city.ids["v0a"], city.ids["v0b"]])
    assert iso["segment_pipes"] == [city.ids["w0"]]
    assert iso["cut_off"] == []  # the loop still feeds the rest
    assert any(a["rule"] == "isolate_segment" for a in doc["actions"])
    # A valve that fails to close: the segment grows past it.
    bigger = impact(
        client,
        scenario="water_main_burst",
        asset_id=city.ids["w0"],
        params={"failed_valves": [city.ids["v0b"]]},
    )
    assert len(bigger["details"]["isolation_water"]["segment_pipes"]) > 1


def test_a_substation_outage_cascades_in_time(client: TestClient, city: City) -> None:
    """The hospital runs on its generator for 24 h (buffer_h), then fails."""
    doc = impact(client, scenario="asset_failure", asset_id=city.ids["sub"])
    steps = {s["at_h"]: s for s in doc["cascade"]["steps"]}
    assert city.ids["hospital"] not in {a["id"] for a in steps[0]["newly_failed"]}
    assert city.ids["hospital"] in {a["id"] for a in steps[6]["on_buffer"]}
    failed = next(a for a in steps[24]["newly_failed"] if a["id"] == city.ids["hospital"])
    assert failed["fail_at_h"] == 24
    assert "24 h buffer" in failed["explanation"]


def test_power_to_pumps_to_water_to_the_hospital(client: TestClient, city: City) -> None:
    """Both directions of coupling: the pump needs power, the hospital needs the pump's water."""
    doc = impact(client, scenario="asset_failure", asset_id=city.ids["sub2"])
    (step0,) = [s for s in doc["cascade"]["steps"] if s["at_h"] == 0]
    failed = {a["id"]: a for a in step0["newly_failed"]}
    assert city.ids["pump"] in failed
    assert city.ids["hospital"] in failed
    assert "water" in failed[city.ids["hospital"]]["explanation"]
    assert city.ids["hospital"] in step0["unserved"]["water"]


def test_leontief_mode_gives_steady_state_inoperability(client: TestClient, city: City) -> None:
    doc = impact(
        client, scenario="asset_failure", asset_id=city.ids["sub"], cascade_mode="leontief"
    )
    q = {a["id"]: a["q"] for a in doc["cascade"]["inoperability"]}
    assert q[city.ids["sub"]] == 1.0  # hit directly
    assert q[city.ids["hospital"]] == pytest.approx(0.5)  # one supplier, coupling 0.5
    assert any("spectral radius" in n for n in doc["notes"])


def test_toxic_release_takes_the_live_wind(client: TestClient, city: City) -> None:
    doc = impact(client, scenario="toxic_release", asset_id=city.ids["plant"])
    used = inputs(doc)
    assert used["chemical"]["value"] == "chlorine"
    assert used["wind_dir_deg"]["origin"].startswith("reading of sensor")
    square = next(
        z for z in doc["zones"]["features"] if z["properties"]["model"] == "erg_protective_action"
    )
    assert square["properties"]["downwind_bearing_deg"] == 180.0
    plant_lat = ll(3000, 0)[1]
    assert shape(square["geometry"]).bounds[3] == pytest.approx(plant_lat, abs=1e-6)  # south
    assert "ERG 2016" in square["properties"]["source"]
    # Without a reading and without wind_dir_deg: a 422 that says what is missing.
    r = client.post(
        "/impact",
        json={
            "scenario": "toxic_release",
            "asset_id": city.ids["plant"],
            "at": "2020-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 422
    assert "params.wind_dir_deg is needed" in r.text


def test_explosion_rings_worked_values(client: TestClient, city: City) -> None:
    doc = impact(
        client, scenario="vapour_cloud_explosion", point=list(ll(150, 0)), params={"mass_kg": 1000}
    )
    radii = sorted(z["properties"]["radius_m"] for z in doc["zones"]["features"])
    assert radii == pytest.approx([35, 58, 147], rel=0.02)  # impact-models.md: 1 t methane
    centre = shapely.Point(*ll(150, 0))
    for z in doc["zones"]["features"]:
        assert shape(z["geometry"]).contains(centre)


def test_alarm_impact_is_inferred_and_explained(client: TestClient, city: City) -> None:
    gas = client.get(f"/alarms/{city.ids['ch4_alarm']}/impact")
    assert gas.status_code == 200, gas.text
    body = gas.json()
    assert [s["id"] for s in body["scenarios"]] == ["gas_migration"]
    assert f"gas main {city.ids['main']} within 10 m" in body["scenarios"][0]["why"]
    burst = client.get(f"/alarms/{city.ids['burst_alarm']}/impact").json()
    assert [s["id"] for s in burst["scenarios"]] == ["water_main_burst"]
    assert burst["target"]["asset_id"] == city.ids["w0"]


def test_incident_from_an_alarm_is_stored_with_its_zones(
    client: TestClient, city: City, engine: Engine, tokens: dict[str, str]
) -> None:
    r = client.post(
        "/incidents",
        json={"alarm_id": city.ids["burst_alarm"]},
        headers={**f.bearer(tokens["commander"]), "X-Actor": "engine"},  # X-Actor is not read
    )
    assert r.status_code == 201, r.text
    inc = r.json()
    assert (inc["alarm_id"], inc["status"], inc["created_by"]) == (
        city.ids["burst_alarm"],
        "open",
        "test-commander",
    )
    with engine.connect() as c:
        n = c.execute(
            text("SELECT count(*) FROM incident_zone WHERE incident_id = :i"), {"i": inc["id"]}
        ).scalar_one()
    assert n == len(inc["results"]["zones"]["features"]) >= 3
    listed = client.get("/incidents").json()
    assert inc["id"] in [i["id"] for i in listed]
    zones = client.get(f"/incidents/{inc['id']}/zones")
    assert zones.headers["content-type"] == "application/geo+json"
    again = client.post(f"/incidents/{inc['id']}/recompute", json={})
    assert again.status_code == 200
    assert again.json()["computed_at"] >= inc["computed_at"]


def test_junction_assets_are_neither_customers_nor_change_the_network(session: Session) -> None:
    """A water network imported with its EPANET junctions: the burst isolates and cuts off the
    same as without them, and no junction is listed as a customer."""
    from app.impact.service import ScenarioCall, compute

    m = f.Metric(LocalFrame(30.1, 50.1))  # a region of its own
    ids: dict[str, int] = {}
    ids["pump"] = f.asset(session, "pump_station", m.pt(-20, 0))
    ids["w_a"] = f.asset(session, "water_pipe", m.line((0, 0), (200, 0)), diameter_mm=300)
    ids["w_b"] = f.asset(session, "water_pipe", m.line((200, 0), (400, 0)), diameter_mm=200)
    ids["valve"] = f.asset(session, "valve", m.pt(10, 0), network="water")
    ids["hospital"] = f.asset(session, "hospital", m.pt(400, 30))
    nodes = [
        f.asset(session, "junction", m.pt(x, 0), network="water", elevation_m=10.0)
        for x in (0, 200, 400)
    ]
    system = pipe_system(session, "water", shapely.Point(*m.ll(0, 0)))
    assert system is not None
    assert sorted(system.network.pipe_ids.tolist()) == [ids["w_a"], ids["w_b"]]
    assert system.demands is not None
    assert system.demands.point_ids.tolist() == [ids["hospital"]]
    assert set(system.kinds.values()) == {"hospital"}

    doc = compute(session, [ScenarioCall("water_main_burst")], asset_id=ids["w_a"])
    cut = doc["details"]["isolation_water"]["cut_off"]
    assert cut == [{"id": ids["hospital"], "kind": "hospital"}]
    # the zones around the break hold a junction (x = 0, 200): not counted as exposed
    assert "junction" not in doc["exposure"]["counts"]
    assert not {a["id"] for a in doc["exposure"]["infrastructure"]} & set(nodes)
