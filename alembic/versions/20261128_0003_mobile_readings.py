"""Mobile readings (patrol vehicles): position + value, joined to the nearest compatible asset

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 18:29:56.975365
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mobile_reading",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("device", sa.Text(), nullable=True),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_mobile_reading_asset_id_asset"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mobile_reading")),
        sa.UniqueConstraint("kind", "ts", "geom", name=op.f("uq_mobile_reading_kind_ts_geom")),
    )
    op.create_index("ix_mobile_reading_asset_id", "mobile_reading", ["asset_id"], unique=False)
    op.create_index(
        "ix_mobile_reading_geom", "mobile_reading", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_index(
        "ix_mobile_reading_ts", "mobile_reading", ["ts"], unique=False, postgresql_using="brin"
    )


def downgrade() -> None:
    op.drop_index("ix_mobile_reading_ts", table_name="mobile_reading", postgresql_using="brin")
    op.drop_index("ix_mobile_reading_geom", table_name="mobile_reading", postgresql_using="gist")
    op.drop_index("ix_mobile_reading_asset_id", table_name="mobile_reading")
    op.drop_table("mobile_reading")
