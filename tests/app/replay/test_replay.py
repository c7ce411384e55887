"""Replay on real PostGIS: a small city with sensors, replayed through a real `cityrisk serve`
(HTTP) and through a real Mosquitto and the MQTT consumer, then read back from `reading`.

The replay runs in its own processes and the server commits, so this module has its own
throwaway database (the rolled-back ``session`` fixture would be invisible to them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy.orm import Session

from app import migrations
from app.api.mqtt import BackgroundConsumer
from app.db import create_db_engine, make_sessionmaker
from app.db import libpq_url as libpq
from app.errors import InvalidInput
from app.flows.demo import demo_sensors_path
from app.local.broker import REPLAY_DEVICE, LocalBroker, device_topic
from app.replay.fleet import Fleet, load_fleet
from app.replay.model import MAX_AHEAD_S, parse_duration, resolve_window
from app.replay.readings import Readings
from app.replay.readings import batches as replay_batches
from app.replay.readings import generate as replay_generate
from app.replay.run import Options, RunStats
from app.replay.run import execute as replay_execute
from app.replay.run import prepare as replay_prepare
from app.replay.run import run as replay_run
from app.replay.scenarios import DEMO_WINDOWS, Plan, plan_scenario
from app.replay.sinks import ReplayError, SendStats
from app.scratch import free_port, scratch_database, stop_process
from app.sensors.registry import import_sensors
from app.settings import Settings
from app.taxonomy.indicators import INDICATORS
from tests import factories as f

LON, LAT = -71.1, 42.37
M_PER_DEG_LAT = 111_000.0
M_PER_DEG_LON = 111_000.0 * float(np.cos(np.radians(LAT)))
TIMEOUT_S = 60.0


def at(east_m: float, north_m: float) -> tuple[float, float]:
    return LON + east_m / M_PER_DEG_LON, LAT + north_m / M_PER_DEG_LAT


def wkt_line(*points_m: tuple[float, float]) -> str:
    return "LINESTRING(" + ", ".join("{} {}".format(*at(*p)) for p in points_m) + ")"


def wkt_box(x0: float, y0: float, x1: float, y1: float) -> str:
    corners = [at(x0, y0), at(x1, y0), at(x1, y1), at(x0, y1), at(x0, y0)]
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in corners) + "))"


# Assets: (external id, kind, WKT, attributes). Everything in metres east/north of (LON, LAT).
ASSETS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("gas-1", "gas_pipe", wkt_line((0, 0), (200, 0)), {"pressure_mpa": 0.4}),
    ("gas-2", "gas_pipe", wkt_line((0, 1000), (200, 1000)), {"pressure_mpa": 0.1}),
    ("mh-1", "manhole", "POINT({} {})".format(*at(50, 5)), {}),
    ("mh-2", "manhole", "POINT({} {})".format(*at(150, 30)), {}),
    ("mh-3", "manhole", "POINT({} {})".format(*at(100, 1005)), {}),
    ("water-1", "water_pipe", wkt_line((0, -500), (300, -500)), {"diameter_mm": 500}),
    ("bridge-1", "bridge", wkt_box(500, 0, 560, 20), {}),
    ("zone-1", "flood_zone", wkt_box(-400, -300, -200, -100), {"return_period_yr": 100}),
    ("drain-1", "drainage_pipe", wkt_line((-350, -200), (-250, -200)), {"diameter_mm": 900}),
    ("hood-1", "admin_area", wkt_box(-1000, -1000, 1500, 1500), {}),
    ("station-1", "subway_station", "POINT({} {})".format(*at(300, 300)), {}),
    ("plant-1", "chemical_plant", "POINT({} {})".format(*at(800, 400)), {"chemicals": "ammonia"}),
    ("weather-1", "weather_station", "POINT({} {})".format(*at(-600, 600)), {}),
]


def sensor(eid: str, kind: str, where: tuple[float, float], interval: int, **props: Any) -> Any:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": list(at(*where))},
        "properties": {
            "external_id": eid,
            "kind": kind,
            "unit": INDICATORS[kind].unit,
            "interval_s": interval,
            **props,
        },
    }


def bound(asset: str) -> dict[str, str]:
    return {"asset_external_id": asset, "asset_source": "t"}


SENSORS = [
    sensor("ch4-1", "ch4_pct_lel", (50, 5), 60),  # in mh-1, 5 m from gas-1
    sensor("ch4-2", "ch4_pct_lel", (150, 30), 60),  # in mh-2, 30 m from gas-1
    sensor("ch4-3", "ch4_pct_lel", (100, 1005), 60),  # in mh-3, by gas-2, 1 km away
    sensor("p-gas-1", "pressure_mpa", (0, 0), 60, **bound("gas-1")),
    sensor("p-water-1", "pressure_mpa", (150, -500), 60, **bound("water-1")),
    sensor("flow-1", "flow_m3h", (0, -500), 60, **bound("water-1")),
    sensor("noise-1", "leak_noise_db", (75, -500), 300, **bound("water-1")),
    sensor("strain-1", "strain_ue", (530, 10), 60, **bound("bridge-1")),
    sensor("defl-1", "deflection_mm", (530, 10), 60, **bound("bridge-1")),
    sensor("tilt-1", "tilt_deg", (530, 10), 60, **bound("bridge-1")),
    sensor("level-1", "level_m", (-300, -200), 60, **bound("drain-1")),
    sensor("pond-1", "ponding_cm", (-300, -150), 60, **bound("zone-1")),
    sensor("rain-1", "rain_mm_h", (250, 250), 60, **bound("hood-1")),
    sensor("people-1", "people_count", (300, 300), 300, **bound("station-1")),
    sensor("nh3-1", "nh3_ppm", (800, 400), 60, **bound("plant-1")),
    sensor("tank-1", "tank_level_pct", (800, 400), 300, **bound("plant-1")),
    sensor("wind-1", "wind_speed_ms", (-600, 600), 60, **bound("weather-1")),
    sensor("winddir-1", "wind_dir_deg", (-600, 600), 60, **bound("weather-1")),
]


@dataclass
class City:
    url: str
    sqlalchemy_url: str


@pytest.fixture(scope="module")
def city(
    server_url: str, admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[City]:
    """A migrated database with the assets and sensors above, committed."""
    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        path = tmp_path_factory.mktemp("replay") / "sensors.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": SENSORS}))
        engine = create_db_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                # Plate lifeline for every row, as this test has always written them (the
                # factory's default, the taxonomy's, differs for the zone, area and station).
                for eid, kind, wkt, attrs in ASSETS:
                    f.asset(conn, kind, wkt, plate="lifeline", source="t", external_id=eid, **attrs)
            with make_sessionmaker(engine)() as session, session.begin():
                report = import_sensors(session, path)
        finally:
            engine.dispose()
        assert report.written
        assert report.bound_explicit + report.bound_spatial == len(SENSORS), report.unbound
        yield City(libpq(url), url)


def child_env(city: City, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CITYRISK_DATA_DIR")}
    # No MQTT consumer in the server: this module's HTTP test must not depend on a broker.
    return {**base, "DATABASE_URL": city.url, "CITYRISK_MQTT_CONSUMER": "0", **extra}


@pytest.fixture(scope="module")
def server(city: City) -> Iterator[str]:
    """`cityrisk serve` on a free port against the city's database; its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        env=child_env(city),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "cityrisk serve did not get ready"
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc)


def readings(city: City, since: datetime, until: datetime) -> dict[str, list[tuple[int, float]]]:
    """Stored readings in [since, until) per sensor external id: (epoch s, value), by time."""
    out: dict[str, list[tuple[int, float]]] = {s["properties"]["external_id"]: [] for s in SENSORS}
    with psycopg.connect(city.url) as conn:
        rows = conn.execute(
            "SELECT s.external_id, r.ts, r.value FROM reading r "
            "JOIN sensor s ON s.id = r.sensor_id WHERE r.ts >= %s AND r.ts < %s "
            "ORDER BY s.external_id, r.ts",
            (since, until),
        ).fetchall()
    for eid, ts, value in rows:
        out[eid].append((int(ts.timestamp()), value))
    return out


def epoch(text_value: str) -> int:
    return int(datetime.fromisoformat(text_value.replace("Z", "+00:00")).timestamp())


# -- end to end -------------------------------------------------------------------------------
def test_gas_leak_over_http_stores_every_reading_and_matches_the_truth(
    city: City, server: str, tmp_path: Path
) -> None:
    truth_path = tmp_path / "truth.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "app", "replay", "gas-leak", "--speed", "0"),
            *("--duration", "1h", "--url", server, "--truth", str(truth_path)),
            *("--seed", "7", "--batch-s", "300"),
        ],
        env=child_env(city),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rejected 0" in proc.stdout, proc.stdout

    truth = json.loads(truth_path.read_text())
    assert {"scenario", "seed", "start", "end", "incidents"} <= set(truth)
    assert truth["completed"]["readings"] > 0
    (incident,) = truth["incidents"]
    assert {"type", "start", "end", "assets", "affected_sensors", "expected_peak"} <= set(incident)
    assert incident["type"] == "gas-leak"
    assert [a["external_id"] for a in incident["assets"]] == ["gas-1"]
    assert set(incident["affected_sensors"]) == {"ch4-1", "ch4-2", "p-gas-1"}
    start, end = epoch(truth["start"]), epoch(truth["end"])
    assert end - start == 3600
    leak_from, leak_to = epoch(incident["start"]), epoch(incident["end"])
    assert start < leak_from < leak_to < end

    stored = readings(city, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
    for feature in SENSORS:
        props = feature["properties"]
        series = stored[props["external_id"]]
        interval = props["interval_s"]
        # One reading per interval, none missing, none extra, evenly spaced.
        assert len(series) == 3600 // interval, props["external_id"]
        assert set(np.diff([t for t, _ in series]).tolist()) == {interval}
        indicator = INDICATORS[props["kind"]]
        assert all(indicator.minimum <= v <= indicator.maximum for _, v in series)

    by_sensor = {s["external_id"]: s for s in incident["sensors"]}
    for eid in ("ch4-1", "ch4-2"):
        spec = by_sensor[eid]
        assert 20 <= spec["expected_peak"] <= 60
        peak_from, peak_until = epoch(spec["peak_from"]), epoch(spec["peak_until"])
        for t, value in stored[eid]:
            if t < leak_from or t >= leak_to:
                assert value < 5, (eid, t, value)  # background outside the window
            elif peak_from <= t <= peak_until:
                assert 0.75 * spec["expected_peak"] <= value <= 1.25 * spec["expected_peak"]
    # Nearer manhole, more gas.
    assert by_sensor["ch4-1"]["expected_peak"] > by_sensor["ch4-2"]["expected_peak"]
    # The manhole by the other main never sees the leak.
    assert max(v for _, v in stored["ch4-3"]) < 5
    pressure = by_sensor["p-gas-1"]
    assert pressure["direction"] == "down"
    during = [
        v
        for t, v in stored["p-gas-1"]
        if epoch(pressure["peak_from"]) <= t <= epoch(pressure["peak_until"])
    ]
    before = [v for t, v in stored["p-gas-1"] if t < leak_from]
    # A drop of 12-30 %; meal-time dips (<= 4 %) and noise (0.4 %) stay above the trough.
    assert max(during) < 0.9 * pressure["baseline"]
    assert min(before) > pressure["expected_peak"]


def test_demo_scenario_over_mqtt_reaches_the_database(city: City) -> None:
    """All five incidents, published on MQTT, consumed by cityrisk's consumer, stored."""
    folder = Path(tempfile.mkdtemp(prefix="cityrisk-replay-mqtt-"))
    folder.chmod(0o755)  # the broker drops to the mosquitto user
    broker = LocalBroker(Settings(data_dir=folder, mqtt_port=free_port()))
    try:
        broker.up(lambda _: None)
        settings = Settings(
            database_url=city.sqlalchemy_url,
            data_dir=folder,
            mqtt_port=broker.port,
            mqtt_consumer=False,
            mqtt_client_id=f"cityrisk-test-{secrets.token_hex(4)}",
        )
        consumer = BackgroundConsumer(settings).start()
        try:
            assert consumer.consumer.connected.wait(TIMEOUT_S)
            start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
            options = Options(
                "demo",
                target="mqtt",
                url=broker.device_url(REPLAY_DEVICE),  # as `cityrisk replay --to mqtt` does
                speed=0,
                duration="20m",
                start=start.isoformat(),
                batch_s=60,
                seed=3,
                topic_prefix=device_topic(REPLAY_DEVICE),
            )
            engine = create_db_engine(city.sqlalchemy_url, pool_size=1)
            try:
                with make_sessionmaker(engine)() as session:
                    prepared = replay_prepare(session, options, http_port=0, mqtt_url="")
            finally:
                engine.dispose()
            summary = replay_execute(prepared, lambda _: None)
            assert "MQTT messages acknowledged" in summary
            assert [i.type for i in prepared.plan.incidents] == list(DEMO_WINDOWS)
            expected = sum(1200 // f["properties"]["interval_s"] for f in SENSORS)
            end = start + timedelta(minutes=20)
            deadline = time.monotonic() + TIMEOUT_S
            while True:
                got = sum(len(v) for v in readings(city, start, end).values())
                if got >= expected or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert got == expected
            assert consumer.stats.readings_rejected == 0
        finally:
            consumer.stop()
    finally:
        broker.down(lambda _: None)
        shutil.rmtree(folder, ignore_errors=True)


def test_cityrisk_replay_to_the_local_broker_logs_in_as_the_replay_device(city: City) -> None:
    """No --url, no MQTT_URL: the CLI publishes as `replay` on its own topics, and the broker
    acknowledges every message (a refused one would fail the replay)."""
    folder = Path(tempfile.mkdtemp(prefix="cityrisk-replay-cli-"))
    folder.chmod(0o755)  # the broker drops to the mosquitto user
    broker = LocalBroker(Settings(data_dir=folder, mqtt_port=free_port()))
    try:
        broker.up(lambda _: None)
        own = ("DATABASE_URL", "DATABASE_MIGRATE_URL", "MQTT_URL", "CITYRISK_DATA_DIR")
        env = {k: v for k, v in os.environ.items() if k not in own}
        env |= {
            "DATABASE_URL": city.sqlalchemy_url,
            "CITYRISK_DATA_DIR": str(folder),
            "CITYRISK_MQTT_PORT": str(broker.port),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "app", "replay", "gas-leak", "--to", "mqtt", "--speed", "0",
             "--duration", "10m", "--batch-s", "60"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        broker.down(lambda _: None)
        shutil.rmtree(folder, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert "MQTT messages acknowledged by the broker" in proc.stdout
    assert f"mqtt://replay:***@127.0.0.1:{broker.port} cityrisk/readings/replay/<kind>" in (
        proc.stderr
    )


def test_a_replay_the_broker_will_not_deliver_fails_loudly(city: City) -> None:
    """The replay's device may publish under cityrisk/readings/replay only: elsewhere the broker
    answers each PUBACK with "Not authorized", and the replay says so instead of counting it."""
    folder = Path(tempfile.mkdtemp(prefix="cityrisk-replay-acl-"))
    folder.chmod(0o755)  # the broker drops to the mosquitto user
    broker = LocalBroker(Settings(data_dir=folder, mqtt_port=free_port()))
    try:
        broker.up(lambda _: None)
        options = Options(
            "gas-leak", target="mqtt", url=broker.device_url(REPLAY_DEVICE), speed=0,
            duration="5m", batch_s=60, topic_prefix="cityrisk/readings",
        )  # fmt: skip
        engine = create_db_engine(city.sqlalchemy_url, pool_size=1)
        try:
            with make_sessionmaker(engine)() as session:
                prepared = replay_prepare(session, options, http_port=0, mqtt_url="")
        finally:
            engine.dispose()
        with pytest.raises(ReplayError, match="Not authorized"):
            replay_execute(prepared, lambda _: None)
    finally:
        broker.down(lambda _: None)
        shutil.rmtree(folder, ignore_errors=True)


# -- determinism and generation ---------------------------------------------------------------
def all_readings(session: Session, seed: int, batch_s: int, start: int) -> dict[str, Any]:
    """Every reading of a 2 h demo replay, sorted by (sensor, ts), with the plan and truth."""
    fleet = load_fleet(session, seed)
    plan = plan_scenario(session, fleet, "demo", start, start + 7200, seed)
    parts = [r for _, _, r in replay_batches(fleet, plan, batch_s)]
    sensor = fleet.external_id[np.concatenate([p.sensor for p in parts])].astype(str)
    ts = np.concatenate([p.ts for p in parts])
    value = np.concatenate([p.value for p in parts])
    order = np.lexsort((ts, sensor))
    return {
        "keys": (sensor[order].tolist(), ts[order].tolist()),
        "values": value[order].tolist(),
        "truth": plan.truth(fleet),
        "plan": plan,
        "fleet": fleet,
    }


def test_same_seed_same_readings_whatever_the_batching(city: City) -> None:
    start = int(datetime.now(UTC).timestamp()) - 86_400
    engine = create_db_engine(city.sqlalchemy_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            one = all_readings(session, 11, 10, start)
            two = all_readings(session, 11, 600, start)
            other = all_readings(session, 12, 10, start)
    finally:
        engine.dispose()
    assert one["keys"] == two["keys"]
    assert one["values"] == two["values"]
    assert one["truth"] == two["truth"]
    assert one["keys"] == other["keys"]  # same sensors and instants (phases are per device) ...
    assert one["values"] != other["values"]  # ... other values
    assert len(one["plan"].incidents) == len(DEMO_WINDOWS)
    # The NDJSON is what the ingest reads: one object per line, every field there.
    batch = replay_generate(one["fleet"], one["plan"], start, start + 600)
    lines = batch.ndjson(one["fleet"]).decode().splitlines()
    assert len(lines) == len(batch) > 0
    first = json.loads(lines[0])
    assert set(first) == {"sensor", "ts", "value"}
    assert first["ts"].endswith("Z")


def test_baselines_follow_the_day(city: City) -> None:
    """People counts peak in the rush hour; water pressure is lowest in the morning peak; wind
    picks up in the afternoon."""
    engine = create_db_engine(city.sqlalchemy_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            fleet = load_fleet(session, 1)
    finally:
        engine.dispose()
    day = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    offset = int(-LON / 15 * 3600)  # local solar midnight in UTC
    plan = Plan("none", 1, day, day + 86_400, [])
    got = replay_generate(fleet, plan, day + offset, day + offset + 86_400)
    hours = (got.ts - day - offset) / 3600

    def series(eid: str) -> tuple[Any, Any]:
        mask = fleet.external_id[got.sensor] == eid
        return hours[mask], got.value[mask]

    h, people = series("people-1")
    assert people[(h > 8) & (h < 8.5)].mean() > 10 * people[(h > 2) & (h < 4)].mean()
    h, water = series("p-water-1")
    assert water[(h > 7.5) & (h < 8)].mean() < water[(h > 2) & (h < 4)].mean() * 0.95
    h, ch4 = series("ch4-1")
    assert ch4.min() >= 0
    assert ch4.max() < 3  # background
    # Wind: strongest in the afternoon, calm at night; from the west-south-west, in range.
    h, speed = series("wind-1")
    assert speed.min() >= 0
    assert speed[(h > 13) & (h < 16)].mean() > 1.5 * speed[(h > 1) & (h < 4)].mean()
    h, direction = series("winddir-1")
    assert direction.min() >= 0
    assert direction.max() <= 360
    assert 200 < np.median(direction) < 320
    _, nh3 = series("nh3-1")
    assert nh3.max() < 25  # background, below the first alarm level


# -- time -------------------------------------------------------------------------------------
def test_start_defaults_and_what_the_ingest_would_refuse() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    now_s = int(now.timestamp())
    assert resolve_window(None, 7200, 1.0, now)[:2] == (now_s, now_s + 7200)
    assert resolve_window(None, 7200, 10.0, now)[:2] == (now_s - 7200, now_s)
    assert resolve_window(None, 7200, 0.0, now)[:2] == (now_s - 7200, now_s)
    # Live start at 10x: simulated time would run ahead; allowed, but the user is told.
    _, _, notes = resolve_window("now", 7200, 10.0, now)
    assert "slowed to real time" in notes[0]
    with pytest.raises(InvalidInput, match="speed 0"):
        resolve_window("now", 3600, 0.0, now)
    # No age limit of its own: the service's CITYRISK_MAX_READING_AGE_DAYS judges.
    old = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    assert resolve_window("2024-01-01T00:00:00Z", 3600, 0.0, now)[:2] == (old, old + 3600)
    with pytest.raises(InvalidInput, match="UTC offset"):
        resolve_window("2026-11-28T08:00:00", 3600, 0.0, now)
    assert parse_duration("1h30m") == 5400
    with pytest.raises(InvalidInput):
        parse_duration("2 hours")


def test_pacing_follows_speed_and_never_runs_ahead_of_the_clock() -> None:
    """A fake clock: at speed 60 a 60 s batch is sent each second; from live start at 10x the
    replay waits once it is 4 min ahead of the wall clock."""

    class Clock:
        def __init__(self, wall: float) -> None:
            self.mono, self.wall = 0.0, wall

        def sleep(self, seconds: float) -> None:
            self.mono += seconds
            self.wall += seconds

    class Collect:
        def __init__(self, clock: Clock) -> None:
            self.clock = clock
            self.sent: list[tuple[float, float, int]] = []  # (wall, simulated end, readings)
            self.stats = SendStats()

        def send(self, fleet: Fleet, readings: Readings) -> None:
            self.sent.append((self.clock.wall, float(readings.ts.max(initial=0)), len(readings)))

        def close(self) -> None:
            pass

    def replay(speed: float, start: float, end: float) -> tuple[Clock, Collect, RunStats]:
        clock = Clock(now)
        sink = Collect(clock)
        stats = replay_run(
            empty_fleet(),
            Plan("none", 1, int(start), int(end), []),
            sink,
            speed=speed,
            batch_s=60,
            clock=lambda: clock.mono,
            wall=lambda: clock.wall,
            sleep=clock.sleep,
        )
        return clock, sink, stats

    now = 1_800_000_000.0
    clock, sink, stats = replay(60.0, now - 3600, now)  # the past hour at 60x
    assert stats.batches == 60
    assert clock.mono == pytest.approx(60.0)  # ... takes a minute

    clock, sink, stats = replay(10.0, now, now + 7200)  # live start at 10x
    assert stats.batches == 120
    ends = [now + 60 * (k + 1) for k in range(stats.batches)]
    walls = [wall for wall, _, _ in sink.sent]
    # Each batch is sent when its end is at most 4 min after the wall clock ...
    assert max(e - w for e, w in zip(ends, walls, strict=True)) <= MAX_AHEAD_S + 1e-6
    # ... so the replay ends 4 min before its last timestamp: slowed to real time.
    assert clock.mono == pytest.approx(7200 - MAX_AHEAD_S)


def empty_fleet() -> Fleet:
    i, f, o = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, object)
    return Fleet(
        i, o, o, i, i, o, o, f, f, o, f, np.zeros(0, np.uint64), i, f, f, f, np.zeros(0, object)
    )


# -- the demo layout ---------------------------------------------------------------------------
def test_demo_sensor_layout_is_well_formed() -> None:
    doc = json.loads(demo_sensors_path().read_text())
    props = [f["properties"] for f in doc["features"]]
    assert 1000 <= len(props) <= 2000
    assert len({p["external_id"] for p in props}) == len(props)
    for p in props:
        assert p["unit"] == INDICATORS[p["kind"]].unit  # exactly, not an alias
        assert p["interval_s"] > 0
        assert p["external_id"].startswith("cam-")
    kinds = {p["kind"] for p in props}
    assert {"ch4_pct_lel", "pressure_mpa", "strain_ue", "level_m", "people_count"} <= kinds


@pytest.mark.slow
def test_the_demo_city_binds_every_sensor_and_stages_all_five_incidents(
    server_url: str, admin_url: str
) -> None:
    """`load demo` imports and binds the demo sensors; the demo scenario finds its assets."""
    from app.flows import demo

    with scratch_database(server_url, admin_url=admin_url) as url:
        migrations.upgrade(url)
        engine = create_db_engine(url, pool_size=1)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                report = demo.load(session).sensors
                assert report is not None
                assert report.rejected == []
                assert report.unbound == []
                assert report.bound_explicit + report.bound_spatial == report.rows_read
                start = int(datetime.now(UTC).timestamp()) - 7200
                fleet = load_fleet(session, 1)
                plan = plan_scenario(session, fleet, "demo", start, start + 7200, 1)
                session.rollback()
        finally:
            engine.dispose()
    assert len(fleet) == report.rows_read
    assert [i.type for i in plan.incidents] == list(DEMO_WINDOWS)
    gas = plan.truth(fleet)["incidents"][0]
    assert any(s["kind"] == "ch4_pct_lel" for s in gas["sensors"])
    assert plan.notes == []
