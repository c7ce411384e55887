"""Rules over HTTP: create, version, YAML import, errors — on the real app and database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

RULE = {
    "code": "api-ponding",
    "title": "Ponding",
    "indicator": "ponding_cm",
    "thresholds": {"4": 3, "3": 10, "2": 25},
}


@pytest.fixture(autouse=True)
def cleanup(engine: Engine) -> Iterator[None]:
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rule WHERE code LIKE 'api-%'"))


def test_create_version_and_history(client: TestClient) -> None:
    created = client.post("/rules", json=RULE)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert client.post("/rules", json=RULE).status_code == 409
    changed = client.put(f"/rules/{RULE['code']}", json={**RULE, "hysteresis": 1})
    assert changed.json()["version"] == 2
    same = client.put(f"/rules/{RULE['code']}", json={**RULE, "hysteresis": 1})
    assert same.json()["version"] == 2  # unchanged: no new version
    detail = client.get(f"/rules/{RULE['code']}").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert [v["is_current"] for v in detail["versions"]] == [False, True]
    listed = [r for r in client.get("/rules").json() if r["code"] == RULE["code"]]
    assert [r["version"] for r in listed] == [2]


def test_yaml_import_all_or_none(client: TestClient) -> None:
    yaml_body = (
        "rules:\n"
        "  - {code: api-a, title: A, indicator: ponding_cm, thresholds: {4: 3}}\n"
        "  - {code: api-b, title: B, indicator: rain_mm_h, thresholds: {3: 30, 2: 50}}\n"
    )
    ok = client.post(
        "/rules/import", content=yaml_body, headers={"content-type": "application/yaml"}
    )
    assert ok.status_code == 200, ok.text
    assert [r["code"] for r in ok.json()] == ["api-a", "api-b"]
    bad = yaml_body + "  - {code: api-c, title: C, indicator: nonsense, thresholds: {4: 1}}\n"
    refused = client.post("/rules/import", content=bad)
    assert refused.status_code == 422
    assert "rule #3 (api-c): indicator" in refused.json()["detail"]
    assert client.get("/rules/api-c").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**RULE, "thresholds": {"4": 30, "3": 10}}, 422),
        ({**RULE, "indicator": "warp"}, 422),
        ({**RULE, "colour": "red"}, 422),
        ({**RULE, "code": "BAD CODE"}, 422),
    ],
)
def test_bad_rules_are_422(client: TestClient, body: dict[str, object], status: int) -> None:
    assert client.post("/rules", json=body).status_code == status


def test_path_and_body_codes_must_agree(client: TestClient) -> None:
    assert client.put("/rules/api-x", json=RULE).status_code == 422
    assert client.post("/rules/import", content=b"{{{").status_code == 422
