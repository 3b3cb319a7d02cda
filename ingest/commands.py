"""Delivering relay commands from the outbox (``relay_commands``) to the gateways.

Rating and the API write a command row in the same transaction as the money movement behind
it; a trigger NOTIFYs ``relay_commands``. The dispatcher LISTENs, publishes every requested
command to its meter's gateway (QoS 1) and marks it sent once the broker acknowledged it.
The gateway answers on its acks topic; ``record_ack`` stores that answer.

The same loop is the disconnection policy's clock: every pass (at most ``_CLOCK`` seconds
apart) it makes the cuts whose time has come (``meterline.relay.fire_due``: a notice period
ended, or the friendly hours opened), whose commands it then sends like any other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import psycopg
from pydantic import Field, TypeAdapter

from meterline.contracts import CommandAck, CommandResult, RelayCommand
from meterline.metrics import BRIDGE_RELAY_COMMANDS, RELAY_COMMANDS_PENDING
from meterline.mqtt import MqttError, MqttLink
from meterline.relay import fire_due
from meterline.settings import Settings

log = logging.getLogger("meterline.ingest")

_CLOCK = 5.0  # seconds between passes without a NOTIFY

_PENDING = """
SELECT c.id, c.meter_id, c.action, c.reason, c.requested_at, m.gateway_id
  FROM relay_commands c JOIN meters m ON m.id = c.meter_id
 WHERE c.status = 'requested'
 ORDER BY c.seq
 LIMIT 500
   FOR UPDATE OF c SKIP LOCKED
"""
_SENT = "UPDATE relay_commands SET status = 'sent', sent_at = now() WHERE id = %s"
_ACK = """
UPDATE relay_commands
   SET status = CASE WHEN %(ok)s THEN 'acknowledged' ELSE 'failed' END,
       acknowledged_at = %(at)s, detail = %(detail)s
 WHERE id = %(id)s AND meter_id = %(meter)s AND status IN ('requested', 'sent')
"""


async def send_pending(conn: psycopg.AsyncConnection[Any], link: MqttLink,
                       settings: Settings) -> int:
    """Publish every requested command; return how many were sent."""
    sent = 0
    async with conn.transaction():
        cur = await conn.execute(_PENDING)
        for command_id, meter, action, reason, requested_at, gateway in await cur.fetchall():
            command = RelayCommand(command_id=command_id, meter=meter, action=action,
                                   reason=reason, issued_at=requested_at)
            try:
                await link.publish(settings.topic(gateway, "commands"), command.model_dump_json())
            except MqttError as exc:
                log.warning("relay command %s not delivered yet: %s", command_id, exc)
                break
            await conn.execute(_SENT, (command_id,))
            sent += 1
    BRIDGE_RELAY_COMMANDS.labels("sent").inc(sent)
    return sent


_PENDING_COUNTS = """
SELECT s.status, count(c.id)
  FROM unnest(ARRAY['requested', 'sent']) AS s(status)
  LEFT JOIN relay_commands c ON c.status = s.status
 GROUP BY s.status
"""


async def count_pending(conn: psycopg.AsyncConnection[Any]) -> None:
    """Set the relay-command outbox gauge: commands requested, and sent but unacknowledged."""
    cur = await conn.execute(_PENDING_COUNTS)
    for status, count in await cur.fetchall():
        RELAY_COMMANDS_PENDING.labels(status).set(count)


async def dispatch(settings: Settings, link: MqttLink, ready: asyncio.Event) -> None:
    """Send requested commands now and whenever a new one is NOTIFYed; runs until cancelled."""
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, application_name="meterline-relay-listener"
    ) as listener, await psycopg.AsyncConnection.connect(
        settings.database_url, application_name="meterline-relay-dispatcher"
    ) as conn:
        await listener.execute("LISTEN relay_commands")
        ready.set()
        while True:
            try:
                fired = await fire_due(conn)
            except psycopg.Error as exc:  # the next pass tries again; sending goes on
                log.warning("due disconnections not decided: %s", exc)
            else:
                if fired:
                    log.info("due relay commands requested: %s", fired)
            await send_pending(conn, link, settings)
            await count_pending(listener)
            # wake on the next NOTIFY, or retry unsent commands after a while
            async for _ in listener.notifies(timeout=_CLOCK, stop_after=1):
                break


_ANSWER: TypeAdapter[CommandAck | CommandResult] = TypeAdapter(
    Annotated[CommandAck | CommandResult, Field(discriminator="v")])


async def record_ack(conn: psycopg.AsyncConnection[Any], payload: bytes) -> str | None:
    """Store a gateway's answer (a CommandAck, or a version 2 CommandResult); return the
    reason if the payload is refused."""
    try:
        ack = _ANSWER.validate_json(payload)
    except ValueError as exc:
        return f"malformed command ack: {exc}"
    cur = await conn.execute(_ACK, {"ok": ack.ok, "at": ack.at, "detail": ack.detail,
                                    "id": ack.command_id, "meter": ack.meter})
    if cur.rowcount:
        BRIDGE_RELAY_COMMANDS.labels("acknowledged" if ack.ok else "failed").inc()
    return None
