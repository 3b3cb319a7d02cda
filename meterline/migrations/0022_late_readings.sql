-- Late readings (issue #5): a charge line keeps the reading interval it is a part of (the time
-- and register value of the reading that closed it), so that a reading arriving late inside an
-- interval priced before can re-rate it (reversal and repost) without the readings table. NULL
-- on lines booked before: those are not re-rated.
ALTER TABLE charges
    ADD COLUMN reading_end  timestamptz,
    ADD COLUMN end_value    numeric(20, 6);
