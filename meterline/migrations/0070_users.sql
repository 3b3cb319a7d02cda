-- Who may use the API and what each may see (issue 9).
-- People log in with a password (argon2id hash) and get short-lived access tokens plus a
-- refresh token; machines use API keys. Subscribers and industrial customers see only the
-- personal accounts granted to them (user_accounts); operators and admins see every account.

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- case-insensitive: unique on lower(username); an account number is a fine user name
    username       text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.@+-]{1,128}$'),
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL
                   CHECK (role IN ('subscriber', 'industrial', 'operator', 'admin')),
    password_hash  text,                    -- argon2id; NULL: no password login
    locale         text NOT NULL DEFAULT 'ru' CHECK (locale IN ('ru', 'en')),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username ON users (lower(username));

-- The personal accounts a subscriber or an industrial customer may see and act on.
CREATE TABLE user_accounts (
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    account_id  text NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (user_id, account_id)
);
CREATE INDEX user_accounts_account ON user_accounts (account_id);

-- Refresh tokens: opaque, stored as SHA-256. Each use rotates the token (used_at set, a new
-- one issued in the same family); presenting a used token again revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family      uuid NOT NULL,              -- one login and all its rotations
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- Failed logins per user name as typed (lowercased), known or not: too many in the lockout
-- window lock the name for a while.
CREATE TABLE login_failures (
    username   text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_recent ON login_failures (username, failed_at);

-- API keys for machines: `mlk_<id>_<secret>`; the secret is random (256 bits) and stored as
-- SHA-256. A key acts as its owner, limited to its scopes.
CREATE TABLE api_keys (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    secret_hash  bytea NOT NULL,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- MQTT clients (gateways and the bridge) with the password hash Mosquitto's password file
-- holds (PBKDF2-SHA512, `$7$`): `meterline mqtt write-config` writes the password file and
-- the ACL from this table.
CREATE TABLE mqtt_clients (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.-]{1,64}$'),
    kind           text NOT NULL CHECK (kind IN ('gateway', 'bridge')),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
