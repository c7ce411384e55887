"""latest_reading: fillfactor 50, so the per-batch upserts are HOT updates in place.

Every ingest batch rewrites the latest row of each of its sensors; with free space on the page
PostgreSQL updates the row in place (no index change), instead of bloating the table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE latest_reading SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE latest_reading RESET (fillfactor)")
