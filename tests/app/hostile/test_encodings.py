"""Non-UTF-8 text, as Chinese GIS and spreadsheet exports write it (GBK / GB18030): read when
the encoding is named, a 422 that says how to name it when it is not."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests import factories as f

ASSETS_CSV = (
    "external_id,name,lon,lat\nenc-h1,人民路消火栓 1 号,117.28,31.86\nenc-h2,长江路,117.29,31.87\n"
)


def _import(client: TestClient, body: bytes, **data: str) -> object:
    return client.post(
        "/assets/import",
        files={"file": ("hydrants.csv", body, "text/csv")},
        data={"kind": "hydrant", "id_field": "external_id", "crs": "EPSG:4326",
              "source": "enc-test", **data},
    )  # fmt: skip


def test_a_gbk_csv_imports_with_its_encoding_and_says_how_without(
    client: TestClient, engine: Engine
) -> None:
    gbk = ASSETS_CSV.encode("gbk")
    refused = _import(client, gbk)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "not valid utf-8" in detail
    assert "encoding=gb18030" in detail
    ok = _import(client, gbk, encoding="gb18030")
    assert ok.status_code == 200, ok.text
    with engine.begin() as c:
        names = c.execute(
            text("SELECT name FROM asset WHERE source = 'enc-test' ORDER BY external_id")
        ).scalars()
        assert list(names) == ["人民路消火栓 1 号", "长江路"]
        c.execute(text("DELETE FROM asset WHERE source = 'enc-test'"))
    unknown = _import(client, gbk, encoding="klingon-8")
    assert unknown.status_code == 422
    assert "klingon-8" in unknown.json()["detail"]


def test_a_gbk_readings_csv_is_read_with_its_charset(client: TestClient, engine: Engine) -> None:
    with engine.begin() as c:
        sensor = f.sensor(c, "ponding_cm", external_id="积水-长江路-1")
    ts = datetime.now(UTC).replace(microsecond=0).isoformat()
    body = f"sensor,ts,value\n积水-长江路-1,{ts},3.5\n".encode("gb18030")
    refused = client.post("/readings", content=body, headers={"Content-Type": "text/csv"})
    assert refused.status_code == 422, refused.text
    assert "charset=gb18030" in refused.json()["detail"]
    ok = client.post(
        "/readings", content=body, headers={"Content-Type": "text/csv; charset=gb18030"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 1
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM reading WHERE sensor_id = :s"), {"s": sensor})
        assert n.scalar_one() == 1
