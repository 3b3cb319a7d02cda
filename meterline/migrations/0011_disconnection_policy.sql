-- The disconnection policy (README "The money model", DOMAIN §7, §8): what a prepaid account's
-- running out of money leads to is data, per contract type, never code.
--
-- A policy's `rule`:
--   prepay_cutoff         the meters are cut when the balance reaches the plan's negative limit
--                         (within the friendly hours), reconnected when it is above it again;
--   notice_then_restrict  a business contract: a notice when the balance reaches the limit,
--                         a restriction (the relay opened) `notice_days` later if still unpaid;
--   statutory             the §7 procedure, the default for Russian households: warnings and
--                         a notice, restriction only `notice_days` (20) after the notice, never
--                         of heating nor of cold water in an apartment building.
CREATE TABLE disconnection_policies (
    code              text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,63}$'),
    rule              text NOT NULL
                      CHECK (rule IN ('prepay_cutoff', 'notice_then_restrict', 'statutory')),
    -- days from the notice to the restriction (0 for a cut-off)
    notice_days       integer NOT NULL DEFAULT 0 CHECK (notice_days >= 0),
    -- friendly hours, in the account's time zone: a cut happens only from `friendly_from` to
    -- `friendly_until` (NULL: at any hour), and with `working_days_only` never on a weekend or
    -- a public holiday (the country's calendar, overridden per region by `holiday_overrides`)
    friendly_from     time,
    friendly_until    time,
    working_days_only boolean NOT NULL DEFAULT true,
    -- low-balance warnings: one `low_balance` event each time the balance falls below one
    low_balance       numeric(18, 2)[] NOT NULL DEFAULT '{}',
    -- a `credit_days` event when the forecast days of credit left fall to this (NULL: never);
    -- the forecast averages the daily charges of the last `forecast_days` days
    credit_days       integer CHECK (credit_days > 0),
    forecast_days     integer NOT NULL DEFAULT 7 CHECK (forecast_days BETWEEN 1 AND 90),
    -- emergency credit a subscriber may take once while it is not repaid (0: none)
    emergency_credit  numeric(18, 2) NOT NULL DEFAULT 0 CHECK (emergency_credit >= 0),
    -- percent of each top-up that repays what is owed in the `recovery` book
    recovery_percent  numeric(5, 2) NOT NULL DEFAULT 0
                      CHECK (recovery_percent BETWEEN 0 AND 100),
    description       text NOT NULL DEFAULT '',
    CHECK ((friendly_from IS NULL) = (friendly_until IS NULL)),
    CHECK (friendly_from IS NULL OR friendly_from < friendly_until)
);

INSERT INTO disconnection_policies (code, rule, notice_days, friendly_from, friendly_until,
                                    low_balance, credit_days, emergency_credit,
                                    recovery_percent, description)
VALUES
    ('prepay_cutoff', 'prepay_cutoff', 0, '09:00', '16:00', '{100, 30}', 3, 200, 25,
     'cut at the negative limit on working days 09:00-16:00; emergency credit 200, repaid '
     'by 25 % of each top-up'),
    ('business', 'notice_then_restrict', 10, '09:00', '16:00', '{1000}', 5, 0, 0,
     'notice at the negative limit, restriction 10 days later on working days 09:00-16:00'),
    ('household', 'statutory', 20, '09:00', '16:00', '{100}', 3, 300, 25,
     '§7 procedure: warnings and a notice, restriction 20 days after the notice, never of '
     'heating nor of cold water in an apartment building');

CREATE TABLE contract_types (
    code    text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,63}$'),
    name    text NOT NULL,
    policy  text NOT NULL REFERENCES disconnection_policies
);
INSERT INTO contract_types (code, name, policy) VALUES
    ('household', 'Household (Russia): decree 354', 'household'),
    ('business', 'Business supply contract: decree 442', 'business'),
    ('prepay_cutoff', 'Prepayment with cut-off (STS-style prepay meters)', 'prepay_cutoff');

-- Every account has a contract type; a household's is the lawful default.
ALTER TABLE accounts
    ADD COLUMN contract_type text NOT NULL DEFAULT 'household' REFERENCES contract_types;

-- The country whose public holidays the address keeps (ISO 3166 code, as the `holidays`
-- library names it), and per-region days that differ from that calendar: `day_off` true adds a
-- day off (a regional holiday), false makes a listed day or a weekend a working day.
ALTER TABLE addresses ADD COLUMN country text NOT NULL DEFAULT 'RU' CHECK (country ~ '^[A-Z]{2}$');
CREATE TABLE holiday_overrides (
    region   text NOT NULL,            -- as in addresses.region
    day      date NOT NULL,
    day_off  boolean NOT NULL,
    reason   text NOT NULL DEFAULT '',
    PRIMARY KEY (region, day)
);

-- A cut that is due but waits: for the notice period, or for the friendly hours. The relay
-- job (the bridge's relay delivery loop) decides again at `not_before`. One per account and
-- provider; gone when the balance is back above the limit or when the cut was made.
CREATE TABLE disconnections_due (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    since        timestamptz NOT NULL,   -- when the balance reached the limit (the notice)
    not_before   timestamptz NOT NULL,   -- the earliest moment the cut may be made
    rule         text NOT NULL,
    PRIMARY KEY (account_id, provider_id),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);
CREATE INDEX disconnections_due_when ON disconnections_due (not_before);

-- Warnings told once per crossing: an alert (`low_balance:100.00`, `credit_days`,
-- `limit`) is armed while the account is above it; falling below fires it once (the event's
-- key carries `crossing`), rising above again arms it for the next crossing.
CREATE TABLE balance_alerts (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    alert        text NOT NULL,
    crossing     integer NOT NULL DEFAULT 0,
    armed        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (account_id, provider_id, alert),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);

-- What an account was charged per day (usage and standing charges, net of nothing: the
-- forecast of days of credit left averages it), moved with the postings like the balances.
CREATE TABLE daily_spend (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    day          date NOT NULL,          -- UTC day of the entry's booked_at
    amount       numeric(28, 12) NOT NULL,
    PRIMARY KEY (account_id, provider_id, day)
);

CREATE FUNCTION postings_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_spend AS d (account_id, provider_id, day, amount)
    SELECT p.account_id, p.provider_id, (e.booked_at AT TIME ZONE 'UTC')::date, -sum(p.amount)
      FROM new_postings p JOIN entries e ON e.id = p.entry_id
     WHERE p.book = 'subscriber' AND e.kind IN ('usage', 'standing_charge')
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (account_id, provider_id, day) DO UPDATE SET amount = d.amount + excluded.amount;
    RETURN NULL;
END
$$;
CREATE TRIGGER postings_spend AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION postings_spend();

-- The `recovery` book: what a subscriber owes outside the wallet (emergency credit taken),
-- repaid by a share of each later top-up. Emergency credit e: `subscriber +e, recovery -e`;
-- a recovery r from a top-up: `subscriber -r, recovery +r`. Its postings name the account.
ALTER TABLE postings DROP CONSTRAINT postings_book_check;
ALTER TABLE postings ADD CONSTRAINT postings_book_check
    CHECK (book IN ('subscriber', 'revenue', 'clearing', 'discounts', 'penalties', 'payable',
                    'commission', 'opening', 'recovery'));
CREATE INDEX postings_recovery ON postings (account_id, provider_id) WHERE book = 'recovery';

-- The journal's recent usage, for forecasts made right after this migration.
INSERT INTO daily_spend (account_id, provider_id, day, amount)
SELECT p.account_id, p.provider_id, (e.booked_at AT TIME ZONE 'UTC')::date, -sum(p.amount)
  FROM postings p JOIN entries e ON e.id = p.entry_id
 WHERE p.book = 'subscriber' AND e.kind IN ('usage', 'standing_charge')
   AND e.booked_at > now() - interval '90 days'
 GROUP BY 1, 2, 3;
