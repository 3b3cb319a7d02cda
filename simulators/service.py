"""``meterline simulators``: serve the simulated meters the settings (or ``sim_config``)
describe, until cancelled."""

from __future__ import annotations

import asyncio
import logging

from meterline.metrics import SIMULATOR_METERS, SIMULATOR_RELAYS_OPEN, SIMULATORS, serving
from meterline.settings import Settings
from simulators.config import SimulatorConfig, config_from_settings
from simulators.fleet import serve

log = logging.getLogger("meterline.simulators")


async def run(settings: Settings, config: SimulatorConfig | None = None) -> None:
    """Serve the simulated meters ``settings`` (or ``config``) describe, with /metrics and
    /ready on sim_metrics_port, until cancelled."""
    config = config or config_from_settings(settings)
    ready = asyncio.Event()
    async with serving(SIMULATORS, settings.metrics_host, settings.sim_metrics_port,
                       ready.is_set), serve(config) as fleet:
        for server in fleet.servers:
            models: dict[str, int] = {}
            for meter in server.meters.values():
                models[meter.profile.model] = models.get(meter.profile.model, 0) + 1
            units = sorted(server.meters)
            log.info(
                "%s on %s: %s, unit ids %d-%d, serials %d-%d%s",
                server.name, server.address,
                ", ".join(f"{n} {model}" for model, n in models.items()), units[0], units[-1],
                min(m.serial for m in server.meters.values()),
                max(m.serial for m in server.meters.values()),
                f" (device {server.device})" if server.device else "",
            )
        SIMULATOR_METERS.set(len(fleet.meters))
        SIMULATOR_RELAYS_OPEN.set_function(
            lambda: sum(not meter.relay_closed for meter in fleet.meters.values()))
        ready.set()
        log.info(
            "meter simulator ready: %d meters on %d server(s), speedup %gx, seed %d, state %s",
            len(fleet.meters), len(fleet.servers), config.speedup, config.seed,
            config.state_file or "not kept",
        )
        await asyncio.Event().wait()
