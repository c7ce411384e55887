"""How the tile cache learns of writes: NOTIFY-pushed versions (default) and strict reads.

A cache hit must cost no database round trip while the listener is up, a write from another
connection must still make the very next tile fresh, and a broken listener must fall back to
reading versions per request, never to serving what it last knew.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.main import create_app
from app.settings import Settings, TileSettings
from app.tiles.service import TileService
from app.tiles.versions import VersionReader, VersionWatch
from tests import factories as f

SOURCE = "freshness-test"
LON, LAT = -71.1050, 42.3650
TILE = morecantile.tms.get("WebMercatorQuad").tile(LON, LAT, 15)
URL = f"/tiles/hydrant/{TILE.z}/{TILE.x}/{TILE.y}.mvt"


def add_hydrant(engine: Engine, name: str) -> None:
    """A hydrant named ``name`` (its external id too), committed."""
    with engine.begin() as conn:
        f.asset(conn, "hydrant", f.point(LON, LAT), source=SOURCE, external_id=name, name=name)


def names(body: bytes) -> set[str]:
    layers = mapbox_vector_tile.decode(body)
    return {f["properties"]["name"] for f in layers.get("hydrant", {}).get("features", [])}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in the default freshness mode (the suite's conftest picks strict otherwise)."""
    notify = settings.model_copy(update={"tiles": TileSettings(freshness="notify")})
    with TestClient(create_app(notify)) as c:
        yield c


@pytest.fixture
def cleanup(engine: Engine) -> Iterator[None]:
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM asset WHERE source = :s"), {"s": SOURCE})


def tiles_of(client: TestClient) -> TileService:
    service: TileService = client.app.state.tiles  # type: ignore[attr-defined]
    return service


def wait_notified(watch: VersionWatch, seen: int) -> None:
    """Until the service has received a notification after ``seen`` (bounded)."""
    deadline = time.monotonic() + 5
    while watch.notifications <= seen:
        assert time.monotonic() < deadline, "no notification reached the tile service"
        time.sleep(0.001)


def wait_listening(client: TestClient) -> VersionWatch:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert client.get(URL).status_code == 200
        watch = tiles_of(client).versions
        assert isinstance(watch, VersionWatch)
        if watch.listening:
            return watch
        time.sleep(0.05)
    raise AssertionError("the tile service never started listening")


@pytest.mark.usefixtures("cleanup")
def test_hits_cost_no_round_trip_and_a_write_is_seen_by_the_next_tile(
    client: TestClient, engine: Engine
) -> None:
    add_hydrant(engine, "before")
    watch = wait_listening(client)
    assert client.get(URL).headers["x-tile-cache"] in ("hit", "miss")
    trips = watch.reader.round_trips
    for _ in range(20):
        hit = client.get(URL)
        assert hit.headers["x-tile-cache"] == "hit"
    assert watch.reader.round_trips == trips, "a cache hit read the versions from the database"

    seen = watch.notifications
    add_hydrant(engine, "after")
    # Delivery is asynchronous (about a millisecond here): a request answered before it arrives
    # may still get the old tile. Once it is in, the very next tile is fresh.
    wait_notified(watch, seen)
    fresh = client.get(URL)
    assert fresh.headers["x-tile-cache"] == "miss"
    assert names(fresh.content) == {"before", "after"}
    assert watch.reader.round_trips == trips + 1


def test_a_rolled_back_write_notifies_nobody(client: TestClient, engine: Engine) -> None:
    watch = wait_listening(client)
    client.get(URL)
    seen = watch.notifications
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(text("UPDATE asset SET name = name WHERE false"))  # a statement: trigger
        tx.rollback()
    with engine.begin() as conn:  # the same statement committed, as a marker
        conn.execute(text("UPDATE asset SET name = name WHERE false"))
    wait_notified(watch, seen)
    client.get(URL)
    assert watch.notifications == seen + 1, "the rolled-back statement notified"


@pytest.mark.usefixtures("cleanup")
def test_a_broken_listener_falls_back_to_reads_and_comes_back(
    client: TestClient, engine: Engine
) -> None:
    add_hydrant(engine, "one")
    watch = wait_listening(client)
    with engine.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'cityrisk-tile-listen' AND datname = current_database()"
            )
        ).scalar_one()
    assert killed >= 1
    add_hydrant(engine, "two")
    # The listener's death and the write may arrive in either order: both must end fresh.
    assert names(client.get(URL).content) == {"one", "two"}
    add_hydrant(engine, "three")
    assert names(client.get(URL).content) == {"one", "two", "three"}
    deadline = time.monotonic() + 10
    while not watch.listening and time.monotonic() < deadline:
        client.get(URL)
        time.sleep(0.1)
    assert watch.listening, "the listener did not reconnect"
    seen = watch.notifications
    add_hydrant(engine, "four")
    wait_notified(watch, seen)
    assert names(client.get(URL).content) == {"one", "two", "three", "four"}


@pytest.mark.usefixtures("cleanup")
def test_strict_freshness_reads_per_request(settings: Settings, engine: Engine) -> None:
    strict_settings = settings.model_copy(update={"tiles": TileSettings(freshness="strict")})
    with TestClient(create_app(strict_settings)) as strict:
        add_hydrant(engine, "a")
        assert names(strict.get(URL).content) == {"a"}
        reader = tiles_of(strict).versions
        assert isinstance(reader, VersionReader)
        trips = reader.round_trips
        assert strict.get(URL).headers["x-tile-cache"] == "hit"
        assert reader.round_trips == trips + 1
        add_hydrant(engine, "b")
        assert names(strict.get(URL).content) == {"a", "b"}


@pytest.mark.usefixtures("cleanup")
def test_a_schema_without_notify_is_read_per_request(settings: Settings, engine: Engine) -> None:
    """Before migration 0012 no write notifies: listening would trust old versions forever."""
    with engine.begin() as conn:
        original = conn.execute(
            text("SELECT pg_get_functiondef('cityrisk_bump_data_version'::regproc)")
        ).scalar_one()
        silent = "\n".join(line for line in original.splitlines() if "pg_notify" not in line)
        assert silent != original
        conn.execute(text(silent))
    try:
        notify = settings.model_copy(update={"tiles": TileSettings(freshness="notify")})
        with TestClient(create_app(notify)) as old_schema:
            add_hydrant(engine, "x")
            assert names(old_schema.get(URL).content) == {"x"}
            watch = tiles_of(old_schema).versions
            assert isinstance(watch, VersionWatch)
            time.sleep(0.3)  # the listener's attempt has run by now
            old_schema.get(URL)
            assert not watch.listening
            add_hydrant(engine, "y")
            assert names(old_schema.get(URL).content) == {"x", "y"}
    finally:
        with engine.begin() as conn:
            conn.execute(text(original))


def test_an_unreachable_database_is_a_503_with_the_reason(settings: Settings) -> None:
    gone = settings.model_copy(
        update={
            "database_url": "postgresql://u:p@127.0.0.1:1/gone",
            "tiles": TileSettings(freshness="notify"),
        }
    )
    with TestClient(create_app(gone)) as client:
        for _ in range(2):  # the listener's failed attempt must not change the answer
            response = client.get(URL)
            assert response.status_code == 503
            assert "did not answer" in response.json()["detail"]
