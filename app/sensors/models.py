"""Tables of the sensor domain: ``sensor``, ``reading`` (by time), ``latest_reading``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

SENSOR_STATUSES = ("active", "inactive", "maintenance", "retired")


class Sensor(Base):
    """A device reporting one indicator, bound to the asset it watches."""

    __tablename__ = "sensor"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in SENSOR_STATUSES) + ")", name="status"
        ),
        Index("ix_sensor_geom", "geom", postgresql_using="gist"),
        Index("ix_sensor_asset_id", "asset_id"),
        Index("ix_sensor_kind", "kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="SET NULL"))
    binding_rule: Mapped[str | None] = mapped_column(Text)
    binding_distance_m: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    interval_s: Mapped[int | None] = mapped_column(Integer)
    installed_on: Mapped[date | None] = mapped_column(Date)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reading(Base):
    """One value of one sensor at one instant. Range-partitioned by ``ts``.

    The primary key (sensor_id, ts) makes ingestion idempotent: a replayed reading is a
    conflict, not a second row. Partitions are created ahead of time by the ingest domain.
    """

    __tablename__ = "reading"
    __table_args__ = (
        Index("ix_reading_ts", "ts", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (ts)"},
    )

    # No foreign key to sensor, on purpose: ingest checks sensors once per batch, a per-row FK
    # check would cost throughput, and attaching a partition would need a SHARE ROW EXCLUSIVE
    # lock on `sensor`. Sensors are retired (status), not deleted.
    sensor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    quality: Mapped[int] = mapped_column(SmallInteger, server_default="0")


class LatestReading(Base):
    """The newest reading of each sensor, upserted with every ingest batch."""

    __tablename__ = "latest_reading"
    # Room on each page for in-place (HOT) updates: every batch rewrites these rows.
    __table_args__ = ({"postgresql_with": {"fillfactor": 50}},)

    sensor_id: Mapped[int] = mapped_column(
        ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Float)
    quality: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class MobileReading(Base):
    """A reading from a moving device (a patrol vehicle's gas detector): position, no sensor.

    Joined at ingest to the nearest asset of a compatible kind within tolerance; the join's
    distance is kept. (kind, ts, geom) is unique, so replays are counted, not stored twice.
    """

    __tablename__ = "mobile_reading"
    __table_args__ = (
        UniqueConstraint("kind", "ts", "geom"),
        Index("ix_mobile_reading_ts", "ts", postgresql_using="brin"),
        Index("ix_mobile_reading_geom", "geom", postgresql_using="gist"),
        Index("ix_mobile_reading_asset_id", "asset_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Float)
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    device: Mapped[str | None] = mapped_column(Text)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="SET NULL"))
    distance_m: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
