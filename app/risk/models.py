"""Tables of the risk domain: ``risk_score`` per asset, grid cell or area, per plate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Identity,
    Index,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class RiskScore(Base):
    """A score with the components that explain it."""

    __tablename__ = "risk_score"
    __table_args__ = (
        CheckConstraint("scope IN ('asset', 'cell', 'area')", name="scope"),
        CheckConstraint("risk_class BETWEEN 1 AND 4", name="risk_class"),
        Index("ix_risk_score_asset_id", "asset_id"),
        Index("ix_risk_score_cell_id", "cell_id"),
        # Reads by plate are of cell and area rows; leaving the 100 k asset rows out saves a
        # refresh the upkeep of an index nobody reads them by.
        Index(
            "ix_risk_score_scope_plate",
            "scope",
            "plate",
            postgresql_where=text("scope <> 'asset'"),
        ),
        # One alarm re-aggregates only its areas: their assets without a scan.
        Index(
            "ix_risk_score_area_ids",
            "area_ids",
            postgresql_using="gin",
            postgresql_where=text("scope = 'asset'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    # No foreign key: checking 100 k rows per refresh against ``asset`` (with a row lock on
    # each) cost as much as writing them. A statement-level trigger on ``asset`` deletes the
    # scores of deleted assets instead (migration 0011), as ON DELETE CASCADE did.
    asset_id: Mapped[int | None] = mapped_column(BigInteger)
    cell_id: Mapped[str | None] = mapped_column(Text)
    plate: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    likelihood: Mapped[float] = mapped_column(Float)
    consequence: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    risk_class: Mapped[int] = mapped_column(SmallInteger)
    components: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Band-aligned [0, 1] score (gis/scoring.py), comparable across methods; cells aggregate it.
    norm: Mapped[float | None] = mapped_column(Float)
    # A cell's hexagon (scope 'cell'); areas and assets take theirs from ``asset``.
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False)
    )
    # Asset rows only: what scoring derived from the geometry (kept so a rescore after an
    # alarm skips the spatial joins) …
    h3_res: Mapped[int | None] = mapped_column(SmallInteger)
    area_ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    radius_m: Mapped[float | None] = mapped_column(Float)
    radius_basis: Mapped[str | None] = mapped_column(Text)
    population: Mapped[float | None] = mapped_column(Float)
    site_persons: Mapped[float | None] = mapped_column(Float)
    sites: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    flood_rp_yr: Mapped[float | None] = mapped_column(Float)
    landslide: Mapped[str | None] = mapped_column(Text)
    # … and the attribute / alarm inputs of the score, a short JSON array from which
    # ``GET /assets/{id}/risk`` rebuilds every component (app/risk/service.py).
    inputs: Mapped[list[Any] | None] = mapped_column(JSONB)
