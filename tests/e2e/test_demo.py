"""`meterline demo` as a user runs it: every service serves metrics and readiness that
Prometheus can parse, the live summary reads the same metrics, and SIGTERM (what docker,
systemd and `kill` send) stops the demo and every process it started, as Ctrl-C does. Its
fleet mixes utilities, models and lines, and a second run on the same database keeps
charging every one of them, also after one of its services was killed (the demo starts it
again)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import psycopg
import pytest

from meterline import db
from meterline.demo import RTU_FLATS, RTU_METERS
from meterline.kafka import free_port, port_open
from meterline.metrics import endpoints, scrape, total
from meterline.settings import Settings
from tests.conftest import PG_ADMIN, unique
from tests.waiting import until

METERS = 4
RTU = min(METERS, RTU_FLATS) * len(RTU_METERS)  # water, gas and heat meters on the RS-485 line
SUMMARY = re.compile(r"readings/s in +([\d.]+), priced +([\d.]+)")
DEAD = re.compile(r"dead letters (\d+)")


@pytest.fixture
async def demo_database() -> AsyncIterator[str]:
    """A database the demo makes and migrates itself, dropped afterwards."""
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/meterline_demo_{uuid.uuid4().hex[:10]}"
    yield url
    await db.drop_database(url)


async def summary_with_readings(demo: asyncio.subprocess.Process, seen: list[str]) -> None:
    """Read the demo's output until a summary line shows readings taken in and priced."""
    assert demo.stdout is not None
    while line := (await demo.stdout.readline()).decode():
        seen.append(line)
        match = SUMMARY.search(line)
        if match and float(match[1]) > 0 and float(match[2]) > 0:
            return
    pytest.fail("the demo stopped:\n" + "".join(seen))


async def line_with(demo: asyncio.subprocess.Process, text: str, seen: list[str]) -> None:
    """Read the demo's output until a line holds ``text``."""
    assert demo.stdout is not None
    while line := (await demo.stdout.readline()).decode():
        seen.append(line)
        if text in line:
            return
    pytest.fail("the demo stopped:\n" + "".join(seen))


async def test_every_service_of_the_demo_serves_metrics_and_sigterm_stops_them_all(
    demo_database: str, mqtt_broker: tuple[str, int], tmp_path: Path,
) -> None:
    kafka_port = free_port()
    settings = Settings(
        _env_file=None, database_url=demo_database,
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",  # nothing there: the demo starts a broker
        mqtt_host=mqtt_broker[0], mqtt_port=mqtt_broker[1],
        mqtt_topic_root=unique("demo") + "/v1", bridge_client_id=unique("demo-bridge"),
        rating_group=unique("demo-rating"), rating_session_timeout=10.0, poll_interval=0.5,
        sim_port=free_port(), api_port=free_port(), rating_web_port=free_port(),
        bridge_metrics_port=free_port(), gateway_metrics_port=free_port(),
        sim_metrics_port=free_port(), acquirer_port=free_port(), notifier_port=free_port(),
        scheduler_metrics_port=free_port(),
    )
    env = settings.as_env()
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterline", "demo", "--meters", str(METERS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, **env},
    )
    seen: list[str] = []
    try:
        await asyncio.wait_for(summary_with_readings(demo, seen), 150)
        await until(lambda: every_utility_charged(demo_database), 90,
                    what="a charge for every utility of the demo fleet")
        children = psutil.Process(demo.pid).children(recursive=True)
        names = {" ".join(c.cmdline()[-1:]) for c in children if c.is_running()}
        assert {"simulators", "gateway", "bridge", "rating", "api", "notifier",
                "scheduler"} <= names
        assert any("tansu" in c.name() for c in children)  # the broker it started

        async with aiohttp.ClientSession() as http:
            api = endpoints(settings)["api"]
            login = await http.post(f"{api}/auth/token", data={  # a user the demo seeds
                "grant_type": "password", "username": "LS-10000000",
                "password": "subscriber-demo"})
            assert login.status == 200, await login.text()
            token = (await login.json())["access_token"]
            account = await http.get(f"{api}/accounts/LS-10000000",
                                     headers={"Authorization": f"Bearer {token}"})
            assert account.status == 200
            scraped = {}
            for service, url in endpoints(settings).items():
                ready = await http.get(f"{url}/ready")
                assert ready.status == 200, service
                scraped[service] = await scrape(http, url)
        for service, values in scraped.items():
            assert values["process_cpu_seconds_total"] > 0, service
        assert scraped["simulators"]["meterline_simulator_meters"] == METERS + RTU
        gateway, bridge, rating = scraped["gateway"], scraped["bridge"], scraped["rating"]
        assert gateway["meterline_gateway_readings_total"] >= METERS
        assert gateway["meterline_gateway_outbox_batches"] >= 0
        assert 0 < bridge["meterline_bridge_readings_in_total"] <= (
            gateway["meterline_gateway_readings_total"])
        assert bridge['meterline_bridge_batches_total{outcome="forwarded"}'] > 0
        assert 0 < rating["meterline_rating_readings_total"] <= (
            bridge["meterline_bridge_readings_out_total"])
        assert rating["meterline_rating_batch_seconds_count"] > 0
        assert total(rating, "meterline_rating_consumer_lag") >= 0
        assert scraped["notifier"]["meterline_notifier_pass_seconds_count"] > 0
        assert scraped["api"][
            'meterline_api_requests_total{method="GET",route="/accounts/{account_id}",'
            'status="200"}'] >= 1

        demo.send_signal(signal.SIGTERM)
        await asyncio.wait_for(demo.wait(), 60)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left running after SIGTERM: {alive}"
        assert not port_open("127.0.0.1", kafka_port)
        assert demo.returncode == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()

    # the same demo again, on the same database: the meters kept their registers, so it
    # carries on charging, with nothing refused as a register gone backwards
    charged = await charge_count(demo_database)
    again = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterline", "demo", "--meters", str(METERS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, **env},
    )
    seen = []
    try:
        await asyncio.wait_for(summary_with_readings(again, seen), 150)
        await until(lambda: charged_since(demo_database, charged), 90,
                    what="every utility charged again in the second run")

        # the rating worker killed outright: the demo starts it again and charging goes on
        (rating,) = [child for child in psutil.Process(again.pid).children(recursive=True)
                     if child.cmdline()[-1:] == ["rating"]]
        rating.kill()
        await asyncio.wait_for(line_with(again, "rating ready again", seen), 120)
        charged = await charge_count(demo_database)
        await until(lambda: charged_since(demo_database, charged), 90,
                    what="every utility charged after the rating worker was started again")
        assert all(int(m[1]) == 0 for line in seen if (m := DEAD.search(line))), seen
        async with await psycopg.AsyncConnection.connect(demo_database) as conn:
            cur = await conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1")
            assert await cur.fetchall() == []
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.wait(), 60)
        assert again.returncode == 0
    finally:
        if again.returncode is None:
            again.kill()
            await again.wait()


_CHARGES = """
SELECT m.utility, count(c.*) FROM meters m LEFT JOIN charges c ON c.meter_id = m.id
 WHERE m.gateway_id IS NOT NULL GROUP BY 1
"""


async def charge_count(database: str) -> dict[str, int]:
    """Charge lines so far per utility of the meters read by the gateway."""
    async with await psycopg.AsyncConnection.connect(database) as conn:
        cur = await conn.execute(_CHARGES)
        return dict(await cur.fetchall())


async def every_utility_charged(database: str) -> bool:
    counts = await charge_count(database)
    return len(counts) == 5 and all(counts.values())


async def charged_since(database: str, before: dict[str, int]) -> bool:
    counts = await charge_count(database)
    return all(counts[utility] > n for utility, n in before.items())
