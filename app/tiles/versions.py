"""Data versions: read once per request, combined per layer into a cache key and ETag."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

from sqlalchemy.engine import Connection

from layers.registry import Layer

VERSIONS_SQL = "SELECT name, version FROM data_version"


def read_versions(conn: Connection) -> dict[str, int]:
    """Every table's data version, in one tiny query (three rows)."""
    return {name: int(version) for name, version in conn.exec_driver_sql(VERSIONS_SQL)}


def layers_version(
    layers: Iterable[Layer], versions: dict[str, int], now: float | None = None
) -> str | None:
    """The combined data version of ``layers``, or None when they cannot be cached.

    A table with a data version contributes it. A table without one (``latest_reading``: too
    hot for a trigger) contributes the current ``server_ttl_s`` time bucket when the layer
    allows that, so its tiles are reused for at most that long; otherwise the layers have no
    version and every request builds the tile.
    """
    now = time.time() if now is None else now
    parts: set[str] = set()
    for layer in layers:
        for table in layer.tables:
            if table in versions:
                parts.add(f"{table}:{versions[table]}")
            elif layer.cache.server_ttl_s is not None:
                ttl = layer.cache.server_ttl_s
                parts.add(f"{table}@{ttl:g}:{int(now // ttl)}")
            else:
                return None
    return ",".join(sorted(parts))


def short_hash(*parts: object) -> str:
    """A 20-hex-digit digest of ``parts``, for ETags and ``?v=`` tokens."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
