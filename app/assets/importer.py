"""Import assets from a GIS file: read → map fields → validate → reproject → clean → upsert.

One import is one transaction owned by the caller (CLI command or request). Rows are checked
column-wise with pandas and shapely; accepted rows go to PostgreSQL with one COPY into a
temporary table and one ``INSERT … ON CONFLICT (source, external_id) DO UPDATE … WHERE
changed``, so re-importing the same file changes nothing. Without ``partial`` a single rejected
row means nothing is written; the report lists every rejected row with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.assets.readers import read_layer
from app.db import copy_into, frame_rows, stage_table
from app.errors import InvalidInput
from app.settings import LimitSettings
from app.taxonomy.assets import PLATES, AssetKind, Attribute, get_kind
from gis.crs import CrsSpec, resolve_crs, to_wgs84
from gis.hygiene import (
    POINT_LINE_MAX_M,
    clean_geometries,
    finite_and_present,
    short_lines_to_midpoints,
)

CORE_COLUMNS = ("external_id", "name", "owner", "source")
COPY_CHUNK = 10_000
TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0"}

Progress = Callable[[str, int, int], None]


@dataclass
class ImportOptions:
    """What the user said about the file (CLI flags / form fields)."""

    kind: str
    layer: str | None = None
    plate: str | None = None
    crs: str | None = None
    id_field: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    partial: bool = False
    encoding: str | None = None  # of a CSV or a Shapefile's attributes, when not UTF-8
    # A point-only kind takes a line shorter than this [m] as its midpoint (an EPANET valve).
    max_point_line_m: float = POINT_LINE_MAX_M


@dataclass(frozen=True)
class Rejection:
    row: int  # 1-based feature number in the layer (CSV: data line number, header excluded)
    external_id: str | None
    reason: str


@dataclass
class ImportReport:
    """What happened to each row; ``committed`` is set by whoever owns the transaction."""

    file: str
    layer: str | None
    kind: str
    plate: str
    crs: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lines_as_points: int = 0  # short lines stored as their midpoints (a point-only kind)
    written: bool = False
    committed: bool = False

    @property
    def accepted(self) -> int:
        return self.rows_read - len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["accepted"] = self.accepted
        return out


def parse_field_map(pairs: list[str]) -> dict[str, str]:
    """``["NAME=name", "SITE=owner"]`` → ``{"NAME": "name", "SITE": "owner"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InvalidInput(f"--map takes FILE_FIELD=ASSET_FIELD, got {pair!r}")
        mapping[source.strip()] = target.strip()
    return mapping


def import_file(
    session: Session,
    path: Path,
    options: ImportOptions,
    *,
    progress: Progress | None = None,
    limits: LimitSettings | None = None,
) -> ImportReport:
    """Import ``path`` as assets of ``options.kind`` inside the session's transaction.

    Raises :class:`InvalidInput` when the file as a whole cannot be imported (unknown kind,
    unreadable file, no CRS, unknown field, over a limit of ``limits``: default
    :class:`~app.settings.LimitSettings`); per-row problems go into the report instead.
    """
    limits = limits or LimitSettings()
    kind = _kind(options.kind)
    plate = options.plate or kind.plate
    if plate not in PLATES:
        raise InvalidInput(f"unknown plate {plate!r}; plates: {', '.join(PLATES)}")
    read = read_layer(path, layer=options.layer, limits=limits, encoding=options.encoding)
    frame = _rename(read.frame, options.field_map)
    spec, crs_note = _crs(options.crs, read.file_crs, path.name)
    if frame.empty:
        # Refused here, not in the reader: an empty file still gets its CRS checked first.
        where = f" (layer {read.layer!r})" if read.layer else ""
        raise InvalidInput(f"{path.name}{where} holds no features: there is nothing to import")
    report = ImportReport(
        file=path.name, layer=read.layer, kind=kind.id, plate=plate, crs=_crs_label(spec, options)
    )
    report.rows_read = len(frame)
    if crs_note:
        report.notes.append(crs_note)
    _tick(progress, "read", len(frame), len(frame))

    reasons = np.full(len(frame), None, dtype=object)
    ids = _external_ids(frame, options.id_field, kind, reasons, report)
    attributes = _attributes(frame, kind, options.id_field, reasons)
    geoms = _geometries(
        frame, spec, kind, reasons, report, limits.vertices, options.max_point_line_m
    )
    _tick(progress, "validate", len(frame), len(frame))

    rows = np.arange(1, len(frame) + 1)
    bad = np.array([r is not None for r in reasons], dtype=bool)
    report.rejected = [
        Rejection(int(rows[i]), ids[i], str(reasons[i])) for i in np.flatnonzero(bad)
    ]
    if bad.all() and len(bad):
        report.notes.append("every row rejected: nothing written")
        return report
    if bad.any() and not options.partial:
        report.notes.append(
            f"{int(bad.sum())} row(s) rejected: nothing written "
            "(fix them, or pass --partial to write the good rows)"
        )
        return report
    good = ~bad
    staged = pd.DataFrame(
        {
            "source": _sources(frame, options.source, path)[good],
            "external_id": ids[good],
            "plate": plate,
            "kind": kind.id,
            "name": _text_column(frame, "name")[good],
            "owner": _text_column(frame, "owner")[good],
            "geom": shapely.to_wkb(geoms[good], hex=True, output_dimension=2, include_srid=False),
            "attributes": attributes[good],
        }
    )
    inserted, updated = _upsert(session, staged, progress)
    report.inserted, report.updated = inserted, updated
    report.unchanged = len(staged) - inserted - updated
    report.written = True
    return report


# -- steps ------------------------------------------------------------------------------------
def _kind(name: str) -> AssetKind:
    try:
        return get_kind(name)
    except KeyError as exc:
        raise InvalidInput(str(exc.args[0])) from None


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _rename(frame: gpd.GeoDataFrame, field_map: dict[str, str]) -> gpd.GeoDataFrame:
    missing = [f for f in field_map if f not in frame.columns]
    if missing:
        raise InvalidInput(
            f"--map names field(s) {', '.join(missing)} that the file does not have; "
            f"its fields: {', '.join(c for c in frame.columns if c != frame.geometry.name)}"
        )
    return frame.rename(columns=field_map)


def _crs(given: str | None, file_crs: str | None, name: str) -> tuple[CrsSpec, str | None]:
    """The CRS to read coordinates in: ``--crs`` if given (it overrides the file), else the
    file's own; a file with neither is refused rather than assumed to be WGS84."""
    if given is not None:
        try:
            spec = resolve_crs(given)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        note = None
        if file_crs is not None and (spec.offset or not spec.crs.equals(resolve_crs(file_crs).crs)):
            note = f"--crs {given} overrides the CRS the file declares ({file_crs})"
        return spec, note
    if file_crs is None:
        raise InvalidInput(
            f"{name} declares no CRS; say which with --crs (e.g. EPSG:4326, EPSG:4490, gcj02, bd09)"
        )
    return resolve_crs(file_crs), None


def _crs_label(spec: CrsSpec, options: ImportOptions) -> str:
    if spec.offset:
        return spec.offset
    epsg = spec.crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (options.crs or spec.crs.name)


def _external_ids(
    frame: gpd.GeoDataFrame,
    id_field: str | None,
    kind: AssetKind,
    reasons: np.ndarray,
    report: ImportReport,
) -> np.ndarray:
    if id_field is not None and id_field not in frame.columns:
        raise InvalidInput(
            f"--id-field {id_field!r} is not a field of the file; its fields: "
            f"{', '.join(c for c in frame.columns if c != frame.geometry.name)}"
        )
    column = id_field or ("external_id" if "external_id" in frame.columns else None)
    if column is None:
        report.notes.append(
            "no id field: external ids are derived from each feature's geometry and attributes, "
            "so an edited feature becomes a new asset on re-import (pass --id-field to avoid it)"
        )
        ids = _content_ids(frame, kind)
    else:
        ids = _text_column(frame, column)
    missing = pd.isna(ids)
    _reject(reasons, missing, f"no value in id field {column!r}")
    series = pd.Series(ids)
    duplicated = series.duplicated(keep="first").to_numpy() & ~missing
    if duplicated.any():
        firsts = series[~missing].drop_duplicates(keep="first")
        first_row = dict(zip(firsts.to_numpy(), firsts.index + 1, strict=True))
        for i in np.flatnonzero(duplicated):
            if reasons[i] is None:
                reasons[i] = f"duplicate external_id {ids[i]!r} (first at row {first_row[ids[i]]})"
    return ids


def _content_ids(frame: gpd.GeoDataFrame, kind: AssetKind) -> np.ndarray:
    wkb = shapely.to_wkb(frame.geometry.to_numpy(), hex=True)
    # JSON per row: stable across runs and safe with nulls and mixed types.
    table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    props = (
        table.to_json(orient="records", lines=True, date_format="iso").splitlines()
        if len(table.columns)
        else [""] * len(frame)
    )
    return np.array(
        [
            f"{kind.id}-" + hashlib.sha256(f"{g}|{p}".encode()).hexdigest()[:16]
            for g, p in zip(wkb, props, strict=True)
        ],
        dtype=object,
    )


def _text_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as strings with None for missing values (``1.0`` ids become ``"1"``)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    values = frame[column]
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    strings = values.astype("string").str.strip()
    strings = strings.mask(strings == "")
    return strings.astype(object).where(strings.notna(), None).to_numpy(dtype=object)


def _sources(frame: pd.DataFrame, given: str | None, path: Path) -> np.ndarray:
    if given is not None:
        return np.full(len(frame), given, dtype=object)
    column = _text_column(frame, "source")
    return np.where(pd.isna(column), path.stem, column).astype(object)


def _reject(reasons: np.ndarray, mask: np.ndarray, reason: str) -> None:
    """Record ``reason`` for rows in ``mask`` that have no earlier reason."""
    target = np.asarray(mask, dtype=bool) & np.array([r is None for r in reasons], dtype=bool)
    reasons[target] = reason


def _attributes(
    frame: gpd.GeoDataFrame, kind: AssetKind, id_field: str | None, reasons: np.ndarray
) -> np.ndarray:
    """One JSON object per row: the kind's attributes checked and typed, others kept as is."""
    skip = {frame.geometry.name, *CORE_COLUMNS, *([id_field] if id_field else [])}
    columns: dict[str, pd.Series] = {}
    for name in frame.columns:
        if name in skip:
            continue
        spec = kind.attribute_index.get(name)
        series = frame[name]
        columns[name] = _typed(series, spec, reasons) if spec else _plain(series)
    if not columns:
        return np.full(len(frame), "{}", dtype=object)
    table = pd.DataFrame(columns, index=frame.index)
    lines = table.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return np.array(lines.splitlines(), dtype=object)


def _plain(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        iso: pd.Series = series.dt.strftime("%Y-%m-%dT%H:%M:%S")
        return iso.where(series.notna(), None)
    return series


def _typed(series: pd.Series, spec: Attribute, reasons: np.ndarray) -> pd.Series:
    """``series`` converted to the attribute's type; rows that do not fit get a reason."""
    present = series.notna().to_numpy() & (series.astype(str).str.strip() != "").to_numpy()
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.type in ("int", "float"):
        numbers = pd.to_numeric(series, errors="coerce")
        not_number = present & numbers.isna().to_numpy()
        _reject_each(reasons, not_number, series, lambda v: f"{spec.name}={v!r} is not a number")
        if spec.type == "int":
            fractional = present & ~not_number & (numbers.fillna(0) % 1 != 0).to_numpy()
            _reject_each(reasons, fractional, numbers, lambda v: f"{spec.name}={v:g} is not whole")
        low = spec.minimum if spec.minimum is not None else -np.inf
        high = spec.maximum if spec.maximum is not None else np.inf
        out_of_range = present & ~not_number & ~numbers.between(low, high).to_numpy()
        allowed = _bounds_text(spec.minimum, spec.maximum, unit)
        _reject_each(
            reasons,
            out_of_range,
            numbers,
            lambda v: f"{spec.name}={v:g}{unit} is outside {allowed}",
        )
        if spec.type == "int":
            return numbers.round().astype("Int64")
        return numbers
    if spec.type == "bool":
        words = series.astype(str).str.strip().str.lower()
        truth = words.isin(TRUE_WORDS)
        falsity = words.isin(FALSE_WORDS)
        if pd.api.types.is_bool_dtype(series):
            return series
        unknown = present & ~(truth | falsity).to_numpy()
        _reject_each(reasons, unknown, series, lambda v: f"{spec.name}={v!r} is not true/false")
        return truth.where(present, None)
    if spec.type == "date":
        dates = pd.to_datetime(series, errors="coerce", utc=False)
        bad = present & dates.isna().to_numpy()
        _reject_each(reasons, bad, series, lambda v: f"{spec.name}={v!r} is not a date")
        return dates.dt.strftime("%Y-%m-%d").where(dates.notna(), None)
    strings = series.astype(object).where(series.notna(), None)
    if spec.choices is not None:
        normal = series.astype(str).str.strip()
        outside = present & ~normal.isin(spec.choices).to_numpy()
        choices = ", ".join(spec.choices)
        _reject_each(
            reasons, outside, series, lambda v: f"{spec.name}={v!r} is not one of {choices}"
        )
        strings = normal.where(present, None)
    return strings


def _bounds_text(low: float | None, high: float | None, unit: str) -> str:
    if low is None and high is None:
        return "the allowed range"
    if low is not None and high is not None:
        return f"{low:g}–{high:g}{unit}"
    return f">= {low:g}{unit}" if low is not None else f"<= {high:g}{unit}"


def _reject_each(
    reasons: np.ndarray, mask: np.ndarray, series: pd.Series, reason: Callable[[Any], str]
) -> None:
    values = series.to_numpy(dtype=object)
    for i in np.flatnonzero(mask):
        if reasons[i] is None:
            reasons[i] = reason(values[i])


def _geometries(
    frame: gpd.GeoDataFrame,
    spec: CrsSpec,
    kind: AssetKind,
    reasons: np.ndarray,
    report: ImportReport,
    max_vertices: int,
    max_point_line_m: float = POINT_LINE_MAX_M,
) -> np.ndarray:
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    # Before any work on them (reprojection, make_valid) and before they reach the risk
    # refresh: a 20,000-vertex zig-zag main took the refresh 3 GB in 15 s.
    vertices = shapely.get_num_coordinates(geoms)
    for i in np.flatnonzero(vertices > max_vertices):
        if reasons[i] is None:
            reasons[i] = (
                f"{int(vertices[i]):,} vertices; the limit is {max_vertices:,} per geometry "
                "(CITYRISK_MAX_VERTICES)"
            )
        geoms[i] = None
    # Only finite, non-empty geometries are reprojected; the rest are rejected by hygiene.
    coords_ok = finite_and_present(geoms)
    if coords_ok.any() and (spec.offset or spec.crs.to_epsg() != 4326):
        try:
            geoms[coords_ok] = to_wgs84(geoms[coords_ok], spec)
        except ValueError as exc:
            raise InvalidInput(f"cannot reproject from {report.crs}: {exc}") from None
    if "point" in kind.geometries and "line" not in kind.geometries:
        geoms = _lines_as_points(geoms, kind, reasons, report, max_point_line_m)
    result = clean_geometries(geoms, kind.geometries)
    for i in np.flatnonzero(pd.notna(result.rejected)):
        if reasons[i] is None:
            reasons[i] = str(result.rejected[i])
    if result.had_z:
        report.notes.append("Z/M coordinates dropped: geometries are stored 2D")
    repaired = int(result.repaired.sum())
    if repaired:
        report.notes.append(f"{repaired} invalid geometry(ies) repaired with make_valid")
    return result.geometries


def _lines_as_points(
    geoms: np.ndarray,
    kind: AssetKind,
    reasons: np.ndarray,
    report: ImportReport,
    max_length_m: float,
) -> np.ndarray:
    """A point kind's short lines become their midpoints (counted, noted); longer ones are
    refused saying their length and the limit."""
    if not max_length_m > 0:
        raise InvalidInput(f"max_point_line_m was {max_length_m!r} but must be > 0 (metres)")
    mid = short_lines_to_midpoints(geoms, max_length_m)
    for i in np.flatnonzero(~np.isnan(mid.too_long_m)):
        if reasons[i] is None:
            reasons[i] = (
                f"{geoms[i].geom_type} of {mid.too_long_m[i]:.1f} m, but {kind.id} takes "
                f"{' or '.join(sorted(kind.geometries))} geometries (a line shorter than "
                f"{max_length_m:g} m is taken as its midpoint; see max_point_line_m)"
            )
    report.lines_as_points = int(mid.converted.sum())
    if report.lines_as_points:
        report.notes.append(
            f"{report.lines_as_points} line(s) shorter than {max_length_m:g} m stored as their "
            f"midpoints: {kind.id} is a point kind (e.g. an EPANET valve link)"
        )
    return mid.geometries


# -- write ------------------------------------------------------------------------------------
STAGE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS asset_import_stage (
    source text, external_id text, plate text, kind text, name text, owner text,
    geom text, attributes text
) ON COMMIT DROP
"""

UPSERT_SQL = """
WITH upserted AS (
    INSERT INTO asset AS a (source, external_id, plate, kind, name, owner, geom, attributes)
    SELECT source, external_id, plate, kind, name, owner,
           ST_SetSRID(ST_GeomFromWKB(decode(geom, 'hex')), 4326),
           jsonb_strip_nulls(attributes::jsonb)
    FROM asset_import_stage
    ON CONFLICT (source, external_id) DO UPDATE SET
        plate = EXCLUDED.plate, kind = EXCLUDED.kind, name = EXCLUDED.name,
        owner = EXCLUDED.owner, geom = EXCLUDED.geom, attributes = EXCLUDED.attributes,
        updated_at = now()
    WHERE (a.plate, a.kind, a.name, a.owner, a.attributes, ST_AsEWKB(a.geom))
          IS DISTINCT FROM
          (EXCLUDED.plate, EXCLUDED.kind, EXCLUDED.name, EXCLUDED.owner, EXCLUDED.attributes,
           ST_AsEWKB(EXCLUDED.geom))
    RETURNING (xmax = 0) AS is_insert
)
SELECT count(*) FILTER (WHERE is_insert), count(*) FILTER (WHERE NOT is_insert) FROM upserted
"""


def _upsert(session: Session, staged: pd.DataFrame, progress: Progress | None) -> tuple[int, int]:
    """COPY the rows into a temporary table, then one set-based upsert; (inserted, updated)."""
    stage_table(session, STAGE_SQL, "asset_import_stage")
    total = len(staged)
    copy_into(
        session,
        "COPY asset_import_stage FROM STDIN",
        frame_rows(staged),
        every=COPY_CHUNK,
        on_progress=lambda done: _tick(progress, "write", done, total),
    )
    _tick(progress, "write", total, total)
    inserted, updated = session.execute(text(UPSERT_SQL)).one()
    return int(inserted), int(updated)
