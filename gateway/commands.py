"""Relay commands from the platform: a RelayCommand becomes a write of the meter's relay (a
coil or a holding register, with the function its profile names), checked by reading it
back, and the result a CommandAck. A payload that is not a RelayCommand is logged and
ignored."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from gateway.meter_table import MeterTable
from gateway.modbus_endpoint import MeterError
from meterline.contracts import CommandAck, RelayCommand

log = logging.getLogger("meterline.gateway")

WRITE_ATTEMPTS = 2  # a relay write is idempotent: once more after a dropped connection


class CommandHandler:
    def __init__(self, gateway_id: str, table: MeterTable) -> None:
        self.gateway_id = gateway_id
        self.table = table

    async def handle(self, payload: bytes) -> CommandAck | None:
        """The ack to publish for ``payload``, or None if it is not a command at all."""
        try:
            command = RelayCommand.model_validate_json(payload)
        except ValidationError as exc:
            log.warning(
                "ignored a malformed relay command %r: %s",
                payload[:200], exc.errors(include_url=False, include_input=False),
            )
            return None
        ok, detail = await self._execute(command)
        level = logging.INFO if ok else logging.WARNING
        log.log(level, "relay %s of meter %s (command %s): %s",
                command.action, command.meter, command.command_id, detail)
        return CommandAck(
            command_id=command.command_id,
            meter=command.meter,
            action=command.action,
            ok=ok,
            detail=detail,
            at=datetime.now(UTC),
        )

    async def _execute(self, command: RelayCommand) -> tuple[bool, str]:
        meter = self.table.find(command.meter)
        if meter is None:
            return False, (
                f"unknown meter {command.meter}: gateway {self.gateway_id} does not poll it "
                "(or has not read its serial number yet)"
            )
        relay = meter.profile.relay
        if relay is None:
            return False, f"meter {command.meter} ({meter.profile.model}) has no relay"
        closed = command.action == "connect"
        error: MeterError | None = None
        for _ in range(WRITE_ATTEMPTS):
            try:
                await meter.endpoint.write_relay(meter.unit, relay, closed)
                now_closed = await meter.endpoint.read_relay(meter.unit, relay)
            except MeterError as exc:
                error = exc
                continue
            if now_closed != closed:
                return False, ("the relay reads back " + ("closed" if now_closed else "open")
                               + " after the write")
            return True, ("relay closed, load connected (read back)" if closed
                          else "relay open, load disconnected (read back)")
        return False, f"Modbus write of the relay failed: {error}"
