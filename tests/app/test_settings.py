"""Settings parsing: what users put in the environment or .env, and what they get back."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, normalise_database_url

ENV_NAMES = (
    "DATABASE_URL",
    "DATABASE_MIGRATE_URL",
    "PORT",
    "HOST",
    "CITYRISK_PG_PORT",
    "CITYRISK_DATA_DIR",
    "MQTT_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5433/city", "postgresql+psycopg://u:p@db.example:5433/city"),
        ("postgresql://u:p@localhost/city", "postgresql+psycopg://u:p@localhost/city"),
        (
            "postgresql+psycopg://u@localhost:5432/city",
            "postgresql+psycopg://u@localhost:5432/city",
        ),
        ("postgresql+psycopg2://u@h/city", "postgresql+psycopg://u@h/city"),
        ("  postgresql://u:p%40ss@h/city  ", "postgresql+psycopg://u:p%40ss@h/city"),
    ],
)
def test_database_url_is_normalised_to_psycopg3(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("not a url", "is not a URL"),
        ("mysql://u:p@h/city", "is not PostgreSQL"),
        ("postgresql://u:p@h", "names no database"),
        ("postgresql://u:p@h:99999/city", "out of range"),
        ("postgresql://u:p@h:abc/city", "not a number"),
    ],
)
def test_bad_database_url_is_refused_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, given: str, complaint: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert complaint in str(info.value)


def test_password_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user:s3cret@h/city")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "s3cret" not in str(info.value)


def test_the_migrations_url_is_checked_and_named_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_MIGRATE_URL", "postgres://admin:pw@db.example/city")
    assert Settings().database_migrate_url == "postgresql+psycopg://admin:pw@db.example/city"
    monkeypatch.setenv("DATABASE_MIGRATE_URL", "mysql://admin:s3cret@h/city")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "DATABASE_MIGRATE_URL scheme 'mysql' is not PostgreSQL" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_unset_or_empty_database_url_means_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().uses_local_cluster
    monkeypatch.setenv("DATABASE_URL", "")
    assert Settings().database_url is None


def test_environment_values_are_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("CITYRISK_PG_PORT", "56000")
    monkeypatch.setenv("CITYRISK_DATA_DIR", str(tmp_path / "state"))
    s = Settings()
    assert (s.port, s.pg_port, s.data_dir) == (9001, 56000, tmp_path / "state")


def test_every_concern_reads_its_prefixed_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One style: ``CITYRISK_<FIELD>`` (``CITYRISK_TILE_<FIELD>`` for tiles), aliases only for
    the conventional names; the per-concern classes arrive inside :class:`Settings`."""
    monkeypatch.setenv("CITYRISK_OFFLINE_CHECK_S", "5")
    monkeypatch.setenv("CITYRISK_MQTT_CLIENT_ID", "edge-7")
    monkeypatch.setenv("CITYRISK_TILE_MAX_FEATURES", "123")
    monkeypatch.setenv("CITYRISK_TILE_FRESHNESS", "notify")
    monkeypatch.setenv("CITYRISK_NODE_MODULES", str(tmp_path / "vendor"))
    monkeypatch.setenv("MQTT_URL", "mqtt://broker.intranet:1884")
    s = Settings()
    assert (s.offline_check_s, s.mqtt_client_id) == (5, "edge-7")
    assert (s.tiles.max_features, s.tiles.freshness) == (123, "notify")
    assert s.maps.node_modules == tmp_path / "vendor"
    assert s.mqtt_url == "mqtt://broker.intranet:1884"
    monkeypatch.setenv("CITYRISK_TILE_FRESHNESS", "sometimes")
    with pytest.raises(ValidationError, match="freshness"):
        Settings()


@pytest.mark.parametrize("port", ["0", "70000", "eighty"])
def test_impossible_port_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("PORT", port)
    with pytest.raises(ValidationError, match=r"(?i)port"):
        Settings()


def test_dotenv_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PORT=8123\nDATABASE_URL=postgres://a:b@h/fromfile\n")
    s = Settings()
    assert s.port == 8123
    assert s.database_url == "postgresql+psycopg://a:b@h/fromfile"
    monkeypatch.setenv("PORT", "8124")
    assert Settings().port == 8124
