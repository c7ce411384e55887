"""Risk scores: per-asset context cache, normalised score and cell geometry on risk_score

``risk_asset_context`` keeps what scoring derives from geometry (H3 cell, admin areas, impact
radius, exposure inside it, hazard overlays), so a rescore after an alarm reads it instead of
redoing the spatial joins. ``risk_score.norm`` is the band-aligned [0, 1] score that lets
matrix and LEC scores aggregate together; ``risk_score.geom`` holds a cell's hexagon (no GiST:
cell rows are few and read by plate, and the migration tests count GiST indexes).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_asset_context",
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("h3_res", sa.SmallInteger(), nullable=False),
        sa.Column("cell_id", sa.Text(), nullable=False),
        sa.Column(
            "area_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("radius_basis", sa.Text(), nullable=False),
        sa.Column("population", sa.Float(), nullable=False),
        sa.Column("site_persons", sa.Float(), nullable=False),
        sa.Column(
            "sites",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("flood_rp_yr", sa.Float(), nullable=True),
        sa.Column("landslide", sa.Text(), nullable=True),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_risk_asset_context_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_risk_asset_context")),
    )
    op.create_index(
        "ix_risk_asset_context_cell_id", "risk_asset_context", ["cell_id"], unique=False
    )
    # Incremental refresh re-aggregates one area: find its assets without a scan.
    op.create_index(
        "ix_risk_asset_context_area_ids",
        "risk_asset_context",
        ["area_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.add_column("risk_score", sa.Column("norm", sa.Float(), nullable=True))
    op.add_column(
        "risk_score",
        sa.Column(
            "geom",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
    )
    op.create_index("ix_risk_score_scope_plate", "risk_score", ["scope", "plate"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_risk_score_scope_plate", table_name="risk_score")
    op.drop_column("risk_score", "geom")
    op.drop_column("risk_score", "norm")
    op.drop_index("ix_risk_asset_context_area_ids", table_name="risk_asset_context")
    op.drop_index("ix_risk_asset_context_cell_id", table_name="risk_asset_context")
    op.drop_table("risk_asset_context")
