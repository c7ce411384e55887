"""The analyst workflow of an alarm: push routing, SLA timers, transitions, reads.

The states, the transition table and which timestamp each state sets are vocabulary
(:mod:`app.taxonomy.alarms`); what an operator may want to tune about the workflow is data at the
top of this module: who an alarm is pushed to, and the SLA per level. ``raised`` is written by the
rules engine; everything after it by people, through :func:`transition`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.alarms.models import Alarm, AlarmEvent
from app.errors import Conflict, InvalidInput, NotFound
from app.taxonomy.alarms import (
    ALARM_STATES,
    NOT_ANOMALIES,
    STATE_TIMESTAMP,
    allowed_next,
)

# ---------------------------------------------------------------------------------------------
# Push routing: who owns an alarm, and who else hears of it by level
# ---------------------------------------------------------------------------------------------

# Checked in this order; the first that answers wins (the event note says which one did):
#   1. the asset's own ``owner`` (explicit data always wins);
#   2. the rule's indicator, where the hazard names its responder: methane in any underground
#      space goes to the gas company (Hefei: a manhole CH4 alert reaches the gas company in
#      < 1 min, whoever owns the well — domain.md);
#   3. the asset kind; 4. the asset's plate; 5. the monitoring centre itself.
INDICATOR_UNITS: dict[str, str] = {
    "ch4_pct_vol": "gas utility",
    "ch4_pct_lel": "gas utility",
}
KIND_UNITS: dict[str, str] = {
    "gas_pipe": "gas utility",
    "gas_station": "gas utility",
    "valve": "gas utility",
    "water_pipe": "water utility",
    "hydrant": "water utility",
    "pump_station": "water utility",
    "drainage_pipe": "drainage authority",
    "ponding_point": "drainage authority",
    "heating_pipe": "heating utility",
    "utility_tunnel": "utility tunnel operator",
    "manhole": "municipal utilities bureau",
    "bridge": "bridge and road authority",
    "substation": "power grid company",
    "power_plant": "power grid company",
    "chemical_plant": "emergency management bureau (hazardous chemicals)",
    "construction_site": "housing and construction bureau",
    "crowded_place": "public security bureau",
    "subway_station": "metro operator",
    "flood_zone": "water resources bureau",
    "landslide_zone": "natural resources bureau",
    "weather_station": "meteorological bureau",
}
PLATE_UNITS: dict[str, str] = {
    "lifeline": "municipal utilities bureau",
    "public_safety": "public security bureau",
    "production_safety": "emergency management bureau",
    "natural_disaster": "emergency management bureau",
    "exposure": "district government duty office",
}
DEFAULT_UNIT = "city monitoring centre"

# Levels I and II (red, orange) are also reported up the line when pushed; III and IV stay with
# the owning unit. Defaults to tune with the city's emergency plan.
LEVEL_ALSO_NOTIFY: dict[int, tuple[str, ...]] = {
    1: ("city emergency management office", "city government duty office"),
    2: ("city emergency management office",),
    3: (),
    4: (),
}

# ---------------------------------------------------------------------------------------------
# SLA per level
# ---------------------------------------------------------------------------------------------

# Every timer runs from ``opened_at`` (the alarm's birth), so they are cumulative deadlines:
# "a red alarm is acknowledged by its owner within 15 min of being raised". No per-level SLA is
# published for the Hefei model (its reported figures: gas alerts reach the gas company in
# < 1 min; average response 7 min, Economic Daily 2025); these are defaults to tune.
SLA_TIMERS: dict[str, str] = {
    "verify": "verified_at",
    "acknowledge": "acknowledged_at",
    "dispose": "disposed_at",
}
SLA_SECONDS: dict[int, dict[str, int]] = {
    1: {"verify": 5 * 60, "acknowledge": 15 * 60, "dispose": 2 * 3600},
    2: {"verify": 10 * 60, "acknowledge": 30 * 60, "dispose": 4 * 3600},
    3: {"verify": 30 * 60, "acknowledge": 2 * 3600, "dispose": 24 * 3600},
    4: {"verify": 2 * 3600, "acknowledge": 8 * 3600, "dispose": 72 * 3600},
}

# How long a transition waits for a row another transaction holds before answering 409.
LOCK_TIMEOUT = "5s"


# ---------------------------------------------------------------------------------------------
# Transition
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routing:
    """Where a pushed alarm goes: the owning unit, who else is told, and by which rule."""

    owner_unit: str
    also_notify: tuple[str, ...]
    routed_by: str

    def describe(self) -> str:
        also = f" (also notified: {', '.join(self.also_notify)})" if self.also_notify else ""
        return f"pushed to {self.owner_unit} [by {self.routed_by}]{also}"


@dataclass(frozen=True)
class TransitionResult:
    alarm: Alarm
    event: AlarmEvent


def route_push(
    level: int,
    *,
    asset_owner: str | None,
    indicator: str | None,
    asset_kind: str | None,
    plate: str | None,
) -> Routing:
    """The owning unit of an alarm and the units also notified at its level.

    Parameters
    ----------
    level
        Warning level 1..4 (I red … IV blue).
    asset_owner, indicator, asset_kind, plate
        What is known of the alarm's subject; each may be ``None``.
    """
    also = LEVEL_ALSO_NOTIFY.get(level, ())
    if asset_owner and asset_owner.strip():
        return Routing(asset_owner.strip(), also, "asset owner")
    if indicator in INDICATOR_UNITS:
        return Routing(INDICATOR_UNITS[indicator], also, f"indicator {indicator}")
    if asset_kind in KIND_UNITS:
        return Routing(KIND_UNITS[asset_kind], also, f"asset kind {asset_kind}")
    if plate in PLATE_UNITS:
        return Routing(PLATE_UNITS[plate], also, f"plate {plate}")
    return Routing(DEFAULT_UNIT, also, "default")


def transition(
    session: Session, alarm_id: int, to: str, actor: str, note: str | None = None
) -> TransitionResult:
    """Move alarm ``alarm_id`` to state ``to`` and write its audit row.

    The alarm row is locked (``SELECT … FOR UPDATE``) first, so two analysts acting on the same
    alarm are serialised: the second one sees the state the first one left and gets a 409 if
    its move is no longer allowed. Flushes; the caller commits. Rescoring the alarm's asset
    is the caller's too (:func:`app.flows.alarms.transition` does both).

    Parameters
    ----------
    session
        The caller's session (its transaction holds the lock until it ends).
    alarm_id
        The alarm to move.
    to
        The target state, one of ``ALARM_STATES``.
    actor
        Who does it (recorded in ``alarm_event.actor``).
    note
        Free text for the audit row.

    Raises
    ------
    InvalidInput
        ``to`` is not a state, or the actor is empty.
    NotFound
        No alarm has that id.
    Conflict
        ``to`` is not allowed from the alarm's current state (the message lists the allowed
        ones), or another transaction held the alarm for longer than ``LOCK_TIMEOUT``.
    """
    if to not in ALARM_STATES:
        raise InvalidInput(f"unknown state {to!r}; states are: {', '.join(ALARM_STATES)}")
    actor = actor.strip()
    if not actor:
        raise InvalidInput("the actor must not be empty")
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    try:
        alarm = session.execute(
            select(Alarm)
            .where(Alarm.id == alarm_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise Conflict(
                f"alarm {alarm_id} is being changed by another transaction; try again"
            ) from None
        raise
    if alarm is None:
        raise NotFound(f"no alarm with id {alarm_id}")
    current = alarm.state
    allowed = allowed_next(current)
    if to not in allowed:
        listed = ", ".join(allowed) if allowed else "none (the alarm is closed)"
        raise Conflict(f"alarm {alarm_id} cannot go from {current!r} to {to!r}; allowed: {listed}")

    # The time the move happened (after any wait for the lock), not the transaction's start.
    now = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    setattr(alarm, STATE_TIMESTAMP[to], now)
    alarm.state = to
    alarm.updated_at = now
    if to == "pushed":
        routing = _routing_of(session, alarm)
        alarm.owner_unit = routing.owner_unit
        # Merged into the JSONB (never replaced) so keys the engine keeps there survive.
        alarm.attributes = {
            **(alarm.attributes or {}),
            "push": {
                "owner_unit": routing.owner_unit,
                "also_notify": list(routing.also_notify),
                "routed_by": routing.routed_by,
                "level": alarm.level,
            },
        }
        note = routing.describe() + (f"; {note}" if note else "")
    event = AlarmEvent(
        alarm_id=alarm.id,
        at=now,
        actor=actor,
        from_state=current,
        to_state=to,
        note=note,
    )
    session.add(event)
    session.flush()
    return TransitionResult(alarm=alarm, event=event)


def _routing_of(session: Session, alarm: Alarm) -> Routing:
    """Routing for ``alarm`` from its asset (its own, else its sensor's) and rule indicator."""
    row = session.execute(
        text(
            "SELECT t.owner, t.kind, t.plate, r.indicator "
            "FROM alarm a JOIN rule r ON r.id = a.rule_id "
            "LEFT JOIN sensor s ON s.id = a.sensor_id "
            "LEFT JOIN asset t ON t.id = COALESCE(a.asset_id, s.asset_id) "
            "WHERE a.id = :id"
        ),
        {"id": alarm.id},
    ).one()
    return route_push(
        alarm.level,
        asset_owner=row.owner,
        indicator=row.indicator,
        asset_kind=row.kind,
        plate=row.plate,
    )


# ---------------------------------------------------------------------------------------------
# SLA timers
# ---------------------------------------------------------------------------------------------


def sla_timers(alarm: Mapping[Any, Any], now: datetime) -> list[dict[str, Any]]:
    """The SLA timers of one alarm as plain dicts (see ``schemas.SlaTimer``).

    ``alarm`` needs ``level``, ``state``, ``verdict``, ``opened_at``, ``closed_at`` and the
    timer columns. A timer stops when its column is set, or when the alarm is closed. The
    acknowledge and dispose timers do not apply to false alarms and tests (nothing to
    acknowledge); until the verdict they run, since the alarm may well be true.
    """
    limits = SLA_SECONDS[alarm["level"]]
    opened: datetime = alarm["opened_at"]
    closed: datetime | None = alarm["closed_at"]
    timers = []
    for name, column in SLA_TIMERS.items():
        limit = limits[name]
        applicable = name == "verify" or alarm["verdict"] not in NOT_ANOMALIES
        done: datetime | None = alarm[column]
        end = done or closed or now
        elapsed = max((end - opened).total_seconds(), 0.0)
        timers.append(
            {
                "name": name,
                "applicable": applicable,
                "limit_s": limit,
                "due_at": opened + timedelta(seconds=limit),
                "done_at": done,
                "elapsed_s": round(elapsed, 3),
                "running": applicable and done is None and closed is None,
                "breached": applicable and elapsed > limit,
            }
        )
    return timers
