-- Change-feed events numbered once per transaction instead of once per
-- event. The deferred trigger (0004) used to update change_head once for
-- each event: a transaction appending thousands (a batch of new servers, a
-- sweep over a regional outage) updated that one row thousands of times at
-- COMMIT, each update walking the row's growing chain of versions while
-- every other committing writer waited for the row: 2,000 events took 59 ms
-- to commit alone, 8,000 took 613 ms, and under concurrent batches commits
-- took up to 11 s. Now the first firing in a transaction numbers all of its
-- events (in insertion order) with one update of change_head; the other
-- firings find their event numbered and return. Ids still grow by one per
-- event in commit order, and change_head is still locked only while a
-- transaction commits.
--
-- Unnumbered rows are this transaction's own (a committed event is always
-- numbered; other transactions' uncommitted rows are not visible), found
-- through a partial index that holds only them.
CREATE INDEX changes_unnumbered ON changes (row_id) WHERE id IS NULL;

CREATE OR REPLACE FUNCTION changes_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending BIGINT;
    numbered BIGINT;
    base BIGINT;
BEGIN
    PERFORM 1 FROM changes WHERE row_id = NEW.row_id AND id IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO pending FROM changes WHERE id IS NULL;
    UPDATE change_head SET last = last + pending RETURNING last - pending INTO base;
    UPDATE changes SET id = base + unnumbered.n
    FROM (SELECT row_id, row_number() OVER (ORDER BY row_id) AS n
          FROM changes WHERE id IS NULL) AS unnumbered
    WHERE changes.row_id = unnumbered.row_id AND changes.id IS NULL;
    GET DIAGNOSTICS numbered = ROW_COUNT;
    -- Only if an unnumbered event was committed (triggers switched off):
    -- never number anything twice or leave a gap silently.
    IF numbered <> pending THEN
        RAISE EXCEPTION 'change feed: % events to number, % numbered', pending, numbered;
    END IF;
    PERFORM pg_notify('carewatch_changes', current_schema());
    RETURN NULL;
END
$$;
