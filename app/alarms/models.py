"""Tables of the warning domain: ``rule``, ``alarm`` and its audit rows ``alarm_event``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.taxonomy.alarms import ALARM_STATES


class Rule(Base):
    """A versioned warning rule: thresholds for levels I-IV and how they must hold."""

    __tablename__ = "rule"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint("direction IN ('above', 'below')", name="direction"),
        # One current version per code; older versions stay so alarms can name them.
        Index("uq_rule_current_code", "code", unique=True, postgresql_where=text("is_current")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    title: Mapped[str] = mapped_column(Text)
    # threshold | rate | offline | flatline | spike (how `conditions` is read)
    kind: Mapped[str] = mapped_column(Text, server_default="threshold")
    indicator: Mapped[str] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(Text, server_default="above")
    # {"1": red, "2": orange, "3": yellow, "4": blue} thresholds in the indicator's unit.
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONB)
    target: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    is_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    is_current: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class Alarm(Base):
    """A graded alarm raised by a rule on a sensor or an asset."""

    __tablename__ = "alarm"
    __table_args__ = (
        CheckConstraint("level BETWEEN 1 AND 4", name="level"),
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in ALARM_STATES) + ")", name="state"
        ),
        Index("ix_alarm_state", "state"),
        Index("ix_alarm_opened_ts", "opened_ts"),
        Index("ix_alarm_geom", "geom", postgresql_using="gist"),
        # One open alarm per (rule, subject): a persisting condition updates it, never duplicates.
        # The subject is the sensor, or (asset-level alarms) minus the asset id.
        Index(
            "uq_alarm_open_subject",
            "rule_code",
            text("coalesce(sensor_id, -asset_id)"),
            unique=True,
            postgresql_where=text("state <> 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rule.id", ondelete="RESTRICT"))
    rule_code: Mapped[str] = mapped_column(Text)
    sensor_id: Mapped[int | None] = mapped_column(ForeignKey("sensor.id", ondelete="SET NULL"))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="SET NULL"))
    level: Mapped[int] = mapped_column(SmallInteger)
    # The most severe level it ever reached (1 = I); a recurrence after a clear keeps it.
    peak_level: Mapped[int | None] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(Text, server_default="raised")
    # Wall-clock time the alarm was recorded (SLA timers start here) ...
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # ... and the data time of the reading that raised it (a backfill raises in the past).
    opened_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Set when readings return to normal (auto-clear); the alarm stays visible until closed.
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # data time
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pushed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    title: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[str | None] = mapped_column(Text)
    owner_unit: Mapped[str | None] = mapped_column(Text)
    first_value: Mapped[float | None] = mapped_column(Float)
    peak_value: Mapped[float | None] = mapped_column(Float)
    last_value: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False)
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class SensorProfile(Base):
    """A sensor's learned normal behaviour (``cityrisk rules calibrate``), versioned.

    Arrays are :class:`gis.baseline.Profile`'s row for this sensor, bin-major: ``centre[b]``
    and ``spread[b]`` in the indicator's unit for time-of-day × day-type bin ``b``.
    """

    __tablename__ = "sensor_profile"
    __table_args__ = (
        UniqueConstraint("sensor_id", "version"),
        Index(
            "uq_sensor_profile_current",
            "sensor_id",
            unique=True,
            postgresql_where=text("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    learned_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    learned_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    n_readings: Mapped[int] = mapped_column(Integer)
    bin_s: Mapped[int] = mapped_column(Integer)
    day_mode: Mapped[str] = mapped_column(Text)
    utc_offset_s: Mapped[int] = mapped_column(Integer)
    centre: Mapped[list[float]] = mapped_column(ARRAY(Float))
    spread: Mapped[list[float]] = mapped_column(ARRAY(Float))
    count: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    level: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    # median and MAD × 1.4826 of all calibration readings (the spread floor is relative to it)
    global_centre: Mapped[float | None] = mapped_column(Float)
    global_spread: Mapped[float | None] = mapped_column(Float)
    learned: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(Text)


class DetectorState(Base):
    """What a stateful rule (CUSUM) carries between batches, per rule version and sensor."""

    __tablename__ = "detector_state"

    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rule.id", ondelete="CASCADE"), primary_key=True
    )
    sensor_id: Mapped[int] = mapped_column(
        ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # data time of the last step
    value: Mapped[float] = mapped_column(Float)
    profile_id: Mapped[int | None] = mapped_column(BigInteger)


class AlarmEvent(Base):
    """One audit row per alarm change: who, when, from which state/level to which."""

    __tablename__ = "alarm_event"
    __table_args__ = (Index("ix_alarm_event_alarm_id", "alarm_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarm.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Data time of the reading behind an engine event (``at`` is when it was recorded).
    ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text)
    from_level: Mapped[int | None] = mapped_column(SmallInteger)
    to_level: Mapped[int | None] = mapped_column(SmallInteger)
    note: Mapped[str | None] = mapped_column(Text)
