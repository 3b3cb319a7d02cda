"""The bill of a period, computed set-based in SQL (no loop per account), in two stages.

``PREPARE`` runs once when a run starts, over every account of the houses of the selected
accounts, into the run's own schema (``bill_run_<id>``, dropped when the run finishes): the
volume of each meter read by people, each account's individual volumes, each house's volumes
from its house meters. ``CHUNK`` runs in each chunk's transaction and leaves ``new_lines``:
one line per service of each selected account (and provider), one more per common-property
(СОИ) service, priced and rounded to kopecks once (half-up). The rules (DOMAIN.md §3):

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
- Maintenance and capital repair per m², waste per registered resident.
- Benefits: the account's share of a service's charge, for grants without a benefit rule (a
  grant whose category is a rule's code is the tariffs' benefits job's: ``meterline tariffs
  benefits`` prices and posts it).

Readings are looked at over 14 months before the period (the history an average needs).
Prices come from ``bill_prices(period)`` only.
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg

# --- PREPARE: once a run, in the run's schema ---------------------------------------------

# Every account of the houses of the selected accounts; the selected ones carry their chunk.
RUN_ACCOUNTS = """
CREATE TABLE run_accounts AS
SELECT a.id AS account_id, a.area, a.residents, p.house_id, c.region_code, ad.time_zone,
       sel.chunk
  FROM accounts a
  JOIN premises p ON p.id = a.premises_id
  JOIN houses h ON h.id = p.house_id
  JOIN streets s ON s.id = h.street_id
  JOIN cities c ON c.id = s.city_id
  JOIN addresses ad ON ad.id = a.address_id
  LEFT JOIN (SELECT chunk, unnest(accounts) AS account_id FROM public.bill_run_chunks
              WHERE run_id = %(run)s) sel ON sel.account_id = a.id
 WHERE p.house_id IN (SELECT p2.house_id FROM public.bill_run_chunks c2
                        CROSS JOIN unnest(c2.accounts) AS x(account_id)
                        JOIN accounts a2 ON a2.id = x.account_id
                        JOIN premises p2 ON p2.id = a2.premises_id
                       WHERE c2.run_id = %(run)s);
CREATE INDEX ON run_accounts (chunk);
CREATE UNIQUE INDEX ON run_accounts (account_id)
"""

RUN_HOUSES = """
CREATE TABLE run_houses AS
SELECT r.house_id, max(h.common_area) AS common_area, max(r.time_zone) AS time_zone,
       coalesce(max(h.total_area), sum(r.area)) AS area, max(r.region_code) AS region_code
  FROM run_accounts r JOIN houses h ON h.id = r.house_id
 GROUP BY r.house_id
"""

RUN_SERVICES = """
CREATE TABLE run_services AS
SELECT DISTINCT ON (s.account_id, s.service) s.account_id, s.service, s.provider_id
  FROM account_services s JOIN run_accounts r ON r.account_id = s.account_id
 WHERE s.valid_from <= %(period)s AND (s.valid_to IS NULL OR s.valid_to > %(period)s)
 ORDER BY s.account_id, s.service, s.valid_from DESC;
CREATE INDEX ON run_services (account_id)
"""

RUN_NORMS = """
CREATE TABLE run_norms AS
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
CREATE TABLE run_meter_list AS
SELECT m.id AS meter_id, m.account_id, m.utility AS service, r.time_zone, r.residents,
       r.region_code,
       CASE m.utility WHEN 'electricity' THEN 'active_import' ELSE 'volume' END AS register
  FROM meters m JOIN run_accounts r ON r.account_id = m.account_id
 WHERE m.gateway_id IS NULL AND m.utility IN ('cold_water', 'hot_water', 'electricity', 'gas');
CREATE TABLE run_seen AS
SELECT m.meter_id, x.ts, x.value, reading_period(x.ts, m.time_zone, %(cutoff_day)s) AS period
  FROM readings x JOIN run_meter_list m ON m.meter_id = x.meter_id AND m.register = x.register
 WHERE x.ts >= %(history_from)s AND x.ts < %(history_to)s;
CREATE TABLE run_meters AS
WITH last AS (
    SELECT meter_id,
           max(ts) FILTER (WHERE period = %(period)s) AS cur_ts,
           (array_agg(value ORDER BY ts DESC) FILTER (WHERE period = %(period)s))[1]
               AS cur_value,
           max(ts) FILTER (WHERE period < %(period)s) AS prev_ts,
           (array_agg(value ORDER BY ts DESC) FILTER (WHERE period < %(period)s))[1]
               AS prev_value,
           max(period) FILTER (WHERE period < %(period)s) AS prev_period,
           min(ts) AS first_ts
      FROM run_seen WHERE period <= %(period)s GROUP BY meter_id
), base AS (
    SELECT DISTINCT ON (s.meter_id) s.meter_id, s.ts AS base_ts, s.value AS base_value,
           s.period AS base_period
      FROM run_seen s JOIN last l USING (meter_id)
     WHERE s.period <= (l.prev_period - interval '6 months')::date OR s.ts = l.first_ts
     ORDER BY s.meter_id, s.ts DESC
)
SELECT m.*, l.cur_ts, l.cur_value, l.prev_ts, l.prev_value, l.prev_period, b.base_ts,
       b.base_value, b.base_period
  FROM run_meter_list m LEFT JOIN last l USING (meter_id) LEFT JOIN base b USING (meter_id)
"""

# What substitution billed since each meter's last real reading.
RUN_SUBSTITUTED = """
CREATE TABLE run_substituted AS
SELECT v.meter_id, sum(v.volume) AS volume
  FROM meter_volumes v JOIN run_meters m ON m.meter_id = v.meter_id
 WHERE v.period > m.prev_period AND v.period < %(period)s
   AND v.method IN ('average', 'norm')
 GROUP BY v.meter_id
"""

# The volume of each meter in the period, and how it was found.
RUN_METER_VOLUMES = """
CREATE TABLE run_meter_volumes AS
SELECT m.meter_id, m.account_id, m.service, k.method,
       CASE k.method
           WHEN 'meter' THEN coalesce(m.cur_value - m.prev_value, 0)
           WHEN 'reconciliation' THEN m.cur_value - m.prev_value - s.volume
           WHEN 'average' THEN round((m.prev_value - m.base_value) / k.months, 6)
           ELSE coalesce(n.quantity, 0) * m.residents END AS volume,
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
          ELSE 'norm' END AS method) k;
CREATE INDEX ON run_meter_volumes (account_id)
"""

# Individual volumes per account and service: metered by people, or by the norm with no
# meter at all. A service metered behind a gateway is rated (and posted) by rating: it gets
# no line here.
RUN_VOLUMES = """
CREATE TABLE run_volumes AS
SELECT account_id, service,
       coalesce(sum(volume) FILTER (WHERE method <> 'reconciliation'), 0) AS volume,
       coalesce(sum(volume) FILTER (WHERE method = 'reconciliation'), 0) AS recalculated,
       coalesce(sum(substituted) FILTER (WHERE method = 'reconciliation'), 0) AS substituted,
       max(reading_ts) FILTER (WHERE method = 'reconciliation') AS reconciled_at,
       CASE WHEN bool_or(method IN ('meter', 'reconciliation')) THEN 'meter'
            WHEN bool_or(method = 'average') THEN 'average' ELSE 'norm' END AS method
  FROM run_meter_volumes GROUP BY account_id, service
UNION ALL
SELECT s.account_id, s.service, coalesce(n.quantity, 0) * r.residents, 0, 0, NULL, 'norm'
  FROM run_services s
  JOIN run_accounts r ON r.account_id = s.account_id
  LEFT JOIN run_norms n ON n.region_code = r.region_code AND n.service = s.service
                       AND n.scope = 'individual'
 WHERE s.service IN ('cold_water', 'hot_water', 'electricity', 'gas')
   AND NOT EXISTS (SELECT 1 FROM meters m
                    WHERE m.account_id = s.account_id AND m.utility = s.service);
CREATE INDEX ON run_volumes (account_id)
"""

# House meters over the calendar month of the period (local time).
RUN_HOUSE_VOLUMES = """
CREATE TABLE run_house_volumes AS
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
         ORDER BY ts DESC LIMIT 1) starts
"""

# Common property per house: house volume, the apartments' sum, the norm's cap.
RUN_COMMON = """
CREATE TABLE run_common AS
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

RUN_PRICES = """
CREATE TABLE run_prices AS SELECT * FROM bill_prices(%(period)s)
"""

PREPARE: tuple[LiteralString, ...] = (
    RUN_ACCOUNTS, RUN_HOUSES, RUN_SERVICES, RUN_NORMS, RUN_READINGS, RUN_SUBSTITUTED,
    RUN_METER_VOLUMES, RUN_VOLUMES, RUN_HOUSE_VOLUMES, RUN_COMMON, RUN_PRICES,
)

# --- CHUNK: in each chunk's transaction ----------------------------------------------------

# Every line of the chunk's accounts, before prices.
QUANTITIES = """
CREATE TEMP TABLE bill_quantities ON COMMIT DROP AS
WITH chunk AS (SELECT * FROM run_accounts WHERE chunk = %(chunk)s),
services AS (
    SELECT s.* FROM run_services s JOIN chunk c ON c.account_id = s.account_id
     WHERE %(providers)s::text[] IS NULL OR s.provider_id = ANY(%(providers)s::text[])
)
SELECT s.account_id, s.service, false AS common, s.provider_id, v.volume, v.recalculated,
       v.substituted, v.reconciled_at, v.method
  FROM services s JOIN run_volumes v USING (account_id, service)
UNION ALL
SELECT s.account_id, s.service, false, s.provider_id,
       sum(v.volume + v.recalculated), 0, 0, NULL, 'derived'
  FROM services s JOIN run_volumes v
    ON v.account_id = s.account_id AND v.service IN ('cold_water', 'hot_water')
 WHERE s.service = 'sewerage'
 GROUP BY s.account_id, s.service, s.provider_id
UNION ALL
SELECT s.account_id, s.service, false, s.provider_id,
       CASE WHEN hv.volume IS NOT NULL THEN round(hv.volume * c.area / h.area, 6)
            ELSE coalesce(n.quantity, 0) * c.area END, 0, 0, NULL,
       CASE WHEN hv.volume IS NOT NULL THEN 'house_meter' ELSE 'norm' END
  FROM services s
  JOIN chunk c ON c.account_id = s.account_id
  JOIN run_houses h ON h.house_id = c.house_id
  LEFT JOIN run_house_volumes hv ON hv.house_id = c.house_id AND hv.service = 'heating'
  LEFT JOIN run_norms n ON n.region_code = c.region_code AND n.service = 'heating'
                       AND n.scope = 'individual'
 WHERE s.service = 'heating'
UNION ALL
SELECT s.account_id, s.service, true, s.provider_id,
       round(CASE WHEN m.house_volume IS NOT NULL
                  THEN least(greatest(m.house_volume - m.individual, 0), m.cap)
                  ELSE m.cap END * c.area / m.area, 6), 0, 0, NULL,
       CASE WHEN m.house_volume IS NOT NULL THEN 'house_meter' ELSE 'norm' END
  FROM services s
  JOIN chunk c ON c.account_id = s.account_id
  JOIN run_common m ON m.house_id = c.house_id AND m.service = s.service
UNION ALL
SELECT s.account_id, s.service, false, s.provider_id,
       CASE WHEN s.service = 'waste' THEN c.residents ELSE c.area END, 0, 0, NULL,
       CASE WHEN s.service = 'waste' THEN 'residents' ELSE 'area' END
  FROM services s JOIN chunk c ON c.account_id = s.account_id
 WHERE s.service IN ('maintenance', 'capital_repair', 'waste')
"""

# Priced and rounded, with benefits.
NEW_LINES = """
CREATE TEMP TABLE new_lines ON COMMIT DROP AS
SELECT q.account_id, q.service, q.common, q.provider_id, p.unit, q.volume,
       p.price AS tariff, p.tariff_ref, q.method, l.charged, l.recalculation,
       CASE WHEN l.recalculation <> 0 THEN format(
           'показания от %%s: расход по счётчику %%s минус %%s, начисленные без показаний',
           to_char(q.reconciled_at AT TIME ZONE c.time_zone, 'DD.MM.YYYY'),
           round(q.recalculated + q.substituted, 3), round(q.substituted, 3))
       ELSE '' END AS recalculation_reason,
       coalesce(round(l.charged * b.share, 2), 0) AS benefit
  FROM bill_quantities q
  JOIN run_accounts c ON c.account_id = q.account_id
  JOIN run_prices p ON p.provider_id = q.provider_id AND p.service = q.service
  LEFT JOIN (SELECT g.account_id, g.service, sum(g.share) AS share FROM account_benefits g
              WHERE g.account_id IN (SELECT account_id FROM run_accounts
                                      WHERE chunk = %(chunk)s)
                AND g.valid_from <= %(period)s
                AND (g.valid_to IS NULL OR g.valid_to > %(period)s)
                -- a grant with a benefit rule is priced and posted by the tariffs' benefits
                AND NOT EXISTS (SELECT 1 FROM benefit_rules r
                                 WHERE r.code = g.category AND r.service = g.service)
              GROUP BY g.account_id, g.service) b
         ON b.account_id = q.account_id AND b.service = q.service AND NOT q.common
  CROSS JOIN LATERAL (SELECT round(q.volume * p.price, 2) AS charged,
                             round(q.recalculated * p.price, 2) AS recalculation) l
"""

# The substituted volumes of the chunk's meters, kept for the periods after.
SUBSTITUTED = """
SELECT v.meter_id, v.account_id, v.volume, v.method
  FROM run_meter_volumes v JOIN run_accounts c ON c.account_id = v.account_id
 WHERE c.chunk = %(chunk)s AND v.method IN ('average', 'norm')
"""

CHUNK: tuple[LiteralString, ...] = (QUANTITIES, NEW_LINES)

# Services of selected accounts with no price in force: a run refuses to start with any.
UNPRICED = """
SELECT DISTINCT s.provider_id, s.service
  FROM account_services s
  JOIN bill_run_chunks c ON c.run_id = %(run)s AND s.account_id = ANY(c.accounts)
 WHERE s.valid_from <= %(period)s AND (s.valid_to IS NULL OR s.valid_to > %(period)s)
   AND (%(providers)s::text[] IS NULL OR s.provider_id = ANY(%(providers)s::text[]))
   AND NOT EXISTS (SELECT 1 FROM bill_prices(%(period)s) p
                    WHERE p.provider_id = s.provider_id AND p.service = s.service)
 ORDER BY 1, 2
"""


async def execute_all(conn: psycopg.AsyncConnection[Any], steps: tuple[LiteralString, ...],
                      params: dict[str, Any]) -> None:
    """Execute each statement of ``steps`` (statements of a step split on ``;`` + newline)."""
    for step in steps:
        for statement in step.split(";\n"):
            await conn.execute(statement, params)
