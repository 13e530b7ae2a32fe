-- Consent and Care Plus over time (issue 18). While an installation's
-- messages are refused its servers are parked (next_check_at NULL: not
-- judged); parked_at says since when. counted_from is a server's grace
-- after a refusal ends: missed heartbeats count from there.
-- consent_withdrawn_at starts the retention of its reported data, and
-- data_deleted_at says that retention ran.
ALTER TABLE servers ADD COLUMN counted_from BIGINT;
ALTER TABLE installations
    ADD COLUMN parked_at BIGINT,
    ADD COLUMN consent_withdrawn_at BIGINT,
    ADD COLUMN data_deleted_at BIGINT;

-- Installations refused for lack of consent now: parked from here on.
UPDATE servers SET next_check_at = NULL
    WHERE state IN (0, 1) AND slc IN (SELECT slc FROM installations WHERE NOT consent);
UPDATE installations SET parked_at = registered_at WHERE NOT consent;

-- The sweep's "whose Care Plus ended" seek.
CREATE INDEX installations_expiring ON installations (subscription_expires_at)
    WHERE parked_at IS NULL AND subscription_expires_at IS NOT NULL;
-- Housekeeping's "whose data is due for deletion" seek.
CREATE INDEX installations_withdrawn ON installations (consent_withdrawn_at)
    WHERE consent_withdrawn_at IS NOT NULL AND data_deleted_at IS NULL;
