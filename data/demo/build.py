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
import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SRC = Path("../shared/datasets/cambridge_ma")
DEFAULT_OUT = REPO / "data" / "demo" / "cambridge.gpkg"
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
    return layer(
        gdf.geometry,
        external_id=geom_ids("bridge", gdf.geometry),
        source=REAL,
        name=details.where(is_name, None),
        bridge_type=gdf["TYPE"].str.strip().str.lower().str.replace(" ", "_"),
        description=details,
    )


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
    """Offset centerlines sideways (positive = left of digitised direction), back in EPSG:4326."""
    lines = np.asarray(base.geometry.values, dtype=object)
    if metres:
        lines = shapely.offset_curve(lines, metres, join_style="mitre", mitre_limit=2.0)
        lines = shapely.line_merge(lines)
        for i in np.flatnonzero(shapely.get_type_id(lines) != 1):  # rare: keep longest piece
            parts = shapely.get_parts(lines[i])
            lines[i] = parts[np.argmax(shapely.length(parts))]
    return snap(gpd.GeoSeries(lines, crs=METRIC))


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
    args = parser.parse_args(argv)
    src = args.src if args.src.is_dir() else (REPO / args.src).resolve()  # cwd, then repo root
    if not src.is_dir():
        parser.error(f"source folder not found: {src}")
    base = streets(src)
    gas = gas_pipes(base)
    layers = {
        **exposure(src),
        **areas(src),
        **facilities(src),
        "hydrant": hydrants(src),
        "bridge": bridges(src),
        "flood_zone": flood_zones(src),
        "gas_pipe": gas,
        "water_pipe": water_pipes(base),
        "drainage_pipe": drainage_pipes(src, base),
        "manhole": manholes(base, gas),
    }
    write(layers, args.out)


if __name__ == "__main__":
    main()
