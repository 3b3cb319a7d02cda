"""Commands from the platform, and their answers.

Two versions arrive on ``{gateway}/commands``: RelayCommand (v1, connect/disconnect, what the
bridge sends today) answered by a CommandAck, and GatewayCommand (v2: connect, disconnect,
read_now, set_poll_period) answered by a CommandResult. A payload that is neither is logged
and ignored.

Every command is idempotent by its id: the result is remembered (``Memory``), and the same
id again is answered with that first result without executing anything. A relay command runs
on the meter's line ahead of polling, is retried like any request, and is verified by reading
the relay back: "ok" means the relay reads back as commanded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from gateway.devices import Device, DeviceTable
from gateway.lines import COMMAND, ExceptionAnswer, MeterError, NoAnswer
from gateway.memory import Memory
from meterline.contracts import CommandAck, CommandResult, GatewayCommand, RelayCommand

log = logging.getLogger("meterline.gateway")

Command = Annotated[RelayCommand | GatewayCommand, Field(discriminator="v")]
_COMMAND: TypeAdapter[Command] = TypeAdapter(Command)
ReadNow = Callable[[str | None], Awaitable[int]]  # meter (None: all) -> the batch's seq
SetPeriod = Callable[[float], None]


class CommandHandler:
    def __init__(self, gateway_id: str, table: DeviceTable, memory: Memory, *,
                 read_now: ReadNow, set_period: SetPeriod) -> None:
        self.gateway_id = gateway_id
        self.table = table
        self.memory = memory
        self.read_now = read_now
        self.set_period = set_period
        self._running: set[str] = set()  # command ids being executed now

    async def handle(self, payload: bytes) -> CommandAck | CommandResult | None:
        """The answer to publish for ``payload``; None if it is not a command at all, or the
        same command is being executed right now (its answer comes from there)."""
        try:
            command = _COMMAND.validate_json(payload)
        except ValidationError as exc:
            log.warning("ignored a malformed command %r: %s", payload[:200],
                        exc.errors(include_url=False, include_input=False))
            return None
        key = str(command.command_id)
        remembered = self.memory.command_result(key)
        if remembered is not None:
            log.info("command %s seen before: answered with its first result, not run again",
                     key)
            if isinstance(command, RelayCommand):
                return CommandAck.model_validate_json(remembered)
            first = CommandResult.model_validate_json(remembered)
            return first.model_copy(update={"duplicate": True})
        if key in self._running:
            log.info("command %s is being executed already", key)
            return None
        self._running.add(key)
        try:
            result = await self._execute(command)
        finally:
            self._running.discard(key)
        self.memory.remember_command(key, result.model_dump_json())
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "command %s (%s%s): %s", key, command.action,
                f" of meter {command.meter}" if command.meter else "", result.detail)
        return result

    async def _execute(self, command: RelayCommand | GatewayCommand) -> CommandAck | CommandResult:
        now = datetime.now(UTC)
        if isinstance(command, RelayCommand):
            ok, detail, _ = await self._relay(command.meter, command.action)
            return CommandAck(command_id=command.command_id, meter=command.meter,
                              action=command.action, ok=ok, detail=detail, at=now)
        result = CommandResult(command_id=command.command_id, action=command.action,
                               meter=command.meter, ok=False, at=now)
        match command.action:
            case "connect" | "disconnect":
                assert command.meter is not None
                ok, detail, relay = await self._relay(command.meter, command.action)
                update: dict[str, object] = {"ok": ok, "detail": detail, "relay": relay}
            case "read_now":
                if command.meter is not None and self.table.find(command.meter) is None:
                    update = {"detail": self._unknown(command.meter)}
                else:
                    try:
                        seq = await self.read_now(command.meter)
                    except Exception as exc:  # the platform hears why
                        update = {"detail": f"the readings could not be stored: {exc}"}
                    else:
                        update = {"ok": True, "batch_seq": seq,
                                  "detail": f"read into batch {seq}"}
            case "set_poll_period":
                assert command.poll_period_s is not None
                self.set_period(command.poll_period_s)
                update = {"ok": True, "detail": f"polling every {command.poll_period_s:g} s"}
        return result.model_copy(update={**update, "at": datetime.now(UTC)})

    def _unknown(self, meter: str) -> str:
        return (f"unknown meter {meter}: gateway {self.gateway_id} does not poll it "
                "(or has not read its serial number yet)")

    async def _relay(self, meter: str, action: Literal["connect", "disconnect"]) -> tuple[
            bool, str, Literal["connected", "disconnected"] | None]:
        device = self.table.find(meter)
        if device is None:
            return False, self._unknown(meter), None
        relay = device.profile.relay
        if relay is None:
            return False, f"meter {meter} ({device.profile.model}) has no relay", None
        closed = action == "connect"
        try:
            now_closed = await device.line.run(lambda: self._switch(device, closed), COMMAND)
        except MeterError as exc:
            return False, f"Modbus write of the relay failed: {exc}", None
        state: Literal["connected", "disconnected"] = (
            "connected" if now_closed else "disconnected")
        if now_closed != closed:
            return False, f"the relay reads back {state} after the write", state
        return True, ("relay closed, load connected (read back)" if closed
                      else "relay open, load disconnected (read back)"), state

    @staticmethod
    async def _switch(device: Device, closed: bool) -> bool:
        """Write the relay and read it back (a job on the device's line). A write is
        idempotent: once more after a connection that dropped."""
        relay = device.profile.relay
        assert relay is not None
        for attempt in range(2):
            try:
                await device.line.write_relay(device.unit, relay, closed,
                                              timeout=device.timeout, retries=device.retries)
                return await device.line.read_relay(device.unit, relay, timeout=device.timeout,
                                                    retries=device.retries)
            except (NoAnswer, ExceptionAnswer):
                raise
            except MeterError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

