"""API keys: make, list, revoke, check; the principal a request acts as; the audit trail.

Transactions belong to the caller: these functions flush, never commit.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, AuditEvent
from app.auth.roles import ROLES, check_name
from app.errors import Conflict, InvalidInput, NotFound

#: Keys look like ``cr_<43 url-safe characters>`` (32 random bytes): the prefix lets secret
#: scanners (and people) recognise a leaked cityrisk key.
KEY_PREFIX = "cr_"
#: How many leading characters of a key are kept in clear to tell keys apart.
SHOWN_CHARS = 10
#: ``last_used_at`` is written at most this often per key: a tile client would otherwise turn
#: every read into a write.
LAST_USED_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the actor of its audit rows, its role, a device's sensors."""

    name: str
    role: str
    via: str  # "token", "jwt" or "anonymous"
    token_id: int | None = None
    sensors: tuple[str, ...] | None = None
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        """The name written in audit rows: a token's name, ``jwt:<user>``, ``anonymous``."""
        return self.name

    @cached_property
    def _scope(self) -> tuple[frozenset[str], tuple[str, ...]]:
        # A replay's device token lists all 1,651 demo sensors by name: matching each reading's
        # sensor against every pattern took 18 % of the server's CPU under the soak (py-spy),
        # so exact names go in a set and only the ``*`` patterns are scanned.
        names = self.sensors or ()
        exact = frozenset(s for s in names if not s.endswith("*"))
        return exact, tuple(s[:-1] for s in names if s.endswith("*"))

    def may_post(self, sensor: str) -> bool:
        """Whether this principal may post readings of ``sensor`` (external id).

        >>> p = Principal("gw-7", "device", "token", sensors=("cam-ch4-*", "cam-wind-1"))
        >>> p.may_post("cam-ch4-0012"), p.may_post("cam-wind-1"), p.may_post("cam-wind-2")
        (True, True, False)
        """
        if self.sensors is None:
            return True
        exact, prefixes = self._scope
        return sensor in exact or sensor.startswith(prefixes)


ANONYMOUS = Principal("anonymous", "anonymous", "anonymous")


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_sensors(role: str, sensors: Sequence[str] | None) -> list[str] | None:
    if role != "device":
        if sensors:
            raise InvalidInput(
                f"sensors were given for a {role} token; only device tokens have them"
            )
        return None
    cleaned = [s.strip() for s in (sensors or []) if s.strip()]
    if not cleaned:
        raise InvalidInput(
            "a device token needs its sensors: external ids or prefixes ending in '*' "
            "(e.g. --sensors 'cam-ch4-*')"
        )
    for s in cleaned:
        if "*" in s[:-1] or s == "*":
            raise InvalidInput(
                f"sensor pattern {s!r}: expected an external id or a prefix ending in one '*' "
                "(a bare '*' would let the device post for every sensor)"
            )
    return cleaned


def create_token(
    session: Session,
    *,
    name: str,
    role: str,
    created_by: str,
    sensors: Sequence[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new key for ``role``; returns the row and the key (shown once, never stored).

    Raises :class:`InvalidInput` for an unknown role, a reserved or malformed name, a device
    without sensors; :class:`Conflict` if an active token already has ``name``.
    """
    if role not in ROLES:
        raise InvalidInput(f"role was {role!r}; expected one of {', '.join(ROLES)}")
    try:
        check_name(name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a UTC offset")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role,
        token_hash=hash_key(key),
        prefix=key[:SHOWN_CHARS],
        sensors=_check_sensors(role, sensors),
        created_by=created_by,
        expires_at=expires_at,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"an active token is already named {name!r}; revoke it or choose another name"
        ) from None
    audit(
        session, created_by, None, "token.create", f"token {row.id}", {"name": name, "role": role}
    )
    return row, key


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[ApiToken]:
    """The tokens, newest first (their hashes are never shown)."""
    q = select(ApiToken).order_by(ApiToken.id.desc())
    if not include_revoked:
        q = q.where(ApiToken.revoked_at.is_(None))
    return list(session.execute(q).scalars())


def revoke_token(session: Session, ident: str, *, by: str) -> ApiToken:
    """Revoke the active token whose id or name is ``ident``."""
    q = select(ApiToken).where(ApiToken.revoked_at.is_(None))
    q = q.where(ApiToken.id == int(ident)) if ident.isdigit() else q.where(ApiToken.name == ident)
    row = session.execute(q.with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no active token with id or name {ident!r}")
    row.revoked_at = datetime.now(UTC)
    row.revoked_by = by
    session.flush()
    _cache.drop(row.token_hash)
    audit(session, by, None, "token.revoke", f"token {row.id}", {"name": row.name})
    return row


_LOOKUP = text(
    "SELECT id, name, role, sensors, expires_at, last_used_at FROM api_token "
    "WHERE token_hash = :h AND revoked_at IS NULL"
)
_TOUCH = update(ApiToken)


class _Cache:
    """Checked keys by hash, each for at most ``ttl_s`` (and never past its expiry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Principal]] = {}

    def get(self, h: str) -> Principal | None:
        with self._lock:
            hit = self._items.get(h)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, h: str, p: Principal, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        with self._lock:
            if len(self._items) > 10_000:  # bounded: a flood of bad keys never enters it anyway
                self._items.clear()
            self._items[h] = (time.monotonic() + ttl_s, p)

    def drop(self, h: str) -> None:
        with self._lock:
            self._items.pop(h, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _Cache()


def authenticate_key(session: Session, key: str, *, cache_s: float = 0) -> Principal | None:
    """The principal of API key ``key``, or None if it is unknown, revoked or expired."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    h = hash_key(key)
    now = datetime.now(UTC)
    cached = _cache.get(h) if cache_s > 0 else None
    if cached is not None and (cached.expires_at is None or cached.expires_at > now):
        return cached
    row = session.execute(_LOOKUP, {"h": h}).first()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(_TOUCH.where(ApiToken.id == row.id).values(last_used_at=now))
    principal = Principal(
        row.name,
        row.role,
        "token",
        int(row.id),
        tuple(row.sensors) if row.sensors is not None else None,
        row.expires_at,
    )
    _cache.put(h, principal, cache_s)
    return principal


def audit(
    session: Session,
    actor: str,
    role: str | None,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record one write in ``audit_event`` (in the caller's transaction)."""
    row = AuditEvent(actor=actor, role=role, action=action, target=target, detail=detail or {})
    session.add(row)
    session.flush()


def audit_as(
    session: Session,
    who: Principal,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """:func:`audit` for an authenticated principal."""
    audit(session, who.actor, who.role, action, target, detail)


class RateLimiter:
    """Token buckets per key (a principal and what it does), in memory (one per process).

    ``rate`` tokens per second, up to ``burst``; :meth:`take` answers how long to wait (0 when
    allowed). Several workers each keep their own buckets: the limit is per worker until the
    shared store of issue 16 (Redis) exists.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, key: tuple[str, str], rate: float, burst: float) -> float:
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            level, at = self._buckets.get(key, (burst, now))
            level = min(burst, level + (now - at) * rate)
            if level >= 1:
                self._buckets[key] = (level - 1, now)
                return 0.0
            self._buckets[key] = (level, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            return (1 - level) / rate
