"""Gateway benchmark: meter polls/s of one gateway process over Modbus TCP on loopback, each
poll reading five values of an SDM120 (import energy, voltage, current, power, frequency),
with block reads (one request per meter) against one request per value, in one run.

    python -m bench.gateway [--servers 4] [--meters 247] [--seconds 10] [--repeats 3]
                            [--queued 100000] [--against responders|simulators]

``--servers`` Modbus TCP servers of ``--meters`` SDM120s each, a process per server: minimal
responders answering from register images (default: so the gateway, not the servers, is
measured), or meter simulators (``meterline simulators``, pymodbus servers
computing each meter's load profile: on a small machine they are what limits the run). One
``meterline gateway`` process polls them all, one TCP line per server, cycles back to back,
publishing to the machine's Mosquitto. Measured from the gateway's own /metrics over a window
of ``--seconds`` after a warm-up: meter polls/s (one billed sample per poll), the gateway's
CPU, and polls per gateway CPU-second (what a core of its own would give it, on a machine
others share); and from an MQTT subscriber: the latency from the cycle's start (the batch's
``polled_at``) to the batch's delivery by the broker. The modes alternate, ``--repeats`` runs
each; medians are reported. Then the gateway runs with no broker until ``--queued`` readings
wait in its outbox, and its RSS is read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
import psutil

from meterline.kafka import free_port
from meterline.metrics import scrape
from meterline.mqtt import MqttLink
from meterline.services import Child
from meterline.settings import Settings

SIM_SERIAL_BASE = 41_000_000
MB = 1024 * 1024
HEADER = struct.Struct(">HHHB")  # Modbus TCP: transaction, protocol, length, unit id


@dataclass
class Run:
    mode: str
    polls_per_s: float
    cpu: float  # gateway CPU seconds per second
    latency_ms: list[float]
    cycle_ms: float  # mean poll cycle
    rss_mb: float


class Responder(asyncio.Protocol):
    """A minimal Modbus TCP server of SDM120 register images (function 04 over 0x0000-0x004F,
    function 03 for the serial at 0xFC00), answering each read from memory: the load the
    gateway is measured against when the simulators' own cost (pymodbus's server, the load
    profiles) would be what limits the run. It speaks the protocol the meters speak."""

    def __init__(self, meters: int, serial_base: int) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.input: dict[int, bytes] = {}
        self.serial: dict[int, bytes] = {}
        for unit in range(1, meters + 1):
            words = bytearray(160)  # 0x0000-0x004F, two bytes a register
            for address, value in ((0x00, 230.1), (0x06, 4.2), (0x0C, 966.4), (0x46, 50.0),
                                   (0x48, 1000.0 + unit)):
                struct.pack_into(">f", words, address * 2, value)
            self.input[unit] = bytes(words)
            self.serial[unit] = struct.pack(">I", serial_base + unit)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer, replies = self.buffer + data, []
        while len(buffer) >= HEADER.size:
            tid, _, length, unit = HEADER.unpack_from(buffer)
            end = 6 + length
            if len(buffer) < end:
                break
            pdu = self._answer(unit, buffer[HEADER.size:end])
            replies.append(HEADER.pack(tid, 0, len(pdu) + 1, unit) + pdu)
            buffer = buffer[end:]
        self.buffer = buffer
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def _answer(self, unit: int, pdu: bytes) -> bytes:
        function = pdu[0]
        address, count = struct.unpack_from(">HH", pdu, 1)
        if function == 4 and unit in self.input and address + count <= 0x50:
            data = self.input[unit][address * 2:(address + count) * 2]
        elif function == 3 and unit in self.serial and (address, count) == (0xFC00, 2):
            data = self.serial[unit]
        else:
            return bytes((function | 0x80, 2))  # illegal data address
        return bytes((function, len(data))) + data


async def respond(port: int, meters: int, index: int) -> None:
    """The responder of server ``index`` on ``port``: its meters have serials
    SIM_SERIAL_BASE + index * 1000 + unit, as the simulators would give them."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Responder(meters, SIM_SERIAL_BASE + index * 1000), "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


def simulator_config(port: int, meters: int, seed: int) -> str:
    """A simulator of its own per server; serials as the responders give them."""
    return (f"speedup = 600\nseed = {seed}\n\n[[tcp]]\nport = {port}\n[[tcp.meters]]\n"
            f'units = "1-{meters}"\nprofile = "eastron-sdm120"\n'
            f"serial_base = {SIM_SERIAL_BASE + seed * 1000}\n")


def gateway_config(ports: list[int], meters: int, block: bool) -> str:
    text = '[polling]\nevery = "1ms"\nalign = false\n\n[checks]\nrate_factor = 600\n\n'
    for n, port in enumerate(ports):
        text += (f'[[lines]]\nname = "tcp-{n}"\ntransport = "tcp"\nhost = "127.0.0.1"\n'
                 f"port = {port}\ntimeout = 2.0\n\n")
    for n in range(len(ports)):
        text += (f'[[meters]]\nline = "tcp-{n}"\nunits = "1-{meters}"\n'
                 f'profile = "eastron-sdm120"\nblock_reads = {str(block).lower()}\n\n')
    return text


def gateway_settings(base: Settings, work: Path, config: Path, **overrides: object) -> Settings:
    run = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "mqtt_host": base.mqtt_host, "mqtt_port": base.mqtt_port,
        "mqtt_topic_root": f"bench-gateway-{run}/v1", "gateway_id": f"bench-{run}",
        "gateway_config": config, "gateway_state_dir": work / f"state-{run}",
        "gateway_metrics_port": free_port(), "gateway_await_confirmation": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def until_metrics(http: aiohttp.ClientSession, url: str,
                        done: object = None) -> dict[str, float]:
    """The gateway's metrics once it serves them (and ``done(metrics)`` holds, if given)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            values = await scrape(http, url)
            if done is None or done(values):  # type: ignore[operator]
                return values
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.2)  # a benchmark polling its subject's metrics
    raise RuntimeError(f"no metrics from {url} in time")


async def one_run(base: Settings, work: Path, ports: list[int], meters: int, block: bool,
                  seconds: float) -> Run:
    mode = "block reads" if block else "one request per value"
    config = work / f"gateway-{uuid.uuid4().hex[:6]}.toml"
    config.write_text(gateway_config(ports, meters, block))
    settings = gateway_settings(base, work, config)
    url = f"http://{settings.metrics_host}:{settings.gateway_metrics_port}"
    listener = MqttLink(settings, f"bench-listener-{uuid.uuid4().hex[:8]}")
    await listener.connect([settings.topic(settings.gateway_id, "readings")])
    latencies: list[float] = []
    window = [float("inf"), float("inf")]

    async def listen() -> None:
        while True:
            message = await listener.messages.get()
            arrived = time.time()
            if window[0] <= arrived <= window[1]:
                polled = datetime.fromisoformat(json.loads(message.payload)["polled_at"])
                latencies.append((arrived - polled.timestamp()) * 1000)

    child = Child("gateway", work / "log", settings.as_env(), label=f"gateway-{config.stem}")
    listening = asyncio.create_task(listen())
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.to_thread(child.wait_ready, 120)
            # warm-up: every meter identified and polled a few times
            await until_metrics(
                http, url, lambda v: v.get("meterline_gateway_polls_total", 0) >= 3)
            t0 = time.time()
            window[0] = t0
            before = await scrape(http, url)
            await asyncio.sleep(seconds)  # the measurement window
            after = await scrape(http, url)
            t1 = time.time()
            window[1] = t1
    finally:
        child.stop()
        listening.cancel()
        await listener.close()
    span = t1 - t0

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    cycles = delta("meterline_gateway_poll_seconds_count")
    return Run(
        mode=mode,
        polls_per_s=delta("meterline_gateway_readings_total") / span,
        cpu=delta("process_cpu_seconds_total") / span,
        latency_ms=latencies,
        cycle_ms=delta("meterline_gateway_poll_seconds_sum") / cycles * 1000 if cycles else 0,
        rss_mb=after.get("process_resident_memory_bytes", 0.0) / MB,
    )


async def queued_rss(base: Settings, work: Path, ports: list[int], meters: int,
                     queued: int) -> tuple[float, float, float, float]:
    """The gateway's RSS (MB) once ``queued`` readings wait in its outbox, the broker away;
    (RSS, readings queued, batches, outbox MB)."""
    config = work / "gateway-outage.toml"
    config.write_text(gateway_config(ports, meters, block=True))
    settings = gateway_settings(base, work, config, mqtt_port=free_port())  # nobody there
    url = f"http://{settings.metrics_host}:{settings.gateway_metrics_port}"
    child = Child("gateway", work / "log", settings.as_env(), label="gateway-outage")
    try:
        async with aiohttp.ClientSession() as http:
            values = await until_metrics(
                http, url, lambda v: v.get("meterline_gateway_readings_total", 0) >= queued)
    finally:
        child.stop()
    return (values["process_resident_memory_bytes"] / MB,
            values["meterline_gateway_readings_total"],
            values["meterline_gateway_outbox_batches"],
            values["meterline_gateway_outbox_bytes"] / MB)


def median_run(runs: list[Run]) -> tuple[float, float, float, float, float, float, float]:
    latencies = sorted(ms for r in runs for ms in r.latency_ms)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
    return (statistics.median(r.polls_per_s for r in runs),
            statistics.median(r.cpu for r in runs),
            statistics.median(r.polls_per_s / r.cpu for r in runs if r.cpu),
            statistics.median(latencies) if latencies else 0.0, p99,
            statistics.median(r.cycle_ms for r in runs),
            statistics.median(r.rss_mb for r in runs))


async def main(args: argparse.Namespace) -> None:
    base = Settings(_env_file=None)
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    ports = [free_port() for _ in range(args.servers)]
    servers: list[asyncio.subprocess.Process] = []
    simulators: list[Child] = []
    try:
        if args.against == "simulators":
            for n, port in enumerate(ports):
                config = work / f"simulators-{n}.toml"
                config.write_text(simulator_config(port, args.meters, n))
                simulators.append(Child("simulators", work / "log", {
                    "METERLINE_SIM_CONFIG": str(config),
                    "METERLINE_SIM_METRICS_PORT": str(free_port())}, label=f"simulators-{n}"))
        else:  # a process per server, as separate devices would be (and the scheduler
            # of a shared machine gives each process its share)
            for n, port in enumerate(ports):
                server = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.gateway", "--serve", str(port),
                    "--index", str(n), "--meters", str(args.meters),
                    stdout=asyncio.subprocess.PIPE)
                servers.append(server)
                assert server.stdout is not None
                if (await server.stdout.readline()).strip() != b"ready":
                    raise RuntimeError(f"the Modbus responder on port {port} did not start")
        for child in simulators:
            await asyncio.to_thread(child.wait_ready, 120)
        runs: dict[bool, list[Run]] = {True: [], False: []}
        for n in range(args.repeats):
            for block in (True, False):
                run = await one_run(base, work, ports, args.meters, block, args.seconds)
                runs[block].append(run)
                print(f"# run {n + 1} {run.mode}: {run.polls_per_s:,.0f} polls/s, "
                      f"gateway CPU {run.cpu:.2f}, cycle {run.cycle_ms:.0f} ms", flush=True)
        rss = await queued_rss(base, work, ports, args.meters, args.queued)
    finally:
        for child in simulators:
            child.stop()
        for server in servers:
            server.terminate()
            await server.wait()

    total = args.servers * args.meters
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    print(f"\n## gateway: {args.servers} Modbus TCP {args.against} x {args.meters} SDM120 = "
          f"{total} meters, 5 values a meter, {args.seconds:g}s windows, {args.repeats} runs "
          f"(median); {psutil.cpu_count()} CPUs, load average {load} at the end")
    print("| reads | meter polls/s | gateway CPU (cores) | polls per gateway CPU-second | "
          "cycle ms | cycle start to broker delivery p50 / p99 ms | RSS MB |")
    print("|---|---|---|---|---|---|---|")
    medians = {block: median_run(r) for block, r in runs.items()}
    for block in (True, False):
        polls, cpu, per_cpu, p50, p99, cycle, rss_mb = medians[block]
        print(f"| {'block reads' if block else 'one request per value'} | {polls:,.0f} | "
              f"{cpu:.2f} | {per_cpu:,.0f} | {cycle:.0f} | {p50:.0f} / {p99:.0f} | "
              f"{rss_mb:.0f} |")
    print(f"\nblock reads / one request per value: {medians[True][0] / medians[False][0]:.2f}x")
    rss_mb, readings, batches, outbox_mb = rss
    print(f"outbox with {readings:,.0f} readings queued ({batches:,.0f} batches, "
          f"{outbox_mb:,.0f} MB on disk), broker away: gateway RSS {rss_mb:.0f} MB")
    shutil.rmtree(work, ignore_errors=True)  # outboxes, configurations and logs; kept on failure


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--meters", type=int, default=247, help="per server, 1-247")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument(
        "--against", choices=("responders", "simulators"), default="responders",
        help="the Modbus TCP servers polled: minimal responders answering from memory "
             "(the gateway's own ceiling), or the meter simulators (pymodbus servers)")
    parser.add_argument("--serve", type=int, metavar="PORT",
                        help="(internal) run a responder on PORT")
    parser.add_argument("--index", type=int, default=0,
                        help="(internal) the responder's server number (its serials)")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(respond(args.serve, args.meters, args.index))
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
