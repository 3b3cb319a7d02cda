-- The bill run's reading rules (DOMAIN §3, decree 354 pp. 59-60): each provider's own
-- submission day, and meters out of order or overdue for verification.

-- The period a reading counts for: submitted up to the provider's day of a month (in the
-- account's time zone), that month; later, the next. A day past the month's end (the 30th in
-- February) means the whole month. (0081's version subtracted the day as an interval, which
-- put the first days of a month after a short one into the month before for days past 28.)
CREATE OR REPLACE FUNCTION reading_period(ts timestamptz, time_zone text, cutoff_day integer)
RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN extract(day FROM l.local) <= cutoff_day
                THEN date_trunc('month', l.local)::date
                ELSE (date_trunc('month', l.local) + interval '1 month')::date END
      FROM (SELECT ts AT TIME ZONE time_zone AS local) l
$$;

-- The first local midnight after the submission day of a period's month: readings before it
-- (and from the same day of the month before) count for the period.
CREATE FUNCTION reading_window_end(period date, cutoff_day integer)
RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT period + least(cutoff_day,
                          extract(day FROM (period + interval '1 month - 1 day'))::integer)
$$;

-- A meter out of order (вышел из строя) from a day, or whose verification (поверка) fell due:
-- from then its readings are not used; the bill charges the average of the months before
-- for at most three periods, then the norm times the provider's raising coefficient
-- (decree 354 p. 59(a), p. 60; 1.5 unless the provider sets another).
ALTER TABLE meters
    ADD COLUMN verification_due    date,
    ADD COLUMN out_of_order_since  date;
ALTER TABLE providers
    ADD COLUMN faulty_meter_coefficient numeric(6, 3) NOT NULL DEFAULT 1.5
        CHECK (faulty_meter_coefficient >= 1);
ALTER TABLE meter_volumes DROP CONSTRAINT meter_volumes_method_check;
ALTER TABLE meter_volumes ADD CONSTRAINT meter_volumes_method_check
    CHECK (method IN ('average', 'norm', 'norm_raised'));
