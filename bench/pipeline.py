"""End-to-end benchmark at rising offered load: MQTT -> bridge -> Kafka -> rating -> committed
balances, every service and broker its own process, the skeleton's design as the baseline in
the same run.

    python -m bench.pipeline [--rates 5000,20000,50000] [--designs 1,2] [--seconds 20]
                             [--bridges 1] [--workers 2] [--before DIR] [--profile DIR]

The load generator (``meterline loadgen``) publishes virtual gateways' batches (500 meters a
gateway, one batch per gateway every 2 s) to the machine's Mosquitto; the bridges (a shared
subscription when there are several) and rating workers (one consumer group) take them.
Per design and offered rate, after a warm-up, over a window:

- achieved: readings taken in by the bridge and priced by rating per second (the services'
  own /metrics, read before and after the window);
- lag: readings the bridge produced that rating has not priced yet, at the end of the window
  (the consumer-lag metric counts records, which hold one reading in v1 and thousands in v2);
- poll -> balance: from the reading's time (when the gateway read the meter) to the commit of
  the balance update that priced it (``charges.rated_at - charges.interval_end``), p50 and
  p99 of the charges committed in the window;
- CPU per process, cores: the services' ``process_cpu_seconds_total``, and for PostgreSQL
  (this database's backends), Tansu and Mosquitto their processes' CPU times (psutil).
  Mosquitto is the machine's: other users' traffic counts in it. PostgreSQL's is also split
  by client (``pg-bridge``, ``pg-rating``, ``pg-upkeep``: the backends' application_name),
  and ``pg-server`` is its WAL writer, checkpointer and background writer (every database's).
  Then the same as microseconds of CPU per reading (taken in, for the ingest side; priced,
  for the rest).

``--before DIR`` runs each design a second time with the services' code from DIR (e.g. a
``git archive`` of main), right after this tree's: before and after in the same run.
``--profile DIR`` samples every service's Python stacks with py-spy over each window
(``DIR/{design}-{rate}/{service}.txt``, collapsed stacks, and ``.top.txt``, a summary).

Designs: 2 is the current one (Kafka records of many accounts, columns); 1 the skeleton's
(one record per gateway batch and account: ``bridge_record_version=1``). Between rates the
pipeline drains its backlog (up to ``--drain`` seconds) so each rate starts clean.

Needs the machine's PostgreSQL and Mosquitto; starts its own Kafka-compatible broker and
database (dropped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psutil
import psycopg

from meterline import db
from meterline.kafka import free_port, start_broker, stop_process
from meterline.metrics import scrape, total
from meterline.services import Child
from meterline.settings import Settings
from simulators.loadgen import VirtualFleet, register_virtual_fleet

PER_GATEWAY = 500


@dataclass
class Snapshot:
    at: float
    metrics: dict[str, dict[str, float]]  # child label -> its metrics
    cpu: dict[str, dict[int, float]]  # process group -> pid -> CPU seconds


@dataclass
class Result:
    design: int
    code: str  # "" (this tree's services) or "before" (--before's)
    rate: int  # asked of the load generator
    offered: float  # what it published
    bridge_in: float
    priced: float
    lag: float  # readings
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]  # process group -> cores

    def per_reading(self) -> str:
        """Each process's CPU per reading, in microseconds: per reading taken in for the
        ingest side (load generator, Mosquitto, bridge, its database work), per reading
        priced for the rest."""
        ingest = ("loadgen", "mosquitto", "bridge", "pg-bridge")
        out = []
        for name, cores in self.cpu.items():
            readings = self.bridge_in if name.startswith(ingest) else self.priced
            if readings > 0:
                out.append(f"{name} {cores / readings * 1e6:.1f}")
        return "    CPU us/reading: " + " ".join(out)

    def line(self) -> str:
        cpu = " ".join(f"{name} {cores:.2f}" for name, cores in self.cpu.items())
        name = f"v{self.design}" + (f" {self.code}" if self.code else "")
        return (f"{name} | offered {self.offered:6.0f}/s | bridge in "
                f"{self.bridge_in:6.0f}/s | priced {self.priced:6.0f}/s | lag {self.lag:6.0f} "
                f"| poll->balance p50 {self.p50_ms:6.0f} ms p99 {self.p99_ms:6.0f} ms | "
                f"CPU cores: {cpu}")


class Pipeline:
    """The services of one design, and where their metrics are."""

    def __init__(self, base: Settings, design: int, log_dir: Path, bridges: int = 1,
                 workers: int = 1, code: Path | None = None) -> None:
        """``code``: a source tree (e.g. ``git archive`` of an earlier commit) the services
        run from instead of this one (their working directory), for before/after in one
        run."""
        run = f"{design}-{uuid.uuid4().hex[:6]}"
        self.code = code
        self.settings = base.model_copy(update={
            "bridge_record_version": design, "readings_topic": f"bench-readings-{run}",
            "rating_group": f"bench-rating-{run}", "mqtt_topic_root": f"bench-{run}/v1",
            "bridge_share": f"bench-{run}" if bridges > 1 else "",
        })
        self.log_dir = log_dir
        # each bridge and worker: its own client id, metrics port and data directory
        self.services = [
            ("bridge", f"bridge-{n}", {"bridge_client_id": f"bench-bridge-{run}-{n}",
                                       "bridge_metrics_port": free_port()})
            for n in range(bridges)
        ] + [
            ("rating", f"rating-{n}", {"rating_web_port": free_port(),
                                       "rating_data_dir": log_dir / f"rating-{n}"})
            for n in range(workers)
        ]
        self.pids: dict[str, int] = {}  # label -> process id, while running
        self.urls = {
            label: "http://127.0.0.1:{}".format(
                own.get("bridge_metrics_port") or own["rating_web_port"])
            for _, label, own in self.services
        }

    @contextmanager
    def running(self) -> Iterator[None]:
        with ExitStack() as stack:
            for name, label, own in self.services:
                env = self.settings.model_copy(update=own).as_env()
                # run from the other tree: ``python -m`` puts the working directory first
                child = Child(name, self.log_dir, env, label=label, cwd=self.code)
                stack.callback(child.stop)
                child.wait_ready(120)
                self.pids[label] = child.proc.pid
            yield

    @contextmanager
    def load(self, meters: int, interval: float) -> Iterator[str]:
        """The load generator publishing ``meters`` meters every ``interval`` s."""
        port = free_port()
        env = self.settings.model_copy(update={"loadgen_metrics_port": port}).as_env()
        child = Child("loadgen", self.log_dir, env, label=f"loadgen-{meters}", args=[
            "--meters", str(meters), "--interval", str(interval),
            "--per-gateway", str(PER_GATEWAY)])
        try:
            child.wait_ready(60)
            self.pids["loadgen"] = child.proc.pid
            yield f"http://127.0.0.1:{port}"
        finally:
            self.pids.pop("loadgen", None)
            child.stop()


# PostgreSQL's CPU by whose work it is: each client's backends (by application_name), and
# the server's own processes (WAL writer, checkpointer, background writer: every database's
# writes, other users' included; autovacuum workers on this database)
_CLIENTS = (("meterline-bridge", "pg-bridge"), ("meterline-telemetry", "pg-upkeep"),
            ("meterline-rating", "pg-rating"))
_SERVER = ("walwriter", "checkpointer", "background writer")


def _backends(database: str) -> dict[int, str]:
    """This database's backends: pid -> group (by application_name)."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}",
                         autocommit=True) as conn:
        rows = conn.execute("SELECT pid, application_name FROM pg_stat_activity"
                            " WHERE datname = %s AND pid <> pg_backend_pid()",
                            (database,)).fetchall()
    return {pid: next((group for prefix, group in _CLIENTS if name.startswith(prefix)),
                      "pg-other") for pid, name in rows}


def _processes(database: str, broker: int) -> dict[str, list[psutil.Process]]:
    groups: dict[str, list[psutil.Process]] = {
        "postgres": [], "tansu": [], "mosquitto": [], "pg-server": []}
    backends = _backends(database)
    for proc in psutil.process_iter(["name", "cmdline", "pid"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if proc.info["name"] == "postgres" and (proc.info["pid"] in backends
                                                or f" {database} " in cmdline
                                                or cmdline.endswith(f" {database}")):
            groups["postgres"].append(proc)
            groups.setdefault(backends.get(proc.info["pid"], "pg-other"), []).append(proc)
        elif proc.info["name"] == "postgres" and any(s in cmdline for s in _SERVER):
            groups["pg-server"].append(proc)
        elif proc.info["pid"] == broker:
            groups["tansu"].append(proc)
        elif proc.info["name"] == "mosquitto":
            groups["mosquitto"].append(proc)
    return groups


def _cpu(groups: dict[str, list[psutil.Process]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process, by group."""
    out: dict[str, dict[int, float]] = {}
    for name, procs in groups.items():
        out[name] = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            out[name][proc.pid] = times.user + times.system
    return out


async def scrape_all(urls: dict[str, str]) -> dict[str, dict[str, float]]:
    async with aiohttp.ClientSession() as http:
        # a worker busy with a large batch answers late: its event loop prices it meanwhile
        return {label: await scrape(http, url, timeout=60) for label, url in urls.items()}


async def snapshot(urls: dict[str, str], database: str, broker: int) -> Snapshot:
    metrics = await scrape_all(urls)
    return Snapshot(time.monotonic(), metrics, _cpu(_processes(database, broker)))


_LATENCY = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM rated_at - interval_end)),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM rated_at - interval_end))
  FROM charges WHERE rated_at >= %s AND rated_at < %s
"""


async def latency(url: str, start: datetime, end: datetime) -> tuple[float, float]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(_LATENCY, (start, end))
        row = await cur.fetchone()
    assert row is not None
    _, p50, p99 = row
    return float(p50 or 0) * 1000, float(p99 or 0) * 1000


@contextmanager
def profiling(pids: dict[str, int], seconds: float, out: Path | None) -> Iterator[None]:
    """With ``out``: sample each service's Python stacks (py-spy, 100 Hz, idle time left
    out) over the window, into ``out/{label}.txt`` (collapsed stacks), and summarise them."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spies = {label: subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
         "--duration", str(int(seconds)), "--rate", "100", "--format", "raw", "--nonblocking",
         "--output", str(out / f"{label}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for label, pid in pids.items()}
    try:
        yield
    finally:
        for spy in spies.values():
            spy.wait()
    for label in spies:
        (out / f"{label}.top.txt").write_text(_top(out / f"{label}.txt"))


def _top(collapsed: Path, lines: int = 40) -> str:
    """The functions taking the most samples, by themselves (self) and with what they call
    (total), from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    whole: dict[str, int] = {}
    samples = 0
    if collapsed.exists():
        for line in collapsed.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            n = int(count)
            samples += n
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for frame in set(frames):
                whole[frame] = whole.get(frame, 0) + n
    text = [f"{samples} samples"]
    for title, table in (("self", own), ("total", whole)):
        text.append(f"## {title}")
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:lines]
        text += [f"{100 * n / max(samples, 1):5.1f}% {frame}" for frame, n in ranked]
    return "\n".join(text) + "\n"


def measure(pipeline: Pipeline, meters: int, interval: float, warmup: float, seconds: float,
            database: str, broker: int, profile: Path | None = None) -> Result:
    s = pipeline.settings
    with pipeline.load(meters, interval) as loadgen:
        urls = {**pipeline.urls, "loadgen": loadgen}
        time.sleep(warmup)  # the services reach their steady state before the window
        before = asyncio.run(snapshot(urls, database, broker))
        start = datetime.now(UTC)
        with profiling(dict(pipeline.pids), seconds, profile):
            time.sleep(seconds)  # the measurement window itself
        after = asyncio.run(snapshot(urls, database, broker))
        end = datetime.now(UTC)
    span = after.at - before.at

    def rate(kind: str, name: str) -> float:
        return sum(total(after.metrics[label], name) - total(before.metrics[label], name)
                   for label in urls if label.startswith(kind)) / span

    cpu = {label: rate(label, "process_cpu_seconds_total") for label in urls}
    # per process: one that started inside the window counts whole
    cpu |= {name: sum(seconds - before.cpu.get(name, {}).get(pid, 0.0)
                      for pid, seconds in pids.items()) / span
            for name, pids in after.cpu.items()}
    p50, p99 = asyncio.run(latency(s.database_url, start, end))
    return Result(
        design=s.bridge_record_version, code="before" if pipeline.code else "",
        rate=int(meters / interval),
        offered=rate("loadgen", "meterline_loadgen_readings_total"),
        bridge_in=rate("bridge", "meterline_bridge_readings_in_total"),
        priced=rate("rating", "meterline_rating_readings_total"),
        lag=_sum(after.metrics, "bridge", "meterline_bridge_readings_out_total")
        - _sum(after.metrics, "rating", "meterline_rating_readings_total"),
        p50_ms=p50, p99_ms=p99, cpu=cpu,
    )


def _sum(metrics: dict[str, dict[str, float]], kind: str, name: str) -> float:
    """``name`` summed over every service of a kind (bridge-0, bridge-1, ...)."""
    return sum(total(values, name) for label, values in metrics.items()
               if label.startswith(kind))


def drain(pipeline: Pipeline, limit: float) -> float:
    """Wait (at most ``limit`` s) until rating has priced everything the bridge produced;
    return how long it took."""
    started = time.monotonic()
    previous = -1.0
    while time.monotonic() - started < limit:
        now = asyncio.run(scrape_all(pipeline.urls))
        produced = _sum(now, "bridge", "meterline_bridge_readings_out_total")
        priced = _sum(now, "rating", "meterline_rating_readings_total")
        if priced >= produced and produced == previous:
            break
        previous = produced
        time.sleep(1.0)  # polling the services' metrics from outside
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="5000,20000,50000",
                        help="offered readings/s, comma-separated, rising")
    parser.add_argument("--designs", default="1,2", help="1: skeleton's records, 2: current")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=60.0)
    parser.add_argument("--bridges", type=int, default=1, help="bridges sharing the gateways")
    parser.add_argument("--workers", type=int, default=2,
                        help="rating workers (two: one worker waits on PostgreSQL between its"
                             " batches, two keep both cores busy)")
    parser.add_argument("--before", type=Path, default=None,
                        help="a source tree (git archive of an earlier commit): each design is "
                        "also run with the services' code from it, right after this tree's")
    parser.add_argument("--profile", type=Path, default=None,
                        help="directory: py-spy samples of every service over each window")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    designs = [int(d) for d in args.designs.split(",")]

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    broker = start_broker(port, workdir / "broker.log")
    name = f"meterline_bench_pipeline_{os.getpid()}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    base = Settings(_env_file=None, database_url=url, kafka_bootstrap=f"127.0.0.1:{port}",
                    api_port=free_port(), gateway_metrics_port=free_port(),
                    sim_metrics_port=free_port(), rating_session_timeout=10.0)
    results: list[Result] = []
    try:
        asyncio.run(db.create_database(url, exist_ok=False))
        asyncio.run(db.migrate(url))
        fleet = VirtualFleet(meters=int(max(rates) * args.interval), per_gateway=PER_GATEWAY)

        async def register() -> None:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                await register_virtual_fleet(conn, fleet)

        asyncio.run(register())
        print(f"# pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
              f"{platform.machine()}, {os.cpu_count()} cores; {fleet.meters} virtual meters, "
              f"{PER_GATEWAY} a gateway, a batch per gateway every {args.interval:g}s; "
              f"{args.bridges} bridge(s), {args.workers} rating worker(s); "
              f"window {args.seconds:g}s after {args.warmup:g}s; logs in {workdir}", flush=True)
        codes = [None, args.before] if args.before else [None]
        for design in designs:
            for code in codes:
                pipeline = Pipeline(base, design,
                                    workdir / f"v{design}{'-before' if code else ''}",
                                    args.bridges, args.workers, code)
                with pipeline.running():
                    for rate in rates:
                        label = f"v{design}{'-before' if code else ''}-{rate}"
                        profile = args.profile / label if args.profile else None
                        result = measure(pipeline, int(rate * args.interval), args.interval,
                                         args.warmup, args.seconds, name, broker.pid, profile)
                        results.append(result)
                        waited = drain(pipeline, args.drain)
                        print(result.line() + f" | drained in {waited:.0f}s", flush=True)
                        print(result.per_reading(), f"| load {os.getloadavg()[0]:.1f}",
                              flush=True)
        by = {(r.design, r.code, r.rate): r for r in results}
        print("\n## priced readings/s, current design (v2) / skeleton's (v1), same run")
        for rate in rates:
            v1, v2 = by.get((1, "", rate)), by.get((2, "", rate))
            if v1 and v2 and v1.priced:
                print(f"offered {rate}/s: v2 {v2.priced:.0f}/s, v1 {v1.priced:.0f}/s, "
                      f"ratio {v2.priced / v1.priced:.1f}x")
        if args.before:
            print(f"\n## priced readings/s, these services / {args.before}'s, same run")
            for design in designs:
                for rate in rates:
                    now, then = by.get((design, "", rate)), by.get((design, "before", rate))
                    if now and then and then.priced:
                        print(f"v{design} offered {rate}/s: {now.priced:.0f}/s against "
                              f"{then.priced:.0f}/s, ratio {now.priced / then.priced:.1f}x")
    finally:
        stop_process(broker)
        asyncio.run(db.drop_database(url))


if __name__ == "__main__":
    main()
