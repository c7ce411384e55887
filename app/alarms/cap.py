"""CAP 1.2 (OASIS Common Alerting Protocol, ITU-T X.1303) export of one alarm.

The mapping from an alarm to CAP is data below. In short:

* one message per alarm *change*: ``identifier`` is ``urn:cityrisk:alarm:<id>:<event id>`` of
  the latest audit row and ``sent`` its time, so the same alarm state always gives the same
  document; the alarm's first event is the original ``Alert`` that later ``Update`` and
  ``Cancel`` messages reference;
* ``status`` Actual, or Test once the analyst's verdict is "test";
* ``msgType`` Alert (first message), Update (later changes; a closed true alarm is an Update
  with urgency Past and responseType AllClear), Cancel (verdict false alarm, and a test once
  closed);
* ``scope`` Public only for verified level I–II alarms (those go beyond the owning unit, see
  ``lifecycle.LEVEL_ALSO_NOTIFY``); everything else is Restricted to the monitoring centre and
  the owning unit;
* severity and urgency from the level, certainty from the verdict (tables below);
* the ``<area>`` is the **notify area**, not the incident point: until the impact engine
  exists, a geodesic circle of a level-dependent radius around the alarm's point, sent both as
  ``<circle>`` and as a ``<polygon>`` computed by PostGIS (``ST_Buffer`` on geography).

Times are written as CAP requires: no fractional seconds, and UTC as ``-00:00`` (CAP 1.2
§3.3.2 forbids "Z").
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.alarms.service import get_summary
from app.taxonomy.alarms import LEVEL_NUMERALS

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
MEDIA_TYPE = "application/cap+xml"
SENDER_NAME = "cityrisk monitoring centre"

# Severity and urgency by level. Severity follows the usual mapping of the four warning colours
# to CAP (as in the China Meteorological Administration's CAP feed): red Extreme, orange
# Severe, yellow Moderate, blue Minor. Urgency: I-II act now, III within the hour, IV soon.
SEVERITY: dict[int, str] = {1: "Extreme", 2: "Severe", 3: "Moderate", 4: "Minor"}
URGENCY: dict[int, str] = {1: "Immediate", 2: "Immediate", 3: "Expected", 4: "Future"}

# Certainty by the analyst's verdict (None: not yet verified — a threshold was crossed but no
# one has confirmed it).
CERTAINTY: dict[str | None, str] = {
    None: "Likely",
    "verified": "Observed",
    "false_alarm": "Unlikely",
    "test": "Unknown",
}

# Radius of the notify area by level, metres: defaults until the impact engine computes real
# impact zones. Level I's 1 km is of the order of gas-explosion evacuation distances.
AREA_RADIUS_M: dict[int, int] = {1: 1000, 2: 500, 3: 200, 4: 100}

# CAP categories: by asset kind where the hazard differs from its plate, else by plate.
CATEGORY_BY_KIND: dict[str, tuple[str, ...]] = {
    "gas_pipe": ("Infra", "Fire"),
    "gas_station": ("Infra", "Fire"),
    "chemical_plant": ("CBRNE", "Safety"),
    "flood_zone": ("Met",),
    "ponding_point": ("Met",),
    "landslide_zone": ("Geo",),
    "subway_station": ("Transport", "Safety"),
    "bridge": ("Infra", "Transport"),
}
CATEGORY_BY_PLATE: dict[str, tuple[str, ...]] = {
    "lifeline": ("Infra",),
    "public_safety": ("Safety",),
    "production_safety": ("Safety",),
    "natural_disaster": ("Geo",),
    "exposure": ("Safety",),
}
# Alarms on an unbound sensor: by the rule's indicator.
CATEGORY_BY_INDICATOR: dict[str, tuple[str, ...]] = {
    "ch4_pct_vol": ("Infra", "Fire"),
    "ch4_pct_lel": ("Infra", "Fire"),
    "ponding_cm": ("Met",),
    "rain_mm_h": ("Met",),
    "h2s_ppm": ("Health",),
    "co_ppm": ("Health",),
    "smoke_alarm": ("Fire",),
    "fire_alarm": ("Fire",),
}
DEFAULT_CATEGORY: tuple[str, ...] = ("Other",)

# What people near the alarm should do, by hazard (asset kind, else the indicator).
_GAS = (
    "Suspected gas leak. Do not enter manholes, tunnels or basements nearby; no open flames, "
    "smoking or switching of electrical equipment; keep clear of the area and follow the gas "
    "company's and fire brigade's instructions."
)
INSTRUCTION_BY_KIND: dict[str, str] = {
    "gas_pipe": _GAS,
    "gas_station": _GAS,
    "manhole": _GAS,
    "valve": _GAS,
    "utility_tunnel": "Do not enter the utility tunnel or its neighbouring compartments until "
    "it has been ventilated and cleared by the operator.",
    "water_pipe": "Suspected water-main failure. Keep off the road surface above the main: the "
    "ground may be undermined and collapse.",
    "drainage_pipe": "Drainage failure: expect ponding and overflowing manholes. Do not walk or "
    "drive through flowing water.",
    "heating_pipe": "Suspected heating-pipe failure: hot water or steam may escape. Keep away "
    "from the affected road section.",
    "ponding_point": "Road flooding. Do not drive or walk through ponded water; avoid "
    "underpasses, basements and underground garages; move vehicles to higher ground.",
    "flood_zone": "Flooding. Leave basements and underground spaces; move to higher floors or "
    "designated shelters; do not drive through water.",
    "landslide_zone": "Landslide risk. Leave slopes and the foot of slopes; follow evacuation "
    "instructions.",
    "bridge": "Structural alarm on a bridge. Keep vehicles and pedestrians off the bridge until "
    "it has been inspected.",
    "chemical_plant": "Hazardous-chemicals incident. Stay indoors, close windows and doors, "
    "switch off ventilation and follow the emergency services' instructions.",
    "subway_station": "Follow the station staff's instructions and leave by the marked exits.",
    "crowded_place": "Follow the staff's instructions and leave calmly by the marked exits.",
}
INSTRUCTION_BY_INDICATOR: dict[str, str] = {
    "ch4_pct_vol": _GAS,
    "ch4_pct_lel": _GAS,
    "ponding_cm": INSTRUCTION_BY_KIND["ponding_point"],
}
DEFAULT_INSTRUCTION = "Keep clear of the area and follow the instructions of the responders."
INSTRUCTION_ALL_CLEAR = "The alarm has been dealt with and closed; normal use may resume."
INSTRUCTION_CANCEL = "This alarm has been withdrawn; no action is needed."


def _cap_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


def _identifier(alarm_id: int, event_id: int | None) -> str:
    return f"urn:cityrisk:alarm:{alarm_id}:{event_id or 0}"


def message_kind(alarm: dict[str, Any], *, first: bool) -> dict[str, Any]:
    """status, msgType, scope, urgency, severity, certainty and responseType of an alarm.

    Parameters
    ----------
    alarm
        An alarm summary (``lifecycle.alarm_summary``): needs level, state and verdict.
    first
        Whether this is the alarm's first message (nothing to reference yet).
    """
    level, state, verdict = alarm["level"], alarm["state"], alarm["verdict"]
    closed = state == "closed"
    withdrawn = verdict == "false_alarm" or (verdict == "test" and closed)
    if first:
        msg_type = "Alert"
    elif withdrawn:
        msg_type = "Cancel"
    else:
        msg_type = "Update"
    if withdrawn:
        urgency, response = "Past", "None"
    elif closed:
        urgency, response = "Past", "AllClear"
    elif verdict == "verified":
        urgency, response = URGENCY[level], "Avoid" if level <= 2 else "Monitor"
    else:
        urgency, response = URGENCY[level], "Monitor"
    public = verdict == "verified" and level <= 2
    return {
        "status": "Test" if verdict == "test" else "Actual",
        "msgType": msg_type,
        "scope": "Public" if public else "Restricted",
        "urgency": urgency,
        "severity": SEVERITY[level],
        "certainty": CERTAINTY[verdict],
        "responseType": response,
    }


def categories(alarm: dict[str, Any]) -> tuple[str, ...]:
    kind, plate, indicator = alarm["asset_kind"], alarm["plate"], alarm["indicator"]
    if kind in CATEGORY_BY_KIND:
        return CATEGORY_BY_KIND[kind]
    if indicator in CATEGORY_BY_INDICATOR:
        return CATEGORY_BY_INDICATOR[indicator]
    if plate in CATEGORY_BY_PLATE:
        return CATEGORY_BY_PLATE[plate]
    return DEFAULT_CATEGORY


def instruction(alarm: dict[str, Any], kind: dict[str, Any]) -> str:
    if kind["msgType"] == "Cancel":
        return INSTRUCTION_CANCEL
    if kind["responseType"] == "AllClear":
        return INSTRUCTION_ALL_CLEAR
    if alarm["asset_kind"] in INSTRUCTION_BY_KIND:
        return INSTRUCTION_BY_KIND[alarm["asset_kind"]]
    return INSTRUCTION_BY_INDICATOR.get(alarm["indicator"], DEFAULT_INSTRUCTION)


def notify_polygon(session: Session, lon: float, lat: float, radius_m: float) -> list[str]:
    """A geodesic circle of ``radius_m`` around (lon, lat) as CAP "lat,lon" pairs, closed.

    PostGIS buffers the geography in a suitable metric projection (``quad_segs=8``: 32
    sides), so the vertices lie ``radius_m`` from the centre on the ellipsoid to within
    centimetres at these radii.
    """
    raw = session.execute(
        text(
            "SELECT ST_AsGeoJSON(ST_Buffer(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
            "::geography, :r, 'quad_segs=8')::geometry, 6)"
        ),
        {"lon": lon, "lat": lat, "r": radius_m},
    ).scalar_one()
    ring = orjson.loads(raw)["coordinates"][0]
    return [f"{y:.6f},{x:.6f}" for x, y in ring]


def build_cap(session: Session, alarm_id: int, *, sender: str, web: str | None = None) -> bytes:
    """The CAP 1.2 ``<alert>`` of alarm ``alarm_id`` as UTF-8 XML.

    Parameters
    ----------
    session
        A database session.
    alarm_id
        The alarm.
    sender
        CAP ``sender``: a globally unique originator id (no spaces, commas, ``<`` or ``&``).
    web
        Optional URL of the alarm (CAP ``web``).
    """
    alarm = get_summary(session, alarm_id)
    bounds = session.execute(
        text(
            "SELECT (array_agg(id ORDER BY id))[1] AS first_id, "
            "(array_agg(at ORDER BY id))[1] AS first_at, "
            "(array_agg(id ORDER BY id DESC))[1] AS last_id, "
            "(array_agg(at ORDER BY id DESC))[1] AS last_at "
            "FROM alarm_event WHERE alarm_id = :id"
        ),
        {"id": alarm_id},
    ).one()
    identifier = _identifier(alarm_id, bounds.last_id)
    original = _identifier(alarm_id, bounds.first_id)
    first = identifier == original
    sent = bounds.last_at or alarm["opened_at"]
    kind = message_kind(alarm, first=first)
    level_name = LEVEL_NUMERALS[alarm["level"]]
    subject = alarm["asset_name"] or alarm["sensor"] or f"alarm {alarm_id}"

    def sub(parent: ET.Element, tag: str, value: str | None = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        if value is not None:
            el.text = value
        return el

    root = ET.Element(f"{{{CAP_NS}}}alert")
    sub(root, "identifier", identifier)
    sub(root, "sender", sender)
    sub(root, "sent", _cap_time(sent))
    sub(root, "status", kind["status"])
    sub(root, "msgType", kind["msgType"])
    sub(root, "source", f"cityrisk rule {alarm['rule_code']} v{alarm['rule_version']}")
    sub(root, "scope", kind["scope"])
    if kind["scope"] == "Restricted":
        sub(root, "restriction", "For the monitoring centre and the owning unit only")
    if kind["msgType"] == "Cancel":
        reason = "false alarm" if alarm["verdict"] == "false_alarm" else "test ended"
        sub(root, "note", f"Withdrawn by the monitoring centre: {reason}")
    if not first:
        original_sent = bounds.first_at or alarm["opened_at"]
        sub(root, "references", f"{sender},{original},{_cap_time(original_sent)}")
    sub(root, "incidents", original)

    info = sub(root, "info")
    sub(info, "language", "en-US")
    for category in categories(alarm):
        sub(info, "category", category)
    sub(info, "event", alarm["rule_title"])
    sub(info, "responseType", kind["responseType"])
    sub(info, "urgency", kind["urgency"])
    sub(info, "severity", kind["severity"])
    sub(info, "certainty", kind["certainty"])
    if alarm["owner_unit"]:
        sub(info, "audience", f"{alarm['owner_unit']} and the monitoring centre")
    # onset: when the condition began, in the data's time (a backfill's alarm began then)
    sub(info, "onset", _cap_time(alarm.get("opened_ts") or alarm["opened_at"]))
    sub(info, "senderName", SENDER_NAME)
    headline = f"Level {level_name} ({alarm['color']}) warning: {alarm['rule_title']} — {subject}"
    sub(info, "headline", headline[:160])
    sub(info, "description", _description(alarm))
    sub(info, "instruction", instruction(alarm, kind))
    if web:
        sub(info, "web", web)
    if alarm["owner_unit"]:
        sub(info, "contact", alarm["owner_unit"])
    params = {
        "cityrisk:alarm_id": str(alarm_id),
        "cityrisk:level": level_name,
        "cityrisk:color": alarm["color"],
        "cityrisk:state": alarm["state"],
        "cityrisk:rule": f"{alarm['rule_code']}@{alarm['rule_version']}",
    }
    if alarm["peak_value"] is not None:
        params["cityrisk:peak_value"] = f"{alarm['peak_value']:g}"
    for name, value in params.items():
        param = sub(info, "parameter")
        sub(param, "valueName", name)
        sub(param, "value", value)

    area = sub(info, "area")
    radius = AREA_RADIUS_M[alarm["level"]]
    if alarm["lon"] is None or alarm["lat"] is None:
        sub(area, "areaDesc", f"Location of {subject} unknown")
    else:
        sub(area, "areaDesc", f"Within {radius} m of {subject} (level {level_name} notify area)")
        sub(area, "polygon", " ".join(notify_polygon(session, alarm["lon"], alarm["lat"], radius)))
        sub(area, "circle", f"{alarm['lat']:.6f},{alarm['lon']:.6f} {radius / 1000:g}")
    document: bytes = ET.tostring(
        root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS
    )
    return document


def _description(alarm: dict[str, Any]) -> str:
    lines = [
        f"Rule {alarm['rule_code']} (version {alarm['rule_version']}) on {alarm['indicator']}.",
        f"Raised {_cap_time(alarm.get('opened_ts') or alarm['opened_at'])}; "
        f"state {alarm['state']}.",
    ]
    if alarm["sensor"]:
        lines.append(f"Sensor {alarm['sensor']}.")
    if alarm["asset_name"] or alarm["asset_kind"]:
        lines.append(f"Asset: {alarm['asset_name'] or '(unnamed)'} ({alarm['asset_kind']}).")
    values = [
        f"{label} {alarm[key]:g}"
        for label, key in (("first", "first_value"), ("peak", "peak_value"), ("last", "last_value"))
        if alarm[key] is not None
    ]
    if values:
        lines.append("Values: " + ", ".join(values) + ".")
    if alarm["cleared_at"] is not None:
        back = alarm.get("cleared_ts") or alarm["cleared_at"]
        lines.append(f"Readings back to normal since {_cap_time(back)}.")
    if alarm["title"]:
        lines.append(alarm["title"])
    return " ".join(lines)
