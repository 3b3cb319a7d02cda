-- Monthly volume priced per account, provider and service, in the account's time zone: where
-- the next charge's volume bands start (DOMAIN §4: bands of monthly consumption). Moved in the
-- same transaction as the charge lines it counts, by exactly their quantities.
CREATE TABLE tariff_volumes (
    account_id   text NOT NULL,
    provider_id  text NOT NULL,
    service      text NOT NULL,
    month        date NOT NULL CHECK (extract(day FROM month) = 1),
    volume       numeric(20, 6) NOT NULL CHECK (volume >= 0),
    PRIMARY KEY (account_id, provider_id, service, month),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);
