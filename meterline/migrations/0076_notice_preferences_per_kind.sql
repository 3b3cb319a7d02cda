-- Notification preferences per kind of notice, and the record of consents.
-- `notice_preferences.channels` (migration 0100) is the account's order of channels for every
-- kind; a row here overrides it for one kind (e.g. low-balance warnings by SMS, the rest by
-- e-mail; or only in the personal cabinet, which needs no address).
CREATE TABLE notice_kind_channels (
    account_id  text NOT NULL REFERENCES accounts,
    kind        text NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    channels    text[] NOT NULL CHECK (channels <@ '{cabinet,email,sms,phone}'::text[]
                                   AND cardinality(channels) > 0),
    PRIMARY KEY (account_id, kind)
);

-- Every change of an account's preferences as it was made: who, when, the preferences before
-- and after (channels are consents: a channel left out has none). Append-only.
CREATE TABLE notice_consents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts,
    user_id     bigint REFERENCES users,
    username    text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    before      jsonb,
    after       jsonb NOT NULL
);
CREATE INDEX notice_consents_account ON notice_consents (account_id, changed_at);

CREATE FUNCTION notice_consents_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'notice_consents is append-only';
END
$$;
CREATE TRIGGER notice_consents_kept BEFORE UPDATE OR DELETE ON notice_consents
    FOR EACH ROW EXECUTE FUNCTION notice_consents_append_only();
