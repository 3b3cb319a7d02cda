-- Saved groups of accounts (issue 7): a name a bill run, documents and exports select by
-- (`meterline billrun --group NAME`), its members saved whole, replaced whole.
CREATE TABLE account_groups (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    description  text NOT NULL DEFAULT '',
    saved_by     text NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE account_group_members (
    group_name  text NOT NULL REFERENCES account_groups ON DELETE CASCADE,
    account_id  text NOT NULL REFERENCES accounts,
    PRIMARY KEY (group_name, account_id)
);
CREATE INDEX account_group_members_account ON account_group_members (account_id);
