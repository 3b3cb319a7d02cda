-- The plan and tariff version in force, for set-based SQL elsewhere (standing charges, the
-- prepaid policy's negative limit, bill runs). Local days: the caller passes the account's
-- local date.

-- The account's plan for a provider's service on a day: its latest choice from then, else
-- the provider's default plan for the service (NULL: none).
CREATE FUNCTION account_plan(p_account text, p_provider text, p_service text, p_day date)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT c.plan_id FROM account_plans c
          WHERE c.account_id = p_account AND c.provider_id = p_provider
            AND c.service = p_service AND c.valid_from <= p_day
          ORDER BY c.valid_from DESC LIMIT 1),
        (SELECT p.id FROM tariff_plans p
          WHERE p.provider_id = p_provider AND p.service = p_service AND p.is_default))
$$;

-- The version of a plan in force on a day (NULL: none): the latest one started by then,
-- unless it ended on its own before.
CREATE FUNCTION plan_version(p_plan bigint, p_day date)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT v.id FROM (SELECT id, valid_to FROM tariff_versions
                       WHERE plan_id = p_plan AND valid_from <= p_day
                       ORDER BY valid_from DESC LIMIT 1) v
     WHERE v.valid_to IS NULL OR v.valid_to > p_day
$$;

-- How low a prepaid balance may go for the account's service today (0 without a plan).
CREATE FUNCTION tariff_negative_limit(p_account text, p_provider text, p_service text,
                                      p_day date)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT negative_limit FROM tariff_versions
                      WHERE id = plan_version(account_plan(p_account, p_provider, p_service,
                                                           p_day), p_day)), 0)
$$;
