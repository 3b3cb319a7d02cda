-- Water is metered as cold and hot water, each with its own provider and tariff
-- (DOMAIN.md: electricity, cold water, hot water, gas, heat). Meters and tariffs of plain
-- 'water' are cold water.
ALTER TABLE meters DROP CONSTRAINT meters_utility_check;
ALTER TABLE tariffs DROP CONSTRAINT tariffs_utility_check;
UPDATE meters SET utility = 'cold_water' WHERE utility = 'water';
UPDATE tariffs SET utility = 'cold_water' WHERE utility = 'water';
ALTER TABLE meters ADD CONSTRAINT meters_utility_check
    CHECK (utility IN ('electricity', 'cold_water', 'hot_water', 'gas', 'heat'));
ALTER TABLE tariffs ADD CONSTRAINT tariffs_utility_check
    CHECK (utility IN ('electricity', 'cold_water', 'hot_water', 'gas', 'heat'));
