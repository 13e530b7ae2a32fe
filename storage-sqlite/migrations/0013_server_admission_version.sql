-- Each server row carries its installation's admission version, so the
-- in-place write of a remembered heartbeat checks it on the row it writes
-- instead of looking the installation up as well: the lookup was about
-- 1,500 instructions of every heartbeat (BENCHMARKS.md, "Remembered
-- admissions"). Kept equal by the triggers below, whoever changes what.
ALTER TABLE servers ADD COLUMN admission_version INTEGER NOT NULL DEFAULT 0;

UPDATE servers SET admission_version =
    (SELECT i.admission_version FROM installations i WHERE i.slc = servers.slc);

CREATE TRIGGER servers_follow_admission_version
    AFTER UPDATE OF admission_version ON installations
    WHEN OLD.admission_version IS NOT NEW.admission_version
BEGIN
    UPDATE servers SET admission_version = NEW.admission_version WHERE slc = NEW.slc;
END;

CREATE TRIGGER servers_start_at_admission_version AFTER INSERT ON servers
BEGIN
    UPDATE servers
    SET admission_version = (SELECT i.admission_version FROM installations i WHERE i.slc = NEW.slc)
    WHERE slc = NEW.slc AND server_id = NEW.server_id;
END;
