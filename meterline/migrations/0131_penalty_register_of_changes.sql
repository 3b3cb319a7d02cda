-- The penalties register as a register of changes (README "Payments, penalties and
-- reminders"; BENCHMARKS.md "Penalty accrual").
--
-- The register kept a row per charge and day of accrual (`penalty_accruals`) and, beside it,
-- the last total per charge (`penalty_totals`): every daily run over a million open debts
-- inserted a million rows into one and rewrote a million rows of the other. What the books
-- and the reports need is less: the total accrued on each charge up to the last accrual (the
-- next run posts the difference from it), and per month the state at the month's last
-- accrual (the register report shows the month's change). So the register keeps a row per
-- charge and month: opened by the month's first accrual that changes the charge's penalty,
-- then moved forward (day, unpaid principal, total, entry) by each later one. Its latest row
-- is the charge's last total; `penalty_totals` goes.
--
-- The rows of each charge and month collapse to the month's latest (the earlier days' rows are
-- kept, as they were, in `penalty_accruals_days_before_0131`: nothing stored is lost); the day
-- index becomes a month index (the day changes every run, the month does not: the daily update stays on its
-- page and writes no index entry, with room left on the pages for it).

ALTER TABLE penalty_accruals ADD COLUMN month date;
UPDATE penalty_accruals SET month = date_trunc('month', as_of)::date;
CREATE TABLE penalty_accruals_days_before_0131 AS
SELECT * FROM penalty_accruals a
 WHERE EXISTS (SELECT 1 FROM penalty_accruals b
                WHERE (b.account_id, b.provider_id, b.service, b.period, b.month)
                      = (a.account_id, a.provider_id, a.service, a.period, a.month)
                  AND b.as_of > a.as_of);
ALTER TABLE penalty_accruals_days_before_0131 DROP COLUMN month;
COMMENT ON TABLE penalty_accruals_days_before_0131 IS
    'The penalties register''s daily rows from before migration 0131 that the register of '
    'changes no longer holds (each charge keeps its month''s last accrual in penalty_accruals). '
    'Kept for the record; nothing reads it.';
DELETE FROM penalty_accruals a
 WHERE EXISTS (SELECT 1 FROM penalty_accruals b
                WHERE (b.account_id, b.provider_id, b.service, b.period, b.month)
                      = (a.account_id, a.provider_id, a.service, a.period, a.month)
                  AND b.as_of > a.as_of);
ALTER TABLE penalty_accruals
    ALTER COLUMN month SET NOT NULL,
    ADD CONSTRAINT penalty_accruals_month_check CHECK (month = date_trunc('month', as_of)::date),
    DROP CONSTRAINT penalty_accruals_pkey,
    ADD PRIMARY KEY (account_id, provider_id, service, period, month);
DROP INDEX penalty_accruals_day;
CREATE INDEX penalty_accruals_month ON penalty_accruals (month);
ALTER TABLE penalty_accruals SET (fillfactor = 50);
COMMENT ON TABLE penalty_accruals IS
    'The penalties register: per charge (account, provider, service, period) and month, the '
    'last accrual of the month that changed the charge''s penalty: its day (as_of), the '
    'principal unpaid then, the total accrued on the charge up to that day and the entry that '
    'posted the difference. The latest row of a charge is its last total.';

DROP TABLE penalty_totals;
