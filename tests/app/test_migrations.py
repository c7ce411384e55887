"""The schema is made only by Alembic: round trips, no drift from the models, indexes once."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app import migrations
from app.db import create_db_engine
from app.migrations import include_object
from app.models import Base
from app.scratch import scratch_database

CORE_TABLES = {
    "asset",
    "asset_link",
    "sensor",
    "reading",
    "latest_reading",
    "rule",
    "alarm",
    "alarm_event",
    "incident",
    "risk_score",
    "mobile_reading",
}


def user_tables(url: str) -> set[str]:
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename NOT IN ('spatial_ref_sys')"
                )
            )
            return {r[0] for r in rows}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(server_url: str, admin_url: str) -> None:
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        assert CORE_TABLES | {"alembic_version"} <= user_tables(url)
        head = migrations.current(url)
        assert head is not None

        migrations.downgrade(url, "base")
        assert user_tables(url) <= {"alembic_version"}
        assert migrations.current(url) is None

        migrations.upgrade(url)
        assert user_tables(url) >= CORE_TABLES
        assert migrations.current(url) == head


def test_models_and_migrations_agree(engine: Engine) -> None:
    """Autogenerate against the migrated database finds nothing to do."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_spatial_indexes_exist_once_and_reading_is_partitioned(engine: Engine) -> None:
    with engine.connect() as conn:
        gist = conn.execute(
            text(
                "SELECT t.relname, count(*) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_am am ON am.oid = i.relam WHERE am.amname = 'gist' "
                "AND t.relnamespace = 'public'::regnamespace GROUP BY t.relname"
            )
        ).all()
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'reading'")).scalar()
    counts = dict(gist)
    # asset: geom and geom::geography; incident: geom and zone; suspected_event: area; the
    # others one on geom.
    assert counts == {
        "asset": 2, "sensor": 1, "alarm": 1, "incident": 2, "incident_zone": 1, "mobile_reading": 1,
        "suspected_event": 1,
    }  # fmt: skip
    assert kind == "p"


def test_asset_measures_are_geodesic(session) -> None:  # type: ignore[no-untyped-def]
    """length_m / area_m2 are computed by PostgreSQL on the WGS84 spheroid (geography)."""
    from pyproj import Geod

    line = [(-71.1189, 42.3736), (-71.1031, 42.3656)]  # across Cambridge, MA
    expected_m = Geod(ellps="WGS84").line_length(*zip(*line, strict=True))
    row = session.execute(
        text(
            "INSERT INTO asset (external_id, plate, kind, geom) VALUES "
            "('t1', 'lifeline', 'gas_pipe', ST_GeomFromText(:wkt, 4326)) "
            "RETURNING length_m, area_m2"
        ),
        {"wkt": "LINESTRING(-71.1189 42.3736, -71.1031 42.3656)"},
    ).one()
    assert abs(row.length_m - expected_m) < 0.01
    assert row.area_m2 == 0
