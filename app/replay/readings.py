"""Generation: every reading of every sensor due in a batch, in one numpy pass, as NDJSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.dtypes import StringDType

from app.replay.fleet import Fleet
from app.replay.model import F64, I64, model_of, normal, solar_hours
from app.replay.scenarios import Plan


# -- generation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Readings:
    """Readings of one batch: fleet position, epoch second and value, one row per reading."""

    sensor: I64
    ts: I64
    value: F64

    def __len__(self) -> int:
        return len(self.ts)

    def ndjson(self, fleet: Fleet, rows: I64 | slice | None = None) -> bytes:
        """The readings as NDJSON (``{"sensor": …, "ts": …, "value": …}`` per line)."""
        pick = slice(None) if rows is None else rows
        sensor, ts, value = self.sensor[pick], self.ts[pick], self.value[pick]
        stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s", timezone="UTC")
        lines = (
            fleet.json_prefix[sensor]
            + stamps.astype(StringDType())
            + '","value":'
            + value.astype(StringDType())
            + "}\n"
        )
        return "".join(lines.tolist()).encode()


def due(fleet: Fleet, a: int, b: int) -> tuple[I64, I64]:
    """Every (sensor position, epoch second) with a reading in ``[a, b)``.

    Sensor i reports at ``phase_i + k · interval_i``; the k of the window are counted per
    sensor and expanded with ``np.repeat``.
    """
    interval, phase = fleet.interval_s, fleet.phase
    k0 = -((phase - a) // interval)  # ceil((a - phase) / interval)
    k1 = -((phase - b) // interval)
    count = np.maximum(k1 - k0, 0)
    sensor = np.repeat(np.arange(len(fleet), dtype=np.int64), count)
    first = np.repeat(np.cumsum(count) - count, count)
    k = np.repeat(k0, count) + (np.arange(len(sensor)) - first)
    return sensor, phase[sensor] + k * interval[sensor]


def generate(fleet: Fleet, plan: Plan, a: int, b: int) -> Readings:
    """All readings due in ``[a, b)``: baseline, incident effects, noise; clipped and rounded."""
    sensor, ts = due(fleet, a, b)
    value = np.empty(len(ts))
    hours = solar_hours(ts, fleet.lon[sensor])
    profile = fleet.profile[sensor]
    for name in np.unique(profile) if len(ts) else []:
        m = profile == name
        value[m] = model_of(str(name)).level(fleet.nominal[sensor[m]], hours[m])
    for incident in plan.incidents:
        for effect in incident.effects:
            if (ts.max(initial=a) < effect.start.min()) or (a >= effect.end.max()):
                continue
            slot = np.full(len(fleet), -1, dtype=np.int64)
            slot[effect.sensors] = np.arange(len(effect.sensors))
            at = slot[sensor]
            hit = at >= 0
            value[hit] += effect.delta[at[hit]] * effect.envelope(at[hit], ts[hit])
    noise_abs = np.zeros(len(fleet))
    noise_rel = np.zeros(len(fleet))
    for name in np.unique(fleet.profile) if len(fleet) else []:
        m = fleet.profile == name
        noise_abs[m], noise_rel[m] = model_of(str(name)).noise, model_of(str(name)).rel_noise
    sd = noise_abs[sensor] + noise_rel[sensor] * np.abs(value)
    value += sd * normal(fleet.key[sensor], ts, stream=2)
    value = np.clip(value, fleet.low[sensor], fleet.high[sensor])
    scale = fleet.scale[sensor]
    value = np.round(value * scale) / scale + 0.0  # + 0.0 turns -0.0 into 0.0
    return Readings(sensor, ts, value)


def batches(fleet: Fleet, plan: Plan, batch_s: int) -> Iterator[tuple[int, int, Readings]]:
    """``(a, b, readings)`` for consecutive windows of ``batch_s`` simulated seconds."""
    a = plan.start
    while a < plan.end:
        b = min(a + batch_s, plan.end)
        yield a, b, generate(fleet, plan, a, b)
        a = b
