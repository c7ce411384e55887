"""A background thread that raises offline alarms for silent sensors every few seconds.

Offline is the one rule that cannot run on ingest (a silent sensor sends nothing), so the
service checks it on a timer. Several API workers may each run it: the check is idempotent
(one open alarm per rule and sensor), so that only costs a few cheap queries.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.flows.alarms import check_offline

log = logging.getLogger("cityrisk.alarms")


class OfflineWatch:
    """Run :func:`app.flows.alarms.check_offline` (offline alarms, then the rescore) every
    ``period_s`` seconds until stopped."""

    def __init__(self, factory: sessionmaker[Session], period_s: float) -> None:
        self._factory = factory
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offline-watch", daemon=True)

    def start(self) -> OfflineWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                with self._factory() as session, session.begin():
                    report = check_offline(session)
                if report.raised:
                    log.info("offline check: %d sensor(s) went silent", report.raised)
            except SQLAlchemyError as exc:  # database away: try again next period
                log.warning("offline check failed: %s", str(exc).splitlines()[0])
