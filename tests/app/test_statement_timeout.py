"""Every query an HTTP request can start runs under the server's ``statement_timeout``
(CITYRISK_MAX_STATEMENT_S), the risk refresh included; a cancelled statement is a 503 that
says which limit it hit."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.alarms import stream
from app.main import create_app
from app.scratch import scratch_token
from app.settings import LimitSettings, Settings


def app_client(settings: Settings, headers: dict[str, str] | None = None) -> TestClient:
    """A TestClient over ``settings`` (the one place this module builds one)."""
    if headers is None:  # an admin's: every write needs a token
        headers = {"Authorization": f"Bearer {scratch_token(str(settings.database_url))}"}
    return TestClient(create_app(settings), headers=headers)


def test_the_app_s_connections_cancel_a_long_statement(settings: Settings) -> None:
    limited = settings.model_copy(update={"limits": LimitSettings(statement_s=0.25)})
    with app_client(limited) as client:
        factory = client.app.state.sessionmaker  # type: ignore[attr-defined]
        with factory() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
            started = time.perf_counter()
            with pytest.raises(OperationalError) as cancelled:
                session.execute(text("SELECT pg_sleep(5)"))
            took = time.perf_counter() - started
            session.rollback()
            # A commit does not lose it (SET LOCAL would): it is the connection's setting.
            session.commit()
            assert session.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
    assert isinstance(cancelled.value.orig, psycopg.errors.QueryCanceled)
    assert took < 2.5


def test_a_refresh_over_the_timeout_is_a_503_naming_the_setting(settings: Settings) -> None:
    # 1 ms: the refresh's bigger statements (the context join, the aggregates) cannot finish.
    limited = settings.model_copy(update={"limits": LimitSettings(statement_s=0.001)})
    with app_client(limited) as client:
        answer = client.post("/risk/refresh")
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "StatementTimeout"
    assert "CITYRISK_MAX_STATEMENT_S" in answer.json()["detail"]


def test_the_alarm_stream_s_own_connection_has_it_too(settings: Settings) -> None:
    limited = settings.model_copy(update={"limits": LimitSettings(statement_s=0.25)})

    async def shown(app: object) -> str:
        conn = await stream.open_listener(app)
        try:
            row = await (await conn.execute("SHOW statement_timeout")).fetchone()
        finally:
            await conn.close()
        assert row is not None
        return str(next(iter(row.values())))

    with app_client(limited) as client:
        assert asyncio.run(shown(client.app)) == "250ms"
