-- An account may have a meter read by people and a meter behind a gateway for the same
-- service (a garage's electricity meter read by people beside the apartment's smart meter):
-- each consumption is priced once, the gateway meter's by rating (its accrual shown as a line
-- of method 'rating'), the people-read meter's by the bill run. Both are individual lines of
-- the service, so the key of a bill line tells them apart: ``rated``, a line of rating's
-- accrual (derived from the method, never written).
ALTER TABLE bill_lines
    ADD COLUMN rated boolean GENERATED ALWAYS AS (method = 'rating') STORED;
ALTER TABLE bill_lines DROP CONSTRAINT bill_lines_pkey;
ALTER TABLE bill_lines ADD PRIMARY KEY (period, account_id, service, common, rated);
