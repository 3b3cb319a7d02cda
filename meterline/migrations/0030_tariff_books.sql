-- Tariff books (DOMAIN §4), loaded by `meterline tariffs load FILE` (meterline/tariffs/):
-- a provider's plans, each with versions valid from a local date, prices by zone x band x
-- consumer group; benefit rules; and each account's plan among its provider's plans.
-- A version is never edited once stored: a new one is added with a later valid_from.

CREATE TABLE tariff_plans (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id   text NOT NULL REFERENCES providers,
    code          text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    service       text NOT NULL CHECK (service IN ('electricity', 'cold_water', 'hot_water',
                      'sewerage', 'gas', 'heating', 'waste', 'maintenance', 'capital_repair')),
    -- the metered utility priced; NULL for area, residents and derived volumes
    utility       text CHECK (utility IN ('electricity', 'cold_water', 'hot_water', 'gas', 'heat')),
    -- one unit of the price: a metered unit, a m2 of area per month, a resident per month
    basis         text NOT NULL CHECK (basis IN ('kWh', 'm3', 'Gcal', 'm2', 'resident')),
    -- utilities whose metered volume the plan prices (sewerage: cold and hot water)
    derived_from  text[] NOT NULL DEFAULT '{}',
    -- the plan of the provider's accounts that chose none, for its service
    is_default    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider_id, code)
);
CREATE UNIQUE INDEX tariff_plans_one_default ON tariff_plans (provider_id, service)
    WHERE is_default;

CREATE TABLE tariff_versions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id             bigint NOT NULL REFERENCES tariff_plans,
    -- local dates: a version takes effect at midnight in each account's time zone, and is in
    -- force until valid_to or the next version's valid_from
    valid_from          date NOT NULL,
    valid_to            date,
    -- [{"name": "night", "windows": ["23:00-07:00"]}, ...] in zone order
    zones               jsonb NOT NULL,
    -- upper limits of every monthly volume band but the last (plan units per month)
    band_limits         numeric(20, 6)[] NOT NULL DEFAULT '{}',
    -- or one limit by registered residents (1, 2, 3 ... the last for more)
    social_norm         numeric(20, 6)[] NOT NULL DEFAULT '{}',
    -- coefficients of consumer groups against the base (urban) price: {"rural": "0.7"}
    group_coefficients  jsonb NOT NULL DEFAULT '{}',
    standing_charge     numeric(18, 6) NOT NULL DEFAULT 0 CHECK (standing_charge >= 0),
    negative_limit      numeric(18, 6) NOT NULL DEFAULT 0 CHECK (negative_limit <= 0),
    loaded_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plan_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- Price per unit of each version by zone, band (0 = the first) and consumer group: the base
-- price for urban, times the group's coefficient (half-up to 6 places) for the others.
CREATE TABLE tariff_prices (
    version_id      bigint NOT NULL REFERENCES tariff_versions,
    zone            text NOT NULL,
    band            smallint NOT NULL CHECK (band >= 0),
    consumer_group  text NOT NULL CHECK (consumer_group IN ('urban', 'rural', 'electric_stove')),
    price           numeric(18, 6) NOT NULL CHECK (price >= 0),
    PRIMARY KEY (version_id, zone, band, consumer_group)
);

-- A benefit on one service: percent of the beneficiaries' share within a norm each.
CREATE TABLE benefit_rules (
    provider_id  text NOT NULL REFERENCES providers,
    code         text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name         text NOT NULL,
    service      text NOT NULL,
    percent      numeric(9, 6) NOT NULL CHECK (percent > 0 AND percent <= 100),
    norm         numeric(20, 6) NOT NULL CHECK (norm > 0),
    norm_basis   text NOT NULL CHECK (norm_basis IN ('kWh', 'm3', 'Gcal', 'm2')),
    PRIMARY KEY (provider_id, code)
);

-- An account's plan for one service of one provider, from the first day of a billing period
-- (in the account's time zone). Without a row the provider's default plan applies.
CREATE TABLE account_plans (
    account_id      text NOT NULL,
    provider_id     text NOT NULL,
    service         text NOT NULL,
    valid_from      date NOT NULL,
    plan_id         bigint NOT NULL REFERENCES tariff_plans,
    consumer_group  text NOT NULL DEFAULT 'urban'
                    CHECK (consumer_group IN ('urban', 'rural', 'electric_stove')),
    chosen_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, provider_id, service, valid_from),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);

-- The skeleton's flat tariffs become a default flat plan per provider and utility, one
-- version per validity period (dates taken in Moscow time, the accounts' default zone).
CREATE TEMP TABLE legacy_tariffs ON COMMIT DROP AS
SELECT DISTINCT ON (provider_id, utility, (valid_from AT TIME ZONE 'Europe/Moscow')::date)
       provider_id, utility, unit, price,
       (valid_from AT TIME ZONE 'Europe/Moscow')::date AS valid_from,
       (valid_to AT TIME ZONE 'Europe/Moscow')::date AS valid_to
  FROM tariffs
 ORDER BY provider_id, utility, (valid_from AT TIME ZONE 'Europe/Moscow')::date, id DESC;

INSERT INTO tariff_plans (provider_id, code, name, service, utility, basis, is_default)
SELECT DISTINCT provider_id, 'flat-' || replace(utility, '_', '-'), 'Flat rate',
       CASE utility WHEN 'heat' THEN 'heating' ELSE utility END, utility, unit, true
  FROM legacy_tariffs;

INSERT INTO tariff_versions (plan_id, valid_from, valid_to, zones)
SELECT p.id, l.valid_from, CASE WHEN l.valid_to > l.valid_from THEN l.valid_to END,
       '[{"name": "all_day", "windows": ["00:00-24:00"]}]'
  FROM legacy_tariffs l
  JOIN tariff_plans p ON p.provider_id = l.provider_id AND p.utility = l.utility;

INSERT INTO tariff_prices (version_id, zone, band, consumer_group, price)
SELECT v.id, 'all_day', 0, g.consumer_group, l.price
  FROM legacy_tariffs l
  JOIN tariff_plans p ON p.provider_id = l.provider_id AND p.utility = l.utility
  JOIN tariff_versions v ON v.plan_id = p.id AND v.valid_from = l.valid_from
 CROSS JOIN (VALUES ('urban'), ('rural'), ('electric_stove')) AS g(consumer_group);
