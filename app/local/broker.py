"""The MQTT broker for live readings: a project-local Mosquitto started by ``cityrisk mq up``.

Used only when ``MQTT_URL`` is unset, like the local PostGIS cluster (:mod:`app.local.cluster`). The
broker lives under ``<data_dir>/mosquitto`` (``.data/mosquitto`` in a checkout): its config, pid
file, log, persistence file, password file and ACL. It listens on 127.0.0.1 only, on
``CITYRISK_MQTT_PORT`` (51883).

Nobody is anonymous: every program on the machine can reach a loopback listener, so every client
logs in, and the ACL lets each do one thing (Mosquitto denies whatever the ACL does not grant):

- the service's consumer, user ``cityrisk``, may read ``cityrisk/readings/#`` and publish
  nothing; its generated password is kept in ``<data_dir>/mqtt.json`` (mode 600, like the
  cluster's ``cluster.json``) and :meth:`LocalBroker.url` puts it in the URL the service uses;
- each device (``cityrisk mq device add NAME``: a sensor's external id, or a gateway's prefix)
  may publish only to ``cityrisk/readings/NAME`` and below, and read nothing. Its password is
  printed once and only its hash is kept (in the password file, made by ``mosquitto_passwd``);
- ``replay`` is such a device, made by ``mq up`` for ``cityrisk replay --to mqtt``, whose
  password is kept with the consumer's so the replay can log in by itself.

``device add`` / ``remove`` rewrite the password file and the ACL and send the running broker a
SIGHUP, which reloads both without a restart (the same process keeps its queued messages).

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
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from app.errors import CityriskError
from app.local.system import apt_install, is_root, run
from app.settings import Settings, parse_mqtt_url

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")  # in Debian's mosquitto package too
BROKER_USER = "mosquitto"
#: The root of the reading topics: the consumer reads ``READINGS_TOPIC/#``.
READINGS_TOPIC = "cityrisk/readings"
#: The MQTT user of the service's consumer on the local broker.
CONSUMER_USER = "cityrisk"
#: The device the replay publishes as, under ``READINGS_TOPIC/replay/<kind>``.
REPLAY_DEVICE = "replay"
#: A device name is one topic level, and a user name in the password file (no ``:``).
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# How long `device add` / `remove` wait for the reloaded broker to take the new credentials.
RELOAD_TIMEOUT_S = 10.0
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
    """The consumer's MQTT URL: ``MQTT_URL``, else the project-local broker's (with its login)."""
    return settings.mqtt_url or LocalBroker(settings).url()


def replay_url(settings: Settings) -> str:
    """Where ``cityrisk replay --to mqtt`` publishes: ``MQTT_URL``, else the local ``replay``
    device's login."""
    return settings.mqtt_url or LocalBroker(settings).device_url(REPLAY_DEVICE)


def device_topic(name: str) -> str:
    """The topic a device publishes under (it may publish to it and below it)."""
    return f"{READINGS_TOPIC}/{name}"


def check_device_name(name: str) -> str:
    """``name`` if it can be a device (one topic level, a user name); else BrokerError."""
    if not DEVICE_NAME.fullmatch(name):
        raise BrokerError(
            f"device name {name!r} is not usable: expected 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (it becomes a topic level and a user name)"
        )
    if name == CONSUMER_USER:
        raise BrokerError(f"{name!r} is the service's consumer, not a device")
    return name


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

    @property
    def passwd_file(self) -> Path:
        return self.folder / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def credentials_file(self) -> Path:
        """The consumer's and the replay's passwords and the device names (mode 600)."""
        return self.data_dir / "mqtt.json"

    def url(self) -> str:
        """The consumer's URL, ``mqtt://cityrisk:<password>@127.0.0.1:<CITYRISK_MQTT_PORT>``.

        Before the first ``up`` there are no credentials yet: the URL has no login.
        """
        password = self._credentials().get("consumer")
        return self._login_url(CONSUMER_USER, password)

    def device_url(self, name: str, password: str | None = None) -> str:
        """A device's URL; ``password`` defaults to the kept one (the ``replay`` device's)."""
        if password is None and name == REPLAY_DEVICE:
            password = self._credentials().get("replay")
        return self._login_url(name, password)

    def _login_url(self, user: str, password: str | None) -> str:
        if password is None:
            return f"mqtt://127.0.0.1:{self.port}"
        return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    # -- credentials ------------------------------------------------------------------------
    def _credentials(self) -> dict[str, Any]:
        try:
            raw = orjson.loads(self.credentials_file.read_bytes())
        except FileNotFoundError:
            return {}
        return raw if isinstance(raw, dict) else {}

    def _save_credentials(self, creds: dict[str, Any]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.credentials_file.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)  # before the secrets are written, whatever the umask
        tmp.write_bytes(orjson.dumps(creds, option=orjson.OPT_INDENT_2))
        tmp.replace(self.credentials_file)

    def _ensured_credentials(self) -> dict[str, Any]:
        """The kept credentials, generating the consumer's and the replay's on first use."""
        creds = self._credentials()
        changed = False
        for key in ("consumer", "replay"):
            if not isinstance(creds.get(key), str):
                creds[key] = secrets.token_urlsafe(18)
                changed = True
        if not isinstance(creds.get("devices"), list):
            creds["devices"] = []
            changed = True
        if changed:
            self._save_credentials(creds)
        return creds

    def devices(self) -> list[str]:
        """The devices that may log in (``replay`` included once ``up`` has run)."""
        creds = self._credentials()
        names = [str(d) for d in creds.get("devices", []) or []]
        return sorted({*names, *([REPLAY_DEVICE] if "replay" in creds else [])})

    def add_device(self, name: str, log: Log) -> str:
        """Create (or give a new password to) device ``name``; return its password.

        The running broker reloads its files and this returns once it takes the password.
        """
        check_device_name(name)
        if name == REPLAY_DEVICE:
            raise BrokerError(f"{name!r} is the replay's device: `cityrisk mq up` manages it")
        with self._lock():
            creds = self._ensured_credentials()
            password = secrets.token_urlsafe(18)
            hashed = _hash_passwords({name: password})
            devices = sorted({*creds["devices"], name})
            creds["devices"] = devices
            self._save_credentials(creds)
            self._write_auth_files(creds, new_lines=hashed)
            self._reload(log, self.device_url(name, password), should_log_in=True)
        return password

    def remove_device(self, name: str, log: Log) -> bool:
        """Remove device ``name`` (it can no longer log in); False if there was none."""
        check_device_name(name)
        if name == REPLAY_DEVICE:
            raise BrokerError(f"{name!r} is the replay's device: `cityrisk mq up` manages it")
        with self._lock():
            creds = self._credentials()
            devices = [str(d) for d in creds.get("devices", []) or []]
            if name not in devices:
                return False
            creds["devices"] = [d for d in devices if d != name]
            self._save_credentials(creds)
            self._write_auth_files(creds)
        self._signal_reload(log)
        return True

    def _write_auth_files(
        self, creds: dict[str, Any], *, new_lines: dict[str, str] | None = None
    ) -> None:
        """Write the password file and the ACL from ``creds``.

        The consumer's and the replay's hashes are made afresh; a device keeps its line from
        the current password file unless ``new_lines`` gives it a new one.
        """
        devices = [str(d) for d in creds.get("devices", []) or []]
        kept = _read_passwd(self.passwd_file)
        lines = _hash_passwords(
            {CONSUMER_USER: str(creds["consumer"]), REPLAY_DEVICE: str(creds["replay"])}
        )
        for name in devices:
            line = (new_lines or {}).get(name) or kept.get(name)
            if line is not None:
                lines[name] = line
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_private(self.passwd_file, "".join(f"{line}\n" for line in lines.values()))
        _write_private(self.acl_file, _acl([REPLAY_DEVICE, *devices]))

    def _signal_reload(self, log: Log) -> bool:
        pid = self._running_pid()
        if pid is None:
            return False
        if not self._config_is_current():
            # Started by an older cityrisk without logins: a reload would not load them.
            raise BrokerError(
                "the running broker lets anonymous clients in (started by an older cityrisk): "
                "run `cityrisk mq up` to restart it with logins; the device is saved"
            )
        log(f"reloading the broker's password file and ACL (SIGHUP to pid {pid})")
        os.kill(pid, signal.SIGHUP)
        return True

    def _reload(self, log: Log, url: str, *, should_log_in: bool) -> None:
        """SIGHUP the running broker and wait until ``url`` logs in (or is refused)."""
        if not self._signal_reload(log):
            return
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while True:
            try:
                check_broker(url, timeout_s=2.0)
                logged_in = True
            except BrokerError:
                logged_in = False
            if logged_in == should_log_in:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the broker did not take the new password file within {RELOAD_TIMEOUT_S:g} s"
                    f" ({self._log_tail()})"
                )
            time.sleep(0.1)

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
            if current.running and current.port == self.port and self._config_is_current():
                return False
            binary = ensure_installed(log)
            if _port_answers(self.port) and not (current.running and current.port == self.port):
                raise BrokerError(
                    f"port {self.port} on 127.0.0.1 is in use by another program: stop it, or "
                    "choose another port with CITYRISK_MQTT_PORT"
                )
            if current.running:
                if current.port != self.port:
                    log(f"the broker runs on port {current.port}, not {self.port}: restarting it")
                else:
                    log("the broker runs with an older configuration: restarting it")
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

    def _config_is_current(self) -> bool:
        try:
            return self.conf_file.read_text() == self._config()
        except OSError:
            return False

    def _prepare(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(self._config())
        self.conf_file.chmod(0o644)
        self._write_auth_files(self._ensured_credentials())
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
            "# Every local program reaches a loopback listener: each client logs in, and the ACL\n"
            "# grants the consumer reading and each device publishing its own topics, no more.\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd_file}\n"
            f"acl_file {self.acl_file}\n"
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


def _hash_passwords(passwords: dict[str, str]) -> dict[str, str]:
    """``user:hash`` lines of the password file, hashed by ``mosquitto_passwd -U``.

    The plain passwords go through a 0600 temporary file, never a command line (``ps``).
    """
    tool = MOSQUITTO_PASSWD if MOSQUITTO_PASSWD.exists() else shutil.which("mosquitto_passwd")
    if tool is None:
        raise BrokerError(
            "mosquitto_passwd is missing: install Debian's mosquitto package (`cityrisk mq up`)"
        )
    fd, path = tempfile.mkstemp(prefix="cityrisk-mqpw-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
        _run([str(tool), "-U", path])
        return {line.split(":", 1)[0]: line for line in Path(path).read_text().splitlines() if line}
    finally:
        os.unlink(path)


def _read_passwd(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return {line.split(":", 1)[0]: line for line in text.splitlines() if ":" in line}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (the broker's user under root)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(text)
    if is_root() and _user_exists(BROKER_USER):
        # Mosquitto reads both files as its own user (after dropping root, and on SIGHUP).
        shutil.chown(tmp, BROKER_USER, BROKER_USER)
    tmp.replace(path)


def _acl(devices: Sequence[str]) -> str:
    """The ACL: the consumer reads every reading topic; each device writes its own only."""
    out = [
        "# written by `cityrisk mq up` / `cityrisk mq device add|remove`; edits are overwritten",
        "# Whatever is not granted here is denied (anonymous clients cannot log in at all).",
        "",
        "# The service's consumer: every reading topic, read only.",
        f"user {CONSUMER_USER}",
        f"topic read {READINGS_TOPIC}/#",
    ]
    for name in devices:
        topic = device_topic(check_device_name(name))
        out += ["", f"user {name}", f"topic write {topic}", f"topic write {topic}/#"]
    return "\n".join(out) + "\n"


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
