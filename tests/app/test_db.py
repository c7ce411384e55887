"""The numpy binary COPY codec of app.db (ingest and risk scoring write through it)."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import db


def test_binary_copy_payload_of_numeric_columns(session: Session) -> None:
    payload = db.binary_copy_payload(
        [np.array([1, 2], dtype=np.int32), np.array([2**40, -1]), np.array([0.5, np.nan])]
    )
    session.execute(text("CREATE TEMPORARY TABLE t_copy (a int4, b int8, c float8)"))
    db.copy_into(session, "COPY t_copy FROM STDIN (FORMAT binary)", payload)
    rows = session.execute(text("SELECT a, b, c FROM t_copy ORDER BY a")).all()
    assert [tuple(r) for r in rows[:1]] == [(1, 2**40, 0.5)]
    assert rows[1][:2] == (2, -1)
    assert np.isnan(rows[1][2])
    session.execute(text("DROP TABLE t_copy"))


def test_binary_copy_payload_of_timestamps_and_small_ints(session: Session) -> None:
    stamps = np.array(
        ["1999-12-31T23:59:59.000001", "2026-11-28T20:15:49.123456"], "datetime64[ns]"
    )
    payload = db.binary_copy_payload([stamps, np.array([3, -4], dtype=np.int16)])
    session.execute(text("CREATE TEMPORARY TABLE t_copy_ts (ts timestamptz, q int2)"))
    db.copy_into(session, "COPY t_copy_ts FROM STDIN (FORMAT binary)", payload)
    rows = session.execute(
        text("SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), q FROM t_copy_ts")
    ).all()
    assert [tuple(r) for r in rows] == [
        ("1999-12-31 23:59:59.000001", 3),
        ("2026-11-28 20:15:49.123456", -4),
    ]
    session.execute(text("DROP TABLE t_copy_ts"))
    with pytest.raises(ValueError, match="unsupported column type"):
        db.binary_copy_payload([np.array(["a"], dtype=object)])


def test_binary_copy_columns_read_a_real_copy_out(session: Session) -> None:
    raw = session.connection().connection.driver_connection
    sql = (
        "COPY (SELECT i::int4, i * 2^40, i / 3.0::float8 FROM generate_series(1, 3) i) "
        "TO STDOUT (FORMAT binary)"
    )
    with raw.cursor() as cur, cur.copy(sql) as copy:
        data = b"".join(bytes(b) for b in copy)
    a, b, c = db.binary_copy_columns(data, ["i4", "f8", "f8"])
    assert a.tolist() == [1, 2, 3]
    assert b.tolist() == [2.0**40, 2.0**41, 3 * 2.0**40]
    assert c.tolist() == [1 / 3, 2 / 3, 1.0]
    empty = data[:19] + b"\xff\xff"
    assert [len(x) for x in db.binary_copy_columns(empty, ["i4"])] == [0]
    with pytest.raises(ValueError, match="not non-NULL fields"):
        db.binary_copy_columns(data, ["i4", "f8"])  # not what was sent
    with raw.cursor() as cur, cur.copy("COPY (SELECT 1::int4, NULL::float8) TO STDOUT "
                                       "(FORMAT binary)") as copy:  # fmt: skip
        with_null = b"".join(bytes(b) for b in copy)
    with pytest.raises(ValueError, match="not non-NULL fields"):
        db.binary_copy_columns(with_null, ["i4", "f8"])


def test_ordered_scans_lets_a_failing_statement_say_why(session: Session) -> None:
    """A statement that fails inside ``ordered_scans`` raises its own error (a timeout must stay
    a timeout): restoring the setting in the aborted transaction would raise "current
    transaction is aborted" instead. The setting lasts only to the end of the transaction."""
    with pytest.raises(DBAPIError) as caught, db.ordered_scans(session):
        session.execute(text("SELECT 1 / 0"))
    assert isinstance(caught.value.orig, psycopg.errors.DivisionByZero), caught.value
    session.rollback()
    assert session.execute(text("SHOW enable_sort")).scalar_one() == "on"
    with db.ordered_scans(session):
        assert session.execute(text("SHOW enable_sort")).scalar_one() == "off"
    assert session.execute(text("SHOW enable_sort")).scalar_one() == "on"
