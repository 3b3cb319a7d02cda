-- Meter replacements (issue #5): another meter (a new serial) takes an old one's place, reported
-- by the gateway that found it at the old one's address or registered by an operator. The old
-- meter is closed at its closing readings (charged up to them) and keeps its history; the new
-- one opens at its opening readings (or its first reading, when none is known).
ALTER TABLE meters
    ADD COLUMN replaced_by  text REFERENCES meters,
    ADD COLUMN removed_at   timestamptz,
    ADD CONSTRAINT meters_removed CHECK ((replaced_by IS NULL) = (removed_at IS NULL));

CREATE TABLE meter_replacements (
    old_meter    text PRIMARY KEY REFERENCES meters,
    new_meter    text NOT NULL UNIQUE REFERENCES meters,
    replaced_at  timestamptz NOT NULL,
    source       text NOT NULL CHECK (source IN ('gateway', 'operator')),
    -- [{"register": ..., "value": "...", "ts": "..."}]
    closing      jsonb NOT NULL DEFAULT '[]',
    opening      jsonb NOT NULL DEFAULT '[]',
    reason       text NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (old_meter <> new_meter)
);
