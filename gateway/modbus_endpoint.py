"""One Modbus TCP endpoint (a meter, or an RS-485 gateway with many meters behind it) and
the requests the gateway makes to its units."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from gateway.meters_config import EndpointConfig
from meterline.register_maps import DecodingError, decode_uint32


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

    async def read_input_registers(self, unit: int, address: int, count: int) -> list[int]:
        response = await self._request(
            unit,
            f"reading input registers {address:#06x}+{count}",
            lambda: self.client.read_input_registers(address, count=count, device_id=unit),
        )
        if len(response.registers) != count:
            raise MeterError(
                f"unit {unit} at {self.address}: asked {count} registers at {address:#06x}, "
                f"got {len(response.registers)}"
            )
        return list(response.registers)

    async def read_serial(self, unit: int, address: int) -> str:
        """The serial number: a uint32 in holding registers address, address + 1."""
        response = await self._request(
            unit,
            f"reading the serial number at {address:#06x}",
            lambda: self.client.read_holding_registers(address, count=2, device_id=unit),
        )
        try:
            return str(decode_uint32(response.registers))
        except DecodingError as exc:
            raise MeterError(f"unit {unit} at {self.address}: bad serial number: {exc}") from exc

    async def write_coil(self, unit: int, coil: int, value: bool) -> None:
        response = await self._request(
            unit,
            f"writing coil {coil} = {value}",
            lambda: self.client.write_coil(coil, value, device_id=unit),
        )
        if response.bits[:1] != [value]:
            raise MeterError(
                f"unit {unit} at {self.address}: coil {coil} write of {value} "
                f"echoed {response.bits[:1]}"
            )

    def close(self) -> None:
        self.client.close()
