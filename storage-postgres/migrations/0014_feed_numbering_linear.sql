-- Numbering a transaction's events took time quadratic in their number:
-- the planner, whose statistics see the partial index of unnumbered events
-- nearly empty (every committed event is numbered), joined the events to
-- their own numbering with a nested loop that scanned every unnumbered
-- event again for each one. A 1M-server seeding's transactions of a few
-- thousand events each then held the counter row in COMMIT for minutes
-- while every other writer waited. The events' row ids are now gathered
-- once, in order, and numbered by their position in that array, each
-- found by its primary key: linear, whatever the plan.
CREATE OR REPLACE FUNCTION changes_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending BIGINT;
    numbered BIGINT;
    base BIGINT;
    unnumbered BIGINT[];
BEGIN
    PERFORM 1 FROM changes WHERE row_id = NEW.row_id AND id IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(row_id ORDER BY row_id) INTO unnumbered FROM changes WHERE id IS NULL;
    pending := coalesce(cardinality(unnumbered), 0);
    UPDATE change_head SET last = last + pending RETURNING last - pending INTO base;
    UPDATE changes SET id = base + u.n
    FROM unnest(unnumbered) WITH ORDINALITY AS u (row_id, n)
    WHERE changes.row_id = u.row_id AND changes.id IS NULL;
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
