-- Online payments of postpaid accounts (issue 9). A prepaid account's online payment is a
-- top-up of one provider's wallet, so it names the provider. A postpaid account's is received
-- like any payment and split over the account's providers, services and periods (DOMAIN.md
-- §2), so it names no provider; its payer may name the month it pays.

ALTER TABLE online_payments ALTER COLUMN provider_id DROP NOT NULL;
ALTER TABLE online_payments
    ADD COLUMN period date CHECK (period = date_trunc('month', period)::date),
    ADD CONSTRAINT online_payments_period_or_provider
        CHECK (provider_id IS NULL OR period IS NULL),
    -- the balances foreign key checks nothing once provider_id is NULL
    ADD CONSTRAINT online_payments_account_fkey FOREIGN KEY (account_id) REFERENCES accounts;
