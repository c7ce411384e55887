"""Tables of the risk domain: ``risk_score`` per asset, grid cell or area, per plate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# Four-colour risk classes (重大/较大/一般/低): 1 red, 2 orange, 3 yellow, 4 blue. Kept apart
# from the warning level of an alarm, which uses the same colours for another meaning.
RISK_CLASSES = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}


class RiskScore(Base):
    """A score with the components that explain it."""

    __tablename__ = "risk_score"
    __table_args__ = (
        CheckConstraint("scope IN ('asset', 'cell', 'area')", name="scope"),
        CheckConstraint("risk_class BETWEEN 1 AND 4", name="risk_class"),
        Index("ix_risk_score_asset_id", "asset_id"),
        Index("ix_risk_score_cell_id", "cell_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
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
