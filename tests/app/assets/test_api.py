"""The asset HTTP API on a real server stack: upload imports, taxonomy, one asset with links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

SOURCE = "api-test"
EMPTY = b'{"type": "FeatureCollection", "features": []}'


@pytest.fixture
def cleanup(engine: Engine) -> Iterator[None]:
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM asset WHERE source LIKE 'api-test%'"))


def geojson(features: list[dict[str, Any]]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def pipe(eid: str, coords: list[list[float]], **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": {"external_id": eid, **props},
    }


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM asset WHERE source LIKE 'api-test%'")
            ).scalar_one()
        )


def upload(client: TestClient, body: bytes, name: str = "mains.geojson", **form: Any):  # type: ignore[no-untyped-def]
    return client.post(
        "/assets/import",
        files={"file": (name, body, "application/geo+json")},
        data={"source": SOURCE, **form},
    )


@pytest.mark.usefixtures("cleanup")
def test_upload_commits_and_reports(client: TestClient, engine: Engine) -> None:
    body = geojson(
        [
            pipe("g1", [[-71.11, 42.37], [-71.10, 42.37]], diameter_mm=300, pressure_mpa=0.4),
            pipe("g2", [[-71.11, 42.36], [-71.10, 42.36]], diameter_mm=150),
        ]
    )
    response = upload(client, body, kind="gas_pipe")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["inserted"], report["committed"], report["rejected"]) == (2, True, [])
    assert count(engine) == 2  # visible from another connection: committed
    again = upload(client, body, kind="gas_pipe").json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)


@pytest.mark.usefixtures("cleanup")
def test_rejected_rows_are_422_and_nothing_stored_is_lost(
    client: TestClient, engine: Engine
) -> None:
    good = geojson([pipe("g1", [[-71.11, 42.37], [-71.10, 42.37]], diameter_mm=300)])
    assert upload(client, good, kind="gas_pipe").status_code == 200
    bad = geojson(
        [
            pipe("g1", [[-71.11, 42.37], [-71.10, 42.37]], diameter_mm=999999),
            pipe("g3", [[-71.11, 42.35], [-71.10, 42.35]], diameter_mm=100),
        ]
    )
    response = upload(client, bad, kind="gas_pipe")
    assert response.status_code == 422
    report = response.json()
    assert report["committed"] is False
    assert report["rejected"][0]["row"] == 1
    assert "diameter_mm=999999 mm is outside" in report["rejected"][0]["reason"]
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT attributes->>'diameter_mm' FROM asset WHERE source = :s"), {"s": SOURCE}
        ).scalar_one()
    assert stored == "300"  # the earlier row is intact
    assert count(engine) == 1

    partial = upload(client, bad, kind="gas_pipe", partial="true")
    assert partial.status_code == 200
    assert partial.json()["inserted"] == 1
    assert count(engine) == 2


@pytest.mark.usefixtures("cleanup")
def test_dry_run_writes_nothing(client: TestClient, engine: Engine) -> None:
    body = geojson([pipe("d1", [[-71.11, 42.37], [-71.10, 42.37]])])
    response = upload(client, body, kind="water_pipe", dry_run="true")
    assert response.status_code == 200
    assert response.json()["inserted"] == 1
    assert response.json()["committed"] is False
    assert count(engine) == 0


@pytest.mark.parametrize(
    ("name", "body", "form", "says"),
    [
        ("mains.txt", b"x", {"kind": "gas_pipe"}, "cannot tell the format"),
        ("mains.geojson", b"\x00garbage", {"kind": "gas_pipe"}, "not a recognised GIS file"),
        ("mains.geojson", b"{}", {"kind": "spaceship"}, "unknown asset kind 'spaceship'"),
        ("mains.csv", b"a,b\n1,2\n", {"kind": "valve", "crs": "EPSG:4326"}, "CSV needs"),
        ("mains.csv", b"lon,lat\n1,2\n", {"kind": "valve"}, "declares no CRS"),
        ("m.geojson", EMPTY, {"kind": "valve", "crs": "EPSG:0"}, "is expected to be"),
        ("m.geojson", b"{}", {"kind": "valve", "map": "nonsense"}, "FILE_FIELD=ASSET_FIELD"),
    ],
)
def test_bad_uploads_are_clear_4xx(
    client: TestClient, name: str, body: bytes, form: dict[str, str], says: str
) -> None:
    response = upload(client, body, name=name, **form)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def test_missing_form_fields_are_422(client: TestClient) -> None:
    response = client.post("/assets/import", files={"file": ("a.geojson", b"{}")})
    assert response.status_code == 422


def test_taxonomy_lists_every_plate_and_kind(client: TestClient) -> None:
    body = client.get("/assets/kinds").json()
    plates = set(body["plates"])
    assert plates == {
        "lifeline",
        "public_safety",
        "production_safety",
        "natural_disaster",
        "exposure",
    }
    kinds = {k["id"]: k for k in body["kinds"]}
    assert {"gas_pipe", "manhole", "bridge", "chemical_plant", "flood_zone", "school"} <= set(kinds)
    diameter = next(a for a in kinds["gas_pipe"]["attributes"] if a["name"] == "diameter_mm")
    assert diameter["unit"] == "mm"


@pytest.mark.usefixtures("cleanup")
def test_asset_with_links(client: TestClient, engine: Engine) -> None:
    body = geojson([pipe("L1", [[-71.11, 42.37], [-71.10, 42.37]], diameter_mm=300)])
    assert upload(client, body, kind="gas_pipe").status_code == 200
    manhole = json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [-71.105, 42.37004]},
                    "properties": {"external_id": "M1", "manhole_type": "power"},
                }
            ],
        }
    ).encode()
    assert upload(client, manhole, name="m.geojson", kind="manhole").status_code == 200
    with engine.begin() as conn:
        ids = dict(
            conn.execute(
                text("SELECT external_id, id FROM asset WHERE source = :s"), {"s": SOURCE}
            ).all()
        )
        conn.execute(
            text(
                "INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, distance_m) "
                "VALUES (:a, :b, 'geographic', 'manual', 4.4)"
            ),
            {"a": ids["L1"], "b": ids["M1"]},
        )
    feature = client.get(f"/assets/{ids['L1']}").json()
    assert feature["type"] == "Feature"
    assert feature["properties"]["kind"] == "gas_pipe"
    assert feature["properties"]["diameter_mm"] == 300
    assert feature["properties"]["length_m"] == pytest.approx(823.6, abs=1.0)
    assert feature["links"][0]["direction"] == "out"
    assert feature["links"][0]["other_asset_id"] == ids["M1"]
    back = client.get(f"/assets/{ids['M1']}").json()["links"][0]
    assert (back["direction"], back["other_kind"]) == ("in", "gas_pipe")


def test_unknown_or_malformed_asset_id(client: TestClient) -> None:
    assert client.get("/assets/999999999").status_code == 404
    assert client.get("/assets/abc").status_code == 422
    assert client.get("/assets/0").status_code == 422
