-- Money. Entries are append-only and idempotent on their natural keys:
--   a usage charge on (meter, register, interval end), a top-up on (account, idempotency key).

-- Where rating stands on each register: the last reading it priced.
CREATE TABLE register_state (
    meter_id    text NOT NULL,
    register    text NOT NULL,
    last_ts     timestamptz NOT NULL,
    last_value  numeric(20, 6) NOT NULL,
    PRIMARY KEY (meter_id, register)
);

CREATE TABLE charges (
    meter_id        text NOT NULL REFERENCES meters,
    register        text NOT NULL,
    interval_start  timestamptz NOT NULL,
    interval_end    timestamptz NOT NULL,
    quantity        numeric(20, 6) NOT NULL CHECK (quantity >= 0),
    unit            text NOT NULL,
    tariff_id       bigint NOT NULL REFERENCES tariffs,
    unit_price      numeric(18, 6) NOT NULL,
    amount          numeric(28, 12) NOT NULL,     -- exact: quantity x unit_price
    account_id      text NOT NULL,
    provider_id     text NOT NULL,
    rated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, register, interval_end),
    CHECK (interval_end > interval_start)
);
CREATE INDEX charges_account ON charges (account_id, interval_end);

CREATE TABLE topups (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id       text NOT NULL REFERENCES accounts,
    provider_id      text NOT NULL,
    amount           numeric(28, 12) NOT NULL CHECK (amount > 0),
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, idempotency_key),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);

-- The ledger: every movement of money on an account, signed (+ credit, - debit).
-- balances.amount = sum(ledger.amount) per (account, provider).
CREATE VIEW ledger AS
    SELECT account_id, provider_id, 'usage'::text AS kind, -amount AS amount,
           interval_end AS booked_at,
           meter_id || '/' || register || '/' || interval_end::text AS entry_key
      FROM charges
    UNION ALL
    SELECT account_id, provider_id, 'topup', amount, received_at, idempotency_key
      FROM topups;
