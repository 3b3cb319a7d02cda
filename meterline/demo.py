"""`meterline demo`: the whole platform on one machine, fed by a simulated meter fleet.

Starts what is not running yet (the Kafka-compatible broker), applies migrations, registers
the fleet (accounts, meters, a flat tariff, opening balances), then runs the simulators, a
gateway, the bridge, a rating worker and the API as child processes, printing a live summary.
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from meterline import db
from meterline.fleet import Fleet, FleetMeter, register_fleet
from meterline.kafka import port_open, start_broker, stop_process
from meterline.services import Child
from meterline.settings import Settings
from meterline.users import Role, create_user, find_user

DEMO_PRICE = Decimal("6.43")  # RUB per kWh, flat
LOG_DIR = Path("var/log")

_SUMMARY = """
SELECT (SELECT coalesce(sum(samples), 0) FROM ingest_batches
         WHERE forwarded_at > now() - interval '5 seconds') / 5.0,
       (SELECT count(*) FROM accounts),
       (SELECT coalesce(sum(amount), 0) FROM balances),
       (SELECT coalesce(min(amount), 0) FROM balances),
       (SELECT count(*) FROM meters WHERE relay_state = 'disconnected'),
       (SELECT count(*) FROM charges),
       (SELECT count(*) FROM dead_letters)
"""


def demo_fleet(settings: Settings, meters: int) -> Fleet:
    """Every fourth subscriber starts nearly out of credit, so disconnections show soon."""
    return Fleet(
        gateway_id=settings.gateway_id,
        price=DEMO_PRICE,
        meters=[
            FleetMeter(
                serial=str(settings.sim_serial_base + n - 1),
                account_id=f"LS-{settings.sim_serial_base + n - 1}",
                opening_balance=Decimal(20 if n % 4 == 1 else 300 + 50 * n),
                address=f"Moscow, Demo street 1, flat {n}",
                holder_name=f"Subscriber {n}",
            )
            for n in range(1, meters + 1)
        ],
    )


def demo_users(fleet: Fleet) -> list[tuple[str, str, Role, list[str]]]:
    """(user name, password, role, accounts) of the people the demo lets in: an admin, an
    operator, each subscriber by account number, an industrial customer with the last
    account. Development only: the passwords are printed and in this file."""
    accounts = [m.account_id for m in fleet.meters]
    return [
        ("admin", "admin-demo", Role.ADMIN, []),
        ("operator", "operator-demo", Role.OPERATOR, []),
        ("factory", "factory-demo", Role.INDUSTRIAL, accounts[-1:]),
        *((account, "subscriber-demo", Role.SUBSCRIBER, [account]) for account in accounts),
    ]


async def prepare(settings: Settings, meters: int) -> None:
    await db.create_database(settings.database_url)
    await db.migrate(settings.database_url)
    fleet = demo_fleet(settings, meters)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await register_fleet(conn, fleet)
        if settings.environment == "development":
            for username, password, role, accounts in demo_users(fleet):
                if await find_user(conn, username) is None:
                    await create_user(conn, username, password, role, accounts=accounts)
        await conn.commit()


def print_demo_users(settings: Settings, meters: int) -> None:
    if settings.environment != "development":
        return
    users = demo_users(demo_fleet(settings, meters))
    print("demo users (development only):")
    for username, password, role, accounts in users[:3]:
        print(f"  {role:<11} {username} / {password}"
              + (f"  (account {', '.join(accounts)})" if accounts else ""))
    print(f"  subscriber  {users[3][0]} … {users[-1][0]} / {users[3][1]}  (each their own account)")


async def summary(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute(_SUMMARY)
    row = await cur.fetchone()
    assert row is not None
    rps, accounts, total, lowest, disconnected, charges, dead = row
    return (
        f"readings/s {float(rps):7.1f} | accounts {accounts} | balances {total:,.2f} RUB "
        f"(lowest {lowest:,.2f}) | disconnected meters {disconnected} | charges {charges} "
        f"| dead letters {dead}"
    )


def run_demo(settings: Settings, meters: int) -> None:
    started: list[Child] = []
    broker: subprocess.Popen[bytes] | None = None
    host, port = settings.kafka_bootstrap.rsplit(":", 1)
    env = {
        "METERLINE_SIM_METERS": str(meters),
        "METERLINE_GATEWAY_METERS": f"{settings.sim_host}:{settings.sim_port}/1-{meters}",
    }
    try:
        if not port_open(host, int(port)):
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            broker = start_broker(int(port), LOG_DIR / "broker.log")
            print(f"started the Kafka-compatible broker on {settings.kafka_bootstrap}")
        asyncio.run(prepare(settings, meters))
        print(f"database ready, {meters} meters registered")
        print_demo_users(settings, meters)
        for name in ("simulators", "acquirer", "bridge", "rating", "api", "gateway"):
            child = Child(name, LOG_DIR, env)
            started.append(child)
            child.wait_ready(timeout=90)
            print(f"{name} ready (log: {child.log_path})")
        print(f"API: http://{settings.api_host}:{settings.api_port}/docs  — Ctrl-C stops the demo")
        asyncio.run(_watch(settings, started))
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        for child in reversed(started):
            child.stop()
        if broker:
            stop_process(broker)
        print("stopped")


async def _watch(settings: Settings, children: list[Child]) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url,
                                                     autocommit=True) as conn:
        while True:
            for child in children:
                if child.proc.poll() is not None:
                    raise SystemExit(f"{child.name} stopped unexpectedly; see {child.log_path}")
            print(time.strftime("%H:%M:%S"), await summary(conn), flush=True)
            await asyncio.sleep(2)  # the summary's refresh period
