"""Pydantic schemas of the alarm API (``/alarms``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.params import Text


class SlaTimer(BaseModel):
    name: str = Field(description="verify | acknowledge | dispose")
    applicable: bool = Field(
        description="False for acknowledge/dispose once the verdict is false_alarm or test"
    )
    limit_s: int = Field(description="Allowed time from opened_at, for the alarm's level")
    due_at: datetime
    done_at: datetime | None = Field(description="When the step happened, if it has")
    elapsed_s: float = Field(description="From opened_at to done_at, closed_at or now")
    running: bool
    breached: bool


class AlarmEventRead(BaseModel):
    id: int
    alarm_id: int
    at: datetime = Field(description="When the change was recorded (wall clock)")
    ts: datetime | None = Field(
        None, description="Data time of the reading behind an engine change (None for people)"
    )
    actor: str
    from_state: str | None
    to_state: str
    from_level: int | None
    to_level: int | None
    note: str | None


class AlarmRead(BaseModel):
    """An alarm with its rule, subject, timestamps, allowed next states and SLA timers."""

    id: int
    rule_id: int
    rule_code: str
    rule_version: int
    rule_title: str
    indicator: str
    sensor_id: int | None
    sensor: str | None = Field(description="The sensor's external id")
    asset_id: int | None = Field(description="The alarm's asset, else its sensor's")
    asset_name: str | None
    asset_kind: str | None
    plate: str | None
    asset_owner: str | None
    level: int = Field(description="1..4: I red, II orange, III yellow, IV blue")
    peak_level: int | None = Field(None, description="The most severe level it reached")
    level_name: str
    color: str
    state: str
    verdict: str | None = Field(description="verified | false_alarm | test, once decided")
    active: bool = Field(description="Not auto-cleared and not closed")
    title: str | None
    cause: str | None
    owner_unit: str | None
    opened_at: datetime = Field(description="When it was recorded (wall clock; SLAs start here)")
    opened_ts: datetime = Field(description="Data time of the reading that raised it")
    updated_at: datetime
    last_seen_at: datetime = Field(description="Data time of the latest reading judged")
    cleared_at: datetime | None = Field(description="When the auto-clear was recorded")
    cleared_ts: datetime | None = Field(description="Data time of the reading that cleared it")
    verified_at: datetime | None
    pushed_at: datetime | None
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    disposed_at: datetime | None
    closed_at: datetime | None
    first_value: float | None
    peak_value: float | None
    last_value: float | None
    lon: float | None
    lat: float | None
    attributes: dict[str, Any]
    allowed_transitions: list[str]
    sla: list[SlaTimer]


class AlarmDetail(AlarmRead):
    events: list[AlarmEventRead] = Field(description="The audit trail, oldest first")


class AlarmStreamData(BaseModel):
    """The ``data:`` of one SSE ``alarm`` event."""

    event: AlarmEventRead
    alarm: AlarmRead | None = Field(description="The alarm as it is now; None if deleted")


class AlarmList(BaseModel):
    number_returned: int = Field(serialization_alias="numberReturned")
    alarms: list[AlarmRead]

    model_config = ConfigDict(populate_by_name=True)


class TransitionIn(BaseModel):
    to: str = Field(description="Target state", examples=["verified"])
    note: Text | None = Field(default=None, max_length=4000)

    model_config = ConfigDict(extra="forbid")


class TransitionOut(BaseModel):
    event: AlarmEventRead
    alarm: AlarmDetail


class Durations(BaseModel):
    verify: float | None
    acknowledge: float | None
    dispose: float | None


class StatsGroup(BaseModel):
    total: int
    by_level: dict[str, int] = Field(description="Keys '1'..'4'")
    by_state: dict[str, int]
    verdicts: dict[str, int] = Field(description="verified | false_alarm | test counts")
    false_alarm_share: float | None = Field(
        description="false_alarm / (verified + false_alarm); tests are left out"
    )
    mean_s: Durations = Field(description="Mean seconds from opened_at to each step")
    sla_breaches: dict[str, int]


class RuleStats(StatsGroup):
    rule_code: str


class SensorStats(StatsGroup):
    sensor_id: int | None = Field(description="None: alarms raised on assets, not sensors")
    sensor: str | None


class StatsRead(BaseModel):
    since: datetime | None
    rule: str | None
    sensor: str | None
    overall: StatsGroup
    per_rule: list[RuleStats]
    per_sensor: list[SensorStats]
    per_sensor_truncated: bool
