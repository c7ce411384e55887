"""Reading ingestion: parse a batch, validate it column-wise, store it idempotently.

Storage only: the rules engine and the rescore that follow a stored batch are chained by
:mod:`app.flows.readings`, which the HTTP route and the MQTT consumer call (and then commit).

Wire format (README, OpenAPI): a fixed-sensor reading is
``{"sensor": "<external_id or id>", "ts": "<RFC 3339 with offset>", "value": <number>}`` with
optional ``"unit"`` (checked against the sensor's) and ``"quality"`` (small int, default 0); a
mobile reading is ``{"kind": "<indicator>", "lon": <deg>, "lat": <deg>, "ts": …, "value": …}``
with optional ``"device"``. A batch is a JSON array, NDJSON, or CSV with the same column names.

Hot path: the sensor catalogue in memory (one tiny version query), numpy/pandas checks over
whole columns, the batch sorted and deduplicated in numpy, then one binary COPY straight into
the time-partitioned ``reading`` and one upsert of ``latest_reading`` from a row per sensor;
a batch holding an already stored reading falls back to staging + ``INSERT … ON CONFLICT DO
NOTHING`` (see :func:`_store_fixed`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from types import NoneType
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import psycopg
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from app.assets.readers import check_encoding, not_decodable
from app.db import binary_copy_payload, copy_into, raw_connection, stage_table
from app.errors import InvalidInput
from app.sensors import catalogue, partitions
from app.taxonomy.indicators import INDICATORS

MAX_FUTURE = timedelta(minutes=5)  # device clocks drift; further ahead is a wrong clock
#: The setting that bounds a reading's age (``LimitSettings.reading_age_days``), for messages.
AGE_SETTING = "CITYRISK_MAX_READING_AGE_DAYS"
MOBILE_TOLERANCE_M = 50.0  # mobile reading → nearest compatible asset within this distance
JSON_TYPES = ("application/json", "application/geo+json")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
CSV_TYPES = ("text/csv", "application/csv")
OFFSET_AT_END = re.compile(r"(?:[Zz]|[+-]\d{2}:?\d{2})$")  # RFC 3339 offset


@dataclass(frozen=True)
class ReadingRejection:
    index: int  # 0-based position in the batch (CSV: data row, header excluded)
    reason: str
    sensor: str | None = None


@dataclass(frozen=True, eq=False)
class Readings:
    """Fixed-sensor readings as columns, sorted by (sensor, ts): what a batch newly stored,
    and what the rules engine judges (every one of them, in time order)."""

    sensor_id: npt.NDArray[np.int64]
    ts: npt.NDArray[np.datetime64]  # datetime64[us], UTC
    value: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.sensor_id)


@dataclass
class IngestReport:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[ReadingRejection] = field(default_factory=list)
    mobile_accepted: int = 0
    mobile_joined: int = 0
    # What the rules engine needs next (app.flows.readings): the readings this batch stored
    # (duplicates of stored ones are not judged again), their sensors and indicators, the
    # oldest one, and the wall-clock time they were recorded at.
    stored: Readings | None = field(default=None, repr=False)
    sensor_ids: list[int] = field(default_factory=list)
    indicators: set[str] = field(default_factory=set)
    oldest: datetime | None = None
    now: datetime | None = None
    # How the fixed readings were stored: "copy" (fast path: none was stored before), "merge"
    # (some were: staging + ON CONFLICT), "" (none to store). For tests and diagnostics.
    stored_by: str = ""


@dataclass
class Batch:
    """Columns of a parsed batch, all of the batch's length (object arrays, raw values)."""

    sensor: npt.NDArray[np.object_]
    ts: npt.NDArray[np.object_]
    value: npt.NDArray[np.object_]
    unit: npt.NDArray[np.object_]
    quality: npt.NDArray[np.object_]
    kind: npt.NDArray[np.object_]
    lon: npt.NDArray[np.object_]
    lat: npt.NDArray[np.object_]
    device: npt.NDArray[np.object_]
    reasons: npt.NDArray[np.object_]  # a reason per row already known bad at parse time

    def __len__(self) -> int:
        return len(self.ts)


FIELDS = ("sensor", "ts", "value", "unit", "quality", "kind", "lon", "lat", "device")


# -- parse ------------------------------------------------------------------------------------
def parse_payload(body: bytes, content_type: str, *, max_readings: int | None = None) -> Batch:
    """Split ``body`` into columns by media type; InvalidInput if unreadable as a whole, or
    when it holds more than ``max_readings`` readings (CITYRISK_MAX_READINGS)."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media in CSV_TYPES or media in NDJSON_TYPES:
        # Counted before parsing, by one C-level scan (~3 ms for 10 MB): a line per reading
        # (CSV: one more for the header; a quoted newline only makes the count high).
        lines = body.count(b"\n") + (not body.endswith(b"\n")) - (media in CSV_TYPES)
        _check_count(lines, max_readings, exact=False)
        if media in CSV_TYPES:
            return _parse_csv(body, check_encoding(_charset(content_type)))
        return _parse_ndjson(body)
    if media in JSON_TYPES or media.endswith("+json"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}") from None
        if isinstance(doc, dict):
            doc = [doc]
        if not isinstance(doc, list):
            raise InvalidInput("a JSON body must be an array of readings (or one reading object)")
        _check_count(len(doc), max_readings, exact=True)
        return _from_records(doc)
    raise InvalidInput(
        f"content type {media!r} is not accepted; use application/json (array), "
        "application/x-ndjson or text/csv"
    )


def _check_count(count: int, most: int | None, *, exact: bool) -> None:
    if most is not None and count > most:
        given = f"{count:,} readings" if exact else f"{count:,} lines"
        raise InvalidInput(
            f"the batch has {given}; the limit is {most:,} readings per batch "
            "(CITYRISK_MAX_READINGS): send it in smaller batches"
        )


def _parse_ndjson(body: bytes) -> Batch:
    try:  # fast path: the whole batch in one parser call
        # Unfiltered lines: a blank one would make ",," and fail, landing below; so when this
        # parses, it is what the filtered lines give (and saves a strip() per line). Without
        # CR, joining the lines with "," is replacing each LF (but a final one) by ",".
        if b"\r" in body:
            joined = b",".join(body.splitlines())
        else:
            joined = (body[:-1] if body.endswith(b"\n") else body).replace(b"\n", b",")
        return _from_records(orjson.loads(b"[" + joined + b"]"))
    except orjson.JSONDecodeError:
        pass
    lines = [line for line in body.splitlines() if line.strip()]
    try:
        return _from_records(orjson.loads(b"[" + b",".join(lines) + b"]"))
    except orjson.JSONDecodeError:
        pass
    records: list[Any] = []
    bad: dict[int, str] = {}
    for i, line in enumerate(lines):
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            records.append(None)
            bad[i] = f"line is not valid JSON: {exc}"
    batch = _from_records(records)
    for i, reason in bad.items():
        batch.reasons[i] = reason
    return batch


def _from_records(records: list[Any]) -> Batch:
    n = len(records)
    reasons = np.full(n, None, dtype=object)
    if set(map(type, records)) - {dict}:  # C-level checks: per-row Python loops cost ≈ 5 ms
        is_object = np.fromiter((type(r) is dict for r in records), dtype=bool, count=n)
        reasons[~is_object] = "a reading must be a JSON object"
        records = [r if type(r) is dict else {} for r in records]
    # Only the fields some reading has (a fixed-sensor batch has 3 of the 9); `map(dict.get)`
    # runs without bytecode per row, ≈ 2x faster than a comprehension.
    present = set().union(*records) if records else set()
    columns = {
        name: np.fromiter(map(dict.get, records, repeat(name)), dtype=object, count=n)
        if name in present
        else np.full(n, None, dtype=object)
        for name in FIELDS
    }
    return Batch(reasons=reasons, **columns)


def _objects(values: list[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a media type (``text/csv; charset=gb18030``), if any."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _parse_csv(body: bytes, encoding: str | None = None) -> Batch:
    """A CSV body in ``encoding`` (the Content-Type's charset; default UTF-8): GBK/GB18030
    exports from Chinese gateways and spreadsheets say so with ``charset=gb18030``."""
    try:
        table = pd.read_csv(
            io.BytesIO(body),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=encoding or "utf-8",
        )
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            not_decodable("the CSV body", encoding, exc).replace(
                "send encoding=gb18030", "send Content-Type: text/csv; charset=gb18030"
            )
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"body is not readable as CSV: {exc}") from None
    unknown = sorted(set(table.columns) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"CSV has unknown columns {unknown}; columns are {', '.join(FIELDS)}")
    n = len(table)
    columns = {
        name: (
            table[name].astype(object).where(table[name].notna(), None).to_numpy(dtype=object)
            if name in table.columns
            else np.full(n, None, dtype=object)
        )
        for name in FIELDS
    }
    return Batch(reasons=np.full(n, None, dtype=object), **columns)


# -- validate and store -----------------------------------------------------------------------
def ingest(
    session: Session,
    batch: Batch,
    *,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> IngestReport:
    """Validate ``batch`` column-wise and store the good rows (fixed and mobile).

    ``max_age``: a reading older than ``now - max_age`` is rejected (the ways in pass
    ``CITYRISK_MAX_READING_AGE_DAYS``); None accepts any age (a backfill).
    Flushes only; the caller commits. The report says what the rules engine needs next.
    """
    now = now or datetime.now(UTC)
    n = len(batch)
    report = IngestReport(received=n, now=now)
    if n == 0:
        return report
    verdicts = Verdicts(batch.reasons)
    values = _numbers(batch.value)
    ts = _timestamps(batch.ts, verdicts, now, max_age)
    verdicts.reject(pd.isna(batch.value), "no value")
    verdicts.reject(~np.isfinite(values), "value is not a finite number")

    sensors = _sensor_names(batch.sensor)
    is_fixed = pd.notna(sensors)
    is_mobile = ~is_fixed & pd.notna(batch.kind)
    verdicts.reject(~is_fixed & ~is_mobile, "needs `sensor`, or `kind` + `lon` + `lat`")

    sensor_id, kinds = _resolve_sensors(session, sensors, batch.unit, is_fixed, verdicts)
    kinds[is_mobile] = batch.kind[is_mobile]
    _check_range(kinds, values, verdicts)
    lon, lat = _numbers(batch.lon), _numbers(batch.lat)
    bad_position = is_mobile & ~(
        np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    )
    verdicts.reject(bad_position, "mobile reading needs finite lon/lat in degrees (WGS84)")
    quality = _numbers(batch.quality)
    quality = np.where(np.isfinite(quality), quality, 0)
    verdicts.reject((quality < -32768) | (quality > 32767) | (quality % 1 != 0), "bad quality")

    good = ~verdicts.bad
    report.rejected = [
        ReadingRejection(int(i), str(verdicts.reasons[i]), sensors[i])
        for i in np.flatnonzero(verdicts.bad)
    ]
    fixed = good & is_fixed
    if fixed.any():
        partitions.ensure(session, _days(ts[fixed]) | partitions.days_ahead(now))
        report.accepted, report.stored_by, report.stored = _store_fixed(
            session, sensor_id[fixed], ts[fixed], values[fixed], quality[fixed].astype(np.int16)
        )
        report.duplicates = int(fixed.sum()) - report.accepted
        if report.accepted:
            report.sensor_ids = np.unique(report.stored.sensor_id).tolist()
            report.indicators = set(kinds[fixed])
            report.oldest = pd.Timestamp(ts[fixed].min(), tz="UTC").to_pydatetime()
    mobile = good & is_mobile
    if mobile.any():
        stored, joined = _store_mobile(session, batch, mobile, ts, values, lon, lat)
        report.mobile_accepted = stored
        report.mobile_joined = joined
        report.duplicates += int(mobile.sum()) - stored
    return report


class Verdicts:
    """The first reason each row is rejected for; a row with a reason is not stored."""

    def __init__(self, initial: npt.NDArray[np.object_]) -> None:
        self.reasons = initial.copy()
        self.bad = np.asarray(pd.notna(self.reasons), dtype=bool)

    def reject(self, mask: Any, reason: str) -> None:
        new = np.asarray(mask, dtype=bool) & ~self.bad
        self.reasons[new] = reason
        self.bad |= new

    def reject_each(self, mask: Any, reason: Callable[[int], str]) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool) & ~self.bad):
            self.reasons[i] = reason(int(i))
            self.bad[i] = True


def _numbers(column: npt.NDArray[np.object_]) -> npt.NDArray[np.float64]:
    types = set(map(type, column))
    if types == {NoneType}:  # a field no reading has (lon/lat in a fixed-sensor batch)
        return np.full(len(column), np.nan)
    if types <= {float, int, NoneType}:  # JSON numbers (bool is not int here): one C cast
        with suppress(OverflowError):  # an int beyond float range: the general path
            return column.astype(float)
    numbers = pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(
        dtype=float, copy=True
    )
    bools = np.fromiter((type(v) is bool for v in column), dtype=bool, count=len(column))
    numbers[bools] = np.nan  # true/false is not a measurement
    return numbers


def _sensor_names(column: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Sensor references as stripped strings (JSON numbers become "42"); None when absent."""
    if set(map(type, column)) == {str}:  # the usual batch: ≈ 2x faster than pandas strings
        texts = list(map(str.strip, column))
        stripped = _objects(texts)
        if not all(texts):
            stripped[stripped == ""] = None
        return stripped
    names = pd.Series(column, dtype=object)
    floats = np.fromiter((type(v) is float for v in column), dtype=bool, count=len(column))
    if floats.any():  # 42.0 from a CSV or a float-typed JSON: the id 42
        names[floats] = names[floats].map(lambda v: str(int(v)) if v == v and v % 1 == 0 else v)
    text_names = names.astype("string").str.strip()
    text_names = text_names.mask(text_names == "")
    return text_names.astype(object).where(text_names.notna(), None).to_numpy(dtype=object)


def _timestamps(
    column: npt.NDArray[np.object_],
    verdicts: Verdicts,
    now: datetime,
    max_age: timedelta | None = None,
) -> npt.NDArray[np.datetime64]:
    try:  # a batch's readings share few instants: check and parse each distinct text once
        codes, found = pd.factorize(column)  # None / NaN: code -1
    except TypeError:  # an unhashable value (a JSON list or object): row by row
        codes, found = np.arange(len(column)), column
    # One more slot at the end for code -1 (no value): not text, no offset, NaT.
    distinct = _objects([*np.asarray(found, dtype=object), None])
    text_d, offset_d, parsed_d = _parse_stamps(distinct)
    is_text, has_offset, parsed = text_d[codes], offset_d[codes], parsed_d[codes]
    verdicts.reject(pd.isna(column), "no ts")
    verdicts.reject(~is_text, "ts must be an RFC 3339 string")
    verdicts.reject(~has_offset, "ts has no UTC offset (RFC 3339 needs Z or ±hh:mm)")
    stamps = parsed.astype("datetime64[ns]")
    verdicts.reject(np.isnat(stamps), "ts is not a valid RFC 3339 timestamp")
    latest = np.datetime64((now + MAX_FUTURE).replace(tzinfo=None), "ns")
    valid = ~np.isnat(stamps)
    verdicts.reject(valid & (stamps > latest), "ts is in the future (> now + 5 min)")
    if max_age is not None:
        earliest = np.datetime64((now - max_age).replace(tzinfo=None), "ns")
        verdicts.reject(
            valid & (stamps < earliest),
            f"ts is older than {_span(max_age)}, the limit of {AGE_SETTING}; "
            "load history with `cityrisk readings backfill` or POST /readings?backfill=true",
        )
    return stamps


def _span(age: timedelta) -> str:
    """``400 days`` for whole days (the setting's unit), else timedelta's own ``1 day, 2:00:00``."""
    return f"{age.days:,} days" if age % timedelta(days=1) == timedelta(0) else str(age)


def _parse_stamps(
    values: npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.datetime64]]:
    """Per value: is it text, does it end in a UTC offset, and the instant (NaT if not)."""
    n = len(values)
    is_text = np.fromiter((type(v) is str for v in values), dtype=bool, count=n)
    if is_text.all():
        # Most stamps end in Z: a C-level endswith; the regex (≈ 0.5 µs a row) only for others.
        has_offset = np.fromiter(map(str.endswith, values, repeat(("Z", "z"))), bool, count=n)
        others = np.flatnonzero(~has_offset)
        has_offset[others] = [OFFSET_AT_END.search(values[i]) is not None for i in others]
    else:
        has_offset = np.fromiter(
            (type(v) is str and OFFSET_AT_END.search(v) is not None for v in values), bool, count=n
        )
    parsed = pd.to_datetime(
        pd.Series(values, dtype=object).where(has_offset, None),
        utc=True,
        errors="coerce",
        format="ISO8601",
    )
    return is_text, has_offset, parsed.to_numpy(dtype="datetime64[ns]")


def _resolve_sensors(
    session: Session,
    names: npt.NDArray[np.object_],
    given_units: npt.NDArray[np.object_],
    is_fixed: npt.NDArray[np.bool_],
    verdicts: Verdicts,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Sensor ids and indicator kinds per row; unknown sensors and unit mismatches rejected.

    A ``sensor`` value is looked up as an external id first, then (if it is a whole number)
    as the numeric id. The catalogue is held in memory (see :mod:`app.sensors.catalogue`).
    """
    cat = catalogue.current(session)
    n = len(names)
    position = np.fromiter(map(cat.position.get, names, repeat(-1)), dtype=np.int64, count=n)
    found = (position >= 0) & is_fixed
    at = position[found]
    sensor_id = np.zeros(n, dtype=np.int64)
    kinds = np.full(n, None, dtype=object)
    units = np.full(n, None, dtype=object)
    retired = np.zeros(n, dtype=bool)
    sensor_id[found] = cat.id[at]
    kinds[found] = cat.kind[at]
    units[found] = cat.unit[at]
    retired[found] = cat.retired[at]
    verdicts.reject(is_fixed & ~found, "unknown sensor")
    verdicts.reject(retired, "sensor is retired")
    given = found & pd.notna(given_units)
    differs = given & (given_units != units) if given.any() else given
    if differs.any():  # an alias ("%lel" for "%LEL") is fine: judge each (kind, unit) pair once
        pairs = pd.DataFrame({"kind": kinds[differs], "unit": given_units[differs].astype(str)})
        fits = {
            (k, u): (ind := INDICATORS.get(str(k))) is not None and ind.accepts_unit(u)
            for k, u in pairs.drop_duplicates().itertuples(index=False, name=None)
        }
        wrong = np.zeros(n, dtype=bool)
        wrong[differs] = [not fits[(k, u)] for k, u in pairs.itertuples(index=False, name=None)]
        verdicts.reject_each(
            wrong,
            lambda i: f"unit {given_units[i]!r} does not match the sensor's unit {units[i]!r}",
        )
    return sensor_id, kinds


def _check_range(
    kinds: npt.NDArray[np.object_], values: npt.NDArray[np.float64], verdicts: Verdicts
) -> None:
    """Reject unknown indicators and values outside the indicator's physical range."""
    series = pd.Series(kinds, dtype=object)
    low = series.map({k: i.minimum for k, i in INDICATORS.items()}).to_numpy(dtype=float)
    high = series.map({k: i.maximum for k, i in INDICATORS.items()}).to_numpy(dtype=float)
    known = ~np.isnan(low)
    verdicts.reject(pd.notna(kinds) & ~known, "unknown indicator kind")

    def outside_reason(i: int) -> str:
        ind = INDICATORS[str(kinds[i])]
        return (
            f"value {values[i]:g} {ind.unit} is outside the physical range of "
            f"{ind.id} ({ind.minimum:g} to {ind.maximum:g} {ind.unit})"
        )

    verdicts.reject_each(
        known & np.isfinite(values) & ((values < low) | (values > high)), outside_reason
    )


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text_value = str(value).strip()
    return text_value or None


def _days(stamps: npt.NDArray[np.datetime64]) -> set[Any]:
    return {d.astype("datetime64[D]").item() for d in np.unique(stamps.astype("datetime64[D]"))}


# -- write ------------------------------------------------------------------------------------
# Staging tables live for the connection (ON COMMIT DELETE ROWS) instead of being created and
# dropped in every transaction (ON COMMIT DROP): that catalogue churn cost ≈ 1.1 ms per table
# per batch. Emptied at commit; stage_table empties them for several ingests in a transaction.
STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS {name} "
    "(sensor_id int8, ts timestamptz, value float8, quality int2) ON COMMIT DELETE ROWS"
)

# Slow path (a batch that hit a stored reading): insert what is new, count it, and move
# `latest_reading` forward from what was actually inserted.
STORE_SQL = text(
    """
    WITH inserted AS (
        INSERT INTO reading (sensor_id, ts, value, quality)
        SELECT sensor_id, ts, value, quality FROM reading_stage
        ON CONFLICT (sensor_id, ts) DO NOTHING
        RETURNING sensor_id, ts, value, quality
    ), latest AS (
        INSERT INTO latest_reading AS l (sensor_id, ts, value, quality, received_at)
        SELECT DISTINCT ON (sensor_id) sensor_id, ts, value, quality, now()
        FROM inserted ORDER BY sensor_id, ts DESC
        ON CONFLICT (sensor_id) DO UPDATE SET
            ts = EXCLUDED.ts, value = EXCLUDED.value, quality = EXCLUDED.quality,
            received_at = EXCLUDED.received_at
        WHERE EXCLUDED.ts > l.ts
    )
    SELECT sensor_id, ts, value FROM inserted ORDER BY sensor_id, ts
    """
)

# Fast path: `latest_stage` holds one row per sensor (its newest reading in the batch, found in
# numpy), sorted by sensor: concurrent batches lock `latest_reading` rows in the same order, so
# they wait for each other instead of deadlocking. The guard keeps it moving forward only.
FIRST_LATEST_SQL = "SELECT FROM latest_reading WHERE sensor_id = %s FOR NO KEY UPDATE"
COPY_READING_SQL = "COPY reading (sensor_id, ts, value, quality) FROM STDIN (FORMAT binary)"

LATEST_SQL = """
    INSERT INTO latest_reading AS l (sensor_id, ts, value, quality, received_at)
    SELECT sensor_id, ts, value, quality, now() FROM latest_stage ORDER BY sensor_id
    ON CONFLICT (sensor_id) DO UPDATE SET
        ts = EXCLUDED.ts, value = EXCLUDED.value, quality = EXCLUDED.quality,
        received_at = EXCLUDED.received_at
    WHERE EXCLUDED.ts > l.ts
"""


def binary_copy_rows(
    sensor_id: npt.NDArray[np.int64],
    ts: npt.NDArray[np.datetime64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int16],
) -> bytes:
    """Readings as a binary COPY payload for ``(sensor_id, ts, value, quality)``."""
    return binary_copy_payload([sensor_id, ts, value, quality])


def _store_fixed(
    session: Session,
    sensor_id: npt.NDArray[np.int64],
    ts: npt.NDArray[np.datetime64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int16],
) -> tuple[int, str, Readings]:
    """Store fixed-sensor readings idempotently on ``(sensor_id, ts)``.

    Returns the number inserted, the path taken ("copy" or "merge") and the readings inserted
    (sorted by sensor and time; on the merge path, only those that were not stored before).

    Sorted by (sensor, ts) and deduplicated in numpy first (the first of equal readings in the
    batch wins, as before). Then the optimistic fast path: one binary COPY straight into
    ``reading`` inside a SAVEPOINT (no staging table, no ``ON CONFLICT``: ≈ 2x cheaper), and
    ``latest_reading`` upserted from one staged row per sensor. If any reading is already
    stored, or is being stored by a concurrent transaction (the unique index makes the COPY
    wait for it to commit), the COPY fails with a unique violation: roll back to the savepoint
    and take the slow path — staging + ``INSERT … ON CONFLICT DO NOTHING`` — which counts the
    duplicates exactly. Replays are correct, only slower (the failed COPY's rows are dead
    tuples until vacuum; a batch of replays fails on its first row, so wastes little).

    Rows go in sorted order on both paths, so two batches that overlap take their locks on the
    unique index and on ``latest_reading`` in the same order: one waits, neither deadlocks.
    """
    stamps = ts.astype("datetime64[us]")  # what PostgreSQL stores: dedupe at that precision
    order = np.lexsort((stamps, sensor_id))  # stable: the first of equal readings stays first
    sensor_id, stamps = sensor_id[order], stamps[order]
    value, quality = value[order], quality[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (sensor_id[1:] != sensor_id[:-1]) | (stamps[1:] != stamps[:-1])
    if not keep.all():
        sensor_id, stamps, value, quality = (
            sensor_id[keep],
            stamps[keep],
            value[keep],
            quality[keep],
        )
    newest = np.ones(len(sensor_id), dtype=bool)  # the last row of each sensor's run
    newest[:-1] = sensor_id[1:] != sensor_id[:-1]
    payload = binary_copy_rows(sensor_id, stamps, value, quality)
    with raw_connection(session).cursor() as cur:
        cur.execute("SAVEPOINT ingest_fast")
        try:
            with cur.copy(COPY_READING_SQL) as copy:
                copy.write(payload)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT ingest_fast")
            _stage(session, "reading_stage", payload)
            rows = session.execute(STORE_SQL).all()
            inserted = Readings(
                np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                pd.to_datetime([r[1] for r in rows], utc=True)
                .tz_convert(None)
                .to_numpy()
                .astype("datetime64[us]"),
                np.fromiter((r[2] for r in rows), np.float64, len(rows)),
            )
            return len(rows), "merge", inserted
        cur.execute("RELEASE SAVEPOINT ingest_fast")
        _stage(
            session,
            "latest_stage",
            binary_copy_rows(sensor_id[newest], stamps[newest], value[newest], quality[newest]),
        )
        # A batch that overlaps an uncommitted one waits for it here, on the first row alone,
        # so the upsert starts after that commit: started before, it re-checks every row the
        # other batch updated (≈ 20 % more CPU for a city-wide batch, measured).
        cur.execute(FIRST_LATEST_SQL, (int(sensor_id[0]),))
        cur.execute(LATEST_SQL)
    return len(sensor_id), "copy", Readings(sensor_id, stamps, value)


def _stage(session: Session, name: str, payload: bytes) -> None:
    """Load a binary COPY payload into the (emptied) staging table ``name``."""
    stage_table(session, STAGE_DDL.format(name=name), name)
    copy_into(session, f"COPY {name} FROM STDIN (FORMAT binary)", payload)


MOBILE_STAGE_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS mobile_stage "
    "(kind text, ts timestamptz, value float8, lon float8, lat float8, device text) "
    "ON COMMIT DROP"
)

MOBILE_SQL = text(
    """
    WITH compat AS (
        SELECT indicator, string_to_array(kinds, ',') AS kinds
        FROM unnest(:indicators, :kinds) AS t(indicator, kinds)
    ), inserted AS (
        INSERT INTO mobile_reading (kind, ts, value, geom, device, asset_id, distance_m)
        SELECT m.kind, m.ts, m.value, m.geom, m.device, near.id, near.distance_m
        FROM (SELECT *, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS geom FROM mobile_stage) m
        JOIN compat c ON c.indicator = m.kind
        LEFT JOIN LATERAL (
            SELECT a.id, ST_Distance(a.geom::geography, m.geom::geography) AS distance_m
            FROM asset a
            WHERE a.kind = ANY(c.kinds)
              AND ST_DWithin(a.geom::geography, m.geom::geography, :tolerance_m)
            ORDER BY 2 LIMIT 1
        ) near ON true
        ON CONFLICT (kind, ts, geom) DO NOTHING
        RETURNING asset_id
    )
    SELECT count(*), count(asset_id) FROM inserted
    """
).bindparams(bindparam("indicators", type_=ARRAY(Text)), bindparam("kinds", type_=ARRAY(Text)))


def _store_mobile(
    session: Session,
    batch: Batch,
    mask: npt.NDArray[np.bool_],
    ts: npt.NDArray[np.datetime64],
    values: npt.NDArray[np.float64],
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
) -> tuple[int, int]:
    """Store mobile readings joined set-based to the nearest compatible asset; (stored, joined)."""
    stage_table(session, MOBILE_STAGE_SQL, "mobile_stage")
    stamps = pd.to_datetime(ts[mask], utc=True).to_pydatetime()
    devices = [_text(d) for d in batch.device[mask]]
    rows = zip(batch.kind[mask], stamps, values[mask], lon[mask], lat[mask], devices, strict=True)
    copy_into(session, "COPY mobile_stage FROM STDIN", rows)
    stored, joined = session.execute(
        MOBILE_SQL,
        {
            "indicators": list(INDICATORS),
            "kinds": [",".join(i.asset_kinds) for i in INDICATORS.values()],
            "tolerance_m": MOBILE_TOLERANCE_M,
        },
    ).one()
    return int(stored), int(joined)
