-- The bill run prices with the tariff books (meterline/tariffs/, issue 5), as rating does:
-- the prices it read through its own table (service_prices, per m², per resident, sewerage)
-- and the skeleton's `tariffs` rows the town generator wrote after the books landed become
-- plans of the books; bill_prices() and service_prices go. Prices already in the books stay
-- as they are (a provider's service that has a plan keeps it).

-- service_prices: one plan per provider and service, a version per row.
CREATE TEMP TABLE legacy_service_prices ON COMMIT DROP AS
SELECT s.provider_id, s.service, s.unit, s.price, s.valid_from, s.valid_to
  FROM service_prices s
 WHERE NOT EXISTS (SELECT 1 FROM tariff_plans p
                    WHERE p.provider_id = s.provider_id
                      AND (p.service = s.service OR p.code = replace(s.service, '_', '-')));

INSERT INTO tariff_plans (provider_id, code, name, service, utility, basis, derived_from,
                          is_default)
SELECT DISTINCT ON (l.provider_id, l.service)
       l.provider_id, replace(l.service, '_', '-'),
       CASE l.service WHEN 'maintenance' THEN 'Building maintenance'
                    WHEN 'capital_repair' THEN 'Capital repair contribution'
                    WHEN 'waste' THEN 'Waste removal'
                    WHEN 'sewerage' THEN 'Sewerage, per m3 of cold and hot water'
                    ELSE 'Flat rate' END,
       l.service,
       CASE WHEN l.service = 'sewerage' OR l.unit IN ('m2', 'person') THEN NULL
            WHEN l.service = 'heating' THEN 'heat' ELSE l.service END,
       CASE l.unit WHEN 'person' THEN 'resident' ELSE l.unit END,
       CASE WHEN l.service = 'sewerage' AND l.unit = 'm3' THEN '{cold_water,hot_water}'::text[]
            ELSE '{}'::text[] END,
       NOT EXISTS (SELECT 1 FROM tariff_plans d
                    WHERE d.provider_id = l.provider_id AND d.service = l.service
                      AND d.is_default)
  FROM legacy_service_prices l
 ORDER BY l.provider_id, l.service, l.valid_from DESC;

-- The skeleton's rows of a provider's utility that the books do not price yet: a default
-- flat plan, as migration 0030 made of the rows before it (dates in Moscow time).
CREATE TEMP TABLE legacy_tariffs_since ON COMMIT DROP AS
SELECT DISTINCT ON (provider_id, utility, (valid_from AT TIME ZONE 'Europe/Moscow')::date)
       provider_id, CASE utility WHEN 'heat' THEN 'heating' ELSE utility END AS service,
       utility, unit, price,
       (valid_from AT TIME ZONE 'Europe/Moscow')::date AS valid_from,
       (valid_to AT TIME ZONE 'Europe/Moscow')::date AS valid_to
  FROM tariffs t
 WHERE NOT EXISTS (SELECT 1 FROM tariff_plans p
                    WHERE p.provider_id = t.provider_id
                      AND p.service = CASE t.utility WHEN 'heat' THEN 'heating'
                                                     ELSE t.utility END)
 ORDER BY provider_id, utility, (valid_from AT TIME ZONE 'Europe/Moscow')::date, id DESC;

INSERT INTO tariff_plans (provider_id, code, name, service, utility, basis, is_default)
SELECT DISTINCT provider_id, 'flat-' || replace(utility, '_', '-'), 'Flat rate', service,
       utility, unit, true
  FROM legacy_tariffs_since;

-- Versions and prices (every consumer group pays the one price) of both.
CREATE TEMP TABLE legacy_versions ON COMMIT DROP AS
SELECT p.id AS plan_id, l.valid_from,
       CASE WHEN l.valid_to > l.valid_from THEN l.valid_to END AS valid_to, l.price
  FROM legacy_service_prices l
  JOIN tariff_plans p ON p.provider_id = l.provider_id AND p.service = l.service
                     AND p.code = replace(l.service, '_', '-')
UNION ALL
SELECT p.id, l.valid_from, CASE WHEN l.valid_to > l.valid_from THEN l.valid_to END, l.price
  FROM legacy_tariffs_since l
  JOIN tariff_plans p ON p.provider_id = l.provider_id AND p.service = l.service
                     AND p.code = 'flat-' || replace(l.utility, '_', '-');

INSERT INTO tariff_versions (plan_id, valid_from, valid_to, zones)
SELECT plan_id, valid_from, valid_to, '[{"name": "all_day", "windows": ["00:00-24:00"]}]'
  FROM legacy_versions
ON CONFLICT (plan_id, valid_from) DO NOTHING;

INSERT INTO tariff_prices (version_id, zone, band, consumer_group, price)
SELECT v.id, 'all_day', 0, g.consumer_group, l.price
  FROM legacy_versions l
  JOIN tariff_versions v ON v.plan_id = l.plan_id AND v.valid_from = l.valid_from
 CROSS JOIN (VALUES ('urban'), ('rural'), ('electric_stove')) AS g(consumer_group)
ON CONFLICT DO NOTHING;

-- Benefits: the bill run gave a grant whose category is no benefit rule's code its share of
-- the whole charge; the tariffs' benefits job prices every grant now, by its rule. Such a
-- grant gets a rule of the provider selling it the service: its share as the percent, no
-- norm to speak of (a million m²), so the beneficiaries' share of the charge is discounted;
-- its category becomes the rule's code (<category>_<service>: a rule is of one service).
CREATE TEMP TABLE grants_without_rule ON COMMIT DROP AS
SELECT DISTINCT ON (g.account_id, g.category, g.service, g.valid_from)
       g.account_id, g.category, g.service, g.valid_from, g.share, s.provider_id,
       CASE WHEN g.category LIKE ('%\_' || g.service) THEN g.category
            ELSE left(g.category, 31 - length(g.service)) || '_' || g.service END AS code
  FROM account_benefits g
  JOIN account_services s ON s.account_id = g.account_id AND s.service = g.service
 WHERE NOT EXISTS (SELECT 1 FROM benefit_rules r
                    WHERE r.code = g.category AND r.service = g.service)
 ORDER BY g.account_id, g.category, g.service, g.valid_from, s.valid_from DESC;

INSERT INTO benefit_rules (provider_id, code, name, service, percent, norm, norm_basis)
SELECT provider_id, code, code || ' (a share of the charge)', service, max(share) * 100,
       1000000, 'm2'
  FROM grants_without_rule
 GROUP BY provider_id, code, service
ON CONFLICT DO NOTHING;

UPDATE account_benefits g SET category = o.code
  FROM grants_without_rule o
 WHERE (g.account_id, g.category, g.service, g.valid_from)
       = (o.account_id, o.category, o.service, o.valid_from)
   AND o.code <> o.category;

DROP FUNCTION bill_prices(date);
DROP TABLE service_prices;

-- A line priced by more than one part of its plan (time-of-use zones, monthly volume bands,
-- a version that starts within the month): the parts, each rounded to kopecks, adding up to
-- the line's charge: [{"zone": "night", "band": 0, "volume": "120.5", "tariff": "3.2",
-- "charged": "385.60"}, ...]. NULL for a line of one price (volume x tariff).
ALTER TABLE bill_lines ADD COLUMN parts jsonb;
