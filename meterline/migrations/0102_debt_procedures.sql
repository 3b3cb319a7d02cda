-- The statutory sequence for a debt (DOMAIN.md §7), one per account, provider and service at a
-- time: notice -> restriction -> suspension, or closed (paid, agreed, never to be restricted).
CREATE TABLE debt_procedures (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     text NOT NULL REFERENCES accounts,
    provider_id    text NOT NULL REFERENCES providers,
    service        text NOT NULL,
    policy         text NOT NULL
                   CHECK (policy IN ('statutory', 'notice_then_restrict', 'prepay_cutoff')),
    stage          text NOT NULL DEFAULT 'notice'
                   CHECK (stage IN ('notice', 'restricted', 'suspended', 'closed')),
    debt           numeric(18, 2) NOT NULL,     -- overdue when it started
    started_at     timestamptz NOT NULL,
    notice_key     text NOT NULL REFERENCES notices (key),
    restricted_at  timestamptz,
    suspended_at   timestamptz,
    closed_at      timestamptz,
    closed_why     text
);
CREATE UNIQUE INDEX debt_procedures_open ON debt_procedures (account_id, provider_id, service)
    WHERE stage <> 'closed';

-- Repayment (instalment) agreements: while one is kept, its debt gets no reminder and no
-- penalty beyond what the agreement says (parts: [{"due": "YYYY-MM-DD", "amount": "..."}]).
CREATE TABLE instalment_agreements (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts,
    provider_id  text NOT NULL REFERENCES providers,
    signed_on    date NOT NULL,
    debt         numeric(18, 2) NOT NULL CHECK (debt > 0),
    parts        jsonb NOT NULL,
    grace_days   integer NOT NULL DEFAULT 0 CHECK (grace_days >= 0),
    status       text NOT NULL DEFAULT 'kept' CHECK (status IN ('kept', 'broken', 'completed'))
);
CREATE INDEX instalment_agreements_account ON instalment_agreements (account_id, provider_id);

-- How far the notifier has read the events outbox.
CREATE TABLE notice_cursors (
    name     text PRIMARY KEY,
    last_id  bigint NOT NULL DEFAULT 0
);
