"""HTTP routes of access: who am I, and the tokens (admins only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from app.auth.dependencies import Credentials, TokenAdmin, principal_of
from app.auth.models import ApiToken
from app.auth.roles import Role
from app.auth.service import ANONYMOUS, create_token, list_tokens, revoke_token
from app.db import DbSession

router = APIRouter(prefix="/auth", tags=["auth"])


class Me(BaseModel):
    """Who the request's credentials name (``anonymous`` without any)."""

    name: str
    role: str
    via: str
    sensors: list[str] | None = None
    open_reads: bool


def _who(request: Request, credentials: Credentials) -> Me:
    who = principal_of(request, credentials) or ANONYMOUS
    return Me(
        name=who.actor,
        role=who.role,
        via=who.via,
        sensors=list(who.sensors) if who.sensors is not None else None,
        open_reads=request.app.state.settings.auth.open_reads,
    )


@router.get("/me", response_model=Me, summary="Who am I")
def me(who: Annotated[Me, Depends(_who)]) -> Me:
    """The principal of the bearer token (401 if it is bad), or anonymous without one."""
    return who


class TokenIn(BaseModel):
    name: str = Field(max_length=64, description="The actor name of its audit rows (张三, gw-7)")
    role: Role
    sensors: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=10_000, description="A device's sensors: ids or `prefix*`"
    )
    expires_days: float | None = Field(default=None, gt=0, le=3650)


class TokenRead(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    sensors: list[str] | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="The key: shown once, never again")


def _read(row: ApiToken) -> dict[str, Any]:
    return {c: getattr(row, c) for c in TokenRead.model_fields}


@router.get("/tokens", response_model=list[TokenRead], summary="The tokens (admin)")
def get_tokens(
    db_session: DbSession,
    who: TokenAdmin,
    revoked: Annotated[bool, Query(description="Include revoked tokens")] = False,
) -> list[dict[str, Any]]:
    return [_read(r) for r in list_tokens(db_session, include_revoked=revoked)]


@router.post("/tokens", response_model=TokenCreated, status_code=201,
             summary="Make a token (admin); the key is in the answer, once",
             responses={409: {"description": "An active token has that name"}})  # fmt: skip
def post_token(db_session: DbSession, body: TokenIn, who: TokenAdmin) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(days=body.expires_days) if body.expires_days else None
    row, key = create_token(
        db_session,
        name=body.name,
        role=body.role,
        sensors=body.sensors,
        expires_at=expires,
        created_by=who.actor,
    )
    db_session.commit()
    return {**_read(row), "token": key}


@router.post("/tokens/{ident}/revoke", response_model=TokenRead, summary="Revoke (admin)")
def post_revoke(db_session: DbSession, ident: str, who: TokenAdmin) -> dict[str, Any]:
    row = revoke_token(db_session, ident, by=who.actor)
    db_session.commit()
    return _read(row)
