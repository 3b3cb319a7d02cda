"""Importing account files (CSV): providers, accounts, services, meters, house meters,
benefits, norms and readings, each with a report of every row.

A file is imported in one transaction, each row in a savepoint of its own: a row is either
taken whole or refused whole with its reason (a malformed cell, an unknown account, a meter
already on another account), and a crash part-way leaves nothing of the file. Importing the
same file again changes nothing: every row reports ``unchanged``.
"""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, LiteralString

import psycopg
from pydantic import BaseModel, ValidationError

from billing.accounts.records import (
    READ_REGISTER,
    AccountRecord,
    BenefitRecord,
    HouseMeterRecord,
    MeterRecord,
    NormRecord,
    ProviderRecord,
    ReadingRecord,
    Record,
    ServiceRecord,
)
from meterline.errors import Conflict, DomainError, Invalid, NotFound
from meterline.units import SERVICE_OF_UTILITY, Utility

Status = Literal["created", "updated", "unchanged", "refused"]
Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class RowOutcome:
    line: int  # line of the file, the header being line 1
    key: str
    status: Status
    reason: str = ""


@dataclass
class ImportReport:
    kind: str
    rows: list[RowOutcome] = field(default_factory=list)
    applied: bool = True  # False for a check: nothing was written

    def count(self, status: Status) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def refused(self) -> list[RowOutcome]:
        return [row for row in self.rows if row.status == "refused"]

    def summary(self) -> str:
        counts = ", ".join(f"{s} {self.count(s)}"
                           for s in ("created", "updated", "unchanged", "refused"))
        verb = "imported" if self.applied else "checked (nothing written)"
        return f"{self.kind}: {len(self.rows)} rows {verb}: {counts}"

    def write_csv(self, out: Any) -> None:
        writer = csv.writer(out)
        writer.writerow(["line", "key", "status", "reason"])
        for row in self.rows:
            writer.writerow([row.line, row.key, row.status, row.reason])


# --- one function per kind: apply a checked row, say whether it created or changed anything

def _changed(row: tuple[Any, ...] | None) -> Status:
    """Status from an upsert's ``RETURNING (xmax = 0)``: no row when nothing changed."""
    if row is None:
        return "unchanged"
    return "created" if row[0] else "updated"


async def _one(conn: Conn, query: LiteralString, params: Any = None) -> tuple[Any, ...] | None:
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def _require(conn: Conn, what: str, query: LiteralString, params: Any) -> tuple[Any, ...]:
    row = await _one(conn, query, params)
    if row is None:
        raise NotFound(f"no {what}")
    return row


async def _provider(conn: Conn, r: ProviderRecord) -> Status:
    return _changed(await _one(conn, """
        INSERT INTO providers AS p (id, name, inn, kpp, bank_name, bic, corr_account,
                                    settlement_account, address, phone, email, website)
        VALUES (%(provider_id)s, %(name)s, %(inn)s, %(kpp)s, %(bank_name)s, %(bic)s,
                %(corr_account)s, %(settlement_account)s, %(address)s, %(phone)s, %(email)s,
                %(website)s)
        ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, inn = excluded.inn, kpp = excluded.kpp,
            bank_name = excluded.bank_name, bic = excluded.bic,
            corr_account = excluded.corr_account, settlement_account = excluded.settlement_account,
            address = excluded.address, phone = excluded.phone, email = excluded.email,
            website = excluded.website
        WHERE (p.name, p.inn, p.kpp, p.bank_name, p.bic, p.corr_account, p.settlement_account,
               p.address, p.phone, p.email, p.website)
              IS DISTINCT FROM
              (excluded.name, excluded.inn, excluded.kpp, excluded.bank_name, excluded.bic,
               excluded.corr_account, excluded.settlement_account, excluded.address,
               excluded.phone, excluded.email, excluded.website)
        RETURNING (xmax = 0)
        """, r.model_dump()))


async def _id_of(
    conn: Conn, insert: LiteralString, select: LiteralString, params: dict[str, Any]
) -> int:
    """The id of a row found by its natural key, inserting it first when it is missing."""
    row = await _one(conn, insert + " ON CONFLICT DO NOTHING RETURNING id", params)
    if row is None:
        row = await _one(conn, select, params)
    assert row is not None
    return int(row[0])


async def house_id(conn: Conn, region: str, city: str, street: str, house: str) -> int | None:
    row = await _one(conn, """
        SELECT h.id FROM houses h JOIN streets s ON s.id = h.street_id
          JOIN cities c ON c.id = s.city_id
         WHERE c.region_code = %s AND c.name = %s AND s.name = %s AND h.number = %s
        """, (region, city, street, house))
    return None if row is None else int(row[0])


def address_text(city: str, street: str, house: str, apartment: str) -> str:
    return f"г. {city}, {street}, д. {house}, кв. {apartment}"


async def _account(conn: Conn, r: AccountRecord) -> Status:
    p = r.model_dump()
    region = await _one(conn, "SELECT time_zone FROM regions WHERE code = %s", (r.region,))
    if region is None:
        await conn.execute(
            "INSERT INTO regions (code, name, time_zone) VALUES (%s, %s, %s)",
            (r.region, r.region_name or r.region, r.time_zone or "Europe/Moscow"))
        time_zone = r.time_zone or "Europe/Moscow"
    else:
        time_zone = region[0]
        if r.time_zone is not None and r.time_zone != time_zone:
            raise Conflict(f"region {r.region} is in time zone {time_zone}, not {r.time_zone}")
    if r.els is not None:
        other = await _one(conn, "SELECT id FROM accounts WHERE els = %s AND id <> %s",
                           (r.els, r.account_id))
        if other is not None:
            raise Conflict(f"ЕЛС {r.els} belongs to account {other[0]}")
    p["city_id"] = await _id_of(
        conn, "INSERT INTO cities (region_code, name) VALUES (%(region)s, %(city)s)",
        "SELECT id FROM cities WHERE region_code = %(region)s AND name = %(city)s", p)
    p["street_id"] = await _id_of(
        conn, "INSERT INTO streets (city_id, name) VALUES (%(city_id)s, %(street)s)",
        "SELECT id FROM streets WHERE city_id = %(city_id)s AND name = %(street)s", p)
    p["house_id"] = await _id_of(
        conn, "INSERT INTO houses (street_id, number) VALUES (%(street_id)s, %(house)s)",
        "SELECT id FROM houses WHERE street_id = %(street_id)s AND number = %(house)s", p)
    p["premises_id"] = await _id_of(
        conn, "INSERT INTO premises (house_id, number) VALUES (%(house_id)s, %(apartment)s)",
        "SELECT id FROM premises WHERE house_id = %(house_id)s AND number = %(apartment)s", p)
    p["full_text"] = address_text(r.city, r.street, r.house, r.apartment)
    p["time_zone"] = time_zone

    existing = await _one(conn, "SELECT address_id FROM accounts WHERE id = %s FOR UPDATE",
                          (r.account_id,))
    if existing is None:
        address = await _one(conn, """
            INSERT INTO addresses (region, full_text, time_zone)
            VALUES (%(region)s, %(full_text)s, %(time_zone)s) RETURNING id""", p)
        assert address is not None
        await conn.execute("""
            INSERT INTO accounts (id, address_id, holder_name, billing_mode, premises_id, els,
                                  area, residents)
            VALUES (%(account_id)s, %(address_id)s, %(holder_name)s, %(billing_mode)s,
                    %(premises_id)s, %(els)s, %(area)s, %(residents)s)
            """, {**p, "address_id": address[0]})
        return "created"
    p["address_id"] = existing[0]
    moved = await _one(conn, """
        UPDATE addresses SET region = %(region)s, full_text = %(full_text)s,
                             time_zone = %(time_zone)s
         WHERE id = %(address_id)s
           AND (region, full_text, time_zone)
               IS DISTINCT FROM (%(region)s, %(full_text)s, %(time_zone)s)
        RETURNING id""", p)
    changed = await _one(conn, """
        UPDATE accounts SET holder_name = %(holder_name)s, billing_mode = %(billing_mode)s,
                            premises_id = %(premises_id)s, els = %(els)s, area = %(area)s,
                            residents = %(residents)s
         WHERE id = %(account_id)s
           AND (holder_name, billing_mode, premises_id, els, area, residents)
               IS DISTINCT FROM (%(holder_name)s, %(billing_mode)s, %(premises_id)s::bigint,
                                 %(els)s, %(area)s::numeric, %(residents)s::integer)
        RETURNING id""", p)
    return "updated" if moved or changed else "unchanged"


async def _account_exists(conn: Conn, account_id: str) -> None:
    await _require(conn, f"account {account_id}", "SELECT 1 FROM accounts WHERE id = %s",
                   (account_id,))


async def _service(conn: Conn, r: ServiceRecord) -> Status:
    await _account_exists(conn, r.account_id)
    await _require(conn, f"provider {r.provider_id}", "SELECT 1 FROM providers WHERE id = %s",
                   (r.provider_id,))
    p = r.model_dump()
    overlap = await _one(conn, """
        SELECT provider_id, valid_from FROM account_services
         WHERE account_id = %(account_id)s AND service = %(service)s
           AND valid_from <> %(valid_from)s
           AND daterange(valid_from, valid_to) && daterange(%(valid_from)s, %(valid_to)s)
        """, p)
    if overlap is not None:
        raise Conflict(f"{r.service} on account {r.account_id} is sold by {overlap[0]} from "
                       f"{overlap[1]}, overlapping this row")
    await conn.execute("""
        INSERT INTO balances (account_id, provider_id) VALUES (%(account_id)s, %(provider_id)s)
        ON CONFLICT DO NOTHING""", p)
    return _changed(await _one(conn, """
        INSERT INTO account_services AS s (account_id, service, provider_id, valid_from, valid_to)
        VALUES (%(account_id)s, %(service)s, %(provider_id)s, %(valid_from)s, %(valid_to)s)
        ON CONFLICT (account_id, service, valid_from) DO UPDATE
           SET provider_id = excluded.provider_id, valid_to = excluded.valid_to
         WHERE (s.provider_id, s.valid_to)
               IS DISTINCT FROM (excluded.provider_id, excluded.valid_to)
        RETURNING (xmax = 0)""", p))


async def _meter(conn: Conn, r: MeterRecord) -> Status:
    await _account_exists(conn, r.account_id)
    service = SERVICE_OF_UTILITY[r.utility]
    await _require(
        conn, f"provider {r.provider_id} selling {service} on account {r.account_id}",
        "SELECT 1 FROM account_services WHERE account_id = %s AND service = %s "
        "AND provider_id = %s LIMIT 1", (r.account_id, service, r.provider_id))
    register, unit = READ_REGISTER[r.utility]
    p = {**r.model_dump(), "register": register, "unit": unit}
    existing = await _one(conn, """
        SELECT account_id, provider_id, utility, model, gateway_id, installed_at,
               verification_due, out_of_order_since
          FROM meters WHERE id = %(meter_id)s""", p)
    if existing is not None:
        wanted = (r.account_id, r.provider_id, r.utility, r.model, r.gateway_id, r.installed_at)
        if tuple(existing[:6]) != wanted:
            raise Conflict(
                f"meter {r.meter_id} is registered as {_meter_text(existing[:6])}; changing a "
                "meter is a replacement, not an import")
        if tuple(existing[6:]) == (r.verification_due, r.out_of_order_since):
            return "unchanged"
        await conn.execute("""
            UPDATE meters SET verification_due = %(verification_due)s,
                              out_of_order_since = %(out_of_order_since)s
             WHERE id = %(meter_id)s""", p)
        return "updated"
    if await _one(conn, "SELECT 1 FROM house_meters WHERE id = %s", (r.meter_id,)):
        raise Conflict(f"meter {r.meter_id} is a house meter")
    await conn.execute("""
        INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id,
                            installed_at, verification_due, out_of_order_since)
        VALUES (%(meter_id)s, %(account_id)s, %(provider_id)s, %(utility)s, %(model)s,
                %(gateway_id)s, %(installed_at)s, %(verification_due)s,
                %(out_of_order_since)s)""", p)
    await conn.execute("""
        INSERT INTO registers (meter_id, code, unit)
        VALUES (%(meter_id)s, %(register)s, %(unit)s)""", p)
    if r.gateway_id is None:  # read by people: the installation reading is their baseline
        await conn.execute("""
            INSERT INTO readings (meter_id, register, ts, value, source)
            VALUES (%(meter_id)s, %(register)s, %(installed_at)s, %(installation_reading)s,
                    'operator')""", p)
    else:  # polled: rating prices from the installation reading (meterline.fleet does so too)
        await conn.execute("""
            INSERT INTO register_state (meter_id, register, last_ts, last_value)
            VALUES (%(meter_id)s, %(register)s, %(installed_at)s, %(installation_reading)s)""", p)
    return "created"


def _meter_text(row: tuple[Any, ...]) -> str:
    account, provider, utility, model, gateway, installed_at = row
    where = f"behind gateway {gateway}" if gateway else "read by people"
    return (f"{utility} {model} of account {account} (provider {provider}), {where}, "
            f"installed {installed_at.isoformat()}")


async def _house_meter(conn: Conn, r: HouseMeterRecord) -> Status:
    house = await house_id(conn, r.region, r.city, r.street, r.house)
    if house is None:
        raise NotFound(f"no house {r.house} on {r.street}, {r.city} ({r.region})")
    if await _one(conn, "SELECT 1 FROM meters WHERE id = %s", (r.meter_id,)):
        raise Conflict(f"meter {r.meter_id} is an account's meter")
    existing = await _one(
        conn, "SELECT house_id, utility, installed_at FROM house_meters WHERE id = %s",
        (r.meter_id,))
    if existing is not None:
        if tuple(existing) != (house, r.utility, r.installed_at):
            raise Conflict(f"house meter {r.meter_id} is registered on another house or utility")
        return "unchanged"
    await conn.execute("""
        INSERT INTO house_meters (id, house_id, utility, installed_at)
        VALUES (%s, %s, %s, %s)""", (r.meter_id, house, r.utility, r.installed_at))
    return "created"


async def _benefit(conn: Conn, r: BenefitRecord) -> Status:
    await _account_exists(conn, r.account_id)
    # the tariffs' benefits job prices a grant by its rule: one must be there to apply
    await _require(conn, f"benefit rule {r.category} for {r.service} in the tariff book of a "
                         f"provider selling it to account {r.account_id}", """
        SELECT 1 FROM benefit_rules b
          JOIN account_services s ON s.provider_id = b.provider_id AND s.service = b.service
         WHERE b.code = %s AND b.service = %s AND s.account_id = %s""",
                   (r.category, r.service, r.account_id))
    return _changed(await _one(conn, """
        INSERT INTO account_benefits AS b (account_id, category, service, share, valid_from,
                                           valid_to, beneficiaries)
        VALUES (%(account_id)s, %(category)s, %(service)s, %(share)s, %(valid_from)s,
                %(valid_to)s, %(beneficiaries)s)
        ON CONFLICT (account_id, category, service, valid_from) DO UPDATE
           SET share = excluded.share, valid_to = excluded.valid_to,
               beneficiaries = excluded.beneficiaries
         WHERE (b.share, b.valid_to, b.beneficiaries)
               IS DISTINCT FROM (excluded.share, excluded.valid_to, excluded.beneficiaries)
        RETURNING (xmax = 0)""", r.model_dump()))


async def _norm(conn: Conn, r: NormRecord) -> Status:
    await _require(conn, f"region {r.region}", "SELECT 1 FROM regions WHERE code = %s",
                   (r.region,))
    return _changed(await _one(conn, """
        INSERT INTO consumption_norms AS n (region_code, service, scope, basis, quantity, unit,
                                            valid_from, valid_to)
        VALUES (%(region)s, %(service)s, %(scope)s, %(basis)s, %(quantity)s, %(unit)s,
                %(valid_from)s, %(valid_to)s)
        ON CONFLICT (region_code, service, scope, valid_from) DO UPDATE
           SET basis = excluded.basis, quantity = excluded.quantity, unit = excluded.unit,
               valid_to = excluded.valid_to
         WHERE (n.basis, n.quantity, n.unit, n.valid_to)
               IS DISTINCT FROM
               (excluded.basis, excluded.quantity, excluded.unit, excluded.valid_to)
        RETURNING (xmax = 0)""", r.model_dump()))


async def _reading(conn: Conn, r: ReadingRecord) -> Status:
    meter = await _one(conn, """
        SELECT utility, gateway_id FROM meters WHERE id = %(meter_id)s
        UNION ALL
        SELECT utility, NULL FROM house_meters WHERE id = %(meter_id)s""", r.model_dump())
    if meter is None:
        raise NotFound(f"no meter {r.meter_id}")
    utility, gateway = meter
    if gateway is not None:
        raise Conflict(f"meter {r.meter_id} is read by gateway {gateway}")
    register, _ = READ_REGISTER[Utility(utility)]
    p = {**r.model_dump(), "register": register}
    stored = await _one(conn, """
        SELECT value FROM readings
         WHERE meter_id = %(meter_id)s AND register = %(register)s AND ts = %(ts)s""", p)
    if stored is not None:
        if stored[0] != r.value:
            raise Conflict(f"a reading of {r.meter_id} at {r.ts.isoformat()} is stored with "
                           f"value {stored[0]}")
        return "unchanged"
    await conn.execute("""
        INSERT INTO readings (meter_id, register, ts, value, source)
        VALUES (%(meter_id)s, %(register)s, %(ts)s, %(value)s, %(source)s)""", p)
    return "created"


Apply = Callable[[Conn, Any], Awaitable[Status]]


@dataclass(frozen=True)
class Kind:
    model: type[Record]
    apply: Apply


KINDS: dict[str, Kind] = {
    "providers": Kind(ProviderRecord, _provider),
    "accounts": Kind(AccountRecord, _account),
    "services": Kind(ServiceRecord, _service),
    "meters": Kind(MeterRecord, _meter),
    "house-meters": Kind(HouseMeterRecord, _house_meter),
    "benefits": Kind(BenefitRecord, _benefit),
    "norms": Kind(NormRecord, _norm),
    "readings": Kind(ReadingRecord, _reading),
}


def columns(model: type[BaseModel]) -> tuple[list[str], list[str]]:
    """(required, optional) column names of a kind of file."""
    fields = model.model_fields
    return ([n for n, f in fields.items() if f.is_required()],
            [n for n, f in fields.items() if not f.is_required()])


def _reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
        for e in exc.errors(include_url=False))


async def import_rows(
    conn: Conn, kind: str, lines: Iterable[str], *, check: bool = False
) -> ImportReport:
    """Import one CSV file of ``kind`` (see ``KINDS``) in one transaction on ``conn``, which
    must not be in a transaction already. ``check``: do everything, then roll it all back."""
    if kind not in KINDS:
        raise Invalid(f"unknown kind of file {kind!r}; one of: {', '.join(KINDS)}",
                      field=["kind"])
    spec = KINDS[kind]
    reader = csv.DictReader(lines)
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    required, optional = columns(spec.model)
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required and c not in optional]
    if missing or unknown:
        raise Invalid(
            f"{kind} file: "
            + "; ".join(part for part in (
                missing and f"missing columns {', '.join(missing)}",
                unknown and f"unknown columns {', '.join(unknown)}") if part)
            + f" (columns: {', '.join(required)}; optional: {', '.join(optional)})",
            field=["header"])
    report = ImportReport(kind, applied=not check)
    seen: dict[tuple[object, ...], int] = {}
    async with conn.transaction(force_rollback=check):
        for raw in reader:
            line = reader.line_num
            if None in raw:
                report.rows.append(RowOutcome(line, "", "refused", "more cells than columns"))
                continue
            values = {k: v for k, v in raw.items() if v not in ("", None)}
            try:
                record = spec.model.model_validate(values)
            except ValidationError as exc:
                key = "/".join(values.get(c, "") for c in required[:1])
                report.rows.append(RowOutcome(line, key, "refused", _reason(exc)))
                continue
            key_text = "/".join(str(part) for part in record.key())
            if (earlier := seen.setdefault(record.key(), line)) != line:
                report.rows.append(
                    RowOutcome(line, key_text, "refused", f"same key as line {earlier}"))
                continue
            try:
                async with conn.transaction():
                    status = await spec.apply(conn, record)
            except DomainError as exc:
                report.rows.append(RowOutcome(line, key_text, "refused", exc.detail))
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                report.rows.append(RowOutcome(
                    line, key_text, "refused", exc.diag.message_primary or str(exc)))
            else:
                report.rows.append(RowOutcome(line, key_text, status))
    return report
