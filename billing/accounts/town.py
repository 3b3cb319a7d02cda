"""A generated town for demos, tests and benchmarks (`meterline town`).

One region with a town and two settlements (a second town goes in another region); streets
of houses of 24 to 108 apartments; one personal account per apartment with its area and
registered residents; the providers of a Russian town (management company, capital repair
fund, waste operator, water utility, heat network, electricity and gas retailers) and the
services they sell on each account, with their tariff books; meters read by people with
monthly readings (some months missing, as in life); house meters with their monthly
readings; the region's consumption norms; a few beneficiaries of the books' benefit rules.

Everything is made by set-based SQL in one transaction (the books through
``meterline.tariffs``), pseudo-random but deterministic:
each draw is a hash of the town's seed and the thing drawn for, so the same spec gives the
same town, and generating it again adds nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any, LiteralString

import psycopg

from meterline.documents.model import SERVICE_NAMES
from meterline.tariffs.model import (
    UTILITY_OF_SERVICE,
    Basis,
    BenefitRule,
    Book,
    ProviderInfo,
    TariffPlan,
    TariffVersion,
)
from meterline.tariffs.store import load_book, read_plans
from meterline.tariffs.zones import FLAT
from meterline.units import Service, Utility

STREETS = (
    "ул. Ленина", "ул. Гагарина", "ул. Мира", "ул. Советская", "ул. Победы", "ул. Молодёжная",
    "ул. Школьная", "ул. Садовая", "ул. Лесная", "ул. Набережная", "пр. Строителей",
    "ул. Пушкина", "ул. Чехова", "ул. Кирова", "ул. Комсомольская", "ул. Заречная",
)
SURNAMES = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
)
INITIALS = "АБВГДЕИКЛМНОПРСТ"

# Who sells what in the town: provider suffix, name, services.
PROVIDERS: tuple[tuple[str, str, tuple[Service, ...]], ...] = (
    ("uk", "ООО «Управляющая компания „Уют“»", (Service.MAINTENANCE,)),
    ("fkr", "НО «Фонд капитального ремонта»", (Service.CAPITAL_REPAIR,)),
    ("tko", "ООО «Региональный оператор ТКО»", (Service.WASTE,)),
    ("vodokanal", "МУП «Водоканал»", (Service.COLD_WATER, Service.SEWERAGE)),
    ("teploset", "АО «Теплосеть»", (Service.HEATING, Service.HOT_WATER)),
    ("energosbyt", "АО «Энергосбыт»", (Service.ELECTRICITY,)),
    ("gaz", "ООО «Газпром межрегионгаз»", (Service.GAS,)),
)

MIX = "mix"  # services by house: hot water in 80 % of houses, gas in 30 %, the rest everywhere


@dataclass(frozen=True)
class TownSpec:
    prefix: str = "T"  # account ids are prefix + 8 digits; provider ids prefix-<role>
    accounts: int = 1000
    region: str = "50"
    region_name: str = "Московская область"
    time_zone: str = "Europe/Moscow"
    town: str = "Берёзовск"
    seed: int = 1
    first_month: date = date(2026, 1, 1)  # services start, and readings with it
    months: int = 7  # months of readings from first_month
    # every account buys exactly these services, or MIX
    services: tuple[Service, ...] | str = MIX


@dataclass(frozen=True)
class Town:
    spec: TownSpec
    accounts: int
    houses: int
    meters: int
    house_meters: int
    readings: int
    providers: dict[Service, str]


def provider_ids(prefix: str) -> dict[Service, str]:
    return {service: f"{prefix.lower()}-{role}"
            for role, _, services in PROVIDERS for service in services}


_RAND = """
CREATE OR REPLACE FUNCTION pg_temp.town_rand(seed integer, what text) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT ('x' || substr(md5(seed::text || ':' || what), 1, 8))::bit(32)::bigint
           / 4294967296.0
$$
"""

# Houses: sizes drawn, then cut where the apartments reach the number of accounts.
_HOUSES = """
CREATE TEMP TABLE town_houses ON COMMIT DROP AS
WITH drawn AS (
    SELECT h, 24 + 12 * floor(pg_temp.town_rand(%(seed)s, 'size' || h) * 8)::int AS size
      FROM generate_series(0, (%(accounts)s + 23) / 24) AS h
), placed AS (
    SELECT h, size, coalesce(sum(size) OVER (ORDER BY h ROWS BETWEEN UNBOUNDED PRECEDING
                                             AND 1 PRECEDING), 0)::int AS first
      FROM drawn
)
SELECT h, least(size, %(accounts)s - first) AS size, first,
       h / 10 AS street,                          -- ten houses a street
       (h %% 10) * 2 + 1 AS number,               -- odd side: 1, 3, 5 ...
       pg_temp.town_rand(%(seed)s, 'hot' || h) < 0.8 AS hot_water,
       pg_temp.town_rand(%(seed)s, 'gas' || h) < 0.3 AS gas
  FROM placed WHERE first < %(accounts)s
"""

_CITIES = """
INSERT INTO regions (code, name, time_zone) VALUES (%(region)s, %(region_name)s, %(time_zone)s)
ON CONFLICT DO NOTHING;
INSERT INTO cities (region_code, name)
SELECT %(region)s, name FROM unnest(%(cities)s::text[]) AS name
ON CONFLICT DO NOTHING;
CREATE TEMP TABLE town_streets ON COMMIT DROP AS
SELECT street,
       CASE WHEN street < greatest(1, ceil(n * 0.8)) THEN 0 ELSE 1 + street %% 2 END AS city,
       CASE WHEN street / %(street_names)s = 0 THEN ''
            ELSE (street / %(street_names)s + 1) || '-я ' END
       || (%(streets)s::text[])[street %% %(street_names)s + 1] AS name
  FROM (SELECT DISTINCT street, count(*) OVER () AS n
          FROM (SELECT DISTINCT street FROM town_houses) s) s;
INSERT INTO streets (city_id, name)
SELECT c.id, s.name FROM town_streets s
  JOIN cities c ON c.region_code = %(region)s AND c.name = (%(cities)s::text[])[s.city + 1]
ON CONFLICT DO NOTHING;
INSERT INTO houses (street_id, number, common_area)
SELECT st.id, h.number::text, h.size * 4.5
  FROM town_houses h JOIN town_streets s ON s.street = h.street
  JOIN cities c ON c.region_code = %(region)s AND c.name = (%(cities)s::text[])[s.city + 1]
  JOIN streets st ON st.city_id = c.id AND st.name = s.name
ON CONFLICT DO NOTHING;
ALTER TABLE town_houses ADD COLUMN id bigint, ADD COLUMN address text;
UPDATE town_houses h SET id = hs.id,
       address = 'г. ' || c.name || ', ' || s.name || ', д. ' || h.number
  FROM town_streets s
  JOIN cities c ON c.region_code = %(region)s AND c.name = (%(cities)s::text[])[s.city + 1]
  JOIN streets st ON st.city_id = c.id AND st.name = s.name
  JOIN houses hs ON hs.street_id = st.id
 WHERE s.street = h.street AND hs.number = h.number::text
"""

_ACCOUNTS = """
CREATE TEMP TABLE town_accounts ON COMMIT DROP AS
SELECT n, %(prefix)s || lpad(n::text, 8, '0') AS account_id, h.h AS house, h.id AS house_id,
       (n - h.first + 1)::text AS apartment,
       h.address || ', кв. ' || (n - h.first + 1) AS address,
       round((28 + pg_temp.town_rand(%(seed)s, 'area' || n) * 62)::numeric, 1) AS area,
       CASE WHEN pg_temp.town_rand(%(seed)s, 'empty' || n) < 0.03 THEN 0
            ELSE 1 + floor(pg_temp.town_rand(%(seed)s, 'people' || n) * 4)::int END AS residents,
       (%(surnames)s::text[])[1 + floor(pg_temp.town_rand(%(seed)s, 'sn' || n) * 16)::int]
       || ' ' || substr(%(initials)s,
                        1 + floor(pg_temp.town_rand(%(seed)s, 'i1' || n) * 16)::int, 1)
       || '. ' || substr(%(initials)s,
                         1 + floor(pg_temp.town_rand(%(seed)s, 'i2' || n) * 16)::int, 1)
       || '.' AS holder_name,
       h.hot_water, h.gas
  FROM town_houses h, generate_series(h.first, h.first + h.size - 1) AS n;
DELETE FROM town_accounts t USING accounts a WHERE a.id = t.account_id;
ALTER TABLE town_accounts ADD COLUMN address_id bigint, ADD COLUMN premises_id bigint,
                          ADD COLUMN els text;
UPDATE town_accounts SET address_id = nextval(pg_get_serial_sequence('addresses', 'id'));
INSERT INTO addresses (id, region, full_text, time_zone) OVERRIDING SYSTEM VALUE
SELECT address_id, %(region)s, address, %(time_zone)s FROM town_accounts;
INSERT INTO premises (house_id, number)
SELECT house_id, apartment FROM town_accounts ON CONFLICT DO NOTHING;
UPDATE town_accounts t SET premises_id = p.id
  FROM premises p WHERE p.house_id = t.house_id AND p.number = t.apartment;
WITH last AS (
    SELECT coalesce(max(substr(els, 3)::bigint), 0) AS n FROM accounts
     WHERE els LIKE %(els_region)s || '%%' AND substr(els, 3) ~ '^[0-9]{8}$'
)
UPDATE town_accounts t SET els = %(els_region)s || lpad((last.n + t.n + 1)::text, 8, '0')
  FROM last;
INSERT INTO accounts (id, address_id, holder_name, billing_mode, opened_at, premises_id, els,
                      area, residents)
SELECT account_id, address_id, holder_name, 'postpaid', %(opened_at)s, premises_id, els,
       area, residents
  FROM town_accounts
"""

_PROVIDERS = """
INSERT INTO providers (id, name, inn, kpp, bank_name, bic, corr_account, settlement_account,
                       address, phone, email, website)
SELECT id, name,
       '50' || lpad((abs(hashtext(id)) %% 100000000)::text, 8, '0'),
       '50' || lpad((abs(hashtext(id || 'kpp')) %% 10000000)::text, 7, '0'),
       'ПАО Сбербанк', '044525225', '30101810400000000225',
       '40702810' || lpad((abs(hashtext(id || 'acc')) %% 1000000000000)::text, 12, '0'),
       %(town_address)s, '+7 (495) 100-' || lpad((abs(hashtext(id)) %% 10000)::text, 4, '0'),
       id || '@example.ru', 'https://' || id || '.example.ru'
  FROM unnest(%(ids)s::text[], %(names)s::text[]) AS p(id, name)
ON CONFLICT DO NOTHING
"""

# The services of each new account: (account, service) rows, from the spec or the house.
_SERVICES = """
CREATE TEMP TABLE town_services ON COMMIT DROP AS
SELECT t.account_id, t.n, s.service, s.provider_id
  FROM town_accounts t
  JOIN unnest(%(services)s::text[], %(service_providers)s::text[]) AS s(service, provider_id)
    ON %(fixed)s
    OR s.service NOT IN ('hot_water', 'gas')
    OR (s.service = 'hot_water' AND t.hot_water) OR (s.service = 'gas' AND t.gas);
INSERT INTO balances (account_id, provider_id)
SELECT DISTINCT account_id, provider_id FROM town_services ON CONFLICT DO NOTHING;
INSERT INTO account_services (account_id, service, provider_id, valid_from)
SELECT account_id, service, provider_id, %(first_month)s FROM town_services
"""

# Meters read by people: most metered services have one; consumption by residents.
_METERS = """
CREATE TEMP TABLE town_meters ON COMMIT DROP AS
SELECT s.account_id || '-' || m.code AS meter_id, s.n || m.code AS draw, s.account_id,
       s.provider_id, m.utility,
       m.register, m.unit, m.per_person, m.base, a.residents, a.n
  FROM town_services s
  JOIN town_accounts a ON a.account_id = s.account_id
  JOIN (VALUES ('cold_water', 'cw', 'volume', 'm3', 3.6, 0.5, 0.92),
               ('hot_water', 'hw', 'volume', 'm3', 2.6, 0.3, 0.9),
               ('electricity', 'el', 'active_import', 'kWh', 65, 60, 0.98),
               ('gas', 'gs', 'volume', 'm3', 9, 3, 0.5))
       AS m(utility, code, register, unit, per_person, base, share)
    ON m.utility = s.service
 WHERE pg_temp.town_rand(%(seed)s, 'meter' || s.n || m.code) < m.share;
INSERT INTO meters (id, account_id, provider_id, utility, model, gateway_id, installed_at)
SELECT meter_id, account_id, provider_id, utility, 'manual', NULL, %(installed_at)s
  FROM town_meters;
INSERT INTO registers (meter_id, code, unit) SELECT meter_id, register, unit FROM town_meters;
INSERT INTO readings (meter_id, register, ts, value, source)
SELECT meter_id, register, %(installed_at)s,
       round((pg_temp.town_rand(%(seed)s, 'start' || draw) * 500)::numeric, 3), 'operator'
  FROM town_meters;
-- monthly readings taken on the 20th; about one in twelve is missing
INSERT INTO readings (meter_id, register, ts, value, source)
SELECT meter_id, register, ts, value, source FROM (
    SELECT m.meter_id, m.register,
           (%(first_month)s::date + make_interval(months => k) + interval '19 days 12 hours')
               AT TIME ZONE %(time_zone)s AS ts,
           round((pg_temp.town_rand(%(seed)s, 'start' || m.draw) * 500
                 + sum((m.base + m.per_person * m.residents)
                       * (0.7 + 0.6 * pg_temp.town_rand(%(seed)s, m.draw || ':' || k)))
                   OVER (PARTITION BY m.meter_id ORDER BY k))::numeric, 3) AS value,
           (ARRAY['app', 'web', 'phone', 'operator'])[
               1 + floor(pg_temp.town_rand(%(seed)s, 'src' || m.draw || k) * 4)::int]
               AS source,
           pg_temp.town_rand(%(seed)s, 'miss' || m.draw || ':' || k) < 0.08 AS missing
      FROM town_meters m, generate_series(0, %(months)s - 1) AS k
) r WHERE NOT missing
"""

# House meters, and their monthly readings: the apartments' consumption plus what the
# common property used (losses, stairs, basements); heat by area and season.
_HOUSE_METERS = """
CREATE TEMP TABLE town_house_meters ON COMMIT DROP AS
SELECT %(prefix)s || '-H' || h.h || '-' || m.code AS meter_id, h.h || m.code AS draw,
       h.id AS house_id, m.utility,
       m.register, m.share,
       CASE m.utility WHEN 'cold_water' THEN 0.5 * a.n + 3.6 * a.residents
                      WHEN 'hot_water' THEN 0.3 * a.n + 2.6 * a.residents
                      WHEN 'electricity' THEN 60 * a.n + 65 * a.residents
                      ELSE a.area END AS monthly
  FROM town_houses h
  JOIN (SELECT house, count(*) AS n, sum(residents) AS residents, sum(area) AS area
          FROM town_accounts GROUP BY house) a ON a.house = h.h
  JOIN (VALUES ('heat', 'ht', 'heat_energy', 0.7), ('cold_water', 'cw', 'volume', 0.8),
               ('hot_water', 'hw', 'volume', 0.8), ('electricity', 'el', 'active_import', 0.9))
       AS m(utility, code, register, share)
    ON m.utility <> 'hot_water' OR h.hot_water
 WHERE pg_temp.town_rand(%(seed)s, 'hm' || h.h || m.code) < m.share
   AND NOT EXISTS (SELECT 1 FROM house_meters x
                    WHERE x.id = %(prefix)s || '-H' || h.h || '-' || m.code);
INSERT INTO house_meters (id, house_id, utility, installed_at)
SELECT meter_id, house_id, utility, %(installed_at)s FROM town_house_meters;
INSERT INTO readings (meter_id, register, ts, value, source)
SELECT meter_id, register, ts,
       round(sum(volume) OVER (PARTITION BY meter_id ORDER BY ts)::numeric, 3), 'operator'
  FROM (
    SELECT meter_id, register, %(installed_at)s AS ts, 0::float8 AS volume FROM town_house_meters
    UNION ALL
    SELECT m.meter_id, m.register,
           (%(first_month)s::date + make_interval(months => k + 1)) AT TIME ZONE %(time_zone)s,
           CASE WHEN m.utility = 'heat'  -- Gcal per m² in a month, winter to summer
                THEN m.monthly * 0.0156
                     * (1 + cos(2 * pi() * extract(month FROM %(first_month)s::date
                                                   + make_interval(months => k)) / 12))
                ELSE m.monthly * (1.03 + 0.12 * pg_temp.town_rand(%(seed)s, m.draw || k))
           END
      FROM town_house_meters m, generate_series(0, %(months)s - 1) AS k
  ) v
"""

# Norms of the region (monthly): per resident in the apartment, per m² of common property
# (СОИ), heating per m² of the apartment.
NORMS: tuple[tuple[Service, str, str, str, str], ...] = (
    (Service.COLD_WATER, "individual", "resident", "6.935", "m3"),
    (Service.HOT_WATER, "individual", "resident", "4.745", "m3"),
    (Service.ELECTRICITY, "individual", "resident", "110", "kWh"),
    (Service.GAS, "individual", "resident", "12", "m3"),
    (Service.HEATING, "individual", "m2", "0.0156", "Gcal"),
    (Service.COLD_WATER, "common", "m2", "0.03", "m3"),
    (Service.HOT_WATER, "common", "m2", "0.03", "m3"),
    (Service.ELECTRICITY, "common", "m2", "0.9", "kWh"),
)

_NORMS = """
INSERT INTO consumption_norms (region_code, service, scope, basis, quantity, unit, valid_from)
SELECT %(region)s, service, scope, basis, quantity::numeric, unit, %(norms_from)s
  FROM unnest(%(n_service)s::text[], %(n_scope)s::text[], %(n_basis)s::text[],
              %(n_quantity)s::text[], %(n_unit)s::text[])
       AS n(service, scope, basis, quantity, unit)
ON CONFLICT DO NOTHING
"""

# Prices of the town's providers from the first month: each provider's tariff book, one
# default flat plan per service it sells (meterline.tariffs: the same books rating prices
# gateway meters with); sewerage is priced per m³ of the cold and hot water used.
PRICES: dict[Service, tuple[Basis, str]] = {
    Service.COLD_WATER: (Basis.M3, "52.30"), Service.HOT_WATER: (Basis.M3, "245.60"),
    Service.ELECTRICITY: (Basis.KWH, "6.83"), Service.GAS: (Basis.M3, "8.92"),
    Service.HEATING: (Basis.GCAL, "2930.50"), Service.SEWERAGE: (Basis.M3, "41.80"),
    Service.MAINTENANCE: (Basis.M2, "34.20"), Service.CAPITAL_REPAIR: (Basis.M2, "18.90"),
    Service.WASTE: (Basis.RESIDENT, "165.40"),
}
# Benefits of the town's veterans (the tariffs' benefits job prices and posts them): half of
# maintenance and of heating, within 18 m² of area each.
BENEFITS: tuple[tuple[str, Service, str, str], ...] = (
    ("veteran_maintenance", Service.MAINTENANCE, "50", "18"),
    ("veteran_heating", Service.HEATING, "50", "18"),
)


def town_books(spec: TownSpec) -> list[Book]:
    """The tariff book of each of the town's providers."""
    providers = provider_ids(spec.prefix)
    books = []
    for role, name, services in PROVIDERS:
        provider = f"{spec.prefix.lower()}-{role}"
        plans = tuple(TariffPlan(
            provider_id=provider, code=service.value.replace("_", "-"),
            name=SERVICE_NAMES[service], service=service,
            utility=UTILITY_OF_SERVICE.get(service) if PRICES[service][0].unit else None,
            basis=PRICES[service][0], default=True,
            derived_from=(Utility.COLD_WATER, Utility.HOT_WATER)
            if service == Service.SEWERAGE else (),
            versions=(TariffVersion(valid_from=spec.first_month, zones=FLAT,
                                    prices=((Decimal(PRICES[service][1]),),)),),
        ) for service in services)
        rules = tuple(BenefitRule(
            provider_id=provider, code=code, name="Ветераны труда", service=service,
            percent=Decimal(percent), norm=Decimal(norm), norm_basis=Basis.M2,
        ) for code, service, percent, norm in BENEFITS if providers[service] == provider)
        books.append(Book(provider=ProviderInfo(id=provider, name=name), plans=plans,
                          benefits=rules))
    return books


async def load_town_books(conn: psycopg.AsyncConnection[Any], spec: TownSpec) -> None:
    """Load the town's books; a provider's service priced already keeps its plans."""
    for book in town_books(spec):
        priced = {s.plan.service for s in await read_plans(conn, provider=book.provider.id)}
        await load_book(conn, book.model_copy(update={
            "plans": tuple(p for p in book.plans if p.service not in priced)}))


_BENEFITS = """
INSERT INTO account_benefits (account_id, category, service, share, valid_from)
SELECT s.account_id, 'veteran_' || s.service, s.service, 0.5, %(first_month)s
  FROM town_services s
 WHERE pg_temp.town_rand(%(seed)s, 'veteran' || s.n) < 0.05
   AND s.service IN ('maintenance', 'heating')
"""

_COUNTS = """
SELECT (SELECT count(*) FROM town_accounts), (SELECT count(*) FROM town_houses),
       (SELECT count(*) FROM town_meters), (SELECT count(*) FROM town_house_meters)
"""


def _params(spec: TownSpec) -> dict[str, Any]:
    providers = provider_ids(spec.prefix)
    services = list(providers) if isinstance(spec.services, str) else list(spec.services)
    first = spec.first_month
    installed = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 25)
    return {
        **asdict(spec),
        "cities": [spec.town, "пос. Сосновый", "с. Ильинское"],
        "streets": list(STREETS), "street_names": len(STREETS),
        "surnames": list(SURNAMES), "initials": INITIALS,
        "els_region": spec.region[:2] if spec.region[:2].isdigit() else "00",
        "opened_at": installed, "installed_at": installed, "norms_from": date(2020, 1, 1),
        "town_address": f"{spec.region_name}, г. {spec.town}, ул. Ленина, д. 1",
        "ids": [f"{spec.prefix.lower()}-{role}" for role, _, _ in PROVIDERS],
        "names": [name for _, name, _ in PROVIDERS],
        "services": [str(s) for s in services],
        "service_providers": [providers[s] for s in services],
        "fixed": spec.services != MIX,
        "n_service": [n[0] for n in NORMS], "n_scope": [n[1] for n in NORMS],
        "n_basis": [n[2] for n in NORMS], "n_quantity": [n[3] for n in NORMS],
        "n_unit": [n[4] for n in NORMS],
    }


async def put_prices_and_norms(conn: psycopg.AsyncConnection[Any], spec: TownSpec) -> None:
    """The town's prices (its providers' tariff books, from its first month) and its region's
    norms; what exists already is left as it is."""
    await _execute(conn, (_NORMS,), _params(spec))
    await load_town_books(conn, spec)


async def _execute(conn: psycopg.AsyncConnection[Any], steps: tuple[LiteralString, ...],
                   params: dict[str, Any]) -> None:
    for step in steps:
        for statement in step.split(";\n"):
            await conn.execute(statement, params)


async def generate_town(conn: psycopg.AsyncConnection[Any], spec: TownSpec) -> Town:
    """Generate ``spec``'s town in one transaction on ``conn``; accounts that exist already
    are left as they are (so generating a town twice adds nothing)."""
    params = _params(spec)
    steps: tuple[LiteralString, ...] = (
        _HOUSES, _CITIES, _ACCOUNTS, _PROVIDERS, _SERVICES, _METERS, _HOUSE_METERS, _NORMS,
        _BENEFITS)
    async with conn.transaction():
        await conn.execute(_RAND)
        await _execute(conn, steps, params)
        await load_town_books(conn, spec)
        cur = await conn.execute(_COUNTS)
        counts = await cur.fetchone()
        assert counts is not None
        cur = await conn.execute(
            "SELECT count(*) FROM readings WHERE meter_id LIKE %s", (spec.prefix + "%",))
        (readings,) = await cur.fetchone() or (0,)
    accounts, houses, meters, house_meters = counts
    return Town(spec, accounts, houses, meters, house_meters, readings,
                provider_ids(spec.prefix))
