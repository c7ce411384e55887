"""Core tables of the data model: assets and links, sensors and readings, rules and alarms,
incidents, risk scores. Exposure (schools, hospitals, population cells) is the ``exposure``
plate of ``asset``. ``reading`` is range-partitioned by ``ts``; its partitions are made at run time.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 18:16:51.898648
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Idempotent; `cityrisk migrate` already creates it with a clear error when it cannot.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "asset",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), server_default="manual", nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "length_m",
            sa.Float(),
            sa.Computed("ST_Length(geom::geography)", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "area_m2",
            sa.Float(),
            sa.Computed("ST_Area(geom::geography)", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "plate IN ('lifeline', 'public_safety', 'production_safety', 'natural_disaster', 'exposure')",
            name=op.f("ck_asset_plate"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_asset_source_external_id")),
    )
    op.create_index("ix_asset_geom", "asset", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_asset_kind", "asset", ["kind"], unique=False)
    op.create_table(
        "rule",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), server_default="above", nullable=False),
        sa.Column("thresholds", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "target",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "conditions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.CheckConstraint("direction IN ('above', 'below')", name=op.f("ck_rule_direction")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_rule_code_version")),
    )
    op.create_table(
        "asset_link",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("from_asset_id", sa.BigInteger(), nullable=False),
        sa.Column("to_asset_id", sa.BigInteger(), nullable=False),
        sa.Column("link_type", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), server_default="manual", nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("delay_h", sa.Float(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "link_type IN ('physical', 'cyber', 'geographic', 'logical')",
            name=op.f("ck_asset_link_link_type"),
        ),
        sa.CheckConstraint("from_asset_id <> to_asset_id", name=op.f("ck_asset_link_not_self")),
        sa.ForeignKeyConstraint(
            ["from_asset_id"],
            ["asset.id"],
            name=op.f("fk_asset_link_from_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_asset_id"],
            ["asset.id"],
            name=op.f("fk_asset_link_to_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_link")),
        sa.UniqueConstraint(
            "from_asset_id",
            "to_asset_id",
            "link_type",
            "rule",
            name=op.f("uq_asset_link_from_asset_id_to_asset_id_link_type_rule"),
        ),
    )
    op.create_index("ix_asset_link_to_asset_id", "asset_link", ["to_asset_id"], unique=False)
    op.create_table(
        "risk_score",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("cell_id", sa.Text(), nullable=True),
        sa.Column("plate", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("likelihood", sa.Float(), nullable=False),
        sa.Column("consequence", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("risk_class", sa.SmallInteger(), nullable=False),
        sa.Column(
            "components",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("scope IN ('asset', 'cell', 'area')", name=op.f("ck_risk_score_scope")),
        sa.CheckConstraint("risk_class BETWEEN 1 AND 4", name=op.f("ck_risk_score_risk_class")),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_risk_score_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_score")),
    )
    op.create_index("ix_risk_score_asset_id", "risk_score", ["asset_id"], unique=False)
    op.create_index("ix_risk_score_cell_id", "risk_score", ["cell_id"], unique=False)
    op.create_table(
        "sensor",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("binding_rule", sa.Text(), nullable=True),
        sa.Column("binding_distance_m", sa.Float(), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'maintenance', 'retired')",
            name=op.f("ck_sensor_status"),
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["asset.id"], name=op.f("fk_sensor_asset_id_asset"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor")),
        sa.UniqueConstraint("external_id", name=op.f("uq_sensor_external_id")),
    )
    op.create_index("ix_sensor_asset_id", "sensor", ["asset_id"], unique=False)
    op.create_index("ix_sensor_geom", "sensor", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_sensor_kind", "sensor", ["kind"], unique=False)
    op.create_table(
        "alarm",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("sensor_id", sa.BigInteger(), nullable=True),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.Text(), server_default="raised", nullable=False),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_value", sa.Float(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint("level BETWEEN 1 AND 4", name=op.f("ck_alarm_level")),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["asset.id"], name=op.f("fk_alarm_asset_id_asset"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["rule.id"], name=op.f("fk_alarm_rule_id_rule"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensor.id"],
            name=op.f("fk_alarm_sensor_id_sensor"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm")),
    )
    op.create_index("ix_alarm_geom", "alarm", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_alarm_state", "alarm", ["state"], unique=False)
    op.create_table(
        "latest_reading",
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensor.id"],
            name=op.f("fk_latest_reading_sensor_id_sensor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sensor_id", name=op.f("pk_latest_reading")),
    )
    op.create_table(
        "reading",
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensor.id"],
            name=op.f("fk_reading_sensor_id_sensor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sensor_id", "ts", name=op.f("pk_reading")),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_index("ix_reading_ts", "reading", ["ts"], unique=False, postgresql_using="brin")
    op.create_table(
        "alarm_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alarm_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=True),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("from_level", sa.SmallInteger(), nullable=True),
        sa.Column("to_level", sa.SmallInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarm.id"],
            name=op.f("fk_alarm_event_alarm_id_alarm"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_event")),
    )
    op.create_index("ix_alarm_event_alarm_id", "alarm_event", ["alarm_id"], unique=False)
    op.create_table(
        "incident",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alarm_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column(
            "geom",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "zone",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "scenario",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "results",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarm.id"], name=op.f("fk_incident_alarm_id_alarm"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    op.create_index("ix_incident_geom", "incident", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_incident_zone", "incident", ["zone"], unique=False, postgresql_using="gist")


def downgrade() -> None:
    # PostGIS stays: other schemas in the database may use it.
    op.drop_index("ix_incident_zone", table_name="incident", postgresql_using="gist")
    op.drop_index("ix_incident_geom", table_name="incident", postgresql_using="gist")
    op.drop_table("incident")
    op.drop_index("ix_alarm_event_alarm_id", table_name="alarm_event")
    op.drop_table("alarm_event")
    op.drop_index("ix_reading_ts", table_name="reading", postgresql_using="brin")
    op.drop_table("reading")
    op.drop_table("latest_reading")
    op.drop_index("ix_alarm_state", table_name="alarm")
    op.drop_index("ix_alarm_geom", table_name="alarm", postgresql_using="gist")
    op.drop_table("alarm")
    op.drop_index("ix_sensor_kind", table_name="sensor")
    op.drop_index("ix_sensor_geom", table_name="sensor", postgresql_using="gist")
    op.drop_index("ix_sensor_asset_id", table_name="sensor")
    op.drop_table("sensor")
    op.drop_index("ix_risk_score_cell_id", table_name="risk_score")
    op.drop_index("ix_risk_score_asset_id", table_name="risk_score")
    op.drop_table("risk_score")
    op.drop_index("ix_asset_link_to_asset_id", table_name="asset_link")
    op.drop_table("asset_link")
    op.drop_table("rule")
    op.drop_index("ix_asset_kind", table_name="asset")
    op.drop_index("ix_asset_geom", table_name="asset", postgresql_using="gist")
    op.drop_table("asset")
