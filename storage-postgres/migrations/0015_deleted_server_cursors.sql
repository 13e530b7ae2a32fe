-- What deleting an installation's reported data (consent withdrawn, then
-- the retention period) keeps of each recording server: its sequence
-- cursor. Without it, once consent is given again, a message captured
-- before the deletion read as the server's first sight and was accepted
-- (a replay). Admission reads it for servers with no row.
CREATE TABLE deleted_server_cursors (
    slc            TEXT COLLATE "C" NOT NULL REFERENCES installations (slc),
    server_id      TEXT COLLATE "C" NOT NULL,
    last_sequence  BIGINT NOT NULL,  -- u64 stored bit for bit
    last_digest    BYTEA NOT NULL,
    PRIMARY KEY (slc, server_id)
);
