-- Charge lines say what priced them (DOMAIN §4): the tariff version, time-of-use zone, monthly
-- volume band and consumer group. tariff_id is kept for the lines the skeleton's flat tariffs
-- priced; lines priced from the tariff books leave it empty.
ALTER TABLE charges
    ADD COLUMN tariff_version_id  bigint,
    ADD COLUMN zone               text,
    ADD COLUMN band               smallint CHECK (band >= 0),
    ADD COLUMN consumer_group     text;
ALTER TABLE charges ALTER COLUMN tariff_id DROP NOT NULL;
