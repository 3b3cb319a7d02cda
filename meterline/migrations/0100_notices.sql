-- Notices to subscribers (debt notices, restriction and suspension, prepaid warnings) and the
-- proof that each reached its subscriber (DOMAIN.md §7: delivery must be provable).
-- A notice is tried on one channel at a time, in the account's order of preference; one not
-- proven delivered in time is tried on the next; never twice on one channel.

-- How an account wants to hear from its providers. A channel left out of `channels` has no
-- consent. Without a row: the personal cabinet only.
CREATE TABLE notice_preferences (
    account_id  text PRIMARY KEY REFERENCES accounts,
    email       text CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    phone       text CHECK (phone ~ '^\+[0-9]{7,15}$'),
    channels    text[] NOT NULL DEFAULT '{email,sms,phone,cabinet}'
                CHECK (channels <@ '{cabinet,email,sms,phone}'::text[]),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Per provider: what proves an e-mail (the recipient's server accepting it, or the subscriber
-- following its link), and how long to wait for proof before the next channel.
CREATE TABLE notice_terms (
    provider_id  text PRIMARY KEY REFERENCES providers,
    email_proof  text NOT NULL DEFAULT 'read' CHECK (email_proof IN ('sent', 'read')),
    proof_wait   interval NOT NULL DEFAULT '2 days' CHECK (proof_wait > interval '0')
);

CREATE TABLE notices (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key           text NOT NULL UNIQUE,   -- natural key: the same notice is never made twice
    kind          text NOT NULL,          -- template name: debt_notice, low_balance, ...
    account_id    text NOT NULL REFERENCES accounts,
    provider_id   text NOT NULL REFERENCES providers,
    service       text,
    context       jsonb NOT NULL DEFAULT '{}',  -- what its text shows
    created_at    timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'undeliverable')),
    delivered_at  timestamptz,            -- statutory periods run from here
    delivered_by  text
);
CREATE INDEX notices_pending ON notices (created_at) WHERE status = 'pending';
CREATE INDEX notices_account ON notices (account_id, created_at);

-- One try of a notice on one channel. `sending` is taken (and committed) before the channel
-- is called, so a notifier that dies mid-send never sends the same notice twice on a channel.
CREATE TABLE notice_attempts (
    notice_id     uuid NOT NULL REFERENCES notices,
    channel       text NOT NULL CHECK (channel IN ('cabinet', 'email', 'sms', 'phone')),
    token         text NOT NULL UNIQUE,   -- names the attempt in callbacks and links
    address       text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed',
                                    'expired')),
    not_before    timestamptz NOT NULL DEFAULT now(),   -- after quiet hours
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_at    timestamptz,            -- a notifier took it to send
    sent_at       timestamptz,
    deadline      timestamptz,            -- no proof by then: the next channel
    delivered_at  timestamptz,
    external_id   text,
    detail        text NOT NULL DEFAULT '',
    PRIMARY KEY (notice_id, channel)
);
CREATE INDEX notice_attempts_due ON notice_attempts (not_before) WHERE status = 'queued';
CREATE INDEX notice_attempts_waiting ON notice_attempts (deadline) WHERE status = 'sent';

-- Every confirmation as it came (SMTP answer, delivery report, call result, link followed,
-- opened in the cabinet): the receipts DOMAIN.md §7 asks to keep.
CREATE TABLE notice_receipts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notice_id    uuid NOT NULL,
    channel      text NOT NULL,
    kind         text NOT NULL,   -- smtp_accepted, link_followed, sms_report, call_result, ...
    proves       text NOT NULL CHECK (proves IN ('sent', 'delivered', 'failed', 'nothing')),
    received_at  timestamptz NOT NULL DEFAULT now(),
    payload      jsonb NOT NULL DEFAULT '{}',
    FOREIGN KEY (notice_id, channel) REFERENCES notice_attempts
);
CREATE INDEX notice_receipts_notice ON notice_receipts (notice_id);

-- The notifier wakes when a notice is made.
CREATE FUNCTION notify_notice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notices', NEW.id::text);
    RETURN NEW;
END
$$;
CREATE TRIGGER notice_made AFTER INSERT ON notices
    FOR EACH ROW EXECUTE FUNCTION notify_notice();
