"""The project-local Mosquitto as a user runs it (`cityrisk mq …`): real processes, real broker.

Every test gets its own data directory and a free port, so it never touches the broker that
`make setup` started under `.data/`, and stops what it started whatever happens.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.local.broker import MOSQUITTO, BrokerError, LocalBroker
from app.scratch import free_port
from app.settings import BrokerAddress, ConfigError, Settings, parse_mqtt_url

TIMEOUT_S = 10.0
# Settings the tests pass explicitly, so a developer's environment cannot leak into them.
ENV_NAMES = ("MQTT_URL", "CITYRISK_DATA_DIR", "CITYRISK_MQTT_PORT", "CITYRISK_MQTT_CONSUMER")


def cityrisk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter with only ``env`` as its MQTT settings."""
    base = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def quiet(_: str) -> None:
    """A ``log`` for LocalBroker that says nothing."""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the ``mosquitto`` user can reach (pytest's temp dirs are 0700 root's).

    Stops any broker started in it, then deletes it.
    """
    path = Path(tempfile.mkdtemp(prefix="cityrisk-mq-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        LocalBroker(Settings(data_dir=path)).down(quiet)
        shutil.rmtree(path, ignore_errors=True)


def broker_pid(data_dir: Path) -> int:
    status = LocalBroker(Settings(data_dir=data_dir)).status()
    assert status.pid is not None, status.detail
    return status.pid


def test_mq_up_is_idempotent_and_status_url_down_say_what_runs(data_dir: Path) -> None:
    port = free_port()
    env = {"CITYRISK_DATA_DIR": str(data_dir), "CITYRISK_MQTT_PORT": str(port)}

    before = cityrisk("mq", "status", env=env)
    assert before.returncode == 3, before.stderr
    assert "stopped" in before.stdout

    first = cityrisk("mq", "up", env=env)
    assert first.returncode == 0, first.stderr
    assert "started" in first.stderr
    pid = broker_pid(data_dir)

    second = cityrisk("mq", "up", env=env)
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert broker_pid(data_dir) == pid  # the same process: nothing was restarted

    status = cityrisk("mq", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"running: pid {pid} on 127.0.0.1:{port}" in status.stdout
    assert "answers" in status.stdout
    url = cityrisk("mq", "url", env=env).stdout.strip()
    assert url == LocalBroker(Settings(data_dir=data_dir, mqtt_port=port)).url()
    assert url.startswith("mqtt://cityrisk:")  # the consumer's login, as the service uses it
    assert url.endswith(f"@127.0.0.1:{port}")
    assert "***" in status.stdout  # ... but no password in what is said

    conf = (data_dir / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert f"listener {port} 127.0.0.1" in conf
    assert "allow_anonymous false" in conf
    assert "persistence true" in conf
    assert f"persistence_location {data_dir / 'mosquitto' / 'data'}/" in conf
    # Loopback only: the listener is bound to 127.0.0.1, not to every local address.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=TIMEOUT_S).close()
    if os.geteuid() == 0:
        # Started as root, Mosquitto runs as its own unprivileged user.
        uid_line = next(
            line
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert set(uid_line.split()[1:]) == {str(_uid("mosquitto"))}

    down = cityrisk("mq", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stderr
    assert cityrisk("mq", "status", env=env).returncode == 3
    again = cityrisk("mq", "down", env=env)
    assert again.returncode == 0
    assert "not running" in again.stderr


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def test_mq_up_refuses_a_port_another_program_listens_on(data_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        env = {"CITYRISK_DATA_DIR": str(data_dir), "CITYRISK_MQTT_PORT": str(port)}
        proc = cityrisk("mq", "up", env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("cityrisk: error: ")
    assert f"port {port} on 127.0.0.1 is in use by another program" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_with_mqtt_url_cityrisk_only_checks_the_broker(data_dir: Path, tmp_path: Path) -> None:
    """MQTT_URL set: `mq up` checks it answers, `mq down` leaves it alone, no local broker."""
    external = LocalBroker(Settings(data_dir=data_dir, mqtt_port=free_port()))
    external.up(quiet)
    env = {"MQTT_URL": external.url(), "CITYRISK_DATA_DIR": str(tmp_path)}

    up = cityrisk("mq", "up", env=env)
    assert up.returncode == 0, up.stderr
    assert "using MQTT_URL (nothing to start)" in up.stderr
    assert cityrisk("mq", "url", env=env).stdout.strip() == external.url()
    assert cityrisk("mq", "status", env=env).returncode == 0
    down = cityrisk("mq", "down", env=env)
    assert "nothing to stop" in down.stderr
    assert external.status().running
    assert not (tmp_path / "mosquitto").exists()

    closed = {"MQTT_URL": f"mqtt://127.0.0.1:{free_port()}", "CITYRISK_DATA_DIR": str(tmp_path)}
    refused = cityrisk("mq", "up", env=closed)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("cityrisk: error: MQTT broker mqtt://127.0.0.1:")
    assert "not reachable" in refused.stderr


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://broker:1883", "scheme 'http' is not supported"),
        ("mqtt://broker:99999", "not a number 1-65535"),
        ("mqtt://:1883", "names no host"),
    ],
)
def test_bad_mqtt_url_is_one_line_error(url: str, complaint: str, tmp_path: Path) -> None:
    proc = cityrisk("mq", "url", env={"MQTT_URL": url, "CITYRISK_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cityrisk: error: invalid setting MQTT_URL: ")
    assert complaint in lines[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerAddress("127.0.0.1", 1883)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, tls=True)),
        ("mqtt://u%40x:p%3Aw@b:1884", BrokerAddress("b", 1884, False, "u@x", "p:w")),
    ],
)
def test_mqtt_url_parsing(url: str, expected: BrokerAddress) -> None:
    assert parse_mqtt_url(url) == expected
    assert "p:w" not in parse_mqtt_url(url).redacted()


def test_mqtt_url_setting_empty_means_unset() -> None:
    assert Settings(mqtt_url="  ").mqtt_url is None
    with pytest.raises(ConfigError):
        parse_mqtt_url("tcp://broker:1883")


# -- persistence ------------------------------------------------------------------------------
class Subscriber:
    """A persistent MQTT 5 session (fixed id, clean_start=False) that records what it receives."""

    def __init__(self, url: str, client_id: str) -> None:
        self.address = parse_mqtt_url(url)
        self.client_id = client_id
        self.received: list[bytes] = []
        self.subscribed = threading.Event()

    def session(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self.address.username, self.address.password)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600

        def on_connect(c: mqtt.Client, *_: object) -> None:
            c.subscribe("cityrisk/readings/#", qos=1)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_message = lambda _c, _u, msg: self.received.append(bytes(msg.payload))
        client.connect(self.address.host, self.address.port, clean_start=False, properties=props)
        client.loop_start()
        return client


def publish_acknowledged(
    url: str, payloads: list[bytes], topic: str = "cityrisk/readings/test"
) -> list[str]:
    """Publish with QoS 1 and return once the broker acknowledged every message.

    Returns each PUBACK's reason: "Success", or why the broker will not deliver it.
    """
    address = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(address.username, address.password)
    reasons: dict[int, str] = {}
    client.on_publish = lambda _c, _u, mid, reason, _p: reasons.__setitem__(mid, str(reason))
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT_S)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()
    return [reasons[info.mid] for info in infos]


def device(broker: LocalBroker, name: str) -> str:
    """A new device login on ``broker``: its URL, password included."""
    return broker.device_url(name, broker.add_device(name, quiet))


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_messages_queued_for_a_persistent_session_survive_a_broker_restart(data_dir: Path) -> None:
    broker = LocalBroker(Settings(data_dir=data_dir, mqtt_port=free_port()))
    broker.up(quiet)
    subscriber = Subscriber(broker.url(), "cityrisk-test-sub")
    client = subscriber.session()
    assert subscriber.subscribed.wait(TIMEOUT_S)
    client.disconnect()
    client.loop_stop()

    # Queued for the offline session.
    publish_acknowledged(device(broker, "test"), [b"1", b"2", b"3"])
    assert broker.down(quiet)
    assert (broker.persistence_dir / "mosquitto.db").exists()
    assert broker.up(quiet)

    client = subscriber.session()
    try:
        assert wait_until(lambda: len(subscriber.received) == 3), subscriber.received
        assert sorted(subscriber.received) == [b"1", b"2", b"3"]
    finally:
        client.disconnect()
        client.loop_stop()


def test_up_moves_a_running_broker_to_a_new_port(data_dir: Path) -> None:
    old, new = free_port(), free_port()
    LocalBroker(Settings(data_dir=data_dir, mqtt_port=old)).up(quiet)
    said: list[str] = []
    moved = LocalBroker(Settings(data_dir=data_dir, mqtt_port=new))
    assert moved.up(said.append)
    assert any("restarting" in line for line in said)
    assert moved.status().port == new
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old), timeout=TIMEOUT_S).close()


def test_a_data_dir_the_broker_user_cannot_reach_gets_a_folder_it_can(tmp_path: Path) -> None:
    """pytest's tmp_path sits under a 0700 root directory, like a checkout under /root."""
    broker = LocalBroker(Settings(data_dir=tmp_path, mqtt_port=free_port()))
    if os.geteuid() != 0:
        assert broker.folder == tmp_path.resolve() / "mosquitto"
        return
    assert broker.folder.parent == Path("/var/tmp")  # noqa: S108 - where app.local.broker puts it
    try:
        assert broker.up(quiet)
        assert broker.status().running
    finally:
        broker.down(quiet)
        shutil.rmtree(broker.folder, ignore_errors=True)


# -- who may log in and publish where ---------------------------------------------------------
def connack(url: str, *, username: str | None = None, password: str | None = None) -> str:
    """The broker's answer to an MQTT 5 CONNECT (with the URL's login unless given)."""
    address = parse_mqtt_url(url)
    answered = threading.Event()
    reasons: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        reasons.append(str(reason))
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    user = username if username is not None else address.username
    if user is not None:
        client.username_pw_set(user, password if password is not None else address.password)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        assert answered.wait(TIMEOUT_S), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


def test_anonymous_clients_and_wrong_passwords_are_refused(data_dir: Path) -> None:
    broker = LocalBroker(Settings(data_dir=data_dir, mqtt_port=free_port()))
    broker.up(quiet)
    anonymous = f"mqtt://127.0.0.1:{broker.port}"
    assert connack(anonymous) == "Not authorized"
    assert connack(anonymous, username="cityrisk", password="guess") != "Success"
    assert connack(anonymous, username="nobody", password="guess") != "Success"
    assert connack(broker.url()) == "Success"  # the consumer's own login
    assert connack(broker.device_url("replay")) == "Success"
    # The consumer's and the replay's passwords are kept like the cluster's: owner only.
    assert broker.credentials_file.stat().st_mode & 0o777 == 0o600
    assert broker.passwd_file.stat().st_mode & 0o777 == 0o600
    assert broker.url().split(":")[2].split("@")[0] not in broker.passwd_file.read_text()


def test_a_device_publishes_only_under_its_own_topic(data_dir: Path) -> None:
    """What a device publishes to another sensor's topic never reaches the consumer."""
    broker = LocalBroker(Settings(data_dir=data_dir, mqtt_port=free_port()))
    broker.up(quiet)
    own, other = device(broker, "cam-ch4-0001"), device(broker, "cam-ch4-0002")
    subscriber = Subscriber(broker.url(), "cityrisk-test-acl")  # the consumer's login
    client = subscriber.session()
    try:
        assert subscriber.subscribed.wait(TIMEOUT_S)
        denied = publish_acknowledged(own, [b"spoofed"], topic="cityrisk/readings/cam-ch4-0002")
        wider = publish_acknowledged(own, [b"wider"], topic="cityrisk/readings")
        mine = publish_acknowledged(own, [b"mine"], topic="cityrisk/readings/cam-ch4-0001")
        below = publish_acknowledged(own, [b"below"], topic="cityrisk/readings/cam-ch4-0001/ch4")
        theirs = publish_acknowledged(other, [b"theirs"], topic="cityrisk/readings/cam-ch4-0002")
        # The consumer's login reads; it may not publish (nor may a device read).
        as_consumer = publish_acknowledged(broker.url(), [b"c"], topic="cityrisk/readings/x")
        assert wait_until(lambda: len(subscriber.received) >= 3)
        time.sleep(0.5)  # anything still on its way would arrive now
    finally:
        client.disconnect()
        client.loop_stop()
    assert sorted(subscriber.received) == [b"below", b"mine", b"theirs"]
    assert mine == below == theirs == ["Success"]
    assert denied == wider == as_consumer == ["Not authorized"]


def test_mq_device_add_list_remove_reload_the_running_broker(data_dir: Path) -> None:
    port = free_port()
    env = {"CITYRISK_DATA_DIR": str(data_dir), "CITYRISK_MQTT_PORT": str(port)}
    assert cityrisk("mq", "up", env=env).returncode == 0
    pid = broker_pid(data_dir)
    broker = LocalBroker(Settings(data_dir=data_dir, mqtt_port=port))

    added = cityrisk("mq", "device", "add", "gw-north", env=env)
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip().splitlines()[-1]
    assert "cityrisk/readings/gw-north" in added.stdout
    assert password not in added.stderr
    url = broker.device_url("gw-north", password)
    assert connack(url) == "Success"  # at once: `add` returns when the broker took it
    # Nobody subscribes here: delivered to no one, but allowed (a refusal says "Not authorized").
    delivered = publish_acknowledged(url, [b"x"], topic="cityrisk/readings/gw-north/s1")
    assert delivered == ["No matching subscribers"]

    listed = cityrisk("mq", "device", "list", env=env)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["gw-north", "replay"]

    again = cityrisk("mq", "device", "add", "gw-north", env=env)  # a new password
    new_password = again.stdout.strip().splitlines()[-1]
    assert new_password != password
    assert wait_until(lambda: connack(url) != "Success")
    assert connack(broker.device_url("gw-north", new_password)) == "Success"

    removed = cityrisk("mq", "device", "remove", "gw-north", env=env)
    assert removed.returncode == 0, removed.stderr
    assert wait_until(lambda: connack(broker.device_url("gw-north", new_password)) != "Success")
    assert broker_pid(data_dir) == pid  # reloaded (SIGHUP), never restarted
    assert cityrisk("mq", "device", "remove", "gw-north", env=env).returncode == 1
    for bad in ("a/b", "+", "cityrisk", "replay"):
        refused = cityrisk("mq", "device", "add", bad, env=env)
        assert refused.returncode == 1, bad
        assert refused.stderr.startswith("cityrisk: error: ")
    with_url = cityrisk("mq", "device", "list", env={**env, "MQTT_URL": broker.url()})
    assert with_url.returncode == 1
    assert "does not manage" in with_url.stderr


def test_up_restarts_a_broker_that_still_lets_anonymous_clients_in(data_dir: Path) -> None:
    """A broker started by an older cityrisk (anonymous allowed) is restarted, not kept."""
    broker = LocalBroker(Settings(data_dir=data_dir, mqtt_port=free_port()))
    broker.up(quiet)
    old = broker.conf_file.read_text().replace("allow_anonymous false", "allow_anonymous true")
    broker.down(quiet)
    broker.conf_file.write_text(old)
    subprocess.run([str(MOSQUITTO), "-c", str(broker.conf_file), "-d"], check=True)
    assert wait_until(lambda: broker.status().running)
    anonymous = f"mqtt://127.0.0.1:{broker.port}"
    assert connack(anonymous) == "Success"
    with pytest.raises(BrokerError, match="run `cityrisk mq up`"):
        broker.add_device("early", quiet)  # a reload would not load the logins
    said: list[str] = []
    assert broker.up(said.append)
    assert any("older configuration" in line for line in said)
    assert connack(anonymous) == "Not authorized"
    assert "early" in broker.devices()  # saved, and its login loaded by the restart
