"""ERG isolation and protective action zones (gis.erg): lookups, ERG 2016 Table 1 / Table 3 /
Guide 115 values, and the downwind square on the map."""

from __future__ import annotations

import json
import math

import pytest
import shapely

from gis import erg
from gis.erg import (
    CONTAINERS,
    erg_distances,
    erg_material,
    erg_zones,
    known_chemicals,
    wind_class,
)
from gis.frames import LocalFrame

LON, LAT = 117.2272, 31.8206  # Hefei

# ERG 2016 Table 1 (UN, spill, isolate m, day km, night km).
TABLE_1 = [
    ("1017", "small", 60, 0.3, 1.1),  # chlorine
    ("1005", "small", 30, 0.1, 0.2),  # ammonia, anhydrous
    ("1053", "small", 30, 0.1, 0.4),  # hydrogen sulfide
    ("1053", "large", 400, 2.1, 5.4),
    ("1079", "small", 100, 0.7, 2.2),  # sulfur dioxide
    ("1050", "small", 30, 0.1, 0.3),  # hydrogen chloride, anhydrous
    ("1076", "small", 100, 0.6, 2.5),  # phosgene
    ("1076", "large", 500, 3.0, 9.0),
]


@pytest.mark.parametrize(("un", "spill", "isolate_m", "day_km", "night_km"), TABLE_1)
def test_table_1_values(
    un: str, spill: str, isolate_m: float, day_km: float, night_km: float
) -> None:
    day = erg_distances(un, spill, "day")
    night = erg_distances(un, spill, "night")
    assert day.table == night.table == "1"
    assert day.isolation_m == night.isolation_m == isolate_m
    assert day.protective_action_km == day_km
    assert night.protective_action_km == night_km
    assert day.edition == "ERG 2016"
    assert "ERG 2016" in day.source
    assert "Table 1" in day.source


@pytest.mark.parametrize(
    "name", ["chlorine", "CHLORINE", "UN1017", "un 1017", "1017", 1017, "Cl2", "氯气", "液氯"]
)
def test_lookup_by_name_synonym_or_un_number(name: str | int) -> None:
    assert erg_material(name).un_number == "1017"


def test_unknown_chemical_lists_what_is_known() -> None:
    with pytest.raises(ValueError, match=r"chemical was 'xenon'; expected a UN number") as e:
        erg_material("xenon")
    assert "Chlorine (UN1017)" in str(e.value)
    assert "Phosgene (UN1076)" in str(e.value)
    with pytest.raises(ValueError, match="chemical was 9999"):
        erg_material(9999)


def test_table_3_chlorine_rail_car() -> None:
    day = erg_distances("chlorine", "large", "day", container="rail_tank_car", wind="low")
    assert day.table == "3"
    assert (day.isolation_m, day.protective_action_km) == (1000, 9.9)
    assert not day.protective_action_at_least
    night = erg_distances("chlorine", "large", "night", container="rail_tank_car", wind="low")
    # The book's "11+ km": a lower bound, said so.
    assert night.protective_action_km == 11.0
    assert night.protective_action_at_least
    assert any("lower bound" in n for n in night.notes)
    high = erg_distances("chlorine", "large", "day", container="rail_tank_car", wind="high")
    assert high.protective_action_km == 5.1
    assert "Table 3" in high.source


def test_table_3_by_wind_speed() -> None:
    # 4 m/s = 14.4 km/h: moderate wind. Ammonia, highway tank truck: 150 m, 0.5 / 0.8 km.
    d = erg_distances("NH3", "large", "night", container="highway_tank_truck", wind_speed_m_s=4)
    assert (d.wind, d.isolation_m, d.protective_action_km) == ("moderate", 150, 0.8)
    assert wind_class(10 / 3.6 - 1e-9) == "low"
    assert wind_class(10 / 3.6) == "moderate"
    assert wind_class(20 / 3.6) == "moderate"
    assert wind_class(20 / 3.6 + 1e-9) == "high"
    with pytest.raises(ValueError, match="wind_speed_m_s was -1"):
        wind_class(-1)


def test_table_3_unknown_container_or_wind_takes_the_worst_and_says_so() -> None:
    d = erg_distances("sulfur dioxide", "large", "night")
    assert (d.container, d.isolation_m, d.protective_action_km) == ("rail_tank_car", 1000, 11.0)
    assert any("container not given" in n for n in d.notes)
    assert any("wind speed not given" in n for n in d.notes)
    truck = erg_distances("SO2", "large", "day", container="highway_tank_truck")
    assert (truck.wind, truck.protective_action_km) == ("low", 11.0)
    with pytest.raises(ValueError, match=r"container was 'barrel'; expected one of \['rail"):
        erg_distances("chlorine", "large", container="barrel")
    # Ammonia has nurse tanks but no ton cylinders.
    assert "agricultural_nurse_tank" in erg_material("ammonia").table3_containers
    with pytest.raises(ValueError, match="container was 'single_ton_cylinder'"):
        erg_distances("ammonia", "large", container="single_ton_cylinder")


def test_small_spills_of_table_3_gases_stay_in_table_1() -> None:
    d = erg_distances("chlorine", "small", "day", container="rail_tank_car", wind="low")
    assert d.table == "1"
    assert d.container is None
    assert any("container and wind not used" in n for n in d.notes)


def test_guide_115_flammable_gases() -> None:
    for gas in ("natural gas", "UN1971", "propane", "LPG", "butane", "propylene", "hydrogen",
                "LNG", "天然气"):  # fmt: skip
        small = erg_distances(gas, "small", "night")
        assert small.guide == "115"
        assert small.table == "guide"
        assert small.isolation_m == 100
        assert small.protective_action_km is None
        assert small.fire_isolation_m == 1600
        large = erg_distances(gas, "large", "day")
        assert large.protective_action_km == 0.8
        assert "Guide 115" in large.source
    assert erg_distances("chlorine").fire_isolation_m == 800  # Guide 124


def test_bad_spill_period_wind() -> None:
    with pytest.raises(ValueError, match=r"spill was 'huge'; expected one of \['small', 'large'\]"):
        erg_distances("chlorine", "huge")
    with pytest.raises(ValueError, match="period was 'dusk'"):
        erg_distances("chlorine", "small", "dusk")
    with pytest.raises(ValueError, match="wind was 'gale'"):
        erg_distances("chlorine", "large", wind="gale")
    with pytest.raises(ValueError, match="expected one of them"):
        erg_distances("chlorine", "large", wind="low", wind_speed_m_s=1.0)


def _local(z: shapely.Polygon) -> shapely.Polygon:
    return LocalFrame(LON, LAT).geometry_to_local(z)


def test_wind_from_north_puts_the_square_south() -> None:
    z = erg_zones(LON, LAT, "chlorine", "small", "night", wind_dir_deg=0.0)
    assert z.downwind_bearing_deg == 180.0
    sq = _local(z.protective_action_zone)
    xmin, ymin, xmax, ymax = sq.bounds
    # Side 1.1 km, spill at the middle of the upwind (north) side.
    assert ymax == pytest.approx(0.0, abs=1e-6)
    assert ymin == pytest.approx(-1100.0, rel=1e-9)
    assert (xmin, xmax) == (pytest.approx(-550.0), pytest.approx(550.0))
    assert sq.area == pytest.approx(1100.0**2, rel=1e-9)
    assert z.protective_action_zone.centroid.y < LAT
    assert z.protective_action_zone.exterior.is_ccw


@pytest.mark.parametrize(("wind_from", "toward"), [(270.0, (1, 0)), (90.0, (-1, 0)),
                                                   (180.0, (0, 1)), (-45.0, (1, -1)),
                                                   (405.0, (-1, -1))])  # fmt: skip
def test_square_points_downwind(wind_from: float, toward: tuple[int, int]) -> None:
    z = erg_zones(LON, LAT, "phosgene", "large", "day", wind_dir_deg=wind_from)
    c = _local(z.protective_action_zone).centroid
    norm = math.hypot(*toward)
    # The centroid is half a side (1.5 km) downwind of the spill.
    assert c.x == pytest.approx(1500.0 * toward[0] / norm, abs=1e-6)
    assert c.y == pytest.approx(1500.0 * toward[1] / norm, abs=1e-6)
    assert z.wind_dir_deg == wind_from % 360


def test_isolation_circle_and_geojson() -> None:
    z = erg_zones(LON, LAT, "UN1005", "large", "day", wind_dir_deg=45.0,
                  container="rail_tank_car", wind="low")  # fmt: skip
    iso = _local(z.isolation_zone)
    assert iso.centroid.distance(shapely.Point(0, 0)) < 1e-6
    ring_r = [math.hypot(x, y) for x, y in iso.exterior.coords]
    assert min(ring_r) == pytest.approx(300.0, rel=1e-9)
    assert max(ring_r) == pytest.approx(300.0, rel=1e-9)
    # The spill is at the middle of the square's upwind side, on its boundary.
    assert _local(z.protective_action_zone).exterior.distance(shapely.Point(0, 0)) < 1e-6
    d = json.loads(json.dumps(z.to_dict()))
    assert d["edition"] == "ERG 2016"
    assert d["protective_action_zone"]["type"] == "Polygon"
    assert d["isolation_zone"]["type"] == "Polygon"


def test_no_square_without_a_downwind_distance() -> None:
    z = erg_zones(LON, LAT, "propane", "small", "day", wind_dir_deg=10.0)
    assert z.protective_action_zone is None
    assert z.to_dict()["protective_action_zone"] is None
    assert _local(z.isolation_zone).area == pytest.approx(math.pi * 100.0**2, rel=0.002)


def test_zones_refuse_bad_wind_and_points() -> None:
    with pytest.raises(ValueError, match="wind_dir_deg was nan"):
        erg_zones(LON, LAT, "chlorine", wind_dir_deg=math.nan)
    with pytest.raises(ValueError, match="is not a WGS84 lon/lat"):
        erg_zones(LAT, 117.2, "chlorine", wind_dir_deg=0.0)


def test_data_table_is_whole_and_read_once() -> None:
    assert erg._table() is erg._table()
    names = known_chemicals()
    assert len(names) == 14
    for un in ("1017", "1005", "1053", "1079", "1050", "1076", "1971", "1978"):
        mat = erg_material(un)
        assert mat.edition == "ERG 2016"
        for row in mat.rows:
            assert row.isolation_m > 0
            if row.day_km is not None and row.night_km is not None:
                # Night-time inversions carry a cloud at least as far as day-time mixing.
                assert row.night_km >= row.day_km
    # Every Table 3 material has all three wind classes for each of its containers.
    for un in ("1005", "1017", "1050", "1079", "2186"):
        mat = erg_material(un)
        for c in mat.table3_containers:
            assert c in CONTAINERS
            winds = sorted(r.wind for r in mat.rows if r.container == c)
            assert winds == ["high", "low", "moderate"]
