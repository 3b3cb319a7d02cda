"""Who may publish and subscribe to what on the MQTT broker: gateways' and the bridge's
credentials, and Mosquitto's password file and ACL written from them.

Each gateway logs in with its own user name (its gateway id) and password and may only
publish on its own topics the contracts say gateways publish (``{root}/{id}/readings``,
``…/acks``) and subscribe to its own topics the platform publishes (``…/commands``). A
bridge reads every gateway's gateway-published topics and writes every platform-published
one. The ACL is written from `meterline.contracts.MQTT_TOPICS`, so a topic added there is
covered without editing the ACL by hand. Passwords are stored only as the hash Mosquitto's
password file holds (``$7$``: PBKDF2-SHA512, 101 iterations, 12-byte salt, as
``mosquitto_passwd`` writes them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from meterline.contracts import MQTT_TOPICS

ClientKind = Literal["gateway", "bridge"]
_ITERATIONS = 101


def password_hash(password: str, salt: bytes | None = None) -> str:
    """The password as a Mosquitto password-file hash (``$7$101$salt$hash``)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    return (f"$7${_ITERATIONS}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


@dataclass(frozen=True)
class MqttClient:
    username: str
    kind: ClientKind
    password_hash: str


async def add_client(conn: psycopg.AsyncConnection[Any], username: str, kind: ClientKind) -> str:
    """Register (or give a new password to) a gateway or bridge; returns the new password,
    which is stored only as its hash."""
    password = secrets.token_urlsafe(24)
    await conn.execute(
        """
        INSERT INTO mqtt_clients (username, kind, password_hash) VALUES (%s, %s, %s)
        ON CONFLICT (username) DO UPDATE
           SET kind = EXCLUDED.kind, password_hash = EXCLUDED.password_hash
        """,
        (username, kind, password_hash(password)),
    )
    return password


async def clients(conn: psycopg.AsyncConnection[Any]) -> list[MqttClient]:
    cur = await conn.execute(
        "SELECT username, kind, password_hash FROM mqtt_clients ORDER BY kind, username")
    return [MqttClient(*row) for row in await cur.fetchall()]


def password_file(registered: list[MqttClient]) -> str:
    return "".join(f"{c.username}:{c.password_hash}\n" for c in registered)


def acl(topic_root: str, registered: list[MqttClient]) -> str:
    """Mosquitto ACL: each gateway its own topics, each bridge every gateway's."""
    lines = [f"# Written by `meterline mqtt write-config` from meterline/contracts.py "
             f"(MQTT_TOPICS) for topic root {topic_root}; do not edit by hand."]
    for client in registered:
        lines += ["", f"user {client.username}"]
        for topic in MQTT_TOPICS:
            if client.kind == "gateway":
                access = "write" if topic.publisher == "gateway" else "read"
                lines.append(f"topic {access} {topic_root}/{client.username}/{topic.kind}")
            else:
                access = "read" if topic.publisher == "gateway" else "write"
                lines.append(f"topic {access} {topic_root}/+/{topic.kind}")
    return "\n".join(lines) + "\n"


def _replace(path: Path, text: str, mode: int) -> None:
    """Write ``path`` whole or not at all: the broker reloading meanwhile reads the old file
    or the new one, never half of one."""
    part = path.with_name(f".{path.name}.new")
    part.write_text(text)
    part.chmod(mode)
    os.replace(part, path)


def write_config(topic_root: str, registered: list[MqttClient],
                 folder: Path) -> tuple[Path, Path]:
    """Write ``passwd`` and ``acl`` for Mosquitto into ``folder``; (password file, ACL)."""
    folder.mkdir(parents=True, exist_ok=True)
    passwd, acl_path = folder / "passwd", folder / "acl"
    _replace(passwd, password_file(registered), 0o600)
    _replace(acl_path, acl(topic_root, registered), 0o644)
    return passwd, acl_path


async def remove_client(conn: psycopg.AsyncConnection[Any], username: str) -> bool:
    """Forget a gateway's or bridge's credentials (a gateway retired or compromised); False
    when there were none."""
    cur = await conn.execute("DELETE FROM mqtt_clients WHERE username = %s RETURNING 1",
                             (username,))
    return await cur.fetchone() is not None


async def publish_config(conn: psycopg.AsyncConnection[Any], topic_root: str, folder: Path,
                         broker_pid_file: Path | None = None) -> tuple[Path, Path]:
    """Rewrite the broker's password file and ACL from every registered client and, given its
    pid file, send the broker SIGHUP so it reloads them: a gateway registered can connect at
    once, one removed cannot connect again."""
    return await asyncio.to_thread(reload_broker, topic_root, await clients(conn), folder,
                                   broker_pid_file)


def reload_broker(topic_root: str, registered: list[MqttClient], folder: Path,
                  broker_pid_file: Path | None) -> tuple[Path, Path]:
    written = write_config(topic_root, registered, folder)
    if broker_pid_file is not None:
        pid = int(broker_pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    return written
