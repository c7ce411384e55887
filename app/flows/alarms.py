"""Alarm changes that move risk scores: an analyst's transition, the offline check."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.alarms import engine, lifecycle
from app.alarms.engine import EvaluationReport
from app.alarms.lifecycle import TransitionResult
from app.risk import refresh


def transition(
    session: Session, alarm_id: int, to: str, actor: str, note: str | None = None
) -> TransitionResult:
    """:func:`app.alarms.lifecycle.transition`, then rescore the alarm's asset if it must.

    The asset's likelihood reads open and past alarms by state bucket
    (:func:`app.risk.refresh.alarm_counts_changed`): raised → false_alarm lowers it, raised →
    verified changes nothing. Flushes; the caller commits.
    """
    result = lifecycle.transition(session, alarm_id, to, actor, note)
    if refresh.alarm_counts_changed(result.event.from_state or "", to):
        refresh.refresh_after_alarms(session, [alarm_id])
    return result


def check_offline(session: Session, *, now: datetime | None = None) -> EvaluationReport:
    """Raise (and clear) offline alarms for silent sensors, then rescore their assets."""
    report = engine.check_offline(session, now=now)
    refresh.refresh_after_alarms(session, report.alarm_ids)
    return report
