-- Overview totals per reseller and health, kept up to date by triggers, so
-- an overview reads at most six rows instead of counting every installation
-- of the reseller (about 18 ms at 100,000 installations). Triggers keep every
-- write path honest, present and future.
CREATE TABLE health_totals (
    reseller_id    TEXT NOT NULL,
    health         INTEGER NOT NULL,
    installations  INTEGER NOT NULL,
    PRIMARY KEY (reseller_id, health)
) STRICT, WITHOUT ROWID;

INSERT INTO health_totals (reseller_id, health, installations)
    SELECT reseller_id, health, count(*) FROM installations GROUP BY reseller_id, health;

CREATE TRIGGER health_totals_count_new AFTER INSERT ON installations
BEGIN
    INSERT OR IGNORE INTO health_totals (reseller_id, health, installations)
        VALUES (new.reseller_id, new.health, 0);
    UPDATE health_totals SET installations = installations + 1
        WHERE reseller_id = new.reseller_id AND health = new.health;
END;

CREATE TRIGGER health_totals_move AFTER UPDATE OF reseller_id, health ON installations
    WHEN old.reseller_id IS NOT new.reseller_id OR old.health IS NOT new.health
BEGIN
    UPDATE health_totals SET installations = installations - 1
        WHERE reseller_id = old.reseller_id AND health = old.health;
    INSERT OR IGNORE INTO health_totals (reseller_id, health, installations)
        VALUES (new.reseller_id, new.health, 0);
    UPDATE health_totals SET installations = installations + 1
        WHERE reseller_id = new.reseller_id AND health = new.health;
END;

CREATE TRIGGER health_totals_forget AFTER DELETE ON installations
BEGIN
    UPDATE health_totals SET installations = installations - 1
        WHERE reseller_id = old.reseller_id AND health = old.health;
END;
