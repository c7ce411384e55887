"""The sensor catalogue in memory, per database, refreshed when ``sensor`` changes.

Ingest resolves every reading's sensor reference. Fetching the batch's sensors from PostgreSQL
each time (20,000 rows for a city-wide batch) cost more than storing the readings, so the
catalogue is cached and keyed by the ``sensor`` row of ``data_version`` (bumped by a statement
trigger on every write to ``sensor``): one tiny query per batch checks it. Within a batch this
is the same snapshot a direct query would see (READ COMMITTED: committed data at statement
start).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db import raw_connection


@dataclass(frozen=True)
class Catalogue:
    version: int
    # A sensor reference (external id, or the numeric id as text) → row position.
    position: dict[str, int]
    id: npt.NDArray[np.int64]
    kind: npt.NDArray[np.object_]
    unit: npt.NDArray[np.object_]
    status: npt.NDArray[np.object_]
    retired: npt.NDArray[np.bool_]  # status == 'retired', computed once per version


_cache: dict[str, Catalogue] = {}
_lock = threading.Lock()


def current(session: Session) -> Catalogue:
    """The catalogue as of now for the session's database (re-read only if it changed)."""
    key = str(session.connection().engine.url)
    version = session.execute(
        text("SELECT version FROM data_version WHERE name = 'sensor'")
    ).scalar_one()
    cached = _cache.get(key)
    if cached is not None and cached.version == version:
        return cached
    with raw_connection(
        session
    ).cursor() as cur:  # plain tuples: much cheaper than ORM rows for 100 k sensors
        cur.execute("SELECT id, external_id, kind, unit, status FROM sensor ORDER BY id")
        rows = cur.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    ids = np.asarray(columns[0], dtype=np.int64)
    # External ids win over numeric ids (documented wire format): insert them last.
    position = {str(i): n for n, i in enumerate(columns[0])}
    position.update({str(e): n for n, e in enumerate(columns[1])})
    status = np.asarray(columns[4], dtype=object)
    catalogue = Catalogue(
        version=int(version),
        position=position,
        id=ids,
        kind=np.asarray(columns[2], dtype=object),
        unit=np.asarray(columns[3], dtype=object),
        status=status,
        retired=np.asarray(status == "retired", dtype=bool),
    )
    with _lock:
        _cache[key] = catalogue
    return catalogue
