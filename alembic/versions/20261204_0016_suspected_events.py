"""Suspected events: alarms grouped in space and data time, and where they point.

- ``suspected_event``: state (open, closed, dismissed, merged), the network/indicator family,
  the data-time window (first onset, last reading), counts, the peak level, the ranked
  candidate assets (JSONB) and the best one, the area to look in (WGS84 polygon, GiST), the
  method with its parameters and notes, recorded times and who closed it.
- ``suspected_event_alarm``: the member alarms (an alarm is in one event at most: the primary
  key), with the weight each had in the localisation.
- ``suspected_event`` is versioned for tiles (the ``suspected_events`` layer), as 0007 did.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("suspected_event",)


def upgrade() -> None:
    op.create_table(
        "suspected_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("state", sa.Text(), server_default="open", nullable=False),
        sa.Column("family", sa.Text(), nullable=False),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_alarms", sa.Integer(), nullable=False),
        sa.Column("n_sensors", sa.Integer(), nullable=False),
        sa.Column("peak_level", sa.SmallInteger(), nullable=False),
        sa.Column("top_asset_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "candidates",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "area",
            geoalchemy2.types.Geometry(geometry_type="POLYGON", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "notes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("merged_into_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'closed', 'dismissed', 'merged')",
            name=op.f("ck_suspected_event_state"),
        ),
        sa.ForeignKeyConstraint(
            ["top_asset_id"],
            ["asset.id"],
            name=op.f("fk_suspected_event_top_asset_id_asset"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["suspected_event.id"],
            name=op.f("fk_suspected_event_merged_into_id_suspected_event"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspected_event")),
    )
    op.create_index("ix_suspected_event_state", "suspected_event", ["state"])
    op.create_index("ix_suspected_event_last_ts", "suspected_event", ["last_ts"])
    op.create_index("ix_suspected_event_area", "suspected_event", ["area"], postgresql_using="gist")
    op.create_table(
        "suspected_event_alarm",
        sa.Column("alarm_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("magnitude", sa.Float(), nullable=True),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarm.id"],
            name=op.f("fk_suspected_event_alarm_alarm_id_alarm"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["suspected_event.id"],
            name=op.f("fk_suspected_event_alarm_event_id_suspected_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alarm_id", name=op.f("pk_suspected_event_alarm")),
    )
    op.create_index("ix_suspected_event_alarm_event_id", "suspected_event_alarm", ["event_id"])
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
    op.drop_index("ix_suspected_event_alarm_event_id", table_name="suspected_event_alarm")
    op.drop_table("suspected_event_alarm")
    op.drop_index("ix_suspected_event_area", table_name="suspected_event", postgresql_using="gist")
    op.drop_index("ix_suspected_event_last_ts", table_name="suspected_event")
    op.drop_index("ix_suspected_event_state", table_name="suspected_event")
    op.drop_table("suspected_event")
