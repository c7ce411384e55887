"""reading: drop the foreign key to sensor (ingest validates per batch; partitions attach
without locking sensor).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_reading_sensor_id_sensor", "reading", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        "fk_reading_sensor_id_sensor",
        "reading",
        "sensor",
        ["sensor_id"],
        ["id"],
        ondelete="CASCADE",
    )
