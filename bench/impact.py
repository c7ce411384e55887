"""Impact timing: one full ``service.compute`` (zones + exposure + cascade) per request.

Usage: .venv/bin/python bench/impact.py [--n 100] [--seed 11] [--synthetic-assets 100000]
                                        [--http 10] [--skip-demo] [--skip-synthetic]

Two cities, each in a throwaway database on the server cityrisk uses (DATABASE_URL or the
local cluster), dropped afterwards:

1. **the demo city** (Cambridge MA, ``app.flows.demo.load``: assets, derived links, sensors);
2. **a synthetic city** of ``--synthetic-assets`` assets, generated deterministically (seeded)
   and written with COPY: a grid of streets 100 m apart, each street with a gas main, a water
   main and a drain (offset a few metres so they stay three networks), a manhole at every
   crossing, gas and water valves at every other crossing, hydrants, a population cell per
   block, schools, daycare, elderly care, clinics, hospitals, crowded places, subway stations,
   shelters, fire and police stations, substations, pump stations (the water sources),
   regulator stations (the gas sources), power plants, chemical plants (chlorine), bridges,
   flood zones with depths, ponding points; then the derived links
   (``app.assets.links.rebuild``: nearest substation per pump station, hospital, subway
   station…). No ``building`` assets are generated (the demo city has none either): the
   population cells stand for where people live.

In each city, ``--n`` (scenario, asset) pairs are drawn with a seeded RNG: the scenarios take
turns (every scenario with at least one asset of a kind it applies to; a scenario for any
asset draws from every kind but the areal ones), each with a random asset of its kinds; the
order is then shuffled. A wind sensor with a reading 10 minutes before the data time is added,
so ``toxic_release`` takes the live-wind path it takes in service.

What is timed: ``service.compute`` end to end, as the route calls it — a session from the
pool, the target, the runner, exposure of every zone, the cascade over the dependency graph
and the supply networks, the actions — with the network cache (``app.impact.networks``)
**warm**: it is built once before the timed calls. The **cold** first call (cache emptied) is
timed apart, three times, on a ``gas_migration`` of a gas main, the call that builds the most
(underground, water and gas networks, the dependency graph).

Baseline, measured per pair right after the call (same load): one indexed spatial count —
``count(*)`` of the assets within the result's outer radius of the target
(``ST_DWithin(geom::geography, …)``, the GiST expression index). That is the least a database
must do to say what a zone holds; the ratio says how many such queries one full impact costs.
A ``SELECT 1`` round trip through a pooled session is printed too (the floor of any call).

Over HTTP: ``POST /impact`` through a real uvicorn server on a thread of this process (so it
shares the warm cache) for the first ``--http`` pairs, against the same pairs called directly
in the same run: the difference is the HTTP overhead (parsing, JSON, the request session).

Goals (issue 11): p95 < 200 ms on the demo city, < 1 s on the synthetic city of 100,000 assets.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import numpy as np
import orjson
import shapely
from shapely.geometry import LineString, Point, Polygon
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.assets import links
from app.db import copy_into, create_db_engine, make_sessionmaker
from app.errors import InvalidInput
from app.flows import demo
from app.impact import networks, service
from app.impact.params import SCENARIOS
from app.scratch import scratch_for, serve_in_thread
from app.sensors import partitions
from app.settings import Settings
from app.taxonomy.assets import KINDS
from gis.frames import LocalFrame

GOAL_DEMO_P95_S = 0.200
GOAL_SYNTHETIC_P95_S = 1.0
#: Kinds a scenario "for any asset" does not draw: areas nobody sets on fire or switches off.
AREAL = ("admin_area", "population_cell", "flood_zone", "landslide_zone")
#: The synthetic city: south-west corner (Hefei, inside one 0.25° region tile, so one network
#: per kind serves every target as in a real city), street spacing, network offsets.
SYN_LON0, SYN_LAT0 = 117.26, 31.76
STREET_M = 100.0
OFFSET_M = {"gas_pipe": (4.0, 4.0), "water_pipe": (-4.0, -4.0), "drainage_pipe": (0.0, 0.0)}
#: Assets per grid crossing before the sites: 6 pipes, a manhole, a valve, half a hydrant, a cell.
PER_NODE = 9.5


# -- statistics -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in [0, 1]."""
    return float(np.percentile(np.asarray(values, dtype=float), q * 100))


def line(label: str, values: Sequence[float], extra: str = "") -> str:
    ms = [v * 1000 for v in values]
    return (
        f"  {label:<24} n={len(ms):3d}  p50 {percentile(ms, 0.5):7.1f} ms  "
        f"p95 {percentile(ms, 0.95):7.1f} ms  max {max(ms):7.1f} ms{extra}"
    )


# -- pairs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    scenario: str
    asset_id: int
    kind: str


def draw_pairs(session: Session, n: int, seed: int) -> tuple[list[Pair], list[str]]:
    """``n`` seeded (scenario, asset) pairs, scenarios taking turns; and the skipped scenarios."""
    by_kind: dict[str, list[int]] = {
        str(k): list(ids)
        for k, ids in session.execute(
            text("SELECT kind, array_agg(id ORDER BY id) FROM asset GROUP BY kind ORDER BY kind")
        )
    }
    any_kinds = [k for k in by_kind if k not in AREAL]
    usable: list[tuple[str, list[str]]] = []
    skipped = []
    for s in SCENARIOS.values():
        kinds = [k for k in (s.kinds or any_kinds) if k in by_kind]
        if kinds:
            usable.append((s.id, kinds))
        else:
            skipped.append(f"{s.id} (no {', '.join(s.kinds)} in this city)")
    rng = random.Random(seed)  # noqa: S311 - reproducible draws, not a secret
    pairs = []
    for i in range(n):
        scenario, kinds = usable[i % len(usable)]
        kind = rng.choice(kinds)
        pairs.append(Pair(scenario, rng.choice(by_kind[kind]), kind))
    rng.shuffle(pairs)
    return pairs, skipped


# -- timing ---------------------------------------------------------------------------------------
@dataclass
class Timed:
    pair: Pair
    seconds: float
    baseline_s: float
    radius_m: float
    zones: int
    failing: int
    error: str | None = None


def outer_radius_m(doc: dict[str, Any]) -> float:
    """Distance from the target to the farthest vertex of its zones [m] (at least 10 m)."""
    t = doc["target"]
    frame = LocalFrame(t["lon"], t["lat"])
    far = 10.0
    for f in doc["zones"]["features"]:
        coords = shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
        if len(coords):
            x, y = frame.to_local(coords[:, 0], coords[:, 1])
            far = max(far, float(np.sqrt(np.asarray(x) ** 2 + np.asarray(y) ** 2).max()))
    return far


_BASELINE_SQL = text(
    "SELECT count(*) FROM asset WHERE ST_DWithin(geom::geography, "
    "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :r)"
)


def call(factory: sessionmaker[Session], pair: Pair, at: datetime) -> tuple[float, dict[str, Any]]:
    """One ``service.compute`` as the route runs it: a pooled session, compute, roll back."""
    started = time.perf_counter()
    with factory() as session:
        doc = service.compute(
            session, [service.ScenarioCall(pair.scenario)], asset_id=pair.asset_id, at=at
        )
        session.rollback()
    return time.perf_counter() - started, doc


def baseline(factory: sessionmaker[Session], lon: float, lat: float, r: float) -> float:
    started = time.perf_counter()
    with factory() as session:
        session.execute(_BASELINE_SQL, {"lon": lon, "lat": lat, "r": r}).scalar_one()
        session.rollback()
    return time.perf_counter() - started


def select_one(factory: sessionmaker[Session], n: int = 50) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        with factory() as session:
            session.execute(text("SELECT 1")).scalar_one()
            session.rollback()
        out.append(time.perf_counter() - started)
    return out


def run_pairs(factory: sessionmaker[Session], pairs: Sequence[Pair], at: datetime) -> list[Timed]:
    out = []
    for p in pairs:
        try:
            seconds, doc = call(factory, p, at)
        except InvalidInput as exc:  # e.g. a gas main without diameter: a 422 in service
            out.append(Timed(p, 0.0, 0.0, 0.0, 0, 0, str(exc)))
            continue
        r = outer_radius_m(doc)
        t = doc["target"]
        b = baseline(factory, t["lon"], t["lat"], r)
        out.append(Timed(p, seconds, b, r, len(doc["zones"]["features"]), len(doc["failing"])))
    return out


def cold_calls(
    factory: sessionmaker[Session], pair: Pair, at: datetime, times: int = 3
) -> list[float]:
    """The first call after the network cache is emptied (``times`` times)."""
    out = []
    for _ in range(times):
        networks._cache._items.clear()  # the bench empties the process cache
        out.append(call(factory, pair, at)[0])
    return out


def report(name: str, results: list[Timed], goal_s: float, floor: list[float]) -> float:
    ok = [r for r in results if r.error is None]
    errors = [r for r in results if r.error is not None]
    print(f"{name}: {len(ok)} calls warm ({len(errors)} refused with 422)")
    per: dict[str, list[Timed]] = defaultdict(list)
    for r in ok:
        per[r.pair.scenario].append(r)
    for scenario in SCENARIOS:
        rs = per.get(scenario)
        if rs:
            extra = (
                f"  zones {statistics.median(r.zones for r in rs):g}, "
                f"outer r {statistics.median(r.radius_m for r in rs):,.0f} m, "
                f"failing {statistics.median(r.failing for r in rs):g} (medians)"
            )
            print(line(scenario, [r.seconds for r in rs], extra))
    seconds = [r.seconds for r in ok]
    print(line("all", seconds))
    base = [r.baseline_s for r in ok]
    ratios = [r.seconds / r.baseline_s for r in ok]
    print(line("baseline ST_DWithin count", base))
    print(line("SELECT 1 round trip", floor))
    print(
        f"  ratio compute / ST_DWithin count: median {statistics.median(ratios):.1f}x per pair, "
        f"p95/p95 {percentile(seconds, 0.95) / percentile(base, 0.95):.1f}x"
    )
    for r in errors[:3]:
        print(f"  refused: {r.pair.scenario} on {r.pair.kind} {r.pair.asset_id}: {r.error}")
    p95 = percentile(seconds, 0.95)
    verdict = "met" if p95 < goal_s else "NOT met"
    print(f"  goal p95 < {goal_s * 1000:.0f} ms: {verdict} (p95 {p95 * 1000:.1f} ms)")
    return p95


def http_overhead(
    url: str, factory: sessionmaker[Session], pairs: Sequence[Pair], at: datetime
) -> None:
    """``POST /impact`` through a real server against the same calls made directly."""
    from app.main import create_app

    settings = Settings(database_url=url, mqtt_consumer=False, offline_check_s=0)
    with serve_in_thread(create_app(settings)) as base, httpx.Client(base_url=base) as client:
        body = {"asset_id": pairs[0].asset_id, "scenario": pairs[0].scenario, "at": at.isoformat()}
        client.post("/impact", json=body).raise_for_status()  # the server's pool, warm
        over, via_http, direct = [], [], []
        for p in pairs:
            body = {"asset_id": p.asset_id, "scenario": p.scenario, "at": at.isoformat()}
            started = time.perf_counter()
            resp = client.post("/impact", json=body)
            h = time.perf_counter() - started
            if resp.status_code != 200:
                continue
            d = call(factory, p, at)[0]
            via_http.append(h)
            direct.append(d)
            over.append(h - d)
    print(f"  HTTP POST /impact, same {len(via_http)} pairs, server on a thread:")
    print(line("via HTTP", via_http))
    print(line("direct", direct))
    print(
        f"  HTTP overhead: median {statistics.median(over) * 1000:.1f} ms per call "
        f"({statistics.median(h / d for h, d in zip(via_http, direct, strict=True)):.2f}x)"
    )


def add_wind(factory: sessionmaker[Session], lon: float, lat: float, at: datetime) -> None:
    """A wind sensor at (lon, lat) with direction and speed read 10 minutes before ``at``."""
    with factory() as session, session.begin():
        partitions.ensure(session, {at.date(), (at - timedelta(minutes=10)).date()})
        for kind, unit, value in (("wind_dir_deg", "deg", 270.0), ("wind_speed_ms", "m/s", 3.0)):
            sensor = session.execute(
                text(
                    "INSERT INTO sensor (external_id, kind, unit, status, geom) VALUES "
                    "(:e, :k, :u, 'active', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
                    "RETURNING id"
                ),
                {"e": f"bench-{kind}", "k": kind, "u": unit, "lon": lon, "lat": lat},
            ).scalar_one()
            session.execute(
                text("INSERT INTO reading (sensor_id, ts, value) VALUES (:s, :t, :v)"),
                {"s": sensor, "t": at - timedelta(minutes=10), "v": value},
            )


# -- the synthetic city ---------------------------------------------------------------------------
@dataclass
class Rows:
    """Asset rows to COPY: kind, name, WKB (local metres, converted at the end), attributes."""

    kinds: list[str]
    geoms: list[Any]
    attrs: list[dict[str, Any]]

    def add(self, kind: str, geom: Any, **attrs: Any) -> None:
        self.kinds.append(kind)
        self.geoms.append(geom)
        self.attrs.append(attrs)


def synthetic_city(n_assets: int, seed: int) -> tuple[Rows, LocalFrame, float]:
    """The synthetic city's assets (local metres), its frame and its side [m]."""
    rng = np.random.default_rng(seed)
    g = max(4, int(np.sqrt(n_assets / PER_NODE)))
    side = (g - 1) * STREET_M
    frame = LocalFrame(SYN_LON0, SYN_LAT0)
    rows = Rows([], [], [])
    ii, jj = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    for kind, (dx, dy) in OFFSET_M.items():
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            x, y = i * STREET_M + dx, j * STREET_M + dy
            for ex, ey in ((1, 0), (0, 1)):
                if i + ex >= g or j + ey >= g:
                    continue
                geom = LineString([(x, y), (x + ex * STREET_M, y + ey * STREET_M)])
                if kind == "gas_pipe":
                    rows.add(
                        kind,
                        geom,
                        diameter_mm=int(rng.choice([100, 150, 200, 300])),
                        pressure_mpa=float(rng.choice([0.2, 0.4, 0.8])),
                        material=str(rng.choice(["steel", "PE", "cast_iron"])),
                        install_year=int(rng.integers(1960, 2024)),
                    )
                elif kind == "water_pipe":
                    rows.add(kind, geom, diameter_mm=int(rng.choice([150, 200, 300, 500])))
                else:
                    rows.add(kind, geom, diameter_mm=int(rng.choice([300, 600, 900])))
    for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
        x, y = i * STREET_M, j * STREET_M
        rows.add("manhole", Point(x, y), manhole_type="drainage")
        if (i + j) % 2 == 0 and i + 1 < g:
            # On the main, 10 m east of the crossing: inside VALVE_TOLERANCE_M of it.
            rows.add("valve", Point(x + 14, y + 4), network="gas")
            rows.add("valve", Point(x + 6, y - 4), network="water")
        if i % 2 == 0 and j + 1 < g:
            rows.add("hydrant", Point(x - 4, y + 50))
    blocks = [(i, j) for i in range(g - 1) for j in range(g - 1)]
    for b, (i, j) in enumerate(blocks):
        x, y = i * STREET_M, j * STREET_M
        rows.add(
            "population_cell",
            Polygon([(x + 8, y + 8), (x + 92, y + 8), (x + 92, y + 92), (x + 8, y + 92)]),
            population=int(rng.integers(50, 800)),
        )
        # Sites at block centres (50 m from the mains: bound to them within 80 m), a few metres
        # apart per kind so that two in one block are two points.
        for every, kind, off in (
            (37, "school", (0, 0)),
            (29, "daycare", (10, 0)),
            (53, "elderly_care", (0, 10)),
            (61, "clinic", (-10, 0)),
            (397, "hospital", (0, -10)),
            (31, "crowded_place", (10, 10)),
            (211, "subway_station", (-10, -10)),
            (101, "shelter", (10, -10)),
            (307, "fire_station", (-10, 10)),
            (401, "police_station", (20, 0)),
            (389, "substation", (0, 20)),
        ):
            if b % every == every // 2:
                attrs: dict[str, Any] = {"capacity": int(rng.integers(100, 2000))}
                rows.add(kind, Point(x + 50 + off[0], y + 50 + off[1]), **attrs)
    # Sources at crossings (on the mains): pump stations (water), regulator stations (gas).
    for k in range(8):
        i, j = int(rng.integers(0, g)), int(rng.integers(0, g))
        rows.add("pump_station", Point(i * STREET_M - 10, j * STREET_M - 10))
        rows.add(
            "gas_station",
            Point(i * STREET_M + 10, j * STREET_M + 10),
            station_type="gate",
            diameter_mm=300,
            pressure_mpa=0.8,
        )
        if k < 3:
            rows.add("power_plant", Point(i * STREET_M + 50, j * STREET_M - 30))
        if k < 6:
            rows.add(
                "chemical_plant",
                Point(i * STREET_M + 30, j * STREET_M + 70),
                chemicals="chlorine;sodium hydroxide",
                quantity_t=float(rng.integers(5, 100)),
            )
    for _ in range(20):
        i, j = int(rng.integers(1, g - 1)), int(rng.integers(0, g - 1))
        x, y = i * STREET_M, j * STREET_M + 50
        rows.add("bridge", LineString([(x - 20, y), (x + 20, y)]))
    for _ in range(20):
        cx, cy = rng.uniform(0, side, 2)
        rows.add(
            "flood_zone",
            Point(cx, cy).buffer(float(rng.uniform(150, 400)), quad_segs=8),
            depth_m=round(float(rng.uniform(0.1, 1.5)), 2),
            return_period_yr=int(rng.choice([10, 100, 500])),
        )
    # Top up to n_assets with ponding points along the drains (street low points).
    while len(rows.kinds) < n_assets:
        i, j = int(rng.integers(0, g)), int(rng.integers(0, g - 1))
        rows.add("ponding_point", Point(i * STREET_M, j * STREET_M + float(rng.uniform(5, 95))))
    del rows.kinds[n_assets:], rows.geoms[n_assets:], rows.attrs[n_assets:]
    return rows, frame, side


def load_synthetic(factory: sessionmaker[Session], n_assets: int, seed: int) -> tuple[Point, str]:
    """Write the synthetic city with COPY and derive its links; its centre and a summary."""
    started = time.perf_counter()
    rows, frame, side = synthetic_city(n_assets, seed)
    local = np.array(rows.geoms, dtype=object)
    coords = shapely.get_coordinates(local)
    lon, lat = frame.to_lonlat(coords[:, 0], coords[:, 1])
    geoms = shapely.set_srid(
        shapely.set_coordinates(local.copy(), np.column_stack([lon, lat])), 4326
    )
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
    made = time.perf_counter() - started

    def copy_rows() -> Iterator[tuple[Any, ...]]:
        for n, (kind, w, a) in enumerate(zip(rows.kinds, wkb, rows.attrs, strict=True)):
            yield ("bench", f"syn-{n}", KINDS[kind].plate, kind, f"{kind} {n}", w,
                   orjson.dumps(a).decode())  # fmt: skip

    with factory() as session, session.begin():
        copy_into(
            session,
            "COPY asset (source, external_id, plate, kind, name, geom, attributes) FROM STDIN",
            copy_rows(),
        )
        written = time.perf_counter() - started
        made_links = links.rebuild(session)
        session.execute(text("ANALYZE asset"))
        session.execute(text("ANALYZE asset_link"))
    total = time.perf_counter() - started
    counts: dict[str, int] = defaultdict(int)
    for k in rows.kinds:
        counts[k] += 1
    top = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    summary = (
        f"synthetic city: {len(rows.kinds):,} assets on {side / 1000:.1f} km × "
        f"{side / 1000:.1f} km ({top}); {sum(made_links.values()):,} derived links; "
        f"generated {made:.1f} s, COPY {written - made:.1f} s, links + ANALYZE "
        f"{total - written:.1f} s"
    )
    centre = frame.to_lonlat(side / 2, side / 2)
    return Point(float(centre[0]), float(centre[1])), summary


# -- one city -------------------------------------------------------------------------------------
def bench_city(
    name: str,
    url: str,
    load: Callable[[sessionmaker[Session]], Point],
    args: argparse.Namespace,
    goal_s: float,
) -> float:
    engine = create_db_engine(url, pool_size=2)
    try:
        factory = make_sessionmaker(engine)
        centre = load(factory)
        at = datetime.now(UTC).replace(microsecond=0)
        add_wind(factory, centre.x, centre.y, at)
        with factory() as session:
            pairs, skipped = draw_pairs(session, args.n, args.seed)
            gas = session.execute(
                text("SELECT min(id) FROM asset WHERE kind = 'gas_pipe'")
            ).scalar_one()
        if skipped:
            print(f"  scenarios with no target here: {'; '.join(skipped)}")
        cold_pair = Pair("gas_migration", int(gas), "gas_pipe")
        cold = cold_calls(factory, cold_pair, at)
        print(
            f"  cold first call (network cache empty: underground, water, gas networks and "
            f"the dependency graph built), gas_migration on gas main {gas}: "
            + ", ".join(f"{c * 1000:.0f}" for c in cold)
            + " ms"
        )
        for p in pairs:  # every network every pair needs: built once, as in service
            with contextlib.suppress(InvalidInput):
                call(factory, p, at)
        floor = select_one(factory)
        results = run_pairs(factory, pairs, at)
        p95 = report(name, results, goal_s, floor)
        if args.http:
            ok = [r.pair for r in results if r.error is None][: args.http]
            http_overhead(url, factory, ok, at)
        return p95
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="(scenario, asset) pairs per city")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--synthetic-assets", type=int, default=100_000)
    parser.add_argument("--http", type=int, default=10, help="pairs also sent over HTTP")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    settings = Settings()

    def load_demo(factory: sessionmaker[Session]) -> Point:
        started = time.perf_counter()
        with factory() as session, session.begin():
            demo.load(session)
            session.execute(text("ANALYZE"))
            n = session.execute(text("SELECT count(*) FROM asset")).scalar_one()
            lon, lat = session.execute(
                text(
                    "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) AS c "
                    "FROM asset) e"
                )
            ).one()
        print(f"demo city: {n:,} assets loaded in {time.perf_counter() - started:.1f} s")
        return Point(lon, lat)

    def load_syn(factory: sessionmaker[Session]) -> Point:
        centre, summary = load_synthetic(factory, args.synthetic_assets, args.seed)
        print(summary)
        return centre

    if not args.skip_demo:
        with scratch_for(settings, prefix="cityrisk_bench", migrate=True) as url:
            bench_city("demo city", url, load_demo, args, GOAL_DEMO_P95_S)
    if not args.skip_synthetic:
        with scratch_for(settings, prefix="cityrisk_bench", migrate=True) as url:
            bench_city(
                f"synthetic city ({args.synthetic_assets:,} assets)",
                url,
                load_syn,
                args,
                GOAL_SYNTHETIC_P95_S,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
