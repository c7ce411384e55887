"""Early warning in data time, and learned baselines.

- ``alarm.opened_ts`` / ``alarm.cleared_ts``: the data time (the reading's ``ts``) of the reading
  that raised / last cleared the alarm; ``opened_at`` / ``cleared_at`` stay the wall-clock time
  they were recorded (SLA timers start there). ``alarm.peak_level``: the most severe level the
  alarm ever reached (a recurrence keeps it).
- ``alarm_event.ts``: the data time of the reading behind an engine event (``at`` is when it
  was recorded); NULL for a person's transition.
- ``sensor_profile``: a learned time-of-day × day-type profile per sensor (median, robust
  spread, count and fallback level per bin), versioned like rules: one current row per sensor.
- ``detector_state``: what a stateful detector (a CUSUM rule) carries from one batch to the
  next, per rule version and sensor: its statistic after the reading at ``ts``, and the
  profile it was computed against (a new profile restarts it).

Existing rows get their recorded times as data times (what they were before).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alarm", sa.Column("opened_ts", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("cleared_ts", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("peak_level", sa.SmallInteger(), nullable=True))
    op.execute(
        "UPDATE alarm SET opened_ts = opened_at, cleared_ts = cleared_at, peak_level = level"
    )
    op.alter_column("alarm", "opened_ts", nullable=False, server_default=sa.func.now())
    op.create_index("ix_alarm_opened_ts", "alarm", ["opened_ts"])
    op.add_column("alarm_event", sa.Column("ts", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sensor_profile",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "sensor_id",
            sa.BigInteger(),
            sa.ForeignKey("sensor.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        # the calibration window, in data time
        sa.Column("learned_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("learned_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_readings", sa.Integer(), nullable=False),
        sa.Column("bin_s", sa.Integer(), nullable=False),
        sa.Column("day_mode", sa.Text(), nullable=False),
        sa.Column("utc_offset_s", sa.Integer(), nullable=False),
        sa.Column("centre", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("spread", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("count", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("level", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("global_centre", sa.Float(), nullable=True),
        sa.Column("global_spread", sa.Float(), nullable=True),
        # per-rule numbers learned in the same window (e.g. a CUSUM's in-control maximum)
        sa.Column(
            "learned",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sensor_id", "version"),
    )
    op.create_index(
        "uq_sensor_profile_current",
        "sensor_profile",
        ["sensor_id"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )

    op.create_table(
        "detector_state",
        sa.Column(
            "rule_id", sa.BigInteger(), sa.ForeignKey("rule.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "sensor_id",
            sa.BigInteger(),
            sa.ForeignKey("sensor.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("rule_id", "sensor_id"),
    )


def downgrade() -> None:
    op.drop_table("detector_state")
    op.drop_index("uq_sensor_profile_current", table_name="sensor_profile")
    op.drop_table("sensor_profile")
    op.drop_column("alarm_event", "ts")
    op.drop_index("ix_alarm_opened_ts", table_name="alarm")
    op.drop_column("alarm", "peak_level")
    op.drop_column("alarm", "cleared_ts")
    op.drop_column("alarm", "opened_ts")
