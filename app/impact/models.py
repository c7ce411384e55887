"""Tables of the impact domain: ``incident`` with its scenario and result, ``incident_zone``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
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


class Incident(Base):
    """An incident from an alarm or created by hand; the impact engine fills its zones."""

    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'contained', 'closed')", name="status"),
        Index("ix_incident_geom", "geom", postgresql_using="gist"),
        Index("ix_incident_zone", "zone", postgresql_using="gist"),
        Index("ix_incident_alarm_id", "alarm_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarm.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="open")
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    # The outer notify area: union of the computed impact zones.
    zone: Mapped[WKBElement | None] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    scenario: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    results: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When the stored result was computed (wall clock), and for which data time (the alarm's
    # reading time, or the one asked for): a recompute at the same data time gives the same zones.
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    data_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IncidentZone(Base):
    """One zone of an incident's impact: a threshold ring, a protective-action square, an
    isolated network segment… with the model, threshold and source that drew it."""

    __tablename__ = "incident_zone"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity"),
        Index("ix_incident_zone_incident_id", "incident_id"),
        Index("ix_incident_zone_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    ord: Mapped[int] = mapped_column(SmallInteger)
    scenario: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(Text)
    radius_m: Mapped[float | None] = mapped_column(Float)
    # 1 (most severe: red) … 4 (blue), as the four-colour scales.
    severity: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )
