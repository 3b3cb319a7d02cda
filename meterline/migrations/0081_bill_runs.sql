-- The monthly bill run (issue 7): prices of the services the bill run prices itself, the runs
-- with their chunks (progress, resumption), the lines of each account's bill (the detail a
-- payment document shows; the money is in the journal), and the volume found for each meter
-- in each period (what substitution and reconciliation rest on).

-- How many of the account's registered residents a benefit is for (the tariffs issue prices a
-- benefit from its benefit_rules, whose code is account_benefits.category).
ALTER TABLE account_benefits
    ADD COLUMN beneficiaries integer NOT NULL DEFAULT 1 CHECK (beneficiaries >= 1);

-- Prices of services not priced per meter unit by rating's `tariffs`: per m² (maintenance,
-- capital repair), per resident (waste), per m³ of sewerage; data with validity dates.
-- Until the tariff model of the tariffs issue lands, this and `tariffs` are the price table
-- the bill run reads, through bill_prices() only.
CREATE TABLE service_prices (
    provider_id  text NOT NULL REFERENCES providers,
    service      text NOT NULL CHECK (service IN ('electricity', 'cold_water', 'hot_water',
                     'sewerage', 'gas', 'heating', 'waste', 'maintenance', 'capital_repair')),
    unit         text NOT NULL CHECK (unit IN ('m2', 'person', 'm3', 'kWh', 'Gcal')),
    price        numeric(18, 6) NOT NULL CHECK (price >= 0),
    valid_from   date NOT NULL,
    valid_to     date CHECK (valid_to > valid_from),
    PRIMARY KEY (provider_id, service, valid_from)
);

-- Every price of a period: one row per (provider, service), in force on the period's first
-- day. Metered utilities take rating's tariff of the same provider and utility (the same
-- tariff a gateway meter's consumption is rated with); the rest take service_prices.
CREATE FUNCTION bill_prices(period date)
RETURNS TABLE (provider_id text, service text, unit text, price numeric, tariff_ref text)
LANGUAGE sql STABLE AS $$
    (SELECT DISTINCT ON (t.provider_id, t.utility)
           t.provider_id, CASE t.utility WHEN 'heat' THEN 'heating' ELSE t.utility END,
           t.unit, t.price, 'tariffs:' || t.id
      FROM tariffs t
     WHERE t.valid_from <= period::timestamptz
       AND (t.valid_to IS NULL OR t.valid_to > period::timestamptz)
     ORDER BY t.provider_id, t.utility, t.valid_from DESC)
    UNION ALL
    (SELECT DISTINCT ON (s.provider_id, s.service)
           s.provider_id, s.service, s.unit, s.price,
           'service_prices:' || s.provider_id || ':' || s.service || ':' || s.valid_from
      FROM service_prices s
     WHERE s.valid_from <= period AND (s.valid_to IS NULL OR s.valid_to > period)
     ORDER BY s.provider_id, s.service, s.valid_from DESC)
$$;

-- One run of the bill run: a period and a selection, who or what started it, its progress.
-- A run asked for through the API waits 'queued' until the scheduler service takes it.
CREATE TABLE bill_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period       date NOT NULL CHECK (period = date_trunc('month', period)::date),
    selection    jsonb NOT NULL DEFAULT '{}',     -- {"region": ..., "house": ..., ...}
    started_by   text NOT NULL,                   -- cli:<user>, scheduler:<job>, api:<caller>
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    accounts     integer NOT NULL DEFAULT 0,      -- selected
    billed       integer NOT NULL DEFAULT 0,      -- in chunks done
    changed      integer NOT NULL DEFAULT 0,      -- whose bill was (re)posted
    detail       text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX bill_runs_period ON bill_runs (period, id);
CREATE INDEX bill_runs_queued ON bill_runs (id) WHERE status = 'queued';

CREATE FUNCTION notify_bill_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bill_runs', NEW.id::text);
    RETURN NULL;
END
$$;
-- the scheduler hears of a queued run, watchers of a chunk done
CREATE TRIGGER bill_run_changed AFTER INSERT OR UPDATE OF status, billed ON bill_runs
    FOR EACH ROW EXECUTE FUNCTION notify_bill_runs();

-- The selected accounts of a run, cut into chunks of whole houses: each chunk is billed in
-- one transaction, so a run killed half-way resumes at the first chunk not done. What a run
-- prepares for its chunks (volumes of meters and houses) is in the schema bill_run_<id>,
-- dropped when the run is done.
CREATE TABLE bill_run_chunks (
    run_id    bigint NOT NULL REFERENCES bill_runs,
    chunk     integer NOT NULL,
    accounts  text[] NOT NULL,
    done_at   timestamptz,
    PRIMARY KEY (run_id, chunk)
);

-- The current bill of each account and period, line by line (individual and common-property
-- lines apart). Replaced whole when an open period is billed again; the journal keeps the
-- reversal and the repost. amount fields are kopecks (what the document shows and the
-- journal was posted). Written by the bill run alone, from accounts, providers and the run
-- it has just read: no foreign keys, whose checks row by row would double its cost.
CREATE TABLE bill_lines (
    period                date NOT NULL,
    account_id            text NOT NULL,
    service               text NOT NULL,
    common                boolean NOT NULL DEFAULT false,   -- common property (СОИ)
    provider_id           text NOT NULL,
    run_id                bigint NOT NULL,
    unit                  text NOT NULL,
    volume                numeric(20, 6),
    tariff                numeric(18, 6),
    tariff_ref            text,
    method                text NOT NULL,   -- meter, average, norm, reconciliation, house_meter,
                                           -- area, residents, rating
    charged               numeric(14, 2) NOT NULL DEFAULT 0,
    recalculation         numeric(14, 2) NOT NULL DEFAULT 0,
    recalculation_reason  text NOT NULL DEFAULT '',
    benefit               numeric(14, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (period, account_id, service, common)
);

-- The volumes billed without a reading (by the average or the norm), per meter and period:
-- when a reading comes back, real consumption since the last real reading minus these is
-- charged as a recalculation (DOMAIN §3).
CREATE TABLE meter_volumes (
    period      date NOT NULL,
    meter_id    text NOT NULL,
    account_id  text NOT NULL,
    volume      numeric(20, 6) NOT NULL,
    method      text NOT NULL CHECK (method IN ('average', 'norm')),
    PRIMARY KEY (meter_id, period)
);

-- The period a reading counts for (DOMAIN §3): readings up to the cutoff day of a month
-- (25: up to the 25th inclusive, in the account's time zone) count for that month, later
-- ones for the next.
CREATE FUNCTION reading_period(ts timestamptz, time_zone text, cutoff_day integer)
RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT (date_trunc('month', (ts AT TIME ZONE time_zone) - make_interval(days => cutoff_day))
            + interval '1 month')::date
$$;

-- Whole months from period b to period a (both first days of months).
CREATE FUNCTION months_between(a date, b date) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT ((extract(year FROM a) - extract(year FROM b)) * 12
            + extract(month FROM a) - extract(month FROM b))::integer
$$;
