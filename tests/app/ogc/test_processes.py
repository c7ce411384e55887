"""OGC API – Processes under /ogc: every impact scenario as a process, listed, described and
executed over HTTP (TestClient and a real server with OWSLib), against the same computation as
POST /impact; bad input is a 400 naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests as http
from fastapi.testclient import TestClient
from openapi_spec_validator import validate as validate_openapi
from owslib.ogcapi.processes import Processes

from app.impact.params import SCENARIOS
from app.main import create_app
from app.scratch import serve_in_thread
from app.settings import Settings
from tests.app.ogc.impact_city import LAT0, LON0, City, city, requests

__all__ = ["city"]  # the module-scoped fixture: this module's own database

PROCESSES = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
#: Members of an impact document that differ between two runs of the same request.
VOLATILE = ("computed_at", "took_ms")


@pytest.fixture(scope="module")
def api(city: City, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(database_url=city.url, data_dir=tmp_path_factory.mktemp("proc"))
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def base_url(city: City, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(database_url=city.url, data_dir=tmp_path_factory.mktemp("proc-http"))
    with serve_in_thread(create_app(settings)) as base:
        yield f"{base}/ogc"


def stable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


def execute(api: TestClient, process: str, inputs: dict[str, Any], **body: Any) -> Any:
    r = api.post(f"/ogc/processes/{process}/execution", json={"inputs": inputs, **body})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_every_scenario_is_a_listed_process(api: TestClient) -> None:
    doc = api.get("/ogc/processes").json()
    assert [p["id"] for p in doc["processes"]] == list(SCENARIOS)
    for p in doc["processes"]:
        assert p["jobControlOptions"] == ["sync-execute"]
        assert {"version", "title", "links"} <= set(p)
        assert "inputs" not in p
        rels = {link["rel"]: link["href"] for link in p["links"]}
        assert rels["self"].endswith(f"/ogc/processes/{p['id']}")
        assert rels["http://www.opengis.net/def/rel/ogc/1.0/execute"].endswith("/execution")
    assert doc["links"][0]["rel"] == "self"


def test_landing_and_conformance_link_to_processes(api: TestClient) -> None:
    links = {link["rel"]: link["href"] for link in api.get("/ogc").json()["links"]}
    assert links["http://www.opengis.net/def/rel/ogc/1.0/processes"].endswith("/ogc/processes")
    assert links["http://www.opengis.net/def/rel/ogc/1.0/job-list"].endswith("/ogc/jobs")
    conforms = api.get("/ogc/conformance").json()["conformsTo"]
    for cls in ("core", "ogc-process-description", "json", "oas30"):
        assert PROCESSES + cls in conforms


def test_description_inputs_carry_schema_unit_default_and_source(api: TestClient) -> None:
    doc = api.get("/ogc/processes/vapour_cloud_explosion").json()
    assert doc["id"] == "vapour_cloud_explosion"
    assert set(doc["outputs"]) == {"result"}
    inputs = doc["inputs"]
    assert {"asset_id", "point", "at", "mass_kg", "thresholds_kpa", "steps_h"} <= set(inputs)
    mass = inputs["mass_kg"]
    assert mass["minOccurs"] == 0
    # OpenAPI 3.0's dialect: a boolean exclusiveMinimum beside minimum.
    assert mass["schema"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1e7,
        "default": 100.0,
        "x-ogc-unit": "kg",
    }
    roles = {m["role"]: m["value"] for m in mass["metadata"]}
    assert roles["unit"] == "kg"
    assert "what-if" in roles["source"]
    thresholds = inputs["thresholds_kpa"]["schema"]
    assert thresholds["items"]["exclusiveMinimum"] is True
    assert thresholds["default"] == [55.2, 24.1, 6.9]
    # An asset-only scenario requires asset_id and takes no point.
    burst = api.get("/ogc/processes/water_main_burst").json()["inputs"]
    assert burst["asset_id"]["minOccurs"] == 1
    assert "point" not in burst
    attr = api.get("/ogc/processes/gas_pipe_rupture").json()["inputs"]["diameter_mm"]
    assert {"role": "asset-attribute", "value": "diameter_mm"} in attr["metadata"]


def test_no_exclusive_minimum_is_a_number_anywhere(api: TestClient) -> None:
    def walk(node: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield k, v
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    for process in SCENARIOS:
        doc = api.get(f"/ogc/processes/{process}").json()
        for key, value in walk(doc["inputs"]):
            if key in ("exclusiveMinimum", "exclusiveMaximum"):
                assert value is True, (process, key, value)


def test_openapi_describes_processes_and_is_valid_30(api: TestClient) -> None:
    spec = api.get("/ogc/api").json()
    validate_openapi(spec)  # OpenAPI 3.0: a numeric exclusiveMinimum would fail here
    assert spec["openapi"].startswith("3.0")
    for path in ("/ogc/processes", "/ogc/processes/{process_id}", "/ogc/jobs"):
        assert "get" in spec["paths"][path]
    assert "post" in spec["paths"]["/ogc/processes/{process_id}/execution"]
    body = spec["paths"]["/ogc/processes/jet_fire/execution"]["post"]["requestBody"]
    props = body["content"]["application/json"]["schema"]["properties"]["inputs"]["properties"]
    assert props["hole_diameter_mm"]["x-ogc-unit"] == "mm"


@pytest.mark.parametrize("process", list(SCENARIOS))
def test_execute_gives_the_post_impact_document(api: TestClient, city: City, process: str) -> None:
    inputs = requests(city.ids)[process]
    target = {k: v for k, v in inputs.items() if k in ("asset_id", "point")}
    params = {k: v for k, v in inputs.items() if k not in target}
    at = "2026-11-28T10:00:00Z"  # one data time for both, so the documents can be compared
    got = execute(api, process, {**inputs, "at": at})
    r = api.post("/impact", json={"scenario": process, **target, "params": params, "at": at})
    assert r.status_code == 200, r.text
    assert stable(got) == stable(r.json())
    assert got["scenarios"][0]["id"] == process
    origins = {i["name"]: i["origin"] for i in got["inputs"]}
    assert all(origins[k] == "request" for k in params)


def test_response_document_wraps_the_result(api: TestClient, city: City) -> None:
    raw = execute(api, "gas_pipe_rupture", {"asset_id": city.ids["main"]})
    doc = execute(api, "gas_pipe_rupture", {"asset_id": city.ids["main"]}, response="document")
    assert set(doc) == {"result"}
    assert stable(doc["result"]) == stable(raw) | {"at": doc["result"]["at"]}


def test_qualified_values_and_a_geojson_point(api: TestClient) -> None:
    point = {"type": "Point", "coordinates": [LON0 + 0.001, LAT0]}
    doc = execute(
        api,
        "vapour_cloud_explosion",
        {"point": point, "mass_kg": {"value": 500}, "steps_h": [0, 1]},
    )
    used = {i["name"]: i for i in doc["inputs"]}
    assert used["mass_kg"]["value"] == 500
    assert doc["target"]["lon"] == pytest.approx(LON0 + 0.001)


@pytest.mark.parametrize(
    ("process", "body", "needle"),
    [
        ("vapour_cloud_explosion", {"inputs": {"mass_kg": -1}}, "inputs.mass_kg was -1"),
        ("vapour_cloud_explosion", {"inputs": {"mass": 1}}, "inputs mass are not inputs"),
        ("vapour_cloud_explosion", {"inputs": {"point": [1, 2, 3]}}, "inputs.point was"),
        ("vapour_cloud_explosion", {"inputs": {"point": [LON0 + 5, LAT0]}}, "outside the data"),
        ("gas_pipe_rupture", {"inputs": {"asset_id": "x"}}, "inputs.asset_id was 'x'"),
        ("gas_pipe_rupture", {"inputs": {"asset_id": 2**62}}, "is not an asset"),
        ("gas_pipe_rupture", {"inputs": {}}, "give exactly one of asset_id and point"),
        ("toxic_release", {"inputs": {"spill": "huge"}}, "inputs.spill was 'huge'"),
        ("jet_fire", {"inputs": {"thresholds_kw_m2": [5, 0]}}, "inputs.thresholds_kw_m2"),
        ("flood", {"inputs": {"at": "yesterday"}}, "inputs.at was 'yesterday'"),
        ("flood", {"inputs": {"at": "2026-11-28T10:00:00"}}, "with an offset"),
        ("flood", {"inputs": {"cascade_mode": "x"}}, "inputs.cascade_mode"),
        ("flood", {"inputs": {"coupling": 1}}, "inputs.coupling was 1"),
        ("flood", {"inputs": {"mass_kg": {"href": "http://x"}}}, "inputs mass_kg are not"),
        ("flood", {"inputs": {"depth_m": {"href": "http://x"}}}, "reference (href)"),
        ("flood", {"inputs": [], "response": "raw"}, "inputs was []"),
        ("flood", {"inputs": {}, "response": "nope"}, "response was 'nope'"),
        ("flood", {"inputs": {}, "outputs": {"zones": {}}}, "outputs.zones is not an output"),
        ("flood", {"inputs": {}, "colour": 1}, "colour: not members"),
        ("flood", [1, 2], "must be a JSON object"),
        ("flood", {"inputs": {}, "subscriber": {"successUri": "http://x"}}, "subscriber"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    api: TestClient, process: str, body: Any, needle: str
) -> None:
    r = api.post(f"/ogc/processes/{process}/execution", json=body)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["type"] == "InvalidParameterValue"
    assert doc["status"] == 400
    assert needle in doc["detail"], doc["detail"]


def test_wrong_kind_and_malformed_json(api: TestClient, city: City) -> None:
    r = api.post(
        "/ogc/processes/gas_pipe_rupture/execution",
        json={"inputs": {"asset_id": city.ids["school"]}},
    )
    assert r.status_code == 400
    assert "is a school; gas_pipe_rupture applies to gas_pipe" in r.json()["detail"]
    r = api.post(
        "/ogc/processes/flood/execution",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert "not JSON" in r.json()["detail"]


def test_unknown_process_and_jobs(api: TestClient) -> None:
    for r in (
        api.get("/ogc/processes/meteor"),
        api.post("/ogc/processes/meteor/execution", json={"inputs": {}}),
    ):
        assert r.status_code == 404
        assert r.json()["type"] == EXC + "no-such-process"
    jobs = api.get("/ogc/jobs")
    assert jobs.status_code == 200
    assert jobs.json()["jobs"] == []
    for url in ("/ogc/jobs/123", "/ogc/jobs/123/results"):
        r = api.get(url)
        assert r.status_code == 404
        assert r.json()["type"] == EXC + "no-such-job"
    r = api.get("/ogc/processes?f=html")
    assert r.status_code == 400
    assert r.json()["type"] == "InvalidParameterValue"


# -- a real server -------------------------------------------------------------------------------


def test_plain_http_list_describe_execute(base_url: str, city: City) -> None:
    listed = http.get(f"{base_url}/processes", timeout=20).json()
    assert len(listed["processes"]) == len(SCENARIOS)
    described = http.get(f"{base_url}/processes/gas_pipe_rupture", timeout=20).json()
    assert "diameter_mm" in described["inputs"]
    r = http.post(
        f"{base_url}/processes/gas_pipe_rupture/execution",
        json={"inputs": {"asset_id": city.ids["main"]}},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["zones"]["type"] == "FeatureCollection"
    r = http.post(f"{base_url}/processes/flood/execution", data=b"[", timeout=20)
    assert r.status_code == 400


def test_owslib_runs_a_process(base_url: str, city: City) -> None:
    api = Processes(base_url, timeout=60)
    assert [p["id"] for p in api.processes()] == list(SCENARIOS)
    assert api.process("jet_fire")["inputs"]["hole_diameter_mm"]["schema"]["x-ogc-unit"] == "mm"
    out = api.execute("jet_fire", inputs={"asset_id": city.ids["main"]})
    result = out["result"]  # OWSLib asks for response=document
    models = {z["properties"]["model"] for z in result["zones"]["features"]}
    assert models == {"jet_fire_point_source"}
    assert {i["name"] for i in result["inputs"]} >= {"hole_diameter_mm", "pressure_mpa"}
