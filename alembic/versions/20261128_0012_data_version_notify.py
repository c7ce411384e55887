"""Data-version bumps notify listeners: the tile service's cache learns of writes at once.

The statement-level trigger function (0007, versions from a sequence since 0010) also sends
``NOTIFY cityrisk_data_version, '<table>'``. PostgreSQL delivers it when the writing
transaction commits (never for a rollback), so every tile-serving process can keep the versions
in memory and skip a round trip per tile (app/tiles/versions.py: ``VersionWatch``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP = """
CREATE OR REPLACE FUNCTION cityrisk_bump_data_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_version SET version = nextval('data_version_seq'), changed_at = now()
    WHERE name = TG_TABLE_NAME;{notify}
    RETURN NULL;
END
$$
"""

NOTIFY = "\n    PERFORM pg_notify('cityrisk_data_version', TG_TABLE_NAME);"


def upgrade() -> None:
    op.execute(BUMP.format(notify=NOTIFY))


def downgrade() -> None:
    op.execute(BUMP.format(notify=""))
