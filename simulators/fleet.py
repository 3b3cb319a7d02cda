"""A fleet of simulated SDM120 meters behind one Modbus TCP server (unit ids 1..N)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from pymodbus.server import ModbusTcpServer

from simulators.clock import SimClock
from simulators.electricity_meter import Readout, SimulatedMeter
from simulators.load_profiles import meter_profile
from simulators.sdm120 import absent_device, meter_device

MAX_UNITS = 247  # the highest Modbus unit id a device may have
MAX_SERIAL = 0xFFFF_FFFF  # the serial is a uint32


class SimulatorError(RuntimeError):
    pass


def build_meters(
    count: int, *, serial_base: int, seed: int, start_t: float
) -> dict[int, SimulatedMeter]:
    """Meters of units 1..count; unit n has serial ``serial_base + n - 1``."""
    if not 1 <= count <= MAX_UNITS:
        raise SimulatorError(f"a fleet has 1 to {MAX_UNITS} meters, not {count}")
    if serial_base < 0 or serial_base + count - 1 > MAX_SERIAL:
        raise SimulatorError(
            f"serials {serial_base}..{serial_base + count - 1} do not fit in a uint32"
        )
    return {
        unit: SimulatedMeter(unit, serial_base + unit - 1, meter_profile(seed, unit), start_t)
        for unit in range(1, count + 1)
    }


class Fleet:
    """A running fleet: where it listens and the live state of its meters."""

    def __init__(
        self, host: str, port: int, meters: Mapping[int, SimulatedMeter], clock: SimClock
    ) -> None:
        self.host = host
        self.port = port
        self.meters = dict(meters)
        self.clock = clock

    @property
    def units(self) -> list[int]:
        return sorted(self.meters)

    def meter(self, unit: int) -> SimulatedMeter:
        try:
            return self.meters[unit]
        except KeyError:
            raise SimulatorError(f"no meter with unit id {unit} in this fleet") from None

    def serial(self, unit: int) -> int:
        return self.meter(unit).serial

    def readout(self, unit: int) -> Readout:
        """What the meter shows now."""
        return self.meter(unit).readout(self.clock.now())

    def set_relay(self, unit: int, closed: bool) -> None:
        """Operate the relay from outside Modbus (the way a test or a fault would)."""
        self.meter(unit).set_relay(closed, self.clock.now())


@asynccontextmanager
async def serve_fleet(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    meters: int = 20,
    serial_base: int = 10_000_000,
    speedup: float = 600.0,
    seed: int = 1,
    clock: Callable[[], float] | None = None,
    epoch: float | None = None,
) -> AsyncIterator[Fleet]:
    """Serve a fleet on host:port (port 0: any free port, see ``Fleet.port``) until the
    block exits. ``clock`` (monotonic seconds; default ``time.monotonic``) and ``epoch``
    (simulated UNIX time at start; default now) let a test drive simulated time."""
    sim_clock = SimClock(speedup, source=clock or time.monotonic, epoch=epoch)
    fleet_meters = build_meters(
        meters, serial_base=serial_base, seed=seed, start_t=sim_clock.now()
    )
    devices = [absent_device()] + [
        meter_device(m, sim_clock.now) for m in fleet_meters.values()
    ]
    server = ModbusTcpServer(devices, address=(host, port))
    try:
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise SimulatorError(
                f"meter simulator cannot listen on {host}:{port}: {exc}"
            ) from exc
        listener = server.transport
        if isinstance(listener, asyncio.Server):  # the port the OS gave, for port 0
            port = listener.sockets[0].getsockname()[1]
        yield Fleet(host, port, fleet_meters, sim_clock)
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        if ModbusTcpServer.active_server is server:  # pymodbus's global "last server"
            ModbusTcpServer.active_server = None
