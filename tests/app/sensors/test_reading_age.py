"""The oldest reading the ways in accept is a setting (CITYRISK_MAX_READING_AGE_DAYS, default
400 days, 0: none), its refusal names it, and ``POST /readings?backfill=true`` (a role that may
``readings.backfill``: admin) takes any age, on record in the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.main import create_app
from app.settings import LimitSettings, Settings
from tests import factories as f

DAY = timedelta(days=1)


def _post(client: TestClient, ts: datetime, *, sensor: str, **params: str) -> dict[str, object]:
    body = orjson.dumps([{"sensor": sensor, "ts": ts.isoformat(), "value": 1.0}])
    response = client.post(
        "/readings", content=body, params=params, headers={"content-type": "application/json"}
    )
    return {"status": response.status_code, **response.json()}


@pytest.fixture
def limited(settings: Settings, tokens: dict[str, str]) -> Iterator[TestClient]:
    """An admin client of a service with CITYRISK_MAX_READING_AGE_DAYS=30."""
    thirty = settings.model_copy(update={"limits": LimitSettings(reading_age_days=30)})
    with TestClient(create_app(thirty), headers=f.bearer(tokens["admin"])) as c:
        yield c


def test_the_age_limit_is_the_setting_and_names_it(limited: TestClient, engine: Engine) -> None:
    name = f.uid("bf-http")
    with engine.begin() as c:
        f.sensor(c, external_id=name)
    now = datetime.now(UTC)
    recent = _post(limited, now - 10 * DAY, sensor=name)
    assert (recent["status"], recent["accepted"]) == (200, 1)
    old = _post(limited, now - 40 * DAY, sensor=name)
    assert old["status"] == 422
    (rejected,) = old["rejected"]  # type: ignore[misc]
    assert rejected["reason"].startswith("ts is older than 30 days, the limit of ")
    assert "CITYRISK_MAX_READING_AGE_DAYS" in rejected["reason"]
    assert "cityrisk readings backfill" in rejected["reason"]
    # The same reading as a backfill (an admin may): stored, and on record.
    filled = _post(limited, now - 40 * DAY, sensor=name, backfill="true")
    assert (filled["status"], filled["accepted"]) == (200, 1)
    with engine.connect() as c:
        detail = c.execute(
            text(
                "SELECT detail FROM audit_event WHERE action = 'readings.backfill' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).scalar_one()
    assert detail["accepted"] == 1


def test_the_default_limit_is_400_days_and_0_is_none(
    client: TestClient, settings: Settings, tokens: dict[str, str], engine: Engine
) -> None:
    name = f.uid("bf-http")
    with engine.begin() as c:
        f.sensor(c, external_id=name)
    ancient = datetime.now(UTC) - 500 * DAY
    refused = _post(client, ancient, sensor=name)
    assert refused["status"] == 422
    assert "older than 400 days" in refused["rejected"][0]["reason"]  # type: ignore[index]
    unlimited = settings.model_copy(update={"limits": LimitSettings(reading_age_days=0)})
    with TestClient(create_app(unlimited), headers=f.bearer(tokens["admin"])) as c:
        assert _post(c, ancient, sensor=name)["accepted"] == 1


def test_a_device_may_not_backfill(anon_client: TestClient, tokens: dict[str, str]) -> None:
    response = anon_client.post(
        "/readings",
        params={"backfill": "true"},
        content=b'[{"sensor": "dev-1", "ts": "2024-01-01T00:00:00Z", "value": 1}]',
        headers={"content-type": "application/json", **f.bearer(tokens["device"])},
    )
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "Forbidden"
    assert "readings.backfill" in body["detail"]
    assert "needs admin" in body["detail"]


def test_the_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CITYRISK_MAX_READING_AGE_DAYS", "0")
    assert LimitSettings().reading_age is None
    monkeypatch.setenv("CITYRISK_MAX_READING_AGE_DAYS", "90")
    assert LimitSettings().reading_age == 90 * DAY
    monkeypatch.setenv("CITYRISK_MAX_READING_AGE_DAYS", "-1")
    with pytest.raises(ValidationError, match="reading_age_days"):
        LimitSettings()
    monkeypatch.delenv("CITYRISK_MAX_READING_AGE_DAYS")
    assert LimitSettings().reading_age == 400 * DAY


def test_the_mqtt_consumer_takes_the_setting(settings: Settings, session: Session) -> None:
    from app.api.mqtt import ReadingConsumer

    name = f.uid("bf-mqtt")
    f.sensor(session, external_id=name)
    thirty = settings.model_copy(
        update={"mqtt_url": "mqtt://u:p@127.0.0.1:1", "limits": LimitSettings(reading_age_days=30)}
    )
    old = datetime.now(UTC) - 40 * DAY
    body = orjson.dumps({"sensor": name, "ts": old.isoformat(), "value": 1.0})
    report = ReadingConsumer(thirty)._ingest_bounded(session, body, "application/x-ndjson")
    assert report.accepted == 0
    assert "CITYRISK_MAX_READING_AGE_DAYS" in report.rejected[0].reason
