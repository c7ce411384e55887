"""The alarm vocabulary: warning levels I–IV, lifecycle states, transitions and verdicts.

Warning levels follow the Emergency Response Law of the PRC (art. 42): I red (highest), II
orange, III yellow, IV blue. They are kept apart from the four-colour *risk* class of a place
(:mod:`app.taxonomy.risk`), which shares the colours but means something else.

The workflow (Hefei loop: monitor → discover → analyse → warn → dispose → feedback → archive)::

    raised ──► verified ──► pushed ──► acknowledged ──► dispatched ──► disposed ──► closed
       │
       ├─────► false_alarm ──► closed
       └─────► test ─────────► closed

``raised`` is written by the rules engine; everything after it by people. Auto-clearing
(readings back to normal) is not a state: the engine sets ``cleared_at`` and the alarm stays in
the workflow until someone closes it.
"""

from __future__ import annotations

from typing import Final

#: Warning levels 1..4 and their colours (1 = I, red, the highest).
WARNING_LEVELS: Final[dict[int, str]] = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}

#: Roman numerals of the warning levels, as ops-centre screens write them.
LEVEL_NUMERALS: Final[dict[int, str]] = {1: "I", 2: "II", 3: "III", 4: "IV"}

ALARM_STATES: Final = (
    "raised",
    "verified",
    "false_alarm",
    "test",
    "pushed",
    "acknowledged",
    "dispatched",
    "disposed",
    "closed",
)

TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    # The analyst's verdict on a raised alarm: a true alarm, a false one, or a device test.
    "raised": ("verified", "false_alarm", "test"),
    # Only a true alarm is pushed to the owning unit (routing: app.alarms.lifecycle.route_push).
    "verified": ("pushed",),
    "pushed": ("acknowledged",),
    "acknowledged": ("dispatched",),
    "dispatched": ("disposed",),
    "disposed": ("closed",),
    "false_alarm": ("closed",),
    "test": ("closed",),
    "closed": (),
}
assert set(TRANSITIONS) == set(ALARM_STATES), "every state needs a row in TRANSITIONS"

#: The analyst's possible decisions on a raised alarm (the first move out of ``raised``).
VERDICTS: Final = TRANSITIONS["raised"]

#: States of a true alarm after its verification, in order.
TRUE_PATH: Final = ("verified", "pushed", "acknowledged", "dispatched", "disposed")

#: Alarms that still stand for a live condition (disposed: handled on site).
OPEN_STATES: Final = ("raised", "verified", "pushed", "acknowledged", "dispatched")

#: Verdicts that say the alarm was no anomaly at all.
NOT_ANOMALIES: Final = ("false_alarm", "test")

#: States that take an alarm off the live map: closed, or judged no anomaly.
ENDED_STATES: Final = ("closed", *NOT_ANOMALIES)

#: Which timestamp column a state sets. The three verdicts share ``verified_at``: it is the time
#: of the analyst's decision, whatever it was, so "time to verify" counts false alarms too.
STATE_TIMESTAMP: Final[dict[str, str]] = {
    "verified": "verified_at",
    "false_alarm": "verified_at",
    "test": "verified_at",
    "pushed": "pushed_at",
    "acknowledged": "acknowledged_at",
    "dispatched": "dispatched_at",
    "disposed": "disposed_at",
    "closed": "closed_at",
}


def allowed_next(state: str) -> tuple[str, ...]:
    """The states ``state`` may move to (empty for ``closed`` and unknown states).

    >>> allowed_next("raised")
    ('verified', 'false_alarm', 'test')
    """
    return TRANSITIONS.get(state, ())


def sql_list(values: tuple[str, ...]) -> str:
    """``'a', 'b'``: a vocabulary tuple as an SQL list literal (constants only, never input).

    >>> sql_list(NOT_ANOMALIES)
    "'false_alarm', 'test'"
    """
    return ", ".join(f"'{v}'" for v in values)
