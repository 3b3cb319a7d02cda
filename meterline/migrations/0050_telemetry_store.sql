-- The telemetry store (issue #6): readings flagged when their billing period was already
-- closed, and interval aggregates at 15 minutes and 1 hour in UTC, from which days, months and
-- tariff zones are derived at query time in the account's own time zone.
--
-- Two paths, the same relation names and columns, so the same queries answer on both:
-- * TimescaleDB (community licence): readings_15m and readings_1h are hierarchical continuous
--   aggregates with real-time aggregation; TimescaleDB's jobs refresh them, compress old
--   chunks and drop data past retention.
-- * plain PostgreSQL: readings_15m and readings_1h are views of rollup tables
--   (readings_15m_store, readings_1h_store) holding the buckets before a watermark, plus the
--   same aggregation computed live past it (what TimescaleDB calls real-time aggregation).
--   refresh_readings_rollups() moves the watermarks on and recomputes the buckets of readings
--   that arrived late (below the watermark: the writer logs them in readings_invalidations);
--   maintain_readings() keeps monthly partitions ahead and drops the ones past retention.
--
-- Retention (both paths): raw readings and 15-minute buckets 1,100 days (the 3-year
-- limitation on billing claims, and a margin); hourly buckets 3,660 days.
--
-- An aggregate row (per meter, register and bucket) keeps the bucket's first and last reading
-- (time and value) and how many readings it holds; the hourly one also how many of its four
-- quarter-hours hold a reading. Consumption is derived from these at query time
-- (meterline/consumption.py): readings are cumulative, so consumption between two instants is
-- the difference of the register's level at them.

-- Billing periods per provider and month (the month's first day in the account's time zone).
-- The ledger's migration owns this table; it is created here only if it is not there yet, with
-- the columns the readings writer reads.
CREATE TABLE IF NOT EXISTS billing_periods (
    provider_id  text NOT NULL REFERENCES providers,
    period       date NOT NULL CHECK (extract(day FROM period) = 1),
    closed_at    timestamptz,
    PRIMARY KEY (provider_id, period)
);

-- Set by the writer when the reading's billing period was already closed when it was stored;
-- the ledger's correction reads it. A reading belongs to the period holding the instant just
-- before it (a reading at local midnight on the 1st closes the previous month).
ALTER TABLE readings ADD COLUMN period_closed boolean NOT NULL DEFAULT false;
CREATE INDEX readings_in_closed_periods ON readings (meter_id, register, ts) WHERE period_closed;

-- Buckets before a rollup's watermark are materialized (plain path). On TimescaleDB the
-- watermarks stay at -infinity: TimescaleDB keeps its own.
CREATE TABLE readings_rollups (
    name       text PRIMARY KEY CHECK (name IN ('15m', '1h')),
    watermark  timestamptz NOT NULL
);

-- Readings stored below the 15-minute watermark, per series: their buckets are recomputed by
-- the next refresh_readings_rollups().
CREATE TABLE readings_invalidations (
    meter_id  text NOT NULL,
    register  text NOT NULL,
    lo        timestamptz NOT NULL,
    hi        timestamptz NOT NULL
);

DO $$
DECLARE
    timescale constant boolean :=
        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
        AND coalesce(current_setting('timescaledb.license', true), '') = 'timescale';
    start constant timestamptz := date_bin(
        '1 hour', coalesce((SELECT min(ts) FROM readings), now()), timestamptz '2000-01-01Z');
BEGIN
    IF timescale THEN
        INSERT INTO readings_rollups VALUES ('15m', '-infinity'), ('1h', '-infinity');

        CREATE MATERIALIZED VIEW readings_15m
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT meter_id, register, time_bucket('15 minutes', ts) AS bucket,
               min(ts) AS first_ts, first(value, ts) AS first_value,
               max(ts) AS last_ts, last(value, ts) AS last_value,
               count(*) AS readings
          FROM readings
         GROUP BY meter_id, register, time_bucket('15 minutes', ts)
        WITH NO DATA;

        CREATE MATERIALIZED VIEW readings_1h
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT meter_id, register, time_bucket('1 hour', bucket) AS bucket,
               min(first_ts) AS first_ts, first(first_value, first_ts) AS first_value,
               max(last_ts) AS last_ts, last(last_value, last_ts) AS last_value,
               sum(readings)::bigint AS readings, count(*) AS quarters
          FROM readings_15m
         GROUP BY meter_id, register, time_bucket('1 hour', bucket)
        WITH NO DATA;

        -- late readings of any age are taken in (start_offset NULL: the refresh redoes only
        -- the buckets TimescaleDB's invalidation log names)
        PERFORM add_continuous_aggregate_policy('readings_15m', start_offset => NULL,
            end_offset => interval '15 minutes', schedule_interval => interval '1 minute');
        PERFORM add_continuous_aggregate_policy('readings_1h', start_offset => NULL,
            end_offset => interval '1 hour', schedule_interval => interval '5 minutes');

        ALTER TABLE readings SET (timescaledb.compress,
            timescaledb.compress_segmentby = 'meter_id, register',
            timescaledb.compress_orderby = 'ts');
        PERFORM add_compression_policy('readings', compress_after => interval '7 days');
        ALTER MATERIALIZED VIEW readings_15m SET (timescaledb.compress = true);
        PERFORM add_compression_policy('readings_15m', compress_after => interval '35 days');

        PERFORM add_retention_policy('readings', drop_after => interval '1100 days');
        PERFORM add_retention_policy('readings_15m', drop_after => interval '1100 days');
        PERFORM add_retention_policy('readings_1h', drop_after => interval '3660 days');
    ELSE
        INSERT INTO readings_rollups VALUES ('15m', start), ('1h', start);

        CREATE TABLE readings_15m_store (
            meter_id     text NOT NULL,
            register     text NOT NULL,
            bucket       timestamptz NOT NULL,
            first_ts     timestamptz NOT NULL,
            first_value  numeric(20, 6) NOT NULL,
            last_ts      timestamptz NOT NULL,
            last_value   numeric(20, 6) NOT NULL,
            readings     bigint NOT NULL,
            PRIMARY KEY (meter_id, register, bucket)
        );
        CREATE TABLE readings_1h_store (
            LIKE readings_15m_store INCLUDING ALL,
            quarters     bigint NOT NULL
        );

        CREATE VIEW readings_15m AS
        SELECT meter_id, register, bucket, first_ts, first_value, last_ts, last_value, readings
          FROM readings_15m_store
        UNION ALL
        SELECT meter_id, register, date_bin('15 minutes', ts, timestamptz '2000-01-01Z'),
               min(ts), (array_agg(value ORDER BY ts))[1],
               max(ts), (array_agg(value ORDER BY ts DESC))[1],
               count(*)
          FROM readings
         WHERE ts >= (SELECT watermark FROM readings_rollups WHERE name = '15m')
         GROUP BY meter_id, register, date_bin('15 minutes', ts, timestamptz '2000-01-01Z');

        CREATE VIEW readings_1h AS
        SELECT meter_id, register, bucket, first_ts, first_value, last_ts, last_value,
               readings, quarters
          FROM readings_1h_store
        UNION ALL
        SELECT meter_id, register, date_bin('1 hour', bucket, timestamptz '2000-01-01Z'),
               min(first_ts), (array_agg(first_value ORDER BY first_ts))[1],
               max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1],
               sum(readings)::bigint, count(*)
          FROM readings_15m
         WHERE bucket >= (SELECT watermark FROM readings_rollups WHERE name = '1h')
         GROUP BY meter_id, register, date_bin('1 hour', bucket, timestamptz '2000-01-01Z');
    END IF;
END
$$;

-- Plain path: materialize the buckets that ended at least one bucket ago, and recompute the
-- buckets of readings stored late. One refresher at a time (others return at once); a no-op
-- on TimescaleDB. Returns the number of 15-minute buckets written.
CREATE FUNCTION refresh_readings_rollups() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    origin constant timestamptz := timestamptz '2000-01-01Z';
    old15 timestamptz;
    old1h timestamptz;
    new15 timestamptz;
    new1h timestamptz;
    redone bigint;
    advanced bigint;
BEGIN
    IF to_regclass('readings_15m_store') IS NULL
       OR NOT pg_try_advisory_xact_lock(hashtext('refresh_readings_rollups')) THEN
        RETURN 0;
    END IF;
    -- moving the watermarks waits for writers holding them (FOR SHARE): what they stored is
    -- committed before the statements below take their snapshots, and writers that come
    -- after see the new watermark and log what they store below it
    SELECT watermark INTO old15 FROM readings_rollups WHERE name = '15m';
    SELECT watermark INTO old1h FROM readings_rollups WHERE name = '1h';
    new15 := greatest(old15, date_bin('15 minutes', now(), origin) - interval '15 minutes');
    new1h := greatest(old1h, date_bin('1 hour', new15, origin));
    UPDATE readings_rollups SET watermark = new15 WHERE name = '15m';
    UPDATE readings_rollups SET watermark = new1h WHERE name = '1h';

    -- 1. late readings: recompute their 15-minute buckets, then their hours
    DROP TABLE IF EXISTS rollup_redo;
    CREATE TEMP TABLE rollup_redo (
        meter_id text, register text, lo timestamptz, hi timestamptz,
        lo_hour timestamptz, hi_hour timestamptz
    ) ON COMMIT DROP;
    WITH taken AS (DELETE FROM readings_invalidations RETURNING *)
    INSERT INTO rollup_redo
    SELECT meter_id, register,
           date_bin('15 minutes', min(lo), origin),
           least(date_bin('15 minutes', max(hi), origin) + interval '15 minutes', old15),
           date_bin('1 hour', min(lo), origin),
           least(date_bin('1 hour', max(hi), origin) + interval '1 hour', old1h)
      FROM taken GROUP BY meter_id, register;

    DELETE FROM readings_15m_store s USING rollup_redo r
     WHERE s.meter_id = r.meter_id AND s.register = r.register
       AND s.bucket >= r.lo AND s.bucket < r.hi;
    INSERT INTO readings_15m_store
    SELECT x.meter_id, x.register, date_bin('15 minutes', x.ts, origin),
           min(x.ts), (array_agg(x.value ORDER BY x.ts))[1],
           max(x.ts), (array_agg(x.value ORDER BY x.ts DESC))[1], count(*)
      FROM rollup_redo r
      JOIN readings x ON x.meter_id = r.meter_id AND x.register = r.register
                     AND x.ts >= r.lo AND x.ts < r.hi
     GROUP BY 1, 2, 3;
    GET DIAGNOSTICS redone = ROW_COUNT;

    DELETE FROM readings_1h_store s USING rollup_redo r
     WHERE s.meter_id = r.meter_id AND s.register = r.register
       AND s.bucket >= r.lo_hour AND s.bucket < r.hi_hour;
    INSERT INTO readings_1h_store
    SELECT q.meter_id, q.register, date_bin('1 hour', q.bucket, origin),
           min(q.first_ts), (array_agg(q.first_value ORDER BY q.first_ts))[1],
           max(q.last_ts), (array_agg(q.last_value ORDER BY q.last_ts DESC))[1],
           sum(q.readings), count(*)
      FROM rollup_redo r
      JOIN readings_15m_store q ON q.meter_id = r.meter_id AND q.register = r.register
                               AND q.bucket >= r.lo_hour AND q.bucket < r.hi_hour
     GROUP BY 1, 2, 3;

    -- 2. move the watermarks on: the buckets between the old and the new one
    INSERT INTO readings_15m_store
    SELECT meter_id, register, date_bin('15 minutes', ts, origin),
           min(ts), (array_agg(value ORDER BY ts))[1],
           max(ts), (array_agg(value ORDER BY ts DESC))[1], count(*)
      FROM readings
     WHERE ts >= old15 AND ts < new15
     GROUP BY 1, 2, 3;
    GET DIAGNOSTICS advanced = ROW_COUNT;

    INSERT INTO readings_1h_store
    SELECT meter_id, register, date_bin('1 hour', bucket, origin),
           min(first_ts), (array_agg(first_value ORDER BY first_ts))[1],
           max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1],
           sum(readings), count(*)
      FROM readings_15m_store
     WHERE bucket >= old1h AND bucket < new1h
     GROUP BY 1, 2, 3;
    RETURN redone + advanced;
END
$$;

-- Plain path upkeep, called by the bridge twice a day: monthly partitions `months_ahead`
-- months ahead, partitions (and rollup rows) past retention dropped. Returns the partitions
-- created and dropped. A no-op on TimescaleDB, whose jobs do the same.
CREATE FUNCTION maintain_readings(months_ahead integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    keep_raw constant interval := interval '1100 days';
    keep_hourly constant interval := interval '3660 days';
    changed integer;
    part record;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass) <> 'p' THEN
        RETURN 0;
    END IF;
    changed := ensure_readings_partitions(0, months_ahead);
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]
                   ::timestamptz AS upper
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'readings'::regclass AND c.relname <> 'readings_default'
    LOOP
        IF part.upper <= now() - keep_raw THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            changed := changed + 1;
        END IF;
    END LOOP;
    DELETE FROM readings_default WHERE ts < now() - keep_raw;
    DELETE FROM readings_15m_store WHERE bucket < now() - keep_raw;
    DELETE FROM readings_1h_store WHERE bucket < now() - keep_hourly;
    RETURN changed;
END
$$;
