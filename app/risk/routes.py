"""HTTP routes of risk scoring: explain one asset, cells, areas, the drill-down, refresh."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.db import DbSession
from app.errors import InvalidInput
from app.params import BBoxQuery, geojson_response
from app.risk import service
from app.taxonomy.risk import COMPOSITE, SCORED_PLATES

router = APIRouter(tags=["risk"])

AssetId = Annotated[int, PathParam(gt=0, lt=2**63, description="Asset id")]


def _plate(plate: str | None) -> str:
    value = plate or COMPOSITE
    if value != COMPOSITE and value not in SCORED_PLATES:
        raise InvalidInput(
            f"plate was {value!r}; expected one of {', '.join((*SCORED_PLATES, 'composite'))}"
        )
    return value


PlateQuery = Annotated[
    str | None, Query(description="A scored plate, or `composite` (default): all plates")
]


class RefreshIn(BaseModel):
    """Full refresh unless ``asset_ids`` or ``alarm_ids`` name what changed."""

    h3_res: int = Field(service.DEFAULT_H3_RES, ge=0, le=15, description="H3 resolution")
    methods: dict[str, Literal["matrix", "lec"]] = Field(
        default_factory=dict, description="Method per plate, overriding the defaults"
    )
    asset_ids: list[int] | None = Field(None, description="Incremental: these assets only")
    alarm_ids: list[int] | None = Field(None, description="Incremental: these alarms' assets")
    recontext: bool = Field(False, description="Incremental: redo geometry-derived context")


@router.get("/assets/{asset_id}/risk", summary="Explain an asset's risk score")
def get_asset_risk(asset_id: AssetId, session: DbSession) -> dict[str, Any]:
    """Method, likelihood and consequence, class, and each component with value and source."""
    return service.asset_risk(session, asset_id)


@router.get(
    "/risk/cells",
    summary="H3 cell scores (GeoJSON)",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def get_cells(session: DbSession, bbox: BBoxQuery = None, plate: PlateQuery = None) -> Response:
    fc = service.cells(session, plate=_plate(plate), bbox=bbox)
    return geojson_response(fc)


@router.get("/risk/areas", summary="Admin-area scores, worst first")
def get_areas(session: DbSession, plate: PlateQuery = None) -> list[dict[str, Any]]:
    return service.areas(session, plate=_plate(plate))


@router.get("/risk/city", summary="Drill-down top: asset counts by class per plate")
def get_city(session: DbSession) -> dict[str, Any]:
    return service.city(session)


@router.get(
    "/risk/areas/{area_id}/cells",
    summary="Drill-down area → cells (GeoJSON)",
    response_class=Response,
)
def get_area_cells(area_id: AssetId, session: DbSession, plate: PlateQuery = None) -> Response:
    return geojson_response(service.area_cells(session, area_id, plate=_plate(plate)))


@router.get("/risk/cells/{cell_id}/assets", summary="Drill-down cell → assets, worst first")
def get_cell_assets(
    cell_id: str, session: DbSession, plate: PlateQuery = None
) -> list[dict[str, Any]]:
    return service.cell_assets(session, cell_id, plate=None if plate is None else _plate(plate))


@router.post("/risk/refresh", summary="Recompute risk scores (full, or incremental)")
def post_refresh(session: DbSession, body: RefreshIn | None = None) -> dict[str, Any]:
    """Full refresh in one transaction; with ``asset_ids`` / ``alarm_ids`` only those."""
    body = body or RefreshIn()
    methods = body.methods or None
    if body.alarm_ids is not None or body.asset_ids is not None:
        ids = list(body.asset_ids or [])
        if body.alarm_ids:
            ids += service.assets_of_alarms(session, body.alarm_ids)
        report = service.refresh_assets(
            session, ids, recontext=body.recontext, h3_res=body.h3_res, methods=methods
        )
        mode = "incremental"
    else:
        report = service.refresh_all(session, h3_res=body.h3_res, methods=methods)
        mode = "full"
    return {
        "mode": mode,
        "assets": report.assets,
        "cells": report.cells,
        "areas": report.areas,
        "contexts": report.contexts,
        "db_s": round(report.db_s, 4),
        "total_s": round(report.total_s, 4),
        "stages_s": {k: round(v, 4) for k, v in report.stages.items()},
    }
