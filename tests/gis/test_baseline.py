"""Learned baselines (gis.baseline): profiles, robust z, persistence, CUSUM and zone residuals,
on closed-form cases, Monte Carlo against the published CUSUM run lengths, and on seven weeks of
real DMA inflows (tests/data/bwdf)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gis.baseline import (
    CusumState,
    Profile,
    ZoneRegression,
    cusum,
    fit_zone_regression,
    learn_profile,
    persistence,
    regression_residual,
    robust_z,
    to_grid,
    zone_residual,
)

DATA = Path(__file__).resolve().parents[1] / "data"
DAY, WEEK = 86_400.0, 7 * 86_400.0
MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday


def long_form(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sensor, t, value) of a (T, n) grid of readings at times t (T,)."""
    n_t, n = values.shape
    return np.tile(np.arange(n), n_t), np.repeat(t, n), values.ravel()


# --- profiles ------------------------------------------------------------------------------


def test_the_profile_recovers_a_sine_daily_cycle_under_noise() -> None:
    # Four weeks of 5-min readings of 3 sensors: 50 + 10 sin(2π·local hour/24) + N(0, 0.5²),
    # local time UTC+8. Bins of 15 min × 7 weekdays hold 4 days × 3 readings = 12 each.
    rng = np.random.default_rng(1)
    t = MONDAY + np.arange(0, 4 * WEEK, 300.0)
    offset = 8 * 3600.0
    clean = 50 + 10 * np.sin(2 * np.pi * ((t + offset) % DAY) / DAY)
    values = clean[:, None] + rng.normal(0, 0.5, (t.size, 3))
    p = learn_profile(*long_form(t, values), bin_s=900, utc_offset_s=offset)
    assert p.centre.shape == (3, 7, 96)
    assert (p.count == 12).all()
    assert (p.level == 0).all()
    # The bin's readings are at +0, +5, +10 min: the median of noise-free values is at +5 min.
    mid = (np.arange(96) * 900 + 300) / DAY
    truth = 50 + 10 * np.sin(2 * np.pi * mid)
    err = p.centre - truth[None, None, :]
    assert np.abs(err).max() < 1.0  # a sample median of 12 readings ± 3σ/√12·1.25
    assert np.abs(err).mean() < 0.25
    # MAD·1.4826 estimates σ = 0.5 (the in-bin slope adds ≤ 0.14 in quadrature at its steepest).
    assert np.median(p.spread) == pytest.approx(0.5, rel=0.15)
    # Learned in UTC without the offset, the peak sits 8 hours early.
    p0 = learn_profile(*long_form(t, values), bin_s=900)
    peak_local = np.argmax(p.centre[0, 0]) * 0.25
    peak_utc = np.argmax(p0.centre[0, 0]) * 0.25
    assert peak_local == pytest.approx(6.0, abs=0.5)
    assert (peak_local - peak_utc) % 24 == pytest.approx(8.0, abs=0.5)


def test_thin_bins_fall_back_to_the_hour_then_to_the_sensor() -> None:
    # Sensor 1: one day of 5-min readings (Monday only): Monday bins have 3 readings < 5,
    # so every bin uses its hour (12 readings); sensor 2: 8 readings in all (global); sensor
    # 3: 3 readings (nothing).
    t1 = MONDAY + np.arange(0, DAY, 300.0)
    t2 = MONDAY + np.arange(8) * 3600.0
    t3 = MONDAY + np.arange(3) * 3600.0
    sensor = np.r_[np.full(t1.size, 1), np.full(8, 2), np.full(3, 3)]
    p = learn_profile(sensor, np.r_[t1, t2, t3], np.r_[t1 * 0 + 1.0, np.arange(8.0), [9, 9, 9]])
    assert p.sensor_ids.tolist() == [1, 2, 3]
    assert (p.level[0] == 1).all()  # hour of day: pooled over all day types
    assert (p.level[1] == 2).all()
    assert p.centre[1, 3, 40] == pytest.approx(3.5)
    assert (p.level[2] == -1).all()
    assert np.isnan(p.centre[2]).all()
    z = robust_z(p, [1, 2, 3], [MONDAY + 2 * DAY] * 3, [1.0, 3.5, 9.0]).z
    assert z[:2].tolist() == [0.0, 0.0]
    assert np.isnan(z[2])
    # Pooling weekdays/weekends, sensor 1's Monday bins are weekday bins of 3 readings still.
    assert (
        learn_profile(sensor, np.r_[t1, t2, t3], sensor * 1.0, day_mode="weekend").level[0] == 1
    ).all()


def test_a_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(2)
    t = MONDAY + np.arange(0, 3 * DAY, 600.0)
    s = rng.integers(10, 14, t.size)
    p = learn_profile(s, t, rng.normal(size=t.size), bin_s=3600, day_mode="weekend", min_count=3)
    q = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    for name in ("sensor_ids", "centre", "spread", "count", "level", "global_centre"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    assert (q.bin_s, q.day_mode, q.min_count, q.version) == (3600, "weekend", 3, p.version)
    with pytest.raises(ValueError, match="version"):
        Profile.from_dict({**p.to_dict(), "version": "cityrisk-baseline-0"})


def test_datetime64_and_epoch_seconds_give_the_same_profile() -> None:
    t = MONDAY + np.arange(0, 2 * DAY, 900.0)
    v = np.sin(t / 5000.0)
    a = learn_profile(np.zeros(t.size, int), t, v, bin_s=3600, day_mode="day", min_count=2)
    b = learn_profile(
        np.zeros(t.size, int),
        (t * 1e3).astype("datetime64[ms]"),
        v,
        bin_s=3600,
        day_mode="day",
        min_count=2,
    )
    np.testing.assert_array_equal(a.centre, b.centre)


def test_bad_inputs_say_what_was_given() -> None:
    with pytest.raises(ValueError, match="bin_s was 7"):
        learn_profile([1], [0.0], [1.0], bin_s=7)
    with pytest.raises(ValueError, match="1, 2 and 1 entries"):
        learn_profile([1], [0.0, 1.0], [1.0])
    p = learn_profile([1] * 6, np.arange(6.0), np.ones(6), day_mode="day")
    with pytest.raises(ValueError, match=r"sensor ids \[2\] are not in this profile"):
        robust_z(p, [2], [0.0], [1.0])
    with pytest.raises(ValueError, match="min_spread"):
        robust_z(p, [1], [0.0], [1.0], min_spread=0.0)


def test_the_spread_floor_keeps_z_finite_for_a_sensor_that_never_varied() -> None:
    t = MONDAY + np.arange(0, DAY, 60.0)
    p = learn_profile(np.zeros(t.size, int), t, np.zeros(t.size), day_mode="day")
    assert (p.spread == 0).all()
    z = robust_z(p, [0, 0], [MONDAY, MONDAY], [0.0, 2.0], min_spread=0.5).z
    assert z.tolist() == [0.0, 4.0]


def test_empty_inputs_are_a_case_not_a_crash() -> None:
    empty_i, empty_f = np.zeros(0, int), np.zeros(0)
    p = learn_profile(empty_i, empty_f, empty_f)
    assert p.centre.shape == (0, 7, 96)
    assert Profile.from_dict(json.loads(json.dumps(p.to_dict()))).centre.shape == (0, 7, 96)
    assert robust_z(p, empty_i, empty_f, empty_f).z.shape == (0,)
    r = cusum(np.zeros((0, 3)), empty_f)
    assert r.alarm.shape == (0, 3)
    assert r.state.upper.tolist() == [0.0, 0.0, 0.0]
    assert persistence(np.zeros((0, 2), bool), k=2, t=empty_f, hold_s=5).in_run.shape == (0, 2)
    assert zone_residual(np.zeros((0, 3)), [0, 0, 0]).shape == (0, 3)


def test_to_grid_places_readings_on_steps() -> None:
    g = to_grid(
        [3, 3, 4, 9],
        [0.0, 1.0, 70.0, 0.0],
        [1.0, 2.0, 5.0, 7.0],
        sensor_ids=[4, 3],
        step_s=60.0,
        t0=0.0,
        n_steps=2,
    )
    assert np.array_equal(g, [[np.nan, 2.0], [5.0, np.nan]], equal_nan=True)


# --- persistence ---------------------------------------------------------------------------


def test_persistence_counts_runs_per_sensor_and_in_data_time() -> None:
    m = np.array([[1, 0], [1, 1], [1, 1], [0, 1], [1, 0]], dtype=bool)
    r = persistence(m, k=3)
    assert r.in_run.astype(int).T.tolist() == [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0]]
    assert r.confirmed.astype(int).T.tolist() == [[0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]
    assert r.run_start.T.tolist() == [[0, 0, 0, -1, 4], [-1, 1, 1, 1, -1]]
    # Irregular times: sensor 0's run spans 0..30 s, sensor 1's 10..600 s.
    t = np.array([0.0, 10.0, 30.0, 600.0, 700.0])
    h = persistence(m, t=t, hold_s=60.0)
    assert h.in_run.astype(int).T.tolist() == [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0]]
    assert h.confirmed.astype(int).T.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
    with pytest.raises(ValueError, match="needs the reading times"):
        persistence(m, hold_s=1.0)


def test_persistence_agrees_with_a_plain_loop() -> None:
    rng = np.random.default_rng(4)
    m = rng.random((500, 7)) < 0.6
    r = persistence(m, k=4)
    for j in range(7):
        run = 0
        for i in range(500):
            run = run + 1 if m[i, j] else 0
            assert r.confirmed[i, j] == (run >= 4)


# --- CUSUM ---------------------------------------------------------------------------------


def test_cusum_run_lengths_match_montgomery_table_9_3() -> None:
    # Tabular CUSUM, k = 0.5, h = 5 (Montgomery, Introduction to SQC, 7th ed., Table 9.3):
    # in control ARL₀ ≈ 465; a 1σ shift ARL ≈ 10.4, 2σ ≈ 4.01. Monte Carlo over sensors.
    rng = np.random.default_rng(5)
    n, steps = 2000, 2000
    r = cusum(rng.standard_normal((steps, n)), np.arange(float(steps)))
    arl0 = n * steps / np.count_nonzero(r.alarm)  # with reset, alarms are renewals
    assert 400 < arl0 < 540

    for delta, arl1 in ((1.0, 10.4), (2.0, 4.01)):
        z = rng.standard_normal((60, n)) + delta
        first = np.argmax(cusum(z, np.arange(60.0)).alarm > 0, axis=0) + 1
        assert first.mean() == pytest.approx(arl1, rel=0.06)
        # The onset estimate (first step after the statistic was last 0) is near the shift.
        r1 = cusum(np.r_[rng.standard_normal((100, n)), z], np.arange(160.0))
        hit = np.argmax(r1.alarm[100:] > 0, axis=0) + 100
        onset = r1.onset_t[hit, np.arange(n)]
        assert np.median(onset) == pytest.approx(100.0, abs=2.0)


def test_cusum_detects_drops_with_negative_alarms() -> None:
    z = np.r_[np.zeros(5), np.full(10, -3.0)]
    r = cusum(z, np.arange(15.0))
    assert np.flatnonzero(r.alarm).tolist() == [7, 10, 13]  # 2.5 a step, reset after each
    assert (r.alarm[r.alarm != 0] == -1).all()
    assert r.onset_t[[7, 10, 13]].tolist() == [5.0, 8.0, 11.0]
    no_reset = cusum(z, np.arange(15.0), reset=False)
    assert np.flatnonzero(no_reset.alarm).tolist() == [7]
    assert no_reset.lower[-1] == pytest.approx(25.0)


@pytest.mark.parametrize("reset", [True, False])
def test_cusum_one_reading_at_a_time_equals_the_batch(reset: bool) -> None:
    rng = np.random.default_rng(6)
    steps, n = 400, 25
    z = rng.standard_normal((steps, n)) + np.where(rng.random((steps, n)) < 0.1, 2.5, 0.0)
    z[rng.random((steps, n)) < 0.05] = np.nan  # missing readings
    t = 1.7e9 + np.cumsum(rng.integers(1, 600, steps)).astype(float)
    batch = cusum(z, t, reset=reset)
    assert np.count_nonzero(batch.alarm) > 20
    # One at a time, with the state stored as JSON between calls.
    state = None
    alarms, onsets, upper = [], [], []
    for i in range(steps):
        r = cusum(z[i : i + 1], t[i : i + 1], reset=reset, state=state)
        state = CusumState.from_dict(json.loads(json.dumps(r.state.to_dict())))
        alarms.append(r.alarm[0])
        onsets.append(r.onset_t[0])
        upper.append(r.upper[0])
    np.testing.assert_array_equal(np.array(alarms), batch.alarm)
    np.testing.assert_array_equal(np.array(onsets), batch.onset_t)
    np.testing.assert_array_equal(np.array(upper), batch.upper)
    # Random chunks ("a day at a time", of uneven days).
    cuts = np.sort(rng.choice(np.arange(1, steps), 9, replace=False))
    state, parts = None, []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, steps], strict=True):
        r = cusum(z[a:b], t[a:b], reset=reset, state=state)
        state = r.state
        parts.append(r.alarm)
    np.testing.assert_array_equal(np.concatenate(parts), batch.alarm)
    for name in ("upper", "lower", "upper_onset_t", "lower_onset_t"):
        np.testing.assert_array_equal(getattr(state, name), getattr(batch.state, name))


def test_cusum_refuses_old_readings_and_bad_parameters() -> None:
    r = cusum(np.zeros((3, 2)), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="after the state's"):
        cusum(np.zeros((1, 2)), [2.0], state=r.state)
    with pytest.raises(ValueError, match="strictly increasing"):
        cusum(np.zeros(2), [1.0, 1.0])
    with pytest.raises(ValueError, match="h was -1"):
        cusum(np.zeros(2), [0.0, 1.0], h=-1)
    with pytest.raises(ValueError, match="state is for 2 sensors"):
        cusum(np.zeros((1, 3)), [5.0], state=r.state)


# --- zone residuals ------------------------------------------------------------------------


def test_a_city_wide_swing_raises_nothing_and_a_local_drop_does() -> None:
    # 12 sensors in 2 zones, iid N(0,1) z; from step 100 all move +3σ (a heat wave), and
    # from step 150 sensor 4 a further -2σ (a burst near it).
    rng = np.random.default_rng(7)
    z = rng.standard_normal((300, 12))
    z[100:] += 3.0
    z[150:, 4] -= 2.0
    zone = np.repeat([1, 2], 6)
    t = np.arange(300.0)
    raw = cusum(z, t)
    assert (raw.alarm[100:150] > 0).sum(axis=0).min() >= 5  # raw z: every sensor alarms
    res = zone_residual(z, zone)
    r = cusum(res, t)
    # The median is shift-equivariant: the swing leaves the residuals as they were without it
    # (their spread is ≈ √(1 + π/10) ≈ 1.15, so a few chance alarms over 12 × 150 steps).
    calm = zone_residual(z - np.where(np.arange(300) >= 100, 3.0, 0.0)[:, None], zone)
    np.testing.assert_allclose(res[:150], calm[:150], atol=1e-12)
    before = (r.alarm[:150] != 0).sum(axis=0)
    assert before.sum() <= 4
    after = (r.alarm[150:] < 0).sum(axis=0)
    assert after[4] >= 20
    assert np.delete(after, 4).max() <= 2
    first = 150 + int(np.argmax(r.alarm[150:, 4] < 0))
    assert first - 150 <= 12  # a 2σ drop (residual spread ≈ 1.15): ARL ≈ 4–5 steps


def test_zone_residual_is_the_leave_one_out_median() -> None:
    rng = np.random.default_rng(8)
    z = rng.standard_normal((200, 9))
    z[rng.random(z.shape) < 0.2] = np.nan
    zone = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    got = zone_residual(z, zone, min_others=2)
    want = np.full(z.shape, np.nan)
    for i in range(9):
        others = [j for j in range(9) if zone[j] == zone[i] and j != i]
        o = z[:, others]
        ok = np.isfinite(o).sum(axis=1) >= 2
        with np.errstate(all="ignore"):
            want[ok, i] = z[ok, i] - np.nanmedian(o[ok], axis=1)
    np.testing.assert_allclose(got, want, equal_nan=True)


def test_a_zone_regression_follows_a_swing_that_sensors_share_unequally() -> None:
    # 6 sensors of one zone driven by a common factor with loadings 0.5 … 2 (inlet vs far
    # end), plus N(0, 0.3²). In the test period the factor swings +3 (a hot afternoon) and
    # sensor 2 drops a further 1.5 from step 150.
    rng = np.random.default_rng(9)
    load = np.array([0.5, 0.8, 1.0, 1.2, 1.5, 2.0])
    cal = rng.normal(size=(1000, 1)) * load + rng.normal(scale=0.3, size=(1000, 6))
    model = fit_zone_regression(cal, np.zeros(6, int))
    np.testing.assert_allclose(model.spread, 0.3 * np.sqrt(1 + 1 / 5), rtol=0.35)
    model = ZoneRegression.from_dict(json.loads(json.dumps(model.to_dict())))
    f = rng.normal(size=(300, 1)) + np.where(np.arange(300) >= 100, 3.0, 0.0)[:, None]
    z = f * load + rng.normal(scale=0.3, size=(300, 6))
    z[150:, 2] -= 1.5
    t = np.arange(300.0)
    # The median of unequal swings does not cancel them: sensors 0 and 5 alarm on the swing.
    med = cusum(zone_residual(z, np.zeros(6, int)), t)
    assert (med.alarm[100:150] != 0).any(axis=0)[[0, 5]].all()
    reg = cusum(regression_residual(model, z), t)
    # 900 sensor-steps at ARL₀ ≈ 465: about 2 chance alarms, swing or not.
    assert (reg.alarm[:150] != 0).sum() <= 5
    assert np.flatnonzero((reg.alarm[150:] < 0).sum(axis=0) >= 5).tolist() == [2]


# --- real data: seven weeks of hourly inflows of five Italian DMAs (tests/data/bwdf) -------


def bwdf() -> tuple[np.ndarray, np.ndarray]:
    d = np.genfromtxt(
        DATA / "bwdf" / "inflow_2021_09_10.csv",
        delimiter=",",
        skip_header=1,
        usecols=(0, 2, 3, 4, 5, 6),
    )
    return d[:, 0], d[:, 1:]


CEST = 7200.0


def test_the_profile_learns_real_dma_inflows_and_cusum_finds_an_injected_leak() -> None:
    t, v = bwdf()
    assert v.shape == (1176, 5)
    assert np.isnan(v).sum() == 39
    week = ((t - t[0]) // WEEK).astype(int)
    cal, test = week < 4, week == 4
    p = learn_profile(*long_form(t[cal], v[cal]), bin_s=3600, day_mode="weekend", utc_offset_s=CEST)
    assert (p.level == 0).all()  # 4 weeks: >= 8 readings a weekend bin, 20 a weekday bin
    # The daily cycle: night minimum around 03:00-04:00 local, day peak after it.
    night = np.argmin(p.centre[:, 0, :], axis=1)
    assert ((night >= 1) & (night <= 5)).all()
    # On the next week the profile explains most of the variance of the three steady DMAs
    # (DMA 1 and 2 drift down through the autumn: R² 0.63 and 0.89).
    sc = robust_z(p, *long_form(t[test], v[test]))
    res = sc.residual.reshape(-1, 5)
    r2 = 1 - np.nanvar(res, axis=0) / np.nanvar(v[test], axis=0)
    assert (r2[2:] > 0.9).all()
    # A leak of 10 % of DMA 8's mean inflow (≈ 2 L/s) from Thursday 00:00 local.
    z = sc.z.reshape(-1, 5)[:, 4]
    start = 3 * 24
    leak = z + np.r_[np.zeros(start), np.full(z.size - start, 0.1 * 19.9)] / sc.spread[4::5]
    quiet = cusum(z, t[test])
    hit = cusum(leak, t[test])
    first = start + int(np.argmax(hit.alarm[start:] > 0))
    assert first - start <= 6  # hours
    assert (t[test][first] - hit.onset_t[first]) / 3600 <= 8
    # Over the 4 days of leak it alarms several times as often as the same days without.
    assert (hit.alarm[start:] > 0).sum() >= 3 * max((quiet.alarm[start:] > 0).sum(), 1)
