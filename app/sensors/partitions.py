"""Daily range partitions of ``reading``: made ahead of time, on demand, and dropped to prune.

Daily, because a city of ~100,000 sensors reporting each minute writes ~144 M rows a day: a day
is a partition that vacuums, indexes and drops in reasonable time. Partitions are named
``reading_pYYYYMMDD`` and cover [day 00:00 UTC, next day 00:00 UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

NAME = re.compile(r"^reading_p(\d{8})$")
# One lock id for every session that creates or drops partitions (arbitrary constant).
LOCK_ID = 0x6369747972736B  # "cityrsk"


def partition_name(day: date) -> str:
    return f"reading_p{day:%Y%m%d}"


def existing(session: Session | Connection) -> set[date]:
    """Days that have a partition."""
    rows = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'reading'::regclass"
        )
    ).scalars()
    days = set()
    for name in rows:
        match = NAME.match(name)
        if match:
            days.add(datetime.strptime(match.group(1), "%Y%m%d").date())
    return days


def ensure(session: Session, days: Iterable[date]) -> list[date]:
    """Make sure ``days`` have partitions; return the days created.

    Partitions are made on a separate connection and committed at once, whatever becomes of
    the caller's transaction: a rolled-back ingest must not leave this process believing in
    partitions that do not exist, and the DDL must not hold locks for a whole ingest. Each is
    created empty and then ATTACHed, which takes only a SHARE UPDATE EXCLUSIVE lock on
    ``reading`` (concurrent inserts continue), under an advisory lock so ingesters do not race.
    """
    wanted = set(days)
    engine = session.connection().engine
    known = _known.setdefault(str(engine.url), set())
    if not wanted or wanted <= known:
        return []
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        have = existing(conn)
        created = sorted(wanted - have)
        for day in created:
            name = partition_name(day)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            conn.execute(
                text(
                    f'CREATE TABLE "{name}" (LIKE reading INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
                )
            )
            conn.execute(
                text(
                    f'ALTER TABLE reading ATTACH PARTITION "{name}" '
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
            )
    # Old days may be pruned by another process: only recent ones are remembered.
    recent = datetime.now(UTC).date() - timedelta(days=1)
    known.update(day for day in have | set(created) if day >= recent)
    return created


def days_ahead(now: datetime | None = None, *, ahead: int = 7) -> set[date]:
    """Yesterday to ``ahead`` days ahead: the partitions ingest keeps ready."""
    today = (now or datetime.now(UTC)).date()
    return {today + timedelta(days=d) for d in range(-1, ahead + 1)}


def prune(session: Session, *, older_than: timedelta, now: datetime | None = None) -> list[str]:
    """Drop the partitions whose whole day ended more than ``older_than`` ago."""
    cutoff = (now or datetime.now(UTC)) - older_than
    session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    dropped = []
    for day in sorted(existing(session)):
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if end <= cutoff:
            session.execute(text(f'DROP TABLE "{partition_name(day)}"'))
            dropped.append(partition_name(day))
            _known.get(str(session.connection().engine.url), set()).discard(day)
    return dropped


def forget() -> None:
    """Clear the in-process cache (tests that drop partitions behind our back)."""
    _known.clear()


# Days known to have a partition, per database, in this process: the hot path skips the catalogue.
_known: dict[str, set[date]] = {}
