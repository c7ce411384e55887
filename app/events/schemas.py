"""Pydantic schemas of the events API (``/events``): what an analyst sends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.params import Text


class EventTransitionIn(BaseModel):
    """Close (dealt with) or dismiss (not one event, or not real) an open suspected event."""

    to: Literal["closed", "dismissed"] = Field(description="Target state", examples=["closed"])
    note: Text | None = Field(default=None, max_length=4000)

    model_config = ConfigDict(extra="forbid")
