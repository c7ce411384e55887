"""History files for a backfill: read streamed, split by data time into batches, spooled to disk.

A history file is the wire format of ``POST /readings`` (README "Wire format") as a file: CSV,
NDJSON or a JSON array, optionally gzipped (``.csv.gz``). Two months of a city's sensors do not
fit in memory, so a file is read in chunks of :data:`CHUNK_ROWS` rows; each chunk's rows are
put, by the UTC span their ``ts`` falls in (``span``: a day by default, aligned on UTC
midnight like the daily ``reading`` partitions), into one NDJSON spool file per span in a
temporary directory. Then :meth:`Spool.batches` yields one span at a time, oldest first, as a
parsed :class:`~app.sensors.ingest.Batch`, for :mod:`app.flows.backfill` to ingest and commit.
Memory holds one chunk while reading and one span while ingesting.

Rows are only *placed* here, never judged: the ingest checks them as it checks any batch. A
row whose ``ts`` cannot be read (missing, not a time, a line that is not JSON) goes to a first
batch of its own, where the ingest rejects it with the reason.

CSV values are kept as the text they are (a CSV body's values are text too), so a CSV file
backfilled means what the same CSV posted to ``/readings`` means.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice, repeat
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Literal, cast

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from app.assets.readers import check_encoding, not_decodable
from app.errors import InvalidInput
from app.sensors.ingest import FIELDS, NDJSON_TYPES, Batch, parse_payload

Format = Literal["csv", "ndjson", "json"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson", "json")
#: Rows read at a time: ~8 MB of NDJSON, a few tens of MB in memory as Python objects.
CHUNK_ROWS = 100_000
#: The spool key of rows whose ``ts`` could not be read: ingested first, to be rejected.
UNPLACED = np.iinfo(np.int64).min
#: A row's origin in the spool: file number << ROW_BITS | 0-based row (record) in its file.
ROW_BITS = 40
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
}


def guess_format(path: Path) -> Format:
    """The format a file's name says (``.csv``, ``.ndjson``/``.jsonl``, ``.json``, + ``.gz``).

    >>> guess_format(Path("readings-2026-10.ndjson.gz"))
    'ndjson'
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise InvalidInput(
            f"{path.name}: cannot tell the format from the name; expected .csv, .ndjson, .jsonl "
            "or .json (optionally .gz), or give --format csv|ndjson|json"
        )
    return found


@dataclass(frozen=True)
class SpoolBatch:
    """One span of history, parsed, with where each of its rows came from."""

    start: datetime | None  # None: the rows whose ts could not be read
    end: datetime | None
    batch: Batch
    origins: npt.NDArray[np.int64]  # per row: file number << ROW_BITS | row in the file

    def where(self, index: int) -> tuple[int, int]:
        """(file number, 0-based row in that file) of the batch's row ``index``."""
        origin = int(self.origins[index])
        return origin >> ROW_BITS, origin & ((1 << ROW_BITS) - 1)


@dataclass
class Spool:
    """History files split into spans of data time, on disk; a context manager (the
    temporary directory is removed at exit, whatever happened).

    Parameters
    ----------
    span : timedelta
        Data time per batch, > 0; spans are aligned on the Unix epoch (whole days: UTC
        midnight, as the daily partitions).
    max_batch : int
        Most rows one span may hold: :meth:`check` refuses more before anything is written.
    directory : Path or None
        Where to spool (default: the system's temporary directory).
    """

    span: timedelta
    max_batch: int = 1_000_000
    directory: Path | None = None
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    counts: dict[int, int] = field(default_factory=dict)  # spool key → rows
    _dir: Path | None = None

    def __post_init__(self) -> None:
        if self.span <= timedelta(0):
            raise InvalidInput(f"--batch-span was {self.span}; expected a positive span like 1d")
        self._span_ns = self.span // timedelta(microseconds=1) * 1000

    def __enter__(self) -> Spool:
        self._dir = Path(tempfile.mkdtemp(prefix="cityrisk-backfill-", dir=self.directory))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- pass 1: read and place ------------------------------------------------------------
    def add(self, path: Path, *, fmt: Format | None = None, encoding: str | None = None) -> int:
        """Read ``path`` in chunks and place its rows; the number of rows read."""
        fmt = fmt or guess_format(path)
        if fmt not in FORMATS:
            raise InvalidInput(f"--format was {fmt!r}; expected one of {', '.join(FORMATS)}")
        codec = check_encoding(encoding)
        number = len(self.files)
        self.files.append(path)
        read = 0
        with _open(path) as raw:
            chunks = {"csv": _csv_chunks, "ndjson": _ndjson_chunks, "json": _json_chunks}[fmt]
            for lines in chunks(raw, path, codec):
                self._place(lines, number, read)
                read += len(lines)
        self.rows += read
        return read

    def _place(self, lines: list[bytes], number: int, first_row: int) -> None:
        """Append each NDJSON line to its span's spool file, with its origin."""
        keys = self._keys(lines)
        origins = (np.int64(number) << ROW_BITS) + np.arange(
            first_row, first_row + len(lines), dtype=np.int64
        )
        order = np.argsort(keys, kind="stable")
        keys, origins = keys[order], origins[order]
        ordered = np.asarray(lines, dtype=object)[order]
        found, starts = np.unique(keys, return_index=True)
        bounds = [*starts.tolist(), len(keys)]
        assert self._dir is not None, "use the Spool as a context manager"
        for key, lo, hi in zip(found.tolist(), bounds[:-1], bounds[1:], strict=True):
            with (self._dir / f"{key}.ndjson").open("ab") as out:
                out.write(b"\n".join(ordered[lo:hi]) + b"\n")
            with (self._dir / f"{key}.origin").open("ab") as out:
                out.write(origins[lo:hi].tobytes())
            self.counts[key] = self.counts.get(key, 0) + hi - lo

    def _keys(self, lines: list[bytes]) -> npt.NDArray[np.int64]:
        """The spool key of each line: its ``ts``'s span number, :data:`UNPLACED` if unread."""
        try:
            records = orjson.loads(b"[" + b",".join(lines) + b"]")
        except orjson.JSONDecodeError:  # some line is not JSON: find which, line by line
            records = [_loads_or_none(line) for line in lines]
        if set(map(type, records)) - {dict}:  # a line that is not an object: no ts
            records = [r if type(r) is dict else {} for r in records]
        stamps = pd.Series(list(map(dict.get, records, repeat("ts"))), dtype=object)
        try:
            parsed = pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601")
        except (TypeError, ValueError):  # a ts that is a list or an object: texts only
            texts = stamps.where(stamps.map(lambda v: isinstance(v, str)).astype(bool))
            parsed = pd.to_datetime(texts, utc=True, errors="coerce", format="ISO8601")
        instants = parsed.to_numpy(dtype="datetime64[ns]")
        keys = np.floor_divide(instants.astype(np.int64), self._span_ns)
        keys[np.isnat(instants)] = UNPLACED
        return keys

    # -- between the passes -----------------------------------------------------------------
    def check(self) -> None:
        """Refuse a span holding more than ``max_batch`` rows, before anything is written."""
        over = {k: n for k, n in self.counts.items() if n > self.max_batch and k != UNPLACED}
        if over:
            key, n = max(over.items(), key=lambda kv: kv[1])
            start, _ = self._bounds(key)
            raise InvalidInput(
                f"the span from {start:%Y-%m-%dT%H:%M}Z holds {n:,} readings, more than "
                f"--max-batch {self.max_batch:,} (one transaction, in memory at once); "
                f"give a shorter --batch-span than {_span_text(self.span)} "
                f"(e.g. {_span_text(self.span * self.max_batch / n)}) or a larger --max-batch"
            )

    # -- pass 2: one span at a time ---------------------------------------------------------
    def batches(self) -> Iterator[SpoolBatch]:
        """The spans, oldest first (the unplaced rows before them), each parsed as a batch."""
        assert self._dir is not None, "use the Spool as a context manager"
        for key in sorted(self.counts):
            body = (self._dir / f"{key}.ndjson").read_bytes()
            origins = np.fromfile(self._dir / f"{key}.origin", dtype=np.int64)
            batch = parse_payload(body, NDJSON_TYPES[0])
            start, end = (None, None) if key == UNPLACED else self._bounds(key)
            yield SpoolBatch(start, end, batch, origins)
            (self._dir / f"{key}.ndjson").unlink()  # the disk holds what is left to do
            (self._dir / f"{key}.origin").unlink()

    def _bounds(self, key: int) -> tuple[datetime, datetime]:
        start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=key * self._span_ns // 1000
        )
        return start, start + self.span


def _span_text(span: timedelta) -> str:
    """``1d``, ``6h``, ``30m`` or ``90s`` (the largest whole unit; at least a minute's 60 s)."""
    seconds = max(1, int(span.total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _loads_or_none(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _open(path: Path) -> BinaryIO:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if path.suffix.lower() == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _recode(data: bytes, codec: str | None, path: Path) -> bytes:
    """``data`` as UTF-8 (what the spool and the ingest read)."""
    if codec is None or codec == "utf-8":
        return data
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(not_decodable(path.name, codec, exc)) from None


def _ndjson_chunks(raw: IO[bytes], path: Path, codec: str | None) -> Iterator[list[bytes]]:
    """Non-blank lines, :data:`CHUNK_ROWS` at a time (a record is a non-blank line, as for
    ``POST /readings``, so a row number here is the ``index`` the API would report)."""
    while True:
        block = list(islice(raw, CHUNK_ROWS))
        if not block:
            return
        text = _recode(b"".join(block), codec, path)
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            yield lines


def _json_chunks(raw: IO[bytes], path: Path, codec: str | None) -> Iterator[list[bytes]]:
    """A JSON array (or one object) is read whole: use NDJSON or CSV for large histories."""
    try:
        doc = orjson.loads(_recode(raw.read(), codec, path))
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name} is not valid JSON: {exc}") from None
    records = [doc] if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise InvalidInput(f"{path.name}: a JSON file must be an array of readings (or one)")
    for lo in range(0, len(records), CHUNK_ROWS):
        yield list(map(orjson.dumps, records[lo : lo + CHUNK_ROWS]))


def _csv_chunks(raw: IO[bytes], path: Path, codec: str | None) -> Iterator[list[bytes]]:
    """CSV rows as NDJSON lines of text values (empty cells left out, as null)."""
    try:
        reader = pd.read_csv(
            raw,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=codec or "utf-8",
            chunksize=CHUNK_ROWS,
        )
        for chunk in reader:
            unknown = sorted(set(chunk.columns) - set(FIELDS))
            if unknown:
                raise InvalidInput(
                    f"{path.name} has unknown columns {unknown}; columns are {', '.join(FIELDS)}"
                )
            text = chunk.to_json(orient="records", lines=True, force_ascii=False)
            # split("\n"), not splitlines(): that also splits at U+2028 inside a JSON string.
            yield [line.encode() for line in text.split("\n") if line]
    except UnicodeDecodeError as exc:
        raise InvalidInput(not_decodable(path.name, codec, exc)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"{path.name} is not readable as CSV: {exc}") from None
