"""GiST index on asset.geom::geography, so metre-based ST_DWithin joins use an index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_asset_geog", "asset", [sa.text("(geom::geography)")], postgresql_using="gist"
    )


def downgrade() -> None:
    op.drop_index("ix_asset_geog", table_name="asset")
