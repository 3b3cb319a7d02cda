"""A mixed fleet end to end: electricity, cold and hot water, gas and heat meters of five
device profiles, on a Modbus TCP server and on an RS-485 line (a pseudo-terminal pair), read
by one gateway, carried through Mosquitto, the bridge, Kafka and the rating worker to the
balances in PostgreSQL, each utility priced by its own provider's tariff in its own unit, and
shown by the API. Every part real, each service in its own process as `meterline <service>`
runs it, configured by files as a user configures them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.auth.tokens import access_token
from meterline.fleet import Provider
from meterline.kafka import free_port
from meterline.profiles import shipped_profile
from meterline.settings import Settings
from meterline.units import Utility
from meterline.users import ROLE_SCOPES, Role, User
from tests.conftest import unique
from tests.factories import UtilityMeter, person, utility_meters
from tests.kafka_probe import rating_caught_up
from tests.services import service
from tests.waiting import until

SPEEDUP = 600  # simulated seconds per real second
OPENING = Decimal("100000")

# (unit id, profile, utility) on each line; the TCP meters are one flat's, the RTU ones another's
METERS = [
    (1, "eastron-sdm120", Utility.ELECTRICITY),
    (2, "pulse-counter-32", Utility.COLD_WATER),
    (3, "pulse-counter-32", Utility.HOT_WATER),
    (4, "pulse-counter-16", Utility.GAS),
    (5, "heat-meter", Utility.HEAT),
]
RTU_METERS = [(1, "din-relay-meter", Utility.ELECTRICITY), *METERS[1:]]


def sellers() -> dict[Utility, tuple[Provider, Decimal]]:
    """Who sells each utility, at what price per unit; hot water and heat from one provider."""
    power = Provider(unique("energosbyt"), "Energosbyt")
    water = Provider(unique("vodokanal"), "Vodokanal")
    heat = Provider(unique("teploset"), "Teploset")
    gas = Provider(unique("gorgaz"), "Gorgaz")
    return {
        Utility.ELECTRICITY: (power, Decimal("5.47")),  # per kWh
        Utility.COLD_WATER: (water, Decimal("45.67")),  # per m3
        Utility.HOT_WATER: (heat, Decimal("210.05")),  # per m3
        Utility.GAS: (gas, Decimal("7.92")),  # per m3
        Utility.HEAT: (heat, Decimal("2850.13")),  # per Gcal
    }


def simulator_config(port: int, link: Path, state: Path, serials: dict[str, int]) -> str:
    groups = []
    for server, meters in (("tcp", METERS), ("rtu", RTU_METERS)):
        for unit, profile, utility in meters:
            groups.append(
                f'[[{server}.meters]]\nunits = "{unit}"\nprofile = "{profile}"\n'
                f'utility = "{utility}"\nserial_base = {serials[f"{server}/{unit}"]}\n')
    tcp = [g for g in groups if g.startswith("[[tcp")]
    rtu = [g for g in groups if g.startswith("[[rtu")]
    return (f'speedup = {SPEEDUP}\nseed = 7\nstate_file = "{state}"\n\n'
            f'[[tcp]]\nport = {port}\n' + "".join(tcp)
            + f'\n[[rtu]]\nname = "rs485-1"\nlink = "{link}"\n' + "".join(rtu))


def gateway_config(port: int, link: Path) -> str:
    meters = "".join(
        f'[[meters]]\nline = "{line}"\nunits = "{unit}"\nprofile = "{profile}"\n'
        f'utility = "{utility}"\n'
        for line, listed in (("tcp-1", METERS), ("rs485-1", RTU_METERS))
        for unit, profile, utility in listed)
    return (
        '[polling]\nevery = "0.5s"\nalign = false\n\n'
        f"[checks]\nrate_factor = {SPEEDUP}\n\n"
        f'[[lines]]\nname = "tcp-1"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[[lines]]\nname = "rs485-1"\ntransport = "rtu"\ndevice = "{link}"\n'
        "baudrate = 9600\ntimeout = 0.5\n\n" + meters)


_CONSUMED = """
SELECT m.id, m.account_id, m.provider_id, m.utility, r.unit, m.profile,
       s.last_value - (SELECT first.value FROM readings first
                        WHERE first.meter_id = m.id AND first.register = s.register
                        ORDER BY first.ts LIMIT 1) AS consumed
  FROM meters m
  JOIN registers r ON r.meter_id = m.id
  LEFT JOIN register_state s ON s.meter_id = m.id AND s.register = r.code
 WHERE m.id = ANY(%s)
 ORDER BY m.id
"""


async def consumption(conn: psycopg.AsyncConnection[Any],
                      serials: list[str]) -> dict[str, tuple[str, str, str, str, Decimal | None]]:
    """Per meter: (account, provider, utility, unit, consumption since its first reading).
    A 16-bit pulse counter may have wrapped meanwhile: its span is added back then."""
    cur = await conn.execute(_CONSUMED, (serials,))
    consumed = {}
    for meter, account, provider_id, utility, unit, profile, used in await cur.fetchall():
        (billed,) = shipped_profile(profile).billing
        if used is not None and used < 0 and billed.wraps_at is not None:
            used += billed.wraps_at * billed.scale
        consumed[meter] = (account, provider_id, utility, unit, used)
    return consumed


async def every_meter_consumed(conn: psycopg.AsyncConnection[Any], serials: list[str]) -> bool:
    consumed = await consumption(conn, serials)
    return all(c[4] is not None and c[4] > 0 for c in consumed.values())


async def test_every_utility_on_tcp_and_rtu_flows_to_its_providers_balance(
    make_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any],
    tmp_path: Path,
) -> None:
    sim_port, api_port = free_port(), free_port()
    link = tmp_path / "ttyRS485"
    base = 70_000_000 + uuid.uuid4().int % 9_000_000
    keys = [f"tcp/{u}" for u, _, _ in METERS] + [f"rtu/{u}" for u, _, _ in RTU_METERS]
    serial_of = {key: base + n for n, key in enumerate(keys)}
    sim_file, gateway_file = tmp_path / "simulators.toml", tmp_path / "gateway.toml"
    sim_file.write_text(simulator_config(sim_port, link, tmp_path / "sim-state.json",
                                         serial_of))
    gateway_file.write_text(gateway_config(sim_port, link))
    settings = make_settings(sim_config=sim_file, gateway_config=gateway_file,
                             api_port=api_port, rating_batch_window=0.05)

    sold = sellers()
    flats = {"tcp": unique("FLAT-A"), "rtu": unique("FLAT-B")}
    meters = [
        UtilityMeter(serial=str(serial_of[f"{server}/{unit}"]), account_id=flats[server],
                     utility=utility, profile=profile, seller=sold[utility][0],
                     price=sold[utility][1])
        for server, listed in (("tcp", METERS), ("rtu", RTU_METERS))
        for unit, profile, utility in listed
    ]
    balances = {(m.account_id, m.seller.id): OPENING for m in meters}
    await utility_meters(conn, meters, gateway_id=settings.gateway_id, balances=balances)
    serials = [m.serial for m in meters]
    price = {m.serial: m.price for m in meters}

    admin = await person(conn, Role.ADMIN)
    token = access_token(settings, User(admin.id, admin.username, admin.role, "", "ru"),
                         ROLE_SCOPES[Role.ADMIN])
    log_dir = tmp_path / "log"
    with (service("simulators", settings, log_dir), service("bridge", settings, log_dir),
          service("rating", settings, log_dir), service("api", settings, log_dir)):
        with service("gateway", settings, log_dir):
            await until(lambda: every_meter_consumed(conn, serials),
                        what="every meter of every utility to be charged for some consumption")
        # the gateway stopped: once rating has caught up, nothing moves while we look
        await rating_caught_up(settings)
        consumed = await consumption(conn, serials)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            for flat in flats.values():
                reply = await api.get(f"/accounts/{flat}")
                assert reply.status_code == 200, reply.text
                account = reply.json()
                assert sorted(m["utility"] for m in account["meters"]) == sorted(Utility)
                # each provider's balance fell by exactly its utilities' consumption x price
                expected: dict[str, Decimal] = {}
                for serial, (owner, provider_id, _, _, used) in consumed.items():
                    if owner == flat:
                        assert used is not None
                        expected[provider_id] = (expected.get(provider_id, OPENING)
                                                 - used * price[serial])
                shown = {b["provider_id"]: Decimal(b["amount"]) for b in account["balances"]}
                assert shown == expected
                assert len(shown) == 4  # four providers sell to the flat

            units = {Utility.ELECTRICITY: "kWh", Utility.COLD_WATER: "m3",
                     Utility.HOT_WATER: "m3", Utility.GAS: "m3", Utility.HEAT: "Gcal"}
            for serial, (_, provider_id, utility, unit, _) in consumed.items():
                reply = await api.get(f"/meters/{serial}")
                assert reply.status_code == 200, reply.text
                meter = reply.json()
                assert (meter["utility"], meter["provider_id"]) == (utility, provider_id)
                (register,) = meter["registers"]
                assert register["unit"] == unit == units[Utility(utility)]
                assert register["last_reading"] is not None

    # the charge lines carry each utility's unit, and nothing was refused
    cur = await conn.execute(
        "SELECT m.utility, c.unit, count(*) FROM charges c JOIN meters m ON m.id = c.meter_id"
        " WHERE c.meter_id = ANY(%s) GROUP BY 1, 2", (serials,))
    lines = {(utility, unit): n for utility, unit, n in await cur.fetchall()}
    assert {(u.value, units[u]) for u in Utility} == set(lines)
    cur = await conn.execute(
        "SELECT reason, payload FROM dead_letters d WHERE EXISTS"
        " (SELECT 1 FROM unnest(%s::text[]) s WHERE d.payload LIKE '%%' || s || '%%')",
        (serials,))
    assert await cur.fetchall() == []
