"""The impact engine's tables: dependency buffers on links, incidents and their zones.

- ``asset_link.buffer_h``: how many hours the dependent asset bridges the loss of what it
  depends on (a hospital's generator, a tank's storage); ``delay_h`` (0001) is how long the
  loss takes to reach it. Imported dependencies (``cityrisk links import``) and derived ones
  carry both; the cascade (gis/cascade.py) reads them.
- ``incident``: when it was computed, for which data time, and its lifecycle state.
- ``incident_zone``: one row per zone of an incident's stored impact (a threshold ring, a
  protective-action square, an isolated segment…), GiST-indexed, so zones are a map layer and an
  OGC collection like any other; versioned (0007 triggers) so their tiles are never stale.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("asset_link", "incident", "incident_zone")


def upgrade() -> None:
    op.add_column("asset_link", sa.Column("buffer_h", sa.Float(), nullable=True))
    op.add_column(
        "incident",
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.add_column("incident", sa.Column("computed_at", sa.DateTime(timezone=True)))
    op.add_column("incident", sa.Column("data_at", sa.DateTime(timezone=True)))
    op.create_check_constraint("status", "incident", "status IN ('open', 'contained', 'closed')")
    op.create_index("ix_incident_alarm_id", "incident", ["alarm_id"])
    op.create_table(
        "incident_zone",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("ord", sa.SmallInteger(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON", srid=4326, spatial_index=False
            ),
            nullable=False,
        ),
        sa.CheckConstraint("severity BETWEEN 1 AND 4", name=op.f("ck_incident_zone_severity")),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_incident_zone_incident_id_incident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_zone")),
    )
    op.create_index("ix_incident_zone_incident_id", "incident_zone", ["incident_id"])
    op.create_index("ix_incident_zone_geom", "incident_zone", ["geom"], postgresql_using="gist")
    op.execute(
        "INSERT INTO data_version (name) VALUES "
        + ", ".join(f"('{t}')" for t in VERSIONED)
        + " ON CONFLICT DO NOTHING"
    )
    for table in VERSIONED:
        op.execute(
            f"CREATE TRIGGER {table}_bump_data_version "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION cityrisk_bump_data_version()"
        )


def downgrade() -> None:
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_data_version ON {table}")
    op.execute(
        "DELETE FROM data_version WHERE name IN (" + ", ".join(f"'{t}'" for t in VERSIONED) + ")"
    )
    op.drop_index("ix_incident_zone_geom", table_name="incident_zone", postgresql_using="gist")
    op.drop_index("ix_incident_zone_incident_id", table_name="incident_zone")
    op.drop_table("incident_zone")
    op.drop_index("ix_incident_alarm_id", table_name="incident")
    op.drop_constraint(op.f("ck_incident_status"), "incident", type_="check")
    op.drop_column("incident", "data_at")
    op.drop_column("incident", "computed_at")
    op.drop_column("incident", "updated_at")
    op.drop_column("asset_link", "buffer_h")
