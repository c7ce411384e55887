"""Alarm lifecycle: rule kinds and current versions, alarm workflow timestamps, one open
alarm per (rule, subject)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 18:49:51.335306
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STATES = (
    "raised",
    "verified",
    "false_alarm",
    "test",
    "pushed",
    "acknowledged",
    "dispatched",
    "disposed",
    "closed",
)


def upgrade() -> None:
    # Check constraints are invisible to autogenerate: written by hand.
    op.create_check_constraint(
        op.f("ck_alarm_state"), "alarm", "state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")"
    )
    op.add_column("alarm", sa.Column("rule_code", sa.Text(), nullable=False))
    op.add_column(
        "alarm",
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column("alarm", sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("title", sa.Text(), nullable=True))
    op.add_column("alarm", sa.Column("cause", sa.Text(), nullable=True))
    op.add_column("alarm", sa.Column("owner_unit", sa.Text(), nullable=True))
    op.add_column("alarm", sa.Column("first_value", sa.Float(), nullable=True))
    op.create_index(
        "uq_alarm_open_subject",
        "alarm",
        ["rule_code", sa.literal_column("coalesce(sensor_id, -asset_id)")],
        unique=True,
        postgresql_where=sa.text("state <> 'closed'"),
    )
    op.add_column("rule", sa.Column("kind", sa.Text(), server_default="threshold", nullable=False))
    op.add_column(
        "rule",
        sa.Column("is_current", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.create_index(
        "uq_rule_current_code",
        "rule",
        ["code"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_alarm_state"), "alarm", type_="check")
    op.drop_index("uq_rule_current_code", table_name="rule", postgresql_where=sa.text("is_current"))
    op.drop_column("rule", "is_current")
    op.drop_column("rule", "kind")
    op.drop_index(
        "uq_alarm_open_subject", table_name="alarm", postgresql_where=sa.text("state <> 'closed'")
    )
    op.drop_column("alarm", "first_value")
    op.drop_column("alarm", "owner_unit")
    op.drop_column("alarm", "cause")
    op.drop_column("alarm", "title")
    op.drop_column("alarm", "disposed_at")
    op.drop_column("alarm", "dispatched_at")
    op.drop_column("alarm", "acknowledged_at")
    op.drop_column("alarm", "pushed_at")
    op.drop_column("alarm", "verified_at")
    op.drop_column("alarm", "last_seen_at")
    op.drop_column("alarm", "rule_code")
