-- Standing charges booked (`meterline tariffs standing-charges --day D`): one per account,
-- provider, service and local day, so running the command again books nothing twice. The
-- money is in the entry that booked it (subscriber -x, revenue +x in the day's period, or the
-- first open period after it when that one is closed).
CREATE TABLE standing_charges (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    service      text NOT NULL,
    day          date NOT NULL,
    plan_id      bigint NOT NULL REFERENCES tariff_plans,
    version_id   bigint NOT NULL REFERENCES tariff_versions,
    amount       numeric(28, 12) NOT NULL CHECK (amount > 0),
    period       date NOT NULL CHECK (extract(day FROM period) = 1),
    entry_id     bigint NOT NULL,  -- the entry that booked it (posted in the same transaction)
    booked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, provider_id, service, day),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);
CREATE INDEX standing_charges_entry ON standing_charges (entry_id);
