"""Readings are bounded per batch, and an error report lists the first rejections only.

A 10 MB CSV of bad rows made a 239 MB answer (every rejection listed, rendered on the event
loop: a 12 s stall for every other client) and 2.5 GB RSS before these limits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.flows.readings import ingest_payload
from app.main import create_app
from app.scratch import scratch_token
from app.settings import LimitSettings, Settings

CSV = {"Content-Type": "text/csv"}


def bad_csv(n: int) -> bytes:
    return b"sensor,ts,value\n" + b"".join(
        b"nope-%d,2026-01-01T00:00:00Z,1\n" % i for i in range(n)
    )


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    """The app with small limits: 1,000 readings a batch, 10 rejections listed."""
    limits = LimitSettings(readings=1_000, rejected_listed=10)
    with app_client(settings.model_copy(update={"limits": limits})) as client:
        yield client


def app_client(settings: Settings, headers: dict[str, str] | None = None) -> TestClient:
    """A TestClient over ``settings`` (the one place this module builds one)."""
    if headers is None:  # an admin's: every write needs a token
        headers = {"Authorization": f"Bearer {scratch_token(str(settings.database_url))}"}
    return TestClient(create_app(settings), headers=headers)


def test_a_batch_over_the_limit_is_refused_before_parsing(limited: TestClient) -> None:
    answer = limited.post("/readings", content=bad_csv(1_500), headers=CSV)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "1,500 lines" in detail
    assert "1,000 readings per batch (CITYRISK_MAX_READINGS)" in detail
    as_json = limited.post("/readings", json=[{"sensor": "x", "ts": "t", "value": 1}] * 1_001)
    assert as_json.status_code == 422
    assert "1,001 readings" in as_json.json()["detail"]


def test_the_report_lists_the_first_rejections_and_counts_the_rest(limited: TestClient) -> None:
    answer = limited.post("/readings", content=bad_csv(1_000), headers=CSV)
    assert answer.status_code == 422
    body = answer.json()
    assert [r["index"] for r in body["rejected"]] == list(range(10))
    assert (body["received"], body["rejected_count"], body["rejected_unlisted"]) == (
        1000,
        1000,
        990,
    )
    assert len(answer.content) < 2_000  # was ~60 bytes a rejected row: 60 KB here


def test_the_mqtt_path_takes_the_same_limit(session: Session) -> None:
    with pytest.raises(InvalidInput, match="CITYRISK_MAX_READINGS"):
        ingest_payload(session, bad_csv(20), "text/csv", max_readings=10)
    report = ingest_payload(session, bad_csv(10), "text/csv", max_readings=10)
    assert len(report.rejected) == 10
