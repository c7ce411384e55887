"""Request models of the impact routes (the responses are documented JSON documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.impact.params import SCENARIOS
from app.params import Text

MAX_NOTE = 2000


class ScenarioIn(BaseModel):
    scenario: str = Field(description=f"one of {', '.join(SCENARIOS)}")
    params: dict[str, Any] = Field(
        default_factory=dict, description="inputs; missing ones come from the asset or defaults"
    )


class ImpactIn(BaseModel):
    """One scenario (``scenario`` + ``params``), or several (``scenarios``), on one target."""

    scenario: str | None = Field(None, description=f"one of {', '.join(SCENARIOS)}")
    params: dict[str, Any] = Field(default_factory=dict)
    scenarios: list[ScenarioIn] | None = Field(None, max_length=4)
    asset_id: int | None = Field(None, gt=0, lt=2**63)
    point: list[float] | None = Field(
        None, min_length=2, max_length=2, description="[lon, lat], WGS84 degrees"
    )
    at: datetime | None = Field(None, description="data time (RFC 3339); default now")
    cascade_mode: Literal["propagate", "leontief"] = Field(
        "propagate",
        description="propagate: time-stepped failures; leontief: also the steady-state "
        "inoperability q = (I − Mᵀ)⁻¹ u",
    )
    coupling: float = Field(
        0.5, gt=0, lt=1, description="leontief: share of a supplier's inoperability passed on"
    )

    @model_validator(mode="after")
    def _one_way(self) -> ImpactIn:
        if (self.scenario is None) == (self.scenarios is None):
            raise ValueError("give scenario (with params) or scenarios, not both")
        return self

    def calls(self) -> list[ScenarioIn]:
        if self.scenarios is not None:
            return self.scenarios
        assert self.scenario is not None
        return [ScenarioIn(scenario=self.scenario, params=self.params)]


class IncidentIn(BaseModel):
    """From an alarm (``alarm_id``), or by hand (a scenario on a target, as ``POST /impact``)."""

    alarm_id: int | None = Field(None, gt=0, lt=2**63)
    scenario: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    scenarios: list[ScenarioIn] | None = Field(None, max_length=4)
    asset_id: int | None = Field(None, gt=0, lt=2**63)
    point: list[float] | None = Field(None, min_length=2, max_length=2)
    at: datetime | None = None
    title: Text | None = Field(None, max_length=200)

    def calls(self) -> list[ScenarioIn]:
        if self.scenarios is not None:
            return self.scenarios
        return (
            []
            if self.scenario is None
            else [ScenarioIn(scenario=self.scenario, params=self.params)]
        )


class RecomputeIn(BaseModel):
    at: datetime | None = Field(None, description="data time; default now (the wind now)")
