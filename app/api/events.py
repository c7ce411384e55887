"""HTTP routes of the suspected events: list, detail (a GeoJSON Feature with its area, member
alarms and ranked candidates), the analyst's close / dismiss, and the burst impact of the top
candidate pipe.

Events are written by the readings flow (:func:`app.events.service.update_for_alarms`); here
they are read (the read gate), closed or dismissed (``events.transition``: analyst, commander,
admin) and handed to the impact engine (``impact.compute``, as ``POST /impact``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from app.auth.dependencies import Computer, EventAnalyst
from app.db import DbSession
from app.errors import InvalidInput
from app.events import service
from app.events.models import EVENT_STATES
from app.events.schemas import EventTransitionIn
from app.impact import service as impact
from app.params import (
    GEOJSON_FEATURE,
    GEOJSON_FEATURES,
    BBoxQuery,
    GeoJSONResponse,
    Offset,
    feature,
    feature_collection,
    geojson_response,
    geometry,
)

router = APIRouter(prefix="/events", tags=["events"])

EventId = Annotated[int, PathParam(gt=0, lt=2**63, description="Suspected event id")]

#: The scenario an event on a water main calls for, and the kind it applies to.
BURST_SCENARIO = "water_main_burst"
BURST_KIND = "water_pipe"


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


def _impact_hint(event: dict[str, Any]) -> dict[str, Any] | None:
    """How to run the impact the event calls for: a burst of its top candidate water main."""
    top = (event.get("candidates") or [None])[0]
    if not top or top.get("kind") != BURST_KIND:
        return None
    return {
        "scenario": BURST_SCENARIO,
        "asset_id": top["asset_id"],
        "at": event["last_ts"],
        "href": f"/events/{event['id']}/impact",
    }


def _feature(event: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in event.items() if k != "area"}
    props["impact"] = _impact_hint(event)
    return feature(event["id"], geometry(event["area"]), props)


@router.get("", response_class=GeoJSONResponse, responses=GEOJSON_FEATURES)
def list_events(
    db_session: DbSession,
    state: Annotated[
        list[str] | None,
        Query(description=f"State(s): {', '.join(EVENT_STATES)}; repeated or comma-separated"),
    ] = None,
    bbox: BBoxQuery = None,
    since: Annotated[
        datetime | None, Query(description="Events whose data-time window ends at or after")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Events whose data-time window starts at or before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Offset = 0,
) -> Response:
    """Suspected events as a GeoJSON FeatureCollection of their areas, newest data first.

    Each feature's properties hold the window (`first_ts`, `last_ts`: data time), counts, the
    peak level, the ranked candidates, the method and parameters, and `impact` (the burst
    scenario to run when the top candidate is a water main)."""
    rows = service.list_events(
        db_session=db_session,
        states=_split(state),
        bbox=bbox,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return geojson_response(feature_collection(_feature(r) for r in rows))


@router.get(
    "/{event_id}",
    response_class=GeoJSONResponse,
    responses={**GEOJSON_FEATURE, 404: {"description": "No such event"}},
)
def read_event(db_session: DbSession, event_id: EventId) -> Response:
    """One suspected event as a GeoJSON Feature (its area), with its member alarms (strongest
    move first) and its ranked candidate assets."""
    return geojson_response(_feature(service.get_event(db_session=db_session, event_id=event_id)))


@router.post(
    "/{event_id}/transition",
    response_class=GeoJSONResponse,
    responses={
        **GEOJSON_FEATURE,
        404: {"description": "No such event"},
        409: {"description": "The event is not open (the allowed states are named)"},
        422: {"description": "Unknown target state or malformed body"},
    },
)
def post_transition(
    db_session: DbSession, event_id: EventId, body: EventTransitionIn, who: EventAnalyst
) -> Response:
    """Close (dealt with) or dismiss (not one event, or not real) an open event; who did it is
    recorded. Its alarms keep their own workflow; once closed or dismissed, they are not
    grouped again."""
    event = service.transition(
        db_session=db_session, event_id=event_id, to=body.to, actor=who.actor, note=body.note
    )
    db_session.commit()  # acknowledged means committed
    return geojson_response(_feature(event))


@router.get(
    "/{event_id}/impact",
    response_class=Response,
    responses={
        200: {
            "description": "The impact document of `POST /impact` for a burst of the top "
            "candidate water main at the event's last data time",
            "content": {"application/json": {}},
        },
        404: {"description": "No such event"},
        422: {"description": "The event's top candidate is not a water main"},
    },
)
def get_event_impact(db_session: DbSession, event_id: EventId, who: Computer) -> Response:
    """The `water_main_burst` impact of the event's top candidate pipe, at its last data time
    (the scenario, parameters and defaults of `POST /impact`)."""
    event = service.get_event(db_session=db_session, event_id=event_id)
    hint = _impact_hint(event)
    if hint is None:
        top = (event.get("candidates") or [None])[0]
        raise InvalidInput(
            f"suspected event {event_id}'s top candidate is "
            f"{'none' if not top else top.get('kind')}; {BURST_SCENARIO} applies to {BURST_KIND}"
        )
    doc = impact.compute(
        db_session,
        [impact.ScenarioCall(BURST_SCENARIO, {}, why=f"suspected event {event_id}")],
        asset_id=hint["asset_id"],
        at=event["last_ts"],
    )
    return Response(
        orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
    )
