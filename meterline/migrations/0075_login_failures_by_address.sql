-- Failed logins are counted by client address as well as by user name: one address trying
-- many names (password spraying) is slowed down too, not only one name tried many times.
ALTER TABLE login_failures ADD COLUMN client_address inet;
CREATE INDEX login_failures_by_address ON login_failures (client_address, failed_at)
    WHERE client_address IS NOT NULL;
