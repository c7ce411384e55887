"""Ragged time series: many sensors' readings in one sorted array, judged reading by reading.

The rules engine (issue 13) judges *every* reading of a batch in time order, whatever the batch
size: a gateway's hour, a backfill's day, or one reading per message must give the same alarms.
Its readings arrive as one array per column, sorted by (sensor, time), with the few readings
before the batch that a rule needs as context. This module holds the vectorised operations on
such arrays, each per reading and within its own sensor's run (a *group*): the value *k*
readings back, the worst of the last *n*, the worst since *w* seconds ago, the length of the
run of identical values, the last reading at or before *t − w*, and the Lindley recursion of a
one-sided CUSUM.

Every operation is exact for min/max/comparisons and does its arithmetic in the same order
whatever else is in the arrays, so a reading gets bit-identical results whether it came alone
or in a day-sized batch. Pure numpy; no database, no HTTP.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "at_or_before",
    "group_starts",
    "lindley",
    "peer_median",
    "range_reduce",
    "rolling",
    "run_length",
    "shifted",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Reduce = Literal["min", "max"]


def group_starts(groups: npt.ArrayLike) -> IntArray:
    """Index of the first row of each row's group, for rows sorted by group.

    Parameters
    ----------
    groups : array_like of int, shape (m,)
        Group key (e.g. sensor id) per row, non-decreasing.

    Returns
    -------
    ndarray of int64, shape (m,)

    Raises
    ------
    ValueError
        If the keys are not sorted.

    Examples
    --------
    >>> group_starts([7, 7, 9, 9, 9, 12]).tolist()
    [0, 0, 2, 2, 2, 5]
    """
    g = np.asarray(groups).ravel()
    if g.size > 1 and (g[1:] < g[:-1]).any():
        raise ValueError("groups must be sorted (rows ordered by group, then time)")
    pos = np.arange(g.size, dtype=np.int64)
    first = np.ones(g.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return np.maximum.accumulate(np.where(first, pos, 0)) if g.size else pos


def shifted(values: npt.ArrayLike, starts: IntArray, k: int) -> FloatArray:
    """The value ``k`` rows back in the same group (NaN where the group is shorter).

    >>> shifted([1.0, 2.0, 3.0, 4.0], group_starts([1, 1, 1, 2]), 1).tolist()
    [nan, 1.0, 2.0, nan]
    """
    v = np.asarray(values, dtype=np.float64)
    pos = np.arange(v.size)
    src = pos - k
    ok = src >= starts
    out = np.full(v.size, np.nan)
    out[ok] = v[src[ok]]
    return out


def rolling(
    values: npt.ArrayLike, starts: IntArray, n: int, how: Reduce
) -> tuple[FloatArray, IntArray]:
    """Min or max of each row's last ``n`` rows in its group, and how many there were.

    NaN propagates (a window holding a NaN gives NaN). ``n`` is small (persistence counts:
    one pass per offset, each over all rows).

    Examples
    --------
    >>> r, c = rolling([5.0, 3.0, 4.0, 9.0], group_starts([1, 1, 1, 2]), 2, "min")
    >>> r.tolist(), c.tolist()
    ([5.0, 3.0, 3.0, 9.0], [1, 2, 2, 1])
    """
    if n < 1:
        raise ValueError(f"n was {n!r}; expected at least 1 row")
    v = np.asarray(values, dtype=np.float64)
    out = v.copy()
    pos = np.arange(v.size)
    count = np.minimum(pos - starts + 1, n).astype(np.int64)
    op = np.fmin if how == "min" else np.fmax
    nan = np.isnan(v)
    for k in range(1, n):
        src = pos - k
        ok = src >= starts
        if not ok.any():
            break
        out[ok] = op(out[ok], v[src[ok]])
        nan[ok] |= np.isnan(v[src[ok]])
    out[nan] = np.nan
    return out, count


def range_reduce(values: npt.ArrayLike, lo: IntArray, hi: IntArray, how: Reduce) -> FloatArray:
    """Min or max of ``values[lo[i] : hi[i] + 1]`` for every ``i`` (a sparse table: exact).

    Rows with ``lo > hi`` or ``lo < 0`` give NaN; NaN inside a range propagates.

    Examples
    --------
    >>> range_reduce([4.0, 1.0, 3.0, 2.0], np.array([0, 2, 1]), np.array([3, 3, 0]), "max")
    array([ 4.,  3., nan])
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    out = np.full(lo.size, np.nan)
    ok = (lo >= 0) & (lo <= hi) & (hi < v.size)
    if not ok.any():
        return out
    op = np.maximum if how == "max" else np.minimum  # NaN-propagating, as documented
    table = [v]
    width = 1
    longest = int((hi[ok] - lo[ok]).max()) + 1
    while width * 2 <= longest:
        prev = table[-1]
        table.append(op(prev[:-width], prev[width:]))
        width *= 2
    a, b = lo[ok], hi[ok]
    level = np.floor(np.log2(b - a + 1)).astype(np.int64)
    res = np.empty(a.size)
    for lv in np.unique(level):
        sel = level == lv
        t = table[int(lv)]
        res[sel] = op(t[a[sel]], t[b[sel] - (1 << int(lv)) + 1])
    out[ok] = res
    return out


def run_length(values: npt.ArrayLike, starts: IntArray) -> IntArray:
    """Length of the run of identical values ending at each row, within its group.

    >>> run_length([1.0, 1.0, 2.0, 2.0, 2.0, 2.0], group_starts([1, 1, 1, 1, 1, 2])).tolist()
    [1, 2, 1, 2, 3, 1]
    """
    v = np.asarray(values, dtype=np.float64)
    pos = np.arange(v.size, dtype=np.int64)
    change = np.ones(v.size, dtype=bool)
    change[1:] = v[1:] != v[:-1]
    change |= pos == starts
    begin = np.maximum.accumulate(np.where(change, pos, 0)) if v.size else pos
    return pos - begin + 1


def at_or_before(
    groups: npt.ArrayLike, t_us: npt.ArrayLike, query_us: npt.ArrayLike, query_groups: npt.ArrayLike
) -> IntArray:
    """Index of the last row of ``query_groups[i]`` with time <= ``query_us[i]`` (-1: none).

    ``groups`` / ``t_us`` are sorted by (group, time); times are integer microseconds, so the
    search is exact.

    Examples
    --------
    >>> at_or_before([1, 1, 2], [0, 60, 0], [59, 60, 10, -1], [1, 1, 2, 2]).tolist()
    [0, 1, 2, -1]
    """
    g = np.asarray(groups, dtype=np.int64)
    t = np.asarray(t_us, dtype=np.int64)
    qg = np.asarray(query_groups, dtype=np.int64)
    qt = np.asarray(query_us, dtype=np.int64)
    if not g.size:
        return np.full(qg.size, -1, dtype=np.int64)
    # One exact search on a combined integer key: group rank × span + time offset (the span
    # covers every time given, so groups cannot overlap; int64 holds 10⁵ groups × 2 years).
    uq = np.unique(g)
    rank = np.searchsorted(uq, g)
    qrank = np.searchsorted(uq, qg)
    known = (qrank < uq.size) & (uq[np.minimum(qrank, uq.size - 1)] == qg)
    t0 = int(min(t.min(), qt.min()))
    span = int(max(t.max(), qt.max())) - t0 + 2
    key = rank * span + (t - t0)
    qkey = qrank * span + (qt - t0)
    j = np.searchsorted(key, qkey, side="right") - 1
    ok = known & (j >= 0)
    ok[ok] &= g[j[ok]] == qg[ok]
    return np.where(ok, j, -1).astype(np.int64)


def lindley(x: npt.ArrayLike, starts: IntArray, initial: npt.ArrayLike | None = None) -> FloatArray:
    """``W_i = max(0, W_{i−1} + x_i)`` per group, from ``initial`` (one per row, used at each
    group's first row; default 0) — the recursion of a one-sided CUSUM (Page 1954).

    One vectorised step per position within the groups, in the same order as one reading at a
    time would do it, so results are bit-identical however the readings are batched. NaN in
    ``x`` leaves ``W`` as it was.

    Examples
    --------
    >>> lindley([1.0, -3.0, 2.0, 1.0], group_starts([1, 1, 1, 2]), [0.5, 0.5, 0.5, 0.0]).tolist()
    [1.5, 0.0, 2.0, 1.0]
    """
    xs = np.asarray(x, dtype=np.float64)
    init = np.zeros(xs.size) if initial is None else np.asarray(initial, dtype=np.float64)
    w = np.empty(xs.size)
    if not xs.size:
        return w
    pos = np.arange(xs.size) - starts
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(int(pos.max()) + 2))
    for p in range(int(pos.max()) + 1):
        rows = order[bounds[p] : bounds[p + 1]]
        prev = init[rows] if p == 0 else w[rows - 1]
        step = xs[rows]
        w[rows] = np.where(np.isnan(step), prev, np.maximum(0.0, prev + step))
    return w


def peer_median(
    z: npt.ArrayLike, zone: npt.ArrayLike, bucket: npt.ArrayLike, *, min_peers: int = 3
) -> tuple[FloatArray, IntArray]:
    """Median of ``z`` over the rows sharing a (zone, time bucket), and how many there were.

    The common part of many sensors' deviations at one time (a city-wide demand swing, a hot
    day) is this median; a sensor's deviation minus it is what is local to it. NaN rows do not
    count; a group with fewer than ``min_peers`` values gives NaN.

    Examples
    --------
    >>> m, n = peer_median([1.0, 2.0, 9.0, 5.0, np.nan], [0, 0, 0, 1, 1], [7, 7, 7, 7, 7])
    >>> m.tolist(), n.tolist()
    ([2.0, 2.0, 2.0, nan, nan], [3, 3, 3, 1, 1])
    """
    zz = np.asarray(z, dtype=np.float64)
    zo = np.asarray(zone, dtype=np.int64)
    bu = np.asarray(bucket, dtype=np.int64)
    out = np.full(zz.size, np.nan)
    count = np.zeros(zz.size, dtype=np.int64)
    if not zz.size:
        return out, count
    _, key = np.unique(np.stack([zo, bu]), axis=1, return_inverse=True)
    key = key.ravel()
    ok = ~np.isnan(zz)
    n_groups = int(key.max()) + 1
    counts = np.bincount(key[ok], minlength=n_groups)
    order = np.lexsort((zz[ok], key[ok]))
    v = zz[ok][order]
    start = np.cumsum(counts) - counts
    med = np.full(n_groups, np.nan)
    has = counts > 0
    lo = start[has] + (counts[has] - 1) // 2
    hi = start[has] + counts[has] // 2
    med[has] = 0.5 * (v[lo] + v[hi])
    med[counts < min_peers] = np.nan
    return med[key], counts[key].astype(np.int64)
