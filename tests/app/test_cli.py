"""The `cityrisk` command as a user runs it: a real process, real environment, real PostGIS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from app.db import libpq_url as libpq
from app.db import with_database
from app.local.cluster import LocalCluster
from app.migrations import alembic_config
from app.scratch import scratch_database


def cityrisk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter (settings are read from ``env`` only)."""
    own = ("DATABASE_URL", "DATABASE_MIGRATE_URL", "CITYRISK_DATA_DIR")
    base = {k: v for k, v in os.environ.items() if k not in own}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cityrisk: error: ")
    assert says in lines[0]
    assert "Traceback" not in proc.stderr


def test_db_url_prints_the_given_url_in_both_forms() -> None:
    env = {"DATABASE_URL": "postgres://planner:pw@db.example:5433/city"}
    plain = cityrisk("db", "url", env=env)
    driver = cityrisk("db", "url", "--sqlalchemy", env=env)
    assert plain.stdout.strip() == "postgresql://planner:pw@db.example:5433/city"
    assert driver.stdout.strip() == "postgresql+psycopg://planner:pw@db.example:5433/city"


def test_db_url_migrate_prints_the_migrations_url_else_the_services() -> None:
    service = "postgresql://cityrisk_app:pw@db.example:5433/city"
    admin = "postgresql://postgres:root-pw@db.example:5433/city"
    both = {"DATABASE_URL": service, "DATABASE_MIGRATE_URL": admin}
    assert cityrisk("db", "url", env=both).stdout.strip() == service
    assert cityrisk("db", "url", "--migrate", env=both).stdout.strip() == admin
    one = {"DATABASE_URL": service}  # one role for everything: it migrates too
    assert cityrisk("db", "url", "--migrate", env=one).stdout.strip() == service


def test_db_url_without_cluster_says_to_run_db_up(tmp_path: Path) -> None:
    proc = cityrisk("db", "url", env={"CITYRISK_DATA_DIR": str(tmp_path)})
    assert_one_line_error(proc, 1, "run `cityrisk db up`")


def test_db_status_without_cluster_exits_nonzero(tmp_path: Path) -> None:
    proc = cityrisk("db", "status", env={"CITYRISK_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 3
    assert "no local cluster" in proc.stdout


def test_db_up_and_status_on_the_database_in_use(server_url: str) -> None:
    """`db up` is idempotent and `db status` names the PostGIS version, in either mode.

    With the project-local cluster (no DATABASE_URL), a second `db up` finds it running and
    leaves it, its data directory and its password as they were; with DATABASE_URL it only
    checks the server.
    """
    external = os.environ.get("DATABASE_URL")
    env = {"DATABASE_URL": external} if external else {}
    before = cityrisk("db", "url", env=env).stdout.strip()
    up = cityrisk("db", "up", env=env)
    assert up.returncode == 0, up.stderr
    expected = "using DATABASE_URL" if external else "already running"
    assert expected in up.stderr
    assert cityrisk("db", "url", env=env).stdout.strip() == before
    with psycopg.connect(before, connect_timeout=5) as conn:
        lib = conn.execute("SELECT postgis_lib_version()").fetchone()
    assert lib is not None
    status = cityrisk("db", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"PostGIS {lib[0]}" in status.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("definitely not a url", "is not a URL"),
        ("mysql://u:p@localhost/city", "is not PostgreSQL"),
        ("postgresql://u:p@localhost", "names no database"),
    ],
)
def test_malformed_database_url_is_one_clear_line(url: str, says: str) -> None:
    for command in (("db", "status"), ("migrate",), ("db", "up")):
        proc = cityrisk(*command, env={"DATABASE_URL": url})
        assert_one_line_error(proc, 2, says)
        assert "DATABASE_URL" in proc.stderr


def test_unreachable_database_is_one_clear_line() -> None:
    proc = cityrisk("db", "status", env={"DATABASE_URL": "postgresql://u:hush@127.0.0.1:1/x"})
    assert_one_line_error(proc, 1, "cannot connect to")
    assert "hush" not in proc.stderr


def test_database_without_postgis_is_named(server_url: str, admin_url: str) -> None:
    with scratch_database(server_url, admin_url=admin_url, postgis=False) as url:
        proc = cityrisk("db", "status", env={"DATABASE_URL": url})
    assert_one_line_error(proc, 1, "has no PostGIS extension")


def test_migrate_where_postgis_cannot_be_created_is_one_clear_line(
    two_roles: LocalCluster,
) -> None:
    """The service's role may not CREATE EXTENSION postgis: migrating as it says so, in one line
    (on a cluster of the suite's own, whose service role is never a superuser)."""
    server_url, admin_url = two_roles.url(), two_roles.admin_url()
    with psycopg.connect(libpq(server_url), connect_timeout=5) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False,)
    with scratch_database(server_url, admin_url=admin_url, postgis=False) as url:
        proc = cityrisk("migrate", env={"DATABASE_URL": url})
    assert_one_line_error(proc, 1, "could not be created")


def test_migrate_brings_a_fresh_database_to_head(server_url: str, admin_url: str) -> None:
    """Through DATABASE_MIGRATE_URL, which may create PostGIS; the service's URL stays the other."""
    with scratch_database(server_url, admin_url=admin_url, postgis=False) as url:
        env = {"DATABASE_URL": url, "DATABASE_MIGRATE_URL": with_database(admin_url, db_name(url))}
        first = cityrisk("migrate", env=env)
        again = cityrisk("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"schema at {head}" in again.stderr


def test_import_command_reports_and_exits_nonzero_on_rejects(
    server_url: str, admin_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "mains.geojson"
    bad.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                        "properties": {"external_id": "a", "diameter_mm": 50000},
                    },
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [0, 0]},
                        "properties": {"external_id": "b"},
                    },
                ],
            }
        )
    )
    with scratch_database(server_url, admin_url=admin_url) as url:
        env = {"DATABASE_URL": url}
        assert cityrisk("migrate", env=env).returncode == 0
        proc = cityrisk("import", str(bad), "--kind", "gas_pipe", env=env)
        as_json = cityrisk("import", str(bad), "--kind", "gas_pipe", "--json", env=env)
        partial = cityrisk("import", str(bad), "--kind", "gas_pipe", "--partial", env=env)
        # as valves: the 157 km line is their midpoint only under a limit raised that far
        valves = cityrisk(
            "import", str(bad), "--kind", "valve", "--dry-run", "--json",
            "--max-point-line-m", "200000", env=env,
        )  # fmt: skip
    assert json.loads(valves.stdout)["lines_as_points"] == 1
    assert proc.returncode == 1
    assert "rejected 2 — NOT written" in proc.stdout
    assert "row 1 (a): diameter_mm=50000 mm is outside 10–5000 mm" in proc.stdout
    assert "row 2 (b): Point geometry, but this kind takes line geometries" in proc.stdout
    report = json.loads(as_json.stdout)
    assert [r["row"] for r in report["rejected"]] == [1, 2]
    assert report["committed"] is False
    assert partial.returncode == 1  # every row was bad: nothing to commit


def test_load_demo_is_idempotent(server_url: str, admin_url: str) -> None:
    import pyogrio

    from app.flows.demo import demo_path

    expected = sum(
        pyogrio.read_info(demo_path(), layer=str(name))["features"]
        for name, _ in pyogrio.list_layers(demo_path())
    )
    with scratch_database(server_url, admin_url=admin_url) as url:
        env = {"DATABASE_URL": url}
        assert cityrisk("migrate", env=env).returncode == 0
        first = cityrisk("load", "demo", env=env)
        second = cityrisk("load", "demo", env=env)
        with psycopg.connect(libpq(url)) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT kind) FROM asset").fetchone()
            links = conn.execute("SELECT count(*) FROM asset_link").fetchone()
    assert first.returncode == 0, first.stderr
    assert row == (expected, len(pyogrio.list_layers(demo_path())))
    assert f"demo city loaded: {expected} assets" in first.stderr
    assert links is not None
    assert links[0] > 0
    assert "inserted 0, updated 0" in second.stdout
    assert "inserted 1" not in second.stdout
    assert "updated 1" not in second.stdout


def test_map_out_writes_a_standalone_page_and_says_it_needs_cors(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "risk.html"
    proc = cityrisk(
        "map", "--out", str(out), "--base-url", "http://wall.intranet:8000/",
        env={"DATABASE_URL": database_url},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    html = out.read_text(encoding="utf-8")
    assert "http://wall.intranet:8000/static/vendor/leaflet/" in html
    assert "http://wall.intranet:8000/tiles/" in html
    assert "cdn" not in html.lower()
    assert "CITYRISK_CORS_ORIGINS" in proc.stderr
    bad = cityrisk("map", "--out", str(out), "--layers", "nope", env={"DATABASE_URL": database_url})
    assert_one_line_error(bad, 1, "nope")
