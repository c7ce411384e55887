"""The printable incident report (``GET /incidents/{id}/report``): what the template shows.

The map of the zones is an inline SVG drawn here from the stored zones: it needs no script and
no tile server, so it prints the same from any browser (a Leaflet map in print depends on its
tiles having loaded and on the print engine's handling of CSS transforms). Every word shown is
bilingual, Chinese first (:mod:`app.taxonomy.labels`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from app.taxonomy.alarms import LEVEL_NUMERALS
from app.taxonomy.assets import KINDS
from app.taxonomy.labels import (
    KIND_ZH,
    PARAM_ZH,
    SCENARIO_ZH,
    SEVERITY_ZH,
    STATUS_ZH,
    origin_zh,
)
from layers.styles import FOUR_COLOURS

#: Size of the zone map [px at 96 dpi]: 170 mm wide, the A4 text width with 20 mm margins.
MAP_W, MAP_H = 640, 420
MAP_PAD = 16
#: Most site labels drawn on the map (the rest are in the tables).
MAX_LABELS = 12


def kind_label(kind: str | None) -> str:
    """``学校 School``: the Chinese name, then the taxonomy's English title."""
    if not kind:
        return ""
    en = KINDS[kind].title if kind in KINDS else kind
    zh = KIND_ZH.get(kind)
    return f"{zh} {en}" if zh else en


def scenario_label(scenario: str, title: str | None = None) -> str:
    zh = SCENARIO_ZH.get(scenario)
    return f"{zh} {title or scenario}" if zh else title or scenario


def param_label(name: str) -> str:
    zh = PARAM_ZH.get(name)
    return f"{zh} {name}" if zh else name


def severity_label(severity: int) -> str:
    """``I 红`` … ``IV 蓝``."""
    return f"{LEVEL_NUMERALS.get(severity, str(severity))} {SEVERITY_ZH.get(severity, '')}".strip()


def value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


# -- the map ---------------------------------------------------------------------------------------
def _outer_rings(geometry: Mapping[str, Any]) -> list[list[list[list[float]]]]:
    """Polygons (rings of [lon, lat]) of a Polygon or MultiPolygon; other types draw nothing."""
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return [coords]
    if kind == "MultiPolygon":
        return list(coords)
    return []


def _nice(m: float) -> float:
    """The largest 1, 2 or 5 × 10ⁿ not above ``m``."""
    p = 10.0 ** math.floor(math.log10(m))
    return max(float(s) * p for s in (1, 2, 5) if s * p <= m)


def zones_svg(
    zones: Sequence[Mapping[str, Any]],
    target: tuple[float, float],
    places: Iterable[Mapping[str, Any]] = (),
) -> Markup:
    """An ``<svg>`` of the zones (GeoJSON features) in their severity colours, the target and
    the ``places`` inside (``{name, kind, lon, lat}``), with a scale bar and a north arrow.

    Longitudes are scaled by cos(latitude) around the target: a local equirectangular drawing,
    true to scale at city extents. Only formatted numbers and escaped text reach the markup.
    """
    polys = [
        (int(z["properties"]["severity"]), ring)
        for z in zones
        for ring in _outer_rings(z["geometry"])
    ]
    lon0, lat0 = target
    kx = math.cos(math.radians(lat0))
    pts = [(lon, lat) for _, poly in polys for ring in poly for lon, lat, *_ in ring]
    pts.append(target)
    xs = [(lon - lon0) * kx for lon, _ in pts]
    ys = [lat for _, lat in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    span = max(x1 - x0, y1 - y0, 0.0005)  # at least ~50 m across
    scale = min((MAP_W - 2 * MAP_PAD) / max(x1 - x0, span / 3),
                (MAP_H - 2 * MAP_PAD) / max(y1 - y0, span / 3))  # fmt: skip
    cx = MAP_W / 2 - ((x0 + x1) / 2) * scale
    cy = MAP_H / 2 + ((y0 + y1) / 2) * scale

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (lon - lon0) * kx * scale + cx, cy - lat * scale

    out: list[str] = [f'<rect width="{MAP_W}" height="{MAP_H}" class="bg"/>']
    # Outer zones first: the red core ends on top.
    for severity, poly in sorted(polys, key=lambda sp: -sp[0]):
        d = " ".join(
            "M" + " L".join("{:.1f},{:.1f}".format(*xy(c[0], c[1])) for c in ring) + " Z"
            for ring in poly
        )
        colour = FOUR_COLOURS.get(severity, "#888888")
        out.append(
            f'<path class="zone sev-{severity}" d="{d}" fill="{colour}" fill-opacity="0.22" '
            f'stroke="{colour}" stroke-width="2" fill-rule="evenodd"/>'
        )
    for n, place in enumerate(places):
        if n >= MAX_LABELS:
            break
        px, py = xy(float(place["lon"]), float(place["lat"]))
        label = escape(str(place.get("name") or kind_label(place.get("kind"))))
        out.append(
            f'<rect class="place" x="{px - 4:.1f}" y="{py - 4:.1f}" width="8" height="8"/>'
            f'<text class="label" x="{px + 7:.1f}" y="{py + 4:.1f}">{label}</text>'
        )
    tx, ty = xy(lon0, lat0)
    out.append(f'<circle class="target" cx="{tx:.1f}" cy="{ty:.1f}" r="5"/>')
    # Scale bar: a round length near a quarter of the width (1° of latitude ≈ 111,320 m).
    m_per_px = 111_320.0 / scale
    bar_m = _nice(m_per_px * MAP_W / 4)
    bar_px = bar_m / m_per_px
    by = MAP_H - 14
    out.append(
        f'<path class="scale" d="M{MAP_PAD},{by - 5} V{by} H{MAP_PAD + bar_px:.1f} V{by - 5}"/>'
        f'<text class="label" x="{MAP_PAD}" y="{by - 8}">'
        f"{bar_m:g} m</text>"
        f'<path class="north" d="M{MAP_W - 24},{MAP_PAD + 22} l8,-22 l8,22 l-8,-6 Z"/>'
        f'<text class="label" x="{MAP_W - 29}" y="{MAP_PAD + 36}">N 北</text>'
    )
    return Markup(  # noqa: S704 (numbers formatted here and escaped names only)
        f'<svg class="zone-map" xmlns="http://www.w3.org/2000/svg" width="{MAP_W}" '
        f'height="{MAP_H}" viewBox="0 0 {MAP_W} {MAP_H}" role="img" '
        f'aria-label="影响区 impact zones">{"".join(out)}</svg>'
    )


# -- the document ----------------------------------------------------------------------------------
def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        if i:
            seen.setdefault(i, None)
    return list(seen)


_ASSET_VERB = re.compile(r"\b(\d+) (failed|fails)\b")


def with_names(explanation: str, names: Mapping[int, str]) -> str:
    """The cascade's explanation chain with asset names for the ids it names.

    >>> with_names("17 failed at T+0: … → 18 fails at T+1 h", {17: "变电站", 18: "泵站"})
    '变电站 failed at T+0: … → 泵站 fails at T+1 h'
    """

    def sub(m: re.Match[str]) -> str:
        name = names.get(int(m.group(1)))
        return f"{name} {m.group(2)}" if name else m.group(0)

    return _ASSET_VERB.sub(sub, explanation)


def report_context(incident: Mapping[str, Any]) -> dict[str, Any]:
    """What ``incident_report.html`` shows, from :func:`app.impact.service.get_incident`."""
    result: Mapping[str, Any] = incident["results"]
    features = list(result["zones"]["features"])
    target = result["target"]
    places: dict[int, dict[str, Any]] = {}
    zones = []
    for f in features:
        p, e = f["properties"], f["properties"].get("exposure") or {}
        for item in (*e.get("sites", []), *e.get("infrastructure", [])):
            places.setdefault(int(item["id"]), item)
        zones.append(
            {
                "severity": p["severity"],
                "level": severity_label(p["severity"]),
                "colour": FOUR_COLOURS.get(p["severity"], "#888888"),
                "scenario": scenario_label(p["scenario"]),
                "label": p["label"],
                "radius_m": p.get("radius_m"),
                "threshold": value_text(p.get("threshold")) + " " + (p.get("unit") or ""),
                "residents": round(float(e.get("residents") or 0)),
                "counts": [(kind_label(k), n) for k, n in (e.get("counts") or {}).items()],
                "sites": [
                    {**s, "kind_label": kind_label(s.get("kind"))} for s in e.get("sites", [])
                ],
                "infrastructure": [
                    {**s, "kind_label": kind_label(s.get("kind"))}
                    for s in e.get("infrastructure", [])
                ],
                "underground": e.get("underground_spaces", 0),
                "hca": bool(e.get("high_consequence_area")),
            }
        )
    inputs = [
        {
            "scenario": scenario_label(i["scenario"]),
            "name": param_label(i["name"]),
            "value": value_text(i["value"]),
            "unit": i.get("unit") or "",
            "origin_short": origin_zh(str(i.get("origin") or "")),
            "origin": i.get("origin") or "",
        }
        for i in result.get("inputs", [])
    ]
    cascade = result.get("cascade") or {}
    initial_ids = {a.get("id") for a in cascade.get("initial", [])}
    names = {
        int(a["id"]): str(a["name"])
        for a in [
            *cascade.get("initial", []),
            *result.get("failing", []),
            *(x for s in cascade.get("steps", []) for x in (*s["newly_failed"], *s["on_buffer"])),
        ]
        if a.get("name")
    }

    def state(a: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **a,
            "kind_label": kind_label(a.get("kind")),
            "explanation": with_names(str(a.get("explanation") or ""), names),
        }

    steps = [
        {
            "label": s["label"],
            "failed_count": s["failed_count"],
            "newly_failed": [
                state(a)
                for a in s["newly_failed"]
                # The first failures are listed with their cause at T+0 already.
                if not (n == 0 and a.get("id") in initial_ids)
            ],
            "on_buffer": [state(a) for a in s["on_buffer"]],
            "unserved": {k: len(v) for k, v in (s.get("unserved") or {}).items() if v},
        }
        for n, s in enumerate(cascade.get("steps", []))
    ]
    sources = _unique(
        [m.get("source", "") for m in result.get("models", [])]
        + [f["properties"].get("source", "") for f in features]
        + [cascade.get("model", "")]
        + [
            (result.get("exposure") or {}).get("residents_source", ""),
        ]
    )
    scenarios = [
        {"label": scenario_label(s["id"], s.get("title")), "why": s.get("why", "")}
        for s in result.get("scenarios", [])
    ]
    # Zones nest (a blast's 1 psi ring holds its 8 psi ring): each place is listed once, in
    # the most severe zone it is in.
    inside: list[dict[str, Any]] = []
    listed: set[int] = set()
    for z in sorted(zones, key=lambda z: int(z["severity"])):
        for s in (*z["sites"], *z["infrastructure"]):
            if int(s["id"]) not in listed:
                listed.add(int(s["id"]))
                inside.append({**s, "level": z["level"], "colour": z["colour"]})
    exposure = result.get("exposure") or {}
    hca = result.get("high_consequence_area")
    return {
        "incident": incident,
        "status": f"{STATUS_ZH.get(incident['status'], '')} {incident['status']}".strip(),
        "scenarios": scenarios,
        "target": target,
        "target_label": target.get("name") or kind_label(target.get("kind")) or "点位 point",
        "map": zones_svg(features, (float(target["lon"]), float(target["lat"])), places.values()),
        "zones": zones,
        "inside": inside,
        "legend": [(severity_label(k), c) for k, c in FOUR_COLOURS.items()],
        "residents": round(float(exposure.get("residents") or 0)),
        "sites": len(exposure.get("sites") or []),
        "infrastructure": len(exposure.get("infrastructure") or []),
        "hca": bool(hca["is_hca"]) if hca else bool(exposure.get("high_consequence_area")),
        "inputs": inputs,
        "initial": [
            {**a, "kind_label": kind_label(a.get("kind"))} for a in cascade.get("initial", [])
        ],
        "steps": steps,
        "actions": result.get("actions", []),
        "notes": result.get("notes", []),
        "sources": sources,
    }
