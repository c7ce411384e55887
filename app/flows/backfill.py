"""Backfill: history files through the real ingest, one span of data time per transaction.

``cityrisk readings backfill FILE…`` (:mod:`app.cli`) reads the files into a
:class:`~app.sensors.history.Spool` (streamed, split by data time: a day by default), then
sends each span, oldest first, through :func:`app.flows.readings.ingest_batch` — the path
``POST /readings`` takes, so the rules engine judges history as it judges live readings — with
no age limit, and commits it before the next. A crash therefore loses at most the span in
hand, and running the same command again resumes: storing is idempotent on ``(sensor, ts)``,
so the committed spans come back as duplicates and nothing is stored twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import audit
from app.flows.readings import ingest_batch
from app.sensors.history import Format, Spool, SpoolBatch

#: Rejection reasons a report keeps (the rest are counted).
FIRST_REJECTIONS = 20


@dataclass(frozen=True)
class Rejection:
    file: Path
    row: int  # 0-based record of the file (CSV: data row, header excluded; NDJSON: non-blank)
    sensor: str | None
    reason: str


@dataclass
class SpanResult:
    """What one span (one transaction) did."""

    start: datetime | None  # None: the rows whose ts could not be read
    end: datetime | None
    received: int = 0
    accepted: int = 0
    mobile_accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alarms_raised: int = 0
    alarms_changed: int = 0  # escalated, de-escalated, cleared, recurred
    seconds: float = 0.0


@dataclass
class BackfillReport:
    files: list[Path] = field(default_factory=list)
    rows_read: int = 0
    read_s: float = 0.0  # reading and splitting the files
    spans: list[SpanResult] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)  # the first FIRST_REJECTIONS
    ingest_s: float = 0.0

    def total(self, name: str) -> int:
        """The sum of a :class:`SpanResult` count over the spans."""
        return sum(int(getattr(s, name)) for s in self.spans)

    @property
    def readings_per_s(self) -> float:
        """Readings through the ingest per second of ingest (reading the files not counted)."""
        return self.total("received") / self.ingest_s if self.ingest_s > 0 else 0.0


def backfill(
    factory: sessionmaker[Session],
    paths: Sequence[Path],
    *,
    span: timedelta = timedelta(days=1),
    fmt: Format | None = None,
    encoding: str | None = None,
    max_batch: int = 1_000_000,
    actor: str = "cli",
    on_read: Callable[[Path, int], None] | None = None,
    on_span: Callable[[SpanResult], None] | None = None,
) -> BackfillReport:
    """Backfill ``paths`` (CSV / NDJSON / JSON history files) span by span.

    Parameters
    ----------
    factory : sessionmaker
        Sessions on the service's database; one per span, committed at its end.
    paths : sequence of Path
        The files; their rows are split together, so a span holds its readings of every file.
    span : timedelta, default 1 day
        Data time per batch (aligned on UTC midnight for whole days).
    fmt : {"csv", "ndjson", "json"} or None
        The files' format; None: from each file's name.
    encoding : str or None
        Text encoding when not UTF-8 (``gb18030`` for GBK exports).
    max_batch : int, default 1,000,000
        Most readings one span may hold; more is refused before anything is written.
    actor : str
        Who backfills, for the audit row each span writes (``readings.backfill``).
    on_read, on_span : callable, optional
        Progress: a file read (path, rows), a span committed.

    Raises
    ------
    InvalidInput
        A file that cannot be read or split (unknown columns, not JSON, not decodable, a span
        over ``max_batch``): raised before any span is ingested.
    """
    report = BackfillReport(files=list(paths))
    with Spool(span=span, max_batch=max_batch) as spool:
        started = time.perf_counter()
        for path in paths:
            rows = spool.add(path, fmt=fmt, encoding=encoding)
            if on_read is not None:
                on_read(path, rows)
        spool.check()
        report.rows_read = spool.rows
        report.read_s = time.perf_counter() - started
        started = time.perf_counter()
        for part in spool.batches():
            result = _ingest_span(factory, part, report, actor)
            report.spans.append(result)
            if on_span is not None:
                on_span(result)
        report.ingest_s = time.perf_counter() - started
    return report


def _ingest_span(
    factory: sessionmaker[Session], part: SpoolBatch, report: BackfillReport, actor: str
) -> SpanResult:
    """Ingest one span with no age limit and commit it (its own transaction)."""
    started = time.perf_counter()
    with factory() as session, session.begin():
        stored = ingest_batch(session, part.batch, max_age=None)
        if stored.accepted + stored.mobile_accepted:
            audit(
                session,
                actor,
                None,
                "readings.backfill",
                ", ".join(p.name for p in report.files)[:200],
                {
                    "start": part.start.isoformat() if part.start else None,
                    "end": part.end.isoformat() if part.end else None,
                    "accepted": stored.accepted,
                    "mobile_accepted": stored.mobile_accepted,
                    "duplicates": stored.duplicates,
                },
            )
    room = FIRST_REJECTIONS - len(report.rejections)
    for r in stored.rejected[: max(room, 0)]:
        number, row = part.where(r.index)
        report.rejections.append(Rejection(report.files[number], row, r.sensor, r.reason))
    alarms = stored.alarms
    return SpanResult(
        start=part.start,
        end=part.end,
        received=stored.received,
        accepted=stored.accepted,
        mobile_accepted=stored.mobile_accepted,
        duplicates=stored.duplicates,
        rejected=len(stored.rejected),
        alarms_raised=alarms.raised,
        alarms_changed=alarms.escalated + alarms.deescalated + alarms.cleared + alarms.recurred,
        seconds=time.perf_counter() - started,
    )
