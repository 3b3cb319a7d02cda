-- Why a debt procedure started: the month of the service's charge the debt was measured
-- against (DOMAIN.md §7: by the norm; the average of the last charged months where no norm
-- gives one) and which of the two it was.
ALTER TABLE debt_procedures
    ADD COLUMN monthly        numeric(18, 2),
    ADD COLUMN monthly_basis  text CHECK (monthly_basis IN ('norm', 'average'));
