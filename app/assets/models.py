"""Tables of the asset domain: ``asset`` and ``asset_link``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.taxonomy.assets import LINK_TYPES, PLATES

# The plates of the Hefei model plus the exposure layer (who and what can be harmed).


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Asset(Base):
    """One thing on the map: a pipe, bridge, plant, flood zone, school, population cell…

    Exposure (schools, hospitals, population cells…) is stored here too, as plate
    ``exposure``, so one import path, one collection mechanism and one spatial index serve all.
    """

    __tablename__ = "asset"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(f"plate IN ({_in(PLATES)})", name="plate"),
        Index("ix_asset_geom", "geom", postgresql_using="gist"),
        # Lets ST_DWithin(geom::geography, …, metres) use an index (links, sensor binding).
        Index("ix_asset_geog", text("(geom::geography)"), postgresql_using="gist"),
        Index("ix_asset_kind", "kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(Text, server_default="manual")
    external_id: Mapped[str] = mapped_column(Text)
    plate: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Geodesic measures on the WGS84 spheroid, kept in step with geom by PostgreSQL itself.
    length_m: Mapped[float] = mapped_column(
        Float, Computed("ST_Length(geom::geography)", persisted=True)
    )
    area_m2: Mapped[float] = mapped_column(
        Float, Computed("ST_Area(geom::geography)", persisted=True)
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AssetLink(Base):
    """A dependency or coupling between two assets, and the rule that made it."""

    __tablename__ = "asset_link"
    __table_args__ = (
        UniqueConstraint("from_asset_id", "to_asset_id", "link_type", "rule"),
        CheckConstraint(f"link_type IN ({_in(LINK_TYPES)})", name="link_type"),
        CheckConstraint("from_asset_id <> to_asset_id", name="not_self"),
        Index("ix_asset_link_to_asset_id", "to_asset_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    from_asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    to_asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    link_type: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(Text, server_default="manual")
    distance_m: Mapped[float | None] = mapped_column(Float)
    # How long the loss of ``from`` takes to reach ``to`` (delay_h), and how long ``to`` then
    # bridges it on its own (buffer_h: a generator's fuel, a tank's storage), hours.
    delay_h: Mapped[float | None] = mapped_column(Float)
    buffer_h: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
