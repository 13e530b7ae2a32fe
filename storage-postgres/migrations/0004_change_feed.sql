-- The change feed. Events are inserted without an id; a deferred constraint
-- trigger numbers them at COMMIT from the one-row change_head, whose row
-- lock is then held only while the transaction commits. So ids grow by one
-- per event in commit order: a reader never sees id n + 1 before n, and its
-- last id is a safe resume point. The trigger also wakes other nodes
-- (NOTIFY; the payload is the schema, as several deployments may share a
-- database). Columns as carewatch_core::store::columns::ChangeColumns; the
-- reseller is read from installations when the feed is read.
CREATE TABLE change_head (
    singleton  BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    last       BIGINT NOT NULL
);
INSERT INTO change_head (singleton, last) VALUES (true, 0);

CREATE TABLE changes (
    row_id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 BIGINT UNIQUE,
    at                 BIGINT NOT NULL,
    slc                TEXT COLLATE "C" NOT NULL,
    kind               TEXT NOT NULL,
    server_id          TEXT COLLATE "C",
    code               TEXT,
    subject            TEXT,
    duration_ms        BIGINT,
    missed             BIGINT,
    previous_health    BIGINT,
    health             BIGINT,
    worst_code         TEXT,
    servers            BIGINT,
    unavailable        BIGINT,
    late               BIGINT,
    active_conditions  BIGINT,
    accepted           BOOLEAN,
    until_at           BIGINT
);

CREATE INDEX changes_at ON changes (at);

CREATE FUNCTION changes_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH head AS (UPDATE change_head SET last = last + 1 RETURNING last)
    UPDATE changes SET id = head.last FROM head WHERE changes.row_id = NEW.row_id;
    PERFORM pg_notify('carewatch_changes', current_schema());
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER changes_numbered
    AFTER INSERT ON changes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION changes_number();
