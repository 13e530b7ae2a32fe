-- A version of what ingest's admission reads of an installation: its row
-- and its keys. A heartbeat judged on a remembered admission is written only
-- while the version is unchanged (core::service::admission_cache), so every
-- change to those columns or keys gives a new one, here, whoever makes it.
ALTER TABLE installations ADD COLUMN admission_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION installations_admission_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    NEW.admission_version := OLD.admission_version + 1;
    RETURN NEW;
END
$$;

-- Only when a column admission reads really changes: a summary refresh
-- rewrites other columns of the row with every change of its counts.
CREATE TRIGGER installations_admission_changed
    BEFORE UPDATE OF reseller_id, product, product_version, subscription_expires_at, consent, registered_at
    ON installations
    FOR EACH ROW
    WHEN ((OLD.reseller_id, OLD.product, OLD.product_version, OLD.subscription_expires_at,
           OLD.consent, OLD.registered_at)
          IS DISTINCT FROM
          (NEW.reseller_id, NEW.product, NEW.product_version, NEW.subscription_expires_at,
           NEW.consent, NEW.registered_at))
    EXECUTE FUNCTION installations_admission_changed();

CREATE FUNCTION installation_keys_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE installations SET admission_version = admission_version + 1 WHERE slc = OLD.slc;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.slc IS DISTINCT FROM OLD.slc) THEN
        UPDATE installations SET admission_version = admission_version + 1 WHERE slc = NEW.slc;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER installation_keys_changed AFTER INSERT OR UPDATE OR DELETE ON installation_keys
    FOR EACH ROW EXECUTE FUNCTION installation_keys_changed();
