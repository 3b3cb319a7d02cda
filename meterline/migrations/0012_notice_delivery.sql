-- Under the notice rules (statutory, notice_then_restrict) the notice period runs from the
-- notice's delivery (DOMAIN §7: "20 days after the notice is delivered"): a waiting cut
-- names the `disconnection_ahead` event that gave the notice; the reminders turn that event
-- into a notice (`notices.key` = 'event:<event id>') and record when it was delivered.
ALTER TABLE disconnections_due ADD COLUMN notice_event text;
