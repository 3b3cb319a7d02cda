-- Each gateway meter is read through a device profile (meterline/profiles/devices/<id>.toml):
-- where its registers are, how they are encoded, which bill. `model` stays the name on the
-- meter; `profile` names the file. Meters registered before profiles existed are SDM120s.
-- A meter read by people (no gateway) needs no profile.
ALTER TABLE meters ADD COLUMN profile text;
UPDATE meters SET profile = 'eastron-sdm120' WHERE model = 'SDM120' AND gateway_id IS NOT NULL;
