-- Readings by people (issue 9, DOMAIN §3): each provider's submission day (a reading
-- submitted after it counts for the next month), and the phone numbers an account's people
-- call the phone line from.
ALTER TABLE providers ADD COLUMN reading_submission_day smallint NOT NULL DEFAULT 25
    CHECK (reading_submission_day BETWEEN 1 AND 31);

CREATE TABLE phone_numbers (
    phone       text PRIMARY KEY CHECK (phone ~ '^\+[0-9]{7,15}$'),  -- E.164
    account_id  text NOT NULL REFERENCES accounts ON DELETE CASCADE
);
CREATE INDEX phone_numbers_account ON phone_numbers (account_id);
