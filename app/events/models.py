"""Tables of the events domain: ``suspected_event`` and its member alarms.

A suspected event is what several alarms of one network and indicator family, close in space
and in data time, say together: "something happened here" (a burst, a leak), with the assets
that best explain which sensors moved most and an area to look in. Alarms stay the unit of the
analysts' workflow; an event groups them and is closed or dismissed as a whole.
"""

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
    Integer,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

#: ``open`` while it is being regrouped; ``closed`` (dealt with) and ``dismissed`` (not one
#: event, or not real) by an analyst; ``merged`` when regrouping joined it into another event
#: (``merged_into_id``). Only open events are regrouped or drawn on the map.
EVENT_STATES = ("open", "closed", "dismissed", "merged")


class SuspectedEvent(Base):
    """Alarms grouped in space and data time, with the candidate assets and area that explain
    them (the localisation)."""

    __tablename__ = "suspected_event"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in EVENT_STATES) + ")", name="state"
        ),
        Index("ix_suspected_event_state", "state"),
        Index("ix_suspected_event_last_ts", "last_ts"),
        Index("ix_suspected_event_area", "area", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    state: Mapped[str] = mapped_column(Text, server_default="open")
    # network/indicator family of its alarms, e.g. "water/hydraulic" (app.events.service.family)
    family: Mapped[str] = mapped_column(Text)
    # data time: the first alarm's onset (opened_ts) and the latest reading of any member
    # (last_seen_at)
    first_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    n_alarms: Mapped[int] = mapped_column(Integer)
    n_sensors: Mapped[int] = mapped_column(Integer)
    peak_level: Mapped[int] = mapped_column(SmallInteger)
    # The best candidate asset (a pipe), also first in ``candidates``.
    top_asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="SET NULL"))
    # Ranked candidates: [{"asset_id", "kind", "name", "rank", "score", "fit", "proximity"}].
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    # Where to look: hull of the top candidates (or of the sensors) + a buffer; WGS84.
    area: Mapped[WKBElement] = mapped_column(
        Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False
    )
    method: Mapped[str] = mapped_column(Text)
    # The parameters the grouping and the localisation used (EventSettings), and its notes.
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    notes: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("suspected_event.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)
    close_note: Mapped[str | None] = mapped_column(Text)


class SuspectedEventAlarm(Base):
    """An alarm's membership of an event: an alarm is in one event at most."""

    __tablename__ = "suspected_event_alarm"
    __table_args__ = (Index("ix_suspected_event_alarm_event_id", "event_id"),)

    alarm_id: Mapped[int] = mapped_column(
        ForeignKey("alarm.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("suspected_event.id", ondelete="CASCADE"))
    # How much its sensor moved: the localisation's weight (see the event's notes for how).
    magnitude: Mapped[float | None] = mapped_column(Float)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
