-- Meters read by people are first-class: such a meter has no gateway, and every reading says
-- where it came from (DESIGN.md: gateway, app, web, phone, operator).
ALTER TABLE meters ALTER COLUMN gateway_id DROP NOT NULL;
ALTER TABLE readings ALTER COLUMN gateway_id DROP NOT NULL;
ALTER TABLE readings ADD COLUMN source text NOT NULL DEFAULT 'gateway'
    CHECK (source IN ('gateway', 'app', 'web', 'phone', 'operator'));
ALTER TABLE readings ADD CONSTRAINT readings_gateway_source
    CHECK ((source = 'gateway') = (gateway_id IS NOT NULL));
