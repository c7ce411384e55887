"""The asset taxonomy as data: plate → kind → geometry family and expected attributes.

Versioned here rather than scattered as strings: the importer validates against it, the OGC API
builds one collection per kind from it, and later the rules, scoring and layers look kinds up
here. Units are in attribute names (``diameter_mm``) and repeated in ``unit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TAXONOMY_VERSION = 1

Plate = Literal["lifeline", "public_safety", "production_safety", "natural_disaster", "exposure"]
GeometryFamily = Literal["point", "line", "polygon"]
AttrType = Literal["int", "float", "str", "bool", "date"]

PLATE_TITLES: dict[str, str] = {
    "lifeline": "Urban lifeline (城市生命线)",
    "public_safety": "Public safety (公共安全)",
    "production_safety": "Production safety (安全生产)",
    "natural_disaster": "Natural disaster (自然灾害)",
    "exposure": "Exposure: people and places that can be harmed",
}
PLATES: tuple[str, ...] = tuple(PLATE_TITLES)

#: Kinds of coupling between two assets (Rinaldi, Peerenboom & Kelly 2001).
LINK_TYPES = ("physical", "cyber", "geographic", "logical")


@dataclass(frozen=True)
class Attribute:
    """One expected attribute of a kind; values outside the bounds reject the row."""

    name: str
    type: AttrType
    unit: str | None = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AssetKind:
    """A kind of asset: its plate, the geometry families it may have, its attributes."""

    id: str
    plate: Plate
    title: str
    geometries: frozenset[GeometryFamily]
    attributes: tuple[Attribute, ...] = ()
    description: str = ""
    # Attribute that dates a feature (an install year), used by OGC ``datetime``; None if timeless.
    temporal: str | None = None
    attribute_index: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attribute_index", {a.name: a for a in self.attributes})


POINT: frozenset[GeometryFamily] = frozenset({"point"})
LINE: frozenset[GeometryFamily] = frozenset({"line"})
POLYGON: frozenset[GeometryFamily] = frozenset({"polygon"})
SITE: frozenset[GeometryFamily] = frozenset({"point", "polygon"})

# Shared attribute definitions (plausibility bounds, not design limits).
DIAMETER = Attribute("diameter_mm", "int", "mm", "nominal diameter", 10, 5000)
PRESSURE = Attribute("pressure_mpa", "float", "MPa", "maximum allowable operating pressure", 0, 20)
MATERIAL = Attribute("material", "str", None, "pipe material")
INSTALL_YEAR = Attribute("install_year", "int", "year", "year installed", 1800, 2100)
CONDITION = Attribute("condition", "str", None, "condition grade", choices=("good", "fair", "poor"))
CAPACITY = Attribute("capacity", "int", "persons", "people it can hold", 0, 1_000_000)
ADDRESS = Attribute("address", "str")
PHONE = Attribute("phone", "str")
FACILITY = (ADDRESS, PHONE)
PIPE = (DIAMETER, MATERIAL, INSTALL_YEAR, CONDITION)


#: The networks a network node (``junction``) can belong to.
NETWORK_NODE_NETWORKS = ("water", "gas", "heating", "drainage")


def _kinds(*kinds: AssetKind) -> dict[str, AssetKind]:
    return {k.id: k for k in kinds}


KINDS: dict[str, AssetKind] = _kinds(
    # -- urban lifeline --------------------------------------------------------------------
    AssetKind(
        "gas_pipe",
        "lifeline",
        "Gas main",
        LINE,
        (
            *PIPE,
            PRESSURE,
            Attribute(
                "pressure_class",
                "str",
                None,
                "GB 50028 class: low <= 0.01, medium <= 0.4, high > 0.4 MPa",
                choices=("low", "medium", "high"),
            ),
        ),
        temporal="install_year",
    ),
    AssetKind(
        "water_pipe", "lifeline", "Water main", LINE, (*PIPE, PRESSURE), temporal="install_year"
    ),
    AssetKind(
        "drainage_pipe",
        "lifeline",
        "Drainage / sewer pipe",
        LINE,
        (*PIPE, Attribute("drainage_type", "str")),
        temporal="install_year",
    ),
    AssetKind(
        "heating_pipe", "lifeline", "Heating pipe", LINE, (*PIPE, PRESSURE), temporal="install_year"
    ),
    AssetKind(
        "utility_tunnel",
        "lifeline",
        "Utility tunnel",
        frozenset({"line", "polygon"}),
        (Attribute("compartments", "str", None, "e.g. gas, power, water"), INSTALL_YEAR),
        temporal="install_year",
    ),
    AssetKind(
        "manhole",
        "lifeline",
        "Manhole / adjacent underground space",
        POINT,
        (
            Attribute(
                "manhole_type",
                "str",
                None,
                "the network the well belongs to",
                choices=("sewer", "storm", "power", "telecom", "gas_valve", "water", "heating"),
            ),
        ),
        description="Laser methane monitors go under these covers (the Hefei model).",
    ),
    AssetKind(
        "gas_station",
        "lifeline",
        "Gas station / regulator",
        SITE,
        (
            *FACILITY,
            Attribute("facility_type", "str"),
            PRESSURE,
            Attribute("diameter_mm", "int", "mm", "inlet main's nominal diameter", 10, 5000),
        ),
    ),
    AssetKind(
        "bridge",
        "lifeline",
        "Bridge",
        frozenset({"line", "polygon"}),
        (
            Attribute("bridge_type", "str"),
            Attribute("year_built", "int", "year", "", 1800, 2100),
            Attribute("sufficiency_rating", "float", "0-100", "NBI sufficiency rating", 0, 100),
            Attribute("span_m", "float", "m", "main span", 0, 5000),
            Attribute("description", "str"),
        ),
        temporal="year_built",
    ),
    AssetKind(
        "substation",
        "lifeline",
        "Electric substation",
        SITE,
        (*FACILITY, Attribute("facility_type", "str")),
    ),
    AssetKind(
        "power_plant",
        "lifeline",
        "Power plant",
        SITE,
        (*FACILITY, Attribute("facility_type", "str")),
    ),
    AssetKind(
        "pump_station",
        "lifeline",
        "Pump station",
        SITE,
        (*FACILITY, Attribute("capacity_m3h", "float", "m3/h", "", 0, 1e7)),
    ),
    AssetKind(
        "valve",
        "lifeline",
        "Valve",
        POINT,
        (Attribute("network", "str", choices=("gas", "water", "heating")), DIAMETER),
    ),
    AssetKind(
        "junction",
        "lifeline",
        "Network junction (node)",
        POINT,
        (
            Attribute(
                "network",
                "str",
                None,
                "the network the node belongs to",
                choices=NETWORK_NODE_NETWORKS,
            ),
            Attribute("elevation_m", "float", "m", "node elevation (EPANET Elevation)", -500, 9000),
            Attribute(
                "base_demand_m3s",
                "float",
                "m3/s",
                "average demand drawn at the node (EPANET Base Demand, SI)",
                -1e3,
                1e3,
            ),
            Attribute("node_type", "str", None, "e.g. junction, tee, cross, reducer, end cap"),
        ),
        description="A node where pipes meet, as EPANET or a GIS export writes it (water, gas, "
        "heating or drainage). No indicator watches it: a sensor at a node binds to one of its "
        "pipes (see the README's Sensors). Not scored, not a customer.",
    ),
    AssetKind(
        "hydrant",
        "lifeline",
        "Fire hydrant",
        POINT,
        (
            INSTALL_YEAR,
            Attribute("flow_gpm", "float", "US gal/min", "rated flow", 0, 10000),
            Attribute("lifecycle_status", "str"),
        ),
        temporal="install_year",
    ),
    # -- production safety -----------------------------------------------------------------
    AssetKind(
        "chemical_plant",
        "production_safety",
        "Chemical plant / major hazard source",
        SITE,
        (
            *FACILITY,
            Attribute("chemicals", "str", None, "stored chemicals, ';'-separated"),
            Attribute("quantity_t", "float", "t", "largest stored quantity", 0, 1e7),
            Attribute("hazard_grade", "str", None, "major hazard source grade (GB 18218)"),
        ),
    ),
    AssetKind(
        "construction_site",
        "production_safety",
        "Construction site",
        SITE,
        (ADDRESS, Attribute("depth_m", "float", "m", "excavation depth", 0, 200)),
    ),
    # -- public safety ---------------------------------------------------------------------
    AssetKind(
        "crowded_place",
        "public_safety",
        "Crowded place (人员密集场所)",
        SITE,
        (*FACILITY, CAPACITY, Attribute("place_type", "str")),
    ),
    AssetKind(
        "subway_station",
        "public_safety",
        "Subway station",
        SITE,
        (*FACILITY, Attribute("line", "str")),
    ),
    # -- natural disaster ------------------------------------------------------------------
    AssetKind(
        "flood_zone",
        "natural_disaster",
        "Flood zone",
        POLYGON,
        (
            Attribute("return_period_yr", "int", "years", "flood return period", 1, 100000),
            Attribute("depth_m", "float", "m", "design flood depth", 0, 50),
            Attribute("flood_zone_code", "str"),
            Attribute("sfha", "bool", None, "special flood hazard area"),
            Attribute("bfe_navd88_m", "float", "m", "base flood elevation"),
            Attribute("zone_subtype", "str"),
        ),
    ),
    AssetKind(
        "landslide_zone",
        "natural_disaster",
        "Landslide zone",
        POLYGON,
        (Attribute("susceptibility", "str", choices=("low", "medium", "high", "very_high")),),
    ),
    AssetKind(
        "weather_station",
        "natural_disaster",
        "Weather station",
        POINT,
        (
            ADDRESS,
            Attribute("height_m", "float", "m", "anemometer height above ground", 0, 500),
        ),
        description="Wind and rain for the hazard models (ERG protective-action zones turn "
        "with the live wind).",
    ),
    AssetKind(
        "ponding_point",
        "natural_disaster",
        "Ponding (waterlogging) point",
        SITE,
        (Attribute("max_depth_cm", "float", "cm", "worst recorded ponding", 0, 1000),),
    ),
    # -- exposure --------------------------------------------------------------------------
    AssetKind(
        "school", "exposure", "School", SITE, (*FACILITY, CAPACITY, Attribute("school_type", "str"))
    ),
    AssetKind(
        "hospital",
        "exposure",
        "Hospital",
        SITE,
        (*FACILITY, Attribute("beds", "int", "beds", "", 0, 100000)),
    ),
    AssetKind("clinic", "exposure", "Clinic", SITE, FACILITY),
    AssetKind("daycare", "exposure", "Daycare", SITE, (*FACILITY, CAPACITY)),
    AssetKind("elderly_care", "exposure", "Elderly care", SITE, (*FACILITY, CAPACITY)),
    AssetKind("shelter", "exposure", "Emergency shelter", SITE, (*FACILITY, CAPACITY)),
    AssetKind("fire_station", "exposure", "Fire station", SITE, FACILITY),
    AssetKind("police_station", "exposure", "Police station", SITE, FACILITY),
    AssetKind(
        "building",
        "exposure",
        "Building",
        SITE,
        (
            ADDRESS,
            Attribute("building_use", "str", None, "residential, commercial, industrial, ..."),
            Attribute(
                "human_occupancy",
                "bool",
                None,
                "intended for human occupancy (49 CFR 192.903 counts only these; default true)",
            ),
            Attribute("floors", "int", "floors", "storeys above ground", 0, 300),
            Attribute("height_m", "float", "m", "height above ground", 0, 1000),
        ),
        "A building footprint or address point; inside a potential impact circle, 20 or more "
        "occupied buildings make a high consequence area (49 CFR 192.903).",
    ),
    AssetKind(
        "population_cell",
        "exposure",
        "Population cell / census block",
        POLYGON,
        (
            Attribute("population", "int", "persons", "resident population", 0, 10_000_000),
            Attribute("population_day", "int", "persons", "daytime population", 0, 10_000_000),
            Attribute("population_method", "str", None, "how the population was estimated"),
            Attribute("land_area_m2", "float", "m2", "", 0, 1e11),
            Attribute("geoid", "str"),
        ),
    ),
    AssetKind(
        "admin_area",
        "exposure",
        "Administrative area (district, neighbourhood)",
        POLYGON,
        (Attribute("admin_level", "str"), Attribute("admin_code", "str")),
    ),
)


#: Kinds that are nodes of a pipe network: they stand for the pipes that meet there, so no
#: indicator watches them, they are not scored, linked to hazard zones, nor served as customers.
NETWORK_NODES: tuple[str, ...] = ("junction",)


def get_kind(kind: str) -> AssetKind:
    """The kind named ``kind``; ``KeyError`` with the known kinds listed if there is none."""
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(
            f"unknown asset kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}"
        ) from None


def kinds_of_plate(plate: str) -> list[AssetKind]:
    return [k for k in KINDS.values() if k.plate == plate]
