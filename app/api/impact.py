"""HTTP routes of the impact engine: what-if impacts, an alarm's impact, incidents.

What-if impacts compute and store nothing (``impact.compute``: anyone while reads are open, rate
limited); incidents are written by commanders (``incidents.write``), whose token names the actor.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from app.auth.dependencies import Computer, IncidentWriter
from app.auth.service import audit_as
from app.db import DbSession
from app.impact import service
from app.impact.schemas import ImpactIn, IncidentIn, RecomputeIn, ScenarioIn
from app.params import GEOJSON_FEATURES, GeoJSONResponse, geojson_response

router = APIRouter(tags=["impact"])

Id = Annotated[int, PathParam(gt=0, lt=2**63)]
_RESULT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The impact: inputs (value, unit, origin), zones (GeoJSON), exposure per "
        "zone, the cascade step by step, actions, notes",
        "content": {"application/json": {}},
    },
    404: {"description": "No such asset or alarm"},
    422: {"description": "Unknown scenario, bad parameter (named), wrong asset kind, point "
          "outside the data"},
}  # fmt: skip


def _json(doc: Any, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
    )


def _calls(items: list[ScenarioIn]) -> list[service.ScenarioCall]:
    return [service.ScenarioCall(i.scenario, i.params) for i in items]


@router.get("/impact/scenarios", summary="The impact scenarios and their parameters")
def list_scenarios() -> list[dict[str, Any]]:
    """Every scenario: what it applies to, each parameter with unit, default and source."""
    return service.scenario_list()


@router.post("/impact", summary="Compute an impact (what if)", response_class=Response,
             responses=_RESULT)  # fmt: skip
def post_impact(db_session: DbSession, body: ImpactIn, who: Computer) -> Response:
    """Zones, who and what is inside, what fails next and when, and the actions."""
    doc = service.compute(
        db_session,
        _calls(body.calls()),
        asset_id=body.asset_id,
        point=body.point,
        at=body.at,
        cascade_mode=body.cascade_mode,
        coupling=body.coupling,
    )
    return _json(doc)


@router.get("/alarms/{alarm_id}/impact", summary="The impact an alarm calls for",
            response_class=Response, responses=_RESULT)  # fmt: skip
def get_alarm_impact(db_session: DbSession, alarm_id: Id) -> Response:
    """Scenarios inferred from the alarm (methane by a gas main: gas migration; a pressure drop
    on a water main: a burst; ponding: a flood; a chemical plant: a toxic release with the live
    wind; a bridge: its failure), at the alarm's data time, explained."""
    return _json(service.impact_of_alarm(db_session, alarm_id))


@router.post("/incidents", summary="Open an incident (from an alarm or by hand)",
             status_code=201, response_class=Response, responses=_RESULT)  # fmt: skip
def post_incident(db_session: DbSession, body: IncidentIn, who: IncidentWriter) -> Response:
    """Compute and store the impact; the incident keeps its inputs and zones."""
    incident_id = service.create_incident(
        db_session,
        actor=who.actor,
        alarm_id=body.alarm_id,
        calls=_calls(body.calls()),
        asset_id=body.asset_id,
        point=body.point,
        at=body.at,
        title=body.title,
    )
    db_session.commit()  # acknowledged means committed
    return _json(service.get_incident(db_session=db_session, incident_id=incident_id), 201)


@router.get("/incidents", summary="Incidents, newest first")
def list_incidents(
    db_session: DbSession,
    status: Annotated[str | None, Query(description="open, contained or closed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    return _json(
        service.list_incidents(db_session=db_session, status=status, limit=limit, offset=offset)
    )


@router.get("/incidents/{incident_id}", summary="One incident with its inputs and result",
            response_class=Response, responses=_RESULT)  # fmt: skip
def get_incident(db_session: DbSession, incident_id: Id) -> Response:
    return _json(service.get_incident(db_session=db_session, incident_id=incident_id))


@router.get("/incidents/{incident_id}/zones", summary="An incident's zones (GeoJSON)",
            response_class=GeoJSONResponse, responses=GEOJSON_FEATURES)  # fmt: skip
def get_incident_zones(db_session: DbSession, incident_id: Id) -> Response:
    incident = service.get_incident(db_session=db_session, incident_id=incident_id)
    return geojson_response(incident["results"]["zones"])


@router.post("/incidents/{incident_id}/recompute", summary="Compute an incident again",
             response_class=Response, responses=_RESULT)  # fmt: skip
def post_recompute(
    db_session: DbSession, incident_id: Id, who: IncidentWriter, body: RecomputeIn | None = None
) -> Response:
    """With the readings as of ``at`` (default now): the wind may have turned."""
    at = None if body is None else body.at
    service.recompute_incident(db_session, incident_id, at=at)
    audit_as(db_session, who, "incident.recompute", f"incident {incident_id}",
             {"at": None if at is None else at.isoformat()})  # fmt: skip
    db_session.commit()
    return _json(service.get_incident(db_session=db_session, incident_id=incident_id))
