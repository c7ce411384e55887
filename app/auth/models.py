"""Tables of the auth domain: ``api_token`` (hashed API keys) and ``audit_event``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

ROLE_CHECK = "role IN ('viewer', 'analyst', 'commander', 'admin', 'device')"


class ApiToken(Base):
    """An API key: only its SHA-256 is kept (the key itself is shown once, at creation).

    A key is 32 random bytes, so a plain hash is enough: there is nothing to brute-force that a
    slow hash (bcrypt, argon2) would protect, and the lookup stays one index probe per request.
    """

    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint(ROLE_CHECK, name="role"),
        Index("ix_api_token_hash", "token_hash", unique=True),
        Index(
            "ix_api_token_name_active",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text)
    # The first characters of the key, to tell keys apart in listings and logs.
    prefix: Mapped[str] = mapped_column(Text)
    # A device token's sensors: external ids, or prefixes ending in "*"; NULL for other roles.
    sensors: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(Text)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """One write someone did that has no audit table of its own (imports, sensor imports, risk
    refreshes, tokens made and revoked). Alarm moves are in ``alarm_event``, rule versions and
    incidents carry their actor themselves."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
