-- Readings as they came from the meters, idempotent on (meter, register, ts).
-- With TimescaleDB: a hypertable. Without it: range partitions by month plus a default
-- partition, so a reading is never refused for lack of a partition.

-- Monthly partitions (UTC months) from months_from to months_to relative to the current month,
-- for a partitioned readings table; a no-op on a hypertable. Returns how many it created.
-- The bridge calls it at start and twice a day so the months ahead always exist.
CREATE FUNCTION ensure_readings_partitions(months_from integer, months_to integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    this_month constant timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    month timestamp;
    created integer := 0;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass) <> 'p' THEN
        RETURN 0;
    END IF;
    FOR month IN
        SELECT generate_series(this_month + make_interval(months => months_from),
                               this_month + make_interval(months => months_to),
                               interval '1 month')
    LOOP
        IF to_regclass('readings_' || to_char(month, 'YYYY_MM')) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                'readings_' || to_char(month, 'YYYY_MM'),
                month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

DO $$
DECLARE
    columns constant text := $columns$
        meter_id     text NOT NULL,
        register     text NOT NULL,
        ts           timestamptz NOT NULL,
        value        numeric(20, 6) NOT NULL,
        gateway_id   text NOT NULL,
        received_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (meter_id, register, ts)
    $columns$;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE format('CREATE TABLE readings (%s)', columns);
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
    ELSE
        EXECUTE format('CREATE TABLE readings (%s) PARTITION BY RANGE (ts)', columns);
        CREATE TABLE readings_default PARTITION OF readings DEFAULT;
        PERFORM ensure_readings_partitions(-12, 24);
    END IF;
END
$$;

-- Anything that could not be taken: kept with the reason, never silently dropped.
CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL,        -- mqtt, rating, ...
    reason       text NOT NULL,
    payload      text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- the same input refused twice for the same reason is kept once
    fingerprint  text GENERATED ALWAYS AS (
                     md5(source || E'\n' || reason || E'\n' || payload)) STORED UNIQUE
);

-- Gateway batches already forwarded to Kafka: (gateway, seq) identifies a batch.
CREATE TABLE ingest_batches (
    gateway_id    text NOT NULL,
    seq           bigint NOT NULL,
    samples       integer NOT NULL,
    forwarded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, seq)
);
CREATE INDEX ingest_batches_recent ON ingest_batches (forwarded_at);
