"""The MQTT broker for live readings: a project-local Mosquitto started by ``cityrisk mq up``.

Used only when ``MQTT_URL`` is unset, like the local PostGIS cluster (:mod:`app.local.cluster`). The
broker lives under ``<data_dir>/mosquitto`` (``.data/mosquitto`` in a checkout): its config, pid
file, log and persistence file. It listens on 127.0.0.1 only, on ``CITYRISK_MQTT_PORT`` (51883),
and allows anonymous clients — acceptable because nothing off this machine can reach a loopback
listener.

Persistence is on, so the sessions of persistent clients (the reading consumer) and the QoS 1
messages queued for them survive a restart: Mosquitto writes its in-memory store to disk on a
clean stop and every ``AUTOSAVE_S`` seconds; a crash (SIGKILL, power loss) can lose what arrived
since the last autosave.

As root, Mosquitto is started as root and drops to the ``mosquitto`` system user by itself (the
``user`` line of the config) right after opening its listener, so its folder must be writable by
that user; a data directory that user cannot reach (a checkout under ``/root``) gets its broker
folder under ``/var/tmp`` instead, one per checkout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.errors import CityriskError
from app.local.system import apt_install, is_root, run
from app.settings import Settings, parse_mqtt_url

MOSQUITTO = Path("/usr/sbin/mosquitto")
BROKER_USER = "mosquitto"
# Seconds between two saves of the in-memory store: the most a broker crash (not a stop) can lose.
AUTOSAVE_S = 5
# Messages Mosquitto keeps for one offline (or slow) persistent client before it drops new ones;
# its default of 1000 would drop readings after a few seconds of a consumer outage at city scale.
MAX_QUEUED_MESSAGES = 1_000_000
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

Log = Callable[[str], None]


class BrokerError(CityriskError):
    """The broker cannot be installed, started, stopped or reached; the message says why."""

    status_code = 503


def broker_url(settings: Settings) -> str:
    """The MQTT URL in use: ``MQTT_URL``, else the project-local broker's."""
    return settings.mqtt_url or LocalBroker(settings).url()


def check_broker(url: str, timeout_s: float = 5.0) -> None:
    """Open an MQTT session on ``url`` and close it; raise :class:`BrokerError` if that fails.

    A TCP connect alone would accept any program on the port; a CONNACK proves it is a broker
    that accepts us.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    address = parse_mqtt_url(url)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        outcome.append(str(reason))
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.connect_timeout = timeout_s
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError as exc:
        raise BrokerError(f"MQTT broker {address.redacted()} is not reachable: {exc}") from None
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise BrokerError(f"MQTT broker {address.redacted()} did not answer in {timeout_s:g} s")
        if outcome[0] != "Success":
            raise BrokerError(f"MQTT broker {address.redacted()} refused us: {outcome[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


def _run(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> None:
    run(cmd, error=BrokerError, env=env)


def ensure_installed(log: Log) -> Path:
    """Install Debian's ``mosquitto`` package with apt when the daemon is missing."""
    if MOSQUITTO.exists():
        return MOSQUITTO
    if shutil.which("apt-get") is None:
        raise BrokerError(
            "Mosquitto is not installed and this machine has no apt-get. Install an MQTT broker "
            "yourself and set MQTT_URL=mqtt://HOST:PORT to it."
        )
    # Only the daemon: the packaged system service (port 1883) is not used by cityrisk.
    apt_install(["mosquitto"], log=log, error=BrokerError, why="Mosquitto")
    if not MOSQUITTO.exists():
        raise BrokerError(f"apt-get installed mosquitto but {MOSQUITTO} is missing")
    return MOSQUITTO


def _port_answers(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int | None
    detail: str


class LocalBroker:
    """Provision and control the project-local Mosquitto described by ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.data_dir = settings.data_dir.resolve()
        self.port = settings.mqtt_port
        self._folder: Path | None = None

    # -- where ------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """``<data_dir>/mosquitto``, unless the broker user cannot reach it (then /var/tmp)."""
        if self._folder is None:
            self._folder = self._existing() or self._locate()
        return self._folder

    def _preferred(self) -> Path:
        return self.data_dir / "mosquitto"

    def _fallback(self) -> Path:
        # e.g. a clone under /root or pytest's 0700 temp dirs: one folder per checkout.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"cityrisk-mqtt-{digest}"  # noqa: S108 - owned by mosquitto

    def _existing(self) -> Path | None:
        """The folder an earlier ``up`` wrote its config to, if any (no subprocess needed)."""
        for folder in (self._preferred(), self._fallback()):
            if (folder / "mosquitto.conf").exists():
                return folder
        return None

    def _locate(self) -> Path:
        """Where a first ``up`` puts the broker: can its user reach the data directory?"""
        preferred = self._preferred()
        if not is_root() or not _user_exists(BROKER_USER):
            return preferred
        probe = self.data_dir if self.data_dir.exists() else self.data_dir.parent
        reachable = subprocess.run(
            ["runuser", "-u", BROKER_USER, "--", "test", "-x", str(probe)], check=False
        )
        return preferred if reachable.returncode == 0 else self._fallback()

    @property
    def conf_file(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        return self.folder / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def persistence_dir(self) -> Path:
        return self.folder / "data"

    def url(self) -> str:
        """``mqtt://127.0.0.1:<CITYRISK_MQTT_PORT>``: where the local broker listens when up."""
        return f"mqtt://127.0.0.1:{self.port}"

    # -- state ------------------------------------------------------------------------------
    def _running_pid(self) -> int | None:
        """The pid of *this* broker, checked against /proc so a recycled pid is not taken."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if (
            str(self.conf_file).encode() in cmdline
            and cmdline[0].endswith(b"mosquitto")
            and _alive(pid)
        ):
            return pid
        return None

    def _configured_port(self) -> int | None:
        """The port in the config the running broker was started with."""
        try:
            for line in self.conf_file.read_text().splitlines():
                if line.startswith("listener "):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def status(self) -> BrokerStatus:
        if self._folder is None and self._existing() is None:
            # Never started here: say so without probing where it would go (a subprocess).
            return BrokerStatus(False, None, None, f"stopped: no local broker in {self.data_dir}")
        pid = self._running_pid()
        if pid is None:
            return BrokerStatus(
                False, None, None, f"stopped: no local broker running in {self.folder}"
            )
        port = self._configured_port()
        return BrokerStatus(
            True, pid, port, f"running: pid {pid} on 127.0.0.1:{port} ({self.folder})"
        )

    # -- control ----------------------------------------------------------------------------
    def up(self, log: Log) -> bool:
        """Make the broker run on the configured port; True if it was (re)started.

        Idempotent: with the broker already running on that port this does nothing. Running on
        another port (``CITYRISK_MQTT_PORT`` changed), it is restarted; its queued messages stay.
        """
        with self._lock():
            current = self.status()
            if current.running and current.port == self.port:
                return False
            binary = ensure_installed(log)
            if _port_answers(self.port):
                raise BrokerError(
                    f"port {self.port} on 127.0.0.1 is in use by another program: stop it, or "
                    "choose another port with CITYRISK_MQTT_PORT"
                )
            if current.running:
                log(f"the broker runs on port {current.port}, not {self.port}: restarting it")
                self._stop(log)
            self._folder = None  # the broker user may exist only now
            self._prepare()
            log(f"starting Mosquitto on 127.0.0.1:{self.port}")
            self._start(binary)
            return True

    def down(self, log: Log) -> bool:
        """Stop the broker if it runs (SIGTERM: it saves its store first); True if it ran."""
        with self._lock():
            return self._stop(log)

    # -- steps ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down between processes (``make -j``, several terminals)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "mosquitto.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _prepare(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(self._config())
        self.conf_file.chmod(0o644)
        if is_root():
            # Mosquitto writes its pid file, log and store after dropping to its own user.
            for path in (self.folder, self.persistence_dir):
                shutil.chown(path, BROKER_USER, BROKER_USER)
            for path in self.persistence_dir.iterdir():
                shutil.chown(path, BROKER_USER, BROKER_USER)
            for path in (self.log_file, self.pid_file):
                if path.exists():
                    shutil.chown(path, BROKER_USER, BROKER_USER)
        self.pid_file.unlink(missing_ok=True)

    def _config(self) -> str:
        user = f"user {BROKER_USER}\n" if is_root() else ""
        return (
            "# written by `cityrisk mq up` on each start; edits are overwritten\n"
            f"pid_file {self.pid_file}\n"
            f"{user}"
            f"listener {self.port} 127.0.0.1\n"
            "# Anonymous clients are fine here: the only listener is on the loopback interface.\n"
            "allow_anonymous true\n"
            "# Sessions of persistent clients and their queued QoS 1 messages survive a restart.\n"
            "persistence true\n"
            f"persistence_location {self.persistence_dir}/\n"
            "persistence_file mosquitto.db\n"
            f"autosave_interval {AUTOSAVE_S}\n"
            f"max_queued_messages {MAX_QUEUED_MESSAGES}\n"
            "# MQTT 3 clients with clean_session=false; MQTT 5 clients set their own expiry.\n"
            "persistent_client_expiration 7d\n"
            f"log_dest file {self.log_file}\n"
            "# Not `information`: it logs every autosave, i.e. every few seconds.\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
        )

    def _log_tail(self, lines: int = 3) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return "no log"
        return " | ".join(tail) or "empty log"

    def _start(self, binary: Path) -> None:
        proc = subprocess.run(
            [str(binary), "-c", str(self.conf_file), "-d"],
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT_S,
        )
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise BrokerError(f"mosquitto did not start: {' | '.join(said) or self._log_tail()}")
        # -d returns once it has forked; wait until the daemon has written its pid and listens.
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._running_pid() is not None and _port_answers(self.port):
                return
            time.sleep(0.05)
        raise BrokerError(
            f"mosquitto did not come up on 127.0.0.1:{self.port} within {START_TIMEOUT_S:g} s: "
            f"{self._log_tail()} (log: {self.log_file})"
        )

    def _stop(self, log: Log) -> bool:
        pid = self._running_pid()
        if pid is None:
            return False
        log(f"stopping Mosquitto (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        if _wait_gone(pid, STOP_TIMEOUT_S):
            return True
        # Only after a graceful stop failed: this loses what arrived since the last autosave.
        log(f"Mosquitto did not stop within {STOP_TIMEOUT_S:g} s: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, STOP_TIMEOUT_S)
        return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by a container's init) is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False
