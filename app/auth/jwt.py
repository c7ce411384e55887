"""JWTs from the centre's identity provider (OIDC), for centres that have one.

The service never talks OAuth flows itself: a gateway or the front end obtains the user's access
token, and the service checks its signature (a configured PEM key, or the provider's JWKS), its
expiry, issuer and audience, then reads the user's name and roles from claims. Devices use API
keys, never JWTs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt

from app.auth.service import Principal
from app.settings import AuthSettings

#: A user with several roles acts with the widest (the staff roles nest: each may do what the
#: one before may).
STAFF_ORDER = ("viewer", "analyst", "commander", "admin")
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class JwtError(ValueError):
    """A JWT that cannot be trusted; the message says why (for the 401)."""


def enabled(settings: AuthSettings) -> bool:
    return bool(settings.jwt_public_key or settings.jwt_jwks_url)


@lru_cache(maxsize=4)
def _pem(value: str) -> str:
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).expanduser().read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def _jwks(url: str) -> jwt.PyJWKClient:
    # Keys are cached by the client (lifespan 300 s) so a request does not fetch them.
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


def _claim(claims: dict[str, Any], path: str) -> Any:
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def principal_of(token: str, settings: AuthSettings) -> Principal:
    """The principal a valid JWT names; :class:`JwtError` saying why otherwise."""
    try:
        if settings.jwt_jwks_url:
            key: Any = _jwks(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
        else:
            key = _pem(str(settings.jwt_public_key))
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={
                "require": ["exp"],
                "verify_aud": settings.jwt_audience is not None,
                "verify_iss": settings.jwt_issuer is not None,
            },
            leeway=30,
        )
    except (jwt.PyJWTError, OSError, ValueError) as exc:
        raise JwtError(f"the JWT is not valid: {exc}") from None
    raw = _claim(claims, settings.jwt_roles_claim)
    roles = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
    held = [r for r in STAFF_ORDER if r in roles]
    if not held:
        raise JwtError(
            f"the JWT's {settings.jwt_roles_claim!r} claim has none of the roles "
            f"{', '.join(STAFF_ORDER)} (it has {roles!r})"
        )
    name = _claim(claims, settings.jwt_name_claim) or claims.get("sub")
    if not isinstance(name, str) or not name:
        raise JwtError(f"the JWT has neither {settings.jwt_name_claim!r} nor 'sub'")
    return Principal(f"jwt:{name}", held[-1], "jwt")
