"""Build the Cambridge, MA demo city (``data/demo/cambridge.gpkg``) for cityrisk.

Reads the City of Cambridge GIS GeoJSON files (ODC PDDL 1.0) and writes one GeoPackage layer per
asset kind, named exactly the kind, in EPSG:4326. Every layer has ``external_id``, ``name``,
``owner`` and ``source`` columns, then the kind's attributes. Real features carry
``source="cambridge_gis"``; pipes, manholes and block populations are generated or estimated and
carry ``source="derived"``. Cambridge publishes no pipe geometry: derived pipes are NOT real
utility locations. All randomness is seeded, so a rebuild gives identical content.

Usage (from the repository root)::

    python data/demo/build.py ../shared/datasets/cambridge_ma
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SRC = Path("../shared/datasets/cambridge_ma")
DEFAULT_OUT = REPO / "data" / "demo" / "cambridge.gpkg"
DEFAULT_RMP = Path("../shared/datasets/epa_rmp")  # EPA RMP via the Data Liberation Project
WGS84 = "EPSG:4326"
METRIC = "EPSG:26986"  # NAD83 / Massachusetts Mainland, metres
REAL, DERIVED = "cambridge_gis", "derived"
SEED = 20200401  # 2020 Census day; each derived layer uses SEED + its own offset
CITY_POP_2020 = 118_403  # US Census 2020, Cambridge city, MA
GRID_DEG = 1e-7  # derived geometries are snapped to ~1 cm so rebuilds are bit-stable
FT_TO_M = 0.3048

# A choice table: road class -> (values, probabilities). Classes come from TRANS_Centerlines
# MajorRoad: 1 = principal arterial, 2 = minor arterial, anything else = local street.
Choice = dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
# Installation eras: (first year, last year, weight).
Eras = tuple[tuple[int, int, float], ...]

GAS_DIAMETER_MM: Choice = {
    "principal": ((300, 400, 500), (0.4, 0.4, 0.2)),
    "minor": ((150, 200, 300), (0.3, 0.4, 0.3)),
    "local": ((100, 150, 200), (0.45, 0.4, 0.15)),
}
# 0.0034 MPa ~ 0.5 psig, 0.1 ~ 15 psig, 0.4 ~ 58 psig, 0.69 ~ 100 psig, 1.2 ~ 174 psig
GAS_PRESSURE_MPA: Choice = {
    "principal": ((0.4, 0.69, 1.2), (0.3, 0.5, 0.2)),
    "minor": ((0.0034, 0.1, 0.4), (0.25, 0.45, 0.3)),
    "local": ((0.0034, 0.1, 0.4), (0.5, 0.42, 0.08)),
}
GAS_ERAS: Eras = ((1880, 1949, 0.45), (1950, 1974, 0.25), (1975, 2023, 0.30))
WATER_DIAMETER_MM: Choice = {
    "principal": ((300, 400, 500, 600), (0.3, 0.3, 0.25, 0.15)),
    "minor": ((200, 250, 300), (0.4, 0.3, 0.3)),
    "local": ((150, 200), (0.6, 0.4)),
}
WATER_ERAS: Eras = ((1865, 1909, 0.3), (1910, 1949, 0.3), (1950, 1989, 0.25), (1990, 2023, 0.15))
SEWER_DIAMETER_MM: Choice = {
    "principal": ((600, 900, 1200), (0.4, 0.4, 0.2)),
    "minor": ((450, 600, 750), (0.4, 0.4, 0.2)),
    "local": ((250, 300, 375, 450), (0.3, 0.35, 0.2, 0.15)),
}
SEWER_ERAS: Eras = ((1860, 1909, 0.4), (1910, 1959, 0.35), (1960, 2023, 0.25))
MANHOLE_TYPES = (("sewer", "power", "telecom", "gas_valve"), (0.45, 0.2, 0.2, 0.15))
FACILITY_KINDS = {
    "Gas Regulating Station": "gas_station",
    "Major Electric Transformer Station": "substation",
    "Electric Generating Plant": "power_plant",
    "Power Generating Plant": "power_plant",
    "Steam Power Generating Plant": "power_plant",
}
# ContractAuthority / HYDRANT_OWNER values that name an owner (AVK, M&H, Kennedy are makers).
HYDRANT_OWNERS = {
    "CAM": "City of Cambridge",
    "CITY": "City of Cambridge",
    "PRIVATE HARVARD": "Harvard University (private)",
    "PRIVATE MIT": "MIT (private)",
    "PRIVATE": "private",
    "PRI": "private",
}
BRIDGE_NAME = r"\b(?:Bridge|Footbridge|Viaduct|Overpass|Underpass|Deck)\b"
# Derived bridge design limits (uniform ranges): the demo's baseline strain stays below 60 % of
# the lowest (the yellow/blue rule level), so only an excursion alarms.
BRIDGE_DESIGN_STRAIN_UE = (600.0, 900.0)
BRIDGE_DESIGN_DEFLECTION_MM = (40.0, 80.0)
BRIDGE_DESIGN_TILT_DEG = (0.5, 1.0)

# Chemical sites: real EPA RMP facilities (their stored substances and quantities; CC BY-SA 4.0,
# see PROVENANCE.md) placed in Cambridge, where the RMP lists none. Each is put 35 m to the left
# of the midpoint of one street segment of an industrial / commercial street (Alewife's
# Fawcett St, Smith Pl and Spinelli Pl, East Cambridge's Binney St, Cambridgeport's Sidney St):
# (EPAFacilityID, TRANS_Centerlines ID).
RMP_SITES = (
    ("100000254226", "Smith_Pl_2"),  # Ice Cube Cold Storage, Fall River MA: ammonia
    ("100000255831", "Spinell_Pl_1"),  # Eastern Ice Co., Fall River MA: ammonia
    ("100000254397", "Fawcett_St_1"),  # Rich Products, New Britain CT: ammonia
    ("100000249723", "Binney_St_2"),  # Linde Gas & Equipment, Suffield CT: HCl, Cl2, TCS
    ("100000250168", "Sidney_St_10"),  # Broco Terminals, Haverhill MA: propane
)
RMP_OFFSET_M = 35.0
LB_TO_T = 0.45359237e-3
# RMP chemical names → the names the impact engine's ERG table knows (gis/erg.py); others kept.
ERG_NAMES = {
    "Ammonia (anhydrous)": "Ammonia, anhydrous",
    "Chlorine": "Chlorine",
    "Hydrogen chloride (anhydrous) [Hydrochloric acid]": "Hydrogen chloride, anhydrous",
    "Propane": "Propane",
    "Trichlorosilane [Silane, trichloro-]": "Trichlorosilane",
}
# Pump stations (derived): one at the upstream end of the >= 500 mm water main nearest to each
# anchor — west by Fresh Pond, south (Cambridgeport), east (East Cambridge) — so the water
# network has sources and a burst's cut-off customers can be traced.
PUMP_ANCHORS = (
    ("west", -71.1450, 42.3850),
    ("south", -71.1100, 42.3600),
    ("east", -71.0850, 42.3650),
)
PUMP_MIN_DIAMETER_MM = 500
PUMP_OFFSET_M = 15.0
# Water valves: on each main at each street intersection it reaches (AWWA M44 places a valve on
# every branch of a tee or cross; p < 1 for the ones missing or not found in practice).
WATER_VALVE_SHARE = 0.85
# Gas valves: every gas-valve chamber of the manhole layer holds one, and each other intersection
# end of a gas main has one with this probability. 49 CFR 192.181(a) asks for distribution valves
# "spaced so as to reduce the time to shut down a section of main in an emergency" and prescribes
# no spacing; utilities valve gas mains more sparsely than water (no hydrant branches). Assumed.
GAS_VALVE_SHARE = 0.5
VALVE_SETBACK_M = 2.0  # a valve sits on the pipe this far from the junction
# The weather station (derived): at the representative point of the neighbourhoods' union.
WEATHER_HEIGHT_M = 10.0  # WMO standard anemometer height


# --------------------------------------------------------------------------------------- helpers
def read(src: Path, stem: str) -> gpd.GeoDataFrame:
    """Read ``src/stem.geojson`` as 2D, valid, non-empty EPSG:4326 features (fresh index)."""
    gdf = gpd.read_file(src / f"{stem}.geojson")
    gdf = (gdf.set_crs(WGS84) if gdf.crs is None else gdf).to_crs(WGS84)
    geom = shapely.force_2d(np.asarray(gdf.geometry.values, dtype=object))
    bad = ~shapely.is_valid(geom)
    if bad.any():
        print(f"  {stem}: repaired {int(bad.sum())} invalid geometries")
        geom[bad] = shapely.make_valid(geom[bad], method="structure", keep_collapsed=False)
    gdf = gdf.set_geometry(gpd.GeoSeries(geom, index=gdf.index, crs=WGS84))
    empty = gdf.geometry.isna() | gdf.geometry.is_empty
    if empty.any():
        print(f"  {stem}: dropped {int(empty.sum())} empty geometries")
    return gdf[~empty].reset_index(drop=True)


def layer(
    geometry: object,
    *,
    external_id: object,
    source: str,
    name: object = None,
    owner: object = None,
    **attrs: object,
) -> gpd.GeoDataFrame:
    """Assemble an output layer: common columns first, then ``attrs`` in order.

    Parameters
    ----------
    geometry : array-like of shapely geometries
        Geometries in EPSG:4326.
    external_id, name, owner, **attrs : scalar, array or Series
        Column values; Series are aligned by position, scalars are broadcast.
    source : str
        ``"cambridge_gis"`` or ``"derived"``.
    """
    cols = {"external_id": external_id, "name": name, "owner": owner, "source": source, **attrs}
    geoms = np.asarray(geometry, dtype=object)
    data = {k: v.reset_index(drop=True) if isinstance(v, pd.Series) else v for k, v in cols.items()}
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(geoms)))
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)


def geom_ids(prefix: str, geoms: gpd.GeoSeries) -> list[str]:
    """Return ids from a hash of each normalised geometry (for sources without an id)."""
    wkb = shapely.to_wkb(shapely.normalize(np.asarray(geoms.values, dtype=object)))
    return [f"{prefix}-{hashlib.sha256(w).hexdigest()[:12]}" for w in wkb]


def text(series: pd.Series) -> pd.Series:
    """Strip strings and turn blanks into nulls."""
    out = series.astype("string").str.strip()
    out = out.mask(out == "")
    return out.astype(object).where(out.notna(), None)


def to_int(series: pd.Series, positive: bool = False) -> pd.Series:
    """Cast to nullable Int64; with ``positive`` zero and negative values become null."""
    values = pd.to_numeric(series, errors="coerce")
    return (values.where(values > 0) if positive else values).round().astype("Int64")


def snap(geoms: gpd.GeoSeries) -> np.ndarray:
    """Project derived geometries to EPSG:4326 and snap them to a ~1 cm grid."""
    return shapely.set_precision(np.asarray(geoms.to_crs(WGS84).values, dtype=object), GRID_DEG)


# ---------------------------------------------------------------------------- exposure (real)
def point_layer(
    gdf: gpd.GeoDataFrame,
    name: str,
    owner: str | None = None,
    address: str | None = "ADDRESS",
    phone: str | None = "PHONE",
    **attrs: object,
) -> gpd.GeoDataFrame:
    """Build a real point layer keyed on GlobalID, with optional address and phone."""
    return layer(
        gdf.geometry,
        external_id=gdf["GlobalID"],
        source=REAL,
        name=text(gdf[name]),
        owner=text(gdf[owner]) if owner else None,
        address=text(gdf[address]) if address else None,
        phone=text(gdf[phone]) if phone else None,
        **attrs,
    )


def exposure(src: Path) -> dict[str, gpd.GeoDataFrame]:
    """Hospitals, clinics, schools, daycare, elderly care, shelters, fire, police, subway."""
    out = {
        "hospital": point_layer(read(src, "HEALTH_Hospitals"), "SITE_NAME"),
        "clinic": point_layer(read(src, "HEALTH_HealthClinics"), "SITE_NAME"),
        "elderly_care": point_layer(
            read(src, "LANDMARK_ElderlyFacilities"), "SITE_NAME", "OWNER", phone=None
        ),
        "fire_station": point_layer(read(src, "PUBLICSAFETY_FireStations"), "SITE_NAME"),
        "police_station": point_layer(read(src, "PUBLICSAFETY_PoliceStation"), "SITE_NAME"),
    }
    public = point_layer(read(src, "LANDMARK_PublicSchools"), "SITE_NAME", school_type="public")
    private = read(src, "LANDMARK_PrivateSchools")
    out["school"] = pd.concat(
        [public, point_layer(private, "SITE_NAME", "OWNER", school_type="private")],
        ignore_index=True,
    )
    daycare = read(src, "LANDMARK_DayCareFacilities")
    out["daycare"] = point_layer(
        daycare, "SITE_NAME", "OWNER", capacity=to_int(daycare["SHEL_CAP"], positive=True)
    )
    shelter = read(src, "PUBLICSAFETY_EmergencyShelters")
    capacity = to_int(shelter["Capacity"].fillna(shelter["SHEL_CAP"]), positive=True)
    out["shelter"] = point_layer(shelter, "Name", None, "Address", "Phone", capacity=capacity)
    subway = read(src, "TRANS_SubwayStations")
    out["subway_station"] = point_layer(
        subway, "STATION", address=None, phone=None, line=text(subway["LINE"])
    )
    return out


def areas(src: Path) -> dict[str, gpd.GeoDataFrame]:
    """Neighbourhoods (real) and census blocks with an estimated population (derived)."""
    hoods = read(src, "BOUNDARY_CDDNeighborhoods")
    admin = layer(
        hoods.geometry,
        external_id=hoods["GlobalID"],
        source=REAL,
        name=text(hoods["NAME"]),
        admin_level="neighbourhood",
    )
    blocks = read(src, "DEMOGRAPHICS_Blocks2020").sort_values("GEOID20", ignore_index=True)
    land = blocks["ALAND20"].fillna(0).to_numpy(dtype=float)
    quota = land / land.sum() * CITY_POP_2020
    population = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - population), kind="stable")  # largest remainders, then GEOID
    population[order[: CITY_POP_2020 - population.sum()]] += 1
    cells = layer(
        blocks.geometry,
        external_id=blocks["GEOID20"],
        source=DERIVED,
        name=text(blocks["NAME20"]),
        population=population,
        population_method="land-area share of 2020 city total 118,403 (US Census 2020)",
        land_area_m2=land.astype(np.int64),
        geoid=blocks["GEOID20"],
    )
    return {"admin_area": admin, "population_cell": cells}


# ------------------------------------------------------------------------ real infrastructure
def facilities(src: Path) -> dict[str, gpd.GeoDataFrame]:
    """Gas regulating stations, transformer substations and power plants."""
    gdf = read(src, "INFRA_UtilityFacilities")
    kind = gdf["TYPE"].map(FACILITY_KINDS)
    print(f"  utility facility types not used: {sorted(set(gdf.loc[kind.isna(), 'TYPE']))}")
    return {
        k: point_layer(part, "SITE_NAME", phone=None, facility_type=text(part["TYPE"]))
        for k, part in gdf.assign(kind=kind).dropna(subset=["kind"]).groupby("kind")
    }


def hydrants(src: Path) -> gpd.GeoDataFrame:
    """Real hydrants: install year, flow (US gpm), owner, lifecycle status."""
    gdf = read(src, "INFRA_Hydrants")
    year = pd.to_datetime(gdf["INSTALLDATE"], unit="ms", errors="coerce").dt.year
    year = year.where(year.between(1850, 2026))  # 911, 1800, 1833 predate Cambridge Water Works
    owner = gdf["HYDRANT_OWNER"].str.strip().str.upper().map(HYDRANT_OWNERS)
    owner = owner.fillna(gdf["ContractAuthority"].str.strip().str.upper().map(HYDRANT_OWNERS))
    return layer(
        gdf.geometry,
        external_id=gdf["GlobalID"],
        source=REAL,
        name=text(gdf["HYDRANT_ID"]),
        owner=owner.astype(object).where(owner.notna(), None),
        install_year=to_int(year),
        flow_gpm=to_int(gdf["HYDRANT_GPM"], positive=True),
        lifecycle_status=text(gdf["LIFECYCLESTATUS"]),
    )


def bridges(src: Path) -> gpd.GeoDataFrame:
    """Real bridge/tunnel polygons; a row the publisher marked "Delete:" is dropped."""
    gdf = read(src, "BASEMAP_Bridges")
    details = text(gdf["BridgeDetails"])
    gdf = gdf[~details.fillna("").str.startswith("Delete").to_numpy()].reset_index(drop=True)
    details = text(gdf["BridgeDetails"])
    label = details.fillna("")
    is_name = label.str.contains(BRIDGE_NAME) & ~label.str.contains(" over ")
    out = layer(
        gdf.geometry,
        external_id=geom_ids("bridge", gdf.geometry),
        source=REAL,
        name=details.where(is_name, None),
        bridge_type=gdf["TYPE"].str.strip().str.lower().str.replace(" ", "_"),
        description=details,
    )
    # Design limits are not published; the warning rules compare strain, deflection and tilt
    # with them, so without them a bridge never alarms. Drawn per bridge (seeded, in id order)
    # and labelled: a city replaces them with its load-rating values.
    out = out.sort_values("external_id", ignore_index=True)
    rng = np.random.default_rng(SEED + 5)
    n = len(out)
    out["design_strain_ue"] = np.round(rng.uniform(*BRIDGE_DESIGN_STRAIN_UE, n), -1)
    out["design_deflection_mm"] = np.round(rng.uniform(*BRIDGE_DESIGN_DEFLECTION_MM, n))
    out["design_tilt_deg"] = np.round(rng.uniform(*BRIDGE_DESIGN_TILT_DEG, n), 2)
    out["design_limits_source"] = DERIVED
    return out


def flood_zones(src: Path) -> gpd.GeoDataFrame:
    """FEMA 1 % (AE) and 0.2 % (X shaded) zones; the 500-year file repeats the AE polygons."""
    z100 = read(src, "FEMA_FloodPlains100Year").assign(return_period_yr=100)
    z500 = read(src, "FEMA_FloodPlains500Year").assign(return_period_yr=500)
    z500 = z500[~z500["fld_ar_id"].isin(z100["fld_ar_id"])]  # keep only the 0.2 % X polygons
    gdf = pd.concat([z100, z500], ignore_index=True)
    bfe = gdf["static_bfe"].where(gdf["static_bfe"] > -9999) * FT_TO_M  # len_unit = Feet
    subtype = text(gdf["zone_subty"])
    label = "Zone " + gdf["fld_zone"] + np.where(subtype == "FLOODWAY", " (floodway)", "")
    label = label.where(gdf["fld_zone"] != "X", "Zone X (0.2% annual chance)")
    return layer(
        gdf.geometry,
        external_id=gdf["GlobalID"],
        source=REAL,
        name=label,
        return_period_yr=gdf["return_period_yr"].astype(np.int64),
        flood_zone_code=gdf["fld_zone"],
        depth_m=np.full(len(gdf), np.nan),  # FEMA depth is -9999 (none) in every feature
        sfha=(gdf["sfha_tf"] == "T").to_numpy(),
        bfe_navd88_m=bfe.round(2),
        zone_subtype=subtype,
    )


# ------------------------------------------------------------------------------ derived network
def streets(src: Path) -> gpd.GeoDataFrame:
    """Street centerlines in metres with a road class, sorted by the stable segment ID."""
    gdf = read(src, "TRANS_Centerlines").sort_values("ID", ignore_index=True)
    geom = np.asarray(gdf.geometry.values, dtype=object)
    multi = shapely.get_type_id(geom) == 5
    geom[multi] = shapely.line_merge(geom[multi])  # Chauncy_St_2: two touching parts
    if (shapely.get_type_id(geom) != 1).any():
        raise ValueError("a MultiLineString centerline did not merge into one LineString")
    major = gdf["MajorRoad"]
    return gpd.GeoDataFrame(
        {
            "seg_id": gdf["ID"],
            "street": text(gdf["Label"].fillna(gdf["Street"])),
            "group": gdf["Street_ID"].astype("Int64").astype(str)
            + "|"
            + major.fillna(0).astype(int).astype(str),
            "road_class": np.select([major == 1, major == 2], ["principal", "minor"], "local"),
        },
        geometry=gpd.GeoSeries(geom, crs=WGS84).to_crs(METRIC),
    )


def per_street(
    base: gpd.GeoDataFrame, seed: int, share: float, tables: tuple[Choice, ...], eras: Eras
) -> tuple[np.random.Generator, np.ndarray, list[np.ndarray], np.ndarray]:
    """Draw a main's attributes once per street (and road class), broadcast to its segments.

    Parameters
    ----------
    base : geopandas.GeoDataFrame
        Output of :func:`streets`.
    seed : int
        Seed of this layer's generator.
    share : float
        Probability that a local street has this utility (arterials always do).
    tables : tuple of Choice
        Per-class value tables, drawn in order.
    eras : Eras
        Installation eras of the street's original main.

    Returns
    -------
    tuple
        ``(rng, served, [table values], install_year)``; arrays have one entry per segment.
    """
    rng = np.random.default_rng(seed)
    codes, groups = pd.factorize(base["group"], sort=True)
    cls = base.groupby(codes)["road_class"].first().to_numpy()
    served = (rng.random(len(groups)) < share) | (cls != "local")
    drawn = []
    for table in tables:
        values = np.zeros(len(groups))
        for name, (options, probs) in table.items():
            mask = cls == name
            values[mask] = rng.choice(options, size=int(mask.sum()), p=probs)
        drawn.append(values[codes])
    era = rng.choice(len(eras), size=len(groups), p=[w for *_, w in eras])
    low, high = np.array([e[0] for e in eras]), np.array([e[1] for e in eras])
    year = rng.integers(low[era], high[era] + 1)
    return rng, served[codes], drawn, year[codes]


def offset(base: gpd.GeoDataFrame, metres: float) -> np.ndarray:
    """Offset centerlines sideways (positive = left of digitised direction), back in EPSG:4326.

    Offset lines of the segments meeting at an intersection end a few metres apart, so each
    pipe would be an island and no network could be traced (a burst's valves, who a pump
    station still reaches). The ends of the pipes that meet at one centerline node are
    therefore moved to their mean point (at most a few metres), which joins them.
    """
    lines = np.asarray(base.geometry.values, dtype=object)
    if metres:
        lines = shapely.offset_curve(lines, metres, join_style="mitre", mitre_limit=2.0)
        lines = shapely.line_merge(lines)
        for i in np.flatnonzero(shapely.get_type_id(lines) != 1):  # rare: keep longest piece
            parts = shapely.get_parts(lines[i])
            lines[i] = parts[np.argmax(shapely.length(parts))]
        lines = join_ends(np.asarray(base.geometry.values, dtype=object), lines)
    return snap(gpd.GeoSeries(lines, crs=METRIC))


def join_ends(centre: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Move the ends of offset ``lines`` that share a centerline node to their mean point.

    ``offset_curve`` keeps the direction of a line for a positive offset and reverses it for a
    negative one, so which end of an offset line belongs to which end of its centerline is
    decided by distance, not by position in the coordinate list.
    """
    n = len(centre)
    node_xy = np.round(
        shapely.get_coordinates(
            np.concatenate([shapely.get_point(centre, 0), shapely.get_point(centre, -1)])
        ),
        1,
    )
    _, node = np.unique(node_xy, axis=0, return_inverse=True)
    first, last = shapely.get_point(lines, 0), shapely.get_point(lines, -1)
    flipped = shapely.distance(first, shapely.get_point(centre, 0)) > shapely.distance(
        last, shapely.get_point(centre, 0)
    )
    start_end = np.where(flipped, -1, 0)  # index of the offset end at the centerline's start
    ends = np.concatenate([np.where(flipped, last, first), np.where(flipped, first, last)])
    xy = shapely.get_coordinates(ends)
    total = np.zeros((node.max() + 1, 2))
    count = np.zeros(node.max() + 1)
    np.add.at(total, node, xy)
    np.add.at(count, node, 1)
    mean = total / count[:, None]
    out = lines.copy()
    for i in range(n):
        coords = shapely.get_coordinates(lines[i]).copy()
        a, b = (0, -1) if start_end[i] == 0 else (-1, 0)
        coords[a] = mean[node[i]]
        coords[b] = mean[node[n + i]]
        out[i] = shapely.linestrings(coords)
    return out


def pipe_layer(
    base: gpd.GeoDataFrame,
    keep: np.ndarray,
    prefix: str,
    metres: float,
    attrs: dict[str, np.ndarray],
) -> gpd.GeoDataFrame:
    """Build a derived pipe layer for the kept segments, offset ``metres`` from the centerline."""
    part = base[keep]
    return layer(
        offset(part, metres),
        external_id=f"derived-{prefix}-" + part["seg_id"],
        source=DERIVED,
        name=part["street"],
        **{k: np.asarray(v)[keep] for k, v in attrs.items()},
        street_segment=part["seg_id"],
    )


def gas_pipes(base: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Derived gas mains, 3 m left of the centerline; arterials larger and higher-pressure."""
    tables = (GAS_DIAMETER_MM, GAS_PRESSURE_MPA)
    rng, served, (dia, mpa), year = per_street(base, SEED + 1, 0.85, tables, GAS_ERAS)
    n = len(base)
    high = mpa > 0.4
    year = np.where(high, rng.integers(1950, 2016, n), year)  # steel HP feeders: post-1950
    renewed = rng.random(n) < 0.15
    year = np.where(renewed, rng.integers(1995, 2024, n), year)
    material = np.select(
        [high | (dia >= 400), renewed, year < 1950, year < 1975],
        ["steel", "PE", "cast_iron", "steel"],
        "PE",
    )
    pclass = np.select([mpa <= 0.01, mpa <= 0.4], ["low", "medium"], "high")
    attrs = {"diameter_mm": dia.astype(np.int64), "pressure_mpa": mpa, "pressure_class": pclass}
    attrs |= {"material": material, "install_year": year.astype(np.int64)}
    return pipe_layer(base, served, "gas", 3.0, attrs)


def water_pipes(base: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Derived water mains, 3 m right of the centerline (opposite side to gas)."""
    rng, served, (dia,), year = per_street(base, SEED + 2, 0.97, (WATER_DIAMETER_MM,), WATER_ERAS)
    n = len(base)
    mpa = np.round(rng.uniform(0.38, 0.62, n), 2)
    renewed = rng.random(n) < 0.10
    year = np.where(renewed, rng.integers(1995, 2024, n), year)
    pvc = (dia <= 300) & (year >= 1975) & (rng.random(n) < 0.3)
    material = np.select([pvc, year < 1955], ["PVC", "cast_iron"], "ductile_iron")
    attrs = {"diameter_mm": dia.astype(np.int64), "pressure_mpa": mpa, "material": material}
    return pipe_layer(base, served, "water", -3.0, attrs | {"install_year": year.astype(np.int64)})


def drainage_pipes(src: Path, base: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Real drainage lines (deduplicated) plus derived sewers on the centerline."""
    real = read(src, "INFRA_Drainage")
    ids = pd.Series(geom_ids("drainage", real.geometry))
    real = real[~ids.duplicated().to_numpy()].reset_index(drop=True)
    none = pd.array([pd.NA] * len(real), dtype="Int64")
    real_layer = layer(
        real.geometry,
        external_id=geom_ids("drainage", real.geometry),
        source=REAL,
        diameter_mm=none,
        material=None,
        install_year=none,
        drainage_type=real["TYPE"].str.strip().str.lower(),
    )
    rng, served, (dia,), year = per_street(base, SEED + 3, 0.93, (SEWER_DIAMETER_MM,), SEWER_ERAS)
    renewed = rng.random(len(base)) < 0.08
    year = np.where(renewed, rng.integers(1990, 2024, len(base)), year)
    material = np.select(
        [(year < 1910) & (dia >= 600), year < 1960, dia >= 375],
        ["brick", np.where(dia <= 450, "vitrified_clay", "concrete"), "concrete"],
        "vitrified_clay",
    )
    attrs = {"diameter_mm": dia.astype(np.int64), "material": material}
    attrs |= {"install_year": year.astype(np.int64), "drainage_type": np.full(len(base), "sewer")}
    sewers = pipe_layer(base, served, "sewer", 0.0, attrs)
    return pd.concat([real_layer, sewers], ignore_index=True)


def manholes(base: gpd.GeoDataFrame, gas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Derived manholes at street intersections (centerline endpoints shared by >= 3 lines)."""
    lines = np.asarray(base.geometry.values, dtype=object)
    ends = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    xy = np.round(shapely.get_coordinates(ends), 1)  # 0.1 m in EPSG:26986
    nodes, degree = np.unique(xy, axis=0, return_counts=True)  # lexicographic: deterministic
    nodes = nodes[degree >= 3]
    on_gas = base["seg_id"].isin(gas["street_segment"]).to_numpy()
    gas_xy = {tuple(p) for p in np.concatenate([xy[: len(base)][on_gas], xy[len(base) :][on_gas]])}
    rng = np.random.default_rng(SEED + 4)
    kind = rng.choice(MANHOLE_TYPES[0], size=len(nodes), p=MANHOLE_TYPES[1])
    has_gas = np.array([tuple(p) in gas_xy for p in nodes])
    kind = np.where((kind == "gas_valve") & ~has_gas, "sewer", kind)
    keys = [f"{x:.1f},{y:.1f}" for x, y in nodes]
    return layer(
        snap(gpd.GeoSeries(shapely.points(nodes), crs=METRIC)),
        external_id=[
            f"derived-manhole-{hashlib.sha256(k.encode()).hexdigest()[:10]}" for k in keys
        ],
        source=DERIVED,
        manhole_type=kind,
    )


# ------------------------------------------------------------- derived sites on the network
def node_keys(base: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Each centerline's start and end node key (0.1 m in EPSG:26986), and node degrees."""
    lines = np.asarray(base.geometry.values, dtype=object)
    keys = []
    for end in (0, -1):
        xy = np.round(shapely.get_coordinates(shapely.get_point(lines, end)), 1)
        keys.append(np.array([f"{x:.1f},{y:.1f}" for x, y in xy], dtype=object))
    degree: dict[str, int] = {}
    for k in np.concatenate(keys):
        degree[k] = degree.get(k, 0) + 1
    return keys[0], keys[1], degree


def manhole_id(key: str) -> str:
    return f"derived-manhole-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def valves(
    base: gpd.GeoDataFrame,
    water: gpd.GeoDataFrame,
    gas: gpd.GeoDataFrame,
    holes: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """Derived valves on the water and gas mains, 2 m in from the intersections.

    Water: on each main at each intersection it reaches (a node of >= 3 centerlines), with
    probability 0.85. Gas: on each gas main at each intersection whose manhole is a gas valve
    chamber (``manhole_type = gas_valve``), so the valve chambers of the manhole layer hold
    valves, and at the other intersections with probability 0.5. Each valve gets its main's
    diameter.
    """
    start, end, degree = node_keys(base)
    by_seg = {seg: i for i, seg in enumerate(base["seg_id"])}
    centre = np.asarray(base.geometry.values, dtype=object)
    chambers = set(holes.loc[holes["manhole_type"] == "gas_valve", "external_id"])
    rng = np.random.default_rng(SEED + 6)
    rows: list[tuple[str, str, object, int]] = []
    for network, pipes in (("water", water), ("gas", gas)):
        pipes = pipes.sort_values("external_id", ignore_index=True)
        lines = np.asarray(pipes.geometry.to_crs(METRIC).values, dtype=object)
        draw = rng.random((len(pipes), 2))
        for i, seg in enumerate(pipes["street_segment"]):
            j = by_seg[seg]
            line = lines[i]
            flipped = shapely.distance(
                shapely.get_point(line, 0), shapely.get_point(centre[j], 0)
            ) > shapely.distance(shapely.get_point(line, -1), shapely.get_point(centre[j], 0))
            for side, key in enumerate((start[j], end[j])):
                if degree[key] < 3:
                    continue
                if network == "water" and draw[i, side] >= WATER_VALVE_SHARE:
                    continue
                if (
                    network == "gas"
                    and manhole_id(key) not in chambers
                    and draw[i, side] >= GAS_VALVE_SHARE
                ):
                    continue
                at_start = (side == 0) != flipped
                setback = min(VALVE_SETBACK_M, line.length / 3)
                point = line.interpolate(setback if at_start else line.length - setback)
                eid = f"derived-valve-{network}-{seg}-{'ab'[side]}"
                rows.append((eid, network, point, int(pipes["diameter_mm"][i])))
    geoms = snap(gpd.GeoSeries([r[2] for r in rows], crs=METRIC))
    return layer(
        geoms,
        external_id=[r[0] for r in rows],
        source=DERIVED,
        network=[r[1] for r in rows],
        diameter_mm=np.array([r[3] for r in rows], dtype=np.int64),
    )


def regulator_inlets(stations: gpd.GeoDataFrame, gas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The gas regulating stations with the diameter and MAOP of the gas main nearest each
    (derived: the source gives neither), so a jet fire at a station has its inputs."""
    mains = gas.to_crs(METRIC)
    points = stations.to_crs(METRIC).geometry
    nearest = [int(np.argmin(mains.geometry.distance(p).to_numpy())) for p in points]
    out = stations.copy()
    out["diameter_mm"] = mains["diameter_mm"].to_numpy()[nearest].astype(np.int64)
    out["pressure_mpa"] = mains["pressure_mpa"].to_numpy()[nearest].astype(float)
    out["inlet_main_external_id"] = mains["external_id"].to_numpy()[nearest]
    return out


def pump_stations(water: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Derived pump stations 15 m off the upstream end of the large main nearest each anchor."""
    big = water[water["diameter_mm"] >= PUMP_MIN_DIAMETER_MM].sort_values(
        "external_id", ignore_index=True
    )
    lines = np.asarray(big.geometry.to_crs(METRIC).values, dtype=object)
    starts = shapely.get_point(lines, 0)
    names, points, mains = [], [], []
    for label, lon, lat in PUMP_ANCHORS:
        anchor = gpd.GeoSeries([shapely.Point(lon, lat)], crs=WGS84).to_crs(METRIC).iloc[0]
        i = int(np.argmin(shapely.distance(starts, anchor)))
        line = lines[i]
        # 15 m sideways from the main's first vertex (a station sits beside the street)
        a, b = shapely.get_coordinates(line)[:2]
        dx, dy = (b - a) / np.hypot(*(b - a))
        points.append(shapely.Point(a[0] - dy * PUMP_OFFSET_M, a[1] + dx * PUMP_OFFSET_M))
        names.append(f"Pump station {label} (derived)")
        mains.append(big["external_id"][i])
    return layer(
        snap(gpd.GeoSeries(points, crs=METRIC)),
        external_id=[f"derived-pump-{label}" for label, *_ in PUMP_ANCHORS],
        source=DERIVED,
        name=names,
        capacity_m3h=np.full(len(points), np.nan),
        main_external_id=mains,
    )


def weather_stations(admin: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One derived weather station at the representative point of the city's neighbourhoods."""
    city = shapely.union_all(np.asarray(admin.geometry.to_crs(METRIC).values, dtype=object))
    return layer(
        snap(gpd.GeoSeries([city.point_on_surface()], crs=METRIC)),
        external_id=["derived-weather-1"],
        source=DERIVED,
        name=["Weather station (derived)"],
        address=None,
        height_m=[WEATHER_HEIGHT_M],
    )


def rmp_chemicals(raw: str) -> list[tuple[str, float]]:
    """``Name {lb} • Name {lb}`` → [(name, tonnes)], largest first, ERG names where known."""
    out = []
    for part in raw.split("•"):
        match = re.match(r"\s*(.*?)\s*\{([\d.]+)\}\s*$", part)
        if match:
            name = " ".join(match.group(1).split())
            out.append((ERG_NAMES.get(name, name), float(match.group(2)) * LB_TO_T))
    return sorted(out, key=lambda c: (-c[1], c[0]))


def chemical_plants(rmp: Path, base: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Real RMP facilities' substances and quantities, at derived places in Cambridge.

    The RMP lists no facility inside Cambridge; each of the chosen New England facilities is
    placed 35 m left of the midpoint of a segment of an industrial / commercial street
    (:data:`RMP_SITES`). Name, chemicals and quantities are the facility's own (RMP, latest
    submission); the location is not.
    """
    gdf = gpd.read_file(rmp / "rmp_facilities_added_2023_2025.geojson")
    facilities = gdf.set_index("EPAFacilityID")
    by_seg = base.set_index("seg_id")
    rows = []
    for epa_id, seg in RMP_SITES:
        f = facilities.loc[epa_id]
        line = by_seg.geometry[seg]
        mid = line.interpolate(0.5, normalized=True)
        ahead = line.interpolate(min(line.length, line.project(mid) + 1.0))
        dx, dy = np.array(ahead.coords[0]) - np.array(mid.coords[0])
        norm = np.hypot(dx, dy)
        point = shapely.Point(mid.x - dy / norm * RMP_OFFSET_M, mid.y + dx / norm * RMP_OFFSET_M)
        chems = rmp_chemicals(f["ChemicalsInLatest"])
        rows.append(
            {
                "external_id": f"rmp-{epa_id}",
                "name": f"{f['Name']} (RMP stock, placed; real site {f['City']}, {f['State']})",
                "owner": f["LatestCompany1"] or None,
                "chemicals": "; ".join(c for c, _ in chems),
                "quantity_t": round(max(q for _, q in chems), 2),
                "chemical_quantities": "; ".join(f"{c} {q:.2f} t" for c, q in chems),
                "rmp_facility_id": epa_id,
                "rmp_chemicals": f["ChemicalsInLatest"],
                "rmp_naics": f["NAICSCodesInLatest"],
                "rmp_address": f"{f['Addr1']}, {f['City']}, {f['State']} {f['ZipCode']}",
                "rmp_receipt_date": f["LatestReceiptDate"],
                "placement": f"derived: 35 m from the midpoint of {seg} ({by_seg['street'][seg]})",
                "point": point,
            }
        )
    frame = pd.DataFrame(rows)
    return layer(
        snap(gpd.GeoSeries(frame["point"], crs=METRIC)),
        external_id=frame["external_id"],
        source=DERIVED,
        name=frame["name"],
        owner=frame["owner"],
        **{
            c: frame[c] for c in frame.columns if c not in ("external_id", "name", "owner", "point")
        },
    )


# ------------------------------------------------------------------------ dependencies (CSV)
DEPENDENCY_COLUMNS = (
    "from_external_id",
    "to_external_id",
    "link_type",
    "delay_h",
    "buffer_h",
    "note",
)


def dependencies(layers: dict[str, gpd.GeoDataFrame]) -> list[tuple[object, ...]]:
    """Derived dependencies no geometry shows, for ``cityrisk links import``.

    The nearest-substation supply rules of ``links rebuild`` already feed pump stations,
    hospitals and subway stations; these rows add what they do not: a hospital's water from
    its nearest pump station (12 h of on-site storage, assumed), and the power of gas
    regulating stations (8 h on standby power, assumed) and of chemical plants (refrigeration
    and scrubbers stop at once, assumed) from their nearest substation.
    """

    def metric(kind: str) -> gpd.GeoDataFrame:
        return layers[kind].sort_values("external_id", ignore_index=True).to_crs(METRIC)

    def nearest(frm: str, to: str) -> list[tuple[str, str, float]]:
        a, b = metric(frm), metric(to)
        out = []
        for eid, geom in zip(b["external_id"], b.geometry, strict=True):
            d = a.geometry.distance(geom)
            i = int(np.argmin(d.to_numpy()))
            out.append((str(a["external_id"][i]), str(eid), float(d.iloc[i])))
        return out

    specs = (
        (
            "pump_station",
            "hospital",
            0,
            12,
            "water from the nearest pump station; 12 h of on-site storage assumed",
        ),
        (
            "substation",
            "gas_station",
            0,
            8,
            "power (heaters, telemetry) from the nearest substation; 8 h on standby power assumed",
        ),
        (
            "substation",
            "chemical_plant",
            0,
            0,
            "power (refrigeration, scrubbers) from the "
            "nearest substation; no standby power assumed",
        ),
        (
            "substation",
            "weather_station",
            0,
            12,
            "power from the nearest substation; 12 h on battery assumed",
        ),
    )
    rows: list[tuple[object, ...]] = []
    for frm, to, delay, buffer, why in specs:
        for a, b, d in nearest(frm, to):
            rows.append((a, b, "physical", delay, buffer, f"derived: {why} ({d:.0f} m)"))
    return rows


def write_dependencies(rows: list[tuple[object, ...]], out: Path) -> None:
    """Write the dependency CSV (fixed column order, rows in build order, LF endings)."""
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(DEPENDENCY_COLUMNS)
        writer.writerows(rows)
    print(f"wrote {out} ({len(rows)} dependencies)")


# ------------------------------------------------------------------------------------- output
def write(layers: dict[str, gpd.GeoDataFrame], out: Path) -> None:
    """Check every layer against the contract and write the GeoPackage (one layer per kind)."""
    out.unlink(missing_ok=True)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2020-04-01T00:00:00Z"})
    print("\n| layer | geometry | features | real | derived |\n|---|---|---|---|---|")
    for kind in sorted(layers):
        gdf = layers[kind].sort_values("external_id", ignore_index=True)
        geom = gdf.geometry
        problems = {
            "duplicate external_id": not gdf["external_id"].is_unique,
            "invalid geometry": not geom.is_valid.all(),
            "empty geometry": geom.is_empty.any(),
            "3D geometry": geom.has_z.any(),
            "CRS is not EPSG:4326": gdf.crs.to_epsg() != 4326,
        }
        if any(problems.values()):
            raise ValueError(f"{kind}: {[k for k, v in problems.items() if v]}")
        pyogrio.write_dataframe(gdf, out, layer=kind, driver="GPKG")
        types = "/".join(sorted(set(geom.geom_type)))
        real = int((gdf["source"] == REAL).sum())
        print(f"| {kind} | {types} | {len(gdf)} | {real} | {len(gdf) - real} |")
    print(f"\nwrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build every layer and write the GeoPackage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", type=Path, default=DEFAULT_SRC, help="GeoJSON folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .gpkg")
    parser.add_argument("--rmp", type=Path, default=DEFAULT_RMP, help="EPA RMP folder")
    parser.add_argument(
        "--dependencies", type=Path, default=None, help="output CSV (default: beside --out)"
    )
    args = parser.parse_args(argv)
    src = args.src if args.src.is_dir() else (REPO / args.src).resolve()  # cwd, then repo root
    rmp = args.rmp if args.rmp.is_dir() else (REPO / args.rmp).resolve()
    for folder in (src, rmp):
        if not folder.is_dir():
            parser.error(f"source folder not found: {folder}")
    base = streets(src)
    gas = gas_pipes(base)
    water = water_pipes(base)
    holes = manholes(base, gas)
    layers = {
        **exposure(src),
        **areas(src),
        **facilities(src),
        "hydrant": hydrants(src),
        "bridge": bridges(src),
        "flood_zone": flood_zones(src),
        "gas_pipe": gas,
        "water_pipe": water,
        "drainage_pipe": drainage_pipes(src, base),
        "manhole": holes,
        "valve": valves(base, water, gas, holes),
        "pump_station": pump_stations(water),
        "chemical_plant": chemical_plants(rmp, base),
    }
    layers["gas_station"] = regulator_inlets(layers["gas_station"], gas)
    layers["weather_station"] = weather_stations(layers["admin_area"])
    write(layers, args.out)
    deps = args.dependencies or args.out.with_name("dependencies.csv")
    write_dependencies(dependencies(layers), deps)


if __name__ == "__main__":
    main()
