"""risk_score carries each asset's context and score inputs; no FK row checks on a refresh

A full refresh of 100 k assets spent most of its database time writing: 100 k rows into
``risk_asset_context`` and again 100 k into ``risk_score``, each row checked against ``asset``
by the foreign key (a lookup plus a ``FOR KEY SHARE`` lock that dirties the asset's page), and
~1.4 KB of JSONB components per asset row. Now:

- the geometry-derived context (areas, impact radius, exposure, hazard overlays) lives on the
  asset's own ``risk_score`` row, so a refresh writes each asset once; ``risk_asset_context`` is
  dropped (its rows are copied over);
- ``inputs`` keeps the attribute and alarm inputs of the score as a short JSON array; the
  explanation (``GET /assets/{id}/risk``) is rebuilt from it and the context by the same model
  code, instead of storing ~1.4 KB of JSON per asset;
- the foreign key ``risk_score.asset_id → asset`` becomes a statement-level ``AFTER DELETE``
  trigger on ``asset`` that deletes the scores of the deleted assets (what ``ON DELETE CASCADE``
  did), without per-row checks on insert;
- a GIN index on the asset rows' ``area_ids`` lets one alarm re-aggregate only its areas;
- the ``(scope, plate)`` index leaves the asset rows out (reads by plate are of cell and area
  rows): one index fewer to keep up on 100 k rows per refresh.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTEXT_COLUMNS = (
    "h3_res",
    "area_ids",
    "radius_m",
    "radius_basis",
    "population",
    "site_persons",
    "sites",
    "flood_rp_yr",
    "landslide",
)

FORGET = """
CREATE OR REPLACE FUNCTION cityrisk_forget_risk_scores() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM risk_score r USING gone g WHERE r.asset_id = g.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.add_column("risk_score", sa.Column("h3_res", sa.SmallInteger(), nullable=True))
    op.add_column(
        "risk_score", sa.Column("area_ids", postgresql.ARRAY(sa.BigInteger()), nullable=True)
    )
    op.add_column("risk_score", sa.Column("radius_m", sa.Float(), nullable=True))
    op.add_column("risk_score", sa.Column("radius_basis", sa.Text(), nullable=True))
    op.add_column("risk_score", sa.Column("population", sa.Float(), nullable=True))
    op.add_column("risk_score", sa.Column("site_persons", sa.Float(), nullable=True))
    op.add_column(
        "risk_score",
        sa.Column("sites", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("risk_score", sa.Column("flood_rp_yr", sa.Float(), nullable=True))
    op.add_column("risk_score", sa.Column("landslide", sa.Text(), nullable=True))
    op.add_column(
        "risk_score",
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    cols = ", ".join(f"{c} = c.{c}" for c in CONTEXT_COLUMNS)
    op.execute(
        f"UPDATE risk_score r SET {cols} FROM risk_asset_context c "
        "WHERE r.scope = 'asset' AND r.asset_id = c.asset_id"
    )
    op.drop_index("ix_risk_asset_context_area_ids", table_name="risk_asset_context")
    op.drop_index("ix_risk_asset_context_cell_id", table_name="risk_asset_context")
    op.drop_table("risk_asset_context")
    op.create_index(
        "ix_risk_score_area_ids",
        "risk_score",
        ["area_ids"],
        unique=False,
        postgresql_using="gin",
        postgresql_where=sa.text("scope = 'asset'"),
    )
    op.drop_index("ix_risk_score_scope_plate", table_name="risk_score")
    op.create_index(
        "ix_risk_score_scope_plate",
        "risk_score",
        ["scope", "plate"],
        unique=False,
        postgresql_where=sa.text("scope <> 'asset'"),
    )
    op.drop_constraint("fk_risk_score_asset_id_asset", "risk_score", type_="foreignkey")
    op.execute(FORGET)
    op.execute(
        "CREATE TRIGGER asset_forget_risk_scores AFTER DELETE ON asset "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
        "EXECUTE FUNCTION cityrisk_forget_risk_scores()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS asset_forget_risk_scores ON asset")
    op.execute("DROP FUNCTION IF EXISTS cityrisk_forget_risk_scores()")
    op.execute(
        "DELETE FROM risk_score r WHERE NOT EXISTS (SELECT 1 FROM asset a WHERE a.id = r.asset_id) AND r.asset_id IS NOT NULL"
    )
    op.create_foreign_key(
        "fk_risk_score_asset_id_asset",
        "risk_score",
        "asset",
        ["asset_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_index("ix_risk_score_area_ids", table_name="risk_score")
    op.drop_index("ix_risk_score_scope_plate", table_name="risk_score")
    op.create_index("ix_risk_score_scope_plate", "risk_score", ["scope", "plate"], unique=False)
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
    op.create_index(
        "ix_risk_asset_context_area_ids",
        "risk_asset_context",
        ["area_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.execute(
        "INSERT INTO risk_asset_context (asset_id, h3_res, cell_id, area_ids, radius_m, "
        "radius_basis, population, site_persons, sites, flood_rp_yr, landslide, computed_at) "
        "SELECT asset_id, h3_res, cell_id, coalesce(area_ids, '{}'), radius_m, radius_basis, "
        "population, site_persons, coalesce(sites, '{}'), flood_rp_yr, landslide, computed_at "
        "FROM risk_score WHERE scope = 'asset' AND radius_m IS NOT NULL"
    )
    for column in ("inputs", *reversed(CONTEXT_COLUMNS)):
        op.drop_column("risk_score", column)
