-- What staff changed by hand, with why (issue 9): manual adjustments, reading corrections,
-- users and roles. Append-only: who, what, when, before and after.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     bigint REFERENCES users ON DELETE SET NULL,
    username    text NOT NULL,            -- kept when the user is gone
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z_.-]*$'),
    account_id  text,
    subject     text NOT NULL,            -- what was changed: a reading, a balance, a user
    reason      text NOT NULL CHECK (length(btrim(reason)) > 0),
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_account ON audit_log (account_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
