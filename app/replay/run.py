"""The replay run: pace the batches against the wall clock, send them, write the truth; and
the ``cityrisk replay`` command's preparation and execution."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.auth.service import create_token
from app.errors import InvalidInput
from app.replay.fleet import Fleet, load_fleet
from app.replay.model import MAX_AHEAD_S, iso, parse_duration, resolve_window
from app.replay.readings import Readings, generate
from app.replay.scenarios import SCENARIOS, Plan, plan_scenario
from app.replay.sinks import TARGETS, TOPIC_PREFIX, Sink, open_sink
from app.settings import parse_mqtt_url


# -- the run ----------------------------------------------------------------------------------
@dataclass
class RunStats:
    batches: int = 0
    readings: int = 0
    waited_s: float = 0.0  # wall time spent waiting for simulated (or real) time
    elapsed_s: float = 0.0


def run(
    fleet: Fleet,
    plan: Plan,
    sink: Sink,
    *,
    speed: float,
    batch_s: int,
    progress: Callable[[int, RunStats], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> RunStats:
    """Publish the plan's readings batch by batch, paced by ``speed`` and the wall clock.

    A batch ``[a, b)`` is sent when simulated time reaches ``b`` (at ``speed > 0``) and never
    while ``b`` is more than ``MAX_AHEAD_S`` after the wall clock.
    """
    stats = RunStats()
    began = clock()
    for b, readings in _paced(fleet, plan, batch_s, speed, began, stats, clock, wall, sleep):
        sink.send(fleet, readings)
        stats.batches += 1
        stats.readings += len(readings)
        if progress is not None:
            progress(b, stats)
    stats.elapsed_s = clock() - began
    return stats


def _paced(
    fleet: Fleet,
    plan: Plan,
    batch_s: int,
    speed: float,
    began: float,
    stats: RunStats,
    clock: Callable[[], float],
    wall: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[tuple[int, Readings]]:
    a = plan.start
    while a < plan.end:
        b = min(a + batch_s, plan.end)
        wait = 0.0
        if speed > 0:
            wait = began + (b - plan.start) / speed - clock()
        wait = max(wait, b - (wall() + MAX_AHEAD_S))
        if wait > 0:
            sleep(wait)
            stats.waited_s += wait
        yield b, generate(fleet, plan, a, b)
        a = b


def write_truth(path: Path, document: dict[str, Any]) -> None:
    """Write the ground truth atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    )
    partial.replace(path)


# -- the command ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """``cityrisk replay`` options, as typed by the user (checked by :func:`prepare`)."""

    scenario: str
    target: str = "http"
    url: str | None = None
    speed: float = 1.0
    duration: str = "2h"
    start: str | None = None
    batch_s: int = 10
    truth: Path | None = None
    seed: int = 1
    topic_prefix: str = TOPIC_PREFIX
    token: str | None = None


@dataclass
class Prepared:
    options: Options
    url: str
    fleet: Fleet
    plan: Plan
    # The bearer token the HTTP sink sends: --token, or a device token made for this run.
    token: str | None = None
    token_note: str | None = None


def prepare(session: Session, options: Options, *, http_port: int, mqtt_url: str) -> Prepared:
    """Check the options, read the sensors, plan the incidents and write the truth file.

    ``http_port`` and ``mqtt_url`` give the default ``--url`` per target. Over HTTP without
    ``token``, makes a device token for the fleet's sensors that expires when the run should
    have ended (plus an hour): the one write it does.
    """
    if options.target not in TARGETS:
        raise InvalidInput(f"--to {options.target!r} is not one of {', '.join(TARGETS)}")
    if options.scenario not in SCENARIOS:
        raise InvalidInput(f"scenario {options.scenario!r} is not one of {', '.join(SCENARIOS)}")
    if options.batch_s < 1:
        raise InvalidInput("--batch-s must be a whole number of seconds >= 1")
    start, end, notes = resolve_window(
        options.start, parse_duration(options.duration), options.speed, datetime.now(UTC)
    )
    fleet = load_fleet(session, options.seed)
    if not len(fleet):
        raise InvalidInput("no active sensors in the database (`cityrisk load demo` adds some)")
    plan = plan_scenario(session, fleet, options.scenario, start, end, options.seed)
    plan.notes[:0] = notes
    default = f"http://127.0.0.1:{http_port}" if options.target == "http" else mqtt_url
    prepared = Prepared(options, options.url or default, fleet, plan, options.token)
    if options.target == "http" and options.token is None:
        prepared.token, prepared.token_note = _run_token(session, fleet, start, end, options.speed)
    if options.truth is not None:
        write_truth(options.truth, _truth(prepared, None))
    return prepared


def _run_token(
    session: Session, fleet: Fleet, start: float, end: float, speed: float
) -> tuple[str, str]:
    """A device token for this run's sensors (least privilege: it can post only their readings)."""
    wall_s = (end - start) / speed if speed > 0 else 0.0  # simulated seconds (epoch) / speed
    expires = datetime.now(UTC) + timedelta(seconds=wall_s) + timedelta(hours=1)
    row, key = create_token(
        session,
        name=f"replay-{secrets.token_hex(4)}",
        role="device",
        sensors=sorted({str(e) for e in fleet.external_id}),
        expires_at=expires,
        created_by="replay",
    )
    note = (
        f"posting as device token {row.name!r} (its {len(fleet):,} sensors; "
        f"expires {expires:%Y-%m-%dT%H:%MZ})"
    )
    return key, note


def _truth(prepared: Prepared, stats: RunStats | None) -> dict[str, Any]:
    o = prepared.options
    target = o.target if o.target == "http" else f"mqtt {o.topic_prefix}/<kind>"
    extra: dict[str, Any] = {"target": target, "speed": o.speed, "batch_s": o.batch_s}
    if stats is not None:
        extra["completed"] = {"readings": stats.readings, "batches": stats.batches}
    return prepared.plan.truth(prepared.fleet, **extra)


def execute(prepared: Prepared, say: Callable[[str], None], every_s: float = 10.0) -> str:
    """Publish the prepared replay; progress every ``every_s`` of wall time; a summary line."""
    o, plan = prepared.options, prepared.plan
    for note in plan.notes:
        say(f"replay: note: {note}")
    for incident in plan.incidents:
        say(
            f"replay: {incident.type} {iso(incident.start)} → {iso(incident.end)} on "
            f"{', '.join(str(a['external_id']) for a in incident.assets)}: "
            f"{sum(len(e.sensors) for e in incident.effects)} sensors"
        )
    if prepared.token_note:
        say(f"replay: {prepared.token_note}")
    sink = open_sink(o.target, prepared.url, topic_prefix=o.topic_prefix, token=prepared.token)
    if o.target == "http":
        where = prepared.url
    else:  # an MQTT URL carries the login: say where, not the password
        where = f"{parse_mqtt_url(prepared.url).redacted()} {o.topic_prefix}/<kind>"
    say(
        f"replay: {len(prepared.fleet):,} sensors, {iso(plan.start)} → {iso(plan.end)} at speed "
        f"{o.speed:g} to {where}"
    )
    last = [time.monotonic()]

    def progress(b: int, stats: RunStats) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            say(f"replay: at {iso(b)}, {stats.readings:,} readings sent")

    try:
        stats = run(prepared.fleet, plan, sink, speed=o.speed, batch_s=o.batch_s, progress=progress)
    finally:
        sink.close()
    if o.truth is not None:
        write_truth(o.truth, _truth(prepared, stats))
    sent = sink.stats
    summary = (
        f"replayed {o.scenario}: {stats.readings:,} readings for {len(prepared.fleet):,} sensors "
        f"in {stats.batches} batches, {stats.elapsed_s:.1f} s"
    )
    if o.target == "http":
        summary += (
            f"; accepted {sent.accepted:,}, duplicates {sent.duplicates:,}, "
            f"rejected {sent.rejected:,}"
        )
        for reason in sent.rejections:
            say(f"replay: rejected {reason}")
    else:
        summary += f"; {sent.requests:,} MQTT messages acknowledged by the broker"
    return summary
