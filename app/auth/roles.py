"""Roles and what each may do, as data.

The roles follow the users of an operations centre: ``viewer`` (a planner: reads the map and
runs what-if impacts), ``analyst`` (verifies and dispatches alarms, refreshes risk),
``commander`` (opens and recomputes incidents, moves alarms), ``admin`` (imports assets,
sensors and rules, makes tokens) and ``device`` (posts readings of its own sensors, nothing
else). A route names the *action* it performs; this table says which roles may perform it, so
a new route gets its check by naming an action, and the per-route tests read the same table.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Role = Literal["viewer", "analyst", "commander", "admin", "device"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "analyst", "commander", "admin", "device")

_STAFF: Final = frozenset({"viewer", "analyst", "commander", "admin"})

#: action → the roles that may perform it.
PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    # Reads of the map, the alarms, the OGC API (open to anyone when reads are open).
    "read": _STAFF,
    # A what-if impact or an OGC process execution: computes, stores nothing.
    "impact.compute": _STAFF,
    "readings.write": frozenset({"device", "admin"}),
    # History older than CITYRISK_MAX_READING_AGE_DAYS (POST /readings?backfill=true): not a
    # device, whose old readings are a wrong clock or the wrong archive.
    "readings.backfill": frozenset({"admin"}),
    "alarms.transition": frozenset({"analyst", "commander", "admin"}),
    # Close or dismiss a suspected event (the alarms it groups keep their own workflow).
    "events.transition": frozenset({"analyst", "commander", "admin"}),
    "incidents.write": frozenset({"commander", "admin"}),
    "risk.refresh": frozenset({"analyst", "commander", "admin"}),
    "rules.write": frozenset({"admin"}),
    "assets.import": frozenset({"admin"}),
    "sensors.import": frozenset({"admin"}),
    "tokens.manage": frozenset({"admin"}),
}

#: Actors the service itself writes as: no token may carry these names (an audit row by
#: ``engine`` must be the engine's). Names with ``:`` are reserved for system namespaces too
#: (``cli:root``, ``jwt:…``), so a token name never contains one.
SYSTEM_ACTORS: Final = frozenset({"engine", "system", "anonymous", "cli", "replay", "demo"})

#: A token's name is the actor of its audit rows: letters (any script: 张三), digits, ``._@-``.
NAME_PATTERN: Final = re.compile(r"[^\W_][\w.@-]{0,63}")


def roles_for(action: str) -> frozenset[str]:
    """The roles allowed to perform ``action``.

    >>> sorted(roles_for("alarms.transition"))
    ['admin', 'analyst', 'commander']
    """
    try:
        return PERMISSIONS[action]
    except KeyError:
        raise KeyError(f"unknown action {action!r}; known: {', '.join(PERMISSIONS)}") from None


def check_name(name: str) -> str:
    """``name`` if a token may carry it; ``ValueError`` saying why not otherwise.

    >>> check_name("张三")
    '张三'
    >>> check_name("engine")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: token name 'engine' is reserved for the service's own actors (...)
    """
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"token name {name!r}: expected 1–64 letters, digits or ._@- starting with a letter "
            "or digit"
        )
    if name.casefold() in SYSTEM_ACTORS or name.casefold().startswith("cityrisk"):
        raise ValueError(
            f"token name {name!r} is reserved for the service's own actors "
            f"({', '.join(sorted(SYSTEM_ACTORS))})"
        )
    return name
