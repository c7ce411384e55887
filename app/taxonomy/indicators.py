"""What sensors measure: indicator → unit, physical range, and the asset kinds it watches.

The physical range is what the quantity can possibly be (a reading outside it is a device or
transmission fault and is rejected), not an alarm threshold — thresholds are warning rules.
Units are written the way the README's wire format expects; common spellings are accepted as
aliases and normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.taxonomy.assets import KINDS, NETWORK_NODES

PIPES = ("gas_pipe", "water_pipe", "drainage_pipe", "heating_pipe")
# Network nodes (junctions) are not facilities: what is measured at a node is the pipes' (the
# warning rules and the impact engine key on the pipe), so no indicator lists them.
FACILITIES = tuple(
    k.id for k in KINDS.values() if "point" in k.geometries and k.id not in NETWORK_NODES
)


@dataclass(frozen=True)
class Indicator:
    id: str
    unit: str
    minimum: float
    maximum: float
    asset_kinds: tuple[str, ...]
    description: str
    unit_aliases: tuple[str, ...] = ()

    def accepts_unit(self, unit: str) -> bool:
        normal = unit.strip().lower().replace(" ", "")
        return normal in {self.unit.lower(), *(a.lower() for a in self.unit_aliases)}


def _catalogue(*items: Indicator) -> dict[str, Indicator]:
    return {i.id: i for i in items}


INDICATORS: dict[str, Indicator] = _catalogue(
    # Gas in adjacent underground spaces: methane LEL is 5 %vol, so 1 %vol = 20 %LEL.
    Indicator(
        "ch4_pct_vol",
        "%vol",
        0,
        100,
        ("manhole", "utility_tunnel", "gas_station"),
        "methane concentration",
        ("%", "vol%", "%v/v"),
    ),
    Indicator(
        "ch4_pct_lel",
        "%LEL",
        0,
        100,
        ("manhole", "utility_tunnel", "gas_station"),
        "methane as a share of its lower explosive limit",
        ("%lel", "lel%"),
    ),
    Indicator(
        "pressure_mpa",
        "MPa",
        -0.1,
        100,
        (*PIPES, "gas_station", "pump_station", "valve"),
        "pipe or station pressure (gauge)",
        ("mpa",),
    ),
    Indicator(
        "flow_m3h",
        "m3/h",
        -1e6,
        1e6,
        (*PIPES, "pump_station"),
        "volumetric flow",
        ("m³/h", "m3h", "m^3/h"),
    ),
    Indicator(
        "level_m",
        "m",
        -100,
        1000,
        ("drainage_pipe", "manhole", "pump_station", "flood_zone", "ponding_point"),
        "water level",
        (),
    ),
    Indicator(
        "ponding_cm",
        "cm",
        0,
        1000,
        ("ponding_point", "flood_zone", "subway_station"),
        "ponding (standing water) depth",
        (),
    ),
    Indicator(
        "rain_mm_h",
        "mm/h",
        0,
        500,
        ("flood_zone", "ponding_point", "admin_area", "weather_station"),
        "rain intensity",
        ("mm/hr",),
    ),
    Indicator(
        "strain_ue",
        "µε",
        -1e5,
        1e5,
        ("bridge", "utility_tunnel"),
        "strain",
        ("ue", "microstrain", "με", "µstrain"),
    ),
    Indicator("deflection_mm", "mm", -5000, 5000, ("bridge",), "deflection", ()),
    Indicator(
        "tilt_deg",
        "deg",
        -90,
        90,
        ("bridge", "construction_site", "landslide_zone"),
        "tilt",
        ("°", "degree", "degrees"),
    ),
    Indicator("acceleration_g", "g", -50, 50, ("bridge",), "acceleration", ()),
    Indicator("cable_force_kn", "kN", 0, 1e6, ("bridge",), "cable or hanger force", ("kn",)),
    Indicator("temperature_c", "°C", -60, 1500, FACILITIES, "temperature", ("c", "degc", "℃")),
    Indicator("humidity_pct", "%RH", 0, 100, FACILITIES, "relative humidity", ("%", "rh%")),
    Indicator(
        "h2s_ppm",
        "ppm",
        0,
        1e5,
        ("manhole", "utility_tunnel", "chemical_plant"),
        "hydrogen sulphide",
        (),
    ),
    Indicator(
        "co_ppm",
        "ppm",
        0,
        1e5,
        ("manhole", "utility_tunnel", "chemical_plant"),
        "carbon monoxide",
        (),
    ),
    # Toxic-gas detectors at plants that store the gas (fixed point detectors, ppm by volume).
    Indicator(
        "nh3_ppm",
        "ppm",
        0,
        1e5,
        ("chemical_plant", "utility_tunnel", "manhole"),
        "ammonia",
        (),
    ),
    Indicator(
        "cl2_ppm",
        "ppm",
        0,
        1e4,
        ("chemical_plant", "utility_tunnel", "manhole"),
        "chlorine",
        (),
    ),
    Indicator("o2_pct", "%vol", 0, 100, ("manhole", "utility_tunnel"), "oxygen", ("%",)),
    Indicator(
        "wind_speed_ms",
        "m/s",
        0,
        120,
        ("weather_station", "chemical_plant", "bridge", "admin_area"),
        "wind speed",
        ("mps",),
    ),
    Indicator(
        "wind_dir_deg",
        "deg",
        0,
        360,
        ("weather_station", "chemical_plant", "bridge", "admin_area"),
        "direction the wind blows from",
        ("°",),
    ),
    Indicator(
        "displacement_mm",
        "mm",
        -1e5,
        1e5,
        ("landslide_zone", "construction_site", "bridge", "utility_tunnel"),
        "displacement / settlement",
        (),
    ),
    Indicator(
        "people_count",
        "persons",
        0,
        1e6,
        ("crowded_place", "subway_station", "school"),
        "people present",
        ("people", "count"),
    ),
    Indicator(
        "smoke_alarm", "state", 0, 1, FACILITIES, "smoke detector (0 normal, 1 alarm)", ("bool",)
    ),
    Indicator("fire_alarm", "state", 0, 1, FACILITIES, "fire alarm (0 normal, 1 alarm)", ("bool",)),
    Indicator(
        "tank_level_pct",
        "%",
        0,
        100,
        ("chemical_plant", "gas_station"),
        "storage tank fill level",
        (),
    ),
    Indicator(
        "leak_noise_db", "dB", 0, 200, ("water_pipe", "valve", "hydrant"), "acoustic leak noise", ()
    ),
)


def get_indicator(indicator: str) -> Indicator | None:
    return INDICATORS.get(indicator)
