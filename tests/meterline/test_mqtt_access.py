"""Gateways' MQTT credentials and the ACL written from the contracts, against a Mosquitto of
the test's own (password file and ACL, on a free port)."""

from __future__ import annotations

import asyncio
import os
import pwd
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from meterline.kafka import free_port, stop_process
from meterline.mqtt_access import MqttClient, acl, add_client, clients, write_config
from meterline.settings import Settings
from tests.conftest import unique
from tests.waiting import until

DEPLOY_ACL = Path(__file__).parents[2] / "deploy" / "mosquitto" / "acl"
WAIT = 20.0  # seconds to wait for the broker's answer


def test_the_deployed_acl_is_the_one_the_contracts_give() -> None:
    expected = acl("meterline/v1", [MqttClient("meterline-bridge", "bridge", ""),
                                    MqttClient("gw-1", "gateway", "")])
    assert DEPLOY_ACL.read_text() == expected


@dataclass
class Broker:
    port: int
    root: str
    passwords: dict[str, str]
    pid: int


def _start_mosquitto(folder: Path, port: int) -> subprocess.Popen[bytes]:
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\n"
        "persistence false\nlog_dest stderr\n"  # stderr: not buffered
        # started as root, mosquitto would become user `mosquitto`, who cannot read tmp_path
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    running = threading.Event()

    def read_log() -> None:  # drained to the end, or a full pipe would stall the broker
        assert proc.stdout is not None
        for line in proc.stdout:
            if b" running" in line:
                running.set()
        running.set()  # EOF: it died

    threading.Thread(target=read_log, daemon=True).start()
    running.wait(WAIT)
    if proc.poll() is not None or not running.is_set():
        stop_process(proc)
        pytest.fail(f"mosquitto did not start on port {port}")
    return proc


@pytest.fixture
async def broker(conn: psycopg.AsyncConnection[Any], tmp_path: Path) -> AsyncIterator[Broker]:
    root = unique("acl-test") + "/v1"
    names = {"bridge": unique("bridge"), "a": unique("gw-a"), "b": unique("gw-b")}
    passwords = {
        names["bridge"]: await add_client(conn, names["bridge"], "bridge"),
        names["a"]: await add_client(conn, names["a"], "gateway"),
        names["b"]: await add_client(conn, names["b"], "gateway"),
    }
    mine = [c for c in await clients(conn) if c.username in passwords]
    write_config(root, mine, tmp_path)
    port = free_port()
    proc = _start_mosquitto(tmp_path, port)
    try:
        yield Broker(port, root, {**passwords, **{k: v for k, v in names.items()}}, proc.pid)
    finally:
        stop_process(proc)


class Peer:
    """A plain paho client that records what the broker answers."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("peer"),
                                  protocol=paho.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.suback: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.put(reason)
        self.client.on_subscribe = lambda _c, _u, _m, reasons, _p: self.suback.put(reasons)
        self.client.on_message = lambda _c, _u, msg: self.messages.put(
            (msg.topic, bytes(msg.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.accepted = not self.connack.get(timeout=WAIT).is_failure

    def subscribe(self, topic: str) -> bool:
        self.client.subscribe(topic, qos=1)
        return not self.suback.get(timeout=WAIT)[0].is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(broker: Broker) -> Iterator[Any]:
    made: list[Peer] = []

    def connect(username: str | None, password: str | None = None) -> Peer:
        peer = Peer(broker.port, username, password)
        made.append(peer)
        return peer

    yield connect
    for peer in made:
        peer.close()


def _as(broker: Broker, who: str) -> tuple[str, str]:
    name = broker.passwords[who]
    return name, broker.passwords[name]


async def test_only_registered_clients_with_their_password_connect(
    broker: Broker, peers: Any,
) -> None:
    gateway, password = _as(broker, "a")
    assert peers(gateway, password).accepted
    assert not peers(None).accepted  # anonymous
    assert not peers(gateway, password + "x").accepted
    assert not peers(unique("gw-unknown"), password).accepted


async def test_a_gateway_publishes_only_on_its_own_topics(broker: Broker, peers: Any) -> None:
    bridge = peers(*_as(broker, "bridge"))
    assert bridge.subscribe(f"{broker.root}/+/readings")
    a, b = broker.passwords["a"], broker.passwords["b"]
    gateway = peers(*_as(broker, "a"))
    gateway.publish(f"{broker.root}/{a}/readings", b"first")
    gateway.publish(f"{broker.root}/{b}/readings", b"spoofed")  # dropped by the broker
    gateway.publish(f"{broker.root}/{a}/readings", b"second")
    got = [bridge.messages.get(timeout=WAIT) for _ in range(2)]
    # in order on one connection: had the spoofed one passed, it would be second here
    assert got == [(f"{broker.root}/{a}/readings", b"first"),
                   (f"{broker.root}/{a}/readings", b"second")]


async def test_a_gateway_reads_only_its_own_commands(broker: Broker, peers: Any) -> None:
    a, b = broker.passwords["a"], broker.passwords["b"]
    gateway = peers(*_as(broker, "a"))
    # Mosquitto 2.0 grants the subscription and checks read access on each message it delivers
    gateway.subscribe(f"{broker.root}/+/commands")
    bridge = peers(*_as(broker, "bridge"))
    for n, target in enumerate((b, a, b, a)):
        bridge.publish(f"{broker.root}/{target}/commands", f"{n} for {target}".encode())
    got = [gateway.messages.get(timeout=WAIT)[1] for _ in range(2)]
    # in order from one publisher: had one of b's passed, it would be among these two
    assert got == [f"1 for {a}".encode(), f"3 for {a}".encode()]


async def test_the_bridge_cannot_publish_readings(broker: Broker, peers: Any) -> None:
    a = broker.passwords["a"]
    listener = peers(*_as(broker, "bridge"))
    assert listener.subscribe(f"{broker.root}/{a}/readings")
    bridge = peers(*_as(broker, "bridge"))
    bridge.publish(f"{broker.root}/{a}/readings", b"forged by the bridge")
    gateway = peers(*_as(broker, "a"))
    gateway.publish(f"{broker.root}/{a}/readings", b"real")
    assert listener.messages.get(timeout=WAIT) == (f"{broker.root}/{a}/readings", b"real")




async def test_registering_a_gateway_lets_it_connect_at_once_and_removing_it_shuts_it_out(
    broker: Broker, tmp_path: Path, make_settings: Callable[..., Settings],
) -> None:
    """`meterline mqtt add-client` with the broker's folder and pid file rewrites the
    password file and ACL and reloads the broker: no one edits a file or restarts a thing."""
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.pid}\n")
    settings = make_settings(mqtt_topic_root=broker.root, mqtt_config_dir=tmp_path,
                             mqtt_broker_pid_file=pid_file)
    env = {**os.environ, **settings.as_env()}
    gateway = unique("gw-new")

    def meterline(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "meterline", "mqtt", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    def connects(password: str) -> bool:
        peer = Peer(broker.port, gateway, password)
        peer.close()
        return peer.accepted

    password = await asyncio.to_thread(meterline, "add-client", gateway)
    assert gateway in (tmp_path / "passwd").read_text()
    assert f"topic write {broker.root}/{gateway}/readings" in (tmp_path / "acl").read_text()

    async def accepted() -> bool:
        return await asyncio.to_thread(connects, password)

    await until(accepted, what=f"the broker to accept {gateway}")
    # its own readings reach the bridge: the ACL was reloaded with the password file
    bridge = Peer(broker.port, *_as(broker, "bridge"))
    try:
        assert bridge.subscribe(f"{broker.root}/{gateway}/readings")
        sender = Peer(broker.port, gateway, password)
        sender.publish(f"{broker.root}/{gateway}/readings", b"hello")
        sender.close()
        assert bridge.messages.get(timeout=WAIT) == (f"{broker.root}/{gateway}/readings",
                                                     b"hello")
    finally:
        bridge.close()

    assert await asyncio.to_thread(meterline, "remove-client", gateway) == f"{gateway} removed"
    assert gateway not in (tmp_path / "passwd").read_text()

    async def refused() -> bool:
        return not await asyncio.to_thread(connects, password)

    await until(refused, what=f"the broker to refuse {gateway}")
