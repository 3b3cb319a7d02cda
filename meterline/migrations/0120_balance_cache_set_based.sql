-- The balance cache and the journal's references, checked per statement instead of per row
-- (README "The money model"; BENCHMARKS.md "Booking").
--
-- A rating batch posts one subscriber posting per live account. Per posting, PostgreSQL ran
-- three foreign-key checks (entry, provider, account: one query each) and, for the balance it
-- moved, the row trigger `balances_move_by_postings`; together with the statement trigger
-- that moves the balances that was 94 us a posting on this machine (EXPLAIN ANALYZE in
-- BENCHMARKS.md). The same guarantees, set-based:
--
-- - Every entry balances, every posting names an existing entry, provider, account (and
--   meter: that foreign key stays, it is NULL on the bulk path and costs nothing there),
--   checked by `postings_inserted` over the statement's new postings (one join each).
-- - What a posting names is never taken away: entries are append-only (0010); accounts and
--   providers named by the journal refuse deletion and a change of id (row triggers on those
--   rare writes, not on postings); balance rows are never deleted.
-- - balances.amount = the sum of the pair's subscriber postings, moved in the statement that
--   inserts them, as before: one upsert of the statement's sums per pair, in (account,
--   provider) order, so concurrent posters lock balances in one order and never deadlock.
-- - A direct write of a balance amount is refused, by statement triggers over transition
--   tables instead of a row trigger.
-- - The rows rating and the journal rewrite on every batch (balances, register_state,
--   tariff_volumes, daily_spend) leave room on their pages for the new version (fillfactor),
--   so an update stays on its page and writes no index entry (a HOT update). Pages written
--   before this migration get the room when the table is rewritten (VACUUM FULL).

ALTER TABLE postings DROP CONSTRAINT postings_entry_id_fkey,
                     DROP CONSTRAINT postings_provider_id_fkey,
                     DROP CONSTRAINT postings_account_id_fkey;

CREATE OR REPLACE FUNCTION postings_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT entry_id, sum(amount) AS total INTO bad
      FROM new_postings GROUP BY entry_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % does not balance: its postings sum to %',
                        bad.entry_id, bad.total
              USING ERRCODE = 'check_violation';
    END IF;
    SELECT n.entry_id, n.provider_id, n.account_id,
           e.id IS NULL AS no_entry, p.id IS NULL AS no_provider INTO bad
      FROM (SELECT DISTINCT entry_id, provider_id, account_id FROM new_postings) n
      LEFT JOIN entries e ON e.id = n.entry_id
      LEFT JOIN providers p ON p.id = n.provider_id
      LEFT JOIN accounts a ON a.id = n.account_id
     WHERE e.id IS NULL OR p.id IS NULL OR (n.account_id IS NOT NULL AND a.id IS NULL)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a posting of entry % names %', bad.entry_id,
              CASE WHEN bad.no_entry THEN 'no entry'
                   WHEN bad.no_provider THEN format('an unknown provider %s', bad.provider_id)
                   ELSE format('an unknown account %s', bad.account_id) END
              USING ERRCODE = 'foreign_key_violation';
    END IF;

    -- in (account, provider) order: concurrent posters lock balances in the same order
    INSERT INTO balances AS b (account_id, provider_id, amount, updated_at)
    SELECT account_id, provider_id, sum(amount), now()
      FROM new_postings
     WHERE book = 'subscriber'
     GROUP BY account_id, provider_id
     ORDER BY account_id, provider_id
    ON CONFLICT (account_id, provider_id)
    DO UPDATE SET amount = b.amount + excluded.amount, updated_at = excluded.updated_at;
    RETURN NULL;
END
$$;

-- Balances move only through postings: a direct write of an amount is refused.
DROP TRIGGER balances_move_by_postings ON balances;
DROP FUNCTION balances_move_by_postings();

CREATE FUNCTION balances_refuse_direct_writes() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'balances move only through the ledger: post an entry'
          USING ERRCODE = 'insufficient_privilege',
                HINT = 'meterline.ledger.post (README: The money model)';
END
$$;
-- only the postings trigger (depth 2) moves an amount; a new row starts at zero
CREATE FUNCTION balances_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 AND EXISTS (SELECT 1 FROM new_balances WHERE amount <> 0) THEN
        PERFORM balances_refuse_direct_writes();
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION balances_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 AND EXISTS (
        SELECT account_id, provider_id, amount FROM new_balances
        EXCEPT ALL
        SELECT account_id, provider_id, amount FROM old_balances) THEN
        PERFORM balances_refuse_direct_writes();
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER balances_inserted AFTER INSERT ON balances
    REFERENCING NEW TABLE AS new_balances
    FOR EACH STATEMENT EXECUTE FUNCTION balances_inserted();
CREATE TRIGGER balances_updated AFTER UPDATE ON balances
    REFERENCING OLD TABLE AS old_balances NEW TABLE AS new_balances
    FOR EACH STATEMENT EXECUTE FUNCTION balances_updated();
CREATE FUNCTION balances_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'balances are kept: a balance is the cache of its postings'
          USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER balances_kept BEFORE DELETE OR TRUNCATE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION balances_kept();

-- What the journal names stays: an account or provider with postings keeps its id.
CREATE FUNCTION named_by_the_journal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id) AND EXISTS (SELECT 1 FROM postings
                WHERE CASE TG_TABLE_NAME WHEN 'accounts' THEN account_id
                                         ELSE provider_id END = OLD.id) THEN
        RAISE EXCEPTION '% % is named by the journal: it cannot be deleted or renamed',
                        rtrim(TG_TABLE_NAME, 's'), OLD.id
              USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER accounts_named_by_the_journal BEFORE DELETE OR UPDATE OF id ON accounts
    FOR EACH ROW EXECUTE FUNCTION named_by_the_journal();
CREATE TRIGGER providers_named_by_the_journal BEFORE DELETE OR UPDATE OF id ON providers
    FOR EACH ROW EXECUTE FUNCTION named_by_the_journal();

ALTER TABLE balances SET (fillfactor = 50);
ALTER TABLE register_state SET (fillfactor = 50);
ALTER TABLE tariff_volumes SET (fillfactor = 50);
ALTER TABLE daily_spend SET (fillfactor = 50);
