-- Carewatch schema, version 2 (PostgreSQL): overview totals per reseller and
-- health kept by triggers on installations, so an overview reads a handful
-- of rows instead of counting every installation of the reseller (about
-- 9 ms at 10,000 installations). Triggers keep every write path honest,
-- present and future, old nodes' included. Needs PostgreSQL 13 or newer
-- (xid8 and pg_current_xact_id).
--
-- Concurrency. The plain design (the trigger does UPDATE health_totals SET
-- installations = installations +/- 1 on both rows of a move) deadlocks
-- here, and ordering its two updates does not help: writers lock an
-- installation (summary refresh, FOR NO KEY UPDATE), compute, then change its
-- health, and the sweep and heartbeat batches refresh several installations
-- one after another in one transaction (the sweep locking each as it comes
-- to it). So T1 changes A's health (locking
-- the totals rows of A's reseller until it commits) and goes on to lock B,
-- while T2 holds B and changes its health: T2 waits for T1's totals rows, T1
-- for B. Tried on PostgreSQL 15 with that interleaving: "deadlock detected"
-- after deadlock_timeout (1 s of both stalled, then one rolled back and
-- retried). The totals rows would also be hot: every health change of a
-- reseller would queue behind the previous one until it commits.
--
-- So nothing here ever waits for a lock:
--   * health_totals holds one row per (reseller, health), created with the
--     reseller (trigger on resellers; the rows of existing resellers below),
--     so there is no "first insert" of a pair to race on;
--   * a change takes its row with FOR NO KEY UPDATE SKIP LOCKED and adds to
--     it; if another transaction holds the row, the change is parked as an
--     insert into health_total_deltas (no unique key but the identity: an
--     insert never waits);
--   * whoever holds a row folds the deltas parked for it (deletes and adds
--     them). Only the holder of (reseller, health) deletes that pair's
--     deltas, so the delete never waits either;
--   * a transaction that already changed a row (its xmin is ours) parks
--     instead of updating it again, folding only about every 64th time: a
--     sweep moving 1,000 installations makes 1,000 cheap inserts and some 16
--     versions of each row, not a 1,000-version chain that every further
--     update must walk (quadratic: 5,000 moves took 1.8 s that way).
-- A total is its row plus its parked deltas (one snapshot sees both, a fold
-- being one transaction). With no waits on these tables, their locks cannot
-- be part of a deadlock cycle, whatever order installations are locked in.

CREATE TABLE health_totals (
    reseller_id    TEXT COLLATE "C" NOT NULL,
    health         SMALLINT NOT NULL,  -- Health::rank, as installations.health
    installations  BIGINT NOT NULL,
    PRIMARY KEY (reseller_id, health)
);

CREATE TABLE health_total_deltas (
    reseller_id  TEXT COLLATE "C" NOT NULL,
    health       SMALLINT NOT NULL,
    id           BIGINT GENERATED ALWAYS AS IDENTITY,
    delta        BIGINT NOT NULL,
    -- Serves the fold (one pair) and the overview (one reseller); the id
    -- makes it a key, so the table has a replica identity.
    PRIMARY KEY (reseller_id, health, id)
);

-- Adds `d` to the total of (r, h): on its row if this transaction may take
-- it without waiting (folding what others parked for it), else parked.
CREATE FUNCTION health_totals_add(r TEXT, h SMALLINT, d BIGINT) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    held BOOLEAN;
    changed_by_us BOOLEAN;
BEGIN
    SELECT xmin = pg_current_xact_id()::xid INTO changed_by_us
        FROM health_totals WHERE reseller_id = r AND health = h
        FOR NO KEY UPDATE SKIP LOCKED;
    held := FOUND;
    IF held AND NOT changed_by_us THEN
        WITH folded AS (
            DELETE FROM health_total_deltas WHERE reseller_id = r AND health = h
            RETURNING delta
        )
        UPDATE health_totals
            SET installations = installations + d + (SELECT COALESCE(sum(delta), 0)::bigint FROM folded)
            WHERE reseller_id = r AND health = h;
        RETURN;
    END IF;
    -- Held by another transaction, or already changed by this one (or
    -- missing, which no write path allows: still counted, never lost).
    INSERT INTO health_total_deltas (reseller_id, health, delta) VALUES (r, h, d);
    -- A long transaction holding the row folds about every 64th change (at
    -- random: ids would correlate with the pair), so neither the row's
    -- versions nor the parked deltas pile up: a statement moving 10,000
    -- installations leaves some 64 deltas per pair, not 10,000.
    IF held AND random() < 1.0 / 64 THEN
        WITH folded AS (
            DELETE FROM health_total_deltas WHERE reseller_id = r AND health = h
            RETURNING delta
        )
        UPDATE health_totals
            SET installations = installations + (SELECT COALESCE(sum(delta), 0)::bigint FROM folded)
            WHERE reseller_id = r AND health = h;
    END IF;
END
$$;

CREATE FUNCTION health_totals_follow() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM health_totals_add(OLD.reseller_id, OLD.health, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM health_totals_add(NEW.reseller_id, NEW.health, 1);
    END IF;
    RETURN NULL;
END
$$;

-- Every health rank (0-4, installations' CHECK) has a row from the start.
CREATE FUNCTION health_totals_open() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO health_totals (reseller_id, health, installations)
        SELECT NEW.id, h, 0 FROM generate_series(0, 4) AS h;
    RETURN NULL;
END
$$;

-- Taken before the triggers exist and held until this migration commits: no
-- write slips between the count below and the triggers taking over.
LOCK TABLE resellers, installations IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER health_totals_open AFTER INSERT ON resellers
    FOR EACH ROW EXECUTE FUNCTION health_totals_open();

CREATE TRIGGER health_totals_count AFTER INSERT OR DELETE ON installations
    FOR EACH ROW EXECUTE FUNCTION health_totals_follow();

-- Only when the pair really changes: a summary refresh rewrites health with
-- every change of its counts, mostly to the same value.
CREATE TRIGGER health_totals_move AFTER UPDATE OF reseller_id, health ON installations
    FOR EACH ROW
    WHEN (OLD.health IS DISTINCT FROM NEW.health OR OLD.reseller_id IS DISTINCT FROM NEW.reseller_id)
    EXECUTE FUNCTION health_totals_follow();

INSERT INTO health_totals (reseller_id, health, installations)
    SELECT r.id, h, (SELECT count(*) FROM installations i WHERE i.reseller_id = r.id AND i.health = h)
    FROM resellers r CROSS JOIN generate_series(0, 4) AS h;
