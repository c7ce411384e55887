"""Request and response models of the risk routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.params import DbId
from app.risk.refresh import DEFAULT_H3_RES


class ClassFields(BaseModel):
    risk_class: int = Field(description="1 重大 red, 2 较大 orange, 3 一般 yellow, 4 低 blue")
    class_colour: str


class AssetRiskRead(ClassFields):
    """One asset's stored score with every component that explains it."""

    asset_id: int
    kind: str
    plate: str
    name: str | None
    method: str = Field(description="matrix (5 × 5 L × S) or lec (D = L × E × C)")
    likelihood: float
    consequence: float
    score: float
    norm: float | None = Field(description="band-aligned score in [0, 1]")
    class_name: str
    cell_id: str | None
    area_ids: list[int]
    components: dict[str, Any] = Field(
        description="likelihood factors, consequence, score: each with value, input, unit, source"
    )
    computed_at: datetime


class Aggregate(ClassFields):
    """What a cell or area row aggregates of its assets (it is as risky as its worst)."""

    assets: int
    by_class: dict[str, int]
    max_norm: float
    sum_norm: float
    mean_norm: float
    worst_asset_id: int
    worst_method: str
    worst_score: float


class AreaRiskRead(Aggregate):
    area_id: int
    name: str | None
    admin_level: str | None
    plate: str
    score: float
    norm: float | None


class PlateCounts(BaseModel):
    assets: int
    by_class: dict[str, int]
    max_norm: float


class ClassLegend(BaseModel):
    colour: str
    name: str


class CityRead(BaseModel):
    """Top of the drill-down: city → areas → cells → assets."""

    plates: dict[str, PlateCounts]
    classes: dict[str, ClassLegend]
    areas: str = Field(description="where the drill-down continues")


class CellAssetRead(ClassFields):
    asset_id: int
    kind: str
    name: str | None
    plate: str
    method: str
    score: float
    norm: float | None
    explain: str = Field(description="URL of the asset's explained score")


class RefreshIn(BaseModel):
    """Full refresh unless ``asset_ids`` or ``alarm_ids`` name what changed."""

    h3_res: int = Field(DEFAULT_H3_RES, ge=0, le=15, description="H3 resolution")
    methods: dict[str, Literal["matrix", "lec"]] = Field(
        default_factory=dict, description="Method per plate, overriding the defaults"
    )
    asset_ids: list[DbId] | None = Field(None, description="Incremental: these assets only")
    alarm_ids: list[DbId] | None = Field(None, description="Incremental: these alarms' assets")
    recontext: bool = Field(False, description="Incremental: redo geometry-derived context")


class RefreshOut(BaseModel):
    mode: Literal["full", "incremental"]
    assets: int
    cells: int
    areas: int
    contexts: int = Field(description="assets whose geometry-derived context was computed")
    db_s: float = Field(description="seconds spent in database calls")
    total_s: float
    stages_s: dict[str, float]
