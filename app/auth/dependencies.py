"""The FastAPI side of access: ``Require(action)`` on a route, the read gate on the app.

A route that writes declares ``who: Annotated[Principal, Depends(Require("alarms.transition"))]``
(aliases below); the dependency finds the bearer credentials, checks them (an API key against
``api_token``, or a JWT), answers 401 (no or bad credentials, with ``WWW-Authenticate``) or 403
(a role that may not), refuses cross-site simple requests on writes, applies the rate limit, and
hands the route its principal: the actor of every audit row it writes.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import jwt as jwt_auth
from app.auth.roles import roles_for
from app.auth.service import ANONYMOUS, Principal, RateLimiter, authenticate_key
from app.errors import (
    DatabaseUnavailable,
    Forbidden,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from app.settings import AuthSettings, Settings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`cr_…`, from `cityrisk token create`) or a JWT from the centre's "
    "identity provider.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

#: Actions anyone may perform while reads are open (``CITYRISK_AUTH_OPEN_READS``).
OPEN_ACTIONS = frozenset({"read", "impact.compute"})
#: Content types a browser sends cross-site without a CORS preflight (Fetch standard, "CORS-
#: safelisted request-header"): a page on another site could post them with the user's
#: browser. Refused on writes, except multipart on the upload routes (which then rely on the
#: bearer token and the Origin check).
SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})

_limiter = RateLimiter()


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="cityrisk"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def _origin_of(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def _same_site(origin: str, request: Request) -> bool:
    """``origin`` names this service: its host[:port] is the request's ``Host`` (or, behind a
    reverse proxy, ``X-Forwarded-Host``). The scheme is not compared: a proxy that ends TLS
    talks plain HTTP to us while the browser's Origin says https."""
    netloc = origin.split("://", 1)[-1]
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return netloc in hosts - {""}


def check_cross_site(request: Request, settings: Settings, *, uploads: bool) -> None:
    """Refuse a write a page on another site could make: an ``Origin`` that is neither this
    service nor an allowed one, or a content type that skips the CORS preflight."""
    origin = request.headers.get("origin")
    if origin is not None and not _same_site(origin, request):
        allowed = settings.cors_origins
        if "*" not in allowed and origin not in allowed:
            raise Forbidden(
                f"cross-site write from Origin {origin[:100]!r} refused; allowed origins: "
                f"this service ({_origin_of(request)}) and CITYRISK_CORS_ORIGINS "
                f"({', '.join(allowed) or 'none'})"
            )
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in SIMPLE_TYPES and not (uploads and media == "multipart/form-data"):
        raise UnsupportedMediaType(
            f"Content-Type {media} is refused on writes (a browser sends it cross-site without "
            "a preflight); send application/json"
            + (", multipart/form-data" if uploads else "")
            + " or the type the route documents (application/yaml, text/csv, …)"
        )


def principal_of(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    """The principal of the request's credentials; None without any; 401 if they are bad."""
    auth: AuthSettings = _settings(request).auth
    token = credentials.credentials.strip() if credentials is not None else None
    if token is None and request.method in ("GET", "HEAD"):
        # RFC 6750 §2.3: for what cannot send headers (EventSource, <img> tiles).
        token = request.query_params.get("access_token") or None
    if token is None:
        return None
    if token.count(".") == 2 and jwt_auth.enabled(auth):
        try:
            return jwt_auth.principal_of(token, auth)
        except jwt_auth.JwtError as exc:
            raise Unauthorized(str(exc), headers=_challenge("invalid_token")) from None
    factory = request.app.state.sessionmaker
    if factory is None:
        raise DatabaseUnavailable(request.app.state.db_error or "no database configured")
    with factory() as session, session.begin():
        found = authenticate_key(session, token, cache_s=auth.cache_s)
    if found is None:
        raise Unauthorized(
            "the bearer token is unknown, revoked or expired", headers=_challenge("invalid_token")
        )
    return found


class Require:
    """A dependency: the request's principal, allowed to perform ``action``.

    ``limit``: ``"ingest"`` or ``"expensive"`` applies that rate limit per principal (per client
    address for anonymous callers); ``uploads``: multipart bodies are expected.
    """

    def __init__(self, action: str, *, limit: str | None = None, uploads: bool = False) -> None:
        self.roles = roles_for(action)
        self.action = action
        self.limit = limit
        self.uploads = uploads

    def __call__(self, request: Request, credentials: Credentials) -> Principal:
        settings = _settings(request)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            check_cross_site(request, settings, uploads=self.uploads)
        who = principal_of(request, credentials)
        if who is None:
            if self.action in OPEN_ACTIONS and settings.auth.open_reads:
                who = ANONYMOUS
            else:
                raise Unauthorized(
                    f"{self.action} needs a bearer token of role {' or '.join(sorted(self.roles))}",
                    headers=_challenge(),
                )
        elif who.role not in self.roles:
            raise Forbidden(
                f"{who.actor} is {who.role}; {self.action} needs {' or '.join(sorted(self.roles))}"
            )
        if self.limit is not None:
            self._rate(request, settings.auth, who)
        request.state.principal = who
        return who

    def _rate(self, request: Request, auth: AuthSettings, who: Principal) -> None:
        if self.limit == "ingest":
            rate, burst = auth.ingest_per_s, max(1.0, 2 * auth.ingest_per_s)
        else:
            rate, burst = auth.expensive_per_min / 60, 10.0
        client = request.client.host if request.client else "?"
        key = (who.actor if who.via != "anonymous" else f"ip:{client}", self.limit or "")
        wait = _limiter.take(key, rate, burst)
        if wait > 0:
            raise TooManyRequests(
                f"{who.actor} is over the {self.limit} rate limit "
                f"({rate * (60 if self.limit != 'ingest' else 1):g} per "
                f"{'minute' if self.limit != 'ingest' else 'second'}); retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def check_permitted(who: Principal, action: str, what: str) -> None:
    """Refuse (403) a principal, already let in by its route's :class:`Require`, whose role may
    not also perform ``action`` (``what``: how the request asked for it, for the message)."""
    roles = roles_for(action)
    if who.role not in roles:
        raise Forbidden(
            f"{who.actor} is {who.role}; {what} ({action}) needs {' or '.join(sorted(roles))}"
        )


#: Paths a closed-reads service still answers without a token.
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/static/", "/favicon")

_read = Require("read")


def bearer_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    """The ``Authorization: Bearer`` credentials of a request, for routes that solve no
    dependencies (the tile routes); None without them."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token.strip())


def read_gate(request: Request, credentials: Credentials) -> None:
    """App-wide, only when reads are closed: every GET needs a viewer token or better."""
    if request.method not in ("GET", "HEAD") or request.url.path.startswith(PUBLIC_PREFIXES):
        return
    _read(request, credentials)


Reader = Annotated[Principal, Depends(Require("read"))]
Computer = Annotated[Principal, Depends(Require("impact.compute", limit="expensive"))]
Ingester = Annotated[Principal, Depends(Require("readings.write", limit="ingest"))]
Analyst = Annotated[Principal, Depends(Require("alarms.transition"))]
EventAnalyst = Annotated[Principal, Depends(Require("events.transition"))]
IncidentWriter = Annotated[Principal, Depends(Require("incidents.write", limit="expensive"))]
RiskRefresher = Annotated[Principal, Depends(Require("risk.refresh", limit="expensive"))]
RuleWriter = Annotated[Principal, Depends(Require("rules.write"))]
AssetImporter = Annotated[
    Principal, Depends(Require("assets.import", limit="expensive", uploads=True))
]
SensorImporter = Annotated[
    Principal, Depends(Require("sensors.import", limit="expensive", uploads=True))
]
TokenAdmin = Annotated[Principal, Depends(Require("tokens.manage"))]
