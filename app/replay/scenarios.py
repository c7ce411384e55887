"""Scripted incidents and their ground truth: gas leak, water burst, bridge strain, flood,
chemical release."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.replay.fleet import Fleet
from app.replay.model import F64, I64, iso

SCENARIOS = ("gas-leak", "water-burst", "bridge-strain", "flood-rain", "chemical-release", "demo")
SINGLE_WINDOW = (0.25, 0.75)
DEMO_WINDOWS = {
    "gas-leak": (0.05, 0.35),
    "water-burst": (0.25, 0.5),
    "bridge-strain": (0.45, 0.6),
    "flood-rain": (0.55, 0.95),
    "chemical-release": (0.3, 0.55),
}
GAS_RADIUS_M = 50.0  # manholes this close to the leaking main fill with gas
NOISE_RADIUS_M = 200.0  # acoustic loggers on nearby mains hear a burst
WATER_PRESSURE_RADIUS_M = 300.0  # neighbouring mains lose some pressure
FLOOD_RADIUS_M = 300.0  # drains and ponding gauges around the flooding zone
RAIN_FALLOFF_M = 5_000.0  # the storm cell is centred on the flooding zone
TOXIC_INDICATORS = ("nh3_ppm", "cl2_ppm")
#: Peak at a plant's detector per gas: above AEGL-2 (60 min), the orange/yellow levels of the
#: default rules (ammonia 160 / 300 ppm, chlorine 2 / 10 ppm), below AEGL-3.
TOXIC_PEAK = {"nh3_ppm": (200.0, 600.0), "cl2_ppm": (3.0, 15.0)}
#: A bridge excursion reaches this share of the bridge's design limit where it has one.
DESIGN_SHARE = (0.88, 1.05)


# -- incidents --------------------------------------------------------------------------------
@dataclass
class Effect:
    """An excursion added to some sensors: ``delta`` reached between rise and fall."""

    sensors: I64  # fleet positions
    delta: F64
    start: F64  # epoch s per sensor: the excursion begins
    rise_s: F64  # ... and reaches its full delta after this long
    fall_s: F64  # ... starts falling this long before ``end``
    end: F64  # ... and is gone at ``end``

    def envelope(self, at: I64, ts: I64) -> F64:
        """0..1 at ``ts`` for effect rows ``at``: smoothstep up, hold, smoothstep down."""
        up = np.clip((ts - self.start[at]) / self.rise_s[at], 0.0, 1.0)
        down = np.clip((self.end[at] - ts) / self.fall_s[at], 0.0, 1.0)
        return up * up * (3 - 2 * up) * down * down * (3 - 2 * down)


@dataclass
class Incident:
    type: str
    description: str
    assets: list[dict[str, Any]]
    effects: list[Effect] = field(default_factory=list)

    @property
    def start(self) -> float:
        return float(min(e.start.min() for e in self.effects))

    @property
    def end(self) -> float:
        return float(max(e.end.max() for e in self.effects))

    def truth(self, fleet: Fleet) -> dict[str, Any]:
        """The incident as JSON: window, assets, affected sensors and their expected extremes."""
        sensors: list[dict[str, Any]] = []
        for e in self.effects:
            extreme = np.clip(
                fleet.nominal[e.sensors] + e.delta, fleet.low[e.sensors], fleet.high[e.sensors]
            )
            for j, pos in enumerate(e.sensors):
                scale = fleet.scale[pos]
                sensors.append(
                    {
                        "external_id": str(fleet.external_id[pos]),
                        "kind": str(fleet.kind[pos]),
                        "baseline": round(float(fleet.nominal[pos]) * scale) / scale,
                        "expected_peak": round(float(extreme[j]) * scale) / scale,
                        "direction": "up" if e.delta[j] >= 0 else "down",
                        "rise_from": iso(e.start[j]),
                        "peak_from": iso(e.start[j] + e.rise_s[j]),
                        "peak_until": iso(e.end[j] - e.fall_s[j]),
                        "back_by": iso(e.end[j]),
                    }
                )
        sensors.sort(key=lambda s: s["external_id"])
        return {
            "type": self.type,
            "description": self.description,
            "start": iso(self.start),
            "end": iso(self.end),
            "assets": self.assets,
            "affected_sensors": [s["external_id"] for s in sensors],
            "expected_peak": {s["external_id"]: s["expected_peak"] for s in sensors},
            "sensors": sensors,
        }


@dataclass
class Plan:
    scenario: str
    seed: int
    start: int
    end: int
    incidents: list[Incident]
    notes: list[str] = field(default_factory=list)

    def truth(self, fleet: Fleet, **extra: Any) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "start": iso(self.start),
            "end": iso(self.end),
            "sensors": len(fleet),
            **extra,
            "notes": self.notes,
            "incidents": [i.truth(fleet) for i in self.incidents],
        }


Builder = Callable[[Session, Fleet, np.random.Generator, float, float], Incident | str]


def plan_scenario(
    session: Session, fleet: Fleet, scenario: str, start: int, end: int, seed: int
) -> Plan:
    """Choose where and when each incident of ``scenario`` happens (seeded).

    A single scenario happens in the middle half of the span; ``demo`` staggers all five. A
    single scenario that finds nothing to happen to (no gas main with a methane sensor near
    it…) is an error; ``demo`` leaves that incident out and says so in ``notes``.
    """
    if scenario not in SCENARIOS:
        raise InvalidInput(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    span = end - start
    windows = DEMO_WINDOWS if scenario == "demo" else {scenario: SINGLE_WINDOW}
    plan = Plan(scenario, seed, start, end, [])
    for name, (f0, f1) in windows.items():
        made = BUILDERS[name](session, fleet, rng, start + f0 * span, start + f1 * span)
        if isinstance(made, str):
            if scenario != "demo":
                raise InvalidInput(f"scenario {name}: {made}")
            plan.notes.append(f"{name} left out: {made}")
        else:
            plan.incidents.append(made)
    return plan


def _effect(
    fleet: Fleet,
    ids: list[int] | I64,
    delta: float | F64 | Callable[[I64], F64],
    start: float | F64,
    rise_s: float | F64,
    fall_s: float,
    end: float,
) -> Effect | None:
    """An :class:`Effect` on the sensors ``ids``; per-sensor arrays are aligned with ``ids``.

    ``delta`` may be a callable of the fleet positions (for deltas relative to the nominal).
    Ids not in the fleet (a sensor retired since it was read) are dropped with their values.
    """
    ids = np.asarray(ids, dtype=np.int64)
    keep = np.isin(ids, fleet.id)
    pos = fleet.positions(ids[keep])
    if not len(pos):
        return None
    n = len(ids)

    def per_sensor(value: float | F64) -> F64:
        return np.broadcast_to(np.asarray(value, dtype=float), n)[keep].copy()

    return Effect(
        sensors=pos,
        delta=delta(pos) if callable(delta) else per_sensor(delta),
        start=per_sensor(start),
        rise_s=per_sensor(rise_s),
        fall_s=np.full(len(pos), float(fall_s)),
        end=np.full(len(pos), float(end)),
    )


def _asset(session: Session, asset_id: int, role: str) -> dict[str, Any]:
    row = session.execute(
        text("SELECT id, external_id, source, kind, name FROM asset WHERE id = :id"),
        {"id": asset_id},
    ).one()
    return {
        "id": row.id,
        "external_id": row.external_id,
        "source": row.source,
        "kind": row.kind,
        "name": row.name,
        "role": role,
    }


def _pick(rng: np.random.Generator, rows: Sequence[Any]) -> Any:
    return rows[int(rng.integers(len(rows)))]


def _near(session: Session, asset_id: int, kinds: tuple[str, ...], radius_m: float) -> list[Any]:
    """Active sensors of ``kinds`` within ``radius_m`` of an asset, with their distance."""
    return list(
        session.execute(
            text(
                "SELECT s.id, s.kind, s.asset_id, "
                "ST_Distance(a.geom::geography, s.geom::geography) AS d "
                "FROM sensor s JOIN asset a ON a.id = :asset "
                "WHERE s.status = 'active' AND s.kind = ANY(:kinds) "
                "AND ST_DWithin(a.geom::geography, s.geom::geography, :r) ORDER BY s.id"
            ),
            {"asset": asset_id, "kinds": list(kinds), "r": radius_m},
        ).all()
    )


def _bound(fleet: Fleet, asset_id: int, kind: str) -> I64:
    """Ids of the fleet's sensors of ``kind`` bound to the asset."""
    ids: I64 = fleet.id[(fleet.asset_id == asset_id) & (fleet.kind == kind)]
    return ids


def gas_leak(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A gas main leaks: CH₄ rises in the manholes within 50 m, the main's pressure drops.

    The main is drawn among gas mains with a methane sensor within 50 m, preferring those with a
    pressure sensor of their own, with odds proportional to the number of methane sensors
    near them. Gas reaches nearer manholes first; the peak
    falls from 40–60 %LEL next to the main to 20 %LEL at 50 m (20 %LEL = 1 %vol is Hefei's alert
    level). The leak is found and the main isolated and repaired before ``t1``.
    """
    rows = session.execute(
        text(
            "SELECT g.id, count(s.id) AS n, (SELECT count(*) FROM sensor p WHERE p.asset_id = g.id "
            "  AND p.kind = 'pressure_mpa' AND p.status = 'active') AS np "
            "FROM sensor s JOIN asset g ON g.kind = 'gas_pipe' "
            "  AND ST_DWithin(g.geom::geography, s.geom::geography, :r) "
            "WHERE s.kind = 'ch4_pct_lel' AND s.status = 'active' "
            "GROUP BY g.id ORDER BY g.id"
        ),
        {"r": GAS_RADIUS_M},
    ).all()
    if not rows:
        return f"no gas_pipe has an active ch4_pct_lel sensor within {GAS_RADIUS_M:g} m"
    # Prefer mains whose own pressure is watched, and weight by the number of methane
    # sensors near them, so that the leak shows in several manholes.
    best = [r for r in rows if r.np > 0] or rows
    weight = np.array([r.n for r in best], dtype=float)
    main = int(best[int(rng.choice(len(best), p=weight / weight.sum()))].id)
    width = t1 - t0
    near = _near(session, main, ("ch4_pct_lel",), GAS_RADIUS_M)
    ids = [int(r.id) for r in near]
    dist = np.array([r.d for r in near], dtype=float)
    top = rng.uniform(40.0, 60.0)
    peak = 20.0 + (top - 20.0) * (1.0 - dist / GAS_RADIUS_M)
    incident = Incident(
        "gas-leak",
        f"gas main leak: CH₄ up to {top:.0f} %LEL in manholes within {GAS_RADIUS_M:g} m, "
        "main pressure drops; isolated and repaired at the end",
        [_asset(session, main, "leaking main")],
    )
    # Gas migrates through the soil: the farthest manhole starts up to 0.1 × window later.
    ch4 = _effect(
        fleet,
        ids,
        lambda p: peak[np.isin(ids, fleet.id)] - fleet.nominal[p],
        t0 + dist / GAS_RADIUS_M * min(180.0, 0.1 * width),
        min(600.0, 0.3 * width) * (0.6 + 0.4 * rng.random(len(ids))),
        min(600.0, 0.2 * width),
        t1,
    )
    drop = rng.uniform(0.12, 0.3)
    pressure = _effect(
        fleet,
        _bound(fleet, main, "pressure_mpa"),
        lambda p: -drop * fleet.nominal[p],
        t0,
        min(300.0, 0.2 * width),
        min(600.0, 0.2 * width),
        t1,
    )
    incident.effects = [e for e in (ch4, pressure) if e is not None]
    return incident


def water_burst(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A water main bursts: its pressure falls 45–70 % within two minutes, flow and leak noise
    rise; loggers on mains within 200 m hear it, mains within 300 m lose a little pressure.

    The main is drawn among water mains with a pressure sensor of their own, preferring those
    that also have flow and noise sensors.
    """
    rows = session.execute(
        text(
            "SELECT a.id, count(DISTINCT s.kind) AS kinds FROM asset a "
            "JOIN sensor s ON s.asset_id = a.id AND s.status = 'active' "
            "  AND s.kind IN ('pressure_mpa', 'flow_m3h', 'leak_noise_db') "
            "WHERE a.kind = 'water_pipe' GROUP BY a.id "
            "HAVING bool_or(s.kind = 'pressure_mpa') ORDER BY a.id"
        )
    ).all()
    if not rows:
        return "no water_pipe has an active pressure_mpa sensor bound to it"
    most = max(r.kinds for r in rows)
    main = int(_pick(rng, [r for r in rows if r.kinds == most]).id)
    width = t1 - t0
    sharp = min(120.0, 0.1 * width)
    fall = min(900.0, 0.25 * width)
    drop, surge, loud = rng.uniform(0.45, 0.7), rng.uniform(0.8, 2.0), rng.uniform(25.0, 40.0)
    effects = [
        _effect(
            fleet,
            _bound(fleet, main, "pressure_mpa"),
            lambda p: -drop * fleet.nominal[p],
            t0,
            sharp,
            fall,
            t1,
        ),
        _effect(
            fleet,
            _bound(fleet, main, "flow_m3h"),
            lambda p: surge * fleet.nominal[p],
            t0,
            sharp,
            fall,
            t1,
        ),
        _effect(fleet, _bound(fleet, main, "leak_noise_db"), loud, t0, sharp / 2, fall, t1),
    ]
    around = [
        r
        for r in _near(session, main, ("leak_noise_db", "pressure_mpa"), WATER_PRESSURE_RADIUS_M)
        if r.asset_id != main
    ]
    noise = [r for r in around if r.kind == "leak_noise_db" and r.d <= NOISE_RADIUS_M]
    effects.append(
        _effect(
            fleet,
            [r.id for r in noise],
            np.array([loud * (1 - r.d / NOISE_RADIUS_M) for r in noise]),
            t0,
            sharp / 2,
            fall,
            t1,
        )
    )
    water_pressure = set(fleet.id[fleet.profile == "pressure_water"].tolist())
    neighbours = [r for r in around if r.kind == "pressure_mpa" and r.id in water_pressure]
    share = {int(r.id): 0.1 * (1 - r.d / WATER_PRESSURE_RADIUS_M) for r in neighbours}
    effects.append(
        _effect(
            fleet,
            list(share),
            lambda p: -np.array([share[int(i)] for i in fleet.id[p]]) * fleet.nominal[p],
            t0,
            sharp,
            fall,
            t1,
        )
    )
    incident = Incident(
        "water-burst",
        f"water main burst: pressure −{drop:.0%}, flow +{surge:.0%}, leak noise +{loud:.0f} dB; "
        "isolated and repaired at the end",
        [_asset(session, main, "burst main")],
    )
    incident.effects = [e for e in effects if e is not None]
    return incident


def bridge_strain(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """One bridge's strain, deflection and tilt leave their range (overload, scour) and recover.

    The bridge is drawn among those with the most kinds of structural sensor bound to them.
    """
    kinds = ("strain_ue", "deflection_mm", "tilt_deg", "displacement_mm", "acceleration_g")
    rows = session.execute(
        text(
            "SELECT a.id, count(DISTINCT s.kind) AS kinds FROM asset a "
            "JOIN sensor s ON s.asset_id = a.id AND s.status = 'active' AND s.kind = ANY(:k) "
            "WHERE a.kind = 'bridge' GROUP BY a.id ORDER BY a.id"
        ),
        {"k": list(kinds)},
    ).all()
    if not rows:
        return "no bridge has an active strain, deflection or tilt sensor bound to it"
    most = max(r.kinds for r in rows)
    bridge = int(_pick(rng, [r for r in rows if r.kinds == most]).id)
    width = t1 - t0
    rise, fall = min(180.0, 0.15 * width), min(300.0, 0.2 * width)
    size = {
        "strain_ue": rng.uniform(250.0, 600.0),
        "deflection_mm": rng.uniform(15.0, 60.0),
        "tilt_deg": rng.uniform(0.2, 1.0),
        "displacement_mm": rng.uniform(5.0, 20.0),
        "acceleration_g": rng.uniform(0.05, 0.2),
    }
    # Where the bridge has design limits (the warning rules compare with them), the excursion
    # reaches 88-105 % of each: an orange or red alarm, whatever the bridge's own baseline.
    design = session.execute(
        text("SELECT attributes FROM asset WHERE id = :id"), {"id": bridge}
    ).scalar_one()
    share = rng.uniform(*DESIGN_SHARE)
    limits = {
        k: float(v)
        for k in kinds
        if isinstance(v := (design or {}).get(f"design_{k}"), int | float) and v > 0
    }

    def delta(kind: str) -> float | Callable[[I64], F64]:
        if kind in limits:
            return lambda p: share * limits[kind] - fleet.nominal[p]
        return size[kind]

    described = {k: size[k] if k not in limits else share * limits[k] for k in size}
    incident = Incident(
        "bridge-strain",
        f"bridge excursion: strain to {described['strain_ue']:.0f} µε, deflection "
        f"{described['deflection_mm']:.0f} mm, tilt {described['tilt_deg']:.2f}°"
        + (f" ({share:.0%} of the design limits)" if limits else "")
        + "; recovers at the end",
        [_asset(session, bridge, "bridge")],
    )
    effects = [
        _effect(fleet, _bound(fleet, bridge, k), delta(k), t0, rise, fall, t1) for k in kinds
    ]
    incident.effects = [e for e in effects if e is not None]
    return incident


def flood_rain(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A storm: rain rises city-wide (heaviest over one flood zone), then drains fill and water
    ponds around that zone.

    The zone is drawn among flood zones with level and ponding sensors within 300 m (100-year
    zones first). Rain peaks at 40–90 mm/h at the zone and half that 5 km away, and stops at 70 %
    of the window; level (+0.6–1.5 m) and ponding (+12–40 cm, moderate to severe) follow with a
    lag and recede by the end.
    """
    rows = session.execute(
        text(
            "SELECT z.id, (z.attributes->>'return_period_yr') = '100' AS frequent, "
            "count(*) FILTER (WHERE s.kind = 'ponding_cm') AS np, "
            "count(*) FILTER (WHERE s.kind = 'level_m') AS nl "
            "FROM sensor s JOIN asset z ON z.kind = 'flood_zone' "
            "  AND ST_DWithin(z.geom::geography, s.geom::geography, :r) "
            "WHERE s.status = 'active' AND s.kind IN ('ponding_cm', 'level_m') "
            "GROUP BY z.id ORDER BY z.id"
        ),
        {"r": FLOOD_RADIUS_M},
    ).all()
    if not rows:
        return (
            f"no flood_zone has an active level_m or ponding_cm sensor within {FLOOD_RADIUS_M:g} m"
        )
    both = [r for r in rows if r.np and r.nl]
    zone = int(_pick(rng, [r for r in both if r.frequent] or both or rows).id)
    w = t1 - t0
    rain_end = t0 + 0.7 * w
    top = rng.uniform(40.0, 90.0)
    rain = session.execute(
        text(
            "SELECT s.id, ST_Distance(z.geom::geography, s.geom::geography) AS d "
            "FROM sensor s JOIN asset z ON z.id = :z "
            "WHERE s.kind = 'rain_mm_h' AND s.status = 'active' AND s.geom IS NOT NULL "
            "ORDER BY s.id"
        ),
        {"z": zone},
    ).all()
    rain_mm = {int(r.id): top * (1 - 0.5 * min(r.d / RAIN_FALLOFF_M, 1.0)) for r in rain}
    near = _near(session, zone, ("level_m", "ponding_cm"), FLOOD_RADIUS_M)
    rise = {int(r.id): 1 - 0.5 * r.d / FLOOD_RADIUS_M for r in near}
    level_top, pond_top = rng.uniform(0.6, 1.5), rng.uniform(12.0, 40.0)
    level = [int(r.id) for r in near if r.kind == "level_m"]
    pond = [int(r.id) for r in near if r.kind == "ponding_cm"]

    def scaled(table: dict[int, float], top_value: float) -> Callable[[I64], F64]:
        return lambda p: np.array([top_value * table[int(i)] for i in fleet.id[p]])

    effects = [
        _effect(fleet, list(rain_mm), scaled(rain_mm, 1.0), t0, 0.2 * w, 0.2 * w, rain_end),
        _effect(fleet, level, scaled(rise, level_top), t0 + 0.15 * w, 0.25 * w, 0.2 * w, t1),
        _effect(fleet, pond, scaled(rise, pond_top), t0 + 0.2 * w, 0.25 * w, 0.2 * w, t1),
    ]
    incident = Incident(
        "flood-rain",
        f"storm: rain up to {top:.0f} mm/h, drain level +{level_top:.1f} m and ponding up to "
        f"{pond_top:.0f} cm around the flood zone; recedes by the end",
        [_asset(session, zone, "flooding zone")],
    )
    incident.effects = [e for e in effects if e is not None]
    return incident


def chemical_release(
    session: Session, fleet: Fleet, rng: np.random.Generator, t0: float, t1: float
) -> Incident | str:
    """A toxic gas leaks at a chemical plant: its fence-line detector rises above AEGL-2 and
    the tank it leaks from loses 5-15 points of level; contained and back by the end.

    The plant is drawn among chemical plants with an active ammonia or chlorine detector bound
    to them. Ammonia peaks at 200-600 ppm, chlorine at 3-15 ppm (above AEGL-2 for 60 min,
    below AEGL-3): the default rules raise an orange or yellow alarm, whose impact is an ERG
    toxic release turned by the live wind.
    """
    rows = session.execute(
        text(
            "SELECT a.id, min(s.kind) AS kind FROM asset a "
            "JOIN sensor s ON s.asset_id = a.id AND s.status = 'active' AND s.kind = ANY(:k) "
            "WHERE a.kind = 'chemical_plant' GROUP BY a.id ORDER BY a.id"
        ),
        {"k": list(TOXIC_INDICATORS)},
    ).all()
    if not rows:
        return "no chemical_plant has an active nh3_ppm or cl2_ppm sensor bound to it"
    row = _pick(rng, rows)
    plant, gas = int(row.id), str(row.kind)
    width = t1 - t0
    rise, fall = min(300.0, 0.2 * width), min(900.0, 0.25 * width)
    peak = rng.uniform(*TOXIC_PEAK[gas])
    loss = rng.uniform(5.0, 15.0)
    effects = [
        _effect(
            fleet, _bound(fleet, plant, gas), lambda p: peak - fleet.nominal[p], t0, rise, fall, t1
        ),
        # The tank does not refill during the incident: its level holds low until the end.
        _effect(fleet, _bound(fleet, plant, "tank_level_pct"), -loss, t0, 2 * rise, 1.0, t1),
    ]
    incident = Incident(
        "chemical-release",
        f"toxic release: {gas.split('_')[0].upper()} up to {peak:.3g} ppm at the plant's "
        f"detector, tank level −{loss:.0f} points; contained at the end",
        [_asset(session, plant, "leaking plant")],
    )
    incident.effects = [e for e in effects if e is not None]
    return incident


BUILDERS: dict[str, Builder] = {
    "gas-leak": gas_leak,
    "water-burst": water_burst,
    "bridge-strain": bridge_strain,
    "flood-rain": flood_rain,
    "chemical-release": chemical_release,
}
