-- Who sells, who pays, where, and through which meters.
-- A personal account (лицевой счёт) is on an address, has meters of several utilities and a
-- balance with each provider it buys from (a housing account pays several providers).

CREATE TABLE providers (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        text NOT NULL,
    inn         text CHECK (inn ~ '^[0-9]{10}([0-9]{2})?$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE addresses (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region      text NOT NULL,               -- region code or name; bill runs group by it
    full_text   text NOT NULL,
    time_zone   text NOT NULL DEFAULT 'Europe/Moscow'
);

CREATE TABLE accounts (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9-]{1,32}$'),
    address_id    bigint NOT NULL REFERENCES addresses,
    holder_name   text NOT NULL,
    billing_mode  text NOT NULL CHECK (billing_mode IN ('prepaid', 'postpaid')),
    opened_at     timestamptz NOT NULL DEFAULT now()
);

-- The balance of one account with one provider. Positive: the account has credit.
-- Kept equal to the sum of that pair's ledger entries (see the ledger view), in the same
-- transaction as the entries.
CREATE TABLE balances (
    account_id   text NOT NULL REFERENCES accounts,
    provider_id  text NOT NULL REFERENCES providers,
    amount       numeric(28, 12) NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, provider_id)
);

CREATE TABLE meters (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),  -- serial number
    account_id    text NOT NULL,
    provider_id   text NOT NULL,
    utility       text NOT NULL CHECK (utility IN ('electricity', 'water', 'gas', 'heat')),
    model         text NOT NULL,
    gateway_id    text NOT NULL,
    has_relay     boolean NOT NULL DEFAULT false,
    -- the relay state meterline last commanded; relay_commands tracks delivery
    relay_state   text NOT NULL DEFAULT 'connected'
                  CHECK (relay_state IN ('connected', 'disconnected')),
    installed_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);
CREATE INDEX meters_account ON meters (account_id);

CREATE TABLE registers (
    meter_id  text NOT NULL REFERENCES meters ON DELETE CASCADE,
    code      text NOT NULL,                 -- active_import, volume, heat_energy
    unit      text NOT NULL CHECK (unit IN ('kWh', 'm3', 'Gcal')),
    PRIMARY KEY (meter_id, code)
);

-- Price per unit of a provider's utility over a validity period [valid_from, valid_to).
-- Zones, bands and consumer groups extend this table later.
CREATE TABLE tariffs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id  text NOT NULL REFERENCES providers,
    utility      text NOT NULL CHECK (utility IN ('electricity', 'water', 'gas', 'heat')),
    unit         text NOT NULL CHECK (unit IN ('kWh', 'm3', 'Gcal')),
    price        numeric(18, 6) NOT NULL CHECK (price >= 0),
    currency     text NOT NULL DEFAULT 'RUB',
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX tariffs_lookup ON tariffs (provider_id, utility, valid_from);
