"""The impact engine: zones, who is inside, what fails next and when, and what to do.

:func:`compute` runs one scenario or several on a target (an asset or a point) at a data time,
then counts exposure in every zone (:mod:`app.impact.exposure`), propagates the first failures
through dependencies and supply networks (:func:`gis.cascade.propagate` over
:mod:`app.impact.networks`) and derives the actions (:mod:`app.impact.actions`). The result is
plain JSON: every input with its unit and origin, every zone with its model, threshold and
source. :func:`infer_from_alarm` says which scenarios an alarm calls for; incidents
(:func:`create_incident` and the reads) store a result with its inputs and zones.

Services flush and never commit (``app/db.py``).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import shapely
from shapely.geometry import Point, mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger

from app.alarms.service import get_summary
from app.errors import InvalidInput, NotFound
from app.impact import actions, exposure, networks
from app.impact.params import SCENARIOS, STEPS, Value, get_scenario, resolve
from app.impact.scenarios import RUNNERS, Hazard, Target, Zone
from app.params import feature, feature_collection
from gis.cascade import Cascade, InitialFailure, leontief_inoperability, propagate
from gis.consequence import high_consequence_area

#: A point farther than this from every asset is outside the city's data [m].
MAX_POINT_DISTANCE_M = 20_000.0
#: Most scenarios one request may combine.
MAX_SCENARIOS = 4
#: Leontief mode: the share of a supplier's inoperability a dependent takes on (what-if
#: default), and the most any dependent takes on in all (keeps the system convergent: ρ(M) < 1).
LEONTIEF_COUPLING = 0.5
LEONTIEF_MAX_IN = 0.9
#: Assets the Leontief system holds at most (those reachable from the first failures).
LEONTIEF_MAX_ASSETS = 5_000
#: The model id of the PIR ring (gis.consequence.gas_pipe_rupture).
PIR_MODEL = "gas_pipe_pir_asme_b31_8s"


@dataclass(frozen=True)
class ScenarioCall:
    """One scenario to run: its id and the parameters given for it."""

    scenario: str
    params: Mapping[str, Any] = field(default_factory=dict)
    why: str = "requested"


# -- target ---------------------------------------------------------------------------------------
_ASSET_SQL = text(
    "SELECT id, kind, plate, name, owner, attributes, ST_AsBinary(geom) AS wkb "
    "FROM asset WHERE id = :id"
)
_NEAREST_SQL = text(
    "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) "
    "FROM asset ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1"
)


def target_of(session: Session, *, asset_id: int | None, point: Sequence[float] | None) -> Target:
    """The asset ``asset_id``, or ``point`` (lon, lat); 404 / 422 naming the field."""
    if (asset_id is None) == (point is None):
        raise InvalidInput("give exactly one of asset_id and point")
    if asset_id is not None:
        row = session.execute(_ASSET_SQL, {"id": asset_id}).mappings().first()
        if row is None:
            raise NotFound(f"asset_id {asset_id} is not an asset")
        return Target(
            shapely.from_wkb(bytes(row["wkb"])),
            int(row["id"]),
            row["kind"],
            row["name"],
            row["owner"],
            row["attributes"] or {},
        )
    assert point is not None
    lon, lat = (float(v) for v in point)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"point was {list(point)}; expected [lon, lat] in WGS84 degrees")
    nearest = session.execute(_NEAREST_SQL, {"lon": lon, "lat": lat}).scalar()
    if nearest is None or nearest > MAX_POINT_DISTANCE_M:
        where = "no assets at all" if nearest is None else f"the nearest is {nearest / 1000:.0f} km"
        raise InvalidInput(
            f"point {[lon, lat]} is outside the data ({where}; at most "
            f"{MAX_POINT_DISTANCE_M / 1000:g} km)"
        )
    return Target(Point(lon, lat))


def _check_target(call: ScenarioCall, t: Target) -> None:
    scenario = get_scenario(call.scenario)
    if scenario.target == "asset" and t.asset_id is None:
        raise InvalidInput(f"{scenario.id} applies to an asset: give asset_id, not point")
    if t.asset_id is not None and scenario.kinds and t.kind not in scenario.kinds:
        raise InvalidInput(
            f"asset_id {t.asset_id} is a {t.kind}; {scenario.id} applies to "
            f"{', '.join(scenario.kinds)}"
        )


# -- compute --------------------------------------------------------------------------------------
_NAMES_SQL = text("SELECT id, kind, name, owner FROM asset WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BigInteger))
)


def _cascade(
    session: Session, initial: list[InitialFailure], steps_h: Sequence[float], near: Point
) -> tuple[Cascade, list[str]]:
    notes: list[str] = []
    systems = [networks.pipe_system(session, n, near) for n in ("water", "gas")]
    supplies = [s.supply for s in systems if s is not None and s.supply is not None]
    for name, s in zip(("water", "gas"), systems, strict=True):
        if s is not None and s.supply is None:
            notes.append(
                f"the {name} network has no source assets bound to it: who it stops serving "
                "is not computed"
            )
    graph = networks.dependencies(session)
    result = propagate(graph, initial, steps_h=tuple(steps_h), networks=supplies)
    return result, notes + list(result.notes)


def _leontief(
    session: Session, initial: list[InitialFailure], coupling: float
) -> tuple[dict[int, float], list[str]]:
    """Leontief inoperability over the dependencies reachable from the first failures.

    ``M[from, to] = coupling · probability``, scaled down per dependent so that what it takes
    on from all its suppliers stays below :data:`LEONTIEF_MAX_IN` (ρ(M) < 1); u = 1 for each
    first failure. An alternative to the time-stepped propagation: a steady state, no times.
    """
    graph = networks.dependencies(session)
    seeds = [f.asset_id for f in initial if f.asset_id in graph]
    seen: set[Hashable] = set(seeds)
    stack = list(seeds)
    while stack and len(seen) < LEONTIEF_MAX_ASSETS:
        for _, nxt in graph.out_edges(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    coefficients: dict[tuple[Hashable, Hashable], float] = {}
    for a, b, data in graph.edges(data=True):
        if a in seen and b in seen:
            coefficients[(a, b)] = coefficients.get((a, b), 0.0) + coupling * float(
                data.get("probability", 1.0)
            )
    incoming: dict[Hashable, float] = {}
    for (_, b), c in coefficients.items():
        incoming[b] = incoming.get(b, 0.0) + c
    scaled = {
        (a, b): c * min(1.0, LEONTIEF_MAX_IN / incoming[b]) for (a, b), c in coefficients.items()
    }
    result = leontief_inoperability(scaled, {f.asset_id: 1.0 for f in initial})
    notes = [
        *result.notes,
        f"Leontief: coupling {coupling:g} per dependency (what-if), each dependent's total "
        f"capped at {LEONTIEF_MAX_IN:g}; spectral radius {result.spectral_radius:.3f}",
    ]
    q = {k: v for k, v in result.q.items() if isinstance(k, int) and not isinstance(k, bool)}
    return q, notes


def _asset_rows(session: Session, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    return {
        int(r.id): {"id": int(r.id), "kind": r.kind, "name": r.name, "owner": r.owner}
        for r in session.execute(_NAMES_SQL, {"ids": sorted(ids)})
    }


def _is_asset(x: Hashable) -> bool:
    """Cascade nodes are asset ids, or keys of network junctions (tuples)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _assets(xs: Any) -> list[int]:
    return [int(x) for x in xs if isinstance(x, int) and not isinstance(x, bool)]


def _cascade_doc(
    result: Cascade, initial: list[InitialFailure], rows: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    def state(s: Any) -> dict[str, Any]:
        (asset,) = _assets([s.asset_id])
        row = rows.get(asset, {"id": asset})
        return {
            **row,
            "state": s.state,
            "fail_at_h": round(s.fail_at_h, 3),
            "supply_lost_at_h": round(s.supply_lost_at_h, 3),
            "probability": round(s.probability, 4),
            "explanation": s.explanation.text,
            "path": [
                {
                    "from": h.from_id,
                    "to": h.to_id,
                    "link_type": h.link_type,
                    "via": h.via,
                    "delay_h": h.delay_h,
                    "buffer_h": h.buffer_h,
                    "failed_at_h": h.failed_at_h,
                }
                for h in s.explanation.hops
                if _is_asset(h.from_id) and _is_asset(h.to_id)
            ],
        }

    steps = []
    for step in result.steps:
        steps.append(
            {
                "at_h": step.at_h,
                "label": f"T+{step.at_h:g} h",
                "newly_failed": [state(s) for s in step.newly_failed if _is_asset(s.asset_id)],
                "on_buffer": [state(s) for s in step.on_buffer if _is_asset(s.asset_id)],
                "failed_count": sum(
                    1 for a, t in result.fail_at_h.items() if _is_asset(a) and t <= step.at_h
                ),
                "unserved": {
                    name: sorted(x for x in _assets(nodes) if x in rows)
                    for name, nodes in step.unserved.items()
                },
            }
        )
    return {
        "model": "gis.cascade.propagate: dependencies (asset_link: physical, cyber, logical) "
        "and supply networks (water, gas), time-stepped",
        "initial": [
            {**rows.get(a, {"id": a}), "cause": f.describe(), "at_h": f.at_h}
            for f in initial
            for a in _assets([f.asset_id])
        ],
        "steps": steps,
    }


def compute(
    session: Session,
    calls: Sequence[ScenarioCall],
    *,
    asset_id: int | None = None,
    point: Sequence[float] | None = None,
    at: datetime | None = None,
    cascade_mode: str = "propagate",
    coupling: float = LEONTIEF_COUPLING,
) -> dict[str, Any]:
    """The impact of ``calls`` on a target at data time ``at`` (default now), as JSON.

    ``cascade_mode``: ``propagate`` (time-stepped, :func:`gis.cascade.propagate`) or also
    ``leontief`` (steady-state inoperability, ``coupling`` per dependency).

    Raises :class:`InvalidInput` (422) naming the field for an unknown scenario, a bad
    parameter, a target of the wrong kind or a point outside the data; :class:`NotFound` for
    an unknown asset.
    """
    started = time.perf_counter()
    if not calls:
        raise InvalidInput("no scenario to run")
    if len(calls) > MAX_SCENARIOS:
        raise InvalidInput(f"{len(calls)} scenarios; at most {MAX_SCENARIOS} in one request")
    if at is not None and at.tzinfo is None:
        raise InvalidInput("at needs a UTC offset (RFC 3339), e.g. 2026-11-28T10:00:00Z")
    at = at or datetime.now(UTC)
    target = target_of(session, asset_id=asset_id, point=point)
    hazards: list[tuple[ScenarioCall, dict[str, Value], Hazard]] = []
    for call in calls:
        _check_target(call, target)
        scenario = get_scenario(call.scenario)
        inputs = resolve(scenario, call.params, target.attributes)
        hazard = RUNNERS[scenario.id](session, target, inputs, at)
        hazards.append((call, inputs, hazard))
    zones: list[Zone] = [z for _, _, h in hazards for z in h.zones]
    union = shapely.union_all([z.geom for z in zones]) if zones else None
    exposed = exposure.exposure(session, [z.geom for z in zones], union)
    total = exposed.pop() if union is not None else exposure.ZoneExposure()
    initial: list[InitialFailure] = []
    for _, _, h in hazards:
        for f in h.initial:
            if all(g.asset_id != f.asset_id for g in initial):
                initial.append(f)
    steps = hazards[0][1][STEPS.name].value
    cascade_result, cascade_notes = _cascade(session, initial, steps, target.point)
    involved = set(_assets(cascade_result.fail_at_h)) | set(
        _assets(cascade_result.supply_lost_at_h)
    )
    for step in cascade_result.steps:
        for nodes in step.unserved.values():
            involved |= set(_assets(nodes))
    rows = _asset_rows(session, involved)
    cascade_doc = _cascade_doc(cascade_result, initial, rows)
    if cascade_mode not in ("propagate", "leontief"):
        raise InvalidInput(f"cascade_mode was {cascade_mode!r}; expected propagate or leontief")
    if cascade_mode == "leontief":
        if not 0 < coupling < 1:
            raise InvalidInput(f"coupling was {coupling!r}; expected a number in (0, 1)")
        q, q_notes = _leontief(session, initial, coupling)
        names = _asset_rows(session, set(q))
        cascade_doc["inoperability"] = [
            {**names.get(a, {"id": a}), "q": round(v, 4)}
            for a, v in sorted(q.items(), key=lambda kv: -kv[1])
        ]
        cascade_notes += q_notes
    failing = [
        {**rows[a], "fail_at_h": round(t, 3)}
        for a, t in sorted(cascade_result.fail_at_h.items(), key=lambda kv: kv[1])
        if _is_asset(a) and a in rows
    ]
    zone_docs = []
    for ord_, (z, e) in enumerate(zip(zones, exposed, strict=True)):
        zone_docs.append({"ord": ord_, **z.properties(), "exposure": e.to_dict()})
    details: dict[str, Any] = {}
    for _, _, h in hazards:
        details.update(h.details)
    hca = None
    for z_doc in zone_docs:
        if z_doc["scenario"] == "gas_pipe_rupture" and z_doc["model"] == PIR_MODEL:
            found = high_consequence_area(
                z_doc["exposure"]["counts"].get("building", 0), len(z_doc["exposure"]["sites"])
            ).to_dict()
            hca = {
                **found,
                "notes": [*found["notes"], "buildings count only where they are assets"],
            }
    doc: dict[str, Any] = {
        "title": " + ".join(get_scenario(c.scenario).title for c in calls)
        + f" at {target.describe()}",
        "scenarios": [
            {"id": c.scenario, "title": get_scenario(c.scenario).title, "why": c.why} for c in calls
        ],
        "target": {
            "asset_id": target.asset_id,
            "kind": target.kind,
            "name": target.name,
            "lon": round(target.point.x, 7),
            "lat": round(target.point.y, 7),
        },
        "at": at,
        "inputs": [
            {"scenario": c.scenario, **v.to_dict()}
            for c, inputs, h in hazards
            for v in (*inputs.values(), *h.inputs)
        ],
        "models": [m for _, _, h in hazards for m in h.models],
        "zones": feature_collection(
            feature(d["ord"], mapping(z.geom), d) for z, d in zip(zones, zone_docs, strict=True)
        ),
        "exposure": total.to_dict(),
        "high_consequence_area": hca,
        "details": details,
        "cascade": cascade_doc,
        "failing": failing,
        "notes": [n for _, _, h in hazards for n in h.notes] + cascade_notes,
    }
    doc["actions"] = actions.recommend({"zones": zone_docs, "details": details, "failing": failing})
    doc["computed_at"] = datetime.now(UTC)
    doc["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return doc


# -- alarms ----------------------------------------------------------------------------------------
_GAS_MAIN_NEAR_SQL = text(
    "SELECT a.id FROM asset a WHERE a.kind = 'gas_pipe' AND ST_DWithin(a.geom::geography, "
    "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m) "
    "ORDER BY a.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1"
)
_FLOOD_ZONE_AT_SQL = text(
    "SELECT id FROM asset WHERE kind = 'flood_zone' AND ST_Intersects(geom, "
    "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) ORDER BY ST_Area(geom) LIMIT 1"
)
#: A manhole's gas comes from a main when one lies this close (the rule pack's context, m).
GAS_MAIN_NEAR_M = 10.0
FLOOD_INDICATORS = ("ponding_cm", "level_m", "rain_mm_h")
#: Toxic-gas indicators and the ERG chemical each one detects.
DETECTED_CHEMICALS = {
    "nh3_ppm": "Ammonia, anhydrous",
    "cl2_ppm": "Chlorine",
    "h2s_ppm": "Hydrogen sulfide",
}
BRIDGE_INDICATORS = (
    "strain_ue",
    "deflection_mm",
    "tilt_deg",
    "acceleration_g",
    "cable_force_kn",
    "displacement_mm",
)


@dataclass(frozen=True)
class Inferred:
    """What an alarm calls for: the scenarios and the target, and why."""

    calls: tuple[ScenarioCall, ...]
    asset_id: int | None
    point: tuple[float, float] | None
    at: datetime


def infer_from_alarm(session: Session, alarm_id: int) -> Inferred:
    """The scenarios an alarm calls for (its indicator, its asset, what is near), explained."""
    alarm = get_summary(session, alarm_id)
    indicator, kind = alarm["indicator"], alarm["asset_kind"]
    asset_id = alarm["asset_id"]
    lon, lat = alarm["lon"], alarm["lat"]
    at = alarm["last_seen_at"] or alarm["opened_at"]
    here = (float(lon), float(lat)) if lon is not None else None
    why = f"alarm {alarm_id}: {alarm['rule_title']} ({indicator}) on {kind or 'no asset'}"
    calls: list[ScenarioCall] = []
    if indicator in ("ch4_pct_lel", "ch4_pct_vol") and here is not None:
        main = session.execute(
            _GAS_MAIN_NEAR_SQL, {"lon": here[0], "lat": here[1], "m": GAS_MAIN_NEAR_M}
        ).scalar()
        source = f"gas main {main} within {GAS_MAIN_NEAR_M:g} m" if main else "no gas main near"
        calls.append(ScenarioCall("gas_migration", {}, f"{why}; {source}"))
        if kind not in SCENARIOS["gas_migration"].kinds:
            asset_id = None
        return Inferred(tuple(calls), asset_id, None if asset_id else here, at)
    if kind == "chemical_plant":
        # A gas-specific detector says which of the plant's chemicals leaks; otherwise the
        # scenario takes the first ERG chemical of the plant's ``chemicals``.
        gas = DETECTED_CHEMICALS.get(indicator)
        params = {"chemical": gas} if gas else {}
        because = f"{why}; the detector measures {gas}" if gas else why
        return Inferred((ScenarioCall("toxic_release", params, because),), asset_id, None, at)
    if kind == "water_pipe":
        return Inferred((ScenarioCall("water_main_burst", {}, why),), asset_id, None, at)
    if kind == "gas_pipe":
        calls = [ScenarioCall("gas_pipe_rupture", {}, why), ScenarioCall("jet_fire", {}, why)]
        return Inferred(tuple(calls), asset_id, None, at)
    if indicator in FLOOD_INDICATORS and here is not None:
        zone = session.execute(_FLOOD_ZONE_AT_SQL, {"lon": here[0], "lat": here[1]}).scalar()
        if zone is not None:
            return Inferred(
                (ScenarioCall("flood", {}, f"{why}; inside flood zone {zone}"),),
                int(zone),
                None,
                at,
            )
        if kind in ("flood_zone", "ponding_point"):
            return Inferred((ScenarioCall("flood", {}, why),), asset_id, None, at)
        return Inferred((ScenarioCall("flood", {}, why),), None, here, at)
    if asset_id is not None:
        return Inferred((ScenarioCall("asset_failure", {}, why),), asset_id, None, at)
    raise InvalidInput(f"alarm {alarm_id} has no asset and no position: no impact to infer")


def impact_of_alarm(session: Session, alarm_id: int) -> dict[str, Any]:
    """:func:`compute` of what :func:`infer_from_alarm` says, for the alarm's data time."""
    inferred = infer_from_alarm(session, alarm_id)
    doc = compute(
        session, inferred.calls, asset_id=inferred.asset_id, point=inferred.point, at=inferred.at
    )
    doc["alarm_id"] = alarm_id
    if "explosive_mass_kg" in doc["details"] and doc["details"]["explosive_mass_kg"] > 0:
        doc["notes"].append(
            "a vapour-cloud explosion of the gas that can collect underground: POST /impact "
            f"with vapour_cloud_explosion and mass_kg = {doc['details']['explosive_mass_kg']}"
        )
    return doc


# -- incidents -------------------------------------------------------------------------------------
_ZONE = "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB(:zone, 4326)), 3))"
_INSERT_INCIDENT = text(
    f"""
    INSERT INTO incident (alarm_id, kind, title, status, geom, zone, scenario, results, created_by,
                          computed_at, data_at)
    VALUES (:alarm_id, :kind, :title, 'open', ST_GeomFromWKB(:geom, 4326),
            {_ZONE}, CAST(:scenario AS jsonb),
            CAST(:results AS jsonb), :actor, :computed_at, :data_at)
    RETURNING id
    """
)
_UPDATE_INCIDENT = text(
    f"""
    UPDATE incident SET zone = {_ZONE},
           results = CAST(:results AS jsonb), computed_at = :computed_at, data_at = :data_at,
           updated_at = clock_timestamp()
    WHERE id = :id
    """
)
_INSERT_ZONES = text(
    """
    INSERT INTO incident_zone (incident_id, ord, scenario, model, label, threshold, unit,
                               radius_m, severity, source, attributes, geom)
    SELECT :incident, z.ord, z.scenario, z.model, z.label, z.threshold, z.unit, z.radius_m,
           z.severity, z.source, CAST(z.attributes AS jsonb),
           ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB(w.wkb, 4326)), 3))
    FROM jsonb_to_recordset(CAST(:zones AS jsonb)) AS z(ord int, scenario text, model text,
         label text, threshold float8, unit text, radius_m float8, severity int, source text,
         attributes jsonb, wkb text)
    CROSS JOIN LATERAL (SELECT decode(z.wkb, 'hex') AS wkb) w
    """
)


def _zones_payload(result: Mapping[str, Any]) -> str:
    rows = []
    for f in result["zones"]["features"]:
        p = f["properties"]
        keep = (
            "ord",
            "scenario",
            "model",
            "label",
            "threshold",
            "unit",
            "radius_m",
            "severity",
            "source",
        )
        extra = {k: v for k, v in p.items() if k not in keep}
        rows.append(
            {
                **{k: p.get(k) for k in keep},
                "attributes": extra,
                "wkb": shapely.to_wkb(shapely.geometry.shape(f["geometry"]), hex=True),
            }
        )
    return orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()


def _outer(result: Mapping[str, Any]) -> BaseGeometry:
    """The union of the zones: the outer notify area."""
    return shapely.union_all(
        [shapely.geometry.shape(f["geometry"]) for f in result["zones"]["features"]]
    )


def _store_zones(session: Session, incident_id: int, result: Mapping[str, Any]) -> None:
    session.execute(text("DELETE FROM incident_zone WHERE incident_id = :i"), {"i": incident_id})
    session.execute(_INSERT_ZONES, {"incident": incident_id, "zones": _zones_payload(result)})


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_incident(
    session: Session,
    *,
    actor: str,
    alarm_id: int | None = None,
    calls: Sequence[ScenarioCall] = (),
    asset_id: int | None = None,
    point: Sequence[float] | None = None,
    at: datetime | None = None,
    title: str | None = None,
) -> int:
    """Store an incident with its computed impact (from an alarm, or scenarios on a target)."""
    if alarm_id is not None:
        if calls or asset_id is not None or point is not None:
            raise InvalidInput("an incident from alarm_id takes no scenario, asset_id or point")
        inferred = infer_from_alarm(session, alarm_id)
        calls, asset_id, point, at = inferred.calls, inferred.asset_id, inferred.point, inferred.at
    result = compute(session, calls, asset_id=asset_id, point=point, at=at)
    scenario = {
        "calls": [{"scenario": c.scenario, "params": dict(c.params), "why": c.why} for c in calls],
        "asset_id": asset_id,
        "point": None if point is None else list(point),
        "at": result["at"].isoformat(),
    }
    target = result["target"]
    incident_id = int(
        session.execute(
            _INSERT_INCIDENT,
            {
                "alarm_id": alarm_id,
                "kind": "+".join(c.scenario for c in calls),
                "title": title or result["title"],
                "geom": shapely.to_wkb(Point(target["lon"], target["lat"])),
                "zone": shapely.to_wkb(_outer(result)),
                "scenario": _json(scenario),
                "results": _json(result),
                "actor": actor,
                "computed_at": result["computed_at"],
                "data_at": result["at"],
            },
        ).scalar_one()
    )
    _store_zones(session, incident_id, result)
    session.flush()
    return incident_id


def recompute_incident(session: Session, incident_id: int, *, at: datetime | None = None) -> None:
    """Compute an incident's impact again (the wind changed), at ``at`` (default now)."""
    row = session.execute(
        text("SELECT scenario FROM incident WHERE id = :i FOR UPDATE"), {"i": incident_id}
    ).first()
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    s = row.scenario
    calls = [
        ScenarioCall(c["scenario"], c.get("params") or {}, c.get("why", "")) for c in s["calls"]
    ]
    result = compute(
        session,
        calls,
        asset_id=s.get("asset_id"),
        point=s.get("point"),
        at=at or datetime.now(UTC),
    )
    session.execute(
        _UPDATE_INCIDENT,
        {
            "id": incident_id,
            "zone": shapely.to_wkb(_outer(result)),
            "results": _json(result),
            "computed_at": result["computed_at"],
            "data_at": result["at"],
        },
    )
    _store_zones(session, incident_id, result)
    session.flush()


_INCIDENT_COLUMNS = (
    "id, alarm_id, kind, title, status, created_at, created_by, updated_at, computed_at, "
    "data_at, ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat"
)


def list_incidents(
    *, db_session: Session, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Incidents, newest first (summaries, no result)."""
    if status is not None and status not in ("open", "contained", "closed"):
        raise InvalidInput(f"status was {status!r}; expected open, contained or closed")
    rows = db_session.execute(
        text(
            f"SELECT {_INCIDENT_COLUMNS} FROM incident WHERE (CAST(:s AS text) IS NULL OR "
            "status = :s) ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset"
        ),
        {"s": status, "limit": limit, "offset": offset},
    ).mappings()
    return [dict(r) for r in rows]


def get_incident(*, db_session: Session, incident_id: int) -> dict[str, Any]:
    """One incident with its inputs and its stored result."""
    row = (
        db_session.execute(
            text(f"SELECT {_INCIDENT_COLUMNS}, scenario, results FROM incident WHERE id = :i"),
            {"i": incident_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    return dict(row)


def scenario_list() -> list[dict[str, Any]]:
    """Every scenario with its parameters (id, unit, default, source, JSON Schema)."""
    return [
        {
            "id": s.id,
            "title": s.title,
            "description": s.description,
            "target": s.target,
            "kinds": list(s.kinds),
            "params": [
                {
                    "name": p.name,
                    "unit": p.unit,
                    "description": p.description,
                    "default": list(p.default) if isinstance(p.default, tuple) else p.default,
                    "source": p.source,
                    "from_attribute": p.attribute,
                    "schema": p.schema(),
                }
                for p in (*s.params, STEPS)
            ],
        }
        for s in SCENARIOS.values()
    ]
