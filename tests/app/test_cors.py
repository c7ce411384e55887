"""CORS, opt-in: the real app under uvicorn, asked over real sockets with and without the setting.

A standalone map page (``cityrisk map --out``) opened from disk sends ``Origin: null``; one
served by another intranet host sends that host's origin. Without ``CITYRISK_CORS_ORIGINS``
the server sends no CORS header at all (and installs no middleware for it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from pydantic import ValidationError
from starlette.middleware.cors import CORSMiddleware

from app.main import CORS_EXPOSE_HEADERS, create_app
from app.scratch import serve_in_thread
from app.settings import Settings

# Cambridge, MA at z14; an empty tile is a zero-length 200 all the same.
TILE = "/tiles/gas_pipe/14/4956/6059.mvt"
READS = (TILE, "/layers", "/alarms?f=geojson&active=true&limit=10")
OTHER = "http://elsewhere.example"


@contextmanager
def serving(settings: Settings) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(create_app(settings)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


def settings_for(database_url: str, data_dir: Path, origins: list[str] | None) -> Settings:
    """The test settings; ``origins=None`` leaves ``cors_origins`` at its default."""
    if origins is None:
        return Settings(
            database_url=database_url, data_dir=data_dir, mqtt_consumer=False, offline_check_s=0
        )
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        mqtt_consumer=False,
        offline_check_s=0,
        cors_origins=origins,
    )


@pytest.fixture(scope="module")
def plain(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The server as configured by default: no CORS."""
    with serving(settings_for(database_url, tmp_path_factory.mktemp("plain"), None)) as client:
        yield client


@pytest.fixture(scope="module")
def from_disk(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """CITYRISK_CORS_ORIGINS=["null"]: pages opened from disk may read it."""
    settings = settings_for(database_url, tmp_path_factory.mktemp("cors"), ["null"])
    with serving(settings) as client:
        yield client


def preflight(client: httpx.Client, path: str, origin: str, method: str = "GET") -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "if-none-match",
        },
    )


def items(header: str) -> set[str]:
    """A comma-separated header's values, lower-cased."""
    return {v.strip().lower() for v in header.split(",")}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


# -- the setting --------------------------------------------------------------------------------


@pytest.fixture
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.delenv("CITYRISK_CORS_ORIGINS", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        ("[]", []),
        ('["null"]', ["null"]),
        ('["null", "http://wall.intranet", "http://wall.intranet/"]', ["null", "http://wall.intranet"]),
        ('["https://ops.example:8443"]', ["https://ops.example:8443"]),
        ("*", ["*"]),
        (' ["*"] ', ["*"]),
    ],
)  # fmt: skip
def test_cors_origins_from_the_environment(
    no_dotenv: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    no_dotenv.setenv("CITYRISK_CORS_ORIGINS", raw)
    assert Settings().cors_origins == expected


def test_cors_origins_default_to_none(no_dotenv: pytest.MonkeyPatch) -> None:
    assert Settings().cors_origins == []


@pytest.mark.parametrize(
    "raw",
    ["null", "http://wall.intranet", '["http://wall.intranet/map"]', '["wall.intranet"]', "[1]"],
)
def test_bad_cors_origins_are_refused(no_dotenv: pytest.MonkeyPatch, raw: str) -> None:
    no_dotenv.setenv("CITYRISK_CORS_ORIGINS", raw)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "CITYRISK_CORS_ORIGINS" in str(info.value)


def test_the_middleware_is_installed_only_when_configured(tmp_path: Path) -> None:
    def has_cors(origins: list[str] | None) -> bool:
        app = create_app(settings_for("postgresql://u@127.0.0.1:1/x", tmp_path, origins))
        return any(
            issubclass(getattr(m, "cls", object), CORSMiddleware) for m in app.user_middleware
        )

    assert not has_cors(None)
    assert not has_cors([])
    assert has_cors(["null"])


# -- over the wire ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", READS)
def test_no_cors_headers_without_the_setting(plain: httpx.Client, path: str) -> None:
    response = plain.get(path, headers={"Origin": "null"})
    assert response.status_code == 200, response.text
    assert cors_headers(response) == {}
    answer = preflight(plain, path, "null")
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("path", READS)
def test_a_listed_origin_may_read(from_disk: httpx.Client, path: str) -> None:
    response = from_disk.get(path, headers={"Origin": "null"})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "null"
    exposed = items(response.headers["access-control-expose-headers"])
    assert exposed == {h.lower() for h in CORS_EXPOSE_HEADERS}
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in items(response.headers["vary"])  # caches keep one answer per origin


def test_tile_headers_survive_the_middleware(from_disk: httpx.Client) -> None:
    response = from_disk.get(TILE, headers={"Origin": "null", "Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["etag"]
    assert response.headers["x-tile-cache"] in ("hit", "miss")
    assert {"accept-encoding", "origin"} <= items(response.headers["vary"])
    again = from_disk.get(
        TILE, headers={"Origin": "null", "If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.headers["access-control-allow-origin"] == "null"


@pytest.mark.parametrize("path", READS)
def test_a_preflight_is_answered(from_disk: httpx.Client, path: str) -> None:
    answer = preflight(from_disk, path, "null")
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "null"
    assert items(answer.headers["access-control-allow-methods"]) == {"get", "head", "options"}
    assert "if-none-match" in items(answer.headers["access-control-allow-headers"])
    assert "access-control-allow-credentials" not in answer.headers


def test_a_preflight_for_a_write_is_refused(from_disk: httpx.Client) -> None:
    answer = preflight(from_disk, "/alarms/1/transitions", "null", method="POST")
    assert answer.status_code == 400
    assert "POST" not in answer.headers.get("access-control-allow-methods", "")


@pytest.mark.parametrize("path", READS)
def test_an_origin_not_listed_gets_none(from_disk: httpx.Client, path: str) -> None:
    response = from_disk.get(path, headers={"Origin": OTHER})
    assert response.status_code == 200  # the server answers; the browser hides it
    assert "access-control-allow-origin" not in response.headers
    answer = preflight(from_disk, path, OTHER)
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


def test_star_allows_any_origin(database_url: str, tmp_path: Path) -> None:
    with serving(settings_for(database_url, tmp_path, ["*"])) as client:
        for origin in ("null", OTHER):
            response = client.get("/layers", headers={"Origin": origin})
            assert response.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in response.headers
