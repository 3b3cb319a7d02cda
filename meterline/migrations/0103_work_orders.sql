-- Restricting and suspending a service for debt, and lifting it (DOMAIN.md §7, decree 354
-- pp. 117-120): what was ordered for each step of a debt procedure. A meter of the service
-- with a relay gets a relay command (relay_commands, delivered by the bridge); a service with
-- no such meter gets a work order for a technician, which an operator marks done or cancelled.
CREATE TABLE work_orders (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    procedure_id      bigint NOT NULL REFERENCES debt_procedures,
    account_id        text NOT NULL REFERENCES accounts,
    provider_id       text NOT NULL REFERENCES providers,
    service           text NOT NULL,
    action            text NOT NULL CHECK (action IN ('restrict', 'suspend', 'lift')),
    via               text NOT NULL CHECK (via IN ('relay', 'technician')),
    meter_id          text REFERENCES meters,             -- the relay's meter
    relay_command_id  uuid REFERENCES relay_commands,
    status            text NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'done', 'cancelled')),
    ordered_at        timestamptz NOT NULL,
    done_at           timestamptz,
    done_by           text,
    note              text NOT NULL DEFAULT '',
    CHECK ((via = 'relay') = (relay_command_id IS NOT NULL AND meter_id IS NOT NULL))
);
-- each step of a procedure is ordered once per meter (or once for the technician)
CREATE UNIQUE INDEX work_orders_once
    ON work_orders (procedure_id, action, coalesce(meter_id, ''));
CREATE INDEX work_orders_open ON work_orders (provider_id, ordered_at)
    WHERE status = 'open' AND via = 'technician';
