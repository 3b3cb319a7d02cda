"""``meterline simulators``: serve the simulated meter fleet the settings describe."""

from __future__ import annotations

import asyncio
import logging

from meterline.metrics import SIMULATOR_METERS, SIMULATOR_RELAYS_OPEN, SIMULATORS, serving
from meterline.settings import Settings
from simulators.fleet import serve_fleet

log = logging.getLogger("meterline.simulators")


async def run(settings: Settings) -> None:
    """Serve ``settings.sim_meters`` SDM120 meters on sim_host:sim_port, with /metrics and
    /ready on sim_metrics_port, until cancelled."""
    ready = asyncio.Event()
    async with serving(SIMULATORS, settings.metrics_host, settings.sim_metrics_port,
                       ready.is_set), serve_fleet(
        settings.sim_host,
        settings.sim_port,
        meters=settings.sim_meters,
        serial_base=settings.sim_serial_base,
        speedup=settings.sim_speedup,
        seed=settings.sim_seed,
    ) as fleet:
        SIMULATOR_METERS.set(len(fleet.meters))
        SIMULATOR_RELAYS_OPEN.set_function(
            lambda: sum(not meter.relay_closed for meter in fleet.meters.values()))
        ready.set()
        log.info(
            "meter simulator ready on %s:%d: %d SDM120 meters, unit ids 1-%d, "
            "serials %d-%d, speedup %gx, seed %d",
            fleet.host, fleet.port, len(fleet.meters), len(fleet.meters),
            fleet.serial(1), fleet.serial(len(fleet.meters)),
            settings.sim_speedup, settings.sim_seed,
        )
        await asyncio.Event().wait()
