"""Recommended actions derived from an impact result, each traceable to the rule that made it.

The rules are data (:data:`RULES`): what to do, when it applies, and why. They read the zones,
who is inside them, the valves to close, the spaces gas can reach and what fails next; the
commander ticks them off (issue: quick disposal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import listed

#: Severity of the zones people are moved out of (1 red, 2 orange); outer zones are warned.
EVACUATE_SEVERITY = 2


@dataclass(frozen=True)
class Rule:
    id: str
    why: str
    make: Callable[[Mapping[str, Any]], list[dict[str, Any]]]


def _names(items: Sequence[Mapping[str, Any]], limit: int = 8) -> str:
    return listed([str(i.get("name") or f"{i.get('kind')} {i.get('id')}") for i in items], limit)


def _evacuate(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for z in r["zones"]:
        if z["severity"] > EVACUATE_SEVERITY or z["scenario"] == "water_main_burst":
            continue
        e = z["exposure"]
        if e["residents"] < 0.5 and not e["sites"]:
            continue
        extent = f"{z['radius_m']:g} m" if z.get("radius_m") else "the zone"
        text = f"Evacuate {extent} ({z['label']}): about {round(e['residents'])} residents" + (
            f"; sites: {_names(e['sites'])}" if e["sites"] else ""
        )
        out.append({"text": text, "targets": [s["id"] for s in e["sites"]], "zone": z["ord"]})
    return out


def _shelter(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for z in r["zones"]:
        if z["model"] != "erg_protective_action":
            continue
        e = z["exposure"]
        text = (
            f"Protect people downwind (toward {z.get('downwind_bearing_deg', 0):g}°, "
            f"{z['threshold']:g} km): shelter in place or evacuate about "
            f"{round(e['residents'])} residents"
            + (f"; warn {_names(e['sites'])}" if e["sites"] else "")
        )
        out.append({"text": text, "targets": [s["id"] for s in e["sites"]], "zone": z["ord"]})
    return out


def _valves(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, iso in r["details"].items():
        if not name.startswith("isolation_"):
            continue
        network = name.removeprefix("isolation_")
        if iso["valves_to_close"]:
            ids = iso["valves_to_close"]
            text = f"Close {len(ids)} {network} valves: " + ", ".join(map(str, ids[:20]))
            if iso["failed_valves_used"]:
                text += f" (valves {', '.join(map(str, iso['failed_valves_used']))} fail)"
            out.append({"text": text, "targets": ids})
        elif iso["is_fallback"]:
            out.append(
                {
                    "text": f"No {network} valve bounds the break: shut the main at its "
                    f"{len(iso['junctions_to_close'])} junctions",
                    "targets": [],
                }
            )
        if iso["cut_off"]:
            out.append(
                {
                    "text": f"Arrange emergency {network} supply for {len(iso['cut_off'])} cut-off "
                    "customers and facilities",
                    "targets": [c["id"] for c in iso["cut_off"]],
                }
            )
    return out


def _ventilate(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    migration = r["details"].get("migration")
    if not migration or not migration["reached_spaces"]:
        return []
    ids = [s["id"] for s in migration["reached_spaces"]]
    return [
        {
            "text": f"Ventilate and monitor {len(ids)} underground spaces gas can reach; keep "
            "ignition sources away; do not enter (≥ 10 %LEL)",
            "targets": ids,
        }
    ]


def _close_bridges(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    bridges = [a for a in r["failing"] if a["kind"] == "bridge"]
    return [
        {"text": f"Close bridge {b['name'] or b['id']} to traffic", "targets": [b["id"]]}
        for b in bridges
    ]


def _notify_owners(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    owners: dict[str, list[int]] = {}
    for a in r["failing"]:
        owners.setdefault(a.get("owner") or f"owner of {a['kind']}", []).append(a["id"])
    return [
        {"text": f"Notify {owner}: {len(ids)} assets fail or are shut", "targets": ids}
        for owner, ids in sorted(owners.items())
    ]


def _warn_sites(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    sites: dict[int, Mapping[str, Any]] = {}
    for z in r["zones"]:
        if z["severity"] > EVACUATE_SEVERITY:
            for s in z["exposure"]["sites"]:
                sites.setdefault(s["id"], s)
    if not sites:
        return []
    items = list(sites.values())
    return [{"text": f"Warn sites in the outer zones: {_names(items)}", "targets": list(sites)}]


RULES: tuple[Rule, ...] = (
    Rule("evacuate_severe_zones", "people in the red and orange zones are moved out", _evacuate),
    Rule("protect_downwind", "ERG: protect persons downwind in the protective action zone",
         _shelter),
    Rule("isolate_segment", "close the valves that bound the broken main's segment", _valves),
    Rule("ventilate_reached_spaces", "gas in adjacent underground spaces explodes (Qingdao "
         "2013, Kaohsiung 2014)", _ventilate),
    Rule("close_failed_bridges", "a bridge that fails or is threatened is closed", _close_bridges),
    Rule("notify_owners", "owners restore what fails; they are told first", _notify_owners),
    Rule("warn_outer_sites", "sites in the outer zones prepare to shelter or move", _warn_sites),
)  # fmt: skip


def recommend(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Actions for ``result`` (zones with exposure, details, failing assets), in rule order."""
    out: list[dict[str, Any]] = []
    for rule in RULES:
        for action in rule.make(result):
            out.append({"id": len(out) + 1, "rule": rule.id, "why": rule.why, **action})
    return out
