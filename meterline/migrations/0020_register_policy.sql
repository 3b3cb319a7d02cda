-- The register policy (issue #5): a reading below a register's level that its counter's width
-- does not explain is a candidate new level (a reset), held here until the next reading
-- confirms it or shows it was a glitch. NULL: no candidate.
ALTER TABLE register_state
    ADD COLUMN pending_ts     timestamptz,
    ADD COLUMN pending_value  numeric(20, 6),
    ADD CONSTRAINT register_state_pending CHECK ((pending_ts IS NULL) = (pending_value IS NULL));
