"""`meterline demo`: the whole platform on one machine, fed by a simulated meter fleet.

Starts what is not running yet (the Kafka-compatible broker), applies migrations, registers
the fleet (accounts, meters, a flat tariff, opening balances), then runs the simulators, a
gateway, the bridge, a rating worker, the API, the notifier and the scheduler as child
processes, printing a live summary made of the services' own metrics (the same /metrics
Prometheus scrapes), the balances and the notices. The scheduler's reminder run comes every
minute here (`DEMO_SCHEDULES`), so the events of the outbox people must hear of reach the
cabinet within a minute; the demo's subscribers gave no e-mail or phone, so their notices go
to the cabinet and no SMTP server or SMS gateway is needed.
Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from meterline import db
from meterline.fleet import Fleet, FleetMeter, Provider, register_fleet
from meterline.kafka import port_open, start_broker, stop_process
from meterline.meter_readings import register_meter_read_by_people
from meterline.metrics import endpoints, scrape, total
from meterline.services import Child
from meterline.settings import Settings
from meterline.tariffs.books import EXAMPLES, read_book
from meterline.tariffs.choices import assign_plan
from meterline.tariffs.store import load_book
from meterline.units import Utility
from meterline.users import Role, create_user, find_user

DEMO_PRICE = Decimal("6.43")  # RUB per kWh, flat
DEMO_PLANS_FROM = date(2025, 7, 1)  # the example electricity book's first day
LOG_DIR = Path("var/log")

SUMMARY_EVERY = 2.0  # seconds between two lines of the live summary
# a service that stops is started again, unless it stopped more than this often lately
RESTARTS_IN_WINDOW, RESTART_WINDOW = 3, 60.0
# The scheduler's jobs in the demo: the daily ones as in production, the reminder run (which
# turns rating's events into notices) every minute.
DEMO_SCHEDULES = '{"billrun": "0 3 1 * *", "standing-charges": "30 0 * * *", ' \
    '"benefits": "0 2 1 * *", "penalties": "0 1 * * *", "reminders": "* * * * *"}'

# Besides its electricity meter on the TCP server, each of the first RTU_FLATS flats has
# water, gas and heat meters on an RS-485 line (a pseudo-terminal pair): (profile, utility,
# provider, flat price). Water and heat are priced by their providers' example tariff books
# (the flat price is a spare plan there); gas, which has no book, by its flat price.
VODOKANAL = Provider("vodokanal", "Vodokanal", "7702345678")
TEPLOSET = Provider("teploset", "Teploset", "7703456789")
GORGAZ = Provider("gorgaz", "Gorgaz", "7704567890")
RTU_METERS = (
    ("pulse-counter-32", Utility.COLD_WATER, VODOKANAL, Decimal("58.10")),
    ("pulse-counter-32", Utility.HOT_WATER, VODOKANAL, Decimal("255.40")),
    ("pulse-counter-16", Utility.GAS, GORGAZ, Decimal("7.92")),
    ("heat-meter", Utility.HEAT, TEPLOSET, Decimal("2850.00")),
)
RTU_FLATS = 2
RTU_LINK = Path("var/simulators/rs485-1")  # where a Modbus master opens the line
RTU_SERIALS = 1000  # RTU meters' serials: sim_serial_base + RTU_SERIALS + unit - 1
DEMO_DIR = Path("var/demo")  # the configuration files the demo writes for its children

_BALANCES = """
SELECT (SELECT count(*) FROM accounts),
       (SELECT coalesce(sum(amount), 0) FROM balances),
       (SELECT coalesce(min(amount), 0) FROM balances),
       (SELECT count(*) FROM meters WHERE relay_state = 'disconnected'),
       (SELECT count(*) FROM disconnections_due),
       (SELECT count(*) FROM notices)
"""

Scrape = dict[str, dict[str, float]]  # service -> its metrics


def demo_fleet(settings: Settings, meters: int) -> Fleet:
    """Odd-numbered subscribers are on a prepay cut-off contract, even-numbered ones are
    households on the statutory procedure (warnings and a notice, no cut at zero); two in
    every four start nearly out of credit (one of each), so both policies show soon."""
    return Fleet(
        gateway_id=settings.gateway_id,
        price=DEMO_PRICE,
        meters=[
            FleetMeter(
                serial=str(settings.sim_serial_base + n - 1),
                account_id=f"LS-{settings.sim_serial_base + n - 1}",
                opening_balance=Decimal(20 if n % 4 in (1, 2) else 300 + 50 * n),
                contract_type="prepay_cutoff" if n % 2 else "household",
                address=f"Moscow, Demo street 1, flat {n}",
                holder_name=f"Subscriber {n}",
            )
            for n in range(1, meters + 1)
        ],
    )


def demo_rtu_fleets(settings: Settings, meters: int) -> list[tuple[int, Fleet]]:
    """(unit id on the RS-485 line, its fleet of one meter) for the water, gas and heat
    meters of the first flats."""
    electricity = demo_fleet(settings, meters).meters
    fleets = []
    for n, flat in enumerate(electricity[:RTU_FLATS]):
        for k, (profile, utility, provider, price) in enumerate(RTU_METERS):
            unit = n * len(RTU_METERS) + k + 1
            fleets.append((unit, Fleet(
                gateway_id=settings.gateway_id, provider=provider, utility=utility,
                profile=profile, price=price, meters=[FleetMeter(
                    serial=str(settings.sim_serial_base + RTU_SERIALS + unit - 1),
                    account_id=flat.account_id, opening_balance=Decimal(1500),
                    address=flat.address, holder_name=flat.holder_name)])))
    return fleets


def demo_configs(settings: Settings, meters: int) -> tuple[str, str]:
    """The simulators' and the gateway's configuration files (TOML) for the demo fleet: the
    SDM120s on the TCP server, as before, and the RS-485 line. The SDM120s keep their state
    file and the gateway its line name, so a database of an earlier demo carries on."""
    rtu = demo_rtu_fleets(settings, meters)
    state = settings.sim_state_dir / f"meters-{settings.sim_port}.json"
    simulators = (
        f'speedup = {settings.sim_speedup}\nseed = {settings.sim_seed}\nstate_file = "{state}"\n'
        f'\n[[tcp]]\nhost = "{settings.sim_host}"\nport = {settings.sim_port}\n'
        f'[[tcp.meters]]\nunits = "1-{meters}"\nprofile = "eastron-sdm120"\n'
        f"serial_base = {settings.sim_serial_base}\n"
        f'\n[[rtu]]\nname = "rs485-1"\nlink = "{RTU_LINK}"\n'
        + "".join(f'[[rtu.meters]]\nunits = "{unit}"\nprofile = "{fleet.profile}"\n'
                  f'utility = "{fleet.utility}"\nserial_base = {fleet.meters[0].serial}\n'
                  for unit, fleet in rtu))
    gateway = (
        f"[polling]\nevery = {settings.poll_interval}\nalign = false\n\n"
        f"[checks]\nrate_factor = {settings.sim_speedup}  # the simulators' speed-up\n\n"
        f'[[lines]]\nname = "tcp-1"\ntransport = "tcp"\nhost = "{settings.sim_host}"\n'
        f"port = {settings.sim_port}\ntimeout = 1.0\n\n"
        f'[[lines]]\nname = "rs485-1"\ntransport = "rtu"\ndevice = "{RTU_LINK}"\n'
        "baudrate = 9600\ntimeout = 0.5\n\n"
        f'[[meters]]\nline = "tcp-1"\nunits = "1-{meters}"\nprofile = "eastron-sdm120"\n'
        + "".join(f'\n[[meters]]\nline = "rs485-1"\nunits = "{unit}"\n'
                  f'profile = "{fleet.profile}"\nutility = "{fleet.utility}"\n'
                  for unit, fleet in rtu))
    return simulators, gateway


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
        for n, meter in enumerate(fleet.meters, start=1):
            await conn.execute(  # the number the subscriber calls the phone line from
                "INSERT INTO phone_numbers (phone, account_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING", (f"+7900{meter.serial}", meter.account_id))
            if n % 4 == 2:  # a garage meter without a gateway: its reading is typed in
                await register_meter_read_by_people(
                    conn, f"G-{meter.serial}", meter.account_id, fleet.provider.id,
                    Utility.ELECTRICITY)
        if settings.environment == "development":
            for username, password, role, accounts in demo_users(fleet):
                if await find_user(conn, username) is None:
                    await create_user(conn, username, password, role, accounts=accounts)
        for book in sorted(EXAMPLES.glob("*.toml")):  # the example tariff books (idempotent)
            await load_book(conn, read_book(book))
        for _, rtu_fleet in demo_rtu_fleets(settings, meters):  # after the books: theirs win
            await register_fleet(conn, rtu_fleet)
        for n, meter in enumerate(fleet.meters):  # a third on one rate, the others by zones
            if n % 3:
                await assign_plan(conn, meter.account_id, fleet.provider.id,
                                  ("household-3zone", "household-2zone")[n % 3 - 1],
                                  DEMO_PLANS_FROM)
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


def summary(before: Scrape, after: Scrape, seconds: float, balances: tuple[Any, ...]) -> str:
    """One line of the live summary from two scrapes ``seconds`` apart and the balances."""

    def rate(service: str, name: str) -> float:
        now, then = total(after.get(service, {}), name), total(before.get(service, {}), name)
        # a counter that went down belongs to a service started again: it counts from zero
        return (now - then if now >= then else now) / seconds

    accounts, amount, lowest, disconnected, waiting, notices = balances
    dead = total(after.get("bridge", {}), "meterline_dead_letters_total") + total(
        after.get("rating", {}), "meterline_dead_letters_total")
    return (
        f"readings/s in {rate('bridge', 'meterline_bridge_readings_in_total'):7.1f}, "
        f"priced {rate('rating', 'meterline_rating_readings_total'):7.1f} "
        f"| lag {total(after.get('rating', {}), 'meterline_rating_consumer_lag'):.0f} "
        f"| outbox {total(after.get('gateway', {}), 'meterline_gateway_outbox_batches'):.0f} "
        f"| accounts {accounts} | balances {amount:,.2f} RUB (lowest {lowest:,.2f}) "
        f"| disconnected meters {disconnected} (cuts waiting {waiting}) | dead letters {dead:.0f} "
        f"| notices {notices}"
    )


def run_demo(settings: Settings, meters: int) -> None:
    started: list[Child] = []
    broker: subprocess.Popen[bytes] | None = None
    host, port = settings.kafka_bootstrap.rsplit(":", 1)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    simulators, gateway = demo_configs(settings, meters)
    (DEMO_DIR / "simulators.toml").write_text(simulators, encoding="utf-8")
    (DEMO_DIR / "gateway.toml").write_text(gateway, encoding="utf-8")
    env = {
        "METERLINE_SIM_CONFIG": str(DEMO_DIR / "simulators.toml"),
        "METERLINE_GATEWAY_CONFIG": str(DEMO_DIR / "gateway.toml"),
        "METERLINE_SCHEDULES": DEMO_SCHEDULES,
    }
    try:
        if not port_open(host, int(port)):
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            broker = start_broker(int(port), LOG_DIR / "broker.log")
            print(f"started the Kafka-compatible broker on {settings.kafka_bootstrap}")
        asyncio.run(prepare(settings, meters))
        print(f"database ready, {meters} meters registered")
        print_demo_users(settings, meters)
        for name in ("simulators", "acquirer", "bridge", "rating", "api", "gateway", "notifier",
                     "scheduler"):
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


async def _scrape_all(session: aiohttp.ClientSession, settings: Settings) -> Scrape:
    scraped: Scrape = {}
    for service, url in endpoints(settings).items():
        try:
            scraped[service] = await scrape(session, url)
        except (aiohttp.ClientError, TimeoutError):
            scraped[service] = {}  # a service between restarts: its figures are missing
    return scraped


async def _restart(child: Child, times: list[float]) -> None:
    """Start a service that stopped (a crash, or someone killed it) again, as a supervisor
    would; one that stops again and again is a fault to look at: the demo stops."""
    now = time.monotonic()
    times[:] = [t for t in times if now - t < RESTART_WINDOW] + [now]
    if len(times) > RESTARTS_IN_WINDOW:
        raise SystemExit(f"{child.name} stopped {len(times)} times within "
                         f"{RESTART_WINDOW:.0f}s; see {child.log_path}")
    print(f"{child.name} stopped (exit {child.proc.returncode}); starting it again "
          f"(log: {child.log_path})", flush=True)
    child.restart()
    await asyncio.to_thread(child.wait_ready, 90)
    print(f"{child.name} ready again", flush=True)


async def _watch(settings: Settings, children: list[Child]) -> None:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as conn, aiohttp.ClientSession() as session:
        before, at = await _scrape_all(session, settings), time.monotonic()
        restarts: dict[str, list[float]] = {}
        while True:
            await asyncio.sleep(SUMMARY_EVERY)  # the summary's refresh period
            for child in children:
                if child.proc.poll() is not None:
                    await _restart(child, restarts.setdefault(child.name, []))
            after, now = await _scrape_all(session, settings), time.monotonic()
            cur = await conn.execute(_BALANCES)
            balances = await cur.fetchone()
            assert balances is not None
            print(time.strftime("%H:%M:%S"), summary(before, after, now - at, balances),
                  flush=True)
            before, at = after, now
