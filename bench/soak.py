"""Soak: mixed load against one server for minutes, quiet and with a hostile client.

Usage: .venv/bin/python bench/soak.py [--seconds 600] [--rate 5000] [--sse 20] [--tile-rate 100]
                                      [--feature-rate 10] [--trace requests.csv]

A throwaway database on the server cityrisk uses (DATABASE_URL or the local cluster) gets the
demo city and the default rules, and ``cityrisk serve`` (one uvicorn worker, MQTT and the offline
check off) serves it on a free port. Then, for ``--seconds`` each, two runs one after the other:

1. **quiet**: the honest clients only —
   - *ingest*: the demo's replay (``app.replay``: every demo sensor with its own interval and
     noise, the demo's scripted incidents) sped up so it posts ``--rate`` readings per second,
     in NDJSON batches of one wall second, as a device token of those sensors;
   - *tiles*: 2 threads fetching random MVT tiles of the demo city (z12–z16, the
     ``gas_pipe,alarms`` layers), ``--tile-rate`` per second in all (100: a wall of map
     screens panning);
   - *features*: 1 thread fetching ``/ogc/collections/gas_pipe/items`` pages (100 per page, a
     random bbox), ``--feature-rate`` per second (10);
   - *sse*: ``--sse`` clients on ``/alarms/stream``;
   - *analyst*: every 2 s, the newest raised alarm is verified with an analyst token.
2. **hostile**: the same, plus one hostile client sending, round-robin and back to back, what
   the security review of issue 12 sent: a 200 MB streamed body, bad and missing tokens on every
   write, text/plain YAML to /rules/import, offsets of 2**63, NUL bytes in ids, a non-ASCII
   feature id, a 50,000-vertex geometry import, CSV full of bad rows, YAML nested 500 deep.

Reported per run and route: requests, honest errors (any 5xx, transport error, or an answer the
honest client did not expect), p50 / p99 latency; SSE events received; the server's RSS at the
start and end of each run (VmRSS of the process). Goals (issue 12): 0 errors; p99 ingest < 500
ms and tiles < 50 ms; RSS flat; hostile-run p99 of the honest routes within 2x of the quiet run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import morecantile
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/soak.py` from anywhere

from app.alarms import rules  # noqa: E402
from app.db import create_db_engine, make_sessionmaker  # noqa: E402
from app.flows import demo  # noqa: E402
from app.replay.fleet import Fleet, load_fleet  # noqa: E402
from app.replay.readings import generate  # noqa: E402
from app.replay.scenarios import Plan, plan_scenario  # noqa: E402
from app.scratch import scratch_for, scratch_token, stop_process  # noqa: E402
from app.sensors import partitions  # noqa: E402
from app.settings import Settings  # noqa: E402

CITY_BBOX = (-71.16, 42.35, -71.06, 42.41)  # the demo city (Cambridge, MA)
ZOOMS = range(12, 17)
LAYERS = "gas_pipe,alarms"
GOALS_P99_MS = {"ingest": 500.0, "tiles": 50.0}


@dataclass
class Stats:
    """Latencies [s] and honest errors per route, and SSE events, of one run."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sse_events: int = 0
    replayed_to: float = 0.0  # the replay's data time [unix s] the ingest client got to
    hostile: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)
    trace: list[tuple[float, str, float]] = field(default_factory=list)  # (end, route, took)

    def record(self, route: str, took: float, problem: str | None = None) -> None:
        with self.lock:
            self.latency[route].append(took)
            self.trace.append((time.time(), route, took))
            if problem:
                self.errors[route].append(problem)


def timed(
    stats: Stats,
    route: str,
    call: Callable[[], httpx.Response],
    ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        r = call()
    except httpx.HTTPError as exc:
        stats.record(route, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return None
    took = time.perf_counter() - started
    stats.record(route, took, None if ok(r) else f"{r.status_code}: {r.text[:200]}")
    return r


# -- the honest clients -----------------------------------------------------------------------
def ingest(
    base: str,
    key: str,
    fleet: Fleet,
    plan: Plan,
    rate: float,
    stats: Stats,
    stop: threading.Event,
) -> None:
    """The replay's readings, ``rate`` per second of wall time, one batch per wall second."""
    per_sim_s = max(1.0, len(fleet) / 60)  # demo sensors report about once a minute
    speed = rate / per_sim_s
    t = plan.start
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        next_at = time.monotonic()
        while not stop.is_set() and t < plan.end:
            span = max(1, round(speed))
            batch = generate(fleet, plan, t, min(t + span, plan.end))
            t += span
            stats.replayed_to = t
            body = batch.ndjson(fleet)
            if body:
                timed(
                    stats,
                    "ingest",
                    lambda b=body: c.post(
                        "/readings", content=b, headers={"Content-Type": "application/x-ndjson"}
                    ),
                    lambda r: r.status_code == 200 and not r.json()["rejected"],
                )
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))


def paced(stop: threading.Event, rate: float) -> Iterator[None]:
    """Yield ``rate`` times per second (as close as the answers allow) until ``stop``."""
    next_at = time.monotonic()
    while not stop.is_set():
        yield
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))


def tiles(base: str, stats: Stats, stop: threading.Event, seed: int, rate: float) -> None:
    tms = morecantile.tms.get("WebMercatorQuad")
    all_tiles = [(t.z, t.x, t.y) for t in tms.tiles(*CITY_BBOX, zooms=list(ZOOMS))]
    rng = random.Random(seed)  # noqa: S311 - a load pattern, not a secret
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in paced(stop, rate):
            z, x, y = rng.choice(all_tiles)
            timed(
                stats,
                "tiles",
                lambda z=z, x=x, y=y: c.get(f"/tiles/{LAYERS}/{z}/{x}/{y}.mvt"),
                lambda r: r.status_code in (200, 204),
            )


def features(base: str, stats: Stats, stop: threading.Event, rate: float) -> None:
    rng = random.Random(3)  # noqa: S311
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in paced(stop, rate):
            lon, lat = rng.uniform(-71.15, -71.08), rng.uniform(42.36, 42.40)
            bbox = f"{lon},{lat},{lon + 0.01},{lat + 0.008}"
            timed(
                stats,
                "features",
                lambda b=bbox: c.get(
                    "/ogc/collections/gas_pipe/items", params={"bbox": b, "limit": 100}
                ),
            )


def sse(base: str, stats: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with httpx.stream(
                "GET", f"{base}/alarms/stream", timeout=httpx.Timeout(10, read=5)
            ) as r:
                if r.status_code != 200:
                    stats.record("sse", 0.0, f"{r.status_code}")
                    return
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        with stats.lock:
                            stats.sse_events += 1
                    if stop.is_set():
                        return
        except httpx.ReadTimeout:
            continue  # no event for 5 s: reconnect, as EventSource does
        except httpx.HTTPError as exc:
            if not stop.is_set():
                stats.record("sse", 0.0, f"{type(exc).__name__}: {exc}")
            time.sleep(1)


def analyst(base: str, key: str, stats: Stats, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        while not stop.wait(2.0):
            r = timed(
                stats, "alarms", lambda: c.get("/alarms", params={"state": "raised", "limit": 1})
            )
            if r is None or r.status_code != 200:
                continue
            found = r.json().get("features") or r.json().get("alarms") or []
            if not found:
                continue
            alarm_id = found[0].get("id") or found[0]["properties"]["id"]
            timed(
                stats,
                "transition",
                lambda a=alarm_id: c.post(
                    f"/alarms/{a}/transition", json={"to": "verified", "note": "soak"}
                ),
                lambda r: r.status_code in (200, 409),  # 409: it moved (cleared) meanwhile
            )


# -- the hostile client -----------------------------------------------------------------------
def _zigzag_geojson(vertices: int) -> bytes:
    coords = [[-71.1 + i * 1e-6, 42.37 + (i % 2) * 1e-4] for i in range(vertices)]
    feature = {
        "type": "Feature",
        "properties": {"id": "zz"},
        "geometry": {"type": "LineString", "coordinates": coords},
    }
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


def _bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.geojson", b" " * 200_000_000)  # 200 MB of spaces, ~200 KB zipped
    return buf.getvalue()


def hostile(base: str, admin: str, stats: Stats, stop: threading.Event) -> None:
    big = b"[" + b" " * (200 << 20) + b"]"
    nested = ("- " * 500 + "x\n").encode()
    bad_csv = ("sensor,ts,value\n" + "nope,not-a-time,NaN\n" * 200_000).encode()
    zigzag = _zigzag_geojson(50_000)
    bomb = _bomb()
    auth = {"Authorization": f"Bearer {admin}"}
    attacks: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.post(
            "/readings",
            content=iter([big[i : i + (1 << 20)] for i in range(0, len(big), 1 << 20)]),
            headers={"Content-Type": "application/json", **auth},
        ),
        lambda c: c.post(
            "/rules/import", content=b"- code: x\n", headers={"Content-Type": "text/plain"}
        ),
        lambda c: c.post(
            "/alarms/1/transition",
            json={"to": "closed"},
            headers={"Authorization": "Bearer cr_forged"},
        ),
        lambda c: c.put("/rules/gas-leak", json={"is_enabled": False}),
        lambda c: c.get("/sensors", params={"offset": str(2**63)}),
        lambda c: c.get("/alarms", params={"offset": str(2**63)}),
        lambda c: c.get("/ogc/collections/gas_pipe/items/%C2%B2"),
        lambda c: c.get("/sensors", params={"kind": "ch4\x00"}),
        lambda c: c.post(
            "/rules/import", content=nested, headers={"Content-Type": "application/yaml", **auth}
        ),
        lambda c: c.post(
            "/readings", content=bad_csv, headers={"Content-Type": "text/csv", **auth}
        ),
        lambda c: c.post(
            "/assets/import",
            files={"file": ("zz.geojson", zigzag)},
            data={"kind": "gas_pipe", "dry_run": "true"},
            headers=auth,
        ),
        lambda c: c.post(
            "/assets/import",
            files={"file": ("bomb.zip", bomb)},
            data={"kind": "gas_pipe", "dry_run": "true"},
            headers=auth,
        ),
    ]
    with httpx.Client(base_url=base, timeout=120) as c:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status = attacks[i % len(attacks)](c).status_code
            except httpx.HTTPError:
                status = -1
            with stats.lock:
                stats.hostile[status] += 1
                stats.trace.append(
                    (time.time(), f"hostile-{i % len(attacks)}", time.perf_counter() - started)
                )
            i += 1


# -- the server and the run -------------------------------------------------------------------
@contextmanager
def server(url: str) -> Iterator[tuple[str, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "CITYRISK_DATA_DIR"}
    env |= {"DATABASE_URL": url, "CITYRISK_MQTT_CONSUMER": "0", "CITYRISK_OFFLINE_CHECK_S": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cityrisk serve did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        stop_process(proc)


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and its children (uvicorn may fork), MB."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def run(
    base: str,
    pid: int,
    keys: dict[str, str],
    fleet: Fleet,
    plan: Plan,
    args: argparse.Namespace,
    with_hostile: bool,
) -> tuple[Stats, float, float]:
    stats = Stats()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=ingest, args=(base, keys["device"], fleet, plan, args.rate, stats, stop)
        ),
        threading.Thread(target=tiles, args=(base, stats, stop, 1, args.tile_rate / 2)),
        threading.Thread(target=tiles, args=(base, stats, stop, 2, args.tile_rate / 2)),
        threading.Thread(target=features, args=(base, stats, stop, args.feature_rate)),
        threading.Thread(target=analyst, args=(base, keys["analyst"], stats, stop)),
        *[threading.Thread(target=sse, args=(base, stats, stop)) for _ in range(args.sse)],
    ]
    if with_hostile:
        threads.append(threading.Thread(target=hostile, args=(base, keys["admin"], stats, stop)))
    rss0 = rss_mb(pid)
    for t in threads:
        t.daemon = True
        t.start()
    series = []  # RSS every tenth of the run: flat means the second half does not climb
    for _ in range(10):
        time.sleep(args.seconds / 10)
        series.append(rss_mb(pid))
    stop.set()
    rss1 = rss_mb(pid)
    print(f"  RSS every {args.seconds / 10:.0f} s: " + " ".join(f"{v:.0f}" for v in series) + " MB")
    for t in threads:
        t.join(timeout=130)
    return stats, rss0, rss1


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(name: str, stats: Stats, rss: tuple[float, float], seconds: float) -> dict[str, float]:
    print(
        f"{name}: {seconds:.0f} s; server RSS {rss[0]:.0f} → {rss[1]:.0f} MB; "
        f"SSE events received {stats.sse_events:,}"
    )
    p99s = {}
    for route in ("ingest", "tiles", "features", "alarms", "transition", "sse"):
        lat = stats.latency.get(route, [])
        errs = stats.errors.get(route, [])
        p99s[route] = pct(lat, 0.99)
        print(
            f"  {route:<10} n={len(lat):>7,}  errors={len(errs):>4}  p50 {pct(lat, 0.5):7.1f} ms"
            f"  p99 {p99s[route]:7.1f} ms" + (f"  first error: {errs[0][:160]}" if errs else "")
        )
    if stats.hostile:
        print(
            "  hostile answers by status: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(stats.hostile.items()))
        )
    return p99s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="per run")
    parser.add_argument("--rate", type=float, default=5000, help="readings per second")
    parser.add_argument("--sse", type=int, default=20, help="SSE clients")
    parser.add_argument("--tile-rate", type=float, default=100, help="tile requests per second")
    parser.add_argument("--feature-rate", type=float, default=10, help="feature pages per second")
    parser.add_argument(
        "--trace", type=Path, help="write every request (run, end time, route, seconds) as CSV"
    )
    args = parser.parse_args()
    with scratch_for(Settings(), prefix="cityrisk_soak", migrate=True) as url:
        engine = create_db_engine(url, pool_size=2)
        try:
            factory = make_sessionmaker(engine)
            with factory() as session, session.begin():
                demo.load(session)
                rules.load(session, rules.default_pack(), actor="soak")
                partitions.ensure(session, partitions.days_ahead())
                session.execute(text("ANALYZE"))
            with factory() as session:
                fleet = load_fleet(session, 1)
                now = int(datetime.now(UTC).timestamp())
                span = int(2 * args.seconds * args.rate / max(1.0, len(fleet) / 60)) + 3600
                plan = plan_scenario(session, fleet, "demo", now - span, now, 1)
            ids = sorted({str(e) for e in fleet.external_id})
            keys = {
                "device": scratch_token(url, "device", sensors=ids, name="soak-device"),
                "analyst": scratch_token(url, "analyst", name="soak-analyst"),
                "admin": scratch_token(url, "admin", name="soak-admin"),
            }
        finally:
            engine.dispose()
        print(
            f"demo city: {len(fleet):,} sensors; {args.rate:g} readings/s; {args.sse} SSE "
            f"clients; 2 tile threads, 1 features thread, 1 analyst; {os.cpu_count()} CPUs "
            "shared by the clients, the server and PostGIS"
        )
        with server(url) as (base, pid):
            half = (plan.end - plan.start) // 2
            quiet_plan = Plan(
                plan.scenario, plan.seed, plan.start, plan.start + half, plan.incidents
            )
            quiet, *rss_q = run(base, pid, keys, fleet, quiet_plan, args, with_hostile=False)
            q = report("quiet", quiet, (rss_q[0], rss_q[1]), args.seconds)
            # The hostile run's readings go on from the quiet run's last ones: a gap in the data
            # would be a fleet-wide outage (every sensor offline at once), another test.
            resume = int(quiet.replayed_to) or plan.start + half
            loud_plan = Plan(plan.scenario, plan.seed, resume, plan.end, plan.incidents)
            loud, *rss_h = run(base, pid, keys, fleet, loud_plan, args, with_hostile=True)
            h = report("hostile", loud, (rss_h[0], rss_h[1]), args.seconds)
        if args.trace:
            with args.trace.open("w") as out:
                out.write("run,end_unix_s,route,seconds\n")
                for name, stats in (("quiet", quiet), ("hostile", loud)):
                    out.writelines(f"{name},{e:.3f},{r},{t:.4f}\n" for e, r, t in stats.trace)
        errors = sum(len(v) for s in (quiet, loud) for v in s.errors.values())
        print(f"honest errors: {errors} (goal 0)")
        for route, goal in GOALS_P99_MS.items():
            print(
                f"p99 {route}: quiet {q[route]:.1f} ms, hostile {h[route]:.1f} ms (< {goal:g} ms)"
            )
        for route in ("ingest", "tiles", "features"):
            ratio = h[route] / q[route] if q[route] else float("nan")
            print(f"hostile/quiet p99 {route}: {ratio:.2f}x (goal <= 2x)")
        growth = (rss_q[1] - rss_q[0], rss_h[1] - rss_h[0])
        print(f"RSS growth: quiet {growth[0]:+.0f} MB, hostile {growth[1]:+.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
