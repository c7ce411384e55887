"""A data version for ``sensor``, so ingest can keep the sensor catalogue in memory; versions
drawn from a sequence.

Each ingest batch resolves its sensors; reading 20,000 sensor rows per batch cost more than the
insert itself. The statement-level trigger (function from 0007) bumps the version on every
write to ``sensor``; ingest re-reads the catalogue only when it changed.

Versions now come from a sequence instead of ``version + 1``: a sequence is not rolled back, so
a version seen inside a transaction that later rolls back is never reused for other content —
an in-memory cache keyed by version can then never serve what was rolled back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BUMP = """
CREATE OR REPLACE FUNCTION cityrisk_bump_data_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_version SET version = {next}, changed_at = now() WHERE name = TG_TABLE_NAME;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE data_version_seq")
    op.execute(
        "SELECT setval('data_version_seq', (SELECT coalesce(max(version), 1) FROM data_version))"
    )
    op.execute(BUMP.format(next="nextval('data_version_seq')"))
    op.execute(
        "INSERT INTO data_version (name, version) VALUES ('sensor', nextval('data_version_seq'))"
    )
    op.execute(
        "CREATE TRIGGER sensor_bump_data_version "
        "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sensor "
        "FOR EACH STATEMENT EXECUTE FUNCTION cityrisk_bump_data_version()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS sensor_bump_data_version ON sensor")
    op.execute("DELETE FROM data_version WHERE name = 'sensor'")
    op.execute(BUMP.format(next="version + 1"))
    op.execute("DROP SEQUENCE data_version_seq")
