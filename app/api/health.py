"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.db import check_connection
from app.errors import DatabaseUnavailable, error_headers

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str | None = None
    postgres_version: str | None = None
    postgis_version: str | None = None
    detail: str | None = None


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """The process is alive (says nothing about the database)."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Database unreachable or lacks PostGIS (with `Retry-After`)",
        }
    },
)
def readyz(request: Request) -> Readiness | JSONResponse:
    """The database answers and has PostGIS >= 3.1; 503 with the reason otherwise."""
    engine = request.app.state.engine
    try:
        if engine is None:
            raise DatabaseUnavailable(request.app.state.db_error or "no database configured")
        info = check_connection(engine)
    except DatabaseUnavailable as exc:
        body = Readiness(status="unavailable", detail=exc.message)
        return JSONResponse(
            status_code=503,
            content=body.model_dump(exclude_none=True),
            headers=error_headers(request, exc),
        )
    return Readiness(
        status="ready",
        database=info.database,
        postgres_version=info.postgres_version,
        postgis_version=info.postgis_version,
    )
