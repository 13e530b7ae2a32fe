-- The change feed: one row per change, ids in commit order (one writer at a
-- time), never reused (AUTOINCREMENT), so a reader's last id is a safe
-- resume point. The reseller is read from installations when the feed is
-- read. Columns as carewatch_core::store::columns::ChangeColumns.
CREATE TABLE changes (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    at                 INTEGER NOT NULL,
    slc                TEXT NOT NULL,
    kind               TEXT NOT NULL,
    server_id          TEXT,
    code               TEXT,
    subject            TEXT,
    duration_ms        INTEGER,
    missed             INTEGER,
    previous_health    INTEGER,
    health             INTEGER,
    worst_code         TEXT,
    servers            INTEGER,
    unavailable        INTEGER,
    late               INTEGER,
    active_conditions  INTEGER,
    accepted           INTEGER,
    until_at           INTEGER
) STRICT;

CREATE INDEX changes_at ON changes (at);
