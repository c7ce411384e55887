"""The cross-domain flows keep risk scores current: an import, an offline check, the demo.

Each write that changes what a score reads ends with a rescore in the same transaction, so no
reader ever sees new assets with old scores (or scores of assets that are not there yet).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.assets.importer import ImportOptions
from app.flows import alarms as alarm_flows
from app.flows.assets import import_assets
from app.risk import refresh
from app.risk.explain import asset_components
from tests import factories as f

SOURCE = "flows-test"
LON, LAT = 10.5, 45.5  # far from every other test's city: cells of our own


@pytest.fixture
def cleanup(engine: Engine) -> Iterator[None]:
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM asset WHERE source LIKE 'flows-test%'"))


def mains(*features: tuple[str, float, int]) -> bytes:
    """Gas mains ``(external_id, pressure MPa, diameter mm)`` side by side near (LON, LAT)."""
    return json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [[LON, LAT + i * 0.001], [LON + 0.002, LAT + i * 0.001]],
                    },
                    "properties": {
                        "external_id": eid,
                        "pressure_mpa": p,
                        "diameter_mm": d,
                        "material": "cast_iron",
                        "install_year": 1950,
                    },
                }
                for i, (eid, p, d) in enumerate(features)
            ],
        }
    ).encode()


def upload(client: TestClient, body: bytes, **form: Any) -> Any:
    response = client.post(
        "/assets/import",
        files={"file": ("mains.geojson", body, "application/geo+json")},
        data={"kind": "gas_pipe", "source": SOURCE, **form},
    )
    assert response.status_code == 200, response.text
    return response.json()


def ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT external_id, id FROM asset WHERE source = :s"), {"s": SOURCE}
        )
        return {r.external_id: r.id for r in rows}


@pytest.mark.usefixtures("cleanup")
def test_an_upload_leaves_every_asset_scored_and_a_reimport_rescores_nothing(
    client: TestClient, engine: Engine
) -> None:
    report = upload(client, mains(("m1", 1.2, 300), ("m2", 0.1, 150)))
    assert any(n.startswith("risk scores refreshed") for n in report["notes"]), report["notes"]
    for asset_id in ids(engine).values():
        risk = client.get(f"/assets/{asset_id}/risk")
        assert risk.status_code == 200, risk.text
        assert risk.json()["risk_class"] in (1, 2, 3, 4)

    again = upload(client, mains(("m1", 1.2, 300), ("m2", 0.1, 150)))
    assert (again["inserted"], again["updated"]) == (0, 0)
    assert not any(n.startswith("risk scores refreshed") for n in again["notes"])


@pytest.mark.usefixtures("cleanup")
def test_a_changed_asset_is_rescored_by_its_import(client: TestClient, engine: Engine) -> None:
    upload(client, mains(("m1", 0.1, 150)))
    (asset_id,) = ids(engine).values()
    before = client.get(f"/assets/{asset_id}/risk").json()
    upload(client, mains(("m1", 1.6, 600)))  # much higher pressure, twice the diameter
    after = client.get(f"/assets/{asset_id}/risk").json()
    radius = after["components"]["consequence"]["radius_m"]
    assert radius > before["components"]["consequence"]["radius_m"]
    assert radius == pytest.approx(0.0997 * 600 * 1.6**0.5, rel=0.01)  # ASME B31.8S PIR


@pytest.mark.usefixtures("cleanup")
def test_a_dry_run_scores_nothing(client: TestClient, engine: Engine) -> None:
    report = upload(client, mains(("m1", 1.2, 300)), dry_run="true")
    assert not any(n.startswith("risk scores refreshed") for n in report["notes"])
    assert ids(engine) == {}


def test_import_flow_in_the_callers_transaction(session: Session, tmp_path: Path) -> None:
    """The flow flushes and never commits: a rollback takes the assets and their scores."""
    path = tmp_path / "mains.geojson"
    path.write_bytes(mains(("t1", 0.4, 200)))
    report = import_assets(session, path, ImportOptions(kind="gas_pipe", source=SOURCE + "-tx"))
    assert report.written
    assert report.inserted == 1
    scored = session.execute(
        text(
            "SELECT count(*) FROM risk_score r JOIN asset a ON a.id = r.asset_id "
            "WHERE r.scope = 'asset' AND a.source = :s"
        ),
        {"s": SOURCE + "-tx"},
    ).scalar_one()
    assert scored == 1


def test_an_offline_alarm_rescores_its_asset(session: Session) -> None:
    """The offline timer's alarms move scores like any other alarm (they used not to)."""
    main = f.asset(session, "gas_pipe", f"LINESTRING({LON} {LAT}, {LON + 0.001} {LAT})",
                   pressure_mpa=0.4, diameter_mm=200)  # fmt: skip
    sensor = f.sensor(session, "pressure_mpa", lon=LON, lat=LAT, asset_id=main, interval_s=60)
    session.execute(
        text(
            "INSERT INTO latest_reading (sensor_id, ts, value, received_at) "
            "VALUES (:s, :t, 0.4, :t)"
        ),
        {"s": sensor, "t": datetime.now(UTC) - timedelta(hours=2)},
    )
    session.execute(
        text(
            "INSERT INTO rule (code, version, title, kind, indicator, thresholds, conditions) "
            "VALUES (:c, 1, 'silent pressure sensor', 'offline', 'pressure_mpa', "
            """'{"3": 0}'::jsonb, '{"factor": 3}'::jsonb)"""
        ),
        {"c": f.uid("test-offline")},
    )

    refresh.refresh_all(session)

    def alarm_factor() -> float:

        return float(
            asset_components(session, [main])[main]["likelihood"]["factors"]["alarm"]["value"]
        )

    assert alarm_factor() == 1.0
    report = alarm_flows.check_offline(session)
    assert report.raised >= 1
    assert alarm_factor() > 1.0
