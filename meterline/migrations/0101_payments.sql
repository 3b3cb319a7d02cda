-- Payments in (issue 8): what a payment was, where it came from, and the terms a provider
-- set; the money itself is in the journal (entries and postings), one entry per payment.

-- Who owes sets the penalty tiers (DOMAIN.md §1): citizen, housing_org (УК, ТСЖ, ЖСК), other.
ALTER TABLE accounts ADD COLUMN payer_group text NOT NULL DEFAULT 'citizen'
    CHECK (payer_group IN ('citizen', 'housing_org', 'other'));

-- Per provider: the day of the next month a month's charge is due (the management contract
-- may set another than the 10th), and the collecting agent's commission.
CREATE TABLE payment_terms (
    provider_id         text PRIMARY KEY REFERENCES providers,
    due_day             integer NOT NULL DEFAULT 10 CHECK (due_day BETWEEN 1 AND 31),
    commission_percent  numeric(6, 4) NOT NULL DEFAULT 0
                        CHECK (commission_percent >= 0 AND commission_percent < 100),
    agreement           text NOT NULL DEFAULT ''   -- the agency agreement, for the transfer
);

-- A bank registry imported: the same file (by its digest) is never imported twice.
CREATE TABLE registries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest       text NOT NULL UNIQUE,
    layout       text NOT NULL,
    file_name    text NOT NULL,
    number       text,
    payments     integer NOT NULL,     -- lines in the file
    total        numeric(18, 2) NOT NULL,
    posted       integer NOT NULL,     -- payments posted now
    imported_at  timestamptz NOT NULL DEFAULT now()
);

-- Lines of a registry that were refused, with the reason: money that arrived but is not
-- applied until an operator sorts it out.
CREATE TABLE registry_refusals (
    registry_id  bigint NOT NULL REFERENCES registries,
    line         integer NOT NULL,
    reason       text NOT NULL,
    text         text NOT NULL,
    amount       numeric(18, 2),
    PRIMARY KEY (registry_id, line)
);

-- Every payment, whatever its channel, and the journal entry that moved its money.
CREATE TABLE payments (
    key          text PRIMARY KEY,          -- natural key, also the entry's key
    channel      text NOT NULL CHECK (channel IN ('online', 'registry', 'cash')),
    account_id   text NOT NULL REFERENCES accounts,
    amount       numeric(18, 2) NOT NULL CHECK (amount > 0),
    paid_at      timestamptz NOT NULL,
    period       date,                      -- the period the payer named
    provider_id  text REFERENCES providers, -- a prepaid top-up naming its provider
    registry_id  bigint REFERENCES registries,
    line         integer,
    entry_id     bigint NOT NULL REFERENCES entries,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_account ON payments (account_id, paid_at);

-- Penalties accrued per unpaid charge (the penalties register): the total accrued on the
-- charge of (account, provider, service, period) as of a day, and the entry that posted the
-- difference from the previous accrual.
CREATE TABLE penalty_accruals (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    service      text NOT NULL,
    period       date NOT NULL,
    as_of        date NOT NULL,
    principal    numeric(18, 2) NOT NULL,   -- unpaid on that day
    total        numeric(18, 2) NOT NULL,   -- penalty accrued on the charge up to that day
    entry_id     bigint NOT NULL,   -- the penalty entry (no foreign key: written in bulk)
    PRIMARY KEY (account_id, provider_id, service, period, as_of)
);
CREATE INDEX penalty_accruals_day ON penalty_accruals (as_of);

-- The latest accrued total per charge (what the next accrual posts the difference from).
CREATE TABLE penalty_totals (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    service      text NOT NULL,
    period       date NOT NULL,
    as_of        date NOT NULL,
    total        numeric(18, 2) NOT NULL,
    PRIMARY KEY (account_id, provider_id, service, period)
);

-- Settlement with a provider: what the channels collected for it up to a cut-off, the
-- agent's commission, the transfer due; exported as a 1CClientBankExchange file.
CREATE TABLE settlements (
    provider_id  text NOT NULL REFERENCES providers,
    period       date NOT NULL CHECK (period = date_trunc('month', period)::date),
    collected    numeric(18, 2) NOT NULL,
    commission   numeric(18, 2) NOT NULL,
    transfer     numeric(18, 2) NOT NULL,
    entry_id     bigint NOT NULL REFERENCES entries,
    settled_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, period)
);

-- The day a month's charge is due: the provider's due day of the next month (the month's last
-- day if it is shorter).
CREATE FUNCTION charge_due(period date, due_day integer) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (period + interval '1 month')::date
       + (least(due_day, extract(day FROM period + interval '2 months - 1 day')::integer) - 1);
