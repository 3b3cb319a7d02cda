"""A running fleet of simulated meters: Modbus TCP servers and RTU lines, the meters behind
them, their shared simulated clock, and their non-volatile memory (the state file).

``serve(config)`` runs what a ``SimulatorConfig`` describes until the block exits;
``serve_fleet(...)`` is the short form for one TCP server of one profile (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer

from meterline.profiles import Profile
from simulators.clock import SimClock
from simulators.config import (
    DEFAULT_LOAD,
    MeterGroup,
    ScheduledFault,
    SimulatorConfig,
    TcpServer,
)
from simulators.device import absent_device, meter_device
from simulators.faults import Fault
from simulators.load_profiles import LoadKind, behaviour
from simulators.meter import MeterState, SimulatedMeter
from simulators.serial_line import SerialLine
from simulators.state import read_state, write_state

log = logging.getLogger("meterline.simulators")

LEASE_S = 10.0  # real seconds of consumption the state file holds ahead of what meters show


class SimulatorError(RuntimeError):
    pass


@dataclass
class Server:
    """One Modbus TCP server or RTU line and the meters behind it."""

    name: str  # tcp:<port> or rtu:<name>
    meters: dict[int, SimulatedMeter] = field(default_factory=dict)
    host: str = ""
    port: int = 0
    device: str = ""  # RTU: the device path a master opens
    link: Path | None = None  # RTU: the symlink to it

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else str(self.link)


class Fleet:
    """The live meters. A meter is named by its unit id (and server, when there are several):
    ``fleet.meter(3)`` or ``fleet.meter(3, "rtu:rs485-1")``."""

    def __init__(self, config: SimulatorConfig, clock: SimClock,
                 servers: list[Server]) -> None:
        self.config = config
        self.clock = clock
        self.servers = servers
        self.meters = {m.key: m for s in servers for m in s.meters.values()}
        self.lease_until = float("inf") if config.state_file is None else float("-inf")
        self.faults_injected = asyncio.Event()  # set once every scheduled fault is in

    # the first TCP server, for the many callers that have just one --------------------------
    @property
    def host(self) -> str:
        return self._server(None).host

    @property
    def port(self) -> int:
        return self._server(None).port

    @property
    def units(self) -> list[int]:
        return sorted(self._server(None).meters)

    def _server(self, name: str | None) -> Server:
        for server in self.servers:
            if name is None or server.name == name:
                return server
        raise SimulatorError(f"no server {name!r} in this fleet; "
                             f"there are {', '.join(s.name for s in self.servers)}")

    def meter(self, unit: int, server: str | None = None) -> SimulatedMeter:
        try:
            return self._server(server).meters[unit]
        except KeyError:
            raise SimulatorError(f"no meter with unit id {unit} on {server or 'the server'}") \
                from None

    def serial(self, unit: int, server: str | None = None) -> int:
        return self.meter(unit, server).serial

    def set_relay(self, unit: int, closed: bool, server: str | None = None) -> None:
        """Operate the relay from outside Modbus (the way a test or a fault would)."""
        meter = self.meter(unit, server)
        meter.set_relay(closed, self.clock.now())
        self.changed(meter)

    def inject(self, unit: int, fault: Fault, server: str | None = None) -> None:
        meter = self.meter(unit, server)
        meter.inject(fault, self.clock.now(), self.clock.monotonic)
        log.info("fault injected into meter %s (unit %d on %s): %s", meter.serial, unit,
                 server or self._server(None).name, fault)
        self.changed(meter)

    # non-volatile memory --------------------------------------------------------------------
    def renew(self, ahead: float = LEASE_S) -> None:
        """Save every meter's state as of ``ahead`` real seconds from now (the lease)."""
        path = self.config.state_file
        if path is None:
            return
        t = self.clock.at(ahead)
        states = {
            key: replace(m.state, amount=m.amount_at(t),
                         register_offsets=dict(m.state.register_offsets))
            for key, m in self.meters.items()
        }
        write_state(path, t, states)
        self.lease_until = t

    def guard(self) -> None:
        """Before a meter shows anything: renew the lease if it has run out."""
        if self.clock.now() >= self.lease_until:
            self.renew()

    def changed(self, meter: SimulatedMeter) -> None:
        """A meter's state changed other than by time (relay, fault): save it now."""
        if self.config.state_file is not None:
            self.renew()


def _load_kind(profile: Profile, group: MeterGroup) -> LoadKind:
    if group.load is not None:
        return group.load
    if any(reg.phase == 3 for reg in profile.registers):
        return LoadKind.INDUSTRY
    return DEFAULT_LOAD[group.utility or profile.utilities[0]]


def _build(config: SimulatorConfig, clock: SimClock,
           saved: dict[str, MeterState]) -> list[Server]:
    profiles = config.profiles()
    servers: list[Server] = []
    start = clock.now()
    for plan in config.servers:
        name = plan.server
        server = Server(name)
        for group in plan.meters:
            profile = profiles[group.profile]
            kind = _load_kind(profile, group)
            for index, unit in enumerate(group.units):
                key = f"{name}/{unit}"
                habits = behaviour(kind, config.seed, key)
                state = saved.get(key)
                if state is None or state.profile != profile.id:
                    state = MeterState(profile.id, group.serial(index), habits.opening)
                server.meters[unit] = SimulatedMeter(key, unit, profile, habits, state, start)
        servers.append(server)
    return servers


@asynccontextmanager
async def serve(
    config: SimulatorConfig,
    *,
    clock: Callable[[], float] | None = None,
    epoch: float | None = None,
    wall: Callable[[], float] = time.time,
) -> AsyncIterator[Fleet]:
    """Serve ``config`` until the block exits. ``clock`` (monotonic seconds; default
    ``time.monotonic``), ``epoch`` (simulated UNIX time at start; default: where the state
    file left off, or now) and ``wall`` (real time) let a test drive time."""
    saved: dict[str, MeterState] = {}
    if config.state_file is not None:
        restored = read_state(config.state_file)
        if restored is not None:
            resumed_at, saved = restored
            epoch = resumed_at if epoch is None else epoch
    sim_clock = SimClock(config.speedup, source=clock or time.monotonic, epoch=epoch, wall=wall)
    servers = _build(config, sim_clock, saved)
    fleet = Fleet(config, sim_clock, servers)
    running: list[ModbusBaseServer] = []
    lines: list[SerialLine] = []
    try:
        for server, plan in zip(servers, config.servers, strict=True):
            devices = [meter_device(m, sim_clock, fleet) for m in server.meters.values()]
            if isinstance(plan, TcpServer):
                modbus: ModbusBaseServer = ModbusTcpServer(
                    [absent_device(silent=False), *devices], address=(plan.host, plan.port),
                    ignore_missing_devices=True)
                await _start(modbus, f"{plan.host}:{plan.port}")
                listener = modbus.transport
                server.host = plan.host
                server.port = plan.port
                if isinstance(listener, asyncio.Server):  # the port the OS gave, for port 0
                    server.port = listener.sockets[0].getsockname()[1]
            else:
                line = SerialLine(plan.link)
                line.open()
                lines.append(line)
                modbus = ModbusSerialServer(
                    [absent_device(silent=True), *devices], port=line.server_port,
                    baudrate=plan.baudrate, ignore_missing_devices=True)
                await _start(modbus, str(plan.link))
                server.device, server.link = line.device, plan.link
            running.append(modbus)
        fleet.renew()
        async with asyncio.TaskGroup() as tasks:
            keeper = tasks.create_task(_keep_state(fleet))
            faults = tasks.create_task(_scheduled_faults(fleet, config.faults))
            try:
                yield fleet
            finally:
                keeper.cancel()
                faults.cancel()
    finally:
        for modbus in running:
            await modbus.shutdown()  # type: ignore[no-untyped-call]
            if ModbusBaseServer.active_server is modbus:  # pymodbus's global "last server"
                ModbusBaseServer.active_server = None
        for line in lines:
            line.close()
        if config.state_file is not None and fleet.meters:
            fleet.renew(ahead=0.0)  # stopped: nothing shown beyond now


async def _start(modbus: ModbusBaseServer, where: str) -> None:
    try:
        await modbus.serve_forever(background=True)
    except (RuntimeError, OSError) as exc:
        raise SimulatorError(f"meter simulator cannot listen on {where}: {exc}") from exc


async def _keep_state(fleet: Fleet) -> None:
    """Renew the lease well before it runs out, off the request path."""
    if fleet.config.state_file is None:
        return
    while True:
        await asyncio.sleep(LEASE_S / 2)  # a schedule, not a synchronisation
        fleet.renew()


async def _scheduled_faults(fleet: Fleet, faults: list[ScheduledFault]) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    for planned in sorted(faults, key=lambda f: f.at):
        await asyncio.sleep(max(0.0, started + planned.at - loop.time()))  # the plan's time
        try:
            fleet.inject(planned.unit, planned.fault, planned.server)
        except (SimulatorError, ValueError) as exc:
            log.error("scheduled fault %s for unit %d on %s not injected: %s",
                      planned.fault.kind, planned.unit, planned.server, exc)
    fleet.faults_injected.set()


@asynccontextmanager
async def serve_fleet(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    meters: int = 20,
    serial_base: int = 10_000_000,
    speedup: float = 600.0,
    seed: int = 1,
    profile: str = "eastron-sdm120",
    state_file: Path | None = None,
    clock: Callable[[], float] | None = None,
    epoch: float | None = None,
    wall: Callable[[], float] = time.time,
) -> AsyncIterator[Fleet]:
    """One TCP server on host:port (port 0: any free port, see ``Fleet.port``) with meters
    of one profile at units 1..``meters``; unit n has serial ``serial_base + n - 1``."""
    if not 1 <= meters <= 247:
        raise SimulatorError(f"a fleet has 1 to 247 meters, not {meters}")
    try:
        config = SimulatorConfig(
            speedup=speedup, seed=seed, state_file=state_file,
            tcp=[TcpServer(host=host, port=port, meters=[MeterGroup(
                units=list(range(1, meters + 1)), profile=profile, serial_base=serial_base)])],
        )
    except ValueError as exc:
        raise SimulatorError(str(exc)) from exc
    async with serve(config, clock=clock, epoch=epoch, wall=wall) as fleet:
        yield fleet


__all__ = ["Fleet", "Server", "SimulatorError", "serve", "serve_fleet"]
