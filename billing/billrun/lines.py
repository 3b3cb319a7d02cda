"""The bill of a period, computed set-based in SQL (no loop per account), in two stages.

``PREPARE`` runs on each worker's connection for the chunks it is to bill (the chunks are
whole houses; the workers prepare side by side), into temporary tables of its session: the
accounts of those chunks' houses, their services and plans, the volume of each meter read by
people, each account's individual volumes, each house's volumes from its house meters. A
session that ends (a killed run) takes them along; the run resumes by preparing again.
``CHUNK`` runs in each chunk's transaction and leaves ``new_lines``: one line per service of
each of the chunk's accounts (and provider), one more per common-property (СОИ) service,
priced and rounded to kopecks once (half-up). ``UNPRICED`` runs once when a run starts, over
all its accounts. The rules (DOMAIN.md §3):

- Individual meters read by people: the reading of the period is the last one up to the
  cutoff day (later ones count for the next period). Consumption = that reading minus the
  last one before. No reading: the average monthly consumption over the six months of
  readings before (at least three months), for at most three periods in a row; then, and
  for a metered service with no meter, the norm × registered residents. When a reading
  comes back after substitution, real consumption since the last real reading minus what
  substitution billed is charged (or credited) as a recalculation, with its reason.
- Sewerage = cold + hot water volumes.
- Heating: the house's heat meter over the calendar month, split by area; no house meter:
  the norm (Gcal per m²) × area.
- Common property (cold and hot water, electricity): the house meter minus the sum of the
  apartments' volumes, capped at the norm × the house's common area, split by area; no house
  meter: the norm volume.
- What a line prices is its plan's basis (the tariff books, ``meterline.tariffs``): a
  metered unit prices the volume above, m² the account's area (maintenance, capital repair,
  heating by area), a resident the registered residents (waste).

Each (account, provider, service) is on its plan of the books: its own choice in force on the
period's first day, else the provider's default (``account_plan()``'s rule), at its consumer
group's price of the version in force (``plan_version()``). A line of one price (one version
over the whole month, one zone, no bands) is priced here, volume x price; the others (zones,
bands, a social norm, a version or a choice starting within the month) by
``billing.billrun.pricing`` with ``meterline.tariffs.pricing``, as rating prices a gateway
meter. Benefits are not the bill run's: the tariffs' benefits job books them
(``meterline tariffs benefits``), and documents show them from the journal.

Readings are looked at over 14 months before the period (the history an average needs).
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg

# --- PREPARE: on each worker's connection, for its chunks ----------------------------------

# Every account of the houses of the chunks' accounts; those of the chunks carry their chunk.
RUN_ACCOUNTS = """
CREATE TEMP TABLE run_accounts AS
SELECT a.id AS account_id, a.area, a.residents, p.house_id, c.region_code, ad.time_zone,
       sel.chunk
  FROM accounts a
  JOIN premises p ON p.id = a.premises_id
  JOIN houses h ON h.id = p.house_id
  JOIN streets s ON s.id = h.street_id
  JOIN cities c ON c.id = s.city_id
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN (SELECT chunk, unnest(accounts) AS account_id FROM bill_run_chunks
              WHERE run_id = %(run)s AND chunk = ANY(%(chunks)s::integer[])) sel
         ON sel.account_id = a.id
 WHERE p.house_id IN (SELECT p2.house_id FROM bill_run_chunks c2
                        CROSS JOIN unnest(c2.accounts) AS x(account_id)
                        JOIN accounts a2 ON a2.id = x.account_id
                        JOIN premises p2 ON p2.id = a2.premises_id
                       WHERE c2.run_id = %(run)s AND c2.chunk = ANY(%(chunks)s::integer[]));
CREATE INDEX ON run_accounts (chunk);
CREATE UNIQUE INDEX ON run_accounts (account_id)
"""

RUN_HOUSES = """
CREATE TEMP TABLE run_houses AS
SELECT r.house_id, max(h.common_area) AS common_area, max(r.time_zone) AS time_zone,
       coalesce(max(h.total_area), sum(r.area)) AS area, max(r.region_code) AS region_code
  FROM run_accounts r JOIN houses h ON h.id = r.house_id
 GROUP BY r.house_id
"""

# The service each account takes, from which provider, and the plan it is on: its own choice
# in force on the period's first day, else the provider's default (account_plan()'s rule,
# set-based); ``changing`` when a choice takes effect within the month.
RUN_SERVICES = """
CREATE TEMP TABLE run_services AS
WITH taken AS (
    SELECT DISTINCT ON (s.account_id, s.service) s.account_id, r.chunk, s.service,
           s.provider_id, r.area, r.residents, r.house_id, r.region_code
      FROM account_services s JOIN run_accounts r ON r.account_id = s.account_id
     WHERE s.valid_from <= %(period)s AND (s.valid_to IS NULL OR s.valid_to > %(period)s)
     ORDER BY s.account_id, s.service, s.valid_from DESC
), choices AS (
    SELECT c.* FROM account_plans c
     WHERE c.valid_from < %(next)s AND c.account_id IN (SELECT account_id FROM run_accounts)
), chosen AS (
    SELECT DISTINCT ON (account_id, provider_id, service) account_id, provider_id, service,
           plan_id, consumer_group
      FROM choices WHERE valid_from <= %(period)s
     ORDER BY account_id, provider_id, service, valid_from DESC
)
SELECT t.account_id, t.chunk, t.service, t.provider_id, coalesce(c.plan_id, d.id) AS plan_id,
       coalesce(c.consumer_group, 'urban') AS consumer_group,
       EXISTS (SELECT 1 FROM choices x
                WHERE (x.account_id, x.provider_id, x.service)
                      = (t.account_id, t.provider_id, t.service)
                  AND x.valid_from > %(period)s) AS changing,
       t.area, t.residents, t.house_id, t.region_code
  FROM taken t
  LEFT JOIN chosen c
         ON (c.account_id, c.provider_id, c.service) = (t.account_id, t.provider_id, t.service)
  LEFT JOIN tariff_plans d
         ON d.provider_id = t.provider_id AND d.service = t.service AND d.is_default
 ORDER BY t.chunk, t.account_id;
CREATE INDEX ON run_services (account_id);
CREATE INDEX ON run_services (chunk)
"""

# Each plan and consumer group of the run: its basis, the version in force on the period's
# first day, and, when one price holds the whole month (that version throughout, one zone, no
# bands), the price; ``ref`` names it on the bill (plan code @ version, group if not urban).
RUN_RATES = """
CREATE TEMP TABLE run_rates AS
SELECT u.plan_id, u.consumer_group, p.basis, p.derived_from, v.id AS version_id,
       p.code || '@' || v.valid_from
       || CASE WHEN u.consumer_group <> 'urban' THEN '/' || u.consumer_group ELSE '' END
           AS ref,
       CASE WHEN (v.valid_to IS NULL OR v.valid_to >= %(next)s)
                 AND NOT EXISTS (SELECT 1 FROM tariff_versions o
                                  WHERE o.plan_id = u.plan_id AND o.valid_from > %(period)s
                                    AND o.valid_from < %(next)s)
                 AND jsonb_array_length(v.zones) = 1 AND cardinality(v.band_limits) = 0
                 AND cardinality(v.social_norm) = 0
            THEN tp.price END AS price
  FROM (SELECT DISTINCT plan_id, consumer_group FROM run_services
         WHERE plan_id IS NOT NULL) u
  JOIN tariff_plans p ON p.id = u.plan_id
  LEFT JOIN tariff_versions v ON v.id = plan_version(u.plan_id, %(period)s)
  LEFT JOIN tariff_prices tp
         ON tp.version_id = v.id AND tp.zone = v.zones -> 0 ->> 'name' AND tp.band = 0
        AND tp.consumer_group = u.consumer_group
"""

RUN_NORMS = """
CREATE TEMP TABLE run_norms AS
SELECT DISTINCT ON (region_code, service, scope) region_code, service, scope, quantity
  FROM consumption_norms
 WHERE region_code IN (SELECT region_code FROM run_houses)
   AND valid_from <= %(period)s AND (valid_to IS NULL OR valid_to > %(period)s)
 ORDER BY region_code, service, scope, valid_from DESC
"""

# The meters read by people; their readings over the history window, by the period they
# count for; then per meter: this period's reading, the last one before, the average's base
# (the last reading six months before that one, or the first).
RUN_READINGS = """
CREATE TEMP TABLE run_meter_list AS
SELECT m.id AS meter_id, m.account_id, m.utility AS service, r.time_zone, r.residents,
       r.region_code, p.reading_submission_day AS cutoff_day,
       CASE m.utility WHEN 'electricity' THEN 'active_import' ELSE 'volume' END AS register,
       -- out of order, or overdue for verification, from this local midnight on
       (least(m.out_of_order_since, m.verification_due)::timestamp AT TIME ZONE r.time_zone)
           AS faulty_from,
       p.faulty_meter_coefficient AS coefficient
  FROM meters m JOIN run_accounts r ON r.account_id = m.account_id
  JOIN providers p ON p.id = m.provider_id
 WHERE m.gateway_id IS NULL AND m.utility IN ('cold_water', 'hot_water', 'electricity', 'gas');
CREATE TEMP TABLE run_seen AS
SELECT m.meter_id, x.ts, x.value, reading_period(x.ts, m.time_zone, m.cutoff_day) AS period
  FROM readings x JOIN run_meter_list m ON m.meter_id = x.meter_id AND m.register = x.register
 WHERE x.ts >= %(history_from)s AND x.ts < %(history_to)s
   AND (m.faulty_from IS NULL OR x.ts < m.faulty_from);
CREATE TEMP TABLE run_meters AS
WITH last AS (
    SELECT meter_id,
           max(ts) FILTER (WHERE period = %(period)s) AS cur_ts,
           (array_agg(value ORDER BY ts DESC) FILTER (WHERE period = %(period)s))[1]
               AS cur_value,
           max(ts) FILTER (WHERE period < %(period)s) AS prev_ts,
           (array_agg(value ORDER BY ts DESC) FILTER (WHERE period < %(period)s))[1]
               AS prev_value,
           max(period) FILTER (WHERE period < %(period)s) AS prev_period,
           min(ts) AS first_ts, (array_agg(value ORDER BY ts))[1] AS first_value
      FROM run_seen WHERE period <= %(period)s GROUP BY meter_id
), base AS (
    SELECT DISTINCT ON (s.meter_id) s.meter_id, s.ts AS base_ts, s.value AS base_value,
           s.period AS base_period
      FROM run_seen s JOIN last l USING (meter_id)
     WHERE s.period <= (l.prev_period - interval '6 months')::date OR s.ts = l.first_ts
     ORDER BY s.meter_id, s.ts DESC
)
SELECT m.*, l.cur_ts, l.cur_value, l.prev_ts, l.prev_value, l.first_value, l.prev_period,
       b.base_ts,
       b.base_value, b.base_period
  FROM run_meter_list m LEFT JOIN last l USING (meter_id) LEFT JOIN base b USING (meter_id)
"""

# What substitution billed since each meter's last real reading.
RUN_SUBSTITUTED = """
CREATE TEMP TABLE run_substituted AS
SELECT v.meter_id, sum(v.volume) AS volume
  FROM meter_volumes v JOIN run_meters m ON m.meter_id = v.meter_id
 WHERE v.period > m.prev_period AND v.period < %(period)s
   AND v.method IN ('average', 'norm', 'norm_raised')
 GROUP BY v.meter_id
"""

# The volume of each meter in the period, and how it was found.
RUN_METER_VOLUMES = """
CREATE TEMP TABLE run_meter_volumes AS
SELECT m.meter_id, m.account_id, m.service, k.method,
       CASE k.method
           -- a meter's first period: from its first reading (installation) on
           WHEN 'meter' THEN m.cur_value - coalesce(m.prev_value, m.first_value)
           WHEN 'reconciliation' THEN m.cur_value - m.prev_value - s.volume
           WHEN 'average' THEN round((m.prev_value - m.base_value) / k.months, 6)
           WHEN 'norm' THEN coalesce(n.quantity, 0) * m.residents
           ELSE coalesce(n.quantity, 0) * m.residents * m.coefficient END AS volume,
       CASE WHEN k.method IN ('meter', 'reconciliation') THEN m.cur_ts END AS reading_ts,
       coalesce(s.volume, 0) AS substituted
  FROM run_meters m
  LEFT JOIN run_substituted s ON s.meter_id = m.meter_id
  LEFT JOIN run_norms n ON n.region_code = m.region_code AND n.service = m.service
                       AND n.scope = 'individual'
  CROSS JOIN LATERAL (SELECT months_between(m.prev_period, m.base_period) AS months) b
  CROSS JOIN LATERAL (
      SELECT b.months, CASE
          WHEN m.cur_ts IS NOT NULL AND m.prev_ts IS NULL THEN 'meter'
          WHEN m.cur_ts IS NOT NULL AND m.cur_value >= m.prev_value AND s.volume IS NULL
               THEN 'meter'
          WHEN m.cur_ts IS NOT NULL AND m.cur_value >= m.prev_value THEN 'reconciliation'
          WHEN months_between(%(period)s, m.prev_period) <= 3 AND b.months >= 3
               THEN 'average'
          WHEN m.faulty_from < %(next)s::timestamp AT TIME ZONE m.time_zone
               THEN 'norm_raised'
          ELSE 'norm' END AS method) k;
CREATE INDEX ON run_meter_volumes (account_id)
"""

# The services each account has a meter behind a gateway for: rating prices them (and posts
# their money), so the bill prices none of their individual consumption; and what rating
# accrued to the period for them: the charge lines of the period (all revisions, so a
# re-rating's reversal and new lines net out), per account, provider, service and price,
# each price's part rounded to kopecks once. Consumption is priced once; the bill shows it.
RUN_RATED = """
CREATE TEMP TABLE run_gateway_services AS
SELECT DISTINCT m.account_id,
       CASE m.utility WHEN 'heat' THEN 'heating' ELSE m.utility END AS service
  FROM meters m JOIN run_accounts r ON r.account_id = m.account_id
 WHERE m.gateway_id IS NOT NULL;
CREATE TEMP TABLE run_rated AS
WITH parts AS (
    SELECT c.account_id, c.provider_id, c.service, c.unit, coalesce(c.zone, 'all_day') AS zone,
           coalesce(c.band, 0) AS band, c.unit_price, sum(c.quantity) AS volume,
           sum(c.amount) AS amount
      FROM charges c
     WHERE c.period = %(period)s
       AND c.account_id IN (SELECT account_id FROM run_gateway_services)
     GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(c.quantity) <> 0 OR sum(c.amount) <> 0
)
SELECT account_id, provider_id, service, min(unit) AS unit, sum(volume) AS volume,
       sum(round(amount, 2)) AS charged,
       CASE WHEN count(*) = 1 THEN min(unit_price) END AS tariff,
       CASE WHEN count(*) > 1 THEN jsonb_agg(jsonb_build_object(
           'zone', zone, 'band', band, 'volume', trim_scale(volume)::text,
           'tariff', trim_scale(unit_price)::text, 'charged', round(amount, 2)::text)
           ORDER BY zone, band, unit_price) END AS parts
  FROM parts GROUP BY account_id, provider_id, service;
CREATE INDEX ON run_rated (account_id)
"""

# Individual volumes per account and service: metered by people (``read_by_people``), by the
# norm with no meter at all, or rated by rating (a service metered behind a gateway: its volume
# counts in sewerage and against the house meter, its line is rating's accrual). An account
# with both a meter read by people and one behind a gateway for a service has both rows: each
# consumption is priced once, one by the bill, the other by rating.
RUN_VOLUMES = """
CREATE TEMP TABLE run_volumes AS
SELECT v.*, r.chunk FROM (
SELECT account_id, service, true AS read_by_people,
       coalesce(sum(volume) FILTER (WHERE method <> 'reconciliation'), 0) AS volume,
       coalesce(sum(volume) FILTER (WHERE method = 'reconciliation'), 0) AS recalculated,
       coalesce(sum(substituted) FILTER (WHERE method = 'reconciliation'), 0) AS substituted,
       max(reading_ts) FILTER (WHERE method = 'reconciliation') AS reconciled_at,
       CASE WHEN bool_or(method IN ('meter', 'reconciliation')) THEN 'meter'
            WHEN bool_or(method = 'average') THEN 'average'
            WHEN bool_or(method = 'norm_raised') THEN 'norm_raised' ELSE 'norm' END AS method
  FROM run_meter_volumes GROUP BY account_id, service
UNION ALL
SELECT s.account_id, s.service, false, coalesce(n.quantity, 0) * r.residents, 0, 0, NULL,
       'norm'
  FROM run_services s
  JOIN run_accounts r ON r.account_id = s.account_id
  LEFT JOIN run_norms n ON n.region_code = r.region_code AND n.service = s.service
                       AND n.scope = 'individual'
 WHERE s.service IN ('cold_water', 'hot_water', 'electricity', 'gas')
   AND NOT EXISTS (SELECT 1 FROM meters m
                    WHERE m.account_id = s.account_id AND m.utility = s.service)
UNION ALL
SELECT account_id, service, false, sum(volume), 0, 0, NULL, 'rating'
  FROM run_rated GROUP BY account_id, service
) v JOIN run_accounts r USING (account_id)
 ORDER BY r.chunk, v.account_id;
CREATE INDEX ON run_volumes (account_id);
CREATE INDEX ON run_volumes (chunk)
"""

# House meters over the calendar month of the period (local time).
RUN_HOUSE_VOLUMES = """
CREATE TEMP TABLE run_house_volumes AS
SELECT hm.house_id, CASE hm.utility WHEN 'heat' THEN 'heating' ELSE hm.utility END AS service,
       ends.value - starts.value AS volume
  FROM house_meters hm
  JOIN run_houses h ON h.house_id = hm.house_id
  CROSS JOIN LATERAL (
        SELECT value FROM readings r
         WHERE r.meter_id = hm.id AND r.ts >= %(history_from)s
           AND r.ts <= %(next)s::timestamp AT TIME ZONE h.time_zone
         ORDER BY ts DESC LIMIT 1) ends
  CROSS JOIN LATERAL (
        SELECT value FROM readings r
         WHERE r.meter_id = hm.id AND r.ts >= %(history_from)s
           AND r.ts <= %(period)s::timestamp AT TIME ZONE h.time_zone
         ORDER BY ts DESC LIMIT 1) starts;
CREATE INDEX ON run_house_volumes (house_id, service)
"""

# Common property per house: house volume, the apartments' sum, the norm's cap.
RUN_COMMON = """
CREATE TEMP TABLE run_common AS
SELECT h.house_id, u.service, hv.volume AS house_volume,
       coalesce(i.volume, 0) AS individual,
       coalesce(n.quantity, 0) * h.common_area AS cap, h.area
  FROM run_houses h
  CROSS JOIN (VALUES ('cold_water'), ('hot_water'), ('electricity')) AS u(service)
  LEFT JOIN run_house_volumes hv ON hv.house_id = h.house_id AND hv.service = u.service
  LEFT JOIN (SELECT r.house_id, v.service, sum(v.volume + v.recalculated) AS volume
               FROM run_volumes v JOIN run_accounts r ON r.account_id = v.account_id
              GROUP BY r.house_id, v.service) i
         ON i.house_id = h.house_id AND i.service = u.service
  LEFT JOIN run_norms n ON n.region_code = h.region_code AND n.service = u.service
                       AND n.scope = 'common'
"""

# Which run's chunks the session's tables were prepared for.
RUN_PREPARED = """
CREATE TEMP TABLE run_prepared AS
SELECT %(run)s::bigint AS run_id, unnest(%(chunks)s::integer[]) AS chunk
"""

PREPARE: tuple[LiteralString, ...] = (
    RUN_ACCOUNTS, RUN_HOUSES, RUN_SERVICES, RUN_RATES, RUN_NORMS, RUN_READINGS,
    RUN_SUBSTITUTED, RUN_METER_VOLUMES, RUN_RATED, RUN_VOLUMES, RUN_HOUSE_VOLUMES,
    RUN_COMMON, RUN_PREPARED,
)

# The session's prepared tables: analysed once prepared (join plans), dropped before the
# session prepares again and when its work is done.
ANALYSED = ("run_accounts", "run_houses", "run_services", "run_volumes", "run_house_volumes",
            "run_common")
PREPARED = (*ANALYSED, "run_rates", "run_norms", "run_meter_list", "run_seen", "run_meters",
            "run_substituted", "run_meter_volumes", "run_gateway_services", "run_rated",
            "run_prepared")

# --- CHUNK: in each chunk's transaction ----------------------------------------------------

# Every line of the chunk's accounts (its quantity: what its plan's basis counts), priced and
# rounded where one price holds the month; the others are left for billing.billrun.pricing
# (charged NULL).
NEW_LINES = """
CREATE TEMP TABLE new_lines ON COMMIT DROP AS
WITH services AS (
    -- the account's area, residents, house and region came with its services
    SELECT s.*, r.basis, r.derived_from
      FROM run_services s
      JOIN run_rates r ON r.plan_id = s.plan_id AND r.consumer_group = s.consumer_group
     WHERE s.chunk = %(chunk)s
       AND (%(providers)s::text[] IS NULL OR s.provider_id = ANY(%(providers)s::text[]))
), volumes AS (
    -- a plan per unit of volume: the service's own (meters read by people, or the norm) ...
    SELECT s.account_id, s.service, v.volume, v.recalculated, v.substituted, v.reconciled_at,
           v.method, v.read_by_people
      FROM services s JOIN run_volumes v USING (account_id, service)
     WHERE cardinality(s.derived_from) = 0 AND s.service <> 'heating'
       AND v.method <> 'rating' AND v.chunk = %(chunk)s
    UNION ALL
    -- ... the volumes it is derived from (sewerage: cold + hot water) ...
    SELECT s.account_id, s.service, sum(v.volume + v.recalculated), 0, 0, NULL, 'derived',
           false
      FROM services s
      JOIN run_volumes v ON v.account_id = s.account_id AND v.service = ANY(s.derived_from)
                        AND v.chunk = %(chunk)s
     GROUP BY s.account_id, s.service
    UNION ALL
    -- ... heating: the house's meter split by area, or the norm per m²
    SELECT s.account_id, s.service,
           CASE WHEN hv.volume IS NOT NULL THEN round(hv.volume * s.area / h.area, 6)
                ELSE coalesce(n.quantity, 0) * s.area END, 0, 0, NULL,
           CASE WHEN hv.volume IS NOT NULL THEN 'house_meter' ELSE 'norm' END, false
      FROM services s
      JOIN run_houses h ON h.house_id = s.house_id
      LEFT JOIN run_house_volumes hv ON hv.house_id = s.house_id AND hv.service = 'heating'
      LEFT JOIN run_norms n ON n.region_code = s.region_code AND n.service = 'heating'
                           AND n.scope = 'individual'
     WHERE s.service = 'heating' AND cardinality(s.derived_from) = 0
), quantities AS (
    SELECT s.account_id, s.service, false AS common, s.provider_id, s.plan_id, s.consumer_group,
           s.changing,
           CASE s.basis WHEN 'm2' THEN s.area WHEN 'resident' THEN s.residents
                        ELSE v.volume END AS volume,
           CASE WHEN s.basis IN ('m2', 'resident') THEN 0 ELSE v.recalculated END AS recalculated,
           CASE WHEN s.basis IN ('m2', 'resident') THEN 0 ELSE v.substituted END AS substituted,
           v.reconciled_at,
           CASE s.basis WHEN 'm2' THEN 'area' WHEN 'resident' THEN 'residents'
                        ELSE v.method END AS method
      FROM services s LEFT JOIN volumes v USING (account_id, service)
     WHERE (s.basis IN ('m2', 'resident') OR v.account_id IS NOT NULL)
       -- a service metered behind a gateway is rating's, but for what meters read by people
       -- measured beside it
       AND (v.read_by_people OR NOT EXISTS (
            SELECT 1 FROM run_gateway_services g
             WHERE (g.account_id, g.service) = (s.account_id, s.service)))
    UNION ALL
    -- common property: by the volume of the service's own plan
    SELECT s.account_id, s.service, true, s.provider_id, s.plan_id, s.consumer_group, s.changing,
           round(CASE WHEN m.house_volume IS NOT NULL
                      THEN least(greatest(m.house_volume - m.individual, 0), m.cap)
                      ELSE m.cap END * s.area / m.area, 6), 0, 0, NULL,
           CASE WHEN m.house_volume IS NOT NULL THEN 'house_meter' ELSE 'norm' END
      FROM services s JOIN run_common m ON m.house_id = s.house_id AND m.service = s.service
     WHERE s.basis NOT IN ('m2', 'resident')
)
SELECT q.account_id, q.service, q.common, q.provider_id, r.basis AS unit, q.volume,
       p.price AS tariff, r.ref AS tariff_ref, q.method,
       round(q.volume * p.price, 2) AS charged, round(q.recalculated * p.price, 2)
           AS recalculation,
       CASE WHEN q.recalculated <> 0 THEN format(
           'показания от %%s: расход по счётчику %%s минус %%s, начисленные без показаний',
           to_char(q.reconciled_at AT TIME ZONE (SELECT c.time_zone FROM run_accounts c
                                                  WHERE c.account_id = q.account_id),
                   'DD.MM.YYYY'),
           round(q.recalculated + q.substituted, 3), round(q.substituted, 3))
       ELSE '' END AS recalculation_reason,
       0::numeric(14, 2) AS benefit, NULL::jsonb AS parts, q.plan_id, q.consumer_group,
       q.recalculated, false AS rated
  FROM quantities q
  JOIN run_rates r ON r.plan_id = q.plan_id AND r.consumer_group = q.consumer_group
  CROSS JOIN LATERAL (SELECT CASE WHEN NOT q.changing THEN r.price END AS price) p
UNION ALL
-- what rating accrued for the meters behind gateways, shown as it is: no price of the bill's
SELECT r.account_id, r.service, false, r.provider_id, r.unit, r.volume, r.tariff, 'rating',
       'rating', r.charged, 0, '', 0, r.parts, NULL, NULL, 0, true
  FROM run_rated r JOIN run_accounts c ON c.account_id = r.account_id AND c.chunk = %(chunk)s
 WHERE %(providers)s::text[] IS NULL OR r.provider_id = ANY(%(providers)s::text[])
"""

# The substituted volumes of the chunk's meters, kept for the periods after.
SUBSTITUTED = """
SELECT v.meter_id, v.account_id, v.volume, v.method
  FROM run_meter_volumes v JOIN run_accounts c ON c.account_id = v.account_id
 WHERE c.chunk = %(chunk)s AND v.method IN ('average', 'norm', 'norm_raised')
"""

CHUNK: tuple[LiteralString, ...] = (NEW_LINES,)

# The run's accounts, for UNPRICED (a table the planner knows the size of).
RUN_SELECTED = """
CREATE TEMP TABLE run_selected ON COMMIT DROP AS
SELECT unnest(accounts) AS account_id FROM bill_run_chunks WHERE run_id = %(run)s;
ANALYZE run_selected
"""

# Services of the run's accounts with no plan, or no version of it in force on the period's
# first day: a run refuses to start with any. Each (account, service) is on the plan that
# RUN_SERVICES finds: the account's choice, else the provider's default. The suspects are the
# services whose default plan or a chosen plan is unpriced (usually none: then no account is
# looked at one by one); of those, the accounts' own services and plans decide.
UNPRICED = """
WITH pairs AS MATERIALIZED (
    SELECT DISTINCT s.provider_id, s.service
      FROM account_services s JOIN run_selected x ON x.account_id = s.account_id
     WHERE s.valid_from <= %(period)s AND (s.valid_to IS NULL OR s.valid_to > %(period)s)
), chosen AS MATERIALIZED (
    SELECT DISTINCT ON (c.account_id, c.provider_id, c.service) c.account_id, c.provider_id,
           c.service, c.plan_id
      FROM account_plans c JOIN run_selected x ON x.account_id = c.account_id
     WHERE c.valid_from <= %(period)s
     ORDER BY c.account_id, c.provider_id, c.service, c.valid_from DESC
), suspects AS MATERIALIZED (
    SELECT p.service FROM pairs p
      LEFT JOIN tariff_plans d
             ON d.provider_id = p.provider_id AND d.service = p.service AND d.is_default
     WHERE d.id IS NULL OR plan_version(d.id, %(period)s) IS NULL
    UNION
    SELECT service FROM chosen WHERE plan_version(plan_id, %(period)s) IS NULL
), taken AS (
    SELECT DISTINCT ON (s.account_id, s.service) s.account_id, s.service, s.provider_id
      FROM account_services s JOIN run_selected x ON x.account_id = s.account_id
     WHERE s.valid_from <= %(period)s AND (s.valid_to IS NULL OR s.valid_to > %(period)s)
       AND s.service IN (SELECT service FROM suspects)
       AND EXISTS (SELECT 1 FROM suspects)
     ORDER BY s.account_id, s.service, s.valid_from DESC
), plans AS MATERIALIZED (
    SELECT DISTINCT t.provider_id, t.service, coalesce(c.plan_id, d.id) AS plan_id
      FROM taken t
      LEFT JOIN chosen c
             ON (c.account_id, c.provider_id, c.service)
                = (t.account_id, t.provider_id, t.service)
      LEFT JOIN tariff_plans d
             ON d.provider_id = t.provider_id AND d.service = t.service AND d.is_default
)
SELECT DISTINCT provider_id, service FROM plans
 WHERE (plan_id IS NULL OR plan_version(plan_id, %(period)s) IS NULL)
   AND (%(providers)s::text[] IS NULL OR provider_id = ANY(%(providers)s::text[]))
 ORDER BY 1, 2
"""


async def execute_all(conn: psycopg.AsyncConnection[Any], steps: tuple[LiteralString, ...],
                      params: dict[str, Any]) -> None:
    """Execute each statement of ``steps`` (statements of a step split on ``;`` + newline)."""
    for step in steps:
        for statement in step.split(";\n"):
            await conn.execute(statement, params)
