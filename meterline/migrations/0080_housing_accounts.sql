-- Housing accounts (issue 7): where a personal account is (region -> city -> street -> house
-- -> apartment), what it is billed on (area, registered residents, benefits), which provider
-- sells which service on it, the houses' own meters, and the consumption norms.
-- The pipeline's tables keep working: an account still has its `addresses` row (display text,
-- region, time zone); `premises_id` adds the structured address beside it.

CREATE TABLE regions (
    code       text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,16}$'),  -- subject code: 77, 50
    name       text NOT NULL,
    time_zone  text NOT NULL DEFAULT 'Europe/Moscow'
);

CREATE TABLE cities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_code  text NOT NULL REFERENCES regions,
    name         text NOT NULL,
    UNIQUE (region_code, name)
);

CREATE TABLE streets (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    city_id  bigint NOT NULL REFERENCES cities,
    name     text NOT NULL,
    UNIQUE (city_id, name)
);

CREATE TABLE houses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    street_id    bigint NOT NULL REFERENCES streets,
    number       text NOT NULL,
    -- m² of the premises of the house (the divisor of area splits); NULL: the sum of the
    -- areas of the accounts on the books
    total_area   numeric(12, 2) CHECK (total_area > 0),
    -- m² of common property (stairs, basements): what common-property norms are per
    common_area  numeric(12, 2) NOT NULL DEFAULT 0 CHECK (common_area >= 0),
    UNIQUE (street_id, number)
);

CREATE TABLE premises (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    house_id  bigint NOT NULL REFERENCES houses,
    number    text NOT NULL,                     -- apartment number
    UNIQUE (house_id, number)
);

ALTER TABLE accounts
    ADD COLUMN premises_id  bigint REFERENCES premises,
    -- unified account number of the state housing system (ЕЛС), 10 characters
    ADD COLUMN els          text UNIQUE CHECK (els ~ '^[0-9A-ZА-Я]{10}$'),
    ADD COLUMN area         numeric(10, 2) CHECK (area > 0),  -- m² the account pays for
    ADD COLUMN residents    integer NOT NULL DEFAULT 0 CHECK (residents >= 0);  -- registered
CREATE INDEX accounts_premises ON accounts (premises_id);

-- What a payment document and a payment QR need to know of a payee.
ALTER TABLE providers
    ADD COLUMN kpp                 text CHECK (kpp ~ '^[0-9]{9}$'),
    ADD COLUMN bank_name           text CHECK (length(bank_name) <= 45),
    ADD COLUMN bic                 text CHECK (bic ~ '^[0-9]{9}$'),
    ADD COLUMN corr_account        text CHECK (corr_account ~ '^[0-9]{20}$'),
    ADD COLUMN settlement_account  text CHECK (settlement_account ~ '^[0-9]{20}$'),
    ADD COLUMN address             text,
    ADD COLUMN phone               text,
    ADD COLUMN email               text,
    ADD COLUMN website             text;

-- Which provider sells which service on an account, from when (date, inclusive) to when
-- (exclusive; NULL: still). The provider's balance on the account is its row in `balances`.
CREATE TABLE account_services (
    account_id   text NOT NULL REFERENCES accounts,
    service      text NOT NULL CHECK (service IN ('electricity', 'cold_water', 'hot_water',
                     'sewerage', 'gas', 'heating', 'waste', 'maintenance', 'capital_repair')),
    provider_id  text NOT NULL,
    valid_from   date NOT NULL,
    valid_to     date CHECK (valid_to > valid_from),
    PRIMARY KEY (account_id, service, valid_from),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);
CREATE INDEX account_services_provider ON account_services (provider_id, service);

-- Benefits (льготы): a share of one service's charge granted to an account, for a period.
CREATE TABLE account_benefits (
    account_id  text NOT NULL REFERENCES accounts,
    category    text NOT NULL CHECK (category ~ '^[a-z0-9_]{1,32}$'),  -- veteran, large_family
    service     text NOT NULL,
    share       numeric(5, 4) NOT NULL CHECK (share > 0 AND share <= 1),
    valid_from  date NOT NULL,
    valid_to    date CHECK (valid_to > valid_from),
    PRIMARY KEY (account_id, category, service, valid_from)
);

-- House meters (общедомовые приборы учёта). Their readings are rows of `readings` like any
-- meter's (register by utility: heat_energy, volume, active_import), usually source operator.
CREATE TABLE house_meters (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    house_id      bigint NOT NULL REFERENCES houses,
    utility       text NOT NULL
                  CHECK (utility IN ('electricity', 'cold_water', 'hot_water', 'gas', 'heat')),
    installed_at  timestamptz NOT NULL,
    UNIQUE (house_id, utility)
);

-- Consumption norms (нормативы) per region and service, data with validity dates:
-- individual ones per registered resident (water, electricity, gas) or per m² of the
-- account's area (heating), common-property ones (СОИ) per m² of the house's common area.
CREATE TABLE consumption_norms (
    region_code  text NOT NULL REFERENCES regions,
    service      text NOT NULL,
    scope        text NOT NULL CHECK (scope IN ('individual', 'common')),
    basis        text NOT NULL CHECK (basis IN ('resident', 'm2')),
    quantity     numeric(14, 6) NOT NULL CHECK (quantity >= 0),  -- per basis per month
    unit         text NOT NULL CHECK (unit IN ('kWh', 'm3', 'Gcal')),
    valid_from   date NOT NULL,
    valid_to     date CHECK (valid_to > valid_from),
    PRIMARY KEY (region_code, service, scope, valid_from)
);
