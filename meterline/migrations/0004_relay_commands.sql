-- Relay commands: an outbox written in the same transaction as the money movement that
-- decided them. The bridge delivers them to the meter's gateway over MQTT.
-- Life: requested -> sent -> acknowledged (or failed).

CREATE TABLE relay_commands (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- delivery order: taken at insert, so of two transactions that decided on the same
    -- balance one after the other, the later decision is delivered last
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    meter_id         text NOT NULL REFERENCES meters,
    action           text NOT NULL CHECK (action IN ('connect', 'disconnect')),
    reason           text NOT NULL,
    status           text NOT NULL DEFAULT 'requested'
                     CHECK (status IN ('requested', 'sent', 'acknowledged', 'failed')),
    detail           text NOT NULL DEFAULT '',
    requested_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at          timestamptz,
    acknowledged_at  timestamptz
);
CREATE INDEX relay_commands_pending ON relay_commands (seq) WHERE status = 'requested';
CREATE INDEX relay_commands_meter ON relay_commands (meter_id, seq);

CREATE FUNCTION notify_relay_command() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relay_commands', NEW.id::text);
    RETURN NEW;
END
$$;

CREATE TRIGGER relay_command_requested AFTER INSERT ON relay_commands
    FOR EACH ROW EXECUTE FUNCTION notify_relay_command();
