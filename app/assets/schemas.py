"""Pydantic schemas of the asset API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AttributeRead(BaseModel):
    name: str
    type: str
    unit: str | None = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] | None = None


class KindRead(BaseModel):
    id: str
    plate: str
    title: str
    geometries: list[str]
    attributes: list[AttributeRead]
    description: str = ""


class TaxonomyRead(BaseModel):
    version: int
    plates: dict[str, str]
    kinds: list[KindRead]


class RejectionRead(BaseModel):
    row: int = Field(description="1-based feature number in the layer (CSV: data line)")
    external_id: str | None
    reason: str


class ImportReportRead(BaseModel):
    file: str
    layer: str | None
    kind: str
    plate: str
    crs: str = Field(description="CRS the coordinates were read in")
    rows_read: int
    accepted: int
    inserted: int
    updated: int
    unchanged: int
    rejected: list[RejectionRead] = Field(
        description="The first rejected rows (CITYRISK_MAX_REJECTED_LISTED of them at most)"
    )
    rejected_count: int = Field(description="How many rows were rejected in all")
    rejected_unlisted: int = Field(description="Rejected rows not listed in `rejected`")
    notes: list[str]
    lines_as_points: int = Field(
        0, description="Lines shorter than max_point_line_m stored as their midpoints"
    )
    committed: bool


class LinkRead(BaseModel):
    id: int
    direction: str = Field(description="'out' (this asset → other) or 'in'")
    other_asset_id: int
    other_kind: str
    other_name: str | None
    link_type: str
    rule: str
    distance_m: float | None


class AssetRead(BaseModel):
    type: str = "Feature"
    id: int
    geometry: dict[str, Any]
    properties: dict[str, Any]
    links: list[LinkRead]
