"""The app under a real ``uvicorn`` process, for tests that need its own PID (peak RSS) and real
sockets: streamed bodies, other clients served while one request works.

The one place these tests start a server: requests will need an ``Authorization`` header once
write routes take a token, hence ``headers``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from app.scratch import scratch_token

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def served(
    database_url: str,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[tuple[httpx.Client, int]]:
    """The app under ``uvicorn`` in its own process; yields a client (sending ``headers``,
    default: an admin's bearer token made in ``database_url``) and the server's PID."""
    if headers is None:
        headers = {"Authorization": f"Bearer {scratch_token(database_url)}"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": database_url,
            "CITYRISK_DATA_DIR": str(data_dir),
            "CITYRISK_OFFLINE_CHECK_S": "0",
            "CITYRISK_MQTT_CONSUMER": "false",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, "uvicorn exited"
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
            yield client, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (``VmHWM``), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
