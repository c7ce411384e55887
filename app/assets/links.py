"""Coupling links between assets (Rinaldi et al. 2001 types): derived by rules, or imported.

**Derived.** Each rule is data: which kinds, which predicate, which distance in metres.
``rebuild`` replaces every derived link in one transaction with one ``INSERT … SELECT`` per rule.
Most rules are spatial couplings (a gas main within 10 m of a manhole); the *supply* rules are
default dependencies where a city has given none: each pump station, hospital or subway station
fed by its nearest substation (``nearest``), with the dependency's delay and buffer hours.
Distances are geodesic (``geography``), served by the GiST expression index on
``geom::geography``.

**Imported.** Dependencies that no geometry shows (substation 7 feeds pump station 3) come from
the user: :func:`import_links` reads a CSV or GeoJSON of external ids, type, ``delay_h`` and
``buffer_h`` (``cityrisk links import FILE``), all rows or none. Links made by hand (rule
``manual``) and imported ones (rule ``imported``) are never touched by ``rebuild``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Text

from app.db import copy_into, frame_rows, stage_table
from app.errors import InvalidInput
from app.taxonomy.assets import KINDS, LINK_TYPES, NETWORK_NODES

LinkType = Literal["physical", "cyber", "geographic", "logical"]
PIPES = ("gas_pipe", "water_pipe", "drainage_pipe", "heating_pipe")
# Whatever a hazard zone can hold, except other zones, the areal exposure layers and network
# nodes (a junction stands for its pipes, which are linked themselves).
ZONE_TARGETS = tuple(
    k.id
    for k in KINDS.values()
    if k.plate != "natural_disaster"
    and k.id not in ("population_cell", "admin_area")
    and k.id not in NETWORK_NODES
)


#: Rules whose links ``rebuild`` keeps: made by hand, or imported from a file.
KEPT_RULES = ("manual", "imported")


@dataclass(frozen=True)
class LinkRule:
    """Link every ``from_kinds`` asset to every ``to_kinds`` asset the predicate pairs.

    ``within_m`` set: geodesic distance <= within_m metres; unset: the geometries intersect.
    ``nearest``: only the nearest ``from_kinds`` asset (within ``within_m``) of each ``to_kinds``
    asset — a supply: ``to`` depends on ``from``, reached after ``delay_h`` and bridged for
    ``buffer_h`` hours.
    """

    id: str
    link_type: LinkType
    from_kinds: tuple[str, ...]
    to_kinds: tuple[str, ...]
    within_m: float | None
    why: str
    nearest: bool = False
    delay_h: float | None = None
    buffer_h: float | None = None


RULES: tuple[LinkRule, ...] = (
    LinkRule(
        "gas_pipe_near_manhole_10m",
        "geographic",
        ("gas_pipe",),
        ("manhole",),
        10.0,
        "leaking gas migrates into adjacent underground spaces (Hefei manhole CH4 monitoring)",
    ),
    LinkRule(
        "gas_pipe_near_drainage_5m",
        "geographic",
        ("gas_pipe",),
        ("drainage_pipe", "utility_tunnel"),
        5.0,
        "gas entering drains or culverts explodes along them (Kaohsiung 2014, Qingdao 2013)",
    ),
    LinkRule(
        "pipe_near_pipe_5m",
        "geographic",
        ("water_pipe", "heating_pipe"),
        ("gas_pipe", "drainage_pipe"),
        5.0,
        "a burst main scours the ground under neighbouring pipes (road collapse)",
    ),
    LinkRule(
        "bridge_carries_pipe",
        "physical",
        ("bridge",),
        PIPES,
        None,
        "pipes on a bridge fail with it; a pipe fire or burst damages the bridge",
    ),
    LinkRule(
        "flood_zone_contains",
        "geographic",
        ("flood_zone",),
        ZONE_TARGETS,
        None,
        "assets inside a floodplain are exposed to its flooding",
    ),
    LinkRule(
        "landslide_zone_contains",
        "geographic",
        ("landslide_zone",),
        ZONE_TARGETS,
        None,
        "assets inside a landslide zone are exposed to ground movement",
    ),
    # -- default supplies (derived): where a city has imported none. --------------------------
    LinkRule(
        "nearest_substation_feeds_pump_station",
        "physical",
        ("substation",),
        ("pump_station",),
        5_000.0,
        "a pump station runs on grid power; without a feed list, its nearest substation is taken",
        nearest=True,
        delay_h=0.0,
        buffer_h=0.0,
    ),
    LinkRule(
        "nearest_substation_feeds_hospital",
        "physical",
        ("substation",),
        ("hospital",),
        5_000.0,
        "a hospital runs on grid power and bridges an outage on its essential electrical system "
        "(NFPA 99/110); 24 h of generator fuel is a cautious default [check against the "
        "hospital's own plan]",
        nearest=True,
        delay_h=0.0,
        buffer_h=24.0,
    ),
    LinkRule(
        "nearest_substation_feeds_subway_station",
        "physical",
        ("substation",),
        ("subway_station",),
        5_000.0,
        "traction and station power come from the grid; the nearest substation is taken",
        nearest=True,
        delay_h=0.0,
        buffer_h=0.0,
    ),
)

_KINDS = ARRAY(Text)
_IDS = ARRAY(BigInteger)

_WITHIN_SQL = text(
    """
    INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, distance_m)
    SELECT a.id, b.id, :link_type, :rule, ST_Distance(a.geom::geography, b.geom::geography)
    FROM asset a
    JOIN asset b ON ST_DWithin(a.geom::geography, b.geom::geography, :within_m)
    WHERE a.kind = ANY(:from_kinds) AND b.kind = ANY(:to_kinds) AND a.id <> b.id
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("from_kinds", type_=_KINDS), bindparam("to_kinds", type_=_KINDS))

_INTERSECTS_SQL = text(
    """
    INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, distance_m)
    SELECT a.id, b.id, :link_type, :rule, 0
    FROM asset a
    JOIN asset b ON ST_Intersects(a.geom, b.geom)
    WHERE a.kind = ANY(:from_kinds) AND b.kind = ANY(:to_kinds) AND a.id <> b.id
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("from_kinds", type_=_KINDS), bindparam("to_kinds", type_=_KINDS))


_NEAREST_SQL = text(
    """
    INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, distance_m, delay_h,
                            buffer_h)
    SELECT n.id, b.id, :link_type, :rule, n.d, :delay_h, :buffer_h
    FROM asset b
    CROSS JOIN LATERAL (
        SELECT a.id, ST_Distance(a.geom::geography, b.geom::geography) AS d
        FROM asset a
        WHERE a.kind = ANY(:from_kinds) AND a.id <> b.id
        ORDER BY a.geom <-> b.geom
        LIMIT 1
    ) n
    WHERE b.kind = ANY(:to_kinds) AND n.d <= :within_m
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("from_kinds", type_=_KINDS), bindparam("to_kinds", type_=_KINDS))


def rebuild(session: Session, rules: tuple[LinkRule, ...] = RULES) -> dict[str, int]:
    """Replace all derived links by what ``rules`` give now; links made per rule id."""
    session.execute(
        text("DELETE FROM asset_link WHERE rule <> ALL(:kept)").bindparams(
            bindparam("kept", type_=_KINDS)
        ),
        {"kept": list(KEPT_RULES)},
    )
    made: dict[str, int] = {}
    for rule in rules:
        params = {
            "link_type": rule.link_type,
            "rule": rule.id,
            "from_kinds": list(rule.from_kinds),
            "to_kinds": list(rule.to_kinds),
        }
        if rule.nearest:
            hours = {"delay_h": rule.delay_h, "buffer_h": rule.buffer_h}
            result = session.execute(_NEAREST_SQL, {**params, **hours, "within_m": rule.within_m})
        elif rule.within_m is None:
            result = session.execute(_INTERSECTS_SQL, params)
        else:
            result = session.execute(_WITHIN_SQL, {**params, "within_m": rule.within_m})
        made[rule.id] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return made


# -- import ------------------------------------------------------------------------------------

#: Columns of a link file: the two ends by external id (and, where ids repeat across sources,
#: the source), the dependency's type and hours, and optional notes.
LINK_COLUMNS = (
    "from_external_id",
    "to_external_id",
    "from_source",
    "to_source",
    "link_type",
    "delay_h",
    "buffer_h",
    "redundancy_group",
    "probability",
    "note",
)


@dataclass(frozen=True)
class LinkRejection:
    row: int  # 1-based data row (CSV: header excluded; GeoJSON: feature number)
    reason: str


@dataclass
class LinkImportReport:
    """What an import did; ``committed`` is set by whoever owns the transaction."""

    file: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[LinkRejection] = field(default_factory=list)
    written: bool = False
    committed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_link_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InvalidInput(f"no such file: {path}")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            frame = pyogrio.read_dataframe(path, read_geometry=False, use_arrow=False)
    except (DataSourceError, DataLayerError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"cannot read {path.name}: {exc}. Link files are CSV or GeoJSON (properties only)"
        ) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("from_external_id", "to_external_id", "link_type") if c not in frame]
    if missing:
        raise InvalidInput(
            f"{path.name} lacks the column(s) {', '.join(missing)}; a link file has "
            f"{', '.join(LINK_COLUMNS)} (the first three required)"
        )
    unknown = sorted(set(frame.columns) - set(LINK_COLUMNS))
    if unknown:
        raise InvalidInput(
            f"{path.name} has unknown column(s) {', '.join(unknown)}; known: "
            f"{', '.join(LINK_COLUMNS)}"
        )
    return frame.reindex(columns=list(LINK_COLUMNS))


def _number(value: Any) -> float | None:
    """A cell as a number: None when empty (or a column the file does not have), NaN when it is
    not a number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


_LINK_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS link_stage (row int, from_external_id text, "
    "to_external_id text, from_source text, to_source text, link_type text, delay_h float8, "
    "buffer_h float8, attributes jsonb) ON COMMIT DROP"
)

# Each end resolved by external id (and source when given); more than one match is refused.
_RESOLVE_SQL = text(
    """
    SELECT s.row,
           (SELECT array_agg(a.id) FROM asset a WHERE a.external_id = s.from_external_id
              AND (s.from_source IS NULL OR a.source = s.from_source)) AS from_ids,
           (SELECT array_agg(a.id) FROM asset a WHERE a.external_id = s.to_external_id
              AND (s.to_source IS NULL OR a.source = s.to_source)) AS to_ids
    FROM link_stage s ORDER BY s.row
    """
)

_UPSERT_SQL = text(
    """
    WITH v AS (
        SELECT * FROM unnest(:rows, :froms, :tos) AS v(row, from_id, to_id)
    ), up AS (
        INSERT INTO asset_link (from_asset_id, to_asset_id, link_type, rule, delay_h, buffer_h,
                                attributes)
        SELECT v.from_id, v.to_id, s.link_type, 'imported', s.delay_h, s.buffer_h, s.attributes
        FROM v JOIN link_stage s ON s.row = v.row
        ON CONFLICT (from_asset_id, to_asset_id, link_type, rule) DO UPDATE
        SET delay_h = EXCLUDED.delay_h, buffer_h = EXCLUDED.buffer_h,
            attributes = EXCLUDED.attributes
        WHERE (asset_link.delay_h, asset_link.buffer_h, asset_link.attributes)
              IS DISTINCT FROM (EXCLUDED.delay_h, EXCLUDED.buffer_h, EXCLUDED.attributes)
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) AS inserted,
           count(*) FILTER (WHERE NOT inserted) AS updated
    FROM up
    """
).bindparams(
    bindparam("rows", type_=_IDS),
    bindparam("froms", type_=_IDS),
    bindparam("tos", type_=_IDS),
)


def import_links(session: Session, path: Path, *, partial: bool = False) -> LinkImportReport:
    """Import dependencies from ``path`` (CSV, or GeoJSON properties) as rule ``imported``.

    All rows or none: one rejected row means nothing is written, unless ``partial``. A row is
    rejected when an end matches no asset or several (give ``from_source`` / ``to_source``), its
    ends are the same asset, ``link_type`` is not one of Rinaldi's four, an hour value is
    negative or not a number, or ``probability`` is outside (0, 1]. Importing the same file
    again changes nothing. Flushes; the caller commits.
    """
    frame = _read_link_file(path)
    report = LinkImportReport(file=path.name, rows_read=len(frame))
    if frame.empty:
        return report
    rows = np.arange(1, len(frame) + 1)
    reasons: dict[int, str] = {}

    def reject(mask: Any, reason: str) -> None:
        for r in rows[np.asarray(mask, dtype=bool)].tolist():
            reasons.setdefault(int(r), reason)

    text_cols = ("from_external_id", "to_external_id", "from_source", "to_source", "link_type")
    for col in (*text_cols, "redundancy_group", "note"):
        frame[col] = frame[col].map(lambda v: None if pd.isna(v) else (str(v).strip() or None))
    reject(frame["from_external_id"].isna(), "from_external_id is empty")
    reject(frame["to_external_id"].isna(), "to_external_id is empty")
    reject(
        ~frame["link_type"].isin(LINK_TYPES),
        f"link_type must be one of {', '.join(LINK_TYPES)}",
    )
    hours: dict[str, list[float | None]] = {}
    for col in ("delay_h", "buffer_h"):
        values = [_number(v) for v in frame[col]]
        bad = [v is not None and not (math.isfinite(v) and v >= 0) for v in values]
        reject(bad, f"{col} must be a number of hours >= 0")
        hours[col] = [None if b else v for v, b in zip(values, bad, strict=True)]
    probability = [_number(v) for v in frame["probability"]]
    reject(
        [p is not None and not (math.isfinite(p) and 0 < p <= 1) for p in probability],
        "probability must lie in (0, 1]",
    )
    attributes = [
        {
            k: v
            for k, v in (("group", g), ("probability", p), ("note", n), ("source", path.name))
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        }
        for g, p, n in zip(frame["redundancy_group"], probability, frame["note"], strict=True)
    ]
    staged = pd.DataFrame(
        {
            "row": rows,
            **{c: frame[c] for c in text_cols},
            "delay_h": hours["delay_h"],
            "buffer_h": hours["buffer_h"],
            "attributes": [orjson.dumps(a).decode() for a in attributes],
        }
    )
    stage_table(session, _LINK_STAGE_DDL, "link_stage")
    copy_into(
        session,
        "COPY link_stage (row, from_external_id, to_external_id, from_source, to_source, "
        "link_type, delay_h, buffer_h, attributes) FROM STDIN",
        frame_rows(staged),
    )
    froms: dict[int, int] = {}
    tos: dict[int, int] = {}
    for found in session.execute(_RESOLVE_SQL).all():
        row = int(found.row)
        for ids, end, into in ((found.from_ids, "from", froms), (found.to_ids, "to", tos)):
            if not ids:
                reasons.setdefault(row, f"{end}_external_id matches no asset")
            elif len(ids) > 1:
                reasons.setdefault(
                    row, f"{end}_external_id matches {len(ids)} assets; give {end}_source"
                )
            else:
                into[row] = int(ids[0])
    for row in rows.tolist():
        if froms.get(row) is not None and froms.get(row) == tos.get(row):
            reasons.setdefault(row, "from and to are the same asset")
    report.rejected = [LinkRejection(r, why) for r, why in sorted(reasons.items())]
    if report.rejected and not partial:
        return report
    good = [r for r in rows.tolist() if r not in reasons]
    if good:
        counts = session.execute(
            _UPSERT_SQL,
            {"rows": good, "froms": [froms[r] for r in good], "tos": [tos[r] for r in good]},
        ).one()
        report.inserted, report.updated = int(counts.inserted), int(counts.updated)
    report.unchanged = len(good) - report.inserted - report.updated
    report.written = True
    session.flush()
    return report
