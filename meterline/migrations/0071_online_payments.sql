-- Online top-ups through the acquirer (the payment provider): a subscriber creates a payment,
-- pays on the acquirer's confirmation page (or by its payment QR), the acquirer's signed
-- webhook confirms it, and the account is credited once.

CREATE TABLE online_payments (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id           text NOT NULL,
    provider_id          text NOT NULL,
    amount               numeric(28, 12) NOT NULL CHECK (amount > 0),
    -- the client's key: a retried create returns the same payment
    idempotency_key      text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    user_id              bigint REFERENCES users ON DELETE SET NULL,
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'succeeded', 'canceled')),
    acquirer_payment_id  text UNIQUE,       -- the acquirer's id, once it answered
    confirmation_url     text,
    return_url           text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    paid_at              timestamptz,
    UNIQUE (account_id, idempotency_key),
    FOREIGN KEY (account_id, provider_id) REFERENCES balances (account_id, provider_id)
);
CREATE INDEX online_payments_account ON online_payments (account_id, created_at);

-- Webhook events taken, by the acquirer's event id: the same event delivered again (a retry,
-- or a replay within the signature tolerance) changes nothing.
CREATE TABLE acquirer_events (
    event_id     text PRIMARY KEY,
    kind         text NOT NULL,
    payment_id   uuid REFERENCES online_payments,
    received_at  timestamptz NOT NULL DEFAULT now()
);
