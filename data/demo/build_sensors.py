"""Build the demo city's sensor layout (``data/demo/sensors.geojson``) from ``cambridge.gpkg``.

Every sensor here is **derived**: Cambridge publishes no sensor network. The layout follows how
Hefei instruments a city "high-risk first" (高危先建: place devices where the risk map is worst,
see shared/docs/domain.md): laser methane monitors in the manholes next to medium- and
high-pressure gas mains and near schools and hospitals, pressure on the high- and medium-pressure
gas mains and on the large water mains, acoustic leak loggers on old cast-iron water mains,
structural sensors on every bridge, water level in the drains by the floodplains, ponding gauges
inside the flood zones, a rain gauge per neighbourhood, and people counters at subway stations.

Deterministic: inputs are sorted by stable keys, the only random draw (ponding points inside
large flood zones) is seeded, coordinates are rounded to 1e-7° (~1 cm) and the GeoJSON is written
with a fixed key order, so a rebuild from the same GeoPackage is byte-identical.

Usage (from the repository root)::

    python data/demo/build_sensors.py [--gpkg data/demo/cambridge.gpkg] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script: make `app` importable for the unit table

from app.taxonomy.indicators import INDICATORS  # noqa: E402 - after the path fix above

DEFAULT_GPKG = REPO / "data" / "demo" / "cambridge.gpkg"
DEFAULT_OUT = REPO / "data" / "demo" / "sensors.geojson"
WGS84 = "EPSG:4326"
METRIC = "EPSG:26986"  # NAD83 / Massachusetts Mainland, metres (as build.py)
SEED = 20200401 + 10  # build.py uses SEED + 1..4 for its layers; the sensors take + 10
PREFIX = "cam"

# How many of each, and how they are chosen. Numbers are a demo's budget (~1,500 devices for a
# city of 118,000, i.e. Hefei's ≈33,000 devices for 9 M people scaled down ≈ 430, times ~3
# because the demo concentrates on the lifeline plate).
CH4_MANHOLES = 400  # "a few hundred" manholes of the 1,514, highest risk first
CH4_GAS_DISTANCE_M = 10.0  # a manhole watches the gas mains within 10 m (links.py rule)
SENSITIVE_DISTANCE_M = 200.0  # school / hospital within walking distance of the manhole
GAS_PRESSURE_MIN_DIAMETER_MM = 300  # medium-pressure mains this large get a pressure sensor
WATER_PRESSURE_MIN_DIAMETER_MM = 400  # "large" water mains (transmission, not distribution)
WATER_FLOW_MIN_DIAMETER_MM = 500
LEAK_NOISE_BEFORE_YEAR = 1930  # old cast iron leaks most (and the large mains, see below)
LEAK_NOISE_MIN_DIAMETER_MM = 300
LEVEL_NEAR_FLOOD_M = 50.0  # drains within 50 m of a floodplain get a level sensor
LEVEL_MIN_SEWER_DIAMETER_MM = 600  # ... if they are trunk sewers (or real culverts/channels)
PONDING_EXTRA_PER_M2 = 100_000.0  # one more ponding gauge per 0.1 km² of a large flood zone
PONDING_EXTRA_MAX = 8

# Reporting interval per indicator (s). Laser methane monitors report every minute (Hefei);
# hydraulic and structural channels are aggregated to a minute by their gateways; acoustic
# loggers and people counters report every 5 minutes.
INTERVAL_S = {
    "ch4_pct_lel": 60,
    "pressure_mpa": 60,
    "flow_m3h": 60,
    "leak_noise_db": 300,
    "strain_ue": 60,
    "deflection_mm": 60,
    "tilt_deg": 60,
    "level_m": 60,
    "ponding_cm": 60,
    "rain_mm_h": 60,
    "people_count": 300,
    "wind_speed_ms": 60,
    "wind_dir_deg": 60,
    "nh3_ppm": 60,
    "cl2_ppm": 60,
    "tank_level_pct": 300,
}
# A plant's fixed toxic-gas detector measures the first of its chemicals that has an indicator.
GAS_DETECTORS = {"Ammonia, anhydrous": ("nh3_ppm", "nh3"), "Chlorine": ("cl2_ppm", "cl2")}


@dataclass
class Placed:
    """Sensors of one indicator: points in EPSG:26986 plus per-sensor binding and placement."""

    kind: str
    code: str  # short name in the external id: cam-<code>-0001
    points: np.ndarray  # shapely Points, metres
    asset_external_id: list[str | None]
    asset_source: list[str | None]
    placement: list[str]
    sort_key: list[str]  # stable order for numbering the external ids


def load(gpkg: Path, layer: str) -> gpd.GeoDataFrame:
    """A layer in metres, sorted by its stable ``external_id``."""
    gdf = gpd.read_file(gpkg, layer=layer).to_crs(METRIC)
    return gdf.sort_values("external_id", ignore_index=True)


def geoms(gdf: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(gdf.geometry.values, dtype=object)


def midpoints(lines: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    return shapely.line_interpolate_point(lines, fraction, normalized=True)


def nearest_distance(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance (m) from each point to the nearest target geometry."""
    tree = shapely.STRtree(targets)
    index = tree.query_nearest(points, all_matches=False, return_distance=True)
    (src, _), dist = index
    out = np.full(len(points), np.inf)
    out[src] = dist
    return out


# --------------------------------------------------------------------------------- gas network
def methane(gpkg: Path) -> Placed:
    """Laser methane monitors under manhole covers next to gas mains, riskiest manholes first.

    A manhole's risk ranks by the highest pressure class of the gas mains within 10 m (a leak
    from a high-pressure main fills an adjacent chamber fastest), then by a school or hospital
    within 200 m (ASME B31.8S: people of limited mobility), then by manhole type (gas valve
    chambers, then power and telecom wells, whose sparks ignite gas; sewers last, their methane
    is often biogas), then by id for a stable tie-break.
    """
    mh = load(gpkg, "manhole")
    gas = load(gpkg, "gas_pipe")
    tree = shapely.STRtree(geoms(gas))
    src, dst = tree.query(geoms(mh), predicate="dwithin", distance=CH4_GAS_DISTANCE_M)
    rank = gas["pressure_class"].map({"low": 1, "medium": 2, "high": 3}).to_numpy()
    pressure = np.zeros(len(mh), dtype=int)
    np.maximum.at(pressure, src, rank[dst])
    exposure = np.concatenate([geoms(load(gpkg, "school")), geoms(load(gpkg, "hospital"))])
    sensitive = nearest_distance(geoms(mh), exposure) <= SENSITIVE_DISTANCE_M
    type_rank = mh["manhole_type"].map({"gas_valve": 3, "power": 2, "telecom": 2, "sewer": 1})
    frame = pd.DataFrame(
        {
            "pressure": pressure,
            "sensitive": sensitive.astype(int),
            "type": type_rank.fillna(0).astype(int),
            "eid": mh["external_id"],
        }
    )
    frame = frame[frame["pressure"] > 0]
    order = frame.sort_values(
        ["pressure", "sensitive", "type", "eid"], ascending=[False, False, False, True]
    )
    chosen = order.index[:CH4_MANHOLES].to_numpy()
    classes = {3: "high", 2: "medium", 1: "low"}
    placement = [
        f"manhole ({mh['manhole_type'][i]}) within {CH4_GAS_DISTANCE_M:g} m of a "
        f"{classes[int(pressure[i])]}-pressure gas main"
        + (f"; school/hospital within {SENSITIVE_DISTANCE_M:g} m" if sensitive[i] else "")
        for i in chosen
    ]
    # Spatial binding: the monitor sits in the manhole, 0 m from it, so the registry's nearest-
    # asset rule binds it without an explicit id.
    return Placed(
        "ch4_pct_lel",
        "ch4",
        geoms(mh)[chosen],
        [None] * len(chosen),
        [None] * len(chosen),
        placement,
        list(mh["external_id"][chosen]),
    )


def gas_pressure(gpkg: Path) -> Placed:
    """Pressure at the upstream end of every high-pressure main and of large medium ones.

    A pipe sensor must be bound explicitly: at a street corner the gas main, the water main
    (6 m away) and the sewer (3 m away) are all pipes, which the pressure indicator watches.
    """
    gas = load(gpkg, "gas_pipe")
    keep = (gas["pressure_class"] == "high") | (
        (gas["pressure_class"] == "medium") & (gas["diameter_mm"] >= GAS_PRESSURE_MIN_DIAMETER_MM)
    )
    part = gas[keep.to_numpy()]
    return Placed(
        "pressure_mpa",
        "gasp",
        shapely.get_point(geoms(part), 0),
        list(part["external_id"]),
        list(part["source"]),
        [
            f"upstream end of a {c}-pressure gas main, {d} mm"
            for c, d in zip(part["pressure_class"], part["diameter_mm"], strict=True)
        ],
        list("gas:" + part["external_id"]),
    )


# ------------------------------------------------------------------------------- water network
def water(gpkg: Path) -> list[Placed]:
    """Pressure (midpoint) and flow (upstream end) on large mains; leak noise on old/large ones.

    Acoustic loggers go on the mains that leak most — cast iron laid before 1930 of at least
    300 mm — and on every main of 500 mm or more, where a burst does most damage (road collapse).
    Each is at a quarter of the main's length so that the three sensors of one main are apart.
    """
    wat = load(gpkg, "water_pipe")
    lines = geoms(wat)
    dia = wat["diameter_mm"].to_numpy()
    old = (
        (wat["material"] == "cast_iron")
        & (wat["install_year"] < LEAK_NOISE_BEFORE_YEAR)
        & (wat["diameter_mm"] >= LEAK_NOISE_MIN_DIAMETER_MM)
    ).to_numpy()
    sets = (
        ("pressure_mpa", "wp", dia >= WATER_PRESSURE_MIN_DIAMETER_MM, 0.5, "midpoint"),
        ("flow_m3h", "flow", dia >= WATER_FLOW_MIN_DIAMETER_MM, 0.0, "upstream end"),
        (
            "leak_noise_db",
            "noise",
            old | (dia >= WATER_FLOW_MIN_DIAMETER_MM),
            0.25,
            "quarter point",
        ),
    )
    out = []
    for kind, code, mask, fraction, where in sets:
        part = wat[mask]
        out.append(
            Placed(
                kind,
                code,
                midpoints(lines[mask], fraction),
                list(part["external_id"]),
                list(part["source"]),
                [
                    f"{where} of a {d} mm {m} water main ({y})"
                    for d, m, y in zip(
                        part["diameter_mm"], part["material"], part["install_year"], strict=True
                    )
                ],
                list("water:" + part["external_id"]),
            )
        )
    return out


# ------------------------------------------------------------------------------------- bridges
def bridges(gpkg: Path) -> list[Placed]:
    """Strain, deflection and tilt on every bridge, at its representative point.

    The representative point is always inside the polygon (a centroid need not be). Binding is
    explicit: 20 pairs of the bridge polygons touch or overlap (ramps, the Lechmere Viaduct), so
    the nearest bridge to a point on one can be another at the same distance.
    """
    br = load(gpkg, "bridge")
    points = shapely.point_on_surface(geoms(br))
    label = br["name"].fillna(br["description"]).fillna(br["bridge_type"])
    return [
        Placed(
            kind,
            code,
            points,
            list(br["external_id"]),
            list(br["source"]),
            [f"bridge: {n}" for n in label],
            list(br["external_id"]),
        )
        for kind, code in (("strain_ue", "strain"), ("deflection_mm", "defl"), ("tilt_deg", "tilt"))
    ]


# ---------------------------------------------------------------------------------- flooding
def flooding(gpkg: Path) -> list[Placed]:
    """Level in drains by the floodplains, ponding gauges inside flood zones, rain gauges.

    * level: trunk sewers (≥ 600 mm) and the real culverts / open channels within 50 m of a
      FEMA flood zone, at the line's midpoint, bound explicitly to the drain (a flood zone is a
      compatible asset for level too, and it is 0 m away from a drain inside it);
    * ponding: the representative point of every flood zone, plus, in zones larger than
      0.1 km², one street intersection per 0.1 km² (at most 8, seeded draw): without a ground
      model the low points are not known, and water ponds on streets first;
    * rain: one gauge per neighbourhood, at its representative point, bound to it.
    """
    drains = load(gpkg, "drainage_pipe")
    zones = load(gpkg, "flood_zone")
    zone_geoms = geoms(zones)
    near = nearest_distance(geoms(drains), zone_geoms) <= LEVEL_NEAR_FLOOD_M
    trunk = drains["diameter_mm"].fillna(0).to_numpy() >= LEVEL_MIN_SEWER_DIAMETER_MM
    real = (drains["drainage_type"] != "sewer").to_numpy()
    part = drains[near & (trunk | real)]
    level = Placed(
        "level_m",
        "level",
        midpoints(geoms(part)),
        list(part["external_id"]),
        list(part["source"]),
        [
            f"{t} ({'' if pd.isna(d) else f'{int(d)} mm, '}within {LEVEL_NEAR_FLOOD_M:g} m "
            "of a floodplain)"
            for t, d in zip(part["drainage_type"], part["diameter_mm"], strict=True)
        ],
        list(part["external_id"]),
    )

    rng = np.random.default_rng(SEED)
    nodes = geoms(load(gpkg, "manhole"))  # manholes sit at street intersections
    points, zone_ids, sources, notes, keys = [], [], [], [], []
    for i, zone in enumerate(zone_geoms):
        eid = zones["external_id"][i]
        label = f"{zones['name'][i]}, {zones['return_period_yr'][i]}-year"
        points.append(shapely.point_on_surface(zone))
        zone_ids.append(eid)
        sources.append(zones["source"][i])
        notes.append(f"inside flood zone {label} (representative point)")
        keys.append(f"{eid}|0")
        extra = min(PONDING_EXTRA_MAX, int(zone.area // PONDING_EXTRA_PER_M2))
        inside = np.flatnonzero(shapely.contains(zone, nodes))
        for n, j in enumerate(sorted(rng.choice(inside, min(extra, len(inside)), replace=False))):
            points.append(nodes[j])
            zone_ids.append(eid)
            sources.append(zones["source"][i])
            notes.append(f"street intersection inside flood zone {label}")
            keys.append(f"{eid}|{n + 1}")
    ponding = Placed(
        "ponding_cm", "pond", np.array(points, dtype=object), zone_ids, sources, notes, keys
    )

    hoods = load(gpkg, "admin_area")
    rain = Placed(
        "rain_mm_h",
        "rain",
        shapely.point_on_surface(geoms(hoods)),
        list(hoods["external_id"]),
        list(hoods["source"]),
        [f"neighbourhood {n}" for n in hoods["name"]],
        list(hoods["name"]),
    )
    return [level, ponding, rain]


def subway(gpkg: Path) -> Placed:
    """A people counter at every subway station (crowded place), bound to the station."""
    st = load(gpkg, "subway_station")
    return Placed(
        "people_count",
        "people",
        geoms(st),
        list(st["external_id"]),
        list(st["source"]),
        [f"subway station {n} ({ln} line)" for n, ln in zip(st["name"], st["line"], strict=True)],
        list(st["name"]),
    )


# ------------------------------------------------------------------ plants, pumps, weather
def one_per_asset(gdf: gpd.GeoDataFrame, kind: str, code: str, placement: list[str]) -> Placed:
    """A sensor of ``kind`` at each asset's point, bound to it explicitly."""
    return Placed(
        kind,
        code,
        shapely.point_on_surface(geoms(gdf)),
        list(gdf["external_id"]),
        list(gdf["source"]),
        placement,
        list(gdf["external_id"]),
    )


def chemical(gpkg: Path) -> list[Placed]:
    """At each chemical plant a toxic-gas detector for the first of its chemicals with an
    indicator (ammonia, chlorine) and a level gauge on its largest tank.

    Toxic detectors are what warns of a release at the fence (GB 50493-2019 asks for them
    wherever a toxic gas can leak); tank level says how much can still be released.
    """
    plants = load(gpkg, "chemical_plant")
    out: list[Placed] = []
    for kind, code in GAS_DETECTORS.values():
        rows = []
        for i, chems in enumerate(plants["chemicals"]):
            names = [c.strip() for c in str(chems).split(";")]
            first = next((GAS_DETECTORS[c] for c in names if c in GAS_DETECTORS), None)
            if first == (kind, code):
                rows.append(i)
        part = plants.iloc[rows].reset_index(drop=True)
        if len(part):
            notes = [f"fixed {kind.split('_')[0].upper()} detector at {n}" for n in part["name"]]
            out.append(one_per_asset(part, kind, code, notes))
    notes = [f"level of the largest tank at {n}" for n in plants["name"]]
    out.append(one_per_asset(plants, "tank_level_pct", "tank", notes))
    return out


def pumps(gpkg: Path) -> Placed:
    """Discharge pressure at every pump station (what a burst downstream pulls down first)."""
    st = load(gpkg, "pump_station")
    return one_per_asset(st, "pressure_mpa", "pump", [f"discharge, {n}" for n in st["name"]])


def weather(gpkg: Path) -> list[Placed]:
    """Wind speed and direction at every weather station (the toxic-release zone turns with
    the wind: ERG protective-action distances are downwind)."""
    st = load(gpkg, "weather_station")
    notes = [
        f"anemometer {h:g} m above ground, {n}"
        for h, n in zip(st["height_m"], st["name"], strict=True)
    ]
    return [
        one_per_asset(st, "wind_speed_ms", "wind", notes),
        one_per_asset(st, "wind_dir_deg", "winddir", notes),
    ]


# -------------------------------------------------------------------------------------- output
def features(placed: list[Placed]) -> list[dict[str, object]]:
    """GeoJSON features with stable external ids ``cam-<code>-NNNN`` (numbered by sort key)."""
    out: list[dict[str, object]] = []
    for group in placed:
        wgs = gpd.GeoSeries(group.points, crs=METRIC).to_crs(WGS84)
        xy = np.round(shapely.get_coordinates(np.asarray(wgs.values, dtype=object)), 7)
        order = sorted(range(len(group.sort_key)), key=lambda i: group.sort_key[i])
        indicator = INDICATORS[group.kind]
        for n, i in enumerate(order, start=1):
            props: dict[str, object] = {
                "external_id": f"{PREFIX}-{group.code}-{n:04d}",
                "kind": group.kind,
                "unit": indicator.unit,  # exactly the catalogue's unit, never an alias
                "interval_s": INTERVAL_S[group.kind],
            }
            if group.asset_external_id[i] is not None:
                props["asset_external_id"] = group.asset_external_id[i]
                props["asset_source"] = group.asset_source[i]
            props["placement"] = group.placement[i]
            props["source"] = "derived"
            out.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [xy[i, 0], xy[i, 1]]},
                    "properties": props,
                }
            )
    return out


def main(argv: list[str] | None = None) -> None:
    """Place every sensor, write the GeoJSON and print a count per indicator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpkg", type=Path, default=DEFAULT_GPKG, help="demo city GeoPackage")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output GeoJSON")
    args = parser.parse_args(argv)
    placed = [
        methane(args.gpkg),
        gas_pressure(args.gpkg),
        *water(args.gpkg),
        *bridges(args.gpkg),
        *flooding(args.gpkg),
        subway(args.gpkg),
        *chemical(args.gpkg),
        pumps(args.gpkg),
        *weather(args.gpkg),
    ]
    feats = features(placed)
    ids = [f["properties"]["external_id"] for f in feats]  # type: ignore[index]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate sensor external_id")
    doc = {"type": "FeatureCollection", "name": "sensors", "features": feats}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    # One feature per line: diffs of a rebuild stay readable.
    text = text.replace(',{"type":"Feature"', ',\n{"type":"Feature"')
    args.out.write_text(text + "\n", encoding="utf-8")
    explicit = sum("asset_external_id" in f["properties"] for f in feats)  # type: ignore[operator]
    print("| kind | unit | interval_s | sensors |\n|---|---|---:|---:|")
    for group in placed:
        kind, n = group.kind, len(group.points)
        print(f"| {kind} ({group.code}) | {INDICATORS[kind].unit} | {INTERVAL_S[kind]} | {n:,} |")
    print(f"| total | | | {len(feats):,} |")
    print(f"\n{explicit:,} with an explicit asset_external_id; wrote {args.out}")


if __name__ == "__main__":
    main()
