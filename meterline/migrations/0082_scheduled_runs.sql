-- The scheduler service (issue 7): every run of a scheduled job, with who or what started
-- it. (job, due_at) is a slot of a job's schedule: a slot is claimed once, so two schedulers
-- never run the same one, and a slot missed while no scheduler ran is seen as not done.
CREATE TABLE scheduled_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL CHECK (job ~ '^[a-z][a-z0-9_-]{0,63}$'),
    due_at       timestamptz NOT NULL,   -- the schedule's moment, or when asked by hand
    started_by   text NOT NULL,          -- scheduler:<cron expression>, cli:<user>
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed')),
    detail       text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (job, due_at)
);
