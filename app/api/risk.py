"""HTTP routes of risk scoring: explain one asset, cells, areas, the drill-down, refresh."""

from __future__ import annotations

from typing import Annotated

import h3
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from app.auth.dependencies import RiskRefresher
from app.auth.service import audit_as
from app.db import DbSession
from app.errors import InvalidInput
from app.params import GEOJSON_FEATURES, BBoxQuery, GeoJSONResponse, geojson_response
from app.risk import refresh, service
from app.risk.schemas import (
    AreaRiskRead,
    AssetRiskRead,
    CellAssetRead,
    CityRead,
    RefreshIn,
    RefreshOut,
)
from app.taxonomy.risk import COMPOSITE, SCORED_PLATES

router = APIRouter(tags=["risk"])

AssetId = Annotated[int, PathParam(gt=0, lt=2**63, description="Asset id")]
PlateQuery = Annotated[
    str | None, Query(description="A scored plate, or `composite` (default): all plates")
]


def _plate(plate: str | None) -> str:
    value = plate or COMPOSITE
    if value != COMPOSITE and value not in SCORED_PLATES:
        raise InvalidInput(
            f"plate was {value!r}; expected one of {', '.join((*SCORED_PLATES, COMPOSITE))}"
        )
    return value


@router.get("/assets/{asset_id}/risk", summary="Explain an asset's risk score")
def get_asset_risk(asset_id: AssetId, db_session: DbSession) -> AssetRiskRead:
    """Method, likelihood and consequence, class, and each component with value and source."""
    return service.get_asset_risk(db_session=db_session, asset_id=asset_id)


@router.get(
    "/risk/cells",
    summary="H3 cell scores (GeoJSON)",
    response_class=GeoJSONResponse,
    responses=GEOJSON_FEATURES,
)
def list_cells(db_session: DbSession, bbox: BBoxQuery = None, plate: PlateQuery = None) -> Response:
    cells = service.list_cells(db_session=db_session, plate=_plate(plate), bbox=bbox)
    return geojson_response(cells)


@router.get("/risk/areas", summary="Admin-area scores, worst first")
def list_areas(db_session: DbSession, plate: PlateQuery = None) -> list[AreaRiskRead]:
    return service.list_areas(db_session=db_session, plate=_plate(plate))


@router.get("/risk/city", summary="Drill-down top: asset counts by class per plate")
def get_city(db_session: DbSession) -> CityRead:
    return service.get_city(db_session=db_session)


@router.get(
    "/risk/areas/{area_id}/cells",
    summary="Drill-down area → cells (GeoJSON)",
    response_class=GeoJSONResponse,
    responses=GEOJSON_FEATURES,
)
def list_area_cells(area_id: AssetId, db_session: DbSession, plate: PlateQuery = None) -> Response:
    cells = service.list_area_cells(db_session=db_session, area_id=area_id, plate=_plate(plate))
    return geojson_response(cells)


@router.get("/risk/cells/{cell_id}/assets", summary="Drill-down cell → assets, worst first")
def list_cell_assets(
    cell_id: Annotated[str, PathParam(description="H3 cell index, e.g. 8a2a1072b59ffff")],
    db_session: DbSession,
    plate: PlateQuery = None,
) -> list[CellAssetRead]:
    if not h3.is_valid_cell(cell_id):
        raise InvalidInput(
            f"cell_id was {cell_id[:80]!r}; expected an H3 cell index (15 hex digits, e.g. "
            "8a2a1072b59ffff)"
        )
    return service.list_cell_assets(
        db_session=db_session, cell_id=cell_id, plate=None if plate is None else _plate(plate)
    )


@router.post("/risk/refresh", summary="Recompute risk scores (full, or incremental)")
def post_refresh(
    db_session: DbSession, who: RiskRefresher, body: RefreshIn | None = None
) -> RefreshOut:
    """Full refresh in one transaction; with ``asset_ids`` / ``alarm_ids`` only those."""
    body = body or RefreshIn()
    methods = body.methods or None
    if body.alarm_ids is not None or body.asset_ids is not None:
        ids = list(body.asset_ids or [])
        if body.alarm_ids:
            ids += refresh.assets_of_alarms(db_session, body.alarm_ids)
        report = refresh.refresh_assets(
            db_session, ids, recontext=body.recontext, h3_res=body.h3_res, methods=methods
        )
        mode = "incremental"
    else:
        report = refresh.refresh_all(db_session, h3_res=body.h3_res, methods=methods)
        mode = "full"
    audit_as(
        db_session, who, "risk.refresh", mode, {"assets": report.assets, "cells": report.cells}
    )
    return RefreshOut(
        mode=mode,
        assets=report.assets,
        cells=report.cells,
        areas=report.areas,
        contexts=report.contexts,
        db_s=round(report.db_s, 4),
        total_s=round(report.total_s, 4),
        stages_s={k: round(v, 4) for k, v in report.stages.items()},
    )
