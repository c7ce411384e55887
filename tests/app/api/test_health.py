"""Liveness, readiness and the documentation endpoints, served by the real app on real PostGIS."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.main import create_app
from app.scratch import free_port as closed_port
from app.scratch import scratch_database
from app.settings import Settings


def test_healthz_says_alive(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_servers_postgis(client: TestClient, engine: Engine) -> None:
    with engine.connect() as conn:
        lib = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
        dbname = conn.execute(text("SELECT current_database()")).scalar_one()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["postgis_version"] == lib
    assert body["database"] == dbname
    assert body["postgres_version"].split(".")[0].isdigit()


def test_readyz_is_503_when_the_database_port_is_closed(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"postgresql://u:secret@127.0.0.1:{closed_port()}/nowhere",
        data_dir=tmp_path,
        db_connect_timeout_s=2,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "cannot connect" in body["detail"]
    assert "secret" not in body["detail"]


def test_readyz_is_503_without_a_configured_database(tmp_path: Path) -> None:
    # No DATABASE_URL and a data directory with no local cluster in it.
    with TestClient(create_app(Settings(database_url=None, data_dir=tmp_path))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "cityrisk db up" in response.json()["detail"]


def test_readyz_is_503_when_postgis_is_missing(
    server_url: str, admin_url: str, tmp_path: Path
) -> None:
    with scratch_database(server_url, admin_url=admin_url, postgis=False) as url:
        settings = Settings(database_url=url, data_dir=tmp_path)
        with TestClient(create_app(settings)) as client:
            response = client.get("/readyz")
    assert response.status_code == 503
    assert "no PostGIS extension" in response.json()["detail"]


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "cityrisk"
    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_start_page_is_html(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "cityrisk" in response.text
