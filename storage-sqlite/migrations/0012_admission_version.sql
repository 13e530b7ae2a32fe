-- A version of what ingest's admission reads of an installation: its row
-- and its keys. A heartbeat judged on a remembered admission is written only
-- while the version is unchanged (core::service::admission_cache), so every
-- change to those columns or keys gives a new one, here, whoever makes it.
ALTER TABLE installations ADD COLUMN admission_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER installations_admission_changed
    AFTER UPDATE OF reseller_id, product, product_version, subscription_expires_at, consent, registered_at
    ON installations
    -- Only when a value really changes (as on PostgreSQL): a summary refresh
    -- and an unchanged update leave remembered admissions valid.
    WHEN OLD.reseller_id IS NOT NEW.reseller_id OR OLD.product IS NOT NEW.product
        OR OLD.product_version IS NOT NEW.product_version
        OR OLD.subscription_expires_at IS NOT NEW.subscription_expires_at
        OR OLD.consent IS NOT NEW.consent OR OLD.registered_at IS NOT NEW.registered_at
BEGIN
    UPDATE installations SET admission_version = admission_version + 1 WHERE slc = NEW.slc;
END;

CREATE TRIGGER installation_keys_added AFTER INSERT ON installation_keys
BEGIN
    UPDATE installations SET admission_version = admission_version + 1 WHERE slc = NEW.slc;
END;

CREATE TRIGGER installation_keys_changed AFTER UPDATE ON installation_keys
BEGIN
    UPDATE installations SET admission_version = admission_version + 1 WHERE slc = OLD.slc;
    UPDATE installations SET admission_version = admission_version + 1
        WHERE slc = NEW.slc AND NEW.slc <> OLD.slc;
END;

CREATE TRIGGER installation_keys_removed AFTER DELETE ON installation_keys
BEGIN
    UPDATE installations SET admission_version = admission_version + 1 WHERE slc = OLD.slc;
END;
