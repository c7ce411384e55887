"""Request bodies are refused with 413 while they stream in, never buffered first.

The decisive tests run the real app under a real uvicorn process (its own PID, so its peak RSS
can be read from ``/proc``) and send real streamed bodies over a socket: five 200 MB bodies at
once peaked at 2.2 GB before the limit existed (the route read the whole body, then refused
it). Peak RSS, not wall time, is the measure, with a generous margin.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.scratch import scratch_token
from app.settings import LimitSettings, Settings
from tests.servers import peak_rss_mb, served

MB = 1 << 20


def chunks(total: int, size: int = MB) -> Iterator[bytes]:
    """``total`` bytes of NDJSON-looking filler, ``size`` at a time (never held whole)."""
    line = b'{"sensor": "x", "ts": "2026-01-01T00:00:00Z", "value": 1}\n'
    block = line * (size // len(line))
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


def post_streamed(client: httpx.Client, path: str, total: int, declared: bool) -> int | str:
    """POST ``total`` bytes streamed (chunked, or with a Content-Length); the status, or the
    transport error if the server closed before answering."""
    headers = {"Content-Type": "application/x-ndjson"}
    if declared:
        block = len(next(chunks(MB)))
        headers["Content-Length"] = str(-(-total // block) * block)  # what chunks() sends
    try:
        return client.post(path, content=chunks(total), headers=headers).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_five_200_mb_bodies_at_once_are_refused_without_buffering(
    database_url: str, tmp_path: Path, declared: bool
) -> None:
    with served(database_url, tmp_path) as (client, pid):
        with ThreadPoolExecutor(5) as pool:  # warm the route: imports, five sessions
            list(pool.map(lambda _: client.post("/readings", content=b"[]"), range(5)))
        before = peak_rss_mb(pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(5) as pool:
            statuses = list(
                pool.map(lambda _: post_streamed(client, "/readings", 200 * MB, declared), range(5))
            )
        took = time.perf_counter() - started
        grew = peak_rss_mb(pid) - before
        assert client.get("/healthz").status_code == 200
    print(f"\n5 x 200 MB {'declared' if declared else 'chunked'}: +{grew:.1f} MB RSS, {took:.2f} s")
    # Before the limit: 422 after each body was read whole, and +1,795 MB (measured). Now a
    # streamed body is read up to the limit (16 MB) and a declared one not at all.
    limit_mb = LimitSettings().readings_body_bytes / MB
    assert statuses == [413] * 5, statuses
    assert grew < 5 * limit_mb + 50, f"peak RSS grew {grew:.0f} MB for 5 x 200 MB refused bodies"


def test_a_streamed_body_over_the_limit_is_answered_413_with_the_limit(
    database_url: str, tmp_path: Path
) -> None:
    env = {"CITYRISK_MAX_READINGS_BODY_BYTES": str(2 * MB)}
    with served(database_url, tmp_path, env=env) as (client, _):
        answer = client.post(
            "/readings", content=chunks(3 * MB), headers={"Content-Type": "application/x-ndjson"}
        )
        small = client.post("/readings", content=b"[]")
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert "/readings" in detail
    assert f"{2 * MB:,}" in detail
    assert "CITYRISK_MAX_READINGS_BODY_BYTES" in detail
    assert small.status_code == 200


def app_client(settings: Settings, headers: dict[str, str] | None = None) -> TestClient:
    """A TestClient over ``settings`` (the one place this module builds one)."""
    if headers is None:  # an admin's: every write needs a token
        headers = {"Authorization": f"Bearer {scratch_token(str(settings.database_url))}"}
    return TestClient(create_app(settings), headers=headers)


def test_each_route_has_its_limit(settings: Settings) -> None:
    limits = LimitSettings(body_bytes=4096, readings_body_bytes=64 * 1024, upload_bytes=128 * 1024)
    with app_client(settings.model_copy(update={"limits": limits})) as client:
        rules = client.post(
            "/rules/import", content=b"# " + b"x" * 8000, headers={"Content-Type": "text/yaml"}
        )
        readings = client.post(
            "/readings",
            content=b"[" + b" " * 8000 + b"]",
            headers={"Content-Type": "application/json"},
        )
        upload = client.post(
            "/assets/import",
            files={"file": ("a.geojson", b" " * 200_000)},
            data={"kind": "gas_pipe"},
        )
        small_upload = client.post(
            "/assets/import",
            files={"file": ("a.geojson", b'{"type": "FeatureCollection", "features": []}')},
            data={"kind": "gas_pipe", "crs": "EPSG:4326"},
        )
    assert rules.status_code == 413, rules.text
    assert "CITYRISK_MAX_BODY_BYTES" in rules.json()["detail"]
    assert readings.status_code == 200, readings.text  # 8 KB is under the readings limit
    assert upload.status_code == 413, upload.text
    assert "CITYRISK_MAX_UPLOAD_BYTES" in upload.json()["detail"]
    assert small_upload.status_code != 413
