"""How each service is doing, in Prometheus metrics, and whether it is ready.

Every service serves ``GET /metrics`` (Prometheus text format) and ``GET /ready`` (200 once
it does its work, 503 before and while stopping): the API on its own port, the rating worker
on ``rating_web_port``, the others on a small HTTP server of their own (``serving``) on the
port their settings name. The demo's live summary, the benchmarks, Prometheus and the
Grafana dashboard (``deploy/``) all read these same metrics.

Each service has a registry of its own below, so it serves only its own metrics (and the
process's CPU and memory). Names say the service: ``meterline_<service>_<what>``; counters
end in ``_total``. Metrics of one process are shared by every instance in it (tests run
several bridges in one process): compare differences, not absolute values.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from meterline.settings import Settings


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, memory, open fds
    return registry


GATEWAY = _registry()
BRIDGE = _registry()
RATING = _registry()
API = _registry()
SIMULATORS = _registry()
NOTIFIER = _registry()
SCHEDULER = _registry()
LOADGEN = _registry()

# batch sizes: readings per Kafka record or gateway batch, records per rating batch
_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# --- gateway -------------------------------------------------------------------------------
GATEWAY_POLLS = Counter("meterline_gateway_polls", "Poll cycles run.", registry=GATEWAY)
GATEWAY_POLL_SECONDS = Histogram(
    "meterline_gateway_poll_seconds", "Time to read every meter of one poll cycle.",
    buckets=_SECONDS, registry=GATEWAY)
GATEWAY_READINGS = Counter(
    "meterline_gateway_readings", "Readings (register samples) read from the meters.",
    registry=GATEWAY)
GATEWAY_BATCHES_STORED = Counter(
    "meterline_gateway_batches_stored", "Readings batches stored in the outbox.",
    registry=GATEWAY)
GATEWAY_BATCHES_ACKNOWLEDGED = Counter(
    "meterline_gateway_batches_acknowledged",
    "Readings batches acknowledged, hence removed from the outbox.", registry=GATEWAY)
GATEWAY_OUTBOX_BATCHES = Gauge(
    "meterline_gateway_outbox_batches", "Batches waiting in the outbox.", registry=GATEWAY)
GATEWAY_OUTBOX_BYTES = Gauge(
    "meterline_gateway_outbox_bytes", "Bytes of batches waiting in the outbox.",
    registry=GATEWAY)
GATEWAY_IN_FLIGHT = Gauge(
    "meterline_gateway_in_flight_batches", "Batches published and not acknowledged yet.",
    registry=GATEWAY)
GATEWAY_RELAY_COMMANDS = Counter(
    "meterline_gateway_relay_commands", "Relay commands executed, by action and result.",
    ["action", "result"], registry=GATEWAY)

# --- bridge --------------------------------------------------------------------------------
BRIDGE_BATCHES = Counter(
    "meterline_bridge_batches",
    "Gateway batches taken, by outcome: forwarded, duplicate (forwarded before), refused.",
    ["outcome"], registry=BRIDGE)
BRIDGE_READINGS_IN = Counter(
    "meterline_bridge_readings_in", "Readings in the gateway batches forwarded.",
    registry=BRIDGE)
BRIDGE_READINGS_OUT = Counter(
    "meterline_bridge_readings_out", "Readings produced to Kafka (routed to their account).",
    registry=BRIDGE)
BRIDGE_RECORDS = Counter(
    "meterline_bridge_records", "Kafka records produced.", registry=BRIDGE)
BRIDGE_GROUP_BATCHES = Histogram(
    "meterline_bridge_group_batches", "Gateway batches taken in one transaction.",
    buckets=_SIZES, registry=BRIDGE)
BRIDGE_GROUP_SECONDS = Histogram(
    "meterline_bridge_group_seconds",
    "Time to check, store and produce one group of batches, until Kafka acknowledged it.",
    buckets=_SECONDS, registry=BRIDGE)
BRIDGE_RELAY_COMMANDS = Counter(
    "meterline_bridge_relay_commands",
    "Relay commands moved to a state by the bridge: sent, acknowledged, failed.",
    ["state"], registry=BRIDGE)
RELAY_COMMANDS_PENDING = Gauge(
    "meterline_relay_commands_pending",
    "Relay commands in the outbox not yet acknowledged, by status (requested, sent).",
    ["status"], registry=BRIDGE)

# --- rating --------------------------------------------------------------------------------
RATING_RECORDS = Counter(
    "meterline_rating_records", "Kafka records priced.", registry=RATING)
RATING_READINGS = Counter(
    "meterline_rating_readings", "Readings taken in by the rating worker.", registry=RATING)
RATING_CHARGES = Counter(
    "meterline_rating_charges", "Charges booked (consumption intervals priced).",
    registry=RATING)
RATING_BATCH_RECORDS = Histogram(
    "meterline_rating_batch_records", "Kafka records priced in one transaction.",
    buckets=_SIZES, registry=RATING)
RATING_BATCH_READINGS = Histogram(
    "meterline_rating_batch_readings", "Readings priced in one transaction.",
    buckets=_SIZES, registry=RATING)
RATING_BATCH_SECONDS = Histogram(
    "meterline_rating_batch_seconds", "Time to price and book one batch, commit included.",
    buckets=_SECONDS, registry=RATING)
RATING_LAG = Gauge(
    "meterline_rating_consumer_lag",
    "Records on the readings topic this worker has not acknowledged yet, by partition.",
    ["partition"], registry=RATING)
RATING_RELAY_COMMANDS = Counter(
    "meterline_rating_relay_commands", "Relay commands requested by rating, by action.",
    ["action"], registry=RATING)

# --- dead letters (bridge and rating) ------------------------------------------------------
DEAD_LETTERS = Counter(
    "meterline_dead_letters", "Input refused and kept as a dead letter, by source and reason.",
    ["source", "reason"], registry=None)
BRIDGE.register(DEAD_LETTERS)
RATING.register(DEAD_LETTERS)

# --- API -----------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "meterline_api_requests", "HTTP requests answered, by method, route and status.",
    ["method", "route", "status"], registry=API)
API_REQUEST_SECONDS = Histogram(
    "meterline_api_request_seconds", "Time to answer an HTTP request, by route.",
    ["route"], buckets=_SECONDS, registry=API)

# --- simulators ----------------------------------------------------------------------------
SIMULATOR_METERS = Gauge(
    "meterline_simulator_meters", "Simulated meters served over Modbus.", registry=SIMULATORS)
SIMULATOR_RELAYS_OPEN = Gauge(
    "meterline_simulator_relays_open", "Simulated meters whose load relay is open.",
    registry=SIMULATORS)

# --- scheduler (billing) -------------------------------------------------------------------
SCHEDULER_JOBS = Counter(
    "meterline_scheduler_jobs", "Jobs and bill runs the scheduler ran, by job and outcome.",
    ["job", "outcome"], registry=SCHEDULER)

# --- load generator ------------------------------------------------------------------------
LOADGEN_READINGS = Counter(
    "meterline_loadgen_readings", "Readings published by the load generator.",
    registry=LOADGEN)
LOADGEN_BATCHES = Counter(
    "meterline_loadgen_batches", "Readings batches published by the load generator.",
    registry=LOADGEN)
LOADGEN_BEHIND = Gauge(
    "meterline_loadgen_behind_seconds", "How far the load generator runs behind its schedule.",
    registry=LOADGEN)


# --- notifier (billing.reminders) -----------------------------------------------------------
NOTIFIER_NOTICES = Counter(
    "meterline_notifier_notices",
    "Notice attempts by channel and outcome (sent, failed, expired; delivered: proof "
    "received through the notifier's callbacks or on sending).",
    ["channel", "outcome"], registry=NOTIFIER)
NOTIFIER_UNDELIVERABLE = Counter(
    "meterline_notifier_undeliverable", "Notices with no channel left to try.",
    registry=NOTIFIER)
NOTIFIER_PASS_SECONDS = Histogram(
    "meterline_notifier_pass_seconds", "Time of one delivery pass.", buckets=_SECONDS,
    registry=NOTIFIER)


# dead-letter reasons are sentences naming meters and batches; the metric keeps their kind
_REASON_KINDS = (
    ("malformed batch", re.compile(r"^malformed readings batch")),
    ("wrong gateway", re.compile(r"^batch names gateway")),
    ("invalid sample", re.compile(r"^invalid sample")),
    ("from the future", re.compile(r"is from the future")),
    ("unknown meter", re.compile(r"^unknown meter|^meter \S+ is not registered")),
    ("not behind the gateway", re.compile(
        r"^meter \S+ (is read by people, not through|is registered behind) gateway")),
    ("unknown register", re.compile(r"^meter \S+ has no register")),
    ("wrong unit", re.compile(r"^meter \S+ register \S+ is in")),
    ("wrong account", re.compile(r"^meter \S+ belongs to account")),
    ("malformed ack", re.compile(r"^malformed command ack")),
    ("invalid record", re.compile(r"^invalid readings record")),
    ("no tariff", re.compile(r"^no \S+ tariff")),
    ("register went backwards", re.compile(r"^register went backwards")),
)


def reason_kind(reason: str) -> str:
    """The kind of a dead letter's reason, as the metric labels it (``other`` if unknown)."""
    for kind, pattern in _REASON_KINDS:
        if pattern.search(reason):
            return kind
    return "other"


def count_dead_letters(source: str, reasons: Iterable[str]) -> None:
    for reason in reasons:
        DEAD_LETTERS.labels(source, reason_kind(reason)).inc()


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)


def _handlers(
    registry: CollectorRegistry, ready: Callable[[], bool]
) -> tuple[Callable[[web.Request], object], Callable[[web.Request], object]]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=exposition(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def readiness(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    return metrics, readiness


def add_routes(app: web.Application, registry: CollectorRegistry,
               ready: Callable[[], bool]) -> None:
    """``/metrics`` and ``/ready`` on an aiohttp application."""
    metrics, readiness = _handlers(registry, ready)
    app.router.add_get("/metrics", metrics)  # type: ignore[arg-type]
    app.router.add_get("/ready", readiness)  # type: ignore[arg-type]


class MetricsServer:
    """``/metrics`` and ``/ready`` on host:port, between ``start`` and ``stop``."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int,
                 ready: Callable[[], bool]) -> None:
        app = web.Application()
        add_routes(app, registry, ready)
        self.host, self.port = host, port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> int:
        """Listen; return the port (the one the system chose, if ``port`` was 0)."""
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()


@asynccontextmanager
async def serving(
    registry: CollectorRegistry, host: str, port: int, ready: Callable[[], bool]
) -> AsyncIterator[int]:
    """Serve ``/metrics`` and ``/ready`` on host:port while the block runs; yields the port.
    ``ready()`` answers whether the service does its work."""
    server = MetricsServer(registry, host, port, ready)
    try:
        yield await server.start()
    finally:
        await server.stop()


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name with its labels: value}, e.g.
    ``meterline_bridge_batches_total{outcome="forwarded"}``; what the demo and benchmarks
    read, through prometheus-client's own parser."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def total(values: dict[str, float], name: str) -> float:
    """The sum of every sample of ``name``, whatever its labels."""
    return sum(v for key, v in values.items()
               if key == name or key.startswith(name + "{"))


def endpoints(settings: Settings) -> dict[str, str]:
    """Where each service of ``settings`` serves /metrics and /ready (base URLs)."""
    host = settings.metrics_host
    return {
        "simulators": f"http://{host}:{settings.sim_metrics_port}",
        "gateway": f"http://{host}:{settings.gateway_metrics_port}",
        "bridge": f"http://{host}:{settings.bridge_metrics_port}",
        "rating": f"http://{host}:{settings.rating_web_port}",
        "api": f"http://{settings.api_host}:{settings.api_port}",
        "notifier": f"http://{settings.notifier_host}:{settings.notifier_port}",
        "scheduler": f"http://{host}:{settings.scheduler_metrics_port}",
    }


async def scrape(session: aiohttp.ClientSession, base_url: str,
                 timeout: float = 5.0) -> dict[str, float]:
    """GET base_url/metrics, parsed (see ``parse``)."""
    async with session.get(f"{base_url}/metrics",
                           timeout=aiohttp.ClientTimeout(total=timeout)) as reply:
        reply.raise_for_status()
        return parse(await reply.text())
