"""Read the GIS files cities actually have into a GeoDataFrame, through pyogrio.

GeoJSON, GeoPackage (one layer, chosen with ``layer``), zipped Shapefile, and CSV with a WKT
column or lon/lat columns. The file's own CRS is reported as found; choosing what to do with
it (honour it, override it with ``--crs``, refuse a file without one) is the importer's job.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from shapely.errors import GEOSException

from app.errors import InvalidInput

WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "shape")
LON_COLUMNS = ("lon", "lng", "longitude", "long", "x")
LAT_COLUMNS = ("lat", "latitude", "y")
FORMATS = "GeoJSON (.geojson/.json), GeoPackage (.gpkg), zipped Shapefile (.zip), CSV (.csv)"


@dataclass(frozen=True)
class ReadResult:
    """The rows of one layer, with the CRS the file declares (None if it declares none)."""

    frame: gpd.GeoDataFrame
    file_crs: str | None
    layer: str | None
    driver: str


def read_layer(path: Path, *, layer: str | None = None) -> ReadResult:
    """Read one layer of ``path``; raise :class:`InvalidInput` saying what is wrong."""
    if not path.exists():
        raise InvalidInput(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    target = _vsi_path(path) if suffix == ".zip" else str(path)
    layer = _choose_layer(target, path.name, layer)
    try:
        with warnings.catch_warnings():
            # Mixed-type GeoJSON properties stay strings; the importer types them per kind.
            warnings.filterwarnings("ignore", "Could not parse column", UserWarning)
            frame = pyogrio.read_dataframe(target, layer=layer, use_arrow=False)
        info = pyogrio.read_info(target, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}. Supported: {FORMATS}") from None
    except GEOSException as exc:
        # GDAL hands GEOS a ring as written; GEOS refuses the whole layer (an unclosed ring:
        # "Points of LinearRing do not form a closed linestring") rather than one row.
        raise InvalidInput(
            f"cannot read {path.name}: a geometry is malformed ({exc}); expected valid "
            "geometries, each polygon ring closed (its last position equal to its first)"
        ) from None
    crs = frame.crs.to_string() if frame.crs is not None else None
    return ReadResult(frame=frame, file_crs=crs, layer=layer, driver=str(info.get("driver")))


def _vsi_path(path: Path) -> str:
    """GDAL path of the one Shapefile inside a zip archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            shapefiles = [n for n in archive.namelist() if n.lower().endswith(".shp")]
    except zipfile.BadZipFile:
        raise InvalidInput(f"{path.name} is not a zip archive") from None
    if not shapefiles:
        raise InvalidInput(f"{path.name} holds no .shp file; a zipped Shapefile is expected")
    if len(shapefiles) > 1:
        raise InvalidInput(
            f"{path.name} holds {len(shapefiles)} Shapefiles ({', '.join(shapefiles)}); "
            "zip one per import"
        )
    return f"/vsizip/{path.resolve()}/{shapefiles[0]}"


def _choose_layer(target: str, name: str, layer: str | None) -> str | None:
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(target)]
    except DataSourceError:
        raise InvalidInput(f"cannot read {name}: not a recognised GIS file ({FORMATS})") from None
    if layer is not None:
        if layer not in layers:
            raise InvalidInput(f"{name} has no layer {layer!r}; its layers: {', '.join(layers)}")
        return layer
    if len(layers) > 1:
        raise InvalidInput(
            f"{name} has {len(layers)} layers; choose one with --layer: {', '.join(layers)}"
        )
    return layers[0] if layers else None


def _read_csv(path: Path) -> ReadResult:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"cannot read {path.name} as CSV: {exc}") from None
    lower = {c.lower(): c for c in table.columns}
    wkt_col = next((lower[c] for c in WKT_COLUMNS if c in lower), None)
    lon_col = next((lower[c] for c in LON_COLUMNS if c in lower), None)
    lat_col = next((lower[c] for c in LAT_COLUMNS if c in lower), None)
    if wkt_col is not None:
        geoms = _parse_wkt(table[wkt_col])
        table = table.drop(columns=[wkt_col])
    elif lon_col is not None and lat_col is not None:
        lon = pd.to_numeric(table[lon_col], errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(table[lat_col], errors="coerce").to_numpy(dtype=float)
        geoms = np.asarray(shapely.points(lon, lat), dtype=object)
        # A point with a NaN coordinate is kept, so the hygiene step can report the row.
        table = table.drop(columns=[lon_col, lat_col])
    else:
        raise InvalidInput(
            f"{path.name}: CSV needs a WKT column ({', '.join(WKT_COLUMNS)}) or lon/lat "
            f"columns ({'/'.join(LON_COLUMNS)} and {'/'.join(LAT_COLUMNS)}); "
            f"found {', '.join(table.columns)}"
        )
    frame = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms, index=table.index), crs=None)
    return ReadResult(frame=frame, file_crs=None, layer=None, driver="CSV")


def _parse_wkt(values: pd.Series) -> np.ndarray:
    """WKT strings to geometries; unparseable text becomes None (reported later per row)."""
    texts = values.where(values.notna(), None).to_numpy(dtype=object)
    return np.asarray(shapely.from_wkt(texts, on_invalid="ignore"), dtype=object)
