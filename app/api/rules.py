"""HTTP routes for warning rules: list, create, new version, YAML import.

Writes need an admin token (``rules.write``): disabling the gas rule silences the next leak. The
token's name is the actor of the version row."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.alarms import calibrate, rules
from app.alarms.rules import RuleSpec, StoredRule
from app.auth.dependencies import RuleWriter
from app.db import DbSession
from app.errors import InvalidInput
from app.params import Text

router = APIRouter(prefix="/rules", tags=["rules"])
Code = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9_.-]{1,63}$")]


def _read(rule: StoredRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "version": rule.version,
        "is_current": rule.is_current,
        **rule.spec.model_dump(mode="json", exclude_none=True),
    }


@router.get("")
def list_rules(db_session: DbSession) -> list[dict[str, Any]]:
    """The current version of every rule."""
    return [_read(r) for r in rules.current_rules(db_session)]


class CalibrationRequest(BaseModel):
    """A calibration window of normal data and which sensors to learn."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: AwareDatetime = Field(alias="from", description="Window start, data time")
    end: AwareDatetime = Field(alias="to", description="Window end (exclusive)")
    sensors: list[Text] | None = Field(None, max_length=1000, description="Ids or patterns")
    indicators: list[Text] | None = Field(None, max_length=100)
    bin_s: int = Field(900, gt=0, le=86_400)
    day_mode: Literal["week", "weekend", "day"] = "week"
    utc_offset_s: int = Field(0, ge=-14 * 3600, le=14 * 3600)


@router.post("/calibrate")
async def calibrate_profiles(
    db_session: DbSession, body: CalibrationRequest, who: RuleWriter
) -> dict[str, Any]:
    """Learn each chosen sensor's normal behaviour from a window of normal data (profiles for
    residual and CUSUM rules); a new version per sensor. Runs off the event loop."""

    def work() -> dict[str, Any]:
        report = calibrate.calibrate(
            db_session,
            start=body.start,
            end=body.end,
            actor=who.actor,
            sensors=body.sensors,
            indicators=body.indicators,
            bin_s=body.bin_s,
            day_mode=body.day_mode,
            utc_offset_s=body.utc_offset_s,
        )
        db_session.commit()
        return report.to_dict()

    return await run_in_threadpool(work)


@router.get("/{code}")
def get_rule(db_session: DbSession, code: Code) -> dict[str, Any]:
    """One rule: its current version and every earlier one."""
    history = rules.versions(db_session, code)
    current = next((r for r in history if r.is_current), history[-1])
    return {**_read(current), "versions": [_read(r) for r in history]}


@router.post("", status_code=201, responses={409: {"description": "The code exists: PUT"}})
def create_rule(
    request: Request, db_session: DbSession, spec: RuleSpec, who: RuleWriter
) -> dict[str, Any]:
    """Create a rule (409 if its code exists: use PUT for a new version)."""
    stored = rules.save(
        db_session, spec, actor=who.actor, create_only=True, max_area_vertices=_area_limit(request)
    )
    db_session.commit()
    return _read(stored)


@router.put("/{code}")
def update_rule(
    request: Request, db_session: DbSession, code: Code, spec: RuleSpec, who: RuleWriter
) -> dict[str, Any]:
    """Store a new version of a rule (unchanged content keeps the current version)."""
    if spec.code != code:
        raise InvalidInput(f"the body's code {spec.code!r} differs from the path's {code!r}")
    stored = rules.save(db_session, spec, actor=who.actor, max_area_vertices=_area_limit(request))
    db_session.commit()
    return _read(stored)


@router.post(
    "/import",
    openapi_extra={
        "requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}
    },
)
async def import_rules(
    request: Request,
    db_session: DbSession,
    who: RuleWriter,
    default_pack: Annotated[
        bool, Query(description="Load the rules shipped with cityrisk; the body is ignored")
    ] = False,
) -> list[dict[str, Any]]:
    """Import rules from a YAML body (a list, or `{rules: [...]}`); all or none."""
    body = b"" if default_pack else await request.body()  # bounded: CITYRISK_MAX_BODY_BYTES
    max_depth = request.app.state.settings.reliability.yaml_max_depth
    # Parsing and the database work run off the event loop: other clients are served meanwhile.
    return await run_in_threadpool(
        _import_and_commit,
        db_session,
        body,
        default_pack,
        who.actor,
        _area_limit(request),
        max_depth,
    )


def _import_and_commit(
    session: Session,
    body: bytes,
    default_pack: bool,
    actor: str,
    max_area_vertices: int,
    max_depth: int,
) -> list[dict[str, Any]]:
    specs = rules.default_pack() if default_pack else rules.parse_yaml(body, max_depth=max_depth)
    stored = rules.load(session, specs, actor=actor, max_area_vertices=max_area_vertices)
    session.commit()
    return [_read(r) for r in stored]


def _area_limit(request: Request) -> int:
    return int(request.app.state.settings.limits.rule_area_vertices)
