-- A benefit rule's code is the category of the grants that use it (account_benefits.category:
-- lower case, digits and underscores); codes written with hyphens before are renamed.
UPDATE benefit_rules SET code = lower(replace(code, '-', '_')) WHERE code !~ '^[a-z0-9_]{1,32}$';
ALTER TABLE benefit_rules ADD CONSTRAINT benefit_rules_code_is_a_category
    CHECK (code ~ '^[a-z0-9_]{1,32}$') NOT VALID;
