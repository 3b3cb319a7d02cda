"""One Modbus TCP endpoint (a meter, or an RS-485 gateway with many meters behind it) and
the requests the gateway makes to its units, in the terms of their profiles."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from gateway.meters_config import EndpointConfig
from meterline.profiles import DecodingError, Profile, RelaySpec


class MeterError(Exception):
    """A meter could not be reached, did not answer, or answered with a Modbus exception."""


class ModbusEndpoint:
    """A pymodbus client for one host:port. It connects lazily and again after a connection
    is lost (``ensure_connected``); requests to one endpoint run one at a time."""

    def __init__(self, config: EndpointConfig, *, timeout: float) -> None:
        self.config = config
        self.client = AsyncModbusTcpClient(
            config.host,
            port=config.port,
            name=f"meters {config.address}",
            timeout=timeout,
            retries=0,  # the next poll cycle is the retry
            reconnect_delay=0,  # no background reconnects: ensure_connected does it
        )
        self._connect_lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return self.config.address

    async def ensure_connected(self) -> None:
        async with self._connect_lock:
            if self.client.connected:
                return
            if not await self.client.connect():
                raise MeterError(f"cannot connect to {self.address}")

    async def _request(
        self, unit: int, what: str, send: Callable[[], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        await self.ensure_connected()
        try:
            response = await send()
        except (ModbusException, TimeoutError, OSError) as exc:
            raise MeterError(f"unit {unit} at {self.address}: {what} failed: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise MeterError(
                f"unit {unit} at {self.address}: {what} answered Modbus exception {code}"
            )
        return response

    async def read_registers(self, unit: int, table: str, address: int, count: int) -> list[int]:
        """``count`` registers from ``address`` of the holding or input table."""
        read = (self.client.read_holding_registers if table == "holding"
                else self.client.read_input_registers)
        response = await self._request(
            unit, f"reading {table} registers {address:#06x}+{count}",
            lambda: read(address, count=count, device_id=unit),
        )
        if len(response.registers) != count:
            raise MeterError(
                f"unit {unit} at {self.address}: asked {count} registers at {address:#06x}, "
                f"got {len(response.registers)}"
            )
        return list(response.registers)

    async def read_serial(self, unit: int, profile: Profile) -> str:
        """The serial number, where and as the profile says it is."""
        spec = profile.serial
        codec = profile.codec(spec)
        words = await self.read_registers(unit, spec.table, spec.address, codec.words)
        try:
            return str(codec.decode(words))
        except DecodingError as exc:
            raise MeterError(f"unit {unit} at {self.address}: bad serial number: {exc}") from exc

    async def write_relay(self, unit: int, relay: RelaySpec, closed: bool) -> None:
        """Write the relay with the profile's function (a meter may refuse any other)."""
        value = relay.closed if closed else relay.open
        what = f"writing the relay ({relay.table} {relay.address}) = {value}"
        match relay.write_function:
            case 5:
                response = await self._request(unit, what, lambda: self.client.write_coil(
                    relay.address, bool(value), device_id=unit))
            case 15:
                response = await self._request(unit, what, lambda: self.client.write_coils(
                    relay.address, [bool(value)], device_id=unit))
            case 6:
                response = await self._request(unit, what, lambda: self.client.write_register(
                    relay.address, value, device_id=unit))
            case 16:
                response = await self._request(unit, what, lambda: self.client.write_registers(
                    relay.address, [value], device_id=unit))
        del response  # the answer to a write is an echo; read_relay checks what happened

    async def read_relay(self, unit: int, relay: RelaySpec) -> bool:
        """True if the relay reads back closed (load connected)."""
        if relay.table == "coil":
            response = await self._request(
                unit, f"reading the relay coil {relay.address}",
                lambda: self.client.read_coils(relay.address, count=1, device_id=unit))
            return bool(response.bits[0])
        (value,) = await self.read_registers(unit, "holding", relay.address, 1)
        if value not in (relay.closed, relay.open):
            raise MeterError(f"unit {unit} at {self.address}: the relay register reads "
                             f"{value}, neither closed ({relay.closed}) nor open ({relay.open})")
        return value == relay.closed

    def close(self) -> None:
        self.client.close()
