"""Tile throughput: our server (cache off, cache on) vs tipg vs our own /healthz, in one run.

Each target is a real uvicorn process (one worker) on a free port, over the same database (the
one cityrisk uses; load the demo city first: ``cityrisk load demo``). The load is ``wrk``
(Debian package ``wrk``; ``--connections`` keep-alive connections, 8 by default as in the
issue, 2 threads) cycling through a fixed list of tiles for ``--seconds``: every tile of the
demo city (Cambridge MA, lon -71.16…-71.06, lat 42.35…42.40) at z10–z16, in a fixed shuffled
order, with ``Accept-Encoding: gzip``. Each run starts after a 2-second warm-up (for cache on,
that fills the cache). Without ``wrk`` the script falls back to Python httpx threads, which
saturate long before the servers do: it says so, and the ratios then mean little.

Targets: cache off; cache on with the default freshness (``notify``: versions pushed by
PostgreSQL, no round trip on a hit) and with ``strict`` (a version read per request, shared
by requests arriving together); ``/healthz`` (an ``async`` route returning a small JSON model:
the HTTP stack's ceiling); tipg.

tipg runs from its own virtualenv (``--tipg-python``; default /tmp/tipg-venv, made with
``python3 -m venv /tmp/tipg-venv && /tmp/tipg-venv/bin/pip install tipg uvicorn``) on the
``asset`` table, filtered to the same kind and properties as our layer. If it is missing or
does not start, the run says so and skips it.

Usage::

    .venv/bin/python bench/tiles.py [--layer gas_pipe] [--seconds 8] [--connections 8]

Goals (issue 6): cache off >= 3x tipg; cache on >= 80 % of our /healthz.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import morecantile
from sqlalchemy.engine import make_url

from app.db import database_url
from app.scratch import free_port
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CITY_BBOX = (-71.16, 42.35, -71.06, 42.40)
ZOOMS = range(10, 17)


def tile_list(seed: int = 7) -> list[tuple[int, int, int]]:
    """Every WebMercatorQuad tile of the demo city at z10–z16, in a fixed shuffled order."""
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [(t.z, t.x, t.y) for t in tms.tiles(*CITY_BBOX, zooms=list(ZOOMS))]
    random.Random(seed).shuffle(tiles)  # noqa: S311 - a fixed order, not a secret
    return tiles


@contextmanager
def server(argv: list[str], env: dict[str, str], port: int, probe: str) -> Iterator[str | None]:
    """Run ``argv`` until the block ends; yields its base URL, or None if it never answered."""
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(base + probe, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            err = proc.stderr.read().decode(errors="replace")[-800:] if proc.stderr else ""
            print(f"  server {argv[0]} did not start: {err.strip() or 'timeout'}")
            yield None
            return
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    errors: int
    bytes_: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local counter = 0
setup = function(thread)
  thread:set("start", counter * 7919)  -- threads start at different places in the list
  counter = counter + 1
end
local i = 0
init = function(args) i = start end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Accept-Encoding"] = "gzip"})
end
"""


def wrk_load(name: str, urls: list[str], *, seconds: float, connections: int) -> Result:
    """``wrk`` with ``connections`` keep-alive connections cycling through ``urls``."""
    base = re.match(r"https?://[^/]+", urls[0])
    assert base is not None
    paths = [url[base.end() :] for url in urls]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "cycle.lua")
        script.write_text(WRK_SCRIPT)
        listing = Path(tmp, "paths.txt")
        listing.write_text("\n".join(paths) + "\n")
        env = {**os.environ, "BENCH_PATHS": str(listing)}

        def run(duration: float) -> str:
            argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "-s", str(script)]
            done = subprocess.run(
                [*argv, base.group(0)], env=env, capture_output=True, text=True, check=True
            )
            return done.stdout

        run(2)  # warm-up: connections, prepared statements, and the cache when it is on
        out = run(seconds)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if total is None:
        raise RuntimeError(f"wrk said: {out}")
    elapsed = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    size = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    units = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
    per_s = float(size.group(1)) * units.get(size.group(2), 1) if size else 0.0
    result = Result(
        name,
        int(total.group(1)),
        elapsed,
        int(errors.group(1)) if errors else 0,
        int(per_s * elapsed),
    )
    _print(result)
    return result


def _print(result: Result) -> None:
    print(
        f"  {result.name:<30} {result.rate:9.1f} req/s  ({result.requests} in "
        f"{result.seconds:.1f} s, {result.errors} errors, "
        f"{result.bytes_ / max(result.requests, 1) / 1024:.1f} KiB avg)"
    )


def load(name: str, urls: list[str], *, seconds: float, connections: int) -> Result:
    """The load: ``wrk`` when installed, else Python threads (which cap the rates)."""
    if shutil.which("wrk"):
        return wrk_load(name, urls, seconds=seconds, connections=connections)
    return thread_load(name, urls, seconds=seconds, threads=connections, warm=True)


def thread_load(
    name: str, urls: list[str], *, seconds: float, threads: int, warm: bool = False
) -> Result:
    """``threads`` keep-alive httpx clients cycle through ``urls`` for ``seconds``."""
    if warm:
        with httpx.Client(timeout=30) as client:
            for url in urls:
                client.get(url)
    counts = [0] * threads
    errors = [0] * threads
    sizes = [0] * threads
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        i = k * 7919  # threads start at different places in the list
        with httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip"}) as client:
            while time.monotonic() < stop:
                r = client.get(urls[i % len(urls)])
                i += 1
                counts[k] += 1
                sizes[k] += len(r.content)
                if r.status_code != 200:
                    errors[k] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    result = Result(name, sum(counts), elapsed, sum(errors), sum(sizes))
    _print(result)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", default="gas_pipe", help="an asset-kind layer id")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--tipg-python",
        default=os.environ.get("TIPG_PYTHON", "/tmp/tipg-venv/bin/python"),  # noqa: S108
    )
    args = parser.parse_args()

    url = database_url(Settings())
    tiles = tile_list()
    client = "wrk -t2" if shutil.which("wrk") else "Python httpx threads (install wrk!)"
    print(
        f"{len(tiles)} tiles z{ZOOMS.start}-z{ZOOMS.stop - 1} over the demo city; layer "
        f"{args.layer!r}; {client}, {args.connections} connections x {args.seconds:g} s per "
        f"target; {os.cpu_count()} CPUs shared by the client, the server and PostGIS"
    )
    common = {"CITYRISK_MQTT_CONSUMER": "0", "CITYRISK_OFFLINE_CHECK_S": "0", "DATABASE_URL": url}
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    quiet = ["--log-level", "warning", "--no-access-log"]
    results: dict[str, Result] = {}

    def our_urls(base: str) -> list[str]:
        return [f"{base}/tiles/{args.layer}/{z}/{x}/{y}.mvt" for z, x, y in tiles]

    runs = {
        "off": ("cityrisk, cache off", {"CITYRISK_TILE_CACHE_MB": "0"}),
        "on": ("cityrisk, cache on (notify)", {"CITYRISK_TILE_CACHE_MB": "256"}),
        "strict": (
            "cityrisk, cache on (strict)",
            {"CITYRISK_TILE_CACHE_MB": "256", "CITYRISK_TILE_FRESHNESS": "strict"},
        ),
    }
    for key, (title, env) in runs.items():
        port = free_port()
        with server(
            [*uvicorn, "--port", str(port), *quiet], {**common, **env}, port, "/healthz"
        ) as base:
            if base is None:
                return 1
            results[key] = load(
                title, our_urls(base), seconds=args.seconds, connections=args.connections
            )
            if key == "on":
                results["healthz"] = load(
                    "cityrisk /healthz",
                    [f"{base}/healthz"],
                    seconds=args.seconds,
                    connections=args.connections,
                )

    tipg_python = Path(args.tipg_python)
    if not tipg_python.exists():
        print(f"  tipg skipped: {tipg_python} not found (see this script's docstring)")
    else:
        port = free_port()
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        tipg_env = {
            "DATABASE_URL": libpq,
            "TIPG_DB_SCHEMAS": '["public"]',
            "TIPG_DEBUG": "FALSE",
        }
        argv = [str(tipg_python), "-m", "uvicorn", "tipg.main:app", "--port", str(port), *quiet]
        with server(argv, tipg_env, port, "/collections") as base:
            if base is None:
                print("  tipg skipped: it did not start")
            else:
                # Same rows and properties as our layer (tipg filters tiles by property value).
                urls = [
                    f"{base}/collections/public.asset/tiles/WebMercatorQuad/{z}/{x}/{y}"
                    f"?kind={args.layer}&properties=id,name,kind"
                    for z, x, y in tiles
                ]
                probe = httpx.get(urls[0], timeout=30)
                if probe.status_code != 200:
                    print(
                        f"  tipg skipped: a tile answered {probe.status_code}: {probe.text[:200]}"
                    )
                else:
                    results["tipg"] = load(
                        "tipg 1.x", urls, seconds=args.seconds, connections=args.connections
                    )

    print()
    if "tipg" in results and results["tipg"].rate:
        tipg = results["tipg"].rate
        print(f"cache off / tipg             = {results['off'].rate / tipg:5.2f}x  (goal >= 3x)")
        print(f"cache on (notify) / tipg     = {results['on'].rate / tipg:5.2f}x")
    else:
        print("cache off / tipg             = n/a (tipg skipped)")
    ceiling = results["healthz"].rate
    print(f"cache on (notify) / healthz  = {results['on'].rate / ceiling:6.1%}  (goal >= 80 %)")
    print(f"cache on (strict) / healthz  = {results['strict'].rate / ceiling:6.1%}")
    print(f"cache off / healthz          = {results['off'].rate / ceiling:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
