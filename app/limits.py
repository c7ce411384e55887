"""Request bodies bounded while they stream in: an ASGI middleware, never a buffered body.

A body is refused with 413 as soon as it is known to be too large: at once when its
``Content-Length`` says so (nothing read), else when the bytes received pass the limit —
reading stops there, so a client sending 200 MB (or an endless chunked body) costs the server
at most what the route would accept anyway, not the body: five 200 MB bodies at once cost
+1,795 MB of peak RSS before, +0.2 MB declared and +73–90 MB chunked after (each read up to
its 16 MiB limit; ``tests/app/test_body_limits.py``). Routes where uploads are legitimately
bigger have their own limit (:data:`ROUTE_LIMITS`).

Past the limit the middleware raises :class:`BodyTooLarge` from ``receive``: an
``HTTPException``, so FastAPI lets it through its body parsing (it turns any other error there
into a 400) and the app's handler answers it like any other 4xx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import LimitSettings

#: Paths with their own body limit: the name of the :class:`LimitSettings` field.
ROUTE_LIMITS: dict[str, str] = {
    "/readings": "readings_body_bytes",
    "/assets/import": "upload_bytes",
    "/sensors/import": "upload_bytes",
}


class BodyTooLarge(HTTPException):
    """The request body is larger than its route's limit (413)."""

    def __init__(self, *, path: str, limit: int, received: int, declared: bool) -> None:
        given = (
            f"Content-Length {received:,} bytes" if declared else f"more than {received:,} bytes"
        )
        super().__init__(
            status_code=413,
            detail=f"the body of {path} is {given}; the limit is {limit:,} bytes "
            f"({_setting(path)})",
        )


def _setting(path: str) -> str:
    return "CITYRISK_MAX_" + ROUTE_LIMITS.get(path, "body_bytes").upper()


def body_limit(limits: LimitSettings, path: str) -> int:
    """The most bytes a request body to ``path`` may have."""
    return int(getattr(limits, ROUTE_LIMITS.get(path, "body_bytes")))


class BodyLimitMiddleware:
    """Answer 413 to a body over its route's limit, counting bytes as they arrive."""

    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            # No route reads a GET's body (uvicorn only reads what the app asks for): the tile
            # hot path passes straight through.
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = body_limit(self.limits, path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            # Refused unread: uvicorn then closes the connection rather than drain the body.
            error = BodyTooLarge(path=path, limit=limit, received=declared, declared=True)
            await too_large_response(error)(scope, receive, send)
            return
        await self.app(scope, _counting(receive, path, limit), send)


def _counting(receive: Receive, path: str, limit: int) -> Callable[[], Any]:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(path=path, limit=limit, received=limit, declared=False)
        return message

    return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the server refuses it; counting still applies
    return None


def too_large_response(exc: BodyTooLarge) -> JSONResponse:
    """The 413 answer, in the shape of every cityrisk error."""
    return JSONResponse(
        status_code=413,
        content={"code": "PayloadTooLarge", "detail": exc.detail},
        headers={"Connection": "close"},
    )


def listed_rejections(report: dict[str, Any], limits: LimitSettings) -> dict[str, Any]:
    """``report`` with only its first ``CITYRISK_MAX_REJECTED_LISTED`` rejections listed, and
    ``rejected_count`` / ``rejected_unlisted`` saying how many there are and are left out."""
    rejected = report.get("rejected") or []
    listed = rejected[: limits.rejected_listed]
    return {
        **report,
        "rejected": listed,
        "rejected_count": len(rejected),
        "rejected_unlisted": len(rejected) - len(listed),
    }


def handle_body_too_large(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for :class:`BodyTooLarge` raised while a route reads its body."""
    assert isinstance(exc, BodyTooLarge)
    return too_large_response(exc)
