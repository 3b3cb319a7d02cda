"""A Modbus line: one connection (a TCP endpoint, or a serial port with an RS-485 bus behind
it) and the one worker that talks on it.

Everything said on a line goes through its worker, one request at a time, so meters on one
RS-485 bus never talk over each other. Work waits in a priority queue: commands go ahead of
polling (a relay command waits for at most the meter being read, not the whole cycle).

Each request has the timeout of the meter it is for; one that gets no answer is sent again
``retries`` times, after ``backoff`` seconds doubled each time. An exception response is an
answer: never retried.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from gateway.config import RtuLine, TcpLine
from meterline.profiles import RelaySpec

log = logging.getLogger("meterline.gateway")

T = TypeVar("T")
COMMAND, POLL = 0, 1  # priorities: lower goes first
EXCEPTIONS = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    10: "gateway path unavailable", 11: "gateway target device failed to respond",
}


class WholeBlock:
    """Register words of a read response decoded in one ``struct.unpack``, where pymodbus
    unpacks them one by one: on a block read of the SDM120's 74 registers that loop cost a
    gateway more CPU than anything else of a poll. Registered with each line's client through
    pymodbus's own extension point (``register``)."""

    function_code: int
    registers: Sequence[int]

    def decode(self, data: bytes) -> None:
        if (size := int(data[0])) >= len(data):
            raise ModbusIOException(f"byte_count {size} > length of packet {len(data)}",
                                    function_code=self.function_code)
        words = size // 2
        self.registers = list(struct.unpack(f">{words}H", data[1:1 + 2 * words]))


class InputRegisters(WholeBlock, ReadInputRegistersResponse):
    pass


class HoldingRegisters(WholeBlock, ReadHoldingRegistersResponse):
    pass


class MeterError(Exception):
    """A meter could not be reached, did not answer, or answered with a Modbus exception."""


class NoAnswer(MeterError):
    """The request got no answer in time (after its retries)."""


class ExceptionAnswer(MeterError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Line:
    def __init__(self, config: TcpLine | RtuLine) -> None:
        self.config = config
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if isinstance(config, TcpLine):
            self.client = AsyncModbusTcpClient(
                config.host, port=config.port, name=f"line {config.name}",
                timeout=config.timeout, retries=0, reconnect_delay=0)
        else:
            self.client = AsyncModbusSerialClient(
                str(config.device), baudrate=config.baudrate, parity=config.parity,
                stopbits=config.stopbits, bytesize=config.bytesize, name=f"line {config.name}",
                timeout=config.timeout, retries=0, reconnect_delay=0)
        # one meter that stays silent must not make pymodbus drop the line for the others
        self.client.set_max_no_responses(1_000_000)
        self.client.register(InputRegisters)
        self.client.register(HoldingRegisters)
        self._queue: asyncio.PriorityQueue[tuple[int, int, Callable[[], Awaitable[Any]],
                                                 asyncio.Future[Any]]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._worker: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def address(self) -> str:
        return self.config.address

    def __str__(self) -> str:
        return f"line {self.name} ({self.address})"

    # the worker -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"{self}")

    async def run(self, job: Callable[[], Awaitable[T]], priority: int = POLL) -> T:
        """Run ``job`` (which talks on this line) by the line's worker; its result."""
        return await self.submit(job, priority)

    def submit(self, job: Callable[[], Awaitable[T]], priority: int = POLL) -> asyncio.Future[T]:
        """Queue ``job`` for the line's worker; the future of its result. A poll cycle
        queues every meter of the line at once this way, without a task for each."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((priority, next(self._order), job, future))
        return future

    async def _work(self) -> None:
        while True:
            _, _, job, future = await self._queue.get()
            if future.done():  # the caller gave up waiting
                continue
            try:
                result = await job()
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        self.client.close()

    # requests: from jobs only ---------------------------------------------------------------
    async def ensure_connected(self) -> None:
        if self.client.connected:
            return
        if not await self.client.connect():
            raise MeterError(f"cannot connect to {self.address}")

    async def _request(self, unit: int, what: str, send: Callable[[], Awaitable[ModbusPDU]],
                       timeout: float, retries: int) -> ModbusPDU:
        await self.ensure_connected()
        # pymodbus reads the timeout for each request from here; one request at a time on the
        # line (the worker), so setting it per meter is safe
        self.client.ctx.comm_params.timeout_connect = timeout

        async def attempt() -> ModbusPDU:
            try:
                return await send()
            except (ModbusIOException, TimeoutError) as exc:
                raise NoAnswer(f"unit {unit} on {self}: {what}: no answer in {timeout:g}s") \
                    from exc
            except (ConnectionException, ModbusException, OSError) as exc:
                raise MeterError(f"unit {unit} on {self}: {what} failed: {exc}") from exc

        # the first attempt goes straight out: setting up tenacity costs more CPU than the
        # request itself, and nearly every request is answered the first time
        try:
            response = await attempt()
        except NoAnswer:
            if not retries:
                raise
            await asyncio.sleep(self.config.backoff)  # backoff before a retry, not a sync
            retrying = AsyncRetrying(
                stop=stop_after_attempt(retries),
                wait=wait_exponential(multiplier=2 * self.config.backoff, max=60),
                retry=retry_if_exception_type(NoAnswer), reraise=True)
            response = await retrying(attempt)
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise ExceptionAnswer(
                f"unit {unit} on {self}: {what} answered exception {code:02d} "
                f"({EXCEPTIONS.get(code, 'unknown')})", code)
        return response

    async def read_registers(self, unit: int, table: str, address: int, count: int, *,
                             timeout: float, retries: int) -> list[int]:
        """``count`` registers from ``address`` of the holding or input table."""
        read = (self.client.read_holding_registers if table == "holding"
                else self.client.read_input_registers)
        response = await self._request(
            unit, f"reading {table} registers {address:#06x}+{count}",
            lambda: read(address, count=count, device_id=unit), timeout, retries)
        if len(response.registers) != count:
            raise MeterError(f"unit {unit} on {self}: asked {count} registers at {address:#06x},"
                             f" got {len(response.registers)}")
        return list(response.registers)

    async def write_relay(self, unit: int, relay: RelaySpec, closed: bool, *, timeout: float,
                          retries: int) -> None:
        """Write the relay with the profile's function (a meter may refuse any other). A
        write is idempotent, so sending it again after no answer is safe."""
        value = relay.closed if closed else relay.open
        what = f"writing the relay ({relay.table} {relay.address}) = {value}"
        client = self.client
        send: Callable[[], Awaitable[ModbusPDU]]
        match relay.write_function:
            case 5:
                send = partial(client.write_coil, relay.address, bool(value), device_id=unit)
            case 15:
                send = partial(client.write_coils, relay.address, [bool(value)], device_id=unit)
            case 6:
                send = partial(client.write_register, relay.address, value, device_id=unit)
            case 16:
                send = partial(client.write_registers, relay.address, [value], device_id=unit)
        await self._request(unit, what, send, timeout, retries)

    async def read_relay(self, unit: int, relay: RelaySpec, *, timeout: float,
                         retries: int) -> bool:
        """True if the relay reads back closed (load connected)."""
        if relay.table == "coil":
            response = await self._request(
                unit, f"reading the relay coil {relay.address}",
                lambda: self.client.read_coils(relay.address, count=1, device_id=unit),
                timeout, retries)
            return bool(response.bits[0])
        (value,) = await self.read_registers(unit, "holding", relay.address, 1,
                                             timeout=timeout, retries=retries)
        if value not in (relay.closed, relay.open):
            raise MeterError(f"unit {unit} on {self}: the relay register reads {value}, "
                             f"neither closed ({relay.closed}) nor open ({relay.open})")
        return value == relay.closed
