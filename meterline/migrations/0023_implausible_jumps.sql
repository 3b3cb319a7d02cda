-- The register policy (issues #5, #10): a reading the gateway flagged implausible_jump (grew
-- faster than the meter can measure) is held as the register's candidate like a reset, not
-- charged, until the next reading refuses it or re-baselines at it. pending_jump tells the
-- two kinds of candidate apart (false: a reset candidate, as before).
ALTER TABLE register_state
    ADD COLUMN pending_jump boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT register_state_pending_jump CHECK (NOT pending_jump OR pending_ts IS NOT NULL);
