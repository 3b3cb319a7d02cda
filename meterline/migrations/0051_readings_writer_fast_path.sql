-- The readings writer stores a fresh batch by COPY straight into readings, and takes the
-- merge (staging + ON CONFLICT) only for a batch holding readings stored before or readings
-- that may belong to a closed billing period. What it must not miss while it writes, the rollups'
-- threshold and the closed periods, changes only under an exclusive lock that waits for the
-- writers in flight: writers hold it shared for their transaction (pg_advisory_xact_lock_shared
-- on this key), so no row-level lock is taken per batch.

-- The key of that lock. A transaction that closes a billing period calls it first:
--   SELECT hold_readings_writers();
-- readings committed before it were stored while the period was open; readings stored after
-- the transaction commits see the period closed and are flagged.
CREATE FUNCTION readings_writers_lock() RETURNS bigint LANGUAGE sql IMMUTABLE
    AS $$ SELECT 7305839470266513410::bigint $$;

CREATE FUNCTION hold_readings_writers() RETURNS void LANGUAGE sql
    AS $$ SELECT pg_advisory_xact_lock(readings_writers_lock()) $$;

-- Below the threshold the writer logs what it stores (readings_invalidations). The threshold
-- moves first, in a short transaction under the lock; the rollups are materialized up to it
-- afterwards without holding writers back, and the watermark (where the views switch from
-- the rollup tables to live aggregation) follows in the same transaction as those rows.
ALTER TABLE readings_rollups ADD COLUMN threshold timestamptz;
UPDATE readings_rollups SET threshold = watermark;
ALTER TABLE readings_rollups ALTER COLUMN threshold SET NOT NULL;

-- Step 1 of a refresh (its own transaction): move the 15-minute threshold to the start of
-- the last whole bucket that ended at least one bucket ago. A no-op on TimescaleDB.
CREATE FUNCTION raise_readings_threshold() RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    moved timestamptz;
BEGIN
    IF to_regclass('readings_15m_store') IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM hold_readings_writers();
    UPDATE readings_rollups
       SET threshold = greatest(threshold, date_bin('15 minutes', now(),
                                timestamptz '2000-01-01Z') - interval '15 minutes')
     WHERE name = '15m'
    RETURNING threshold INTO moved;
    RETURN moved;
END
$$;

-- Step 2 (its own transaction): materialize up to the threshold, redo late readings' buckets.
CREATE OR REPLACE FUNCTION refresh_readings_rollups() RETURNS bigint LANGUAGE plpgsql AS $$
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
    SELECT watermark, threshold INTO old15, new15 FROM readings_rollups WHERE name = '15m';
    SELECT watermark INTO old1h FROM readings_rollups WHERE name = '1h';
    new15 := greatest(old15, new15);
    new1h := greatest(old1h, date_bin('1 hour', new15, origin));

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

    -- 2. materialize the buckets between the watermark and the threshold, and move the
    --    watermarks there: the views switch to these rows in the same commit
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
    UPDATE readings_rollups SET watermark = new15 WHERE name = '15m';
    UPDATE readings_rollups SET watermark = new1h WHERE name = '1h';
    RETURN redone + advanced;
END
$$;
