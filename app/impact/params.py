"""The impact scenarios as data: what each needs, its parameters with units, defaults, sources.

One table serves the request check (``POST /impact``: a 422 naming the field), the OGC API –
Processes descriptions (JSON Schema per input) and the explanation of a result (every input
with its value, unit and where it came from: the request, an asset attribute, a live reading,
or the model's cited default). Every threshold is a parameter, because each city sets its own
(InaSAFE's most asked-for feature).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.errors import InvalidInput
from gis import consequence as cq

ParamType = Literal["number", "string", "numbers", "integers"]
Target = Literal["asset", "point", "either"]


@dataclass(frozen=True)
class Param:
    """One input of a scenario.

    ``attribute``: the asset attribute it is read from when the request does not give it;
    ``default``: the value when neither does (``source`` says where it comes from).
    """

    name: str
    type: ParamType
    unit: str
    description: str
    default: Any = None
    source: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] | None = None
    attribute: str | None = None

    def schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12: a numeric ``exclusiveMinimum``) of the input.

        ``GET /impact/scenarios`` serves it as is; the OGC process descriptions rewrite it into
        OpenAPI 3.0's dialect (:func:`app.ogc.processes.oas30`).
        """
        number: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            number["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            number["maximum"] = self.maximum
        if self.type == "number":
            out = number
        elif self.type == "numbers":
            out = {"type": "array", "items": number, "minItems": 1, "maxItems": 12}
        elif self.type == "integers":
            out = {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 100}
        else:
            out = {"type": "string"}
            if self.choices:
                out["enum"] = list(self.choices)
        if self.default is not None:
            out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        return out

    def check(self, value: Any, *, where: str | None = None) -> Any:
        """``value`` converted to the parameter's type; :class:`InvalidInput` naming the field.

        ``where`` is the field's name in the message (default ``params.<name>``, as
        ``POST /impact`` takes it; OGC API – Processes names it ``inputs.<name>``).
        """
        where = where or f"params.{self.name}"
        if self.type == "string":
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{where} was {value!r}; expected a non-empty string")
            if self.choices and value not in self.choices:
                raise InvalidInput(
                    f"{where} was {value!r}; expected one of {', '.join(self.choices)}"
                )
            return value.strip()
        if self.type == "integers":
            if not isinstance(value, list | tuple) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
            ):
                raise InvalidInput(f"{where} was {value!r}; expected a list of asset ids (> 0)")
            return tuple(int(v) for v in value)
        if self.type == "numbers":
            if not isinstance(value, list | tuple) or not 1 <= len(value) <= 12:
                raise InvalidInput(f"{where} was {value!r}; expected a list of 1 to 12 numbers")
            return tuple(self._number(v, where) for v in value)
        return self._number(value, where)

    def _number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{where} was {value!r}; expected a number [{self.unit}]")
        number = float(value)
        low, high = self.minimum, self.maximum
        bad = not math.isfinite(number)
        bad |= low is not None and (number <= low if self.exclusive_minimum else number < low)
        bad |= high is not None and number > high
        if bad:
            lo = "" if low is None else f"{'>' if self.exclusive_minimum else '>='} {low:g}"
            hi = "" if high is None else f"<= {high:g}"
            bounds = " and ".join(b for b in (lo, hi) if b) or "finite"
            raise InvalidInput(f"{where} was {value!r}; expected a number {bounds} [{self.unit}]")
        return number


@dataclass(frozen=True)
class Scenario:
    """An impact scenario: what it is applied to, and its parameters."""

    id: str
    title: str
    description: str
    target: Target
    kinds: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    index: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {p.name: p for p in self.params})


# fmt: off
# Shared parameters ------------------------------------------------------------------------------
_DIAMETER = Param(
    "diameter_mm", "number", "mm", "pipe outside diameter", minimum=0, exclusive_minimum=True,
    maximum=5000, attribute="diameter_mm",
)
_PRESSURE = Param(
    "pressure_mpa", "number", "MPa", "maximum allowable operating pressure (gauge)",
    minimum=0, exclusive_minimum=True, maximum=20, attribute="pressure_mpa",
)
_FUEL = Param(
    "fuel", "string", "", "flammable gas (methane, propane, butane, hydrogen, ethylene, "
    "propylene)", default="methane", source="natural gas is mostly methane",
)
_THRESHOLDS_KPA = Param(
    "thresholds_kpa", "numbers", "kPa", "peak incident overpressures to draw",
    default=cq.DEFAULT_THRESHOLDS_KPA, minimum=0, exclusive_minimum=True,
    source="ALOHA levels of concern: 8 psi (destruction), 3.5 psi (serious injury), 1 psi "
    "(glass breaks)",
)
_THRESHOLDS_KW = Param(
    "thresholds_kw_m2", "numbers", "kW/m2", "heat fluxes to draw",
    default=cq.DEFAULT_THRESHOLDS_KW_M2, minimum=0, exclusive_minimum=True,
    source="ALOHA thermal levels of concern: 10 (lethal in 60 s), 5 (2nd-degree burns in 60 s), "
    "2 kW/m2 (pain in 60 s)",
)
_FAILED_VALVES = Param(
    "failed_valves", "integers", "", "valve asset ids that fail to close: the segment grows past "
    "them", default=(), source="operators' records of seized or buried valves",
)
STEPS = Param(
    "steps_h", "numbers", "h", "cascade time steps after T+0", default=(0.0, 1.0, 6.0, 24.0),
    minimum=0, maximum=24 * 30, source="commanders' horizon: T+0, +1 h, +6 h, +24 h",
)

#: What-if defaults no standard gives: the city must set them from its own records.
WHAT_IF = "cityrisk what-if default (no standard gives one; set from local records)"

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        Scenario(
            "gas_pipe_rupture",
            "Gas pipeline rupture",
            "Potential impact radius of a ruptured natural-gas main (ASME B31.8S §3.2), the "
            "high-consequence check, and what the main's failure cuts off.",
            "either",
            ("gas_pipe",),
            (_DIAMETER, _PRESSURE),
        ),
        Scenario(
            "gas_migration",
            "Gas migration into underground spaces",
            "Gas from a leak on a main into the drains, ducts and tunnels within a few metres, "
            "then along the connected underground network (Qingdao 2013, Kaohsiung 2014).",
            "either",
            ("gas_pipe", "manhole"),
            (
                Param(
                    "adjacent_m",
                    "number",
                    "m",
                    "straight-line distance from the leak to the underground network it enters",
                    default=5.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=100,
                    source="cityrisk default after the Hefei practice of monitoring wells beside "
                    "gas mains [check against the city's guideline]",
                ),
                Param(
                    "reach_m",
                    "number",
                    "m",
                    "network distance followed from the entries",
                    default=1000.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=20_000,
                    source="Kaohsiung 2014: the propylene spread some 3 km along culverts; "
                    "1 km is a first search radius",
                ),
            ),
        ),
        Scenario(
            "vapour_cloud_explosion",
            "Vapour-cloud explosion",
            "TNT equivalence and the Kingery–Bulmash surface burst: overpressure rings.",
            "either",
            (),
            (
                Param(
                    "mass_kg",
                    "number",
                    "kg",
                    "flammable mass in the cloud",
                    default=100.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=1e7,
                    source=WHAT_IF,
                ),
                _FUEL,
                Param(
                    "yield_fraction",
                    "number",
                    "",
                    "explosion yield η",
                    default=0.05,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=1,
                    source="5 % typical of accidental vapour clouds (ALOHA prototype notes)",
                ),
                Param(
                    "tnt_equivalent_kg",
                    "number",
                    "kg",
                    "TNT mass given directly (instead of mass_kg)",
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=1e7,
                ),
                _THRESHOLDS_KPA,
            ),
        ),
        Scenario(
            "jet_fire",
            "Jet fire",
            "A burning gas jet from a hole in a line: point-source thermal radiation rings.",
            "either",
            ("gas_pipe", "gas_station"),
            (
                Param(
                    "mass_rate_kg_s",
                    "number",
                    "kg/s",
                    "release rate (else from the hole and the line pressure)",
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=1e5,
                ),
                Param(
                    "hole_diameter_mm",
                    "number",
                    "mm",
                    "hole diameter (default: the pipe's, a full-bore rupture)",
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=5000,
                    attribute="diameter_mm",
                    source="full-bore rupture: the worst case ASME B31.8S §3.2 assumes",
                ),
                _PRESSURE,
                _FUEL,
                _THRESHOLDS_KW,
            ),
        ),
        Scenario(
            "pool_fire",
            "Pool fire",
            "A burning liquid pool: point-source thermal radiation rings.",
            "either",
            ("chemical_plant", "gas_station"),
            (
                Param(
                    "pool_area_m2",
                    "number",
                    "m2",
                    "burning area (spill or bund)",
                    default=100.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=1e6,
                    source=WHAT_IF,
                ),
                Param(
                    "fuel",
                    "string",
                    "",
                    "burning liquid (gasoline, diesel, …)",
                    default="gasoline",
                ),
                _THRESHOLDS_KW,
            ),
        ),
        Scenario(
            "toxic_release",
            "Toxic release",
            "ERG Table 1: the initial isolation circle and the downwind protective-action "
            "square, oriented by the latest wind reading near the site or by wind_dir_deg.",
            "either",
            ("chemical_plant",),
            (
                Param(
                    "chemical",
                    "string",
                    "",
                    "UN number, name or synonym (ERG)",
                    attribute="chemicals",
                ),
                Param(
                    "spill",
                    "string",
                    "",
                    "small (<= 208 L) or large",
                    default="large",
                    choices=("small", "large"),
                    source="a plant's stored quantity is a large spill (ERG: > 208 L)",
                ),
                Param(
                    "period",
                    "string",
                    "",
                    "day or night (default: from the data time, 06–18 local solar time is day)",
                    choices=("day", "night"),
                ),
                Param(
                    "wind_dir_deg",
                    "number",
                    "deg",
                    "direction the wind blows FROM, clockwise "
                    "from north (default: the latest wind_dir_deg reading near the site)",
                    minimum=0,
                    maximum=360,
                ),
                Param(
                    "wind_speed_ms",
                    "number",
                    "m/s",
                    "wind speed (default: the latest wind_speed_ms reading near the site)",
                    minimum=0,
                    maximum=120,
                ),
            ),
        ),
        Scenario(
            "water_main_burst",
            "Water-main burst",
            "The collapse and flooding zone around the break, the segment isolated by the "
            "nearest valves, and the customers and facilities cut off.",
            "asset",
            ("water_pipe",),
            (
                Param(
                    "collapse_radius_m",
                    "number",
                    "m",
                    "ground-collapse zone around the break",
                    default=10.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=500,
                    source=WHAT_IF,
                ),
                Param(
                    "flood_radius_m",
                    "number",
                    "m",
                    "surface-flooding zone around the break",
                    default=50.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=5000,
                    source=WHAT_IF,
                ),
                _FAILED_VALVES,
            ),
        ),
        Scenario(
            "flood",
            "Flood",
            "A flood zone (or a depth around a point): flooded underground spaces, "
            "substations, subway stations; JRC depth–damage for homes where the depth is known.",
            "either",
            ("flood_zone", "ponding_point"),
            (
                Param(
                    "depth_m",
                    "number",
                    "m",
                    "water depth",
                    minimum=0,
                    maximum=50,
                    attribute="depth_m",
                ),
                Param(
                    "radius_m",
                    "number",
                    "m",
                    "extent around a point (no flood polygon)",
                    default=200.0,
                    minimum=0,
                    exclusive_minimum=True,
                    maximum=20_000,
                    source=WHAT_IF,
                ),
                Param(
                    "fail_depth_m",
                    "number",
                    "m",
                    "depth at which flooded substations, pump stations and subway stations fail",
                    default=0.3,
                    minimum=0,
                    maximum=10,
                    source="Zhengzhou 2021 metro flooding; substations are commonly rated to "
                    "0.3 m of water [check the owners' ratings]",
                ),
                Param(
                    "region",
                    "string",
                    "",
                    "JRC depth–damage curve",
                    default="asia",
                    choices=("asia", "europe"),
                    source="JRC (Huizinga et al. 2017): the Asia curves for Chinese cities",
                ),
            ),
        ),
        Scenario(
            "asset_failure",
            "Asset out of service",
            "Any asset out of service (a substation, pump station, bridge…): the cascade alone.",
            "asset",
            (),
            (),
        ),
    )
}

# fmt: on


def get_scenario(scenario_id: str) -> Scenario:
    """The scenario ``scenario_id``; :class:`InvalidInput` listing the known ones."""
    try:
        return SCENARIOS[scenario_id]
    except KeyError:
        raise InvalidInput(
            f"scenario was {scenario_id!r}; expected one of {', '.join(SCENARIOS)}"
        ) from None


@dataclass(frozen=True)
class Value:
    """An input as used: its value, unit and origin (request, asset, reading, default)."""

    name: str
    value: Any
    unit: str
    origin: str

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"name": self.name, "value": value, "unit": self.unit, "origin": self.origin}


def resolve(
    scenario: Scenario, given: Mapping[str, Any], attributes: Mapping[str, Any]
) -> dict[str, Value]:
    """Every parameter's value and origin: the request first, then the asset, then the default.

    Unknown parameter names and bad values are a 422 naming the field. A parameter with no
    value at all is left out (the scenario decides whether it needs it).
    """
    unknown = sorted(set(given) - set(scenario.index) - {STEPS.name})
    if unknown:
        known = ", ".join([*scenario.index, STEPS.name]) or STEPS.name
        raise InvalidInput(
            f"params {', '.join(unknown)} are not parameters of {scenario.id}; known: {known}"
        )
    out: dict[str, Value] = {}
    for param in (*scenario.params, STEPS):
        if given.get(param.name) is not None:
            out[param.name] = Value(
                param.name, param.check(given[param.name]), param.unit, "request"
            )
            continue
        raw = attributes.get(param.attribute) if param.attribute else None
        if raw is not None and raw != "":
            try:
                value = param.check(raw)
            except InvalidInput:
                pass  # a bad attribute falls through to the default
            else:
                out[param.name] = Value(
                    param.name, value, param.unit, f"asset attribute {param.attribute}"
                )
                continue
        if param.default is not None:
            origin = f"default ({param.source})" if param.source else "default"
            out[param.name] = Value(param.name, param.default, param.unit, origin)
    return out
