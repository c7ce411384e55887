"""Layer data versions: a ``data_version`` row per table, bumped by every write to it

Tile caches are keyed by the versions of the tables a layer reads, so a write makes the next
tile fresh (the top complaint against Martin: stale tiles). The triggers are statement-level:
one bump per INSERT/UPDATE/DELETE/TRUNCATE statement, whatever its row count, so a 100 k-row
import costs one UPDATE. The bump is part of the writing transaction: readers see the new
version exactly when they see the new rows, never before. ``reading`` and ``latest_reading``
get no trigger (every ingest batch writes them; the row lock would serialise ingest); their
layers are live and cached for seconds only. Triggers are invisible to autogenerate: written
by hand.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Also the tables layers/registry.py may list as versioned; keep them equal.
VERSIONED_TABLES = ("asset", "alarm", "risk_score")


def upgrade() -> None:
    op.create_table(
        "data_version",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_version")),
    )
    op.execute(
        "INSERT INTO data_version (name) VALUES " + ", ".join(f"('{t}')" for t in VERSIONED_TABLES)
    )
    op.execute(
        """
        CREATE FUNCTION cityrisk_bump_data_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE data_version SET version = version + 1, changed_at = now()
            WHERE name = TG_TABLE_NAME;
            RETURN NULL;
        END
        $$
        """
    )
    for table in VERSIONED_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_bump_data_version "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION cityrisk_bump_data_version()"
        )


def downgrade() -> None:
    for table in VERSIONED_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_data_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS cityrisk_bump_data_version()")
    op.drop_table("data_version")
