-- The journal's bulk path for a million postings (README "The money model"; BENCHMARKS.md
-- "Penalty accrual").
--
-- A bulk entry (a day's penalties, a bill run's chunk, a rating batch) has a subscriber posting
-- per account. After 0120 its statement still paid, per posting: the foreign-key trigger of
-- `meter_id` (queued and fired for every row, NULL or not), a hash of every (entry, provider,
-- account) to check the references, a copy of every balance row before and after into the
-- transition tables of the balances' guard, and the spend trigger's join of every posting to
-- its entry. The same guarantees, for less:
--
-- - One pass per (entry, provider) proves that each entry balances and names an existing
--   entry and provider; the accounts of subscriber postings are proven by the balance rows
--   they move (balances reference accounts and providers, and are never deleted); only
--   postings of other books naming an account, and postings naming a meter (rare, few), are
--   looked up one by one. A subscriber posting of an unknown account is refused with the same
--   message as before.
-- - A meter named by the journal is kept like an account or a provider (a row trigger on the
--   rare delete or change of id, not a foreign key checked on every posting).
-- - The balances' guard against direct writes copies no row: an update of an amount from
--   outside the postings trigger is refused as a statement, an insert of a non-zero amount
--   by a row trigger whose WHEN clause lets the postings trigger's own writes through.
-- - The spend per day (`daily_spend`) is moved only by statements that post usage or standing
--   charges, in the same trigger (one function, no second pass for other entries).
-- - The trigger sorts and hashes in memory (work_mem of its own): a million postings no longer
--   spill to disk; and it compiles nothing (no JIT: seconds of compiling for plans run once).

ALTER TABLE postings DROP CONSTRAINT postings_meter_id_fkey;

DROP TRIGGER postings_spend ON postings;
DROP FUNCTION postings_spend();

CREATE OR REPLACE FUNCTION postings_inserted() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '256MB' SET jit = off AS $$
DECLARE
    c record;
    bad record;
    hashjoin text;
    mergejoin text;
    hashagg text;
BEGIN
    -- per entry and provider: few rows however many postings
    WITH per_provider AS MATERIALIZED (
        SELECT entry_id, provider_id, sum(amount) AS total
          FROM new_postings GROUP BY entry_id, provider_id
    ), per_entry AS MATERIALIZED (
        SELECT g.entry_id, sum(g.total) AS total, e.id IS NOT NULL AS known, e.kind
          FROM per_provider g LEFT JOIN entries e ON e.id = g.entry_id
         GROUP BY g.entry_id, e.id, e.kind
    )
    SELECT u.entry_id AS unbalanced, u.total AS unbalanced_by,
           (SELECT entry_id FROM per_entry WHERE NOT known ORDER BY entry_id LIMIT 1)
               AS no_entry,
           p.entry_id AS provider_of, p.provider_id AS no_provider,
           EXISTS (SELECT 1 FROM per_entry WHERE kind IN ('usage', 'standing_charge'))
               AS spends
      INTO c
      FROM (SELECT 1) one
      LEFT JOIN LATERAL (SELECT entry_id, total FROM per_entry WHERE total <> 0
                          ORDER BY entry_id LIMIT 1) u ON true
      LEFT JOIN LATERAL (SELECT g.entry_id, g.provider_id FROM per_provider g
                          WHERE NOT EXISTS (SELECT 1 FROM providers p
                                             WHERE p.id = g.provider_id)
                          ORDER BY g.entry_id LIMIT 1) p ON true;
    IF c.unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'entry % does not balance: its postings sum to %',
                        c.unbalanced, c.unbalanced_by
              USING ERRCODE = 'check_violation';
    END IF;
    IF c.no_entry IS NOT NULL THEN
        RAISE EXCEPTION 'a posting of entry % names no entry', c.no_entry
              USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF c.no_provider IS NOT NULL THEN
        RAISE EXCEPTION 'a posting of entry % names an unknown provider %',
                        c.provider_of, c.no_provider
              USING ERRCODE = 'foreign_key_violation';
    END IF;

    -- the rare postings an account or meter is looked up for
    SELECT n.entry_id,
           CASE WHEN n.meter_id IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM meters m WHERE m.id = n.meter_id)
                THEN format('an unknown meter %s', n.meter_id)
                ELSE format('an unknown account %s', n.account_id) END AS named
      INTO bad
      FROM new_postings n
     WHERE (n.meter_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM meters m WHERE m.id = n.meter_id))
        OR (n.book <> 'subscriber' AND n.account_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = n.account_id))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a posting of entry % names %', bad.entry_id, bad.named
              USING ERRCODE = 'foreign_key_violation';
    END IF;

    -- The balances move in (account, provider) order, so concurrent posters lock them in one
    -- order and never deadlock (sorted by bytes, "C": the order of the database's C.UTF-8
    -- collation and of the balances' key, without its costly comparisons); an update walking
    -- the statement's sums in that order (summed as they come sorted, no hash), each
    -- balance found by its key (a nested loop: planned so whatever the estimates), then the
    -- pairs without a balance row yet inserted (their accounts proven by its foreign key; a
    -- row another poster inserted meanwhile takes the amount by the upsert).
    hashjoin := current_setting('enable_hashjoin');
    mergejoin := current_setting('enable_mergejoin');
    hashagg := current_setting('enable_hashagg');
    PERFORM set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
            set_config('enable_hashagg', 'off', true);
    BEGIN
        WITH sums AS MATERIALIZED (
            SELECT (account_id COLLATE "C") COLLATE "default" AS account_id,
                   (provider_id COLLATE "C") COLLATE "default" AS provider_id,
                   sum(amount) AS amount
              FROM new_postings
             WHERE book = 'subscriber'
             GROUP BY account_id COLLATE "C", provider_id COLLATE "C"
             ORDER BY account_id COLLATE "C", provider_id COLLATE "C"
        ), moved AS (
            UPDATE balances b SET amount = b.amount + s.amount, updated_at = now()
              FROM sums s
             WHERE b.account_id = s.account_id AND b.provider_id = s.provider_id
            RETURNING b.account_id, b.provider_id
        )
        INSERT INTO balances AS b (account_id, provider_id, amount, updated_at)
        SELECT s.account_id, s.provider_id, s.amount, now()
          FROM sums s
         WHERE (SELECT count(*) FROM moved) < (SELECT count(*) FROM sums)
           AND NOT EXISTS (SELECT 1 FROM moved m WHERE m.account_id = s.account_id
                                                   AND m.provider_id = s.provider_id)
         ORDER BY s.account_id, s.provider_id
        ON CONFLICT (account_id, provider_id)
        DO UPDATE SET amount = b.amount + excluded.amount, updated_at = excluded.updated_at;
    EXCEPTION WHEN foreign_key_violation THEN
        SELECT n.entry_id, n.account_id INTO bad
          FROM new_postings n
         WHERE n.book = 'subscriber'
           AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = n.account_id)
         ORDER BY n.entry_id LIMIT 1;
        RAISE EXCEPTION 'a posting of entry % names an unknown account %',
                        bad.entry_id, bad.account_id
              USING ERRCODE = 'foreign_key_violation';
    END;
    PERFORM set_config('enable_hashjoin', hashjoin, true),
            set_config('enable_mergejoin', mergejoin, true),
            set_config('enable_hashagg', hashagg, true);

    IF c.spends THEN
        INSERT INTO daily_spend AS d (account_id, provider_id, day, amount)
        SELECT p.account_id, p.provider_id, (e.booked_at AT TIME ZONE 'UTC')::date,
               -sum(p.amount)
          FROM new_postings p JOIN entries e ON e.id = p.entry_id
         WHERE p.book = 'subscriber' AND e.kind IN ('usage', 'standing_charge')
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3
        ON CONFLICT (account_id, provider_id, day)
        DO UPDATE SET amount = d.amount + excluded.amount;
    END IF;
    RETURN NULL;
END
$$;

-- What the journal names stays: an account, provider or meter with postings keeps its id.
CREATE OR REPLACE FUNCTION named_by_the_journal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id) AND EXISTS (SELECT 1 FROM postings
                WHERE CASE TG_TABLE_NAME WHEN 'accounts' THEN account_id
                                         WHEN 'meters' THEN meter_id
                                         ELSE provider_id END = OLD.id) THEN
        RAISE EXCEPTION '% % is named by the journal: it cannot be deleted or renamed',
                        rtrim(TG_TABLE_NAME, 's'), OLD.id
              USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER meters_named_by_the_journal BEFORE DELETE OR UPDATE OF id ON meters
    FOR EACH ROW EXECUTE FUNCTION named_by_the_journal();

-- Balances move only through postings: a direct write of an amount is refused. The postings
-- trigger writes at trigger depth 1, anyone else's statement at depth 0. An update naming the
-- amount (or a balance's key) is refused as a statement, before it touches a row; an insert
-- of a row that does not start at zero is refused by a row trigger whose WHEN clause costs the
-- postings trigger's upsert nothing (no call, no row copied).
DROP TRIGGER balances_inserted ON balances;
DROP TRIGGER balances_updated ON balances;
DROP FUNCTION balances_inserted();
DROP FUNCTION balances_updated();
CREATE FUNCTION balances_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM balances_refuse_direct_writes();
    RETURN NULL;
END
$$;
CREATE TRIGGER balances_inserted BEFORE INSERT ON balances FOR EACH ROW
    WHEN (NEW.amount <> 0 AND pg_trigger_depth() < 1)
    EXECUTE FUNCTION balances_written();
CREATE TRIGGER balances_updated BEFORE UPDATE OF account_id, provider_id, amount ON balances
    FOR EACH STATEMENT WHEN (pg_trigger_depth() < 1)
    EXECUTE FUNCTION balances_written();
