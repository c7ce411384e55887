"""PostgreSQL goes away and comes back: every route says 503 with ``Retry-After``, and the
service recovers by itself, with every acknowledged reading stored exactly once.

The cluster here is the test's own (initdb'ed under a temporary directory, on a free port), never
the shared one the rest of the suite uses: this test stops and starts it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.db import create_db_engine
from app.errors import database_unavailable
from app.local.cluster import LocalCluster
from app.main import create_app
from app.scratch import scratch_token
from app.settings import Settings
from tests import clusters, factories

# Routes that never touch the database: they must keep answering 200 during the outage.
DATABASE_FREE = {
    "/healthz",
    "/auth/me",  # anonymous, or a key checked within CITYRISK_AUTH_CACHE_S: answered from memory
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/start",
    "/map",
    "/layers",
    "/assets/kinds",
    "/impact/scenarios",
    "/ogc",
    "/ogc/api",
    "/ogc/conformance",
    "/ogc/processes",
    "/ogc/jobs",
    "/ogc/tileMatrixSets",
}
# Query strings some GET routes need to reach their database work (a required parameter, or an
# SSE stream that should end by itself should it ever open).
GET_QUERY = {"/alarms/stream": {"timeout_s": "1"}}


def make_client(settings: Settings, key: str) -> TestClient:
    """The app under test as an admin (``key``), answering 5xx as responses."""
    return TestClient(
        create_app(settings), raise_server_exceptions=False, headers=factories.bearer(key)
    )


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[tuple[LocalCluster, str]]:
    """A PostGIS cluster of this module's own, migrated to head: this test stops it."""
    with clusters.own_cluster("outage") as cluster:
        yield cluster, cluster.url()


def _readings(external_id: str, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"sensor": external_id, "ts": f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}Z", "value": 0.1}
        for i in range(start, start + count)
    ]


_SENSOR_FILE = (
    b'{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point",'
    b'"coordinates":[-71.11,42.37]},"properties":{"external_id":"outage-import","kind":'
    b'"ch4_pct_lel","unit":"%LEL"}}]}'
)


def _post_bodies(sensor: str) -> dict[str, dict[str, Any]]:
    """A valid request for each POST route, so that only the database can refuse it."""
    return {
        "/readings": {"json": _readings(sensor, 100, 5)},
        "/rules": {
            "json": {
                "code": "outage-ponding",
                "title": "Ponding",
                "indicator": "ponding_cm",
                "thresholds": {"4": 3, "3": 10, "2": 25},
            }
        },
        "/rules/import": {"params": {"default_pack": "true"}},
        "/rules/calibrate": {
            "json": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z"}
        },
        "/risk/refresh": {"json": {}},
        "/impact": {"json": {"scenario": "asset_failure", "asset_id": 1}},
        "/incidents": {"json": {"scenario": "asset_failure", "asset_id": 1}},
        "/alarms/{alarm_id}/transition": {"json": {"to": "verified"}},
        "/events/{event_id}/transition": {"json": {"to": "closed"}},
        "/incidents/{incident_id}/recompute": {"json": {}},
        "/assets/import": {
            "files": {"file": ("a.geojson", _SENSOR_FILE)},
            "data": {"kind": "valve"},
        },
        "/sensors/import": {"files": {"file": ("s.geojson", _SENSOR_FILE)}},
        "/ogc/processes/{process_id}/execution": {"json": {"inputs": {"asset_id": 1}}},
        "/auth/tokens": {"json": {"name": "outage-viewer", "role": "viewer"}},
        "/auth/tokens/{ident}/revoke": {},
    }


def _fill(path: str) -> str:
    return (
        path.replace("{alarm_id}", "1")
        .replace("{incident_id}", "1")
        .replace("{event_id}", "1")
        .replace("{process_id}", "asset_failure")
        .replace("{ident}", "outage-viewer")
    )


def _answer_503(response: Any) -> str | None:
    """None if ``response`` is an honest 503, else what is wrong with it."""
    if response.status_code != 503:
        return f"{response.status_code} {response.text[:120]}"
    if not response.headers.get("retry-after", "").isdigit():
        return f"503 without a Retry-After in seconds: {dict(response.headers)}"
    return None


def test_outage_is_503_everywhere_and_the_service_recovers(
    own_cluster: tuple[LocalCluster, str], tmp_path: Path
) -> None:
    cluster, url = own_cluster
    engine = create_db_engine(url, pool_size=1)
    with engine.begin() as conn:
        external_id = factories.uid("outage")
        sensor_id = factories.sensor(conn, external_id=external_id)
    engine.dispose()
    settings = Settings(
        database_url=url,
        data_dir=tmp_path,
        mqtt_consumer=False,
        offline_check_s=0,
        db_connect_timeout_s=2,
    )
    # An admin's key, checked (and so trusted for CITYRISK_AUTH_CACHE_S) before the outage: the
    # writes then reach the database and get its 503; one checked during the outage is a 503 too.
    with make_client(settings, scratch_token(url, "admin", name="outage-admin")) as client:
        routes = [
            (method, rc.path)
            for rc in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
            for method in sorted(getattr(rc, "methods", None) or ())
            if getattr(rc, "include_in_schema", True) or rc.path in DATABASE_FREE
        ]
        gets = [p for m, p in routes if m == "GET" and "{" not in p]
        posts = [p for m, p in routes if m == "POST"]
        bodies = _post_bodies(external_id)
        assert set(posts) <= set(bodies), (
            f"give these POST routes a body: {set(posts) - set(bodies)}"
        )

        batch_a = _readings(external_id, 0, 50)
        first = client.post("/readings", json=batch_a)
        assert first.status_code == 200, first.text
        assert first.json()["accepted"] == 50
        assert client.get("/sensors").status_code == 200  # the pool holds live connections now

        cluster.down(log=lambda _: None)
        try:
            wrong: dict[str, str] = {}
            for path in gets:
                r = client.get(path, params=GET_QUERY.get(path))
                if path in DATABASE_FREE:
                    if r.status_code != 200:
                        wrong[f"GET {path}"] = f"{r.status_code}, needs no database"
                elif (problem := _answer_503(r)) is not None:
                    wrong[f"GET {path}"] = problem
            for path in posts:
                r = client.post(_fill(path), **bodies[path])
                if (problem := _answer_503(r)) is not None:
                    wrong[f"POST {path}"] = problem
            assert not wrong, wrong
            # The readings a client could not get acknowledged, and retries later.
            batch_b = _readings(external_id, 50, 50)
            refused = client.post("/readings", json=batch_b)
            assert refused.status_code == 503
            assert refused.json()["code"] == "DatabaseUnavailable"
            assert client.get("/readyz").headers["retry-after"] == refused.headers["retry-after"]
        finally:
            cluster.up(log=lambda _: None)

        # No restart of the service: it answers again by itself.
        started = time.monotonic()
        while (status := client.get("/readings/latest").status_code) != 200:
            assert status == 503
            assert time.monotonic() - started < 30, "still 503 30 s after the database came back"
            time.sleep(0.2)
        for batch in (batch_b, batch_a):  # B retried until acknowledged; A's ack assumed lost
            while (answer := client.post("/readings", json=batch)).status_code == 503:
                time.sleep(float(answer.headers["retry-after"]) / 10)
            assert answer.status_code == 200, answer.text
        assert answer.json()["duplicates"] == 50  # A again: counted, not stored again
        for path in gets:
            if path not in DATABASE_FREE:
                r = client.get(path, params=GET_QUERY.get(path))
                assert r.status_code == 200, (path, r.status_code, r.text[:200])

    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            stored, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT ts) FROM reading WHERE sensor_id = :s"),
                {"s": sensor_id},
            ).one()
    finally:
        engine.dispose()
    assert (stored, distinct) == (100, 100)


@pytest.mark.parametrize(
    ("error", "is_outage"),
    [
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.errors.TooManyConnections("too many clients already"), True),
        (psycopg.OperationalError("connection refused"), True),  # no SQLSTATE: the client's
        (psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), False),
        (psycopg.errors.NumericValueOutOfRange("bigint out of range"), False),
    ],
)
def test_only_connection_level_failures_are_outages(error: Exception, is_outage: bool) -> None:
    seen: tuple[Exception, ...] = (error,)
    if isinstance(error, psycopg.Error):  # as SQLAlchemy raises it, too
        seen += (sa_exc.DBAPIError.instance("SELECT 1", {}, error, psycopg.Error),)
    for exc in seen:
        assert (database_unavailable(exc) is not None) is is_outage, (type(exc), error)
