"""Read the GIS files cities actually have into a GeoDataFrame, through pyogrio.

GeoJSON, GeoPackage (one layer, chosen with ``layer``), zipped Shapefile, and CSV with a WKT
column or lon/lat columns. The file's own CRS is reported as found; choosing what to do with
it (honour it, override it with ``--crs``, refuse a file without one) is the importer's job.

A file is bounded before it is read (:class:`~app.settings.LimitSettings`): its bytes, a zip's
members and their unzipped size as its directory declares them, no archive inside the archive,
and the feature count from the layer's header (a Shapefile's, a GeoPackage's contents table);
where a format has no count up front (GeoJSON, CSV) reading stops one feature past the limit.
A 680 KB zip of 50 M points passed 8 GB RSS in 96 s before; it is now refused in milliseconds.
GDAL reads the zip in place (``/vsizip/``): nothing is extracted.
"""

from __future__ import annotations

import codecs
import warnings
import zipfile
import zlib
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
from app.settings import LimitSettings

WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "shape")
LON_COLUMNS = ("lon", "lng", "longitude", "long", "x")
LAT_COLUMNS = ("lat", "latitude", "y")
FORMATS = "GeoJSON (.geojson/.json), GeoPackage (.gpkg), zipped Shapefile (.zip), CSV (.csv)"
#: Members refused inside an import zip: GDAL's /vsizip/ would open an archive in an archive.
ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".kmz")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ")


@dataclass(frozen=True)
class ReadResult:
    """The rows of one layer, with the CRS the file declares (None if it declares none)."""

    frame: gpd.GeoDataFrame
    file_crs: str | None
    layer: str | None
    driver: str


def check_encoding(encoding: str | None) -> str | None:
    """``encoding`` as Python's codec name, None if not given; InvalidInput if unknown.

    >>> check_encoding("GBK"), check_encoding(None)
    ('gbk', None)
    """
    if encoding is None or not encoding.strip():
        return None
    try:
        return codecs.lookup(encoding.strip()).name
    except LookupError:
        raise InvalidInput(
            f"encoding {encoding[:40]!r} is unknown; expected a codec name such as utf-8, "
            "gb18030 (a superset of GBK and GB2312), big5 or shift_jis"
        ) from None


def read_layer(
    path: Path,
    *,
    layer: str | None = None,
    limits: LimitSettings | None = None,
    encoding: str | None = None,
) -> ReadResult:
    """Read one layer of ``path``; raise :class:`InvalidInput` saying what is wrong.

    ``limits`` (default: the defaults of :class:`~app.settings.LimitSettings`) bound the file's
    bytes and features, checked before the features are read. ``encoding`` names the text
    encoding of a CSV or a Shapefile's attributes when it is not UTF-8 (Chinese GIS exports are
    often GBK / GB18030; a Shapefile's ``.cpg`` is honoured without it).
    """
    limits = limits or LimitSettings()
    encoding = check_encoding(encoding)
    if not path.exists():
        raise InvalidInput(f"no such file: {path}")
    _check_size(path, limits)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, limits, encoding)
    target = _vsi_path(path, limits) if suffix == ".zip" else str(path)
    layer = _choose_layer(target, path.name, layer)
    most = limits.import_features
    try:
        info = pyogrio.read_info(target, layer=layer)
        _check_features(path.name, int(info.get("features", -1)), most)
        with warnings.catch_warnings():
            # Mixed-type GeoJSON properties stay strings; the importer types them per kind.
            warnings.filterwarnings("ignore", "Could not parse column", UserWarning)
            # One past the limit, so a format without a count up front is still bounded.
            frame = pyogrio.read_dataframe(
                target, layer=layer, use_arrow=False, max_features=most + 1, encoding=encoding
            )
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}. Supported: {FORMATS}") from None
    except GEOSException as exc:
        # GDAL hands GEOS a ring as written; GEOS refuses the whole layer (an unclosed ring:
        # "Points of LinearRing do not form a closed linestring") rather than one row.
        raise InvalidInput(
            f"cannot read {path.name}: a geometry is malformed ({exc}); expected valid "
            "geometries, each polygon ring closed (its last position equal to its first)"
        ) from None
    if len(frame) > most:
        _check_features(path.name, len(frame), most, exact=False)
    crs = frame.crs.to_string() if frame.crs is not None else None
    return ReadResult(frame=frame, file_crs=crs, layer=layer, driver=str(info.get("driver")))


def not_decodable(what: str, encoding: str | None, exc: UnicodeDecodeError) -> str:
    """The 422 message for text that is not in ``encoding`` (default UTF-8)."""
    given = encoding or "utf-8"
    hint = (
        "; if it came from a Chinese GIS or Excel export it is likely GBK: send encoding=gb18030"
        if encoding is None
        else ""
    )
    return (
        f"{what} is not valid {given} text (byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start:,}){hint}"
    )


def _check_size(path: Path, limits: LimitSettings) -> None:
    size = path.stat().st_size
    if size > limits.upload_bytes:
        raise InvalidInput(
            f"{path.name} is {size:,} bytes; the limit is {limits.upload_bytes:,} "
            "(CITYRISK_MAX_UPLOAD_BYTES)"
        )
    if path.suffix.lower() != ".zip" and size > limits.uncompressed_bytes:
        raise InvalidInput(
            f"{path.name} is {size:,} bytes; the limit is {limits.uncompressed_bytes:,} "
            "(CITYRISK_MAX_UNCOMPRESSED_BYTES)"
        )


def _check_features(name: str, count: int, most: int, *, exact: bool = True) -> None:
    if count > most:
        given = f"{count:,} features" if exact else f"more than {most:,} features"
        raise InvalidInput(
            f"{name} has {given}; the limit is {most:,} per import "
            "(CITYRISK_MAX_IMPORT_FEATURES): split the file"
        )


def _vsi_path(path: Path, limits: LimitSettings) -> str:
    """GDAL path of the one Shapefile inside a zip archive, once the archive's directory shows
    it is no bomb: few members, a bounded unzipped size, no archive inside."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_archive(path.name, archive, members, limits)
            shapefiles = [m.filename for m in members if m.filename.lower().endswith(".shp")]
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


def _check_archive(
    name: str, archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: LimitSettings
) -> None:
    """Refuse a zip bomb from the directory alone: wide (many members, or members that inflate
    past the limit) or deep (an archive inside). The sizes are the ones the directory declares;
    a member that lies about its size is still bounded by the feature limit (the layer's count,
    and reading stops one feature past it)."""
    if len(members) > limits.zip_members:
        raise InvalidInput(
            f"{name} has {len(members):,} members; the limit is {limits.zip_members:,} "
            "(CITYRISK_MAX_ZIP_MEMBERS): zip only the Shapefile's files"
        )
    unzipped = sum(m.file_size for m in members)
    if unzipped > limits.uncompressed_bytes:
        raise InvalidInput(
            f"{name} declares {unzipped:,} bytes unzipped; the limit is "
            f"{limits.uncompressed_bytes:,} (CITYRISK_MAX_UNCOMPRESSED_BYTES)"
        )
    for member in members:
        if member.is_dir():
            continue
        nested = member.filename.lower().endswith(ARCHIVE_SUFFIXES)
        if not nested and member.file_size >= 4:
            try:
                with archive.open(member) as stream:  # a few bytes inflated, never the member
                    nested = stream.read(8).startswith(ARCHIVE_MAGIC)
            except (RuntimeError, NotImplementedError, OSError, EOFError, zlib.error) as exc:
                # Encrypted (RuntimeError), an unsupported method such as Deflate64, or damaged.
                raise InvalidInput(
                    f"{name}: cannot read its member {member.filename!r} ({exc}); zip the "
                    "Shapefile's files without encryption, with Deflate or no compression"
                ) from None
        if nested:
            raise InvalidInput(
                f"{name} holds a nested archive {member.filename!r}; zip the Shapefile's "
                "files themselves, not an archive of them"
            )


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


def _read_csv(path: Path, limits: LimitSettings, encoding: str | None = None) -> ReadResult:
    most = limits.import_features
    try:
        table = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            nrows=most + 1,
            encoding=encoding or "utf-8",
        )
    except UnicodeDecodeError as exc:
        raise InvalidInput(not_decodable(path.name, encoding, exc)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"cannot read {path.name} as CSV: {exc}") from None
    if len(table) > most:
        _check_features(path.name, len(table), most, exact=False)
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
