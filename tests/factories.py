"""Test data, built one way for every test: accounts with meters, providers and tariffs on the
books through the same registration the demo uses (`meterline.fleet`).

Every id is unique to the test run unless the test names it, so tests share one database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg

from billing.accounts.town import (
    PROVIDERS,
    Town,
    TownSpec,
    generate_town,
    provider_ids,
    put_prices_and_norms,
)
from billing.payments.agreements import sign
from meterline.documents.model import (
    CommonVolume,
    Line,
    MeterReading,
    Payee,
    PayeeTotal,
    PaymentDocument,
)
from meterline.fleet import Fleet, FleetMeter, Provider, register_fleet
from meterline.ledger import Book, Entry, EntryKind, Posting, post
from meterline.meter_readings import register_meter_read_by_people
from meterline.money import to_micro
from meterline.tariffs.books import EXAMPLES, parse_book, read_book
from meterline.tariffs.model import Book as TariffBook
from meterline.tariffs.model import ProviderInfo
from meterline.tariffs.store import load_book, read_plans
from meterline.telemetry import MICRO, ReadingColumns
from meterline.units import Register, Service, Unit, Utility
from meterline.users import Role, create_user
from rating.core import micros
from rating.ledger import BatchResult, book_charges
from rating.pricing import ChargeLines, RoutedReadings
from tests.conftest import unique

DEFAULT_PRICE = Decimal("5.5")


@dataclass(frozen=True)
class Customer:
    account_id: str
    provider_id: str
    meter_ids: list[str]
    gateway_id: str

    @property
    def meter_id(self) -> str:
        """The customer's meter, for the many tests that give it one."""
        (meter,) = self.meter_ids
        return meter


def provider(id_: str | None = None, name: str | None = None) -> Provider:
    id_ = id_ or unique("prov")
    return Provider(id=id_, name=name or f"Provider {id_}")


async def customers(
    conn: psycopg.AsyncConnection[Any],
    balances: Sequence[str | Decimal] = ("0",),
    *,
    meters_each: int = 1,
    serials: Sequence[str] | None = None,
    account_ids: Sequence[str] | None = None,
    seller: Provider | None = None,
    gateway_id: str | None = None,
    price: str | Decimal = DEFAULT_PRICE,
    billing_mode: str = "prepaid",
    installation_reading: Decimal | None = None,
    installed_at: datetime | None = None,
    time_zone: str | None = None,
    contract_type: str | None = None,
) -> list[Customer]:
    """One account per opening balance, each with ``meters_each`` SDM120 meters (relay
    fitted) behind one gateway, buying from one provider at a flat ``price`` per kWh, at an
    address in ``time_zone`` (default: the schema's, Europe/Moscow).

    ``contract_type`` decides what running out of money does; by default a prepay cut-off
    at any hour (``cut_at_any_hour``), so the pipeline's tests see a cut at zero when it
    happens; tests of the policy name theirs (``household``, ``prepay_cutoff``, ...)."""
    if contract_type is None:
        contract_type = await cut_at_any_hour(conn)
    seller = seller or provider()
    gateway = gateway_id or unique("gw")
    accounts = list(account_ids or [unique("A") for _ in balances])
    serial_list = list(serials or [unique("m") for _ in range(len(balances) * meters_each)])
    if len(accounts) != len(balances) or len(serial_list) != len(balances) * meters_each:
        raise ValueError("one account id per balance and meters_each serials per account")
    result: list[Customer] = []
    meters: list[FleetMeter] = []
    for n, (account, balance) in enumerate(zip(accounts, balances, strict=True)):
        own = serial_list[n * meters_each:(n + 1) * meters_each]
        meters += [
            FleetMeter(
                serial=serial, account_id=account, opening_balance=Decimal(balance),
                address=f"Moscow, Test street {n + 1}, apt {k + 1}", holder_name="Ivan Petrov",
                installation_reading=installation_reading, installed_at=installed_at,
            )
            for k, serial in enumerate(own)
        ]
        result.append(Customer(account, seller.id, own, gateway))
    await register_fleet(conn, Fleet(
        gateway_id=gateway, meters=meters, price=Decimal(price), provider=seller,
        billing_mode=billing_mode, contract_type=contract_type,
    ))
    if time_zone is not None:
        await conn.execute(
            "UPDATE addresses SET time_zone = %s WHERE id IN "
            "(SELECT address_id FROM accounts WHERE id = ANY(%s))",
            (time_zone, [c.account_id for c in result]),
        )
    return result


CUT_AT_ANY_HOUR = "cut_at_any_hour"


async def cut_at_any_hour(conn: psycopg.AsyncConnection[Any]) -> str:
    """A contract type whose policy cuts at the negative limit at once, day or night, with no
    warnings (what every prepaid account had before the disconnection policy)."""
    await conn.execute(
        "INSERT INTO disconnection_policies (code, rule, working_days_only, description) "
        "VALUES (%s, 'prepay_cutoff', false, 'tests: cut at the limit at any hour') "
        "ON CONFLICT DO NOTHING", (CUT_AT_ANY_HOUR,))
    await conn.execute(
        "INSERT INTO contract_types (code, name, policy) VALUES (%s, 'Cut at any hour', %s) "
        "ON CONFLICT DO NOTHING", (CUT_AT_ANY_HOUR, CUT_AT_ANY_HOUR))
    return CUT_AT_ANY_HOUR


async def disconnection_policy(conn: psycopg.AsyncConnection[Any], **columns: Any) -> str:
    """A policy and a contract type of the test's own (same code), from the columns of
    ``disconnection_policies`` (``rule`` is required)."""
    code = unique("policy").replace("-", "_")
    names = ["code", *columns]
    await conn.execute(
        f"INSERT INTO disconnection_policies ({', '.join(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})", [code, *columns.values()])
    await conn.execute("INSERT INTO contract_types (code, name, policy) VALUES (%s, %s, %s)",
                       (code, f"Test contract {code}", code))
    return code


async def customer(
    conn: psycopg.AsyncConnection[Any], balance: str | Decimal = "0", **options: Any
) -> Customer:
    """One account (see ``customers`` for the options)."""
    (one,) = await customers(conn, [balance], **options)
    return one


@dataclass(frozen=True)
class UtilityMeter:
    """A gateway-read meter of any utility: its serial, whose account it is on, the provider
    selling the utility and that provider's flat price per unit (kWh, m3, Gcal)."""

    serial: str
    account_id: str
    utility: Utility
    profile: str
    seller: Provider
    price: Decimal


async def utility_meters(
    conn: psycopg.AsyncConnection[Any], meters: Sequence[UtilityMeter], *, gateway_id: str,
    balances: dict[tuple[str, str], Decimal],
) -> None:
    """Put a mixed fleet on the books: accounts with meters of several utilities behind one
    gateway, each utility sold by its provider at its flat price, each (account, provider)
    opening at ``balances[account, provider]``. One `register_fleet` per provider, utility
    and profile, as an operator would register them."""
    groups: dict[tuple[Provider, Utility, str, Decimal], list[UtilityMeter]] = {}
    for m in meters:
        groups.setdefault((m.seller, m.utility, m.profile, m.price), []).append(m)
    for (seller, utility, profile, price), members in groups.items():
        await register_fleet(conn, Fleet(
            gateway_id=gateway_id, provider=seller, utility=utility, profile=profile,
            price=price, meters=[
                FleetMeter(serial=m.serial, account_id=m.account_id,
                           opening_balance=balances[m.account_id, seller.id],
                           address=f"Moscow, Test street 1, apt {m.account_id}")
                for m in members]))


async def town(conn: psycopg.AsyncConnection[Any], accounts: int = 60, **spec: Any) -> Town:
    """A generated town of the test's own: its own region, account prefix and providers
    (``spec``: more `TownSpec` fields, e.g. ``services``, ``months``, ``seed``)."""
    tag = uuid.uuid4().hex[:8].upper()
    return await generate_town(conn, TownSpec(
        **{"prefix": f"T{tag}-", "region": f"R{tag}", "accounts": accounts, **spec}))


def payee(provider_id: str, name: str, n: int = 1) -> Payee:
    """A payee with complete bank details and contacts."""
    return Payee(
        provider_id, name, inn=f"77010000{n:02d}", kpp="770101001", bank_name="ПАО Сбербанк",
        bic="044525225", corr_account="30101810400000000225",
        settlement_account=f"407028109000000000{n:02d}", address="г. Берёзовск, ул. Ленина, д. 1",
        phone=f"+7 (495) 100-00-{n:02d}", email=f"{provider_id}@example.ru",
        website=f"https://{provider_id}.example.ru")


def payment_document(**changes: Any) -> PaymentDocument:
    """A payment document of three providers with every kind of line: per m², metered with a
    recalculation, common property, derived (sewerage), house meter with a benefit, average."""
    uk = payee("uk", "ООО «Управляющая компания „Уют“»", 1)
    vk = payee("vk", "МУП «Водоканал»", 2)
    ts = payee("ts", "АО «Теплосеть»", 3)
    d = Decimal
    lines = (
        Line(Service.MAINTENANCE, "uk", unit="м²", volume=d("54.3"), tariff=d("32.10"),
             charged=d("1743.03"), method="area"),
        Line(Service.COLD_WATER, "vk", unit="м³", volume=d("7.2"), tariff=d("45.67"),
             charged=d("328.82"), recalculation=d("-12.40"),
             recalculation_reason="показания после 2 месяцев по среднему", method="meter"),
        Line(Service.COLD_WATER, "vk", common=True, unit="м³", volume=d("0.41"),
             tariff=d("45.67"), charged=d("18.72")),
        Line(Service.SEWERAGE, "vk", unit="м³", volume=d("11.5"), tariff=d("38.10"),
             charged=d("438.15")),
        Line(Service.HEATING, "ts", unit="Гкал", volume=d("1.215"), tariff=d("2850.00"),
             charged=d("3462.75"), benefit=d("1731.38"), method="house_meter"),
        Line(Service.HOT_WATER, "ts", unit="м³", volume=d("4.3"), tariff=d("210.00"),
             charged=d("903.00"), method="average"),
    )

    def charged(p: Payee) -> Decimal:
        return sum((line.total for line in lines if line.provider_id == p.provider_id),
                   d("0.00"))

    values: dict[str, Any] = {
        "account_id": "T00000042", "els": "5000000043", "period": date(2026, 3, 1),
        "payer_name": "Иванов Иван Иванович",
        "address": "г. Берёзовск, ул. Ленина, д. 1, кв. 42", "area": d("54.3"),
        "residents": 3, "issuer": uk, "lines": lines,
        "payees": (PayeeTotal(uk, charged(uk), debt=d("120.00"), paid=d("120.00")),
                   PayeeTotal(vk, charged(vk), penalties=d("3.17")),
                   PayeeTotal(ts, charged(ts), debt=d("2000.00"), paid=d("1000.00"))),
        "readings": (
            MeterReading("T00000042-cw", Service.COLD_WATER, "м³", d("120.5"), d("127.7"),
                         d("7.2"), "meter", "app"),
            MeterReading("T00000042-hw", Service.HOT_WATER, "м³", d("80"), None, d("4.3"),
                         "average")),
        "common_volumes": (CommonVolume(Service.COLD_WATER, "м³", d("1010.2"), d("950.1"),
                                        d("60.1"), d("48.6")),),
        "norms": ((Service.COLD_WATER, "individual", d("6.935"), "м³"),
                  (Service.COLD_WATER, "common", d("0.03"), "м³")),
        "due_on": date(2026, 4, 10),
    }
    values.update(changes)
    return PaymentDocument(**values)


# --- bank registries (billing.payments.registries): files as the banks write them


ADDRESS = "МОСКВА,УЛ ЛЕНИНА,1,5"  # as the bank writes it


@dataclass(frozen=True)
class RegistryRow:
    account_id: str
    amount: str  # roubles with a dot: "1500.00"
    paid_on: str = "2024-12-02"  # ISO
    period: str | None = "2024-11"  # YYYY-MM
    operation_id: str | None = None
    payer: str = "ИВАНОВ ИВАН ИВАНОВИЧ"


def sberbank_registry(rows: Sequence[RegistryRow], *, count: int | None = None,
                      total: str | None = None, number: str = "42") -> bytes:
    """A registry in Sberbank's layout (layouts/sberbank.toml), windows-1251."""
    lines = []
    for n, r in enumerate(rows, start=1):
        y, m, d = r.paid_on.split("-")
        period = f"{r.period[5:7]}{r.period[2:4]}" if r.period else ""
        lines.append(";".join([
            f"{d}-{m}-{y}", "10-15-32", "9038", "1234", r.operation_id or f"5012345{n:05d}",
            r.account_id, r.payer, ADDRESS, period, r.amount.replace(".", ","),
            r.amount.replace(".", ","), "0,00",
        ]))
    amount = total or f"{sum(Decimal(r.amount) for r in rows):.2f}"
    lines.append(f"={len(rows) if count is None else count};{amount.replace('.', ',')};"
                 f"{amount.replace('.', ',')};0,00;0,00;{number};02-12-2024")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


def post_registry(rows: Sequence[RegistryRow], *, count: int | None = None,
                  total: str | None = None) -> bytes:
    """A registry in the post-office layout (layouts/post.toml), windows-1251."""
    lines = ["Реестр платежей № 17 за 02.12.2024",
             "ЛС;Период;Сумма;Дата платежа;Номер операции;ФИО"]
    for n, r in enumerate(rows, start=1):
        y, m, d = r.paid_on.split("-")
        period = f"{r.period[5:7]}.{r.period[0:4]}" if r.period else ""
        lines.append(";".join([r.account_id, period, r.amount, f"{d}.{m}.{y}",
                               r.operation_id or f"94001{n:05d}", r.payer]))
    amount = total or f"{sum(Decimal(r.amount) for r in rows):.2f}"
    lines.append(f"ИТОГО;{len(rows) if count is None else count};{amount}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


def random_readings(
    rng: np.random.Generator,
    meters: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    register: str = "active_import",
    longest_step: timedelta = timedelta(minutes=20),
    gap_chance: float = 0.03,
    gateway: str | None = "gw-test",
) -> ReadingColumns:
    """Cumulative readings of each meter from ``start`` to before ``end``: steps of one second
    to ``longest_step`` (a fifth of them landing on a quarter-hour exactly), gaps of one to
    six hours now and then, and up to 2.5 units consumed per step."""
    meter_ids: list[str] = []
    ts: list[int] = []
    values: list[int] = []
    quarter = 15 * 60 * MICRO
    first, last = micros(start), micros(end)
    for meter in meters:
        t, value = first + int(rng.integers(0, quarter)), int(rng.integers(0, 10**6)) * MICRO
        while t < last:
            meter_ids.append(meter)
            ts.append(t)
            values.append(value)
            if rng.random() < gap_chance:
                step = int(rng.integers(3600, 6 * 3600)) * MICRO
            else:
                step = int(rng.integers(1, int(longest_step.total_seconds()) + 1)) * MICRO
            t += step
            if rng.random() < 0.2:
                t += -t % quarter
            value += int(rng.integers(0, 2_500_000))
    return ReadingColumns(
        meter=np.array(meter_ids), register=register, ts=np.array(ts, dtype=np.int64),
        value=np.array(values, dtype=np.int64), gateway=gateway,
        source="gateway" if gateway else "app",
    )

# --- people who use the API (issue 9)

@dataclass(frozen=True)
class Person:
    id: int
    username: str
    role: Role
    password: str | None  # None: cannot log in with a password (tests mint its tokens)


async def person(
    conn: psycopg.AsyncConnection[Any],
    role: Role = Role.SUBSCRIBER,
    *,
    accounts: Sequence[str] = (),
    password: str | None = None,
    username: str | None = None,
) -> Person:
    """A user of ``role`` who may see ``accounts``. Give a ``password`` only where the test
    logs in through ``/auth/token`` (hashing one costs argon2's time)."""
    name = username or unique(role.value)
    user_id = await create_user(conn, name, password, role, accounts=accounts)
    assert user_id is not None, f"user {name} exists"
    return Person(user_id, name, role, password)


# --- notices (billing.reminders)


async def notice_preferences(
    conn: psycopg.AsyncConnection[Any], account_id: str, *, channels: Sequence[str],
    email: str | None = None, phone: str | None = None,
) -> None:
    """How the account wants to hear from its providers (channels in order of preference)."""
    await conn.execute(
        """
        INSERT INTO notice_preferences (account_id, email, phone, channels)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (account_id) DO UPDATE
           SET email = EXCLUDED.email, phone = EXCLUDED.phone, channels = EXCLUDED.channels
        """,
        (account_id, email, phone, list(channels)),
    )


async def notice_terms(
    conn: psycopg.AsyncConnection[Any], provider_id: str, *, email_proof: str = "read",
    proof_wait: str = "2 days",
) -> None:
    await conn.execute(
        """
        INSERT INTO notice_terms (provider_id, email_proof, proof_wait) VALUES (%s, %s, %s)
        ON CONFLICT (provider_id) DO UPDATE
           SET email_proof = EXCLUDED.email_proof, proof_wait = EXCLUDED.proof_wait
        """,
        (provider_id, email_proof, proof_wait),
    )


# --- money (issue 5): balances and charges the way the ledger moves them

async def set_balance(conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str,
                      amount: str | Decimal) -> None:
    """Bring a balance to ``amount`` the only way money moves: an adjustment entry for the
    difference (subscriber +d, revenue -d)."""
    cur = await conn.execute("SELECT amount FROM balances WHERE account_id = %s "
                             "AND provider_id = %s", (account_id, provider_id))
    row = await cur.fetchone()
    difference = Decimal(amount) - (row[0] if row else Decimal(0))
    if difference:
        await post(conn, [Entry(EntryKind.ADJUSTMENT, unique("adjustment"), (
            Posting(Book.SUBSCRIBER, provider_id, difference, account_id=account_id),
            Posting(Book.REVENUE, provider_id, -difference),
        ), reason="test adjustment")])


async def charge(conn: psycopg.AsyncConnection[Any], meter_id: str, start: datetime,
                 end: datetime, quantity: str, amount: str) -> None:
    """A priced interval of a meter's active_import register, booked as rating books it (a
    charge line and its usage entry) at its provider's default plan, with the ``amount``
    given."""
    cur = await conn.execute(
        """SELECT m.account_id, m.provider_id, m.utility, v.id, p.zone, p.price
             FROM meters m
             JOIN tariff_plans pl ON pl.provider_id = m.provider_id AND pl.is_default
                  AND pl.utility = m.utility
             JOIN tariff_versions v ON v.plan_id = pl.id
             JOIN tariff_prices p ON p.version_id = v.id AND p.band = 0
                  AND p.consumer_group = 'urban'
            WHERE m.id = %s ORDER BY v.valid_from DESC LIMIT 1""", (meter_id,))
    row = await cur.fetchone()
    assert row is not None, f"meter {meter_id} has no tariff"
    account, provider, utility, version_id, zone, price = row
    batch = RoutedReadings(
        account=[account], meter=[meter_id], register=[Register.ACTIVE_IMPORT.value],
        unit=[Unit.KWH.value], provider=[provider], utility=[utility],
        ts=np.array([micros(end)], dtype=np.int64), value=np.zeros(1, dtype=np.int64))
    lines = ChargeLines(
        reading=np.zeros(1, dtype=np.int64), start=np.array([micros(start)], dtype=np.int64),
        end=np.array([micros(end)], dtype=np.int64), part=[f"{zone}/0"],
        quantity=np.array([to_micro(Decimal(quantity))], dtype=np.int64),
        version_id=np.array([version_id], dtype=np.int64), zone=[zone],
        band=np.zeros(1, dtype=np.int64), group=["urban"],
        unit_price=np.array([to_micro(price)], dtype=np.int64),
        amount=[int(Decimal(amount).scaleb(12))])
    async with conn.transaction():
        await book_charges(conn, batch, lines, BatchResult())

async def meter_read_by_people(
    conn: psycopg.AsyncConnection[Any], account: Customer,
    utility: Utility = Utility.COLD_WATER, serial: str | None = None,
) -> str:
    """A meter with no gateway on the customer's account and provider (a water meter unless
    told): its readings come from people, by app, web, phone or an operator."""
    serial = serial or unique("W")
    await register_meter_read_by_people(conn, serial, account.account_id, account.provider_id,
                                        utility)
    return serial

# --- tariff books (meterline.tariffs) ---------------------------------------------------------

def tariff_book(plans_toml: str, seller: Provider | None = None) -> TariffBook:
    """A book of ``seller`` (a new provider by default) from the TOML of its plans and
    benefits, written as in a book file without the ``[provider]`` table."""
    seller = seller or provider()
    return parse_book(f'[provider]\nid = "{seller.id}"\nname = "{seller.name}"\n\n{plans_toml}')


def example_book(name: str, seller: Provider | None = None) -> TariffBook:
    """A book shipped in meterline/tariffs/examples (``"energosbyt"``), sold by ``seller``
    (a new provider by default) so tests can load it side by side."""
    book = read_book(EXAMPLES / f"{name}.toml")
    seller = seller or provider()
    return book.model_copy(update={
        "provider": ProviderInfo(id=seller.id, name=seller.name),
        "plans": tuple(p.model_copy(update={"provider_id": seller.id}) for p in book.plans),
        "benefits": tuple(b.model_copy(update={"provider_id": seller.id})
                          for b in book.benefits),
    })


async def stored_book(conn: psycopg.AsyncConnection[Any], book: TariffBook) -> dict[str, int]:
    """Load ``book`` into the database; its plans' ids by code."""
    await load_book(conn, book)
    return {s.plan.code: s.id for s in await read_plans(conn, provider=book.provider.id)}


async def book_customer(conn: psycopg.AsyncConnection[Any], book: str = "energosbyt",
                        balance: str = "100") -> Customer:
    """An account of a new provider whose tariff book is the example ``book``."""
    seller = provider()
    await stored_book(conn, example_book(book, seller))
    return await customer(conn, balance, seller=seller)


# --- telemetry readings (issue 6)

def reading_columns(
    meter: str, points: Sequence[tuple[datetime, str | Decimal]], *,
    register: str = "active_import", gateway: str | None = "gw-test",
) -> ReadingColumns:
    """Readings of one meter register at the given (time, value) points."""
    return ReadingColumns(
        meter=[meter] * len(points), register=register,
        ts=np.array([micros(t) for t, _ in points], dtype=np.int64),
        value=np.array([int(Decimal(v).scaleb(6)) for _, v in points], dtype=np.int64),
        gateway=gateway, source="gateway" if gateway else "app",
    )


# --- payments (billing.payments): housing accounts with charges on the books


@dataclass(frozen=True)
class HousingAccount:
    account_id: str
    providers: dict[str, str]  # service -> provider

    def provider(self, service: str) -> str:
        return self.providers[service]


async def housing_account(
    conn: psycopg.AsyncConnection[Any], services: dict[str, str] | None = None, *,
    payer_group: str = "citizen", time_zone: str = "Europe/Moscow",
    billing_mode: str = "postpaid", since: date = date(2020, 1, 1), region: str = "77",
) -> HousingAccount:
    """A postpaid account buying ``services`` (service -> provider id, the providers made
    here; default: maintenance from a management company, electricity and cold water from
    two suppliers), each provider with a balance row and its services on the account."""
    tag = uuid.uuid4().hex[:8]
    services = services or {"maintenance": f"uk-{tag}", "electricity": f"sbyt-{tag}",
                            "cold_water": f"voda-{tag}"}
    account = unique("H")
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO addresses (region, full_text, time_zone) VALUES (%s, %s, %s) "
            "RETURNING id", (region, f"Москва, ул. Тестовая, д. 1, кв. {tag}", time_zone))
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(
            "INSERT INTO accounts (id, address_id, holder_name, billing_mode, payer_group) "
            "VALUES (%s, %s, 'Иванов Иван Иванович', %s, %s)",
            (account, row[0], billing_mode, payer_group))
        for service, provider_id in services.items():
            await conn.execute("INSERT INTO providers (id, name) VALUES (%s, %s) "
                               "ON CONFLICT DO NOTHING", (provider_id, f"Поставщик {provider_id}"))
            await conn.execute("INSERT INTO balances (account_id, provider_id) VALUES (%s, %s) "
                               "ON CONFLICT DO NOTHING", (account, provider_id))
            await conn.execute(
                "INSERT INTO account_services (account_id, service, provider_id, valid_from) "
                "VALUES (%s, %s, %s, %s)", (account, service, provider_id, since))
    return HousingAccount(account, dict(services))


async def relay_meter(conn: psycopg.AsyncConnection[Any], account_id: str, provider_id: str,
                      utility: str = "electricity", *, relay: bool = True) -> str:
    """A meter of ``utility`` on an account (a housing account's provider), behind a gateway,
    with a relay fitted (or not), connected."""
    meter = unique("relay")
    await conn.execute(
        "INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id, has_relay)"
        " VALUES (%s, %s, %s, %s, 'SDM120', %s, %s)",
        (meter, account_id, provider_id, utility, unique("gw"), relay))
    return meter


async def holiday_override(conn: psycopg.AsyncConnection[Any], region: str, day: date, *,
                           day_off: bool, reason: str = "") -> None:
    """A region's day that differs from its country's calendar (a regional holiday, or a
    working day)."""
    await conn.execute(
        "INSERT INTO holiday_overrides (region, day, day_off, reason) VALUES (%s, %s, %s, %s)",
        (region, day, day_off, reason))


async def charge_month(
    conn: psycopg.AsyncConnection[Any], account: HousingAccount, period: date,
    amounts: dict[str, str], *, booked_at: datetime | None = None,
) -> None:
    """Charges of one month (service -> amount) as the bill run books them: one entry,
    subscriber -amount and revenue +amount per service, on the period."""
    postings: list[Posting] = []
    for service, amount in amounts.items():
        provider_id = account.provider(service)
        postings += [
            Posting(Book.SUBSCRIBER, provider_id, -Decimal(amount), account.account_id,
                    Service(service), period),
            Posting(Book.REVENUE, provider_id, Decimal(amount), None, Service(service), period),
        ]
    await post(conn, [Entry(EntryKind.CHARGE, unique(f"charge:{account.account_id}"),
                            tuple(postings), booked_at=booked_at)])


async def provider_terms(
    conn: psycopg.AsyncConnection[Any], provider_id: str, *, due_day: int = 10,
    commission_percent: str = "0", agreement: str = "", bank: int | None = None,
) -> None:
    """A provider's payment terms and, with ``bank``, complete bank details (as `payee`)."""
    await conn.execute(
        "INSERT INTO payment_terms (provider_id, due_day, commission_percent, agreement) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (provider_id) DO UPDATE SET due_day = "
        "EXCLUDED.due_day, commission_percent = EXCLUDED.commission_percent, "
        "agreement = EXCLUDED.agreement", (provider_id, due_day, commission_percent, agreement))
    if bank is not None:
        p = payee(provider_id, f"Поставщик {provider_id}", bank)
        await conn.execute(
            "UPDATE providers SET inn = %s, kpp = %s, bank_name = %s, bic = %s, "
            "corr_account = %s, settlement_account = %s WHERE id = %s",
            (p.inn, p.kpp, p.bank_name, p.bic, p.corr_account, p.settlement_account,
             provider_id))


async def instalment_agreement(conn: psycopg.AsyncConnection[Any], account_id: str,
                               provider_id: str, debt: str, *, signed_on: date,
                               parts: int = 4, first_due: date | None = None) -> None:
    """A repayment agreement in monthly parts, the first due a year after signing unless
    told (so it stays kept through a test)."""
    await sign(conn, account_id, provider_id, Decimal(debt), parts,
               first_due or signed_on.replace(year=signed_on.year + 1), signed_on=signed_on)

@dataclass(frozen=True)
class Housing:
    """One house of a region of its own, with its flats' accounts and the town's providers
    (prices, norms: `billing.accounts.town`)."""

    region: str
    house_id: int
    accounts: list[str]
    providers: dict[Service, str]

    def meter(self, account: str, service: Service) -> str:
        return f"{account}-{service}"


async def housing(
    conn: psycopg.AsyncConnection[Any],
    flats: Sequence[tuple[str, int]] = (("50", 2), ("30", 1)),
    *,
    services: Sequence[Service] = tuple(Service),
    metered: Sequence[Service] = (Service.COLD_WATER, Service.HOT_WATER),
    common_area: str = "100",
    installed: str = "2025-12-25T00:00:00+03:00",  # the meters, their reading 0
    first_month: date = date(2026, 1, 1),
) -> Housing:
    """A house with one account per flat (area m², registered residents) buying
    ``services``; a meter read by people for each of them that is ``metered``, its
    installation reading 0. House meters and readings: ``reading``."""
    tag = uuid.uuid4().hex[:8].upper()
    region, prefix = f"R{tag}", f"H{tag}-"
    town = TownSpec(prefix=prefix, region=region, first_month=first_month)
    providers = provider_ids(prefix)
    accounts = [f"{prefix}{n + 1}" for n in range(len(flats))]
    await conn.execute("INSERT INTO regions (code, name) VALUES (%s, %s)", (region, "Тест"))
    cur = await conn.execute("""
        WITH c AS (INSERT INTO cities (region_code, name) VALUES (%s, 'Тестов') RETURNING id),
             s AS (INSERT INTO streets (city_id, name) SELECT id, 'ул. Тестовая' FROM c
                   RETURNING id)
        INSERT INTO houses (street_id, number, common_area) SELECT id, '1', %s FROM s
        RETURNING id""", (region, common_area))
    (house_id,) = await cur.fetchone() or (0,)
    for n, (role, name, _) in enumerate(PROVIDERS):
        await conn.execute("""
            INSERT INTO providers (id, name, inn, kpp, bank_name, bic, corr_account,
                                   settlement_account)
            VALUES (%s, %s, '7701000001', '770101001', 'ПАО Сбербанк', '044525225',
                    '30101810400000000225', %s)""",
            (f"{prefix.lower()}-{role}", name, f"4070281090000000{n:04d}"))
    await put_prices_and_norms(conn, town)
    for n, (account, (area, residents)) in enumerate(zip(accounts, flats, strict=True)):
        cur = await conn.execute(
            "INSERT INTO premises (house_id, number) VALUES (%s, %s) RETURNING id",
            (house_id, str(n + 1)))
        (premises,) = await cur.fetchone() or (0,)
        cur = await conn.execute(
            "INSERT INTO addresses (region, full_text) VALUES (%s, %s) RETURNING id",
            (region, f"г. Тестов, ул. Тестовая, д. 1, кв. {n + 1}"))
        (address,) = await cur.fetchone() or (0,)
        await conn.execute("""
            INSERT INTO accounts (id, address_id, holder_name, billing_mode, premises_id, area,
                                  residents)
            VALUES (%s, %s, 'Петров П. П.', 'postpaid', %s, %s, %s)""",
            (account, address, premises, Decimal(area), residents))
        for provider in sorted({providers[s] for s in services}):
            await conn.execute("INSERT INTO balances (account_id, provider_id) VALUES (%s, %s)",
                               (account, provider))
        for service in services:
            await conn.execute("""
                INSERT INTO account_services (account_id, service, provider_id, valid_from)
                VALUES (%s, %s, %s, %s)""", (account, service, providers[service], first_month))
        for service in (s for s in metered if s in services):
            meter = f"{account}-{service}"
            register = "active_import" if service == Service.ELECTRICITY else "volume"
            await conn.execute("""
                INSERT INTO meters (id, account_id, provider_id, utility, model, installed_at)
                VALUES (%s, %s, %s, %s, 'manual', %s)""",
                (meter, account, providers[service], service, installed))
            await conn.execute("INSERT INTO registers VALUES (%s, %s, %s)",
                               (meter, register, "kWh" if register == "active_import" else "m3"))
            await reading(conn, meter, installed, "0")
    return Housing(region, house_id, accounts, providers)


async def reading(conn: psycopg.AsyncConnection[Any], meter_id: str, ts: str | datetime,
                  value: str | Decimal, *, register: str | None = None) -> None:
    """A reading taken by a person (of an account's meter or a house meter)."""
    if register is None:
        register = "active_import" if "electricity" in meter_id else (
            "heat_energy" if meter_id.endswith("heat") else "volume")
    await conn.execute("""
        INSERT INTO readings (meter_id, register, ts, value, source)
        VALUES (%s, %s, %s, %s, 'operator')""", (meter_id, register, ts, Decimal(value)))


async def house_meter(conn: psycopg.AsyncConnection[Any], house: Housing, utility: str,
                      readings: Sequence[tuple[str, str]]) -> str:
    """A house meter of ``utility`` with its readings (ts, value)."""
    meter = f"{house.region}-{utility}"
    await conn.execute("""
        INSERT INTO house_meters (id, house_id, utility, installed_at)
        VALUES (%s, %s, %s, '2025-12-01T00:00:00+03:00')""", (meter, house.house_id, utility))
    for ts, value in readings:
        await reading(conn, meter, ts, value,
                      register="heat_energy" if utility == "heat" else
                      "active_import" if utility == "electricity" else "volume")
    return meter


async def grant_benefit(conn: psycopg.AsyncConnection[Any], account_id: str, rule: str,
                        service: str, valid_from: date, valid_to: date | None = None,
                        *, area: str | None = None, residents: int | None = None,
                        beneficiaries: int = 1) -> None:
    """A benefit granted to ``beneficiaries`` of an account's residents (``account_benefits``,
    category = the rule's code), and the account's area and registered residents when given."""
    await conn.execute(
        "INSERT INTO account_benefits (account_id, category, service, share, valid_from, "
        "valid_to, beneficiaries) VALUES (%s, %s, %s, 1, %s, %s, %s)",
        (account_id, rule, service, valid_from, valid_to, beneficiaries))
    await conn.execute(
        "UPDATE accounts SET area = coalesce(%s, area), residents = coalesce(%s, residents) "
        "WHERE id = %s", (area, residents, account_id))


# --- register policy (issue 5): meters whose counters roll over ---------------------------------

async def pulse_counter_meter(
    conn: psycopg.AsyncConnection[Any], balance: str = "100", *,
    profile: str = "pulse-counter-16", reading: Decimal | None = None,
    read_at: datetime | None = None,
) -> Customer:
    """An account of a new water provider (the example book ``vodokanal``: cold water per m3)
    whose one meter is a cold-water meter read through a pulse-counter module (``profile``)
    behind a gateway, its register at ``reading`` m3 at ``read_at`` when given."""
    made = await book_customer(conn, "vodokanal", balance)
    serial = unique("pc")
    await conn.execute(
        "INSERT INTO meters (id, account_id, provider_id, utility, model, profile, gateway_id,"
        " has_relay) VALUES (%s, %s, %s, 'cold_water', 'PCM', %s, %s, false)",
        (serial, made.account_id, made.provider_id, profile, made.gateway_id))
    await conn.execute("INSERT INTO registers (meter_id, code, unit) VALUES (%s, 'volume', 'm3')",
                       (serial,))
    if reading is not None and read_at is not None:
        await conn.execute("INSERT INTO register_state (meter_id, register, last_ts, last_value)"
                           " VALUES (%s, 'volume', %s, %s)", (serial, read_at, reading))
    return Customer(made.account_id, made.provider_id, [serial], made.gateway_id)
