"""HTTP routes of the alarms: list, detail, transitions, live stream, CAP export, statistics.

The actor of a transition is the authenticated principal (an analyst's, a commander's or an
admin's token); the ``X-Actor`` header of earlier versions is not read any more.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from app.alarms import service, stream
from app.alarms.cap import MEDIA_TYPE as CAP_MEDIA_TYPE
from app.alarms.cap import build_cap
from app.alarms.schemas import (
    AlarmDetail,
    AlarmEventRead,
    AlarmList,
    AlarmRead,
    StatsRead,
    TransitionIn,
    TransitionOut,
)
from app.alarms.service import get_alarm
from app.alarms.stats import alarm_stats
from app.auth.dependencies import Analyst
from app.db import DbSession
from app.errors import InvalidInput
from app.flows.alarms import transition
from app.params import (
    GEOJSON,
    GEOJSON_FEATURES,
    BBoxQuery,
    Offset,
    feature,
    feature_collection,
    geojson_response,
)

router = APIRouter(prefix="/alarms", tags=["alarms"], lifespan=stream.lifespan)

AlarmId = Annotated[int, PathParam(gt=0, lt=2**63, description="Alarm id")]


def _split(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated query values, flattened: ``?state=a,b&state=c``."""
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


@router.get(
    "",
    response_model=AlarmList,
    responses={
        200: {
            "description": "JSON (`f=json`, default) or a GeoJSON FeatureCollection "
            "(`f=geojson`, `application/geo+json`)",
            "content": {GEOJSON: GEOJSON_FEATURES[200]["content"][GEOJSON]},
        }
    },
)
def list_alarms(
    db_session: DbSession,
    state: Annotated[
        list[str] | None, Query(description="State(s), repeated or comma-separated")
    ] = None,
    level: Annotated[
        list[str] | None,
        Query(description="Level(s) 1..4 (I red … IV blue), repeated or comma-separated"),
    ] = None,
    plate: Annotated[str | None, Query(description="Plate of the alarm's asset")] = None,
    kind: Annotated[str | None, Query(description="Kind of the alarm's asset")] = None,
    bbox: BBoxQuery = None,
    since: Annotated[datetime | None, Query(description="Opened at or after (RFC 3339)")] = None,
    active: Annotated[
        bool | None,
        Query(description="true: not auto-cleared and not closed; false: cleared or closed"),
    ] = None,
    f: Annotated[Literal["json", "geojson"], Query(description="Output format")] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> Response:
    """Alarms, newest first, with their SLA timers; GeoJSON with `f=geojson`.

    The asset of an alarm (for `plate` and `kind`) is its own, else its sensor's; its point is
    its own, else its sensor's, else a point on its asset.
    """
    rows = service.list_alarms(
        db_session=db_session,
        states=_split(state),
        levels=_split(level),
        plate=plate,
        kind=kind,
        bbox=bbox,
        since=since,
        active=active,
        limit=limit,
        offset=offset,
    )
    alarms = [AlarmRead.model_validate(row) for row in rows]
    if f == "geojson":
        features = []
        for alarm in alarms:
            props = alarm.model_dump(mode="json")
            lon, lat = props.pop("lon"), props.pop("lat")
            point = None if lon is None else {"type": "Point", "coordinates": [lon, lat]}
            features.append(feature(alarm.id, point, props))
        return geojson_response(feature_collection(features))
    listing = AlarmList(number_returned=len(alarms), alarms=alarms)
    return Response(listing.model_dump_json(by_alias=True), media_type="application/json")


@router.get("/stats", response_model=StatsRead)
def get_stats(
    db_session: DbSession,
    since: Annotated[datetime | None, Query(description="Alarms opened at or after")] = None,
    rule: Annotated[str | None, Query(description="Rule code")] = None,
    sensor: Annotated[str | None, Query(description="Sensor external id or id")] = None,
    sensor_limit: Annotated[
        int, Query(ge=1, le=100_000, description="At most this many per-sensor groups")
    ] = 1000,
) -> StatsRead:
    """Counts by level and state, verdicts and false-alarm share, mean times to verify,
    acknowledge and dispose (seconds from opened_at), SLA breaches: overall, per rule and per
    sensor."""
    stats = alarm_stats(
        db_session, since=since, rule=rule, sensor=sensor, sensor_limit=sensor_limit
    )
    return StatsRead.model_validate(stats)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `id:` alarm_event id, `event: alarm`, `data:` "
            '`{"event": …, "alarm": …}`; `: heartbeat` comments every 15 s',
            "content": {"text/event-stream": {}},
        },
        503: {"description": "The database is unavailable"},
    },
)
async def alarm_stream(
    request: Request,
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Replay events after this id (reconnect)"),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, lt=2**63, description="As the Last-Event-ID header (the header wins)"),
    ] = None,
    max_events: Annotated[
        int | None, Query(ge=1, description="End after this many events (tests, scripts)")
    ] = None,
    timeout_s: Annotated[
        float | None, Query(gt=0, le=86_400, description="End after this many seconds")
    ] = None,
    heartbeat_s: Annotated[
        float, Query(ge=0.1, le=300, description="Seconds between heartbeat comments")
    ] = stream.HEARTBEAT_S,
) -> StreamingResponse:
    """Alarm changes as they commit, as Server-Sent Events.

    With `Last-Event-ID` (header, as EventSource sends on reconnect) or `?last_event_id=`, the
    events after that id are replayed from the table first, then live ones follow, without
    gaps or duplicates. `max_events` and `timeout_s` end the stream (for tests and scripted
    clients such as `curl -N`); without them it runs until the client leaves or the server
    stops.
    """
    after = last_event_id
    if last_event_id_header is not None and last_event_id_header.strip():
        raw = last_event_id_header.strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**63:
            raise InvalidInput(f"Last-Event-ID must be an alarm event id (an integer); got {raw!r}")
        after = int(raw)
    hub = stream.hub_of(request.app)
    # Both before the response starts, so a database that is away is a 503, not a broken
    # stream: the hub's LISTEN (shared by every stream of the process), then for a reconnect
    # a connection of its own to replay what was missed on.
    sub = await hub.subscribe()
    try:
        replay = None if after is None else await stream.open_listener(request.app)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    body = stream.event_stream(
        hub,
        sub,
        replay=replay,
        last_event_id=after,
        max_events=max_events,
        timeout_s=timeout_s,
        heartbeat_s=heartbeat_s,
    )
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering: proxies (nginx) must not buffer the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
        # Runs when the response ends, also on disconnect: leaves the hub (and closes the
        # replay connection) even if the body never started.
        background=BackgroundTask(stream.leave, hub, sub, replay),
    )


@router.get("/{alarm_id}", response_model=AlarmDetail)
def read_alarm(db_session: DbSession, alarm_id: AlarmId) -> AlarmDetail:
    """One alarm with its audit trail (oldest first), allowed next states and SLA timers."""
    return AlarmDetail.model_validate(get_alarm(db_session, alarm_id))


@router.post(
    "/{alarm_id}/transition",
    response_model=TransitionOut,
    responses={
        404: {"description": "No such alarm"},
        409: {"description": "Not allowed from the current state (the allowed ones are listed)"},
        422: {"description": "Unknown state or malformed body"},
    },
)
def post_transition(
    db_session: DbSession, alarm_id: AlarmId, body: TransitionIn, who: Analyst
) -> TransitionOut:
    """Move an alarm along its workflow and record who did it (`alarm_event`).

    raised → verified | false_alarm | test; verified → pushed (to the owning unit, by level)
    → acknowledged → dispatched → disposed → closed; false_alarm, test → closed.
    """
    result = transition(db_session, alarm_id, body.to, who.actor, body.note)
    event = AlarmEventRead.model_validate(result.event, from_attributes=True)
    db_session.commit()  # acknowledged means committed (and the stream has it)
    return TransitionOut(
        event=event, alarm=AlarmDetail.model_validate(get_alarm(db_session, alarm_id))
    )


@router.get(
    "/{alarm_id}/cap",
    response_class=Response,
    responses={200: {"content": {CAP_MEDIA_TYPE: {}}, "description": "A CAP 1.2 alert"}},
)
def alarm_cap(request: Request, db_session: DbSession, alarm_id: AlarmId) -> Response:
    """The alarm as a CAP 1.2 `<alert>` (OASIS Common Alerting Protocol), for relaying to
    public warning systems. The `<area>` is the notify area: a level-dependent radius around
    the alarm (I 1 km, II 500 m, III 200 m, IV 100 m) until impact zones exist."""
    # CAP forbids spaces, commas, '<' and '&' in sender: keep only hostname characters.
    host = re.sub(r"[^A-Za-z0-9.-]", "", request.url.hostname or "") or "localhost"
    sender = f"cityrisk@{host}"
    web = str(request.url_for("read_alarm", alarm_id=alarm_id))
    return Response(
        build_cap(db_session, alarm_id, sender=sender, web=web), media_type=CAP_MEDIA_TYPE
    )
