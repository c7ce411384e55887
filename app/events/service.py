"""Suspected events: group the alarms a batch changed with their neighbours, localise, upsert.

:func:`update_for_alarms` runs after every evaluated batch, in the batch's transaction
(flushes, never commits). For the alarms that changed it

1. fetches, in one statement, the *pool*: those alarms and every other alarm not ended (not
   closed, false or test), with a point, of a process rule (not offline / flatline / spike),
   not already in a closed or dismissed event, whose onset (``opened_ts``, data time) is
   within ``window_s`` of one of theirs and whose point is within ``distance_m`` (GiST on
   ``alarm.geom``, then ``ST_DWithin`` on geography), plus the members of the open events any
   of them belong to (single linkage is incremental: an event only grows by its neighbours);
2. splits the pool by *family* — the network of the alarm's asset (``water``, ``gas``, …) and
   the indicator's family (pressure and flow are both ``hydraulic``) — and clusters each
   family with :func:`gis.events.cluster_alarms` in a local metric frame; on a network with
   pipes, two sensors on it are linked only if they are also within ``network_max_m`` along
   the pipes (:func:`gis.events.network_distance_matrix`);
3. localises each group of at least ``min_sensors`` sensors (:func:`gis.events.localise`):
   the network's pipes within ``distance_m`` of its sensors are ranked by how well they
   explain which sensors moved most (the relative move of each sensor's peak from its median
   in the ``baseline_s`` before the onset; the level when a sensor has no history), with the
   quiet sensors of the same indicators around as zeros, at network distances where sensors
   sit on the network; without a network, the alarms' own assets are the candidates;
4. upserts: a group holding members of open events updates the oldest of them (the others
   are ``merged`` into it), a new group becomes a new event, and the links follow — a few
   statements per batch, whatever the number of events. Re-running on unchanged alarms
   changes nothing (rows are compared before they are written).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Text

from app.errors import Conflict, InvalidInput, NotFound
from app.events.models import EVENT_STATES
from app.params import BBox, bbox_sql
from app.settings import EventSettings, get_settings
from app.taxonomy.alarms import ENDED_STATES
from gis import events as gev
from gis import network as gnet
from gis.frames import LocalFrame

#: Rule kinds about the instrument, not the process: they never make an event.
DEVICE_RULE_KINDS = ("offline", "flatline", "spike")
#: Indicators that one physical event moves together (a burst drops pressure and raises flow).
INDICATOR_FAMILY: dict[str, str] = {
    "pressure_mpa": "hydraulic",
    "flow_m3h": "hydraulic",
    "ch4_pct_vol": "methane",
    "ch4_pct_lel": "methane",
    "level_m": "water_level",
    "ponding_cm": "water_level",
    "strain_ue": "structural",
    "deflection_mm": "structural",
    "tilt_deg": "structural",
    "acceleration_g": "structural",
    "cable_force_kn": "structural",
    "displacement_mm": "structural",
}
#: The network an asset kind belongs to (a valve's ``network`` attribute wins); other kinds
#: are grouped by their plate.
KIND_NETWORK: dict[str, str] = {
    "water_pipe": "water",
    "hydrant": "water",
    "gas_pipe": "gas",
    "gas_station": "gas",
    "drainage_pipe": "drainage",
    "heating_pipe": "heating",
}
#: Pipe kinds of each network: the candidates of its events, and the paths of its distances.
NETWORK_PIPES: dict[str, tuple[str, ...]] = {
    "water": ("water_pipe",),
    "gas": ("gas_pipe",),
    "drainage": ("drainage_pipe",),
    "heating": ("heating_pipe",),
}
METHOD = (
    "space-time single linkage (gis.events.cluster_alarms: onsets within window_s, points "
    "within distance_m and, on a network, within network_max_m along the pipes) + "
    "sensitivity-correlation localisation with a distance kernel (gis.events.localise)"
)
#: Metres per degree of latitude, the smallest (at the equator): a box of d / this degrees
#: holds every point within d metres north or south.
_M_PER_DEG = 110_574.0

_BIGINTS = ARRAY(BigInteger)
_TEXTS = ARRAY(Text)

_POOL_SQL = text(
    """
    WITH fam(indicator, family) AS (SELECT * FROM unnest(CAST(:fam_ind AS text[]),
                                                         CAST(:fam_name AS text[]))),
    net(kind, network) AS (SELECT * FROM unnest(CAST(:net_kind AS text[]),
                                                CAST(:net_name AS text[]))),
    seed AS (
        SELECT a.id, a.geom, a.opened_ts FROM alarm a
        WHERE a.id = ANY(:ids) AND a.geom IS NOT NULL AND a.state <> ALL(:ended)
    ),
    near AS (
        SELECT a.id FROM seed s JOIN alarm a
          ON a.geom && ST_Expand(s.geom, :d_deg / cos(radians(ST_Y(s.geom))), :d_deg)
         AND a.opened_ts BETWEEN s.opened_ts - make_interval(secs => :window_s)
                             AND s.opened_ts + make_interval(secs => :window_s)
         AND ST_DWithin(a.geom::geography, s.geom::geography, :distance_m)
        WHERE a.state <> ALL(:ended)
        UNION SELECT id FROM seed
    ),
    grouped AS (
        SELECT m2.alarm_id AS id FROM suspected_event_alarm m
        JOIN suspected_event e ON e.id = m.event_id AND e.state = 'open'
        JOIN suspected_event_alarm m2 ON m2.event_id = e.id
        WHERE m.alarm_id IN (SELECT id FROM near)
    )
    SELECT a.id, a.sensor_id, coalesce(a.asset_id, s.asset_id) AS asset_id,
           coalesce(a.peak_level, a.level) AS peak_level,
           extract(epoch FROM a.opened_ts)::float8 AS t_open,
           a.opened_ts, greatest(a.last_seen_at, a.opened_ts) AS last_ts,
           ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat, a.peak_value,
           coalesce(ast.attributes->>'network', net.network, ast.plate, 'unbound')
             || '/' || coalesce(fam.family, r.indicator) AS family,
           r.indicator, ast.kind AS asset_kind, ast.name AS asset_name,
           ST_AsBinary(ast.geom) AS asset_wkb,
           ev.event_id,
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rd.value) FROM reading rd
             WHERE rd.sensor_id = a.sensor_id
               AND rd.ts >= a.opened_ts - make_interval(secs => :baseline_s)
               AND rd.ts < a.opened_ts) AS before
    FROM alarm a
    JOIN rule r ON r.id = a.rule_id
    LEFT JOIN sensor s ON s.id = a.sensor_id
    LEFT JOIN asset ast ON ast.id = coalesce(a.asset_id, s.asset_id)
    LEFT JOIN net ON net.kind = ast.kind
    LEFT JOIN fam ON fam.indicator = r.indicator
    LEFT JOIN (SELECT m.alarm_id, m.event_id, e.state FROM suspected_event_alarm m
               JOIN suspected_event e ON e.id = m.event_id) ev ON ev.alarm_id = a.id
    WHERE a.id IN (SELECT id FROM near UNION SELECT id FROM grouped)
      AND a.geom IS NOT NULL AND a.state <> ALL(:ended)
      AND r.kind <> ALL(:device_kinds)
      AND (ev.state IS NULL OR ev.state = 'open')
    ORDER BY a.id
    """
).bindparams(
    bindparam("ids", type_=_BIGINTS),
    bindparam("ended", type_=_TEXTS),
    bindparam("device_kinds", type_=_TEXTS),
)

_PIPES_SQL = text(
    "SELECT id, kind, name, ST_AsBinary(geom) FROM asset WHERE kind = ANY(:kinds) "
    "AND GeometryType(geom) = 'LINESTRING' "
    "AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) ORDER BY id"
).bindparams(bindparam("kinds", type_=_TEXTS))

# Sensors of the same indicators around an event that reported but did not alarm: they
# count against the candidates next to them (magnitude 0).
_QUIET_SQL = text(
    """
    SELECT s.id, ST_X(s.geom), ST_Y(s.geom) FROM sensor s
    JOIN latest_reading lr ON lr.sensor_id = s.id
    WHERE s.kind = ANY(:kinds) AND s.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
      AND s.id <> ALL(:alarmed) AND s.status = 'active'
      AND lr.ts >= to_timestamp(:since)
    ORDER BY s.id
    """
).bindparams(bindparam("kinds", type_=_TEXTS), bindparam("alarmed", type_=_BIGINTS))

_NEW_IDS_SQL = text(
    "SELECT nextval(pg_get_serial_sequence('suspected_event', 'id')) FROM generate_series(1, :n)"
)

_UPSERT_SQL = text(
    """
    INSERT INTO suspected_event AS e (id, state, family, first_ts, last_ts, n_alarms, n_sensors,
                                      peak_level, top_asset_id, candidates, area, method,
                                      params, notes)
    SELECT v.id, 'open', v.family, v.first_ts, v.last_ts,
           v.n_alarms, v.n_sensors, v.peak_level, v.top_asset_id, v.candidates,
           ST_GeomFromText(v.area, 4326), :method, CAST(:params AS jsonb), v.notes
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(
        id bigint, family text, first_ts timestamptz, last_ts timestamptz, n_alarms int,
        n_sensors int,
        peak_level smallint, top_asset_id bigint, candidates jsonb, area text, notes jsonb)
    ON CONFLICT (id) DO UPDATE SET
        family = excluded.family, first_ts = excluded.first_ts, last_ts = excluded.last_ts,
        n_alarms = excluded.n_alarms, n_sensors = excluded.n_sensors,
        peak_level = excluded.peak_level, top_asset_id = excluded.top_asset_id,
        candidates = excluded.candidates, area = excluded.area, method = excluded.method,
        params = excluded.params, notes = excluded.notes, updated_at = now()
    WHERE (e.family, e.first_ts, e.last_ts, e.n_alarms, e.n_sensors, e.peak_level,
           e.top_asset_id, e.candidates, e.method, e.params, e.notes)
          IS DISTINCT FROM
          (excluded.family, excluded.first_ts, excluded.last_ts, excluded.n_alarms,
           excluded.n_sensors, excluded.peak_level, excluded.top_asset_id, excluded.candidates,
           excluded.method, excluded.params, excluded.notes)
       OR NOT ST_Equals(e.area, excluded.area)
    RETURNING e.id
    """
)

_LINKS_SQL = text(
    """
    INSERT INTO suspected_event_alarm AS m (alarm_id, event_id, magnitude)
    SELECT v.alarm_id, v.event_id, v.magnitude
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(alarm_id bigint, event_id bigint,
                                                       magnitude float8)
    ON CONFLICT (alarm_id) DO UPDATE SET event_id = excluded.event_id,
                                         magnitude = excluded.magnitude
    WHERE (m.event_id, m.magnitude) IS DISTINCT FROM (excluded.event_id, excluded.magnitude)
    """
)

# Members of the regrouped (and merged) events that are in none of the new groups (ended since,
# or no longer linked): their links go, so an event lists exactly the alarms it was built from.
_UNLINK_SQL = text(
    "DELETE FROM suspected_event_alarm WHERE event_id = ANY(:events) AND alarm_id <> ALL(:keep)"
).bindparams(bindparam("events", type_=_BIGINTS), bindparam("keep", type_=_BIGINTS))

_MERGE_SQL = text(
    """
    UPDATE suspected_event e SET state = 'merged', merged_into_id = v.into_id, updated_at = now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(id bigint, into_id bigint)
    WHERE e.id = v.id AND e.state = 'open'
    """
)


@dataclass
class EventReport:
    """What one regrouping did: events opened, updated (something changed) and merged."""

    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    merged: list[int] = field(default_factory=list)

    @property
    def event_ids(self) -> list[int]:
        return sorted({*self.opened, *self.updated})


@dataclass
class _Pool:
    """The pool's rows as columns (one entry per alarm)."""

    id: np.ndarray[Any, Any]
    sensor: np.ndarray[Any, Any]
    asset: list[int | None]
    level: np.ndarray[Any, Any]
    t_open: np.ndarray[Any, Any]
    opened_ts: list[datetime]
    last_ts: list[datetime]
    lon: np.ndarray[Any, Any]
    lat: np.ndarray[Any, Any]
    moved: np.ndarray[Any, Any]
    family: list[str]
    indicator: list[str]
    asset_kind: list[str | None]
    asset_name: list[str | None]
    asset_wkb: list[bytes | None]
    event: list[int | None]


@dataclass
class _Group:
    """One clustered group, localised, ready to be written."""

    members: list[int]  # indices into the pool
    family: str
    first_ts: datetime
    last_ts: datetime
    n_sensors: int
    peak_level: int
    candidates: list[dict[str, Any]]
    area: BaseGeometry
    magnitude: dict[int, float]  # alarm id -> weight
    notes: list[str]
    event_id: int | None = None


def _pool(session: Session, alarm_ids: Sequence[int], cfg: EventSettings) -> _Pool:
    rows = session.execute(
        _POOL_SQL,
        {
            "ids": list(alarm_ids),
            "ended": list(ENDED_STATES),
            "device_kinds": list(DEVICE_RULE_KINDS),
            "fam_ind": list(INDICATOR_FAMILY),
            "fam_name": list(INDICATOR_FAMILY.values()),
            "net_kind": list(KIND_NETWORK),
            "net_name": list(KIND_NETWORK.values()),
            "d_deg": cfg.distance_m / _M_PER_DEG,
            "distance_m": cfg.distance_m,
            "window_s": cfg.window_s,
            "baseline_s": cfg.baseline_s,
        },
    ).all()
    peak = np.array([np.nan if r.peak_value is None else r.peak_value for r in rows], float)
    before = np.array([np.nan if r.before is None else r.before for r in rows], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = np.where(np.abs(before) > 0, np.abs(peak - before) / np.abs(before), np.nan)
    return _Pool(
        id=np.array([r.id for r in rows], dtype=np.int64),
        sensor=np.array([-r.id if r.sensor_id is None else r.sensor_id for r in rows], np.int64),
        asset=[r.asset_id for r in rows],
        level=np.array([r.peak_level for r in rows], dtype=np.int64),
        t_open=np.array([r.t_open for r in rows], dtype=np.float64),
        opened_ts=[r.opened_ts for r in rows],
        last_ts=[r.last_ts for r in rows],
        lon=np.array([r.lon for r in rows], dtype=np.float64),
        lat=np.array([r.lat for r in rows], dtype=np.float64),
        moved=moved,
        family=[r.family for r in rows],
        indicator=[r.indicator for r in rows],
        asset_kind=[r.asset_kind for r in rows],
        asset_name=[r.asset_name for r in rows],
        asset_wkb=[None if r.asset_wkb is None else bytes(r.asset_wkb) for r in rows],
        event=[r.event_id for r in rows],
    )


def _envelope(
    lon: np.ndarray[Any, Any], lat: np.ndarray[Any, Any], margin_m: float
) -> dict[str, float]:
    """The lon/lat box of the points grown by ``margin_m`` metres on every side."""
    dlat = margin_m / _M_PER_DEG
    dlon = dlat / max(np.cos(np.radians(float(np.max(np.abs(lat))) + dlat)), 1e-6)
    return {
        "x0": float(lon.min()) - dlon,
        "y0": float(lat.min()) - dlat,
        "x1": float(lon.max()) + dlon,
        "y1": float(lat.max()) + dlat,
    }


@dataclass
class _Network:
    """The pipes around a family's alarms, with the alarm points bound to them."""

    ids: np.ndarray[Any, Any]
    kinds: list[str]
    names: list[str | None]
    lines: np.ndarray[Any, Any]  # lon/lat LineStrings
    net: gnet.PipeNetwork | None
    notes: list[str]


def _network(
    session: Session,
    network: str,
    lon: np.ndarray[Any, Any],
    lat: np.ndarray[Any, Any],
    cfg: EventSettings,
) -> _Network | None:
    kinds = NETWORK_PIPES.get(network)
    if kinds is None:
        return None
    # A path of length L from a sensor stays within L of it: this box holds every path that
    # can link two of these sensors, and every candidate.
    box = _envelope(lon, lat, cfg.network_max_m)
    rows = session.execute(_PIPES_SQL, {"kinds": list(kinds), **box}).all()
    if not rows:
        return None
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    lines = np.asarray(shapely.from_wkb([bytes(r[3]) for r in rows]), dtype=object)
    notes: list[str] = []
    try:
        net: gnet.PipeNetwork | None = gnet.build_network(ids, lines)
    except ValueError as exc:
        net = None
        notes.append(
            f"the {network} pipes could not be built into a network ({exc}): "
            "straight-line distances only"
        )
    return _Network(ids, [r[1] for r in rows], [r[2] for r in rows], lines, net, notes)


def _cluster(
    pool: _Pool,
    idx: np.ndarray[Any, Any],
    frame: LocalFrame,
    net: _Network | None,
    cfg: EventSettings,
) -> tuple[gev.Clusters, str]:
    """Cluster the pool's alarms ``idx`` (one family); network-bounded where they are on it."""
    lon, lat = pool.lon[idx], pool.lat[idx]
    x, y = frame.to_local(lon, lat)
    if net is None or net.net is None:
        how = "straight-line distance"
        return gev.cluster_alarms(
            pool.t_open[idx],
            x,
            y,
            window_s=cfg.window_s,
            distance_m=cfg.distance_m,
            sensor_ids=pool.sensor[idx],
        ), how
    points = np.asarray(shapely.points(lon, lat), dtype=object)
    att = gnet.attach_points(net.net, np.arange(idx.size), points, tolerance_m=cfg.attach_m)
    dm = gev.network_distance_matrix(att, max_distance_m=cfg.network_max_m)
    row = np.full(idx.size, -1, dtype=np.int64)
    row[att.point_ids] = np.arange(att.point_ids.size)

    def distance(i: np.ndarray[Any, Any], j: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        straight = np.hypot(x[i] - x[j], y[i] - y[j])
        both = (row[i] >= 0) & (row[j] >= 0)
        along = np.where(both, dm[np.maximum(row[i], 0), np.maximum(row[j], 0)], 0.0)
        return np.where(np.isfinite(along), straight, np.inf)

    how = (
        f"straight-line distance, and for the {att.point_ids.size} of {idx.size} sensors on the "
        f"network (within {cfg.attach_m:g} m of a pipe) at most {cfg.network_max_m:g} m along it"
    )
    clusters = gev.cluster_alarms(
        pool.t_open[idx],
        x,
        y,
        window_s=cfg.window_s,
        distance_m=cfg.distance_m,
        sensor_ids=pool.sensor[idx],
        distance=distance,
    )
    return clusters, how


def _localise(
    pool: _Pool,
    members: np.ndarray[Any, Any],
    frame: LocalFrame,
    net: _Network | None,
    quiet: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]],
    cfg: EventSettings,
) -> tuple[list[dict[str, Any]], BaseGeometry, dict[int, float], list[str]]:
    """Rank the candidates of one group; its area; each member alarm's weight; notes."""
    notes: list[str] = []
    moved = pool.moved[members]
    if np.isfinite(moved).all() and (moved > 0).any():
        weight = moved
        notes.append(
            "weights: how far each sensor's peak moved from its median in the "
            f"{cfg.baseline_s:g} s before the alarm's onset (relative)"
        )
    else:
        weight = (5 - pool.level[members]).astype(np.float64)
        notes.append(
            "weights: the alarms' peak levels (I = 4 … IV = 1): not every sensor has readings "
            "before its onset"
        )
    by_alarm = {int(pool.id[k]): float(w) for k, w in zip(members, weight, strict=True)}
    # One entry per sensor: its strongest alarm.
    sensors, first = np.unique(pool.sensor[members], return_index=True)
    mag = np.array([weight[pool.sensor[members] == s].max() for s in sensors])
    s_lon, s_lat = pool.lon[members][first], pool.lat[members][first]
    q_ids, q_lon, q_lat = quiet
    if q_ids.size:
        x, y = frame.to_local(s_lon, s_lat)
        qx, qy = frame.to_local(q_lon, q_lat)
        near = np.hypot(qx[:, None] - x[None, :], qy[:, None] - y[None, :]).min(axis=1)
        keep = near <= cfg.distance_m
        if keep.any():
            notes.append(f"{int(keep.sum())} quiet sensors of the same indicators around: zeros")
            s_lon = np.concatenate([s_lon, q_lon[keep]])
            s_lat = np.concatenate([s_lat, q_lat[keep]])
            mag = np.concatenate([mag, np.zeros(int(keep.sum()))])
    pts = np.asarray(shapely.points(s_lon, s_lat), dtype=object)
    pts_local = np.asarray(shapely.points(*frame.to_local(s_lon, s_lat)), dtype=object)

    cand_ids: np.ndarray[Any, Any]
    if net is not None:
        local = np.asarray([frame.geometry_to_local(g) for g in net.lines], dtype=object)
        straight = np.asarray(shapely.distance(local[:, None], pts_local[None, :]), float)
        alarmed = straight[:, : sensors.size]
        pick = np.flatnonzero(alarmed.min(axis=1) <= cfg.distance_m)
        cand_ids, geoms = net.ids[pick], net.lines[pick]
        kinds = [net.kinds[k] for k in pick]
        names = [net.names[k] for k in pick]
        d = straight[pick]
        if net.net is not None and pick.size:
            att = gnet.attach_points(net.net, np.arange(pts.size), pts, tolerance_m=cfg.attach_m)
            if att.point_ids.size:
                along = gev.network_pipe_distances(att, max_distance_m=cfg.network_max_m)
                rows = np.searchsorted(net.net.pipe_ids, cand_ids)
                d[:, att.point_ids] = along[rows]
                notes.append(
                    f"distances along the pipes for the {att.point_ids.size} of {pts.size} "
                    f"sensors on the network (within {cfg.attach_m:g} m), straight-line "
                    "for the others"
                )
    else:
        seen: dict[int, int] = {}
        for k in members.tolist():
            a = pool.asset[k]
            if a is not None and pool.asset_wkb[k] is not None and a not in seen:
                seen[a] = k
        cand_ids = np.array(list(seen), dtype=np.int64)
        geoms = np.asarray(
            [shapely.from_wkb(pool.asset_wkb[k]) for k in seen.values()], dtype=object
        )
        kinds = [pool.asset_kind[k] or "" for k in seen.values()]
        names = [pool.asset_name[k] for k in seen.values()]
        d = None
        notes.append("no pipe network for this family: the alarms' own assets are the candidates")
    if not cand_ids.size:
        hull = shapely.MultiPoint(list(pts_local[: sensors.size])).convex_hull
        area = frame.geometry_to_lonlat(hull.buffer(cfg.area_buffer_m))
        notes.append(
            f"no candidate asset within {cfg.distance_m:g} m: the area is the sensors' hull "
            f"+ {cfg.area_buffer_m:g} m"
        )
        return [], area, by_alarm, notes
    result = gev.localise(
        cand_ids,
        geoms,
        s_lon,
        s_lat,
        mag,
        frame=frame,
        distance_m=d,
        scale_m=cfg.scale_m,
        top=cfg.top,
        area_buffer_m=cfg.area_buffer_m,
    )
    notes.extend(result.notes)
    dist = (
        np.asarray(
            shapely.distance(
                np.asarray([frame.geometry_to_local(g) for g in geoms], dtype=object)[:, None],
                pts_local[None, : sensors.size],
            ),
            float,
        )
        if d is None
        else d[:, : sensors.size]
    )
    candidates = []
    for rank, k in enumerate(result.ranking[: cfg.candidates].tolist(), start=1):
        nearest = float(np.min(dist[k]))
        candidates.append(
            {
                "asset_id": int(cand_ids[k]),
                "kind": kinds[k],
                "name": names[k],
                "rank": rank,
                "score": round(float(result.score[rank - 1]), 6),
                "fit": round(float(result.fit[rank - 1]), 6),
                "proximity": round(float(result.proximity[rank - 1]), 6),
                "nearest_sensor_m": round(nearest, 1) if np.isfinite(nearest) else None,
            }
        )
    return candidates, result.area, by_alarm, notes


def _quiet(
    session: Session, pool: _Pool, idx: np.ndarray[Any, Any], cfg: EventSettings
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    indicators = sorted({pool.indicator[k] for k in idx.tolist()})
    family = INDICATOR_FAMILY.get(indicators[0])
    if family is not None:
        indicators = sorted(i for i, f in INDICATOR_FAMILY.items() if f == family)
    rows = session.execute(
        _QUIET_SQL,
        {
            "kinds": indicators,
            "alarmed": sorted({int(s) for s in pool.sensor[idx].tolist() if s > 0}),
            "since": float(pool.t_open[idx].min() - cfg.window_s),
            **_envelope(pool.lon[idx], pool.lat[idx], cfg.distance_m),
        },
    ).all()
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.float64),
    )


def _groups(session: Session, pool: _Pool, cfg: EventSettings) -> list[_Group]:
    out: list[_Group] = []
    families = np.array(pool.family, dtype=object)
    for family in sorted(set(pool.family)):
        idx = np.flatnonzero(families == family)
        has_event = any(pool.event[k] is not None for k in idx.tolist())
        if np.unique(pool.sensor[idx]).size < cfg.min_sensors and not has_event:
            continue  # too few sensors for any event: no network to build (most batches)
        frame = LocalFrame(float(pool.lon[idx].mean()), float(pool.lat[idx].mean()))
        net = _network(session, family.split("/", 1)[0], pool.lon[idx], pool.lat[idx], cfg)
        clusters, how = _cluster(pool, idx, frame, net, cfg)
        quiet: tuple[np.ndarray[Any, Any], ...] | None = None
        for ev in clusters.events:
            members = idx[list(ev.members)]
            has_event = any(pool.event[k] is not None for k in members.tolist())
            if len(ev.sensor_ids) < cfg.min_sensors and not has_event:
                continue
            if quiet is None:
                quiet = _quiet(session, pool, idx, cfg)
            candidates, area, magnitude, notes = _localise(
                pool, members, frame, net, (quiet[0], quiet[1], quiet[2]), cfg
            )
            out.append(
                _Group(
                    members=members.tolist(),
                    family=family,
                    first_ts=min(pool.opened_ts[k] for k in members.tolist()),
                    last_ts=max(pool.last_ts[k] for k in members.tolist()),
                    n_sensors=len(ev.sensor_ids),
                    peak_level=int(pool.level[members].min()),
                    candidates=candidates,
                    area=area,
                    magnitude=magnitude,
                    notes=[
                        *clusters.notes[:1],
                        f"linked by {how}",
                        *(net.notes if net else []),
                        *notes,
                    ],
                )
            )
    return out


def update_for_alarms(
    session: Session,
    alarm_ids: Sequence[int],
    *,
    settings: EventSettings | None = None,
) -> EventReport:
    """Group the alarms ``alarm_ids`` (those a batch changed) with their neighbours into
    suspected events, localise them, and upsert the events and their members. Flushes only.

    ``settings`` default to the process's (``CITYRISK_EVENT_*``).
    """
    report = EventReport()
    if not alarm_ids:
        return report
    cfg = settings if settings is not None else get_settings().events
    pool = _pool(session, sorted({int(a) for a in alarm_ids}), cfg)
    if not pool.id.size:
        return report
    groups = _groups(session, pool, cfg)
    if not groups:
        return report
    # Which event each group continues: the oldest open event among its members'. A group
    # can take an event only once (if an event's members split, the larger part keeps it).
    taken: set[int] = set()
    merges: list[dict[str, int]] = []
    for g in sorted(groups, key=lambda g: -len(g.members)):
        events = sorted({e for k in g.members if (e := pool.event[k]) is not None} - taken)
        if events:
            g.event_id = events[0]
            taken.update(events)
            merges.extend({"id": e, "into_id": events[0]} for e in events[1:])
    new = [g for g in groups if g.event_id is None]
    if new:
        ids = session.execute(_NEW_IDS_SQL, {"n": len(new)}).scalars().all()
        for g, new_id in zip(new, ids, strict=True):
            g.event_id = int(new_id)
        report.opened = [int(i) for i in ids]
    params = cfg.model_dump(mode="json")
    rows = [
        {
            "id": g.event_id,
            "family": g.family,
            "first_ts": g.first_ts,
            "last_ts": g.last_ts,
            "n_alarms": len(g.members),
            "n_sensors": g.n_sensors,
            "peak_level": g.peak_level,
            "top_asset_id": g.candidates[0]["asset_id"] if g.candidates else None,
            "candidates": g.candidates,
            "area": shapely.to_wkt(g.area, rounding_precision=8),
            "notes": g.notes,
        }
        for g in groups
    ]
    written = (
        session.execute(
            _UPSERT_SQL,
            {"rows": _dumps(rows), "method": METHOD, "params": _dumps(params)},
        )
        .scalars()
        .all()
    )
    report.updated = sorted(set(int(i) for i in written) - set(report.opened))
    links = [
        {
            "alarm_id": int(pool.id[k]),
            "event_id": g.event_id,
            "magnitude": round(g.magnitude[int(pool.id[k])], 9),
        }
        for g in groups
        for k in g.members
    ]
    session.execute(_LINKS_SQL, {"rows": _dumps(links)})
    session.execute(
        _UNLINK_SQL,
        {
            "events": [g.event_id for g in groups] + [m["id"] for m in merges],
            "keep": [link["alarm_id"] for link in links],
        },
    )
    if merges:
        session.execute(_MERGE_SQL, {"rows": _dumps(merges)})
        report.merged = [m["id"] for m in merges]
    session.flush()
    return report


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


# -- reads and the analyst's transition -----------------------------------------------------

_EVENT_COLUMNS = """
    e.id, e.state, e.family, e.first_ts, e.last_ts, e.n_alarms, e.n_sensors, e.peak_level,
    e.top_asset_id, e.candidates, e.method, e.params, e.notes, e.merged_into_id,
    e.created_at, e.updated_at, e.closed_at, e.closed_by, e.close_note,
    ST_AsGeoJSON(e.area, 7) AS area
"""


def list_events(
    *,
    db_session: Session,
    states: Sequence[str] = (),
    bbox: BBox | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Events newest first (by last data time); ``since`` / ``until`` bound their data-time
    window (an event overlapping [since, until] is listed)."""
    bad = sorted(set(states) - set(EVENT_STATES))
    if bad:
        raise InvalidInput(f"state was {', '.join(bad)}; expected one of {', '.join(EVENT_STATES)}")
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if states:
        where.append("e.state = ANY(:states)")
        params["states"] = list(states)
    if since is not None:
        where.append("e.last_ts >= :since")
        params["since"] = since
    if until is not None:
        where.append("e.first_ts <= :until")
        params["until"] = until
    if bbox is not None:
        where.append(bbox_sql("e.area", bbox))
    stmt = text(
        f"SELECT {_EVENT_COLUMNS} FROM suspected_event e WHERE {' AND '.join(where)} "
        "ORDER BY e.last_ts DESC, e.id DESC LIMIT :limit OFFSET :offset"
    )
    if states:
        stmt = stmt.bindparams(bindparam("states", type_=_TEXTS))
    return [dict(r._mapping) for r in db_session.execute(stmt, params)]


_MEMBERS_SQL = text(
    """
    SELECT a.id, a.rule_code, a.title, a.level, coalesce(a.peak_level, a.level) AS peak_level,
           a.state, a.sensor_id, s.external_id AS sensor, coalesce(a.asset_id, s.asset_id)
           AS asset_id, a.opened_ts, a.last_seen_at, a.cleared_ts, a.peak_value, m.magnitude,
           ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat
    FROM suspected_event_alarm m JOIN alarm a ON a.id = m.alarm_id
    LEFT JOIN sensor s ON s.id = a.sensor_id
    WHERE m.event_id = :id ORDER BY m.magnitude DESC NULLS LAST, a.id
    """
)


def get_event(*, db_session: Session, event_id: int) -> dict[str, Any]:
    """One event with its member alarms (strongest first); :class:`NotFound` if unknown."""
    row = db_session.execute(
        text(f"SELECT {_EVENT_COLUMNS} FROM suspected_event e WHERE e.id = :id"), {"id": event_id}
    ).one_or_none()
    if row is None:
        raise NotFound(f"suspected event {event_id} does not exist")
    event = dict(row._mapping)
    event["alarms"] = [dict(r._mapping) for r in db_session.execute(_MEMBERS_SQL, {"id": event_id})]
    return event


#: What an analyst may do with an open event.
TRANSITIONS: dict[str, tuple[str, ...]] = {"open": ("closed", "dismissed")}


def transition(
    *, db_session: Session, event_id: int, to: str, actor: str, note: str | None = None
) -> dict[str, Any]:
    """Close or dismiss an open event (under a row lock); :class:`Conflict` from any other
    state, naming what is allowed. Its alarms stay in their own workflow. Flushes only."""
    state = db_session.execute(
        text("SELECT state FROM suspected_event WHERE id = :id FOR UPDATE"), {"id": event_id}
    ).scalar_one_or_none()
    if state is None:
        raise NotFound(f"suspected event {event_id} does not exist")
    allowed = TRANSITIONS.get(state, ())
    if to not in allowed:
        raise Conflict(
            f"suspected event {event_id} is {state}; it may go to "
            f"{', '.join(allowed) or 'nothing (final)'}, not {to}"
        )
    db_session.execute(
        text(
            "UPDATE suspected_event SET state = :to, closed_at = now(), closed_by = :actor, "
            "close_note = :note, updated_at = now() WHERE id = :id"
        ),
        {"id": event_id, "to": to, "actor": actor, "note": note},
    )
    db_session.flush()
    return get_event(db_session=db_session, event_id=event_id)
