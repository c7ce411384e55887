"""Tests for gis.crs: GCJ-02/BD-09 offsets, CRS parsing, reprojection to WGS84.

Reference pairs and where they come from (lon, lat in degrees):

- wandergis/coordtransform (MIT), README "result" block, the most copied JavaScript
  implementation (a = 6378245): wgs84togcj02, gcj02tobd09 and bd09togcj02 of (116.404, 39.915),
  and its one-step gcj02towgs84 of the same point.
- googollee/eviltransform (MIT), python/test.py ``TESTS``: WGS84/GCJ-02 pairs in Shanghai,
  Shenzhen and Beijing (its ``TESTS_bd`` pairs are 10-40 m off this and every other
  implementation, so they are not used).
- Tiananmen WGS84 (116.391248, 39.907501) and Hefei's city centre in GCJ-02
  (117.283042, 31.86119; the "center" of adcode 340100 in the DataV/Aliyun boundary files):
  converted with prcoords 1.0.2 (CC0, an independent Python implementation with its own
  iterative inverse, agreeing to 1e-8 degrees), not with this module.
"""

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyproj
import pytest
import shapely
from shapely import LineString, MultiLineString, Point, Polygon

from gis.crs import (
    CHINA_BBOX,
    CrsSpec,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    in_china_bbox,
    local_metric_crs,
    resolve_crs,
    to_wgs84,
    transform_geometries,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = pyproj.Geod(ellps="WGS84")
FloatArray = npt.NDArray[np.float64]

TIANANMEN_WGS84 = (116.391248, 39.907501)
TIANANMEN_GCJ02 = (116.397489154445, 39.908902251248)  # prcoords.wgs_gcj
TIANANMEN_BD09 = (116.403861957809, 39.915245514922)  # prcoords.wgs_bd

HEFEI_GCJ02 = (117.283042, 31.86119)
HEFEI_WGS84 = (117.277529761, 31.863192222)  # prcoords.gcj_wgs_bored
HEFEI_BD09 = (117.289601114, 31.866967647)  # prcoords.gcj_bd

# Three vertices of Yaohai district's boundary (adcode 340102), GCJ-02, and their WGS84
# counterparts from prcoords.gcj_wgs_bored.
YAOHAI_GCJ02 = [(117.300019, 31.862727), (117.299967, 31.868191), (117.29593, 31.871073)]
YAOHAI_WGS84 = [
    (117.294475461, 31.864708131),
    (117.294423057, 31.870173331),
    (117.290394005, 31.873061736),
]

OUTSIDE_CHINA = [(2.2945, 48.8584), (-74.0445, 40.6892), (151.2153, -33.8568), (72.0, 39.0)]

# WGS84 positions of city centres across China, for the size of the GCJ-02 offset.
CITIES_WGS84 = {
    "Beijing": (116.391248, 39.907501),
    "Shanghai": (121.4737, 31.2304),
    "Hefei": (117.2775, 31.8632),
    "Guangzhou": (113.2644, 23.1291),
    "Harbin": (126.535, 45.8038),
    "Urumqi": (87.6168, 43.8256),
    "Lhasa": (91.1172, 29.6469),
    "Kunming": (102.8329, 24.8801),
    "Sanya": (109.5119, 18.2528),
    "Kashgar": (75.99, 39.47),
}

# CGCS2000 ellipsoid (= GRS80 up to 1e-4 mm): semi-major axis in metres, flattening.
CGCS2000_A_M = 6378137.0
CGCS2000_F = 1 / 298.257222101


def _china_grid() -> tuple[FloatArray, FloatArray]:
    """A 125 x 72 lon/lat grid over China, with lon = 105 (the sqrt kink) exactly on it."""
    lon, lat = np.meshgrid(np.linspace(73.5, 135.0, 124), np.linspace(18.0, 53.5, 72))
    lon = np.concatenate([lon, np.full((1, 124), 105.0)])
    lat = np.concatenate([lat, np.linspace(18.0, 53.5, 124)[np.newaxis, :]])
    return lon, lat


def _meridian_arc_m(lat_deg: float) -> float:
    """Meridian arc length from the equator on the CGCS2000 ellipsoid, by Simpson's rule.

    Independent of PROJ: on a Gauss-Krueger central meridian (scale 1, false northing 0) the
    northing is exactly this length.
    """
    e2 = CGCS2000_F * (2 - CGCS2000_F)
    phi = np.linspace(0.0, math.radians(lat_deg), 2001)
    radius = CGCS2000_A_M * (1 - e2) / (1 - e2 * np.sin(phi) ** 2) ** 1.5
    h = phi[1] - phi[0]
    return float(
        h / 3 * (radius[0] + 4 * radius[1:-1:2].sum() + 2 * radius[2:-1:2].sum() + radius[-1])
    )


def _xy(geom: shapely.Geometry) -> tuple[float, float]:
    assert isinstance(geom, Point)
    return geom.x, geom.y


# --- GCJ-02 -------------------------------------------------------------------------------------


def test_wgs84_to_gcj02_tiananmen() -> None:
    lon, lat = wgs84_to_gcj02(*TIANANMEN_WGS84)
    assert lon == pytest.approx(116.397489, abs=1e-5)
    assert lat == pytest.approx(39.908905, abs=1e-5)
    assert (lon, lat) == pytest.approx(TIANANMEN_GCJ02, abs=1e-9)


@pytest.mark.parametrize(
    ("wgs84", "gcj02"),
    [
        # coordtransform README
        ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
        # eviltransform python/test.py TESTS (stored there as lat, lon)
        ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
        ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
        ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
    ],
    ids=["coordtransform", "eviltransform-shanghai", "eviltransform-shenzhen", "eviltransform-bj"],
)
def test_gcj02_published_pairs(wgs84: tuple[float, float], gcj02: tuple[float, float]) -> None:
    assert wgs84_to_gcj02(*wgs84) == pytest.approx(gcj02, abs=1e-9)
    assert gcj02_to_wgs84(*gcj02) == pytest.approx(wgs84, abs=1e-8)


def test_gcj02_to_wgs84_hefei() -> None:
    assert gcj02_to_wgs84(*HEFEI_GCJ02) == pytest.approx(HEFEI_WGS84, abs=1e-7)
    lon, lat = gcj02_to_wgs84(*np.array(YAOHAI_GCJ02).T)
    np.testing.assert_allclose(np.column_stack((lon, lat)), YAOHAI_WGS84, rtol=0, atol=1e-7)


def test_gcj02_to_wgs84_is_exact_not_one_step() -> None:
    # coordtransform's gcj02towgs84 is the one-step approximation: it misses on the way back.
    one_step = (116.39775550083061, 39.91359571849836)
    exact = gcj02_to_wgs84(116.404, 39.915)
    assert wgs84_to_gcj02(*exact) == pytest.approx((116.404, 39.915), abs=1e-10)
    miss = np.subtract(wgs84_to_gcj02(*one_step), (116.404, 39.915))
    assert np.abs(miss).max() > 1e-7
    _, _, dist_m = GEOD.inv(*exact, *one_step)
    assert 0.01 < dist_m < 5.0


def test_gcj02_round_trip_over_china() -> None:
    lon, lat = _china_grid()
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert back_lon.shape == lon.shape
    assert np.abs(back_lon - lon).max() < 1e-7
    assert np.abs(back_lat - lat).max() < 1e-7
    # and the other way round: every GCJ-02 point has a WGS84 preimage
    fwd_lon, fwd_lat = wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))
    assert np.abs(fwd_lon - lon).max() < 1e-7
    assert np.abs(fwd_lat - lat).max() < 1e-7


@pytest.mark.parametrize(("city", "lonlat"), CITIES_WGS84.items())
def test_gcj02_offset_is_hundreds_of_metres(city: str, lonlat: tuple[float, float]) -> None:
    gcj_lon, gcj_lat = wgs84_to_gcj02(*lonlat)
    _, _, dist_m = GEOD.inv(*lonlat, float(gcj_lon), float(gcj_lat))
    assert 100.0 < dist_m < 700.0, city


# --- BD-09 --------------------------------------------------------------------------------------


def test_gcj02_to_bd09_published_pair() -> None:
    # coordtransform README: gcj02tobd09(116.404, 39.915)
    assert gcj02_to_bd09(116.404, 39.915) == pytest.approx(
        (116.41036949371029, 39.92133699351021), abs=1e-9
    )


def test_bd09_to_gcj02_refines_closed_form() -> None:
    # coordtransform's bd09togcj02 is the closed form; ours starts there and iterates.
    closed_form = (116.39762729119315, 39.90865673957631)
    gcj = bd09_to_gcj02(116.404, 39.915)
    assert gcj == pytest.approx(closed_form, abs=1e-6)
    assert gcj02_to_bd09(*gcj) == pytest.approx((116.404, 39.915), abs=1e-10)


def test_bd09_tiananmen_and_hefei() -> None:
    assert wgs84_to_bd09(*TIANANMEN_WGS84) == pytest.approx(TIANANMEN_BD09, abs=1e-9)
    assert bd09_to_wgs84(*TIANANMEN_BD09) == pytest.approx(TIANANMEN_WGS84, abs=1e-8)
    assert gcj02_to_bd09(*HEFEI_GCJ02) == pytest.approx(HEFEI_BD09, abs=1e-8)
    assert bd09_to_wgs84(*HEFEI_BD09) == pytest.approx(HEFEI_WGS84, abs=1e-7)


def test_bd09_round_trip_over_china() -> None:
    lon, lat = _china_grid()
    back_lon, back_lat = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-7
    assert np.abs(back_lat - lat).max() < 1e-7
    gcj_lon, gcj_lat = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert np.abs(gcj_lon - lon).max() < 1e-7
    assert np.abs(gcj_lat - lat).max() < 1e-7


# --- shared behaviour ---------------------------------------------------------------------------

LonLatConversion = Callable[[npt.ArrayLike, npt.ArrayLike], tuple[FloatArray, FloatArray]]

ALL_CONVERSIONS: list[LonLatConversion] = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
    wgs84_to_bd09,
    bd09_to_wgs84,
]


@pytest.mark.parametrize("convert", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_outside_china_unchanged(convert: LonLatConversion) -> None:
    lon, lat = np.array([*OUTSIDE_CHINA, HEFEI_GCJ02]).T
    out_lon, out_lat = convert(lon, lat)
    np.testing.assert_array_equal(out_lon[:-1], lon[:-1])
    np.testing.assert_array_equal(out_lat[:-1], lat[:-1])
    assert abs(out_lon[-1] - lon[-1]) > 1e-3  # the Hefei point in the same call does move


@pytest.mark.parametrize("convert", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_scalars_nan_and_shapes(convert: LonLatConversion) -> None:
    lon, lat = convert(117.28, 31.86)
    assert lon.shape == ()
    assert lat.shape == ()
    nan_lon, nan_lat = convert([np.nan, 117.28], 31.86)  # broadcasts
    assert np.isnan(nan_lon[0])
    assert nan_lat[0] == 31.86
    assert nan_lon[1] == lon


def test_in_china_bbox_edges() -> None:
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    inside = in_china_bbox(
        [min_lon, max_lon, min_lon - 1e-9, 117.0, np.nan], [min_lat, max_lat, 30, 56, 30]
    )
    assert inside.tolist() == [True, True, False, False, False]


# --- resolve_crs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "offset", "epsg"),
    [
        ("EPSG:4490", None, 4490),
        ("4490", None, 4490),
        ("epsg:4547", None, 4547),
        (" EPSG:4548 ", None, 4548),
        ("CGCS2000", None, 4490),
        ("cgcs2000", None, 4490),
        ("WGS84", None, 4326),
        ("wgs-84", None, 4326),
        ("gcj02", "gcj02", 4326),
        ("GCJ-02", "gcj02", 4326),
        ("bd09", "bd09", 4326),
        ("BD-09", "bd09", 4326),
        ("urn:ogc:def:crs:EPSG::4527", None, 4527),
        ("+proj=utm +zone=50 +datum=WGS84 +units=m", None, 32650),
    ],
)
def test_resolve_crs_accepted(spec: str, offset: str | None, epsg: int) -> None:
    resolved = resolve_crs(spec)
    assert isinstance(resolved, CrsSpec)
    assert resolved.offset == offset
    assert resolved.crs.to_epsg() == epsg


def test_resolve_crs_is_frozen_and_hashable() -> None:
    assert resolve_crs("GCJ-02") == resolve_crs("gcj02")
    assert len({resolve_crs("4490"), resolve_crs("CGCS2000")}) == 1
    with pytest.raises(AttributeError):
        resolve_crs("4490").offset = "bd09"  # type: ignore[misc]


@pytest.mark.parametrize("spec", ["mars", "EPSG:999999", "", "GCJ-03"])
def test_resolve_crs_unknown(spec: str) -> None:
    with pytest.raises(ValueError, match="expected to be") as info:
        resolve_crs(spec)
    message = str(info.value)
    assert repr(spec) in message
    for accepted in ("EPSG:4490", "CGCS2000", "GCJ-02", "BD-09", "WGS84"):
        assert accepted in message


@pytest.mark.parametrize("spec", ["EPSG:4978", "EPSG:5773"])
def test_resolve_crs_rejects_non_horizontal(spec: str) -> None:
    with pytest.raises(ValueError, match="geographic or projected"):
        resolve_crs(spec)


# --- transform_geometries -----------------------------------------------------------------------


def test_transform_geometries_keeps_types_and_vertices() -> None:
    shell = [(117.25, 31.85), (117.31, 31.85), (117.31, 31.90), (117.25, 31.90), (117.25, 31.85)]
    hole = [(117.27, 31.87), (117.28, 31.87), (117.28, 31.88), (117.27, 31.87)]
    polygon = Polygon(shell, [hole])
    lines = MultiLineString([YAOHAI_GCJ02, [(117.2, 31.8, 12.0), (117.21, 31.81, 15.0)]])
    geoms = np.array([polygon, lines, None, Point(), LineString()], dtype=object)

    out = transform_geometries(geoms, "gcj02")

    assert out.shape == geoms.shape
    assert out.dtype == object
    assert shapely.get_type_id(out[:2]).tolist() == shapely.get_type_id(geoms[:2]).tolist()
    np.testing.assert_array_equal(
        shapely.get_num_coordinates(out), shapely.get_num_coordinates(geoms)
    )
    assert len(out[0].interiors) == 1
    assert out[2] is None
    assert out[3].is_empty
    assert out[4].is_empty
    assert not shapely.has_z(out[1])
    # each vertex moved exactly as the point conversion moves it
    expected = np.column_stack(gcj02_to_wgs84(*shapely.get_coordinates(geoms[:2]).T))
    np.testing.assert_allclose(shapely.get_coordinates(out[:2]), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(shapely.get_coordinates(out[1])[:3], YAOHAI_WGS84, rtol=0, atol=1e-7)


def test_transform_geometries_bd09_and_sequences() -> None:
    out = transform_geometries([Point(*TIANANMEN_BD09)], "bd09")
    assert _xy(out[0]) == pytest.approx(TIANANMEN_WGS84, abs=1e-8)
    assert transform_geometries([], "bd09").shape == (0,)


def test_transform_geometries_bad_input() -> None:
    with pytest.raises(ValueError, match="'wgs84'"):
        transform_geometries([Point(117.0, 31.0)], "wgs84")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single Point"):
        transform_geometries(Point(117.0, 31.0), "gcj02")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        transform_geometries([Point(117.0, 31.0), "POINT (1 2)"], "gcj02")  # type: ignore[list-item]


# --- to_wgs84 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "false_easting_m", "central_meridian", "lat"),
    [
        ("EPSG:4548", 500_000.0, 117.0, 31.86),  # CGCS2000 3-degree GK CM 117E (Hefei)
        ("EPSG:4527", 39_500_000.0, 117.0, 31.86),  # same, zone number 39 prefixed
        ("EPSG:4547", 500_000.0, 114.0, 30.58),  # CM 114E (Wuhan)
    ],
)
def test_to_wgs84_gauss_krueger_central_meridian(
    spec: str, false_easting_m: float, central_meridian: float, lat: float
) -> None:
    point = Point(false_easting_m, _meridian_arc_m(lat))
    out = to_wgs84([point], resolve_crs(spec))
    assert _xy(out[0]) == pytest.approx((central_meridian, lat), abs=1e-6)


def test_to_wgs84_gauss_krueger_hefei_off_meridian() -> None:
    crs = resolve_crs("EPSG:4548").crs
    to_gk = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    x_m, y_m = to_gk.transform(*HEFEI_WGS84)
    assert 520_000 < x_m < 530_000  # easting first
    assert 3_520_000 < y_m < 3_530_000
    polygon = Polygon([(x_m, y_m), (x_m + 1000, y_m), (x_m + 1000, y_m + 1000)])

    out = to_wgs84(np.array([Point(x_m, y_m), polygon]), resolve_crs("4548"))

    assert _xy(out[0]) == pytest.approx(HEFEI_WGS84, abs=1e-9)
    assert shapely.get_num_coordinates(out[1]) == 4
    # a 1 km square edge in GK (scale 1 on CM, ~1.00001 at 26 km) is ~1 km on the ellipsoid
    lon, lat = shapely.get_coordinates(out[1]).T
    _, _, edge_m = GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    assert edge_m == pytest.approx(1000.0, abs=0.1)


def test_to_wgs84_cgcs2000_geographic_is_identity() -> None:
    out = to_wgs84([Point(*HEFEI_WGS84)], resolve_crs("CGCS2000"))
    assert _xy(out[0]) == pytest.approx(HEFEI_WGS84, abs=1e-12)


def test_to_wgs84_offsets_and_wgs84() -> None:
    out = to_wgs84([Point(*HEFEI_GCJ02), None], resolve_crs("GCJ-02"))
    assert _xy(out[0]) == pytest.approx(HEFEI_WGS84, abs=1e-7)
    assert out[1] is None
    out = to_wgs84([Point(*HEFEI_BD09)], resolve_crs("BD-09"))
    assert _xy(out[0]) == pytest.approx(HEFEI_WGS84, abs=1e-7)
    same = to_wgs84([Point(*HEFEI_GCJ02)], resolve_crs("WGS84"))
    assert _xy(same[0]) == HEFEI_GCJ02


def test_to_wgs84_utm() -> None:
    crs = local_metric_crs(*HEFEI_WGS84)
    x_m, y_m = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(*HEFEI_WGS84)
    out = to_wgs84([Point(x_m, y_m)], CrsSpec(offset=None, crs=crs))
    assert _xy(out[0]) == pytest.approx(HEFEI_WGS84, abs=1e-9)


@pytest.mark.parametrize("point", [Point(1e30, 1e30), Point(math.inf, 3_500_000.0)])
def test_to_wgs84_untransformable_raises(point: Point) -> None:
    with pytest.raises(ValueError, match="CGCS2000"):
        to_wgs84([point], resolve_crs("EPSG:4548"))


# --- local_metric_crs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (117.27, 31.86, 32650),  # Hefei
        (116.39, 39.91, 32650),  # Beijing
        (121.47, 31.23, 32651),  # Shanghai
        (-43.2, -22.9, 32723),  # Rio de Janeiro
        (-80.48, 43.45, 32617),  # Kitchener
        (0.0, 0.0, 32631),  # the equator counts as north
        (-180.0, 10.0, 32601),
        (180.0, -10.0, 32760),
    ],
)
def test_local_metric_crs_zone(lon: float, lat: float, epsg: int) -> None:
    crs = local_metric_crs(lon, lat)
    assert crs.to_epsg() == epsg
    assert crs.axis_info[0].unit_name == "metre"


def test_local_metric_crs_measures_metres() -> None:
    lon0, lat0 = HEFEI_WGS84
    lon1, lat1, _ = GEOD.fwd(lon0, lat0, 60.0, 5000.0)
    to_utm = pyproj.Transformer.from_crs(4326, local_metric_crs(lon0, lat0), always_xy=True)
    x, y = to_utm.transform([lon0, lon1], [lat0, lat1])
    assert math.hypot(x[1] - x[0], y[1] - y[0]) == pytest.approx(5000.0, rel=1e-3)


@pytest.mark.parametrize(("lon", "lat"), [(181.0, 0.0), (0.0, -90.5), (math.nan, 30.0)])
def test_local_metric_crs_out_of_range(lon: float, lat: float) -> None:
    with pytest.raises(ValueError, match="expected to be in"):
        local_metric_crs(lon, lat)
