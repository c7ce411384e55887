"""``data_version``: one row per versioned table, bumped by a statement-level trigger (0007)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class DataVersion(Base):
    """How many writing statements a table has seen; tile caches key on it."""

    __tablename__ = "data_version"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
