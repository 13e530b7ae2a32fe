-- What deleting an installation's reported data (consent withdrawn, then
-- the retention period) keeps of each recording server: its sequence
-- cursor. Without it, once consent is given again, a message captured
-- before the deletion read as the server's first sight and was accepted
-- (a replay). Admission reads it for servers with no row.
CREATE TABLE deleted_server_cursors (
    slc            TEXT NOT NULL REFERENCES installations (slc),
    server_id      TEXT NOT NULL,
    last_sequence  INTEGER NOT NULL,  -- u64 stored bit for bit
    last_digest    BLOB NOT NULL,
    PRIMARY KEY (slc, server_id)
) STRICT, WITHOUT ROWID;
